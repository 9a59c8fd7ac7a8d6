"""Paths written in the configuration (file patterns, archive folders, sync folders and file
names) are relative to their connection's folder and never leave it.

The same rule is checked twice: when the configuration is applied (:func:`relative_path_problem`,
so the user hears of it before any run) and by the folder that reads or writes (so a
configuration that reached the store some other way cannot escape either).
"""

from __future__ import annotations

import string

FILE_NAME_FIELDS = ("sync", "run", "timestamp", "format")


def relative_path_problem(value: str, *, what: str = "path") -> str | None:
    """Why ``value`` is not a path inside the connection's folder, or None when it is.

    Refused: an absolute path (``/etc``, ``C:\\data``, ``~/x``) and any ``..`` segment.
    """
    text = value.strip().replace("\\", "/")
    if text.startswith("/") or text.startswith("~") or (len(text) > 1 and text[1] == ":" and text[0].isalpha()):
        return (f"'{value}' is an absolute {what}; {what}s are relative to the connection's folder "
                "(change the connection's path to reach another folder)")
    if ".." in text.split("/"):
        return (f"'{value}' goes up with '..'; a {what} stays inside the connection's folder "
                "(change the connection's path to reach another folder)")
    if "\x00" in text:
        return f"'{value!r}' contains a NUL character"
    return None


def file_name_problem(template: str) -> str | None:
    """Why a sync's ``file_name`` template is refused: a path outside the folder, or a placeholder
    other than {sync}, {run}, {timestamp} and {format} (no attributes, indexes or format specs)."""
    problem = relative_path_problem(template, what="file name")
    if problem:
        return problem
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        return f"'{template}' is not a valid template ({exc}); write literal braces as '{{{{' and '}}}}'"
    for _literal, field, spec, conversion in parts:
        if field is None:
            continue
        if field not in FILE_NAME_FIELDS or spec or conversion:
            return (f"'{template}' uses the placeholder '{{{field}{'!' + conversion if conversion else ''}"
                    f"{':' + spec if spec else ''}}}'; use only {{sync}}, {{run}}, {{timestamp}} and {{format}}")
    if not template.strip() or template.rstrip().endswith("/"):
        return f"'{template}' gives an empty file name"
    return None
