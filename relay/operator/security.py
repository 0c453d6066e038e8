"""The guard in front of the operator API (``/api/``) and the console (``/console/``).

Off unless ``RELAY_ADMIN_TOKEN`` is set: then every request under those prefixes passes
here first, while ``/healthz``, ``/readyz`` and ``/metrics`` stay as they are (probes and
scrapes carry no token). The rules, in the order they are applied:

1. An address with more than ``FAILURE_LIMIT`` failures in ``FAILURE_WINDOW`` seconds is
   answered ``429`` for ``FAILURE_WINDOW`` seconds, whatever it sends (the right token too).
2. A non-GET request whose ``Sec-Fetch-Site`` is present and not ``same-origin`` is ``403``:
   a browser tells us the request was made by another site.
3. The API takes ``Authorization: Bearer <token>`` (never a query string), compared in
   constant time, or the console's session cookie; a missing or wrong one is ``401`` JSON.
4. The console asks for the token once (``POST /console/login``) and keeps a signed session
   cookie; every state-changing request made with that cookie carries the session's CSRF
   token (a form field ``csrf`` or the ``X-CSRF-Token`` header), else ``403``.

Sessions are stateless: the cookie holds a random id and its expiry, signed with a key
derived from the token. Every process and replica that has the token accepts them (no
session store to share), and changing the token ends them all.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import hdrs, web
from pydantic import SecretStr

log = structlog.get_logger("relay.operator")

PROTECTED_PREFIXES = ("/api/", "/console/")
LOGIN_PATH = "/console/login"
STATIC_PREFIX = "/console/static/"
SESSION_COOKIE = "relay_session"
SESSION_SECONDS = 8 * 3600
FAILURE_LIMIT = 10
FAILURE_WINDOW = 60.0
TRACKED_ADDRESSES = 10_000  # beyond it the oldest address is forgotten: memory stays bounded
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


SECURITY: web.AppKey[OperatorSecurity] = web.AppKey("operator_security")
SESSION: web.RequestKey[Session] = web.RequestKey("operator_session")


def protected(path: str) -> bool:
    """Whether ``path`` is part of the operator surface (``/console`` itself too)."""
    return path.startswith(PROTECTED_PREFIXES) or path in ("/api", "/console")


class FailureLimiter:
    """Failed attempts per address in a sliding window, and the addresses shut out."""

    def __init__(
        self,
        limit: int = FAILURE_LIMIT,
        window: float = FAILURE_WINDOW,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_addresses: int = TRACKED_ADDRESSES,
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._max_addresses = max_addresses
        self._failures: dict[str, deque[float]] = {}
        self._blocked_until: dict[str, float] = {}

    def blocked_for(self, address: str) -> float:
        """Seconds ``address`` is still shut out for; 0 when it is not."""
        until = self._blocked_until.get(address)
        if until is None:
            return 0.0
        remaining = until - self._clock()
        if remaining <= 0:
            del self._blocked_until[address]
            return 0.0
        return remaining

    def failed(self, address: str) -> bool:
        """Count one failure; True when it shuts ``address`` out."""
        now = self._clock()
        failures = self._failures.pop(address, None) or deque()
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        failures.append(now)
        self._failures[address] = failures  # re-inserted: the dict's order is by recency
        while len(self._failures) > self._max_addresses:
            del self._failures[next(iter(self._failures))]
        if len(failures) > self.limit:
            self._failures.pop(address)
            self._blocked_until[address] = now + self.window
            if len(self._blocked_until) > self._max_addresses:
                del self._blocked_until[next(iter(self._blocked_until))]
            return True
        return False


@dataclass(frozen=True)
class Session:
    """One console login: its id, when it ends (Unix time) and its CSRF token."""

    id: str
    expires: int
    csrf: str


class Sessions:
    """Signed, expiring session cookies and their CSRF tokens, keyed off the token."""

    def __init__(
        self,
        token: SecretStr,
        *,
        lifetime: int = SESSION_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = hmac.digest(
            token.get_secret_value().encode(), b"relay console session v1", "sha256"
        )
        self.lifetime = lifetime
        self._clock = clock

    def issue(self) -> tuple[str, Session]:
        """A new session and the cookie value that carries it."""
        session_id = secrets.token_urlsafe(18)
        expires = int(self._clock()) + self.lifetime
        payload = f"{session_id}.{expires}"
        return f"{payload}.{self._sign(payload)}", self._session(session_id, expires)

    def read(self, cookie: str | None) -> Session | None:
        """The session a cookie carries, or None when it is absent, forged or expired."""
        if not cookie or cookie.count(".") != 2:
            return None
        session_id, expires_text, signature = cookie.split(".")
        if not hmac.compare_digest(self._sign(f"{session_id}.{expires_text}"), signature):
            return None
        if not expires_text.isdigit() or int(expires_text) <= self._clock():
            return None
        return self._session(session_id, int(expires_text))

    def _session(self, session_id: str, expires: int) -> Session:
        csrf = self._sign(f"csrf.{session_id}")
        return Session(session_id, expires, csrf)

    def _sign(self, payload: str) -> str:
        digest = hmac.digest(self._key, payload.encode(), "sha256")
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class OperatorSecurity:
    """The token, the failure limiter and the sessions; :meth:`install` puts them in an app."""

    def __init__(
        self,
        token: SecretStr,
        *,
        limiter: FailureLimiter | None = None,
        sessions: Sessions | None = None,
    ) -> None:
        self._digest = hashlib.sha256(token.get_secret_value().encode()).digest()
        self.limiter = limiter or FailureLimiter()
        self.sessions = sessions or Sessions(token)

    def __repr__(self) -> str:
        return "OperatorSecurity(token=**********)"

    def install(self, app: web.Application) -> None:
        """Guard ``/api/`` and ``/console/`` of ``app`` and set the headers of their answers;
        the routes find this object as ``app[SECURITY]`` (the console's login needs it)."""
        app[SECURITY] = self
        app.middlewares.append(self.middleware)
        app.on_response_prepare.append(security_headers)

    def token_matches(self, presented: str) -> bool:
        """Constant time, whatever the lengths: digests of equal size are compared."""
        return hmac.compare_digest(hashlib.sha256(presented.encode()).digest(), self._digest)

    def failed(self, request: web.Request, reason: str) -> None:
        """Count a failed attempt from the request's address (and log it, without the token)."""
        address = client_address(request)
        shut_out = self.limiter.failed(address)
        log.warning("operator_auth_failed", reason=reason, remote=address, path=request.path)
        if shut_out:
            log.warning("operator_address_blocked", remote=address, seconds=self.limiter.window)

    async def login_accepted(self, request: web.Request) -> bool:
        """Whether the login form's ``token`` field is the token (a failure counts)."""
        presented = (await request.post()).get("token")
        if isinstance(presented, str) and self.token_matches(presented.strip()):
            log.info("audit", action="login", remote=client_address(request))
            return True
        self.failed(request, "wrong_token" if presented else "no_token")
        return False

    def login_cookie(self, response: web.StreamResponse, request: web.Request) -> Session:
        """Start a session: its cookie on ``response``."""
        value, session = self.sessions.issue()
        response.set_cookie(
            SESSION_COOKIE,
            value,
            max_age=self.sessions.lifetime,
            path="/",
            httponly=True,
            samesite="Strict",
            secure=request.secure,
        )
        return session

    @staticmethod
    def logout_cookie(response: web.StreamResponse) -> None:
        response.del_cookie(SESSION_COOKIE, path="/")

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not protected(request.path):
            return await handler(request)
        refused: web.StreamResponse | None = self._refusal(request)
        if refused is None:
            refused = await self._authenticate(request)
        if refused is not None:
            return refused
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if request.path.startswith("/api") and exc.status >= 400:
                return error(exc.status, exc.reason.lower().replace(" ", "_"))
            raise

    def _refusal(self, request: web.Request) -> web.Response | None:
        """Rules 1 and 2: before any token is looked at."""
        if (seconds := self.limiter.blocked_for(client_address(request))) > 0:
            answer = error(429, "too_many_failures")
            answer.headers[hdrs.RETRY_AFTER] = str(max(1, round(seconds)))
            return answer
        site = request.headers.get("Sec-Fetch-Site")
        if request.method not in SAFE_METHODS and site is not None and site != "same-origin":
            log.warning("operator_cross_site_refused", remote=client_address(request), site=site)
            return error(403, "cross_site_request")
        return None

    async def _authenticate(self, request: web.Request) -> web.Response | None:
        """Rules 3 and 4; the session (if any) is left on the request for the pages."""
        path = request.path
        if path.startswith(STATIC_PREFIX) or path == LOGIN_PATH:
            return None  # the login form and its stylesheet: nothing to protect
        bearer = _bearer(request)
        if bearer is not None and path.startswith("/api"):
            if self.token_matches(bearer):
                return None
            self.failed(request, "wrong_token")
            return unauthorized()
        session = self.sessions.read(request.cookies.get(SESSION_COOKIE))
        if session is None:
            if path.startswith("/api") or request.method not in SAFE_METHODS:
                self.failed(request, "no_token")
                return unauthorized()
            raise web.HTTPSeeOther(LOGIN_PATH)
        request[SESSION] = session
        if request.method not in SAFE_METHODS and not await _carries_csrf(request, session):
            log.warning("operator_csrf_refused", remote=client_address(request), path=path)
            return error(403, "csrf_token_missing_or_wrong")
        return None


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get(hdrs.AUTHORIZATION)
    if header is None:
        return None
    scheme, _, credentials = header.partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else ""


async def _carries_csrf(request: web.Request, session: Session) -> bool:
    presented = request.headers.get(CSRF_HEADER)
    if presented is None and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        field = (await request.post()).get(CSRF_FIELD)  # cached: the handler reads it again
        presented = field if isinstance(field, str) else None
    return presented is not None and hmac.compare_digest(presented, session.csrf)


def client_address(request: web.Request) -> str:
    """The peer's address: the admin port is reached directly (or by port-forward), never
    through the public proxies, so no forwarded header is believed."""
    return request.remote or "unknown"


def session_of(request: web.Request) -> Session | None:
    """The console session the guard found on ``request`` (None for Bearer requests)."""
    return request.get(SESSION)


def error(status: int, code: str, **details: Any) -> web.Response:
    return web.json_response({"error": code, **details}, status=status)


def unauthorized() -> web.Response:
    answer = error(401, "unauthorized")
    answer.headers[hdrs.WWW_AUTHENTICATE] = 'Bearer realm="relay"'
    return answer


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer under the operator prefixes: never cached, never sniffed; pages framed
    by nobody and running only the package's own scripts."""
    if not protected(request.path):
        return
    response.headers[hdrs.CACHE_CONTROL] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    if response.content_type == "text/html" or not request.path.startswith("/api"):
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Frame-Options"] = "DENY"
