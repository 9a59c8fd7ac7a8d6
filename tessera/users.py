"""Users, roles, API tokens and login throttling of the server, on the metadata store.

Roles, weakest first (a role may do everything the ones before it may):

- ``viewer``: reads (status, profiles, events, jobs, schedules); no secrets, no exports;
- ``editor``: sources, datasets, segments, syncs, runs (jobs run, import, sync), identity decisions;
- ``admin``: users, tokens, connections, secrets, privacy, the configuration (``apply``), the audit log.

Passwords are hashed with Argon2 (pwdlib). An API token is ``tsk_`` followed by 32 random bytes;
only its SHA-256 is stored (a token of that entropy needs no slow hash), with the role it is scoped
to (never above its user's role), an optional expiry and a revocation time.

Examples:
    >>> users = Users(store)                                               # doctest: +SKIP
    >>> users.create("ada@example.com", "admin", "a long passphrase")      # doctest: +SKIP
    >>> token, row = users.create_token("ada@example.com", "viewer", expires="90d")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from tessera.errors import NotFoundError, UsageError
from tessera.store.models import ROLES

TOKEN_PREFIX = "tsk_"
MIN_PASSWORD = 10
_hasher = PasswordHash((Argon2Hasher(),))
_DUMMY_HASH = _hasher.hash("tessera-timing-equalizer")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


def role_rank(role: str) -> int:
    return ROLES.index(role)


def role_allows(role: str, needed: str) -> bool:
    """Whether ``role`` may do what ``needed`` may (admin > editor > viewer)."""
    return role in ROLES and role_rank(role) >= role_rank(needed)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    """Check a password; a missing hash costs the same time as a wrong password."""
    if not password_hash:
        _hasher.verify(password, _DUMMY_HASH)
        return False
    try:
        return _hasher.verify(password, password_hash)
    except Exception:  # noqa: BLE001 - an unreadable hash is a wrong password
        return False


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_expires(text: str | None, *, now: datetime | None = None) -> datetime | None:
    """``90d``, ``12h``, ``30m``, ``2w`` or an ISO date/time -> when it expires; ``never``/None -> None.

    Raises:
        UsageError: another text.
    """
    if text is None or str(text).strip().lower() in ("", "never"):
        return None
    now = now or datetime.now(timezone.utc)
    m = re.fullmatch(r"\s*(\d+)\s*([mhdw])\s*", str(text).lower())
    if m:
        n, unit = int(m.group(1)), m.group(2)
        if n <= 0:
            raise UsageError(f"--expires {text}: give a positive duration, e.g. 90d")
        return now + {"m": timedelta(minutes=n), "h": timedelta(hours=n), "d": timedelta(days=n),
                      "w": timedelta(weeks=n)}[unit]
    try:
        when = datetime.fromisoformat(str(text).strip())
    except ValueError:
        raise UsageError(f"--expires {text!r}: give a duration (90d, 12h, 30m, 2w), a date (2027-03-01) "
                         "or 'never'") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise UsageError(f"unknown role '{role}': use one of {', '.join(ROLES)}")


def _check_email(email: str) -> str:
    email = (email or "").strip().lower()
    if not _EMAIL.match(email) or len(email) > 320:
        raise UsageError(f"'{email}' is not an email address (name@example.com)")
    return email


def check_password(password: str) -> None:
    if len(password or "") < MIN_PASSWORD:
        raise UsageError(f"the password is too short: use at least {MIN_PASSWORD} characters")


def _aware(value: Any) -> datetime | None:
    if value is None:
        return None
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


GRANTS = ("export",)
"""Rights given to a user beyond its role: ``export`` (a viewer may export datasets)."""
GRANTS_SCOPE = "grants"


class Users:
    """Users and API tokens of one workspace's metadata store."""

    def __init__(self, store):
        self.store = store

    # ------------------------------------------------------------------ users
    def create(self, email: str, role: str, password: str | None, *, by: str | None = None) -> dict:
        """Add a user. Raises UsageError: bad email, role or password, or the email is taken."""
        email = _check_email(email)
        _check_role(role)
        if password is not None:
            check_password(password)
        try:
            user = self.store.add_user(email, role, hash_password(password) if password else None, created_by=by)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        self.store.audit("user.created", actor=by, target=email, details={"role": role})
        return user

    def remove(self, email: str, *, by: str | None = None) -> None:
        email = _check_email(email)
        user = self.store.get_user(email)
        if user is None:
            raise NotFoundError(f"no user '{email}': list them with tessera users list")
        if user["role"] == "admin" and self.store.count_admins() <= 1:
            raise UsageError(f"'{email}' is the last admin: add another admin before removing this one")
        self.store.delete_user(email)
        self.store.audit("user.removed", actor=by, target=email)

    def list(self) -> list[dict]:
        return self.store.list_users()

    def get(self, email: str) -> dict:
        user = self.store.get_user(_check_email(email))
        if user is None:
            raise NotFoundError(f"no user '{email}': list them with tessera users list")
        return user

    def grants(self, email: str) -> list[str]:
        """What a user may do beyond its role (``export`` lets a viewer export datasets)."""
        return list(self.store.get_state(GRANTS_SCOPE, _check_email(email)) or [])

    def set_grants(self, email: str, grants: list[str], *, by: str | None = None) -> list[str]:
        """Replace a user's grants (see :data:`GRANTS`); audited."""
        user = self.get(email)
        unknown = sorted(set(grants) - set(GRANTS))
        if unknown:
            raise UsageError(f"unknown grant(s) {', '.join(unknown)}: use {', '.join(GRANTS)}")
        kept = sorted(set(grants))
        self.store.set_state(GRANTS_SCOPE, user["email"], kept)
        self.store.audit("user.grants", actor=by, target=user["email"], details={"grants": kept})
        return kept

    def has_admin(self) -> bool:
        return self.store.count_admins() > 0

    def authenticate(self, email: str, password: str) -> dict | None:
        """The user when the password is right, else None (same cost either way)."""
        user = self.store.get_user((email or "").strip().lower(), with_hash=True)
        ok = verify_password(password or "", user.get("password_hash") if user else None)
        if not ok or user is None:
            return None
        user.pop("password_hash", None)
        return user

    # ------------------------------------------------------------------ tokens
    def create_token(self, email: str, role: str, *, expires: str | datetime | None = None,
                     note: str | None = None, by: str | None = None) -> tuple[str, dict]:
        """A new API token of a user, scoped to ``role`` (at most the user's own); the token is
        returned once and only its hash is kept."""
        _check_role(role)
        user = self.get(email)
        if not role_allows(user["role"], role):
            raise UsageError(f"a token of '{user['email']}' ({user['role']}) cannot have the role {role}: "
                             f"use {user['role']} or below")
        when = expires if isinstance(expires, datetime) else parse_expires(expires)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = self.store.add_token(user["id"], role, token_hash(token), token[:12], expires_at=when, note=note)
        self.store.audit("token.created", actor=by, target=f"token {row['id']}",
                         details={"user": user["email"], "role": role, "expires_at": row["expires_at"]})
        return token, row

    def revoke_token(self, token_id: int, *, by: str | None = None) -> dict:
        row = self.store.revoke_token(int(token_id))
        if row is None:
            raise NotFoundError(f"no token {token_id}: list them with tessera tokens list")
        self.store.audit("token.revoked", actor=by, target=f"token {token_id}", details={"user": row["user"]})
        return row

    def tokens(self, email: str | None = None) -> list[dict]:
        user_id = self.get(email)["id"] if email else None
        out = self.store.list_tokens(user_id)
        now = datetime.now(timezone.utc)
        for row in out:
            expires = _aware(row.get("expires_at"))
            row["state"] = ("revoked" if row.get("revoked_at") else
                            "expired" if expires is not None and expires <= now else "active")
        return out

    def check_token(self, token: str) -> dict | None:
        """The token's row (``user``, ``role``: the lower of the token's and its user's) when it is
        valid: known, not revoked, not expired; else None."""
        if not token.startswith(TOKEN_PREFIX):
            return None
        row = self.store.find_token(token_hash(token))
        if row is None or row.get("revoked_at"):
            return None
        expires = _aware(row.get("expires_at"))
        if expires is not None and expires <= datetime.now(timezone.utc):
            return None
        if role_rank(row["user_role"]) < role_rank(row["role"]):
            row["role"] = row["user_role"]  # a user moved down keeps no token above it
        last = _aware(row.get("last_used_at"))
        if last is None or datetime.now(timezone.utc) - last > timedelta(minutes=1):
            self.store.touch_token(row["id"])  # "last used", to the minute: not one write per request
        return row


