"""One run at a time per output folder.

Two LocalDagRunner runs on one pipeline root would interleave writes to the
same ML Metadata store and artifact folders. `run_lock` takes an exclusive,
non-blocking `flock` on `<output_dir>/.run.lock` for the length of a run: a
second run fails at once with a message naming the holder. The kernel
releases the lock when its process ends, however it ends (even SIGKILL), so
a crashed run never leaves the folder locked.
"""

import contextlib
import fcntl
import os
import time

LOCK_FILE = ".run.lock"


class RunLockedError(RuntimeError):
    """Another run holds the output folder."""


@contextlib.contextmanager
def run_lock(output_dir: str):
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, LOCK_FILE)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise RunLockedError(
                f"{output_dir} is in use by another run ({holder}); wait for it to finish or use another --output-dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)
