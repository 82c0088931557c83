"""`bin/directo run` installs only what running needs; the test tools and Chromium come only with ./run-tests,
which says it installs a system package before it does. The real scripts run in a copy of the project, against a
stand-in for pip, npm and apt-get that records what it was asked to do."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[1]
ANNOUNCED = "installing it with apt-get"
RECORDER = """#!/usr/bin/env bash
# Records how it was called; apt-get also records whether the setup had already said it would install it.
name="$(basename "$0")"
if [ "$name" = apt-get ]; then
  said=silent
  grep -q "{announced}" "$SETUP_STDERR" && said=announced
  echo "apt-get ($said) $*" >> "$CALLS"
else
  echo "$name $*" >> "$CALLS"
fi
[ "$name" = npm ] && mkdir -p node_modules
exit 0
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project's scripts and manifests, with pip (via .venv/bin/python), npm and apt-get faked."""
    copy = tmp_path / "directo"
    for name in ("scripts", "bin"):
        shutil.copytree(TOP / name, copy / name)
    for name in ("pyproject.toml", "package.json", "package-lock.json", "run-tests"):
        shutil.copy2(TOP / name, copy / name)
    fakes = tmp_path / "fakes"
    fakes.mkdir()
    (copy / ".venv" / "bin").mkdir(parents=True)
    recorder = RECORDER.replace("{announced}", ANNOUNCED)
    venv = copy / ".venv" / "bin"
    for fake in (fakes / "npm", fakes / "apt-get", venv / "python", venv / "directo"):
        fake.write_text(recorder)
        fake.chmod(0o755)
    return copy


def _run(project: Path, *command: str) -> list[str]:
    calls = project.parent / "calls.log"
    stderr = project.parent / "stderr.log"
    calls.write_text("")
    env = dict(os.environ, PATH=f"{project.parent / 'fakes'}:{os.environ['PATH']}", CALLS=str(calls),
               SETUP_STDERR=str(stderr), DIRECTO_CHROMIUM=str(project / "no-chromium-here"))
    with stderr.open("w") as err:
        subprocess.run(command, cwd=project, env=env, stderr=err, stdout=subprocess.DEVNULL, check=True, timeout=60)
    return calls.read_text().splitlines()


def test_bin_directo_run_installs_only_what_running_needs(project) -> None:
    calls = _run(project, "bin/directo", "run")
    assert "python -m pip install -e ." in calls, calls
    assert not any("[test]" in call for call in calls), "test tools are not for running"
    assert "npm ci --no-audit --no-fund" in calls, "the agent page's softphone library is"
    assert not any(call.startswith("apt-get") for call in calls), "no system package, even as root"
    assert calls[-1] == "directo run"
    assert _run(project, "bin/directo", "run") == ["directo run"], "the second time, nothing is installed"


def test_run_tests_installs_the_test_tools_and_says_so_before_installing_chromium(project) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root installs Debian packages")
    (project / ".venv" / "bin" / "python").write_text("#!/usr/bin/env bash\n"
                                                      "[ \"$1\" = -m ] && [ \"$2\" = pytest ] && exit 0\n"
                                                      + RECORDER.replace("{announced}", ANNOUNCED).split("\n", 1)[1])
    calls = _run(project, "./run-tests", "-q")
    assert "python -m pip install -e .[test]" in calls, calls
    apt = [call for call in calls if call.startswith("apt-get")]
    assert apt and all(call.startswith("apt-get (announced)") for call in apt), apt
    assert any("install" in call and "chromium" in call for call in apt)
