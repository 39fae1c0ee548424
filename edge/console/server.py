"""The console's HTTP server: Tornado on its own thread and asyncio event loop, serving the pages and ``/api/``.

Why Tornado: a well-kept asyncio HTTP server (routing, cookies, streaming responses) with wheels
for x86-64 and aarch64 that costs about 4 MB to load; aiohttp, measured the same way beside the
daemon, cost 11.5 MB to import and 14-15.5 MB in all, too close to the 15 MB budget
(benchmarks/console.py, docs/console.md).

Nothing here runs in the frame loop. Reads come from :class:`edge.console.live.LiveState` (plain
references the loop leaves behind); JPEG encoding of the live frame happens on this thread at most
``console.live_fps`` times a second however many viewers ask; file I/O, password checks, lane saves
and exports run on a small pool (created on first use). A slow browser only ever slows its own
response: every stream awaits ``flush()`` before writing more.

Every request goes through :meth:`Handler.prepare`: the Host check (when anyone local may act as
admin), who is asking (session cookie, HTTP Basic, or the local admin when no users are
configured), login required, and for every write: same origin, the CSRF token and the admin role.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import http
import json
import logging
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import tornado.httpserver
import tornado.netutil
import tornado.web

from edge.config import Console as ConsoleSettings
from edge.config import EdgeConfig
from edge.config.schema import split_listen
from edge.console.auth import Role, Sessions, Users, Who
from edge.console.live import LiveState
from edge.console.rois import RoiEditor
from edge.evidence.capture import Capture
from edge.evidence.dataset import Dataset
from edge.evidence.store import Records
from edge.publishing import LinkStatus

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
PAGES = {"/": "live.html", "/lanes": "lanes.html", "/events": "events.html", "/dataset": "dataset.html", "/login": "login.html"}
PUBLIC = {"/login", "/api/login", "/static/console.css", "/static/login.js", "/favicon.ico"}
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                 ".png": "image/png", ".svg": "image/svg+xml"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
                               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
COOKIE = "cw_session"
LIVE_INTERVAL_S = 0.5
MAX_LIVE_CLIENTS = 8
METER_INTERVAL_S = 0.5
MAX_BODY_BYTES = 256 * 1024
_PROCESS_KEY = secrets.token_bytes(32)  # signs the local and HTTP Basic CSRF tokens; new at every start


@dataclass
class ConsoleParts:
    """Everything the console reads or changes, wired by start-up (edge.service.lifecycle)."""

    settings: ConsoleSettings
    live: LiveState
    identity: dict[str, str]
    model_sha256: Callable[[], str]  # the model deciding now (a promote or rollback switches it at run time)
    runtime: Callable[[], str]
    running_config: Callable[[], EdgeConfig]
    editor: RoiEditor
    link: Callable[[], LinkStatus] | None = None
    evidence: Records | None = None
    capture: Capture | None = None
    dataset: Dataset | None = None
    users: Users | None = None


class FrameCache:
    """The latest frame as JPEG, encoded at most ``fps`` times a second however many viewers ask."""

    def __init__(self, fps: float) -> None:
        self.interval = 1.0 / fps
        self.seq = -1
        self.jpeg = b""
        self.encoded_at = float("-inf")


def _token(label: str) -> str:
    return base64.urlsafe_b64encode(hmac.digest(_PROCESS_KEY, label.encode(), "sha256")).decode()[:32]


class ConsoleServer:
    """Runs the Tornado application on its own thread; :meth:`start` returns once it listens (or failed)."""

    def __init__(self, parts: ConsoleParts, announce: Callable[[str], None] | None = None) -> None:
        self.parts = parts
        self.announce = announce
        self.url: str | None = None
        self.error: str | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._pool: ThreadPoolExecutor | None = None
        self.sessions = Sessions(parts.settings.session_hours * 3600.0)
        self.local_csrf = _token("local")
        self.host, self.port = split_listen(parts.settings.listen)
        self.closing = False
        self.frames = FrameCache(parts.settings.live_fps)
        self.meters: tuple[int, float, dict[str, float]] = (-1, float("-inf"), {})
        self.metas: dict[str, dict[str, Any]] = {}
        self.live_clients = 0
        self.files = {p.name: (p.read_bytes(), CONTENT_TYPES.get(p.suffix, "application/octet-stream"))
                      for p in STATIC.iterdir() if p.is_file()}

    # --- lifecycle -----------------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> bool:
        self._thread = threading.Thread(target=self._run, name="console", daemon=True)
        self._thread.start()
        self._ready.wait(timeout)
        if self.error is not None or self.url is None:
            log.error("console: cannot listen on %s: %s; the daemon goes on without it", self.parts.settings.listen,
                      self.error or "timed out")
            return False
        log.info("console: %s", self.url)
        if self.announce is not None:
            self.announce(self.url)
        return True

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except Exception as exc:  # never let the console take the daemon down
            log.exception("console stopped: %s", exc)
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        from edge.console.api import handlers

        app = tornado.web.Application(handlers(self), default_handler_class=NotFound, default_handler_args={"server": self},
                                      log_function=_log_request, compress_response=False, xsrf_cookies=False)
        try:
            sockets = tornado.netutil.bind_sockets(self.port, self.host)
        except OSError as exc:
            self.error = exc.strerror or str(exc)
            return
        server = tornado.httpserver.HTTPServer(app, max_body_size=MAX_BODY_BYTES, idle_connection_timeout=60)
        server.add_sockets(sockets)
        self.port = sockets[0].getsockname()[1]
        shown = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{shown}:{self.port}/"
        self._ready.set()
        await self._stop.wait()
        self.closing = True
        server.stop()
        try:
            await asyncio.wait_for(server.close_all_connections(), 2.0)
        except TimeoutError:
            pass

    def close(self) -> None:
        self.closing = True
        if self._loop is not None and self._stop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(5.0)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    async def run_io(self, work: Callable[[], Any]) -> Any:
        """``work`` on the console's pool (files, scrypt, lane saves, exports), created on first use."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="console-io")
        return await asyncio.get_running_loop().run_in_executor(self._pool, work)

    # --- who is asking -------------------------------------------------------------------------------

    def allowed_hosts(self) -> set[str]:
        names = {self.host, "127.0.0.1", "localhost", "[::1]", *self.parts.settings.trusted_hosts}
        return {f"{n}:{self.port}" for n in names} | set(self.parts.settings.trusted_hosts)

    async def identify(self, handler: tornado.web.RequestHandler) -> Who | None:
        users = self.parts.users
        if users is None:
            return Who("local", Role.ADMIN, self.local_csrf)
        who = self.sessions.lookup(handler.get_cookie(COOKIE))
        if who is not None:
            return who
        header = handler.request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                name, _, password = base64.b64decode(header[6:], validate=True).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                return None
            client = handler.request.remote_ip or "?"
            if self.sessions.locked_out(client):
                return None
            user = await self.run_io(lambda: users.check(name, password))
            if user is None:
                self.sessions.failed(client)
                return None
            self.sessions.succeeded(client)
            return Who(user.name, user.role, _token(f"basic\0{user.name}"))
        return None


