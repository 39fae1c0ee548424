"""The console's ``/api/``: what the pages use and what tests and scripts call.

Read (any logged-in user)::

    GET /api/session                 who you are, your role and the CSRF token writes must carry
    GET /api/status                  per-ROI level and probabilities, health, fps, model, link, capture
    GET /api/frame.jpg               the latest frame (JPEG, at most console.live_fps fresh encodes a second)
    GET /api/history                 the last minute of each ROI's probability (per frame and smoothed)
    GET /api/live                    Server-Sent Events: status, new history points and aiming meters, twice a second
    GET /api/events                  recent level and health changes, newest first, with their snapshot frames
    GET /api/snapshots/<id>.jpg      a snapshot frame: <record> (the key frame) or <record>_<index>
    GET /api/rois                    the ROIs and whether the config file can be written
    GET /api/capture                 capture mode and its store
    GET /api/dataset                 captured crops with the model's and the operator's labels
    GET /api/captures/<record>/<roi>.jpg | frame.jpg
    GET /api/dataset/export.tar.gz   the training_set/ test_set/ archive (?test_fraction=0.2&include_unconfirmed=1)

Write (admin, same origin, ``X-CSRF-Token``)::

    POST /api/rois            {"rois": [{"name": ..., "box": [x, y, w, h], "flow": "across"}]}   (flow optional: kept as it
                              runs) 400 {"problems": [...]} when invalid
    POST /api/capture         {"enabled": true, "every_s": 10}
    POST /api/dataset/labels  {"labels": [{"id": "<record>/<roi>", "label": "alert" | "acceptable" | "unknown" | null}]}
    POST /api/login           {"user": ..., "password": ...}  (no token needed)   POST /api/logout
"""

from __future__ import annotations

import asyncio
import json
import re
import tempfile
import time
from typing import Any

import tornado.iostream

from edge.config.schema import NAME_PATTERN
from edge.console.live import Latest, link_json, meters
from edge.console.rois import RoiSaveError
from edge.console.server import (
    COOKIE,
    LIVE_INTERVAL_S,
    MAX_LIVE_CLIENTS,
    METER_INTERVAL_S,
    PAGES,
    ConsoleServer,
    Handler,
    NoIcon,
    Page,
    Static,
)
from edge.errors import ConfigError
from edge.evidence.capture import crop_file
from edge.evidence.dataset import DatasetExportError
from edge.evidence.images import encode_jpeg
from edge.evidence.store import RECORD_ID, parse_frame_name
from edge.framing import MAX_PITCHES, MIN_PITCHES

ROI_NAME = re.compile(NAME_PATTERN)
EVENTS_LIMIT = 200
CHUNK = 256 * 1024
FIRST_FRAME_WAIT_S = 5.0
JSON_HINT = {"rois": '{"rois": [{"name": ..., "box": [x, y, width, height], "flow": "across" or "down" (optional)}]}',
             "capture": '{"enabled": true|false, "every_s": 1-86400 (optional)}',
             "labels": '{"labels": [{"id": "<record>/<roi>", "label": "alert"|"acceptable"|"unknown"|null}]}'}


def belt_speed(latest: Latest | None, figures: dict[str, Any]) -> float | None:
    """The belt's speed in frame pixels per second when the pipeline measures it (belt.enabled), else None."""
    motion = getattr(latest.result, "motion", None) if latest is not None else None
    value = getattr(motion, "speed_px_s", None)
    if value is None:
        value = figures.get("belt_speed")
    try:
        return round(float(value), 2) if value is not None else None
    except (TypeError, ValueError):
        return None


def levels_json(levels: Any, latest: Latest | None) -> dict[str, dict[str, float]]:
    """The level bands the pipeline judges with (the config's, or the model card's), else the config's."""
    bands = dict(getattr(latest.result, "bands", {}) or {}) if latest is not None else {}
    if not bands and levels.warning is not None and levels.alert is not None:
        bands = {"warning": (levels.warning.enter, levels.warning.exit), "alert": (levels.alert.enter, levels.alert.exit)}
    return {name: {"enter": float(enter), "exit": float(exit_)} for name, (enter, exit_) in bands.items()}


