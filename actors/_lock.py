"""RunLock: one owner at a time for a persisted run.

A run that writes snapshots holds an exclusive ``flock`` on ``<run_id>.lock``
beside its snapshot from before it starts until its final snapshot is
written. A second ``resume`` of the same run, from this process or another,
is refused while the lock is held, instead of two runs racing to rewrite one
snapshot. The operating system drops the lock when its process dies, so a
``kill -9`` never leaves a run locked; the file left behind is taken over by
the next owner.

The owner removes the file when it lets go, while still holding the lock. A
contender that locked a file which was removed meanwhile holds a lock on
nothing, so after locking it checks that the path still names the file it
locked, and starts over otherwise.

Where ``fcntl`` is missing (Windows), runs are not locked.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from wavecrest.core import ResumeError, SnapshotError

try:
    import fcntl
except ImportError:  # pragma: no cover - not on the platforms CI runs
    fcntl = None  # type: ignore[assignment]

__all__ = ["RunInUseError", "RunLock"]


class RunInUseError(ResumeError):
    """Raised when a run is resumed while another process or Runtime is running it."""


class RunLock:
    """The lock of one run, held until :meth:`release` (which is idempotent)."""

    def __init__(self, path: Path, fd: int | None) -> None:
        self.path = path
        self._fd = fd
        self._guard = threading.Lock()

    @classmethod
    def acquire(cls, snapshot: Path, run_id: str) -> RunLock:
        """Lock the run whose snapshot is (or will be) ``snapshot``, or raise RunInUseError."""
        path = snapshot.with_suffix(".lock")
        if fcntl is None:  # pragma: no cover
            return cls(path, None)
        while True:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                raise SnapshotError(
                    f"{path.parent}: cannot keep run {run_id}'s state there ({exc.strerror or exc})"
                ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise RunInUseError(
                    f"run {run_id} is in use: another process or Runtime is running it "
                    f"(it holds {path})"
                ) from None
            except BaseException:
                os.close(fd)
                raise
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return cls(path, fd)
            os.close(fd)  # the owner let go and removed the file meanwhile: try again

    def release(self) -> None:
        """Let go of the run (remove the lock file, then unlock)."""
        with self._guard:
            fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass  # already gone (a state dir removed under a running run): nothing to clean
        os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None
