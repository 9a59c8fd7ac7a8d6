"""The event log without an erased customer's messages.

The log (:mod:`tessera.collect.log`) keeps each request's messages until its segment is loaded
and deleted. An erase (:mod:`tessera.privacy.erase`) calls :func:`scrub_log`: every record that
holds a message of the customer (a ``userId``, ``anonymousId`` or ``previousId`` among their
identifiers, or a ``traits.email`` / ``context.traits.email`` that is one of their e-mails), or a
refused message whose text holds one, is rewritten in place without it. The record keeps its
length, and so every offset stays valid: the shorter JSON is padded with spaces (JSON allows
them) and the record's CRC is written anew, header and payload in one write, then synced.
Should the shorter text not fit (a client's JSON re-encoded longer), the record keeps none of
its messages.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Callable

import orjson

from tessera.collect.log import HEADER, MAX_RECORD_BYTES, list_segments
from tessera.collect.loader import log_directory
from tessera.privacy.erase import Erasure, suppressed_event_values

_IDS = ("userId", "anonymousId", "previousId")


def _email(message: dict) -> str | None:
    for traits in (message.get("traits"), (message.get("context") or {}).get("traits")
                   if isinstance(message.get("context"), dict) else None):
        if isinstance(traits, dict) and isinstance(traits.get("email"), str):
            return traits["email"].strip().lower()
    return None


def _theirs(message, values: set[str]) -> bool:
    if not isinstance(message, dict):
        return False
    if any(isinstance(message.get(k), str) and message[k].strip() in values for k in _IDS):
        return True
    email = _email(message)
    return email is not None and email in values


def _scrub_payload(payload: bytes, values: set[str]) -> tuple[bytes | None, int]:
    """The payload without the customer's messages (None: nothing of theirs), and how many went."""
    data = orjson.loads(payload)
    messages = data.get("messages") or []
    kept = [m for m in messages if not _theirs(m, values)]
    rejects = data.get("rejects") or []
    kept_rejects = [r for r in rejects if not any(v in str(r.get("message") or "") for v in values)]
    removed = len(messages) - len(kept) + len(rejects) - len(kept_rejects)
    if not removed:
        return None, 0
    out = orjson.dumps({**data, "messages": kept, "rejects": kept_rejects})
    if len(out) > len(payload):
        out = orjson.dumps({**data, "messages": [], "rejects": []})
        removed = len(messages) + len(rejects)
    return out + b" " * (len(payload) - len(out)), removed


def scrub(directory: str | Path, values: set[str]) -> tuple[int, int]:
    """Remove the messages of ``values`` from every segment of the log; (messages, records) rewritten."""
    messages = records = 0
    if not values:
        return 0, 0
    needles = [v.encode() for v in values]
    for _base, path in list_segments(Path(directory)):
        data = path.read_bytes()
        if not any(n in data for n in needles):
            continue  # a fast look first: most segments never mention the customer
        fd = os.open(path, os.O_WRONLY)
        try:
            pos = 0
            while pos + HEADER.size <= len(data):
                length, crc = HEADER.unpack_from(data, pos)
                end = pos + HEADER.size + length
                if length > MAX_RECORD_BYTES or end > len(data):
                    break  # a torn tail: the writer cuts it at its next start
                payload = data[pos + HEADER.size:end]
                if any(n in payload for n in needles):
                    new, removed = _scrub_payload(payload, values)
                    if new is not None:
                        header = data[pos:pos + 4]
                        new_crc = zlib.crc32(new, zlib.crc32(header)).to_bytes(4, "little")
                        os.pwrite(fd, header + new_crc + new, pos)
                        messages += removed
                        records += 1
                pos = end
            os.fsync(fd)
        finally:
            os.close(fd)
    return messages, records


def scrub_log(workspace_path: str | Path) -> Callable[[Erasure], None]:
    """The erase hook of a workspace's event log (see :meth:`tessera.workspace.Workspace.erase`)."""
    directory = log_directory(workspace_path)

    def hook(job: Erasure) -> None:
        if directory.exists():
            n, records = scrub(directory, suppressed_event_values(job))
            job.note("event log (messages not loaded yet or kept in the last segment)", n, records=records)

    return hook