class Throttle:
    """Login throttling, in memory: after ``free`` failures of an account or a client address, each
    further attempt waits a delay that doubles with every failure (capped at ``cap`` seconds).
    A success of the account clears its count."""

    def __init__(self, free: int = 5, base: float = 1.0, cap: float = 300.0, clock=time.monotonic):
        self.free, self.base, self.cap, self.clock = free, base, cap, clock
        self._fails: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def _delay(self, count: int) -> float:
        return 0.0 if count < self.free else min(self.cap, self.base * 2 ** (count - self.free))

    def retry_after(self, *keys: str) -> float:
        """Seconds to wait before another attempt is heard (0: go ahead)."""
        now = self.clock()
        with self._lock:
            wait = 0.0
            for key in keys:
                count, last = self._fails.get(key, (0, 0.0))
                wait = max(wait, last + self._delay(count) - now)
            return max(0.0, wait)

    def failed(self, *keys: str) -> None:
        now = self.clock()
        with self._lock:
            for key in keys:
                count, _ = self._fails.get(key, (0, 0.0))
                self._fails[key] = (count + 1, now)
            if len(self._fails) > 100_000:  # forget the oldest rather than grow without end
                for key in sorted(self._fails, key=lambda k: self._fails[k][1])[:50_000]:
                    del self._fails[key]

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._fails.pop(key, None)
