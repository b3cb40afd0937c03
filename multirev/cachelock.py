"""One process at a time fills a cache entry; the others wait for it and then reuse what it made.

Several pytest processes (xdist workers, two shells, CI jobs) share the download and build caches, so
every "is it there? no: make it" must happen under the entry's lock, and re-check after taking it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from multirev.errors import EnvironmentProblem


@contextmanager
def cache_entry_lock(entry: Path, *, timeout: float, what: str) -> Iterator[None]:
    """Hold `<entry>.lock` (next to the entry) for at most `timeout` seconds of waiting."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    lock_file = entry.parent / f".{entry.name}.lock"
    try:
        with FileLock(lock_file, timeout=timeout):
            yield
    except Timeout as exc:
        raise EnvironmentProblem(
            f"waited {timeout:.0f} s for another process to finish {what} (lock {lock_file}); "
            "if none is running, delete the lock file"
        ) from exc
