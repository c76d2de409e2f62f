"""SHA-256 of files as stored: the provenance hash of inputs and outputs."""
from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path


def sha256_file(path: str | Path) -> str | None:
    """Hex SHA-256 of the file's bytes, or None when it cannot be read or is not a
    regular file (a FIFO or device could block or never end: never read)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb") as f:
            fd = -1
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError:
        return None
    finally:
        if fd >= 0:
            os.close(fd)
