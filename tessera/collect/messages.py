"""The request path of the collection API: body decoding, authentication, message checks.

Everything here runs for every request, so it does the least that keeps the log clean: the
body is decompressed under a size cap, parsed once with orjson, each message gets a handful
of type checks (no schema library), and the accepted messages are serialized once into the
log record. Typed columns are extracted later, off the request path, by
:mod:`tessera.collect.loader`.

Limits (checked after decompression), set so that the stock clients' default batches are
accepted: Segment's clients keep messages under 32 KB and batches under 475 KB, but
rudder-sdk-python allows a message of 4 MB and closes a batch only once it has passed 4 MB, so its
largest batch is just under 8 MB (a refused batch is dropped by the client, never resent):

- a message (one call) is at most :data:`MAX_MESSAGE_BYTES` (4 MB) of JSON;
- a request is at most :data:`MAX_BATCH_BYTES` (8 MB) of JSON;
- a compressed body is decompressed as a stream and refused as soon as its output passes the
  request limit, so a decompression bomb costs at most the limit in memory.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

MAX_MESSAGE_BYTES = 4 * 1024 * 1024
MAX_BATCH_BYTES = 8 * 1024 * 1024
# The raw (maybe compressed) body is capped too: it cannot usefully be larger than the JSON.
MAX_RAW_BYTES = MAX_BATCH_BYTES + 64 * 1024

TYPES = ("identify", "track", "page", "screen", "group", "alias")
_TYPE_SET = frozenset(TYPES)
_ID_FIELDS = ("userId", "anonymousId", "previousId", "groupId", "messageId")
_ID_TYPES = (str, int, float)
_OBJECT_FIELDS = ("properties", "traits", "context", "integrations")
_TIME_FIELDS = ("timestamp", "originalTimestamp", "sentAt")
_GZIP_MAGIC = b"\x1f\x8b"
_MAX_ID_LENGTH = 256
_MAX_REJECT_SAMPLE = 2048  # bytes of a refused message kept with its reason


class RequestError(Exception):
    """A whole request is refused: ``status`` is the HTTP status, ``code`` the error code."""

    def __init__(self, status: int, code: str, message: str, errors: list[str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors or [message]


# --------------------------------------------------------------------------- body


class BodyReader:
    """Accumulates a request body, decompressing gzip on the fly, and refuses it past ``limit``.

    gzip is recognized by ``Content-Encoding: gzip`` or by its magic bytes, whatever the
    ``Content-Type`` says (some clients compress without saying so).
    """

    def __init__(self, content_encoding: str | None, *, limit: int = MAX_BATCH_BYTES,
                 raw_limit: int = MAX_RAW_BYTES):
        encoding = (content_encoding or "").strip().lower()
        if encoding not in ("", "identity", "gzip", "x-gzip", "deflate"):
            raise RequestError(415, "unsupported_encoding",
                               f"Content-Encoding '{content_encoding}' is not supported: send gzip or no encoding")
        self.limit = limit
        self.raw_limit = raw_limit
        self._declared = encoding
        self._decoder: Any = None  # a zlib decompressobj once compression is known
        self._raw_size = 0
        self._head = b""  # the first bytes, until compression can be detected
        self._decided = False
        self._out: list[bytes] = []
        self._size = 0

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        self._raw_size += len(chunk)
        if self._raw_size > self.raw_limit:
            raise _too_large(f"the request body is larger than {self.raw_limit // 1024} KB")
        if not self._decided:
            self._head += chunk
            if len(self._head) < 2:
                return
            chunk, self._head = self._head, b""
            self._decided = True
            if self._declared in ("gzip", "x-gzip") or chunk[:2] == _GZIP_MAGIC:
                self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
            elif self._declared == "deflate":
                self._decoder = zlib.decompressobj()
        if self._decoder is None:
            self._append(chunk)
        else:
            self._inflate(chunk)

    def _inflate(self, data: bytes) -> None:
        try:
            while data:
                # Never more than the limit (plus one byte to notice the overflow) at a time.
                out = self._decoder.decompress(data, self.limit - self._size + 1)
                self._append(out)
                data = self._decoder.unconsumed_tail
                if self._decoder.eof and self._decoder.unused_data:
                    # Another gzip member follows (concatenated gzip streams are valid gzip).
                    data = self._decoder.unused_data
                    self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        except zlib.error as exc:
            raise RequestError(400, "bad_gzip", f"the body is not valid gzip data ({exc}): compress it with gzip "
                                                "or send plain JSON") from None

    def _append(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self.limit:
            raise _too_large(f"the request is larger than {self.limit // 1024} KB of JSON once decompressed")
        self._out.append(data)

    def finish(self) -> bytes:
        if not self._decided:
            self._decided = True
            if self._head:
                self._append(self._head)
        elif self._decoder is not None:
            self._append(self._decoder.flush())
            if not self._decoder.eof:
                raise RequestError(400, "bad_gzip", "the gzip body is truncated: send the whole compressed body")
        return b"".join(self._out)


def _too_large(what: str) -> RequestError:
    return RequestError(413, "payload_too_large",
                        f"{what}: send at most {MAX_BATCH_BYTES // 1024} KB per request and "
                        f"{MAX_MESSAGE_BYTES // 1024} KB per message (split the batch)")


def parse_json(body: bytes) -> dict:
    """The body as a JSON object, or a 400 naming the problem."""
    if not body.strip():
        raise RequestError(400, "empty_body", "the request body is empty: send a JSON object")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(400, "invalid_json", f"the body is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise RequestError(400, "invalid_json", f"the body must be a JSON object, not a {type(data).__name__}")
    return data


def basic_auth_user(header: str | None) -> str | None:
    """The user name of an ``Authorization: Basic`` header (where clients put the write key)."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return decoded.partition(":")[0] or None