def status(server: ConsoleServer) -> dict[str, Any]:
    parts, live = server.parts, server.parts.live
    latest, state, config = live.latest, live.state, parts.running_config()
    levels = dict(state.levels) if state is not None else {}
    rois = []
    pitches = live.figures.get("view_pitches")  # the framing check's, from the daemon's last telemetry
    pitches = pitches if isinstance(pitches, dict) else {}
    named = [(name, [box.x, box.y, box.width, box.height]) for name, box in latest.rois] if latest is not None \
        else [(r.name, list(r.box)) for r in config.rois]
    for i, (name, box) in enumerate(named):
        entry: dict[str, Any] = {"name": name, "box": box, "level": str(levels.get(name, "unknown")),
                                 "probability": None, "smoothed": None, "view_pitches": pitches.get(name)}
        if latest is not None and i < len(latest.result.probabilities):
            entry["probability"] = round(float(latest.result.probabilities[i]), 4)
            entry["smoothed"] = round(float(latest.result.smoothed.get(name, 0.0)), 4)
        rois.append(entry)
    frame = None
    if latest is not None:
        frame = {"seq": latest.frame.seq, "width": int(latest.frame.pixels.shape[1]), "height": int(latest.frame.pixels.shape[0]),
                 "age_s": round(max(0.0, time.monotonic() - latest.frame.monotonic), 3)}
    lv, capture = config.levels, parts.capture
    return {
        "device": parts.identity, "model_sha256": parts.model_sha256(), "runtime": parts.runtime(), "time": time.time(),
        "summary": str(state.summary) if state is not None else "unknown",
        "health": str(state.health) if state is not None else "ok",
        "health_reason": latest.result.health_reason if latest is not None else "",
        "fps": live.fps(), "frame": frame, "rois": rois,
        "levels": levels_json(lv, latest),
        "belt": str(state.belt) if state is not None else "unknown",
        "belt_speed": belt_speed(latest, live.figures),
        "framing": {"min": MIN_PITCHES, "max": MAX_PITCHES},
        "link": link_json(parts.link() if parts.link is not None else None),
        "capture": {"enabled": capture.enabled, "every_s": capture.every_s, "taken": capture.taken} if capture else None,
    }


def history(server: ConsoleServer, since: float = float("-inf")) -> dict[str, dict[str, list[float]]]:
    by_roi: dict[str, dict[str, list[float]]] = {}
    for sample in server.parts.live.samples_since(since):
        for name, p, s in zip(sample.rois, sample.probabilities, sample.smoothed, strict=False):
            series = by_roi.setdefault(name, {"t": [], "p": [], "s": []})
            series["t"].append(round(sample.wall, 2))
            series["p"].append(round(p, 4))
            series["s"].append(round(s, 4))
    return by_roi


def current_meters(server: ConsoleServer) -> dict[str, float]:
    latest = server.parts.live.latest
    if latest is None:
        return {}
    seq, at, values = server.meters
    if latest.frame.seq != seq and time.monotonic() - at >= METER_INTERVAL_S:
        values = meters(latest.frame.pixels)  # ~1 ms, twice a second while someone watches: on this thread, like the JPEG
        server.meters = (latest.frame.seq, time.monotonic(), values)
    return values


def record_meta(server: ConsoleServer, record: str) -> dict[str, Any] | None:
    evidence = server.parts.evidence
    meta = server.metas.get(record)
    if meta is None and evidence is not None and record in evidence:
        meta = evidence.meta(record)
        if meta is not None:
            if len(server.metas) > 2 * EVENTS_LIMIT:
                server.metas.clear()
            server.metas[record] = meta
    return meta


def events(server: ConsoleServer) -> list[dict[str, Any]]:
    """The changes this run saw, plus those kept on disk from before, newest first, with their frames."""
    listed: dict[str, dict[str, Any]] = {}
    unnamed: list[dict[str, Any]] = []
    for change in list(server.parts.live.changes):
        if change.get("snapshot"):
            listed[change["snapshot"]] = dict(change)
        else:
            unnamed.append(dict(change))
    if server.parts.evidence is not None:
        for record in server.parts.evidence.ids()[:EVENTS_LIMIT]:
            if record not in listed:
                meta = record_meta(server, record)
                if meta is not None:
                    listed[record] = {k: v for k, v in meta.items() if k not in ("frames", "key", "id")} | {"snapshot": record}
    out = []
    for entry in [*listed.values(), *unnamed]:
        snapshot = entry.get("snapshot")
        meta = record_meta(server, snapshot) if snapshot else None
        entry["frames"] = [] if meta is None else [
            {"name": f"{snapshot}_{f['index']}", "url": f"/api/snapshots/{snapshot}_{f['index']}.jpg", "offset_s": f["offset_s"],
             "key": f["index"] == meta["key"]} for f in meta["frames"]]
        if meta is not None:
            entry["url"] = f"/api/snapshots/{snapshot}.jpg"
        out.append(entry)
    out.sort(key=lambda e: float(e.get("wall", 0.0)), reverse=True)
    return out[:EVENTS_LIMIT]


