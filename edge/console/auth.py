"""Who may use the console: users and roles, password hashes, sessions, CSRF tokens, login throttling.

Pure logic and the standard library (``hashlib.scrypt``, ``hmac.compare_digest``, ``secrets``); the
server (server.py) applies it to requests.

* Users live in a file (``console.users_file`` or a systemd credential), one a line::

      name:role:scrypt$16384$8$1$<salt, base64>$<hash, base64>

  written by ``edge-daemon console-user``. Roles: ``admin`` (lanes, capture, labels) and ``viewer``
  (everything read-only). Passwords are only ever stored as salted scrypt hashes and compared in
  constant time.
* Without a users file (only allowed on loopback) every local client is the ``admin`` "local".
* A login makes a session: a random cookie token and its own CSRF token, which every write must
  echo in the ``X-CSRF-Token`` header. Failed logins are throttled per client address.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from edge.config.schema import NAME_PATTERN
from edge.errors import ConfigError

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1  # ~16 MB and tens of ms per check: fine at login, costly to brute-force
MAX_FAILURES, FAILURE_WINDOW_S, LOCKOUT_S = 5, 300.0, 60.0


class Role(StrEnum):
    ADMIN = "admin"
    VIEWER = "viewer"


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    password_hash: str


@dataclass(frozen=True)
class Who:
    """The party behind a request: user name, role, and the CSRF token its writes must carry."""

    user: str
    role: Role
    csrf: str
    session: str | None = None  # the session token (None for the local user and for HTTP Basic)

    @property
    def admin(self) -> bool:
        return self.role == Role.ADMIN


def hash_password(password: str, salt: bytes | None = None) -> str:
    """A salted scrypt hash in the users-file format."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches ``encoded`` (constant-time comparison of the derived keys)."""
    try:
        scheme, n, r, p, salt_b64, digest_b64 = encoded.split("$")
        if scheme != "scrypt":
            return False
        salt, expected = base64.b64decode(salt_b64, validate=True), base64.b64decode(digest_b64, validate=True)
        actual = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=int(n), r=int(r), p=int(p), dklen=len(expected),
                                maxmem=128 * 1024 * 1024)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def _valid_hash(encoded: str) -> bool:
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != "scrypt" or not all(p.isdigit() for p in parts[1:4]):
        return False
    try:
        base64.b64decode(parts[4], validate=True)
        return len(base64.b64decode(parts[5], validate=True)) >= 16
    except ValueError:
        return False


def parse_users(text: str, source: str) -> dict[str, User]:
    """The users file; :class:`ConfigError` naming every bad line (never echoing a hash)."""
    name_ok = re.compile(NAME_PATTERN)
    users: dict[str, User] = {}
    problems = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) != 3:
            problems.append(f"{source}: line {number}: expected name:role:scrypt$..., as written by edge-daemon console-user")
            continue
        name, role, encoded = parts
        if not name_ok.match(name):
            problems.append(f"{source}: line {number}: user name {name!r}: expected 1-64 letters, digits, '_' or '-'")
        elif role not in tuple(Role):
            problems.append(f"{source}: line {number}: role {role!r}: expected admin or viewer")
        elif not _valid_hash(encoded):
            problems.append(f"{source}: line {number}: the password hash is not a scrypt hash (use edge-daemon console-user)")
        elif name in users:
            problems.append(f"{source}: line {number}: user {name!r} appears twice")
        else:
            users[name] = User(name, Role(role), encoded)
    if problems:
        raise ConfigError(problems)
    if not users:
        raise ConfigError([f"{source}: no users; add one with edge-daemon console-user {source} NAME --role admin"])
    return users


def set_user(text: str, name: str, role: Role, password: str) -> str:
    """The users file ``text`` with ``name`` added or replaced (other lines kept as they are)."""
    entry = f"{name}:{role}:{hash_password(password)}"
    lines = [line for line in text.splitlines() if line.split(":", 1)[0].strip() != name]
    return "\n".join([*lines, entry]) + "\n"


@dataclass
class _Session:
    who: Who
    expires: float


class Sessions:
    """Logged-in sessions (in memory: a restart logs everyone out) and failed-login throttling."""

    def __init__(self, lifetime_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.lifetime_s = lifetime_s
        self._clock = clock
        self._sessions: dict[str, _Session] = {}
        self._failures: dict[str, list[float]] = {}

    def create(self, user: User) -> Who:
        self._expire()
        token = secrets.token_urlsafe(32)
        who = Who(user.name, user.role, secrets.token_urlsafe(24), token)
        self._sessions[token] = _Session(who, self._clock() + self.lifetime_s)
        return who

    def lookup(self, token: str | None) -> Who | None:
        if not token:
            return None
        session = self._sessions.get(token)
        if session is None or session.expires <= self._clock():
            self._sessions.pop(token, None)
            return None
        return session.who

    def drop(self, token: str | None) -> None:
        if token:
            self._sessions.pop(token, None)

    def _expire(self) -> None:
        now = self._clock()
        for token in [t for t, s in self._sessions.items() if s.expires <= now]:
            del self._sessions[token]

    # --- throttling ---------------------------------------------------------------------------------

    def locked_out(self, client: str) -> bool:
        """Whether ``client`` failed too often lately (MAX_FAILURES in FAILURE_WINDOW_S locks it out for LOCKOUT_S)."""
        now = self._clock()
        recent = [t for t in self._failures.get(client, []) if now - t < FAILURE_WINDOW_S]
        if recent:
            self._failures[client] = recent
        else:
            self._failures.pop(client, None)
        return len(recent) >= MAX_FAILURES and now - recent[-1] < LOCKOUT_S

    def failed(self, client: str) -> None:
        self._failures.setdefault(client, []).append(self._clock())
        if len(self._failures) > 10_000:  # an address sweep must not grow this without bound
            self._failures.pop(next(iter(self._failures)))

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)


class Users:
    """The configured users and password checks (with a small cache so HTTP Basic is not an scrypt per request)."""

    def __init__(self, users: dict[str, User]) -> None:
        self.users = users
        self._key = secrets.token_bytes(32)
        self._verified: dict[bytes, str] = {}

    def check(self, name: str, password: str) -> User | None:
        """The user if ``password`` is theirs, else None (the same work whether the user exists or not)."""
        user = self.users.get(name)
        tag = hmac.new(self._key, f"{name}\0{password}".encode(), hashlib.sha256).digest()
        if user is not None and self._verified.get(tag) == user.password_hash:
            return user
        ok = verify_password(password, user.password_hash if user is not None else _dummy_hash())
        if user is None or not ok:
            return None
        if len(self._verified) > 64:
            self._verified.clear()
        self._verified[tag] = user.password_hash
        return user


@functools.cache
def _dummy_hash() -> str:
    """Checked against when the user does not exist, so a wrong name costs the same time as a wrong password."""
    return hash_password("not a password", salt=b"\0" * 16)
