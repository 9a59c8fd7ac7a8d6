"""Webhook destinations (``type: webhook``): syncs POST their changes as JSON batches.

Request
-------
``POST <url>`` with ``Content-Type: application/json``, the connection's ``headers``, and::

    X-Tessera-Signature: sha256=<hex>   HMAC-SHA256 of the exact body bytes with the connection's
                                        ``secret`` (absent when the connection has no secret)
    X-Tessera-Timestamp: 1732269000     when the batch was first sent (Unix seconds; also in the
                                        body, so it is covered by the signature)
    X-Tessera-Batch: contacts_crm-42-3  the batch's id: the same on every retry of the batch

The body (at most ``batch_size`` records)::

    {
      "sync": "contacts_crm",          the sync's name
      "run": 42,                       the sync run (see tessera runs)
      "batch_id": "contacts_crm-42-3",
      "sent_at": 1732269000,
      "batch": [
        {"op": "insert", "key": "8f0c...", "fields": {"id": "8f0c...", "email": "a@b.com", "age": 41}},
        {"op": "update", "key": "77aa...", "fields": {...every destination field...}},
        {"op": "delete", "key": "1234...", "fields": {"id": "1234..."}}
      ]
    }

``key`` is the record's key as text; ``fields`` holds the destination fields (``fields`` of the
sync) with JSON types: text, numbers, booleans, null; dates and timestamps in ISO 8601
(``2024-05-01``, ``2024-05-01T10:00:00``); decimals as text, to keep their digits. A delete
carries its key field only. Delivery is at least once: a receiver should apply a record by its
key (an insert of a key it has is an update), and may use ``X-Tessera-Batch`` to skip a batch
it has already applied.

To verify a request, compute ``hmac.new(secret, body, sha256).hexdigest()`` over the raw body
and compare it with the header in constant time; reject old ``sent_at`` values to stop replays.

Response
--------
Any 2xx accepts the batch. A 2xx with a JSON body ``{"errors": [{"index": 3, "error": "..."}]}``
accepts it except the records at those positions of ``batch``: they are marked failed with that
error and sent again by the next run. 429 and 5xx answers, connection errors and timeouts are
retried ``max_retries`` times with exponential backoff and jitter (0.5 s, 1 s, 2 s... up to 30 s;
a ``Retry-After`` header is honoured, up to 2 minutes); then the batch's records are marked
failed with the status and body. Other 4xx answers are not retried: the batch's records fail
with the answer. 401, 403 and 404 stop the run (credentials or URL are wrong): the records not
sent are kept for the next run, as when the receiver cannot be reached at all.

:func:`check` (``tessera connections test``) POSTs a signed empty batch (``"batch": []``, with
``"check": true``): a receiver should answer it with 2xx.
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import random
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, Callable

import httpx
import orjson

from tessera.errors import ConnectionFailed

SIGNATURE_HEADER = "X-Tessera-Signature"
TIMESTAMP_HEADER = "X-Tessera-Timestamp"
BATCH_HEADER = "X-Tessera-Batch"
BACKOFF_BASE = 0.5  # seconds before the first retry; doubled each time
BACKOFF_MAX = 30.0
RETRY_AFTER_MAX = 120.0
BODY_IN_ERRORS = 300  # characters of a receiver's answer kept in an error


def sign(secret: str | bytes, body: bytes) -> str:
    """The ``X-Tessera-Signature`` value of ``body``: ``sha256=<hex HMAC-SHA256>``."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify(secret: str | bytes, body: bytes, signature: str | None) -> bool:
    """Whether ``signature`` (the header's value) signs ``body`` (for receivers written in Python)."""
    return bool(signature) and hmac.compare_digest(sign(secret, body), signature)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value)


def encode(payload: dict) -> bytes:
    """JSON bytes of a payload (dates ISO 8601, decimals as text, NaN as null)."""
    return orjson.dumps(payload, default=_json_default, option=orjson.OPT_SERIALIZE_NUMPY)


@dataclass
class BatchOutcome:
    """What the receiver did with a batch: ``error`` when it refused all of it (after the retries),
    else ``record_errors`` by position for the records it refused."""

    status: int | None
    error: str | None = None
    record_errors: dict[int, str] = field(default_factory=dict)
    attempts: int = 1


def _short(text: str) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= BODY_IN_ERRORS else text[: BODY_IN_ERRORS - 3] + "..."


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def backoff(attempt: int, retry_after: float | None = None) -> float:
    """Seconds to wait before retry number ``attempt + 1``: exponential with jitter, or Retry-After."""
    if retry_after is not None:
        return min(retry_after, RETRY_AFTER_MAX)
    delay = min(BACKOFF_MAX, BACKOFF_BASE * (2 ** attempt))
    return delay / 2 + random.uniform(0, delay / 2)


def _record_errors(response: httpx.Response, size: int) -> dict[int, str]:
    """``{"errors": [{"index": i, "error": "..."}]}`` of a 2xx answer (anything else: none)."""
    if not response.content or "json" not in response.headers.get("content-type", "json"):
        return {}
    try:
        data = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return {}
    errors = data.get("errors") if isinstance(data, dict) else None
    out: dict[int, str] = {}
    for item in errors if isinstance(errors, list) else []:
        if not isinstance(item, dict):
            continue
        index = item.get("index")
        if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < size:
            message = item.get("error")
            out[index] = _short(str(message)) if message is not None else "refused by the receiver"
    return out