def capture_json(server: ConsoleServer) -> dict[str, Any]:
    capture = server.parts.capture
    if capture is None:
        return {"available": False}
    return {"available": True, "enabled": capture.enabled, "every_s": capture.every_s, "taken": capture.taken,
            "records": len(capture.records.ids()), "bytes": capture.records.total_bytes(),
            "budget_bytes": capture.records.budget_bytes, "folder": str(capture.records.root)}


def body_json(handler: Handler) -> Any:
    """The request's JSON body, or None when it is not JSON."""
    try:
        return json.loads(handler.request.body or b"null")
    except (ValueError, UnicodeDecodeError):
        return None


# --- session -----------------------------------------------------------------------------------------


class Session(Handler):
    async def get(self) -> None:
        assert self.who is not None
        self.send_json({"user": self.who.user, "role": str(self.who.role), "csrf": self.who.csrf,
                        "auth": "password" if self.server.parts.users is not None else "none"})


class Login(Handler):
    async def post(self) -> None:
        server, users = self.server, self.server.parts.users
        if users is None:
            return self.send_json({"user": "local", "role": "admin", "csrf": server.local_csrf, "auth": "none"})
        client = self.request.remote_ip or "?"
        if server.sessions.locked_out(client):
            return self.fail(429, "too many failed logins; wait a minute")
        body = body_json(self)
        if not isinstance(body, dict) or not isinstance(body.get("user"), str) or not isinstance(body.get("password"), str):
            return self.fail(400, "expected {\"user\": ..., \"password\": ...}")
        name, password = body["user"], body["password"]
        user = await server.run_io(lambda: users.check(name, password))
        if user is None:
            server.sessions.failed(client)
            return self.fail(401, "wrong user name or password")
        server.sessions.succeeded(client)
        who = server.sessions.create(user)
        self.set_cookie(COOKIE, who.session or "", path="/", httponly=True, samesite="Strict",
                        secure=self.request.protocol == "https", max_age=int(server.parts.settings.session_hours * 3600))
        self.send_json({"user": who.user, "role": str(who.role), "csrf": who.csrf, "auth": "password"})
        return None


class Logout(Handler):
    async def post(self) -> None:
        self.server.sessions.drop(self.get_cookie(COOKIE))
        self.clear_cookie(COOKIE, path="/")
        self.send_json({"ok": True})


# --- live ----------------------------------------------------------------------------------------------


class Status(Handler):
    async def get(self) -> None:
        self.send_json(status(self.server))


class FrameJpeg(Handler):
    async def get(self) -> None:
        live, cache = self.server.parts.live, self.server.frames
        waited = 0.0
        while live.latest is None and waited < FIRST_FRAME_WAIT_S:  # just started: the camera's first frame is on its way
            await asyncio.sleep(0.05)
            waited += 0.05
        latest = live.latest
        if latest is None:
            return self.fail(503, "no frame from the camera yet")
        if latest.frame.seq != cache.seq and time.monotonic() - cache.encoded_at >= cache.interval:
            # On the console's own thread (a few ms at most live_fps times a second): a pool thread would
            # cost a malloc arena of its own, megabytes of resident memory on a Pi, for no gain in latency.
            cache.jpeg = encode_jpeg(latest.frame.pixels, 80)
            cache.seq, cache.encoded_at = latest.frame.seq, time.monotonic()
        self.set_header("Content-Type", "image/jpeg")
        self.set_header("X-Frame-Seq", str(cache.seq))
        self.finish(cache.jpeg)
        return None


class History(Handler):
    async def get(self) -> None:
        self.send_json({"rois": history(self.server)})


