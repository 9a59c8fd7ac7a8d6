"""Peak RSS of the running process, sampled in a thread (shared by the benchmarks)."""

from __future__ import annotations

import threading


class PeakRSS:
    """``with PeakRSS() as rss: ...`` then ``rss.peak`` and ``rss.start`` in bytes. With ``tree``,
    of this process and all its children together (Spark's JVM), and ``rss.children`` the peak of
    the children's alone."""

    def __init__(self, interval: float = 0.01, *, tree: bool = False):
        import psutil

        self.process = psutil.Process()
        self.interval = interval
        self.tree = tree
        self._gone = psutil.Error
        self.children = 0
        self.start = self.peak = self._sample()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        rss = self.process.memory_info().rss
        if self.tree:
            children = 0
            for child in self.process.children(recursive=True):
                try:
                    children += child.memory_info().rss
                except self._gone:  # ended between the listing and the read
                    pass
            self.children = max(self.children, children)
            rss += children
        return rss

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakRSS":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._sample())


def run_in_child(target, *args) -> dict:
    """Run ``target(*args, queue)`` in a fresh spawned process (so its RSS is its own) and return
    the dict it puts on the queue; a dict with ``error`` ends the benchmark."""
    import multiprocessing as mp
    import sys

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    out = queue.get()
    proc.join()
    if "error" in out:
        print(out["error"], file=sys.stderr)
        sys.exit(1)
    return out
