"""The layering stays as designed: import-linter's contracts (pyproject.toml), and what the server loads."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

TOP = Path(__file__).resolve().parent.parent


def test_the_import_contracts_hold() -> None:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint, "import-linter is a test dependency: scripts/setup installs it"
    result = subprocess.run([lint, "--no-cache"], cwd=TOP, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_server_and_the_worker_load_neither_the_stand_in_nor_the_simulator() -> None:
    probe = (
        "import sys, voice, voice.web, voice.web_worker, directo.cli\n"
        "voice.create_app\n"
        "from directo.cli import main\n"
        "main.get_command(None, 'worker')\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'standin' or m.startswith('directo.simulate'))\n"
        "print(loaded)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=TOP, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout
