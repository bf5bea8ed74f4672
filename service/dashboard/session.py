"""Dashboard sessions: a signed, expiring cookie naming an API key, CSRF tokens, login throttle.

The cookie never holds the key. It holds the key's id, a fingerprint of its stored hash (an HMAC
under the signing secret) and a random session id; each request loads the key by id and checks
that it is not revoked and that the fingerprint still matches, so revoking a key ends every
session made with it. CSRF tokens are an HMAC of the session id, checked on every POST.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy.orm import Session

from service.auth import service as auth
from service.auth.exceptions import NotAuthenticated
from service.dashboard.exceptions import SignInFormExpired, SignInThrottled
from service.models import ApiKey
from service.settings import Settings

COOKIE = "taskrec_session"
SECRET_FILE = "dashboard.secret"


class DashboardDisabled(Exception):
    """Outside development without ``TASKREC_DASHBOARD_SECRET``: no default secret is used."""


def signing_secret(settings: Settings) -> str:
    """The configured secret; in development one generated once under ``data_dir``."""
    if settings.dashboard_secret is not None:
        return settings.dashboard_secret.get_secret_value()
    if settings.env != "development":
        raise DashboardDisabled(
            "the dashboard is off: set TASKREC_DASHBOARD_SECRET (32+ characters) to sign its "
            f"sessions (env={settings.env!r} refuses a generated default)"
        )
    return _stored_secret(settings.data_dir / SECRET_FILE)


def _stored_secret(path: Path) -> str:
    if path.is_file():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    candidate = path.with_suffix(f".{secrets.token_hex(4)}")
    candidate.write_text(secrets.token_urlsafe(48))
    candidate.chmod(0o600)
    try:  # processes starting together: the first link wins and every one reads that
        os.link(candidate, path)
    except FileExistsError:
        pass
    finally:
        candidate.unlink(missing_ok=True)
    return path.read_text().strip()


@dataclass(frozen=True)
class SessionData:
    """What the cookie carries (signed): never the key itself."""

    key_id: int
    fingerprint: str
    sid: str


class Sessions:
    """Signs and reads session cookies and CSRF tokens with one secret."""

    def __init__(self, secret: str, ttl_s: int) -> None:
        self._secret = secret.encode()
        self._serializer = URLSafeTimedSerializer(secret, salt="taskrec.dashboard.session")
        self.ttl_s = ttl_s

    def fingerprint(self, api_key: ApiKey) -> str:
        """Binds a session to the key's stored hash without revealing (or storing) the key."""
        return hmac.new(self._secret, api_key.key_hash.encode(), hashlib.sha256).hexdigest()[:32]

    def issue(self, api_key: ApiKey) -> str:
        """A fresh cookie value for a key that just logged in."""
        data = [api_key.id, self.fingerprint(api_key), secrets.token_urlsafe(16)]
        return self._serializer.dumps(data)

    def read(self, cookie: str | None) -> SessionData | None:
        """The session in ``cookie``; None when missing, forged, malformed or expired."""
        if not cookie:
            return None
        try:
            key_id, fingerprint, sid = self._serializer.loads(cookie, max_age=self.ttl_s)
        except (BadSignature, SignatureExpired, ValueError, TypeError):
            return None
        if not isinstance(key_id, int) or not isinstance(fingerprint, str):
            return None
        return SessionData(key_id, fingerprint, str(sid))

    def matches(self, session: SessionData, api_key: ApiKey | None) -> bool:
        """Whether the session's key still exists, is active, and is the one it was made for."""
        if api_key is None or api_key.revoked_at is not None:
            return False
        return hmac.compare_digest(session.fingerprint, self.fingerprint(api_key))

    def csrf_token(self, session: SessionData) -> str:
        digest = hmac.new(self._secret, f"csrf:{session.sid}".encode(), hashlib.sha256)
        return digest.hexdigest()

    def csrf_valid(self, session: SessionData, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(session), token or "")


class LoginThrottle:
    """At most ``attempts`` failed logins per client address in a sliding ``window_s``; a
    throttled address is refused before its key is even checked, so guessing stays slow."""

    def __init__(self, attempts: int, window_s: float) -> None:
        self.attempts = attempts
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def wait_s(self, client: str) -> float:
        """0 if ``client`` may try now, else the seconds until its oldest failure expires."""
        if self.attempts <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            failures = self._recent(client, now)
            if len(failures) < self.attempts:
                return 0.0
            return max(0.0, failures[0] + self.window_s - now)

    def failed(self, client: str) -> None:
        with self._lock:
            self._recent(client, time.monotonic()).append(time.monotonic())

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)

    def _recent(self, client: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(client, deque())
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        return failures


def sign_in(
    session: Session, throttle: LoginThrottle, client: str, key: str, token: str, expected: str
) -> ApiKey:
    """The active key ``key`` names, checked as the API checks it; refused without looking at
    the key while ``client`` is throttled, or when the form's double-submitted ``token`` is not
    the one its cookie holds (``expected``: a login forged by another site)."""
    wait = throttle.wait_s(client)
    if wait > 0:
        raise SignInThrottled(wait)
    if not token or not hmac.compare_digest(token, expected):
        raise SignInFormExpired("the sign-in form expired; sign in again")
    try:
        api_key = auth.authenticate(session, key.strip())
    except NotAuthenticated as error:
        throttle.failed(client)
        raise NotAuthenticated(f"{error.message}: check the key") from None
    throttle.succeeded(client)
    return api_key
