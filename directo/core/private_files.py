"""Files that hold customers' data or secrets (the SQLite database, recordings, generated keys) are readable by
the server's own user only: directories 0700, files 0600, whether created now or left looser by an older version."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

logger = logging.getLogger(__name__)

DIRECTORY_MODE = 0o700
FILE_MODE = 0o600


def private_directory(path: Path) -> Path:
    """Create the directory (and any missing parents) for its owner only, or tighten it if it exists."""
    missing = [parent for parent in (path, *path.parents) if not parent.exists()]
    for directory in reversed(missing):
        directory.mkdir(mode=DIRECTORY_MODE, exist_ok=True)
    tighten(path, DIRECTORY_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create the file empty for its owner only (before anyone writes into it), or tighten it if it exists.

    An existing file is never opened: closing any descriptor of a SQLite database drops every POSIX lock this
    process holds on it, under the feet of its open connections.
    """
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE))
    except FileExistsError:
        tighten(path, FILE_MODE)
    return path


def tighten(path: Path, mode: int) -> None:
    """Take away every permission beyond `mode`; never adds one. Someone else's file is only reported."""
    try:
        status = path.stat()
    except FileNotFoundError:
        return
    current = stat.S_IMODE(status.st_mode)
    if current & ~mode == 0:
        return
    if status.st_uid != os.getuid():
        logger.warning("%s is readable by others (mode %o) and belongs to another user: restrict it to %o",
                       path, current, mode)
        return
    os.chmod(path, current & mode)
