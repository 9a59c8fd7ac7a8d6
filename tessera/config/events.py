"""The columns of collected events, and the values that never identify anyone.

The collection API writes every accepted event with the columns :data:`EVENT_COLUMNS`; an event
source (:mod:`tessera.sources.events`) reads them and any JSON path inside the JSON columns
(``traits.first_name``). The configuration checks read these names here.
"""

from __future__ import annotations

import re

#: a key of a JSON path: letters, digits, '_' and '-' (a key of digits also reads an array item)
JSON_KEY = re.compile(r"^[A-Za-z0-9_-]+$")

#: column -> type of every event (the Segment/RudderStack message fields).
EVENT_COLUMNS: dict[str, str] = {
    "message_id": "string",
    "connection": "string",
    "type": "string",  # identify, track, page, screen, group, alias
    "event": "string",  # the track event's name ("Order Completed")
    "name": "string",  # the page or screen name
    "user_id": "string",
    "anonymous_id": "string",
    "previous_id": "string",
    "group_id": "string",
    "email": "string",  # traits.email or context.traits.email, lower-cased and trimmed
    "timestamp": "timestamp",  # when the event happened, corrected for the client's clock skew
    "original_timestamp": "timestamp",
    "sent_at": "timestamp",
    "received_at": "timestamp",
    "properties": "string",  # JSON text
    "traits": "string",
    "context": "string",
    "integrations": "string",
    "extra": "string",  # the message's other top-level fields (a page call's category...), as JSON text
}
JSON_COLUMNS = ("properties", "traits", "context", "integrations", "extra")
OPTIONAL_COLUMNS = ("extra",)  # events tables written before it read it as empty
ID_COLUMNS = ("user_id", "anonymous_id", "previous_id", "group_id", "email")


def is_json_path(name: str) -> bool:
    """``traits.first_name``, ``context.page.url``: a value inside a JSON column."""
    root, _, rest = name.partition(".")
    return root in JSON_COLUMNS and bool(rest) and all(JSON_KEY.match(k) for k in rest.split("."))


def column_problem(name: str) -> str | None:
    """Why ``name`` is not a column of an event source, or None when it is one."""
    if name in EVENT_COLUMNS or is_json_path(name):
        return None
    root, dot, rest = name.partition(".")
    if dot and root in JSON_COLUMNS:
        return (f"'{name}' is not a JSON path Tessera reads: keys are letters, digits, '_' and '-', "
                f"separated by dots (e.g. {root}.first_name)")
    return (f"'{name}' is not an event column: use one of {', '.join(EVENT_COLUMNS)}, or a value inside "
            f"{', '.join(JSON_COLUMNS)} such as traits.first_name, properties.revenue or context.page.url")
