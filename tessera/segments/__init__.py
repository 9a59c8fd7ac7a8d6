"""Segments: condition trees on a dataset, compiled to engine expressions, with live counts,
membership recomputed at each run and an append-only history of entries and exits."""

from tessera.segments.compile import (
           Compiled,
           Context,
           compile_segment,
           count_steps,
           describe,
)
from tessera.segments.membership import LOG, MEMBERS, SIZES, event_segments, refresh

__all__ = [
           "LOG",
           "MEMBERS",
           "SIZES",
           "Compiled",
           "Context",
           "compile_segment",
           "count_steps",
           "describe",
           "event_segments",
           "refresh",
]
