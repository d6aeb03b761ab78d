"""Helpers shared by the benchmarks: timing, peak memory, the machine's description."""

import json
import os
import platform
import subprocess
import sys
import time


def machine() -> dict:
    """CPU model, cores and memory of this machine."""
    cpu = platform.processor() or platform.machine()
    if os.path.exists("/proc/cpuinfo"):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(memory_gb, 1), "python": platform.python_version()}


def peak_rss_mb() -> float:
    """Peak resident memory of this process (VmHWM) plus the largest of its
    finished child processes (Beam's multi-processing workers), in MB."""
    import resource

    own = next((int(line.split()[1]) / 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:")), float("nan"))
    return own + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


class PeakTreeMemory:
    """Peak resident memory of this process and all its descendants together (Beam's
    multi-processing workers included), sampled every `interval` seconds in a thread, in MB.

        with PeakTreeMemory() as memory: ...
        memory.peak_mb
    """

    def __init__(self, interval: float = 0.1):
        import threading

        self.interval, self.peak_mb = interval, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        import psutil

        root = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for process in [root, *root.children(recursive=True)]:
                try:
                    total += process.memory_info().rss
                except psutil.Error:  # a worker that exited between listing and reading
                    pass
            self.peak_mb = max(self.peak_mb, total / 2**20)
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, peak_rss_mb())  # a peak between two samples of this process


def in_subprocess(module: str, function: str, **kwargs) -> dict:
    """Run `module.function(**kwargs)` in a fresh Python process (so that its peak
    memory is its own) and return its JSON result."""
    code = f"import json, sys; from {module} import {function} as f; print('RESULT ' + json.dumps(f(**json.loads(sys.argv[1]))))"
    process = subprocess.run([sys.executable, "-c", code, json.dumps(kwargs)], capture_output=True, text=True, check=False)
    for line in process.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(f"{module}.{function} failed: {process.stderr[-2000:]}")


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
