"""Configuration from the environment, and the secrets a laptop install makes for itself."""

from __future__ import annotations

import stat

from conftest import run_together

READ_SECRETS = "import sys\nfrom directo.core.config import Config"
PRINT_SECRETS = "c = Config.from_env({'DIRECTO_DATA_DIR': sys.argv[1]}); print(c.secret_key, c.twilio_auth_token)"


def test_processes_starting_together_agree_on_the_generated_secrets(tmp_path) -> None:
    """Web workers and the worker generate the install's secrets at once; a session one signs, all must accept."""
    outputs = run_together(READ_SECRETS, PRINT_SECRETS, str(tmp_path), processes=6)
    assert len({output.strip() for output in outputs}) == 1, outputs
    for name in ("secret_key", "twilio_auth_token"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret_key", "twilio_auth_token"], "no temporary files"
