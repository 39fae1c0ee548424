"""The console's HTTP server: aiohttp on its own thread and event loop, serving pages and ``/api/``.

Nothing here runs in the frame loop. Reads come from :class:`edge.console.live.LiveState` (plain
references the loop leaves behind); JPEG encoding, file I/O, password checks, ROI saves and
exports run on a small thread pool so the event loop stays responsive; a slow browser only ever
slows its own response (``write`` waits for that socket to drain).

Every request goes through :func:`guard`: Host check (when anyone local may act as admin), who is
asking (session cookie, HTTP Basic, or the local admin when no users are configured), login
required, and for every write: same-origin, the CSRF token, and the admin role.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import secrets
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

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
_PROCESS_KEY = secrets.token_bytes(32)  # signs the local and HTTP Basic CSRF tokens; new at every start


@dataclass
class ConsoleParts:
    """Everything the console reads or changes, wired by start-up (edge.service.lifecycle)."""

    settings: ConsoleSettings
    live: LiveState
    identity: dict[str, str]
    model_sha256: str
    runtime: str
    running_config: Callable[[], EdgeConfig]
    editor: RoiEditor
    link: Callable[[], LinkStatus] | None = None
    evidence: Records | None = None
    capture: Capture | None = None
    dataset: Dataset | None = None
    users: Users | None = None


class _FrameCache:
    """The latest frame as JPEG, encoded at most ``fps`` times a second however many viewers ask."""

    def __init__(self, fps: float) -> None:
        self.interval = 1.0 / fps
        self.seq = -1
        self.jpeg = b""
        self.encoded_at = float("-inf")
        self.lock = asyncio.Lock()


class ConsoleServer:
    """Runs the aiohttp application on its own thread; :meth:`start` returns once it listens (or failed)."""

    def __init__(self, parts: ConsoleParts, announce: Callable[[str], None] | None = None) -> None:
        self.parts = parts
        self.announce = announce
        self.url: str | None = None
        self.error: str | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="console-io")
        self.sessions = Sessions(parts.settings.session_hours * 3600.0)
        self.local_csrf = base64.urlsafe_b64encode(hmac.digest(_PROCESS_KEY, b"local", "sha256")).decode()[:32]
        host, port = split_listen(parts.settings.listen)
        self.host, self.port = host, port
        self.closing = False
        self.frames = _FrameCache(parts.settings.live_fps)
        self._meters: tuple[int, float, dict[str, float]] = (-1, float("-inf"), {})
        self._metas: dict[str, dict[str, Any]] = {}
        self.live_clients = 0

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
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        self._stop = asyncio.Event()
        runner = web.AppRunner(build_app(self), access_log=None, handle_signals=False, shutdown_timeout=1.0)
        try:
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
            loop.run_until_complete(site.start())
            server = getattr(site, "_server", None)
            sockets = getattr(server, "sockets", None) or []
            port = sockets[0].getsockname()[1] if sockets else self.port
            shown = f"[{self.host}]" if ":" in self.host else self.host
            self.url = f"http://{shown}:{port}/"
            self.port = port
        except OSError as exc:
            self.error = exc.strerror or str(exc)
            self._ready.set()
            loop.run_until_complete(runner.cleanup())
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_until_complete(self._stop.wait())
        finally:
            self.closing = True
            loop.run_until_complete(runner.cleanup())
            loop.close()

    def close(self) -> None:
        self.closing = True
        if self._loop is not None and self._stop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(5.0)
        self.pool.shutdown(wait=False, cancel_futures=True)

    async def run_io(self, work: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, work)

    # --- who is asking -------------------------------------------------------------------------------

    def allowed_hosts(self) -> set[str]:
        port = self.port
        names = {self.host, "127.0.0.1", "localhost", "[::1]", *self.parts.settings.trusted_hosts}
        return {f"{n}:{port}" for n in names} | set(self.parts.settings.trusted_hosts)

    async def identify(self, request: web.Request) -> Who | None:
        users = self.parts.users
        if users is None:
            return Who("local", Role.ADMIN, self.local_csrf)
        who = self.sessions.lookup(request.cookies.get(COOKIE))
        if who is not None:
            return who
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                name, _, password = base64.b64decode(header[6:], validate=True).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                return None
            client = request.remote or "?"
            if self.sessions.locked_out(client):
                return None
            user = await self.run_io(lambda: users.check(name, password))
            if user is None:
                self.sessions.failed(client)
                return None
            self.sessions.succeeded(client)
            token = hmac.digest(_PROCESS_KEY, f"basic\0{user.name}".encode(), "sha256")
            return Who(user.name, user.role, base64.urlsafe_b64encode(token).decode()[:32])
        return None



def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data), status=status, content_type="application/json")


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return _json({"error": message, **extra}, status)


def _same_origin(request: web.Request, server: ConsoleServer) -> bool:
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        return False
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser (curl, a script): the CSRF token is the check
    netloc = urlsplit(origin).netloc
    return netloc == request.host or netloc in server.parts.settings.trusted_hosts


def build_app(server: ConsoleServer) -> web.Application:
    parts = server.parts

    @web.middleware
    async def guard(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        if parts.users is None and request.host not in server.allowed_hosts():
            # Anyone local is admin here, so refuse names we do not know (DNS rebinding).
            return _error(421, f"unexpected Host {request.host!r}; add it to console.trusted_hosts if it is yours")
        who = await server.identify(request)
        request["who"] = who
        path = request.path
        if who is None and path not in PUBLIC:
            if path.startswith("/api/"):
                return _error(401, "log in first (POST /api/login) or send HTTP Basic credentials")
            raise web.HTTPFound(f"/login?next={path}" if path in PAGES else "/login")
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            if not _same_origin(request, server):
                return _error(403, "cross-origin write refused")
            if path != "/api/login":
                assert who is not None
                token = request.headers.get("X-CSRF-Token", "")
                if not hmac.compare_digest(token.encode(), who.csrf.encode()):
                    return _error(403, "missing or wrong CSRF token (X-CSRF-Token, from GET /api/session)")
                if path != "/api/logout" and not who.admin:
                    return _error(403, f"{who.user} is a viewer; this needs the admin role")
        response = await handler(request)
        response.headers.update(SECURITY_HEADERS)
        if path.startswith("/api/") and "Cache-Control" not in response.headers:
            response.headers["Cache-Control"] = "no-store"
        return response

    app = web.Application(middlewares=[guard], client_max_size=256 * 1024)
    files = {p.name: (p.read_bytes(), CONTENT_TYPES.get(p.suffix, "application/octet-stream"))
             for p in STATIC.iterdir() if p.is_file()}

    async def page(request: web.Request) -> web.Response:
        body, kind = files[PAGES[request.path]]
        return web.Response(body=body, content_type=kind.split(";")[0], charset="utf-8",
                            headers={"Cache-Control": "no-cache"})

    async def static(request: web.Request) -> web.Response:
        found = files.get(request.match_info["name"])
        if found is None or request.match_info["name"].endswith(".html"):
            raise web.HTTPNotFound()
        body, kind = found
        return web.Response(body=body, headers={"Content-Type": kind, "Cache-Control": "no-cache"})

    async def no_icon(request: web.Request) -> web.Response:
        return web.Response(status=204)

    for route in PAGES:
        app.router.add_get(route, page)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/favicon.ico", no_icon)

    from edge.console import api

    api.add_routes(app, server)
    return app


__all__ = ["ConsoleParts", "ConsoleServer", "build_app"]
