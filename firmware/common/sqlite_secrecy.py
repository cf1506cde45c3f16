"""What every service's SQLite store does so that its bytes keep no order of events (ARCHITECTURE.md):
erase the rollback journal's pre-images after each transaction, and keep values in fixed-size cells so an
update rewrites a cell in place instead of moving it. The scanner's and the auth service's stores both use
these; each keeps its own file, its own schema and its own errors."""

from __future__ import annotations

import os
import struct
from pathlib import Path


def scrub_journal(db_path: Path, *, truncate_above: int, error: type[Exception]) -> None:
    """Overwrite the whole rollback journal of `db_path` with zeros in place and fsync it; a journal longer
    than `truncate_above` bytes (after a VACUUM) is then truncated. Only ever called with no transaction
    open, when SQLite has already invalidated the journal's header (or rolled it back). A failure raises
    `error` saying that the operation is recorded but its pre-image may remain."""
    journal = Path(f"{db_path}-journal")
    try:
        fd = os.open(journal, os.O_WRONLY)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise error(f"{journal}: cannot be opened to erase it ({exc}); the last operation IS recorded, but "
                    "the journal may still show the previous state: fix the permissions and restart") from None
    try:
        size = os.fstat(fd).st_size
        chunk = bytes(min(size, 1 << 16))
        offset = 0
        while offset < size:
            offset += os.pwrite(fd, chunk[: size - offset], offset)
        os.fsync(fd)
        if size > truncate_above:
            os.ftruncate(fd, 0)
            os.fsync(fd)
    except OSError as exc:
        raise error(f"{journal}: could not be erased ({exc}); the last operation IS recorded, but the "
                    "journal may still show the previous state: free space / check the card, restart the "
                    "service (it erases the journal at start)") from None
    finally:
        os.close(fd)


def pad(data: bytes, size: int) -> bytes:
    """`data` in a cell of exactly `size` bytes: a 2-byte length, the data, zeros."""
    if len(data) + 2 > size:
        raise ValueError(f"a value of {len(data)} bytes does not fit a {size}-byte cell")
    return struct.pack(">H", len(data)) + data + bytes(size - 2 - len(data))


def unpad(blob: bytes) -> bytes:
    (length,) = struct.unpack_from(">H", blob)
    return bytes(blob[2 : 2 + length])
