"""Answers of point reads kept by the server while nothing they show has changed.

A served workspace is read far more often than it changes: a customer's profile is the same
answer until a run publishes, a job changes the warehouse (an erase, a refresh of segments, an
apply) or the event loader appends events that profiles show. :class:`Answers` keeps the
serialized answer of a point read (the JSON bytes sent) per key, and answers the next identical
read without the warehouse:

- the kept answers belong to one *state* of the workspace (its configuration version and its
  publications, :meth:`Workspace.cached_read`): after an apply or a publication, the next read
  finds none;
- within a state, each answer carries the *generation* it was read at; the owner moves the
  generation on when a job of the writer queue returns (before its end is recorded, so whoever
  learns that an erase or a refresh ended reads after it), and when the event loader appends
  events that a profile may show. An answer of an older generation is never given, and an answer
  read while the generation moved is not kept (it may hold what the change removed).

The answers are bounded (by count and by bytes, the least recently used dropped first; an
answer larger than the bound of bytes is given, never kept).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Hashable

#: answers kept at most, and their bytes at most (per server)
MAX_ANSWERS = 20_000
MAX_BYTES = 64 * 2**20


class _Kept:
    """The answers of one state of the workspace."""

    def __init__(self) -> None:
        self.entries: OrderedDict[Hashable, tuple[int, bytes]] = OrderedDict()
        self.bytes = 0


class Answers:
    """Serialized answers of point reads, per state of the workspace and generation (see the module)."""

    def __init__(self, max_answers: int = MAX_ANSWERS, max_bytes: int = MAX_BYTES):
        self.max_answers, self.max_bytes = max_answers, max_bytes
        self.generation = 0
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()

    def changed(self, *_args) -> None:
        """Something the answers may show changed: none kept so far is given again."""
        with self._lock:
            self.generation += 1

    def get(self, ws, key: Hashable, build: Callable[[], bytes], keep: Callable[[], bool] | None = None) -> bytes:
        """The answer kept under ``key`` for this state and generation, else ``build()`` (kept
        unless the generation moved while it was built, or ``keep()``, asked after it, is false:
        an answer that may change without a job or an event load). ``ws`` is a pinned reader of
        the workspace."""
        generation = self.generation  # before the state: a change between the two only drops an answer
        kept: _Kept = ws.cached_read(("answers",), _Kept)
        with self._lock:
            entry = kept.entries.get(key)
            if entry is not None and entry[0] == generation:
                kept.entries.move_to_end(key)
                self.hits += 1
                return entry[1]
            self.misses += 1
        body = build()
        if len(body) > self.max_bytes:  # kept, it would drop every other answer, then itself
            return body
        if keep is not None and not keep():
            return body
        with self._lock:
            if self.generation != generation:
                return body
            old = kept.entries.pop(key, None)
            if old is not None:
                kept.bytes -= len(old[1])
            kept.entries[key] = (generation, body)
            kept.bytes += len(body)
            while kept.entries and (len(kept.entries) > self.max_answers or kept.bytes > self.max_bytes):
                _key, (_gen, dropped) = kept.entries.popitem(last=False)
                kept.bytes -= len(dropped)
        return body