class WebhookSender:
    """POSTs batches of records to a webhook connection (secrets revealed), with retries.

    ``post`` raises :class:`ConnectionFailed` when the receiver cannot take any batch (it cannot
    be reached after the retries, or answers 401, 403 or 404)."""

    def __init__(self, conn, *, sync: str, run: int | None, client: httpx.Client | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        self.conn = conn
        self.sync = sync
        self.run = run
        self.sleep = sleep
        self._own = client is None
        self.client = client or httpx.Client(timeout=conn.timeout, follow_redirects=False)

    def _headers(self, body: bytes, sent_at: int, batch_id: str) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "User-Agent": "tessera-sync",
                   TIMESTAMP_HEADER: str(sent_at), BATCH_HEADER: batch_id}
        headers.update(self.conn.headers or {})
        if self.conn.secret:
            headers[SIGNATURE_HEADER] = sign(self.conn.secret, body)
        return headers

    def body(self, records: list[dict], batch_id: str, sent_at: int, **extra: Any) -> bytes:
        payload = {"sync": self.sync, "run": self.run, "batch_id": batch_id, "sent_at": sent_at, **extra,
                   "batch": records}
        return encode(payload)

    def post(self, records: list[dict], *, batch_id: str) -> BatchOutcome:
        """Send one batch; retry connection errors, timeouts, 429 and 5xx."""
        sent_at = int(time.time())
        body = self.body(records, batch_id, sent_at)
        headers = self._headers(body, sent_at, batch_id)
        return self._post(body, headers, len(records))

    def _post(self, body: bytes, headers: dict[str, str], size: int) -> BatchOutcome:
        conn = self.conn
        failure: tuple[str, str] | None = None  # (reason, message) of the last attempt
        last_status: int | None = None
        for attempt in range(conn.max_retries + 1):
            wait: float | None = None
            try:
                response = self.client.post(conn.url, content=body, headers=headers)
            except httpx.TimeoutException as exc:
                failure = ("timeout", f"no answer within {conn.timeout:g} s ({type(exc).__name__})")
            except httpx.TransportError as exc:
                failure = ("unreachable", f"cannot reach {conn.url}: {exc or type(exc).__name__}")
            else:
                status = response.status_code
                last_status = status
                if 200 <= status < 300:
                    return BatchOutcome(status, record_errors=_record_errors(response, size), attempts=attempt + 1)
                text = _short(response.text)
                if status in (401, 403):
                    raise ConnectionFailed(
                        f"connection '{conn.name}': {conn.url} refused the request (HTTP {status}: {text}); check "
                        "the connection's headers (e.g. Authorization) and secret", reason="auth_refused")
                if status in (404, 410):
                    raise ConnectionFailed(f"connection '{conn.name}': {conn.url} does not exist (HTTP {status}); "
                                           "check the connection's url", reason="not_found")
                if status != 429 and status < 500:
                    return BatchOutcome(status, error=f"HTTP {status}: {text}", attempts=attempt + 1)
                failure = ("http", f"HTTP {status}: {text}")
                wait = _retry_after(response)
            if attempt < conn.max_retries:
                self.sleep(backoff(attempt, wait))
        attempts = conn.max_retries + 1
        tries = f"after {attempts} attempt{'s' if attempts > 1 else ''}"
        reason, message = failure or ("error", "no answer")
        if reason == "http":
            return BatchOutcome(last_status, error=f"{message} ({tries})", attempts=attempts)
        raise ConnectionFailed(f"connection '{conn.name}': {message} ({tries}); check that the receiver runs and "
                               "the url is right", reason=reason)

    def close(self) -> None:
        if self._own:
            self.client.close()


def check(conn, sources=()) -> list[str]:
    """POST a signed empty batch to the webhook; raise ConnectionFailed when it is refused."""
    sender = WebhookSender(conn, sync="", run=None)
    started = time.perf_counter()
    try:
        sent_at = int(time.time())
        body = sender.body([], "check", sent_at, check=True)
        headers = sender._headers(body, sent_at, "check")
        try:
            response = sender.client.post(conn.url, content=body, headers=headers)
        except httpx.TimeoutException:
            raise ConnectionFailed(f"connection '{conn.name}': {conn.url} did not answer within {conn.timeout:g} s; "
                                   "check that the receiver runs, or raise timeout", reason="timeout") from None
        except httpx.ConnectError as exc:
            text = str(exc)
            reason = "tls" if "SSL" in text or "certificate" in text.lower() else "unreachable"
            raise ConnectionFailed(f"connection '{conn.name}': cannot reach {conn.url} ({text}); check the url and "
                                   "that the receiver runs", reason=reason) from None
        except httpx.HTTPError as exc:
            raise ConnectionFailed(f"connection '{conn.name}': {conn.url}: {exc}", reason="unreachable") from None
    finally:
        sender.close()
    ms = (time.perf_counter() - started) * 1000
    status = response.status_code
    text = _short(response.text)
    if status in (401, 403):
        raise ConnectionFailed(f"connection '{conn.name}': {conn.url} refused the request (HTTP {status}: {text}); "
                               "check the connection's headers and secret", reason="auth_refused")
    if status in (404, 410):
        raise ConnectionFailed(f"connection '{conn.name}': {conn.url} does not exist (HTTP {status}); check the url",
                               reason="not_found")
    if status >= 500:
        raise ConnectionFailed(f"connection '{conn.name}': {conn.url} failed (HTTP {status}: {text})", reason="error")
    lines = [f"POST {conn.url}: HTTP {status} in {ms:.0f} ms"]
    if status >= 300:
        lines.append(f"the receiver answered HTTP {status} to an empty test batch ({text}): make sure it accepts "
                     "the batches described in docs (2xx)")
    lines.append("requests are signed (X-Tessera-Signature)" if conn.secret else
                 "no secret: requests are not signed; set secret so that the receiver can verify them")
    used = [s.name for s in sources]
    if used:
        lines.append(f"used by: {', '.join(used)}")
    return lines
