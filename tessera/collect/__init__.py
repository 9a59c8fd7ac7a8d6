"""Event collection: a Segment/RudderStack-compatible ``/v1`` API in front of a durable log.

::

    client --POST /v1/batch--> router --check--> group commit --fsync--> events/log/*.log --200-->
                                                                              |
                         loader process (every second) --typed Arrow batch--> _tessera_events

Modules: :mod:`~tessera.collect.messages` (body, auth, message checks: the request path),
:mod:`~tessera.collect.log` (segment files, CRC records, group commit, recovery),
:mod:`~tessera.collect.keys` (write key -> http connection), :mod:`~tessera.collect.service`
(the server-side service), :mod:`~tessera.collect.router` (the routes),
:mod:`~tessera.collect.loader` (log -> warehouse), :mod:`~tessera.api.server` (uvicorn).

What the stock clients do (read from their source: segment-analytics-python 2.4.0 and
rudder-sdk-python 2.1.9), and what the server answers so that a client never resends an
accepted batch and never drops one that was not accepted:

- Both send ``POST {host}/v1/batch`` with ``{"batch": [...], "sentAt": "<ISO>"}`` (Segment adds
  ``writeKey``), ``Content-Type: application/json`` and the write key as the HTTP Basic user name
  with an empty password. Segment compresses only with ``gzip=True``; RudderStack compresses by
  default; both then send ``Content-Encoding: gzip``. Each message has ``type``, ``messageId``
  (a uuid4), ``timestamp`` (the client's clock), ``context.library``, and ``userId`` and/or
  ``anonymousId``; RudderStack adds ``channel: server`` and ``integrations: {"All": true}``.
- Success: Segment accepts any 2xx, RudderStack only exactly 200. The body is not read. The server
  answers ``200 {"success": true}`` and only after the request's record is synced to the log.
- Errors: both read ``code`` and ``message`` from a JSON error body (else report "unknown"): the
  server's error body has them (see :mod:`tessera.httperrors`).
- Retries: Segment retries network errors, 408, 410, 429, 460 and every 5xx but 501/505, and honours
  ``Retry-After`` (it then re-queues the batch); it drops the batch and calls ``on_error`` on 400,
  401, 403, 404, 413, 422 and other 4xx. RudderStack retries network errors, 429 and every 5xx, and
  gives up on every other 4xx. Hence: 4xx only for what resending cannot fix (bad JSON 400, bad key
  401, too large 413); a request the server could not make durable gets 503 (+ ``Retry-After``),
  which both retry. A retry of a request that was synced but whose answer was lost (timeout,
  connection cut) carries the same message ids, and is stored once (de-duplication by messageId).
- Limits on the client side: Segment drops messages over 32 KB and cuts batches at 475 KB;
  RudderStack drops messages over 4 MB and closes a batch once it passes 4 MB (so a batch is under
  8 MB). Both drop a batch refused with 413, so the server's limits (4 MB a message, 8 MB a
  request) take what either sends by default.
"""

# The names are read from the loader when first asked: the event typing process imports this
# package (``python -m tessera.collect.batches``) and needs none of the loader's imports.
def __getattr__(name: str):
    if name in __all__:
        from tessera.collect import loader

        return getattr(loader, name)
    raise AttributeError(f"module 'tessera.collect' has no attribute {name!r}")



__all__ = ["EVENTS_TABLE", "REJECTS_TABLE"]
