"""Recording files stored by content: the name is the SHA-256, so a file that changes no longer matches its name."""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from directo.core.private_files import private_directory


@dataclass(frozen=True)
class Stored:
    sha256: str
    key: str  # where the file lives, relative to the storage root
    path: str  # the file itself, for readers that want no storage object
    size: int


class LocalStorage:
    """The default storage: a directory (RECORDINGS_DIR), two hex digits of fan-out per level."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def put(self, data: bytes, extension: str) -> Stored:
        """Idempotent: storing the same bytes twice yields the same key and one file."""
        sha = hashlib.sha256(data).hexdigest()
        key = f"{sha[:2]}/{sha}.{extension}"
        path = self.root / key
        if not path.exists():
            private_directory(path.parent)  # recordings are customers' voices: the server's user alone
            # Write then rename: a crash never leaves a half-written file under a content address.
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")  # 0600, kept by the rename
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return Stored(sha, key, str(path), len(data))

    def delete(self, key: str) -> bool:
        """Remove a stored file (a customer asked to be forgotten); False when it was not there."""
        path = self.root / key
        if not path.is_file():
            return False
        path.unlink()
        return True

    def read(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def verify(self, key: str, sha256: str) -> bool:
        """True when the stored file still has the content its name promises."""
        path = self.root / key
        return path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == sha256