class Live(Handler):
    """Server-Sent Events: each message waits until the previous one reached the socket (a slow browser slows only itself)."""

    async def get(self) -> None:
        server = self.server
        if server.live_clients >= MAX_LIVE_CLIENTS:
            return self.fail(503, f"at most {MAX_LIVE_CLIENTS} live viewers")
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("X-Accel-Buffering", "no")
        server.live_clients += 1
        since = float("-inf")
        try:
            while not server.closing:
                points = history(server, since)
                for series in points.values():
                    since = max(since, series["t"][-1])
                message = {"status": status(server), "points": points, "meters": current_meters(server)}
                self.write(f"data: {json.dumps(message)}\n\n")
                await self.flush()
                await asyncio.sleep(LIVE_INTERVAL_S)
        except tornado.iostream.StreamClosedError:
            pass
        finally:
            server.live_clients -= 1
        return None


# --- events and snapshots -------------------------------------------------------------------------------


class Events(Handler):
    async def get(self) -> None:
        server = self.server
        self.send_json({"events": await server.run_io(lambda: events(server))})


class Snapshot(Handler):
    async def get(self, name: str) -> None:
        server = self.server
        evidence = server.parts.evidence
        parsed = parse_frame_name(name.removesuffix(".jpg")) if name.endswith(".jpg") else None
        if parsed is None or evidence is None:
            return self.fail(404, "no such snapshot")
        record, index = parsed
        meta = await server.run_io(lambda: record_meta(server, record))
        path = evidence.file(record, f"{meta['key'] if index is None else index}.jpg") if meta is not None else None
        if path is None:
            return self.fail(404, "no such snapshot")
        data = await server.run_io(path.read_bytes)
        self.set_header("Content-Type", "image/jpeg")
        self.set_header("Cache-Control", "private, max-age=86400")  # a record never changes
        self.finish(data)
        return None


# --- lanes ----------------------------------------------------------------------------------------------


class Rois(Handler):
    async def get(self) -> None:
        parts = self.server.parts
        latest = parts.live.latest
        frame = ({"width": int(latest.frame.pixels.shape[1]), "height": int(latest.frame.pixels.shape[0])}
                 if latest is not None else None)
        self.send_json({"rois": [{"name": r.name, "box": list(r.box), "flow": r.flow} for r in parts.running_config().rois], "frame": frame,
                        "config_file": str(parts.editor.config_path) if parts.editor.config_path else None,
                        "cannot_save": parts.editor.writable()})

    async def post(self) -> None:
        editor = self.server.parts.editor
        body = body_json(self)
        if not isinstance(body, dict) or "rois" not in body:
            return self.fail(400, f"expected JSON: {JSON_HINT['rois']}")
        try:
            config = await self.server.run_io(lambda: editor.save(body["rois"]))
        except ConfigError as exc:
            return self.send_json({"error": "invalid lanes", "problems": exc.problems}, 400)
        except RoiSaveError as exc:
            return self.fail(409, str(exc))
        self.send_json({"rois": [{"name": r.name, "box": list(r.box), "flow": r.flow} for r in config.rois],
                        "saved_to": str(editor.config_path)})
        return None


# --- capture and dataset ----------------------------------------------------------------------------------


class CaptureMode(Handler):
    async def get(self) -> None:
        server = self.server
        self.send_json(await server.run_io(lambda: capture_json(server)))

    async def post(self) -> None:
        server = self.server
        capture = server.parts.capture
        if capture is None:
            return self.fail(404, "capture is not available")
        body = body_json(self)
        enabled = body.get("enabled") if isinstance(body, dict) else None
        every = body.get("every_s") if isinstance(body, dict) else None
        bad_every = every is not None and (isinstance(every, bool) or not isinstance(every, (int, float))
                                           or not 1.0 <= float(every) <= 86400.0)
        if not isinstance(enabled, bool) or bad_every:
            return self.fail(400, f"expected {JSON_HINT['capture']}")
        capture.switch(enabled, float(every) if every is not None else None)
        self.send_json(await server.run_io(lambda: capture_json(server)))
        return None


class DatasetItems(Handler):
    async def get(self) -> None:
        dataset = self.server.parts.dataset
        if dataset is None:
            return self.fail(404, "no dataset (capture is not available)")
        only = self.get_query_argument("filter", "") == "unlabelled"
        try:
            offset, limit = int(self.get_query_argument("offset", "0")), min(1000, int(self.get_query_argument("limit", "200")))
        except ValueError:
            return self.fail(400, "offset and limit must be integers")

        def listing() -> dict[str, Any]:
            items = dataset.items(only_unlabelled=only)
            return {"items": [i.as_json() for i in items[offset:offset + limit]], "total": len(items), "counts": dataset.counts()}

        self.send_json(await self.server.run_io(listing))
        return None