# --------------------------------------------------------------------------- messages


@dataclass
class Checked:
    """The outcome of checking the messages of one request."""

    accepted: list[bytes] = field(default_factory=list)  # each message as compact JSON
    message_ids: list[str] = field(default_factory=list)
    rejects: list[dict] = field(default_factory=list)  # {"index", "reason", "message"}
    duplicates: int = 0  # accepted recently already: answered without logging again
    too_large: int = 0  # refused for their size


def check_messages(messages: list, kind: str, *, connection: str, recent=None,
                   defaults: dict | None = None) -> Checked:
    """Check each message of a request; keep the valid ones, record why the others were refused.

    Args:
        messages: the messages of the request (the ``batch`` list, or the body of a single call).
        kind: ``batch`` (each message says its type) or the type of a single call.
        connection: the http connection the write key belongs to (part of generated message ids).
        recent: message ids accepted recently (``in`` is all it needs); those are not logged again.
        defaults: batch-level ``context``/``integrations`` that messages without their own inherit.
    """
    out = Checked()
    for index, message in enumerate(messages):
        if kind != "batch" and isinstance(message, dict):
            message["type"] = kind
        reason = message_problem(message)
        if reason is None:
            message.pop("writeKey", None)  # never keep a key in the log
        if reason is None and defaults:
            for key, value in defaults.items():
                if message.get(key) is None:
                    message[key] = value
        if reason is None:
            message_id = message.get("messageId")
            if message_id is None or message_id == "":
                message_id = message["messageId"] = _generated_id(connection, message)
            elif not isinstance(message_id, str):
                message_id = message["messageId"] = str(message_id)
            if recent is not None and message_id in recent:
                out.duplicates += 1
                continue
            data = orjson.dumps(message)
            if len(data) > MAX_MESSAGE_BYTES:
                reason = (f"the message is {len(data) // 1024} KB, more than {MAX_MESSAGE_BYTES // 1024} KB: "
                          "send large properties elsewhere")
                out.too_large += 1
            else:
                out.accepted.append(data)
                out.message_ids.append(message_id)
                continue
        out.rejects.append({"index": index, "reason": reason, "message": _sample(message)})
    return out


def message_problem(message: Any) -> str | None:
    """Why a message cannot be accepted, or None when it can (the Segment spec's required fields)."""
    if type(message) is not dict:
        return f"a message must be a JSON object, not {_json_type(message)}"
    get = message.get
    kind = get("type")
    if kind not in _TYPE_SET:
        return f"type {kind!r} is not one of {', '.join(TYPES)}"
    for name in _ID_FIELDS:
        value = get(name)
        if value is not None:
            if type(value) not in _ID_TYPES:  # type(), not isinstance: a boolean is not an id
                return f"{name} must be a string or a number, not {_json_type(value)}"
            if type(value) is str and len(value) > _MAX_ID_LENGTH:
                return f"{name} is longer than {_MAX_ID_LENGTH} characters"
    if kind == "alias":
        if _blank(get("userId")) or _blank(get("previousId")):
            return "an alias needs both userId and previousId"
    elif _blank(get("userId")) and _blank(get("anonymousId")):
        return f"a {kind} needs a userId or an anonymousId"
    if kind == "track":
        event = get("event")
        if type(event) is not str or _blank(event):
            return "a track needs an event name (event)"
    elif kind == "group" and _blank(get("groupId")):
        return "a group needs a groupId"
    for name in _OBJECT_FIELDS:
        value = get(name)
        if value is not None and type(value) is not dict:
            return f"{name} must be a JSON object, not {_json_type(value)}"
    for name in _TIME_FIELDS:
        value = get(name)
        if value is not None and parse_time(value) is None:
            return f"{name} {value!r} is not an ISO 8601 date-time (e.g. 2024-05-01T12:30:00.000Z)"
    return None


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 date-time, or None when it is not one."""
    if type(value) is not str or len(value) > 64:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _blank(value: Any) -> bool:
    return value is None or value == "" or (type(value) is str and value.isspace())


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def _generated_id(connection: str, message: dict) -> str:
    # Deterministic, so a retried request without message ids is still stored once.
    digest = hashlib.blake2b(orjson.dumps(message, option=orjson.OPT_SORT_KEYS), digest_size=16,
                             key=connection.encode()[:64])
    return "tessera-" + digest.hexdigest()


def _sample(message: Any) -> str:
    try:
        text = orjson.dumps(message)
    except TypeError:
        text = repr(message).encode()
    return text[:_MAX_REJECT_SAMPLE].decode(errors="replace")


def build_record(connection: str, received_us: int, sent_at: Any, checked: Checked) -> bytes:
    """One log record: the accepted messages as they are (JSON fragments) and the refused ones."""
    return orjson.dumps({
        "v": 1,
        "connection": connection,
        "received_at": received_us,
        "sent_at": sent_at if isinstance(sent_at, str) else None,
        "messages": [orjson.Fragment(m) for m in checked.accepted],
        "rejects": checked.rejects,
    })
