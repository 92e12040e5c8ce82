"""One writer at a time: an OS file lock on the index, released by the kernel if a writer dies."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import UserError

LOCK_FILE = "index.lock"
OWNER_FILE = "index.lock.owner"  # who holds the lock, for the message a waiting writer prints


class IndexBusy(UserError):
    """Another process kept the index locked for longer than we were willing to wait."""


def _owner(data_dir: Path) -> str:
    try:
        return (data_dir / OWNER_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        return ""


@contextmanager
def writer_lock(data_dir: Path, timeout_s: float) -> Iterator[None]:
    """Hold the index's writer lock; wait up to `timeout_s` seconds, then fail with one line."""
    from filelock import FileLock, Timeout

    data_dir.mkdir(parents=True, exist_ok=True)
    # An OS lock (flock), never a soft lock file: a writer killed with -9 must not leave a lock
    # behind that blocks the next run. The lock file itself stays (unlinking it races waiters).
    lock = FileLock(str(data_dir / LOCK_FILE), timeout=max(timeout_s, 0),
                    fallback_to_soft=False, preserve_lock_file=True)
    try:
        lock.acquire()
    except Timeout:
        holder = _owner(data_dir)
        raise IndexBusy(f"Another process ({holder or 'unknown'}) is changing the index in "
                        f"{data_dir}; waited {timeout_s:g} s. Try again when it has finished, "
                        f"or wait longer with QA_INDEX_LOCK_TIMEOUT_S.") from None
    try:
        command = " ".join(os.path.basename(a) if i == 0 else a
                           for i, a in enumerate(sys.argv[:3]))
        (data_dir / OWNER_FILE).write_text(
            f"pid {os.getpid()}, `{command}`, since {time.strftime('%H:%M:%S')}",
            encoding="utf-8")
        yield
    finally:
        lock.release()
