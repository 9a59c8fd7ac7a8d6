"""Numbers read from the environment, checked with a message that names the variable and the fix."""
from __future__ import annotations

import os

from tessera.errors import UsageError


def rows_threshold(variable: str, default: int, zero_means: str) -> int:
    """A number of rows set by the environment ``variable`` (``default`` when it is unset or empty).
    0 or less gives 0, whose meaning ``zero_means`` the error message states."""
    text = os.environ.get(variable, "").strip()
    try:
        rows = int(text) if text else default
    except ValueError:
        raise UsageError(f"environment variable {variable}: '{text}' is not a number of rows; set a whole "
                         f"number (0: {zero_means}) or unset it") from None
    return rows if rows > 0 else 0