def _log_request(handler: tornado.web.RequestHandler) -> None:
    """Requests are not the daemon's news: only server errors reach the journal."""
    if handler.get_status() >= 500:
        log.warning("console: %s %s -> %d", handler.request.method, handler.request.path, handler.get_status())


class Handler(tornado.web.RequestHandler):
    """Base of every console handler: the request guard, security headers, JSON helpers."""

    server: ConsoleServer
    who: Who | None

    def initialize(self, server: ConsoleServer) -> None:
        self.server = server
        self.who = None

    def set_default_headers(self) -> None:
        for name, value in SECURITY_HEADERS.items():
            self.set_header(name, value)
        if self.request.path.startswith("/api/"):
            self.set_header("Cache-Control", "no-store")

    async def prepare(self) -> None:
        server, request = self.server, self.request
        if server.parts.users is None and request.host not in server.allowed_hosts():
            # Anyone local is admin here, so refuse names we do not know (DNS rebinding).
            return self.fail(421, f"unexpected Host {request.host!r}; add it to console.trusted_hosts if it is yours")
        self.who = await server.identify(self)
        path = request.path
        if self.who is None and path not in PUBLIC:
            if path.startswith("/api/"):
                return self.fail(401, "log in first (POST /api/login) or send HTTP Basic credentials")
            return self.redirect(f"/login?next={quote(path)}" if path in PAGES else "/login")
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            if not self._same_origin():
                return self.fail(403, "cross-origin write refused")
            if path != "/api/login":
                assert self.who is not None
                token = request.headers.get("X-CSRF-Token", "")
                if not hmac.compare_digest(token.encode(), self.who.csrf.encode()):
                    return self.fail(403, "missing or wrong CSRF token (X-CSRF-Token, from GET /api/session)")
                if path != "/api/logout" and not self.who.admin:
                    return self.fail(403, f"{self.who.user} is a viewer; this needs the admin role")
        return None

    def _same_origin(self) -> bool:
        headers = self.request.headers
        if headers.get("Sec-Fetch-Site") == "cross-site":
            return False
        origin = headers.get("Origin")
        if origin is None:
            return True  # not a browser (curl, a script): the CSRF token is the check
        netloc = urlsplit(origin).netloc
        return netloc == self.request.host or netloc in self.server.parts.settings.trusted_hosts

    def send_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data))

    def fail(self, status: int, message: str, **extra: Any) -> None:
        self.send_json({"error": message, **extra}, status)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Tornado's own errors (a bad request, a body over max_body_size, an exception) as JSON, without a traceback."""
        self.set_header("Content-Type", "application/json")
        try:
            reason = http.HTTPStatus(status_code).phrase
        except ValueError:
            reason = "error"
        self.finish(json.dumps({"error": reason}))


class NotFound(Handler):
    async def get(self) -> None:
        self.fail(404, "not found")

    post = get


class Page(Handler):
    async def get(self) -> None:
        body, kind = self.server.files[PAGES[self.request.path]]
        self.set_header("Content-Type", kind)
        self.set_header("Cache-Control", "no-cache")
        self.finish(body)


class Static(Handler):
    async def get(self, name: str) -> None:
        found = self.server.files.get(name)
        if found is None or name.endswith(".html"):
            return self.fail(404, "not found")
        body, kind = found
        self.set_header("Content-Type", kind)
        self.set_header("Cache-Control", "no-cache")
        self.finish(body)
        return None


class NoIcon(Handler):
    async def get(self) -> None:
        self.set_status(204)
        self.finish()


__all__ = ["ConsoleParts", "ConsoleServer", "Handler"]
