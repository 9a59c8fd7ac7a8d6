"""The memory and time limits of one job (a run or an import), from the ``pipeline`` settings.

The memory limit is the engine's own (DuckDB's ``memory_limit``: past it, DuckDB spills to its
temporary folder, then fails the statement). The time limit is kept by a timer that interrupts the
engine's statement and by a check at each progress report (work done in Python between
statements). Either way the job fails with a message naming the setting to change, and since a
run publishes only at its end, the last publication stays.
"""

from __future__ import annotations

import threading
import time

from tessera.config.models import PipelineConfig, duration_seconds
from tessera.errors import RunError

UNCHANGED = "The last published state is unchanged."


class JobLimits:
    """Use as a context manager around one job; wrap its progress callback with :attr:`progress`."""

    def __init__(self, adapter, settings: PipelineConfig, progress=None, *, what: str = "run"):
        self.adapter = adapter
        self.settings = settings
        self.what = what
        self.seconds = duration_seconds(settings.time_limit)
        self._inner = progress
        self._start = 0.0
        self._timer: threading.Timer | None = None
        self.expired = False

        def checked(*args) -> None:
            self.check()
            if self._inner is not None:
                self._inner(*args)

        if progress is not None and hasattr(progress, "cancelled"):
            checked.cancelled = progress.cancelled  # a job's cancel flag (tessera.jobs.JobContext)
        self.progress = checked

    def __enter__(self) -> "JobLimits":
        self.adapter.set_memory_limit(memory_setting(self.settings.memory_limit))
        self._start = time.monotonic()
        self._timer = threading.Timer(self.seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._timer is not None:
            self._timer.cancel()
        # The job's limit (its own, or the default a run scaled to its data) ends with the job: the
        # server's next work (the search index, the dashboards' preparation) gets the engine's default.
        try:
            self.adapter.set_memory_limit(None)
        except Exception:  # noqa: BLE001 - a broken connection: the next job sets its limit again
            pass

    def _expire(self) -> None:
        self.expired = True
        try:
            self.adapter.interrupt()
        except Exception:  # noqa: BLE001 - the check at the next progress report still stops the job
            pass

    def check(self) -> None:
        """Raise the time limit's error when the job ran past it."""
        if self.expired or time.monotonic() - self._start > self.seconds:
            self.expired = True
            raise self.too_long()

    def too_long(self) -> RunError:
        return RunError(f"The {self.what} was stopped: it ran longer than its time limit of "
                        f"{_shown(self.settings.time_limit)} (setting pipeline.time_limit). Raise the limit, or "
                        f"look for what makes it slow (a large source, an expensive expression). {UNCHANGED}")

    def explain(self, exc: BaseException) -> BaseException:
        """The error to report for ``exc``: the limit that stopped the job, or ``exc`` itself."""
        if isinstance(exc, RunError) and "(setting pipeline." in str(exc):
            return exc
        if self.expired:
            return self.too_long()
        if self.adapter.out_of_memory(exc):
            limit = self.settings.memory_limit
            where = (f"its memory limit of {limit} (setting pipeline.memory_limit)" if limit else
                     "the engine's memory limit (set pipeline.memory_limit, e.g. '8GB', to change it)")
            return RunError(f"The {self.what} needed more memory than {where}. Raise the limit, free memory on "
                            f"this machine, or make the work smaller (fewer columns, a narrower source). "
                            f"{UNCHANGED}")
        return exc


def memory_setting(value: str | None) -> str | None:
    """The engine's memory limit for a ``memory_limit`` setting (a share of this machine's memory in
    bytes), or None for the engine's default."""
    if value is None:
        return None
    text = value.strip()
    if text.endswith("%"):
        import psutil  # lazy: only for a share of the machine's memory

        return f"{int(psutil.virtual_memory().total * float(text[:-1]) / 100)}B"
    return text.replace(" ", "")


def _shown(value) -> str:
    return f"{value:g} s" if isinstance(value, (int, float)) else str(value)
