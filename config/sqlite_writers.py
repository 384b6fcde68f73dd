"""SQLite writers take turns on a file lock instead of sleeping and retrying.

SQLite lets one connection write at a time. The others retry after sleeping 1, 2, 5, 10, 15...
ms, so a worker whose write comes just after another worker began a transaction sleeps well past
the moment the lock is free (seen here: outcomes of 0.2 ms stalled for 10 to 100 ms while another
worker claimed a chunk). Writers that take their turn with `write_turn()` wait in the kernel's
queue on a lock file beside the database and go on as soon as the holder is done. Writers that
do not take turns still get SQLite's own locking: the turn only saves time, it guards nothing.

On other databases, and on SQLite databases in memory, `write_turn()` does nothing.
"""

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection

_held = threading.local()  # per thread: a lock file of its own (flock excludes open files, not threads)


def lock_path(database_name: object) -> str | None:
    """The lock file of an SQLite database file, or None for a database in memory."""
    name = str(database_name)
    if not name or name == ":memory:" or name.startswith("file:") or "mode=memory" in name:
        return None
    return f"{name}-writers.lock"


@contextmanager
def write_turn() -> Iterator[None]:
    """Hold this process's turn to write to the default SQLite database (re-entrant)."""
    path = lock_path(connection.settings_dict["NAME"]) if connection.vendor == "sqlite" else None
    if path is None:
        yield
        return
    with turn(path):
        yield


@contextmanager
def turn(path: str) -> Iterator[None]:
    """Hold the lock file `path` (re-entrant within a thread; threads and processes queue)."""
    files = _held.__dict__.setdefault("files", {})
    depth = _held.__dict__.setdefault("depth", {})
    if path not in files:
        files[path] = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    if depth.get(path, 0) == 0:
        fcntl.flock(files[path], fcntl.LOCK_EX)
    depth[path] = depth.get(path, 0) + 1
    try:
        yield
    finally:
        depth[path] -= 1
        if depth[path] == 0:
            fcntl.flock(files[path], fcntl.LOCK_UN)