class Labels(Handler):
    async def post(self) -> None:
        dataset = self.server.parts.dataset
        if dataset is None:
            return self.fail(404, "no dataset (capture is not available)")
        body = body_json(self)
        entries = body.get("labels") if isinstance(body, dict) else None
        if not isinstance(entries, list) or not all(isinstance(e, dict) and "id" in e and "label" in e for e in entries):
            return self.fail(400, f"expected {JSON_HINT['labels']}")
        wanted: dict[tuple[str, str], str | None] = {}
        for entry in entries:
            record, _, roi = str(entry["id"]).partition("/")
            if not RECORD_ID.match(record) or not ROI_NAME.match(roi):
                return self.fail(400, f"id {entry['id']!r}: expected <record>/<roi>")
            wanted[(record, roi)] = entry["label"]
        try:
            changed = await self.server.run_io(lambda: dataset.set_labels(wanted))
        except KeyError as exc:
            return self.fail(404, f"no such item {exc.args[0]}")
        except ValueError as exc:
            return self.fail(400, str(exc))
        self.send_json({"changed": changed, "counts": await self.server.run_io(dataset.counts)})
        return None


class CaptureFile(Handler):
    async def get(self, record: str, name: str) -> None:
        capture = self.server.parts.capture
        stem = name.removesuffix(".jpg")
        if capture is None or not RECORD_ID.match(record) or not name.endswith(".jpg") or \
                (stem != "frame" and not ROI_NAME.match(stem)):
            return self.fail(404, "no such capture")
        path = capture.records.file(record, "frame.jpg" if stem == "frame" else crop_file(stem))
        if path is None:
            return self.fail(404, "no such capture")
        data = await self.server.run_io(path.read_bytes)
        self.set_header("Content-Type", "image/jpeg")
        self.set_header("Cache-Control", "private, max-age=86400")
        self.finish(data)
        return None


class Export(Handler):
    async def get(self) -> None:
        server, dataset = self.server, self.server.parts.dataset
        if dataset is None:
            return self.fail(404, "no dataset (capture is not available)")
        try:
            fraction = float(self.get_query_argument("test_fraction", "0.2"))
        except ValueError:
            return self.fail(400, "test_fraction must be a number between 0 and 1")
        unconfirmed = self.get_query_argument("include_unconfirmed", "0") in ("1", "true", "yes")
        with tempfile.TemporaryFile() as spool:
            try:
                summary = await server.run_io(lambda: dataset.export(spool, fraction, unconfirmed))
            except DatasetExportError as exc:
                return self.fail(409, str(exc))
            size = spool.tell()
            spool.seek(0)
            stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
            self.set_header("Content-Type", "application/gzip")
            self.set_header("Content-Length", str(size))
            self.set_header("Content-Disposition",
                            f'attachment; filename="conveyor-dataset-{server.parts.identity["name"]}-{stamp}.tar.gz"')
            self.set_header("X-Dataset-Counts", json.dumps(summary.counts, separators=(",", ":")))
            while True:
                chunk = await server.run_io(lambda: spool.read(CHUNK))
                if not chunk:
                    break
                self.write(chunk)
                await self.flush()
        self.finish()
        return None


def handlers(server: ConsoleServer) -> list[tuple[str, type[Handler], dict[str, Any]]]:
    """The routes: pages, static files and the API."""
    args = {"server": server}
    routes: list[tuple[str, type[Handler]]] = [(path, Page) for path in PAGES]
    routes += [
        (r"/static/([A-Za-z0-9_.-]+)", Static), ("/favicon.ico", NoIcon),
        ("/api/session", Session), ("/api/login", Login), ("/api/logout", Logout),
        ("/api/status", Status), ("/api/frame.jpg", FrameJpeg), ("/api/history", History), ("/api/live", Live),
        ("/api/events", Events), (r"/api/snapshots/([^/]+)", Snapshot),
        ("/api/rois", Rois), ("/api/capture", CaptureMode),
        ("/api/dataset", DatasetItems), ("/api/dataset/labels", Labels), ("/api/dataset/export.tar.gz", Export),
        (r"/api/captures/([^/]+)/([^/]+)", CaptureFile),
    ]
    return [(pattern, handler, args) for pattern, handler in routes]
