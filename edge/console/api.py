"""The console's ``/api/``: what the pages use and what tests and scripts call.

Read (any logged-in user)::

    GET /api/session                 who you are, your role and the CSRF token writes must carry
    GET /api/status                  per-ROI level and probabilities, health, fps, model, link, capture
    GET /api/frame.jpg               the latest frame (JPEG, at most console.live_fps fresh encodes a second)
    GET /api/history                 the last minute of each ROI's probability (raw and smoothed)
    GET /api/live                    Server-Sent Events: status, new history points and aiming meters, twice a second
    GET /api/events                  recent level and health changes, newest first, with their snapshot frames
    GET /api/snapshots/<id>.jpg      a snapshot frame: <record> (the key frame) or <record>_<index>
    GET /api/rois                    the ROIs and whether the config file can be written
    GET /api/capture                 capture mode and its store
    GET /api/dataset                 captured crops with the model's and the operator's labels
    GET /api/captures/<record>/<roi>.jpg | frame.jpg
    GET /api/dataset/export.tar.gz   the training_set/ test_set/ archive (?test_fraction=0.2&include_unconfirmed=1)

Write (admin, same origin, ``X-CSRF-Token``)::

    POST /api/rois            {"rois": [{"name": ..., "box": [x, y, w, h]}]}   400 {"problems": [...]} when invalid
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

from aiohttp import web

from edge.config.schema import NAME_PATTERN
from edge.console.live import Latest, link_json, meters
from edge.console.rois import RoiSaveError
from edge.console.server import COOKIE, LIVE_INTERVAL_S, MAX_LIVE_CLIENTS, METER_INTERVAL_S, ConsoleServer, _error, _json
from edge.errors import ConfigError
from edge.evidence.capture import crop_file
from edge.evidence.dataset import DatasetExportError
from edge.evidence.images import encode_jpeg
from edge.evidence.store import RECORD_ID, parse_frame_name

ROI_NAME = re.compile(NAME_PATTERN)
EVENTS_LIMIT = 200
CHUNK = 256 * 1024


def add_routes(app: web.Application, server: ConsoleServer) -> None:
    parts = server.parts
    live = parts.live

    # --- session ---------------------------------------------------------------------------------------

    async def session(request: web.Request) -> web.Response:
        who = request["who"]
        return _json({"user": who.user, "role": str(who.role), "csrf": who.csrf,
                      "auth": "password" if parts.users is not None else "none"})

    async def login(request: web.Request) -> web.Response:
        users = parts.users
        if users is None:
            return _json({"user": "local", "role": "admin", "csrf": server.local_csrf, "auth": "none"})
        client = request.remote or "?"
        if server.sessions.locked_out(client):
            return _error(429, "too many failed logins; wait a minute")
        try:
            body = await request.json() if request.content_type == "application/json" else dict(await request.post())
            name, password = str(body["user"]), str(body["password"])
        except (ValueError, KeyError, TypeError):
            return _error(400, "expected user and password")
        user = await server.run_io(lambda: users.check(name, password))
        if user is None:
            server.sessions.failed(client)
            return _error(401, "wrong user name or password")
        server.sessions.succeeded(client)
        who = server.sessions.create(user)
        response = _json({"user": who.user, "role": str(who.role), "csrf": who.csrf, "auth": "password"})
        response.set_cookie(COOKIE, who.session or "", httponly=True, samesite="Strict", path="/",
                            max_age=int(parts.settings.session_hours * 3600), secure=request.secure)
        return response

    async def logout(request: web.Request) -> web.Response:
        server.sessions.drop(request.cookies.get(COOKIE))
        response = _json({"ok": True})
        response.del_cookie(COOKIE, path="/")
        return response

    # --- live ------------------------------------------------------------------------------------------

    def status() -> dict[str, Any]:
        latest = live.latest
        state = live.state
        config = parts.running_config()
        rois = []
        levels = dict(state.levels) if state is not None else {}
        boxes = latest.rois if latest is not None else [(r.name, None) for r in config.rois]
        for i, (name, box) in enumerate(boxes):
            entry: dict[str, Any] = {"name": name, "box": [box.x, box.y, box.width, box.height] if box is not None else None,
                                     "level": str(levels.get(name, "unknown")), "probability": None, "smoothed": None}
            if latest is not None and i < len(latest.result.probabilities):
                entry["probability"] = round(float(latest.result.probabilities[i]), 4)
                entry["smoothed"] = round(float(latest.result.smoothed.get(name, 0.0)), 4)
            rois.append(entry)
        frame = None
        if latest is not None:
            frame = {"seq": latest.frame.seq, "width": int(latest.frame.pixels.shape[1]), "height": int(latest.frame.pixels.shape[0]),
                     "age_s": round(max(0.0, time.monotonic() - latest.frame.monotonic), 3)}
        lv = config.levels
        capture = parts.capture
        return {
            "device": parts.identity, "model_sha256": parts.model_sha256, "runtime": parts.runtime,
            "time": time.time(), "summary": str(state.summary) if state is not None else "unknown",
            "health": str(state.health) if state is not None else "ok",
            "health_reason": latest.result.health_reason if latest is not None else "",
            "fps": live.fps(), "frame": frame, "rois": rois,
            "levels": {"warning": {"enter": lv.warning.enter, "exit": lv.warning.exit},
                       "alert": {"enter": lv.alert.enter, "exit": lv.alert.exit}},
            "belt_speed": belt_speed(latest, live.figures),
            "link": link_json(parts.link() if parts.link is not None else None),
            "capture": {"enabled": capture.enabled, "every_s": capture.every_s, "taken": capture.taken} if capture else None,
        }

    async def status_handler(request: web.Request) -> web.Response:
        return _json(status())

    async def frame_jpg(request: web.Request) -> web.Response:
        cache = server.frames
        latest = live.latest
        if latest is None:
            return _error(503, "no frame yet")
        async with cache.lock:  # viewers share one encode
            now = time.monotonic()
            if latest.frame.seq != cache.seq and now - cache.encoded_at >= cache.interval:
                pixels, seq = latest.frame.pixels, latest.frame.seq
                cache.jpeg = await server.run_io(lambda: encode_jpeg(pixels, 80))
                cache.seq, cache.encoded_at = seq, time.monotonic()
            body, seq = cache.jpeg, cache.seq
        return web.Response(body=body, content_type="image/jpeg", headers={"X-Frame-Seq": str(seq), "Cache-Control": "no-store"})

    def history(since: float = float("-inf")) -> dict[str, Any]:
        by_roi: dict[str, dict[str, list[float]]] = {}
        for sample in live.samples_since(since):
            for name, p, s in zip(sample.rois, sample.probabilities, sample.smoothed, strict=False):
                series = by_roi.setdefault(name, {"t": [], "p": [], "s": []})
                series["t"].append(round(sample.wall, 2))
                series["p"].append(round(p, 4))
                series["s"].append(round(s, 4))
        return by_roi

    async def history_handler(request: web.Request) -> web.Response:
        return _json({"rois": history()})

    async def current_meters() -> dict[str, float]:
        latest = live.latest
        if latest is None:
            return {}
        seq, at, values = server._meters
        if latest.frame.seq != seq and time.monotonic() - at >= METER_INTERVAL_S:
            pixels = latest.frame.pixels
            values = await server.run_io(lambda: meters(pixels))
            server._meters = (latest.frame.seq, time.monotonic(), values)
        return values

    async def live_stream(request: web.Request) -> web.StreamResponse:
        if server.live_clients >= MAX_LIVE_CLIENTS:
            return _error(503, f"at most {MAX_LIVE_CLIENTS} live viewers")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                               "X-Accel-Buffering": "no"})
        await response.prepare(request)
        server.live_clients += 1
        since = float("-inf")
        try:
            while not server.closing:
                points = history(since)
                for series in points.values():
                    since = max(since, series["t"][-1])
                message = {"status": status(), "points": points, "meters": await current_meters()}
                await response.write(f"data: {json.dumps(message)}\n\n".encode())
                await asyncio.sleep(LIVE_INTERVAL_S)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            server.live_clients -= 1
        return response

    # --- events and snapshots ---------------------------------------------------------------------------

    def record_meta(record: str) -> dict[str, Any] | None:
        meta = server._metas.get(record)
        if meta is None and parts.evidence is not None and record in parts.evidence:
            meta = parts.evidence.meta(record)
            if meta is not None:
                if len(server._metas) > 2 * EVENTS_LIMIT:
                    server._metas.clear()
                server._metas[record] = meta
        return meta

    def events() -> list[dict[str, Any]]:
        listed: dict[str, dict[str, Any]] = {}
        unnamed: list[dict[str, Any]] = []
        for change in list(live.changes):
            if change.get("snapshot"):
                listed[change["snapshot"]] = dict(change)
            else:
                unnamed.append(dict(change))
        if parts.evidence is not None:  # changes from before this start, kept on disk
            for record in parts.evidence.ids()[:EVENTS_LIMIT]:
                if record not in listed:
                    meta = record_meta(record)
                    if meta is not None:
                        listed[record] = {k: v for k, v in meta.items() if k not in ("frames", "key", "id")} | {"snapshot": record}
        out = []
        for entry in [*listed.values(), *unnamed]:
            snapshot = entry.get("snapshot")
            meta = record_meta(snapshot) if snapshot else None
            if meta is not None:
                entry["frames"] = [{"name": f"{snapshot}_{f['index']}", "url": f"/api/snapshots/{snapshot}_{f['index']}.jpg",
                                    "offset_s": f["offset_s"], "key": f["index"] == meta["key"]} for f in meta["frames"]]
                entry["url"] = f"/api/snapshots/{snapshot}.jpg"
            else:
                entry["frames"] = []
            out.append(entry)
        out.sort(key=lambda e: float(e.get("wall", 0.0)), reverse=True)
        return out[:EVENTS_LIMIT]

    async def events_handler(request: web.Request) -> web.Response:
        return _json({"events": await server.run_io(events)})

    async def snapshot(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        parsed = parse_frame_name(name.removesuffix(".jpg")) if name.endswith(".jpg") else None
        if parsed is None or parts.evidence is None:
            raise web.HTTPNotFound(text="no such snapshot")
        record, index = parsed
        meta = await server.run_io(lambda: record_meta(record))
        if meta is None:
            raise web.HTTPNotFound(text="no such snapshot")
        path = parts.evidence.file(record, f"{meta['key'] if index is None else index}.jpg")
        if path is None:
            raise web.HTTPNotFound(text="no such snapshot frame")
        return web.FileResponse(path, headers={"Content-Type": "image/jpeg", "Cache-Control": "private, max-age=86400"})

    # --- lanes --------------------------------------------------------------------------------------

    async def rois_get(request: web.Request) -> web.Response:
        latest = live.latest
        frame = ({"width": int(latest.frame.pixels.shape[1]), "height": int(latest.frame.pixels.shape[0])}
                 if latest is not None else None)
        return _json({"rois": [{"name": r.name, "box": list(r.box)} for r in parts.running_config().rois], "frame": frame,
                      "config_file": str(parts.editor.config_path) if parts.editor.config_path else None,
                      "cannot_save": parts.editor.writable()})

    async def rois_post(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "expected JSON: {\"rois\": [{\"name\": ..., \"box\": [x, y, width, height]}]}")
        if not isinstance(body, dict) or "rois" not in body:
            return _error(400, "expected JSON: {\"rois\": [{\"name\": ..., \"box\": [x, y, width, height]}]}")
        try:
            config = await server.run_io(lambda: parts.editor.save(body["rois"]))
        except ConfigError as exc:
            return _json({"error": "invalid lanes", "problems": exc.problems}, 400)
        except RoiSaveError as exc:
            return _error(409, str(exc))
        return _json({"rois": [{"name": r.name, "box": list(r.box)} for r in config.rois], "saved_to": str(parts.editor.config_path)})

    # --- capture and dataset ----------------------------------------------------------------------------

    def capture_json() -> dict[str, Any]:
        capture = parts.capture
        if capture is None:
            return {"available": False}
        return {"available": True, "enabled": capture.enabled, "every_s": capture.every_s, "taken": capture.taken,
                "records": len(capture.records.ids()), "bytes": capture.records.total_bytes(),
                "budget_bytes": capture.records.budget_bytes, "folder": str(capture.records.root)}

    async def capture_get(request: web.Request) -> web.Response:
        return _json(await server.run_io(capture_json))

    async def capture_post(request: web.Request) -> web.Response:
        if parts.capture is None:
            return _error(404, "capture is not available")
        try:
            body = await request.json()
            enabled = body["enabled"]
            every = body.get("every_s")
            if not isinstance(enabled, bool) or (every is not None and (isinstance(every, bool) or not isinstance(every, (int, float))
                                                                        or not 1.0 <= float(every) <= 86400.0)):
                raise ValueError
        except (ValueError, KeyError, TypeError, AttributeError):
            return _error(400, "expected {\"enabled\": true|false, \"every_s\": 1-86400 (optional)}")
        parts.capture.switch(enabled, float(every) if every is not None else None)
        return _json(await server.run_io(capture_json))

    async def dataset_get(request: web.Request) -> web.Response:
        dataset = parts.dataset
        if dataset is None:
            return _error(404, "no dataset (capture is not available)")
        only = request.query.get("filter") == "unlabelled"
        try:
            offset, limit = int(request.query.get("offset", "0")), min(1000, int(request.query.get("limit", "200")))
        except ValueError:
            return _error(400, "offset and limit must be integers")

        def listing() -> dict[str, Any]:
            items = dataset.items(only_unlabelled=only)
            return {"items": [i.as_json() for i in items[offset:offset + limit]], "total": len(items), "counts": dataset.counts()}

        return _json(await server.run_io(listing))

    async def labels_post(request: web.Request) -> web.Response:
        dataset = parts.dataset
        if dataset is None:
            return _error(404, "no dataset (capture is not available)")
        try:
            body = await request.json()
            wanted: dict[tuple[str, str], str | None] = {}
            for entry in body["labels"]:
                record, _, roi = str(entry["id"]).partition("/")
                if not RECORD_ID.match(record) or not ROI_NAME.match(roi):
                    return _error(400, f"id {entry['id']!r}: expected <record>/<roi>")
                wanted[(record, roi)] = entry["label"]
        except (ValueError, KeyError, TypeError):
            return _error(400, "expected {\"labels\": [{\"id\": \"<record>/<roi>\", \"label\": \"alert\"|\"acceptable\"|\"unknown\"|null}]}")
        try:
            changed = await server.run_io(lambda: dataset.set_labels(wanted))
        except KeyError as exc:
            return _error(404, f"no such item {exc.args[0]}")
        except ValueError as exc:
            return _error(400, str(exc))
        return _json({"changed": changed, "counts": await server.run_io(dataset.counts)})

    async def capture_file(request: web.Request) -> web.StreamResponse:
        record, name = request.match_info["record"], request.match_info["name"]
        if parts.capture is None or not RECORD_ID.match(record) or not name.endswith(".jpg"):
            raise web.HTTPNotFound()
        stem = name.removesuffix(".jpg")
        if stem != "frame" and not ROI_NAME.match(stem):
            raise web.HTTPNotFound()
        path = parts.capture.records.file(record, "frame.jpg" if stem == "frame" else crop_file(stem))
        if path is None:
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers={"Content-Type": "image/jpeg", "Cache-Control": "private, max-age=86400"})

    async def export(request: web.Request) -> web.StreamResponse:
        dataset = parts.dataset
        if dataset is None:
            return _error(404, "no dataset (capture is not available)")
        try:
            fraction = float(request.query.get("test_fraction", "0.2"))
        except ValueError:
            return _error(400, "test_fraction must be a number between 0 and 1")
        unconfirmed = request.query.get("include_unconfirmed") in ("1", "true", "yes")
        spool = tempfile.TemporaryFile()
        try:
            try:
                summary = await server.run_io(lambda: dataset.export(spool, fraction, unconfirmed))
            except DatasetExportError as exc:
                return _error(409, str(exc))
            size = spool.tell()
            spool.seek(0)
            stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
            response = web.StreamResponse(headers={
                "Content-Type": "application/gzip", "Content-Length": str(size),
                "Content-Disposition": f'attachment; filename="conveyor-dataset-{parts.identity["name"]}-{stamp}.tar.gz"',
                "X-Dataset-Counts": json.dumps(summary.counts, separators=(",", ":"))})
            await response.prepare(request)
            while True:
                chunk = await server.run_io(lambda: spool.read(CHUNK))
                if not chunk:
                    break
                await response.write(chunk)
            await response.write_eof()
            return response
        finally:
            spool.close()

    r = app.router
    r.add_get("/api/session", session)
    r.add_post("/api/login", login)
    r.add_post("/api/logout", logout)
    r.add_get("/api/status", status_handler)
    r.add_get("/api/frame.jpg", frame_jpg)
    r.add_get("/api/history", history_handler)
    r.add_get("/api/live", live_stream)
    r.add_get("/api/events", events_handler)
    r.add_get("/api/snapshots/{name}", snapshot)
    r.add_get("/api/rois", rois_get)
    r.add_post("/api/rois", rois_post)
    r.add_get("/api/capture", capture_get)
    r.add_post("/api/capture", capture_post)
    r.add_get("/api/dataset", dataset_get)
    r.add_post("/api/dataset/labels", labels_post)
    r.add_get("/api/dataset/export.tar.gz", export)
    r.add_get("/api/captures/{record}/{name}", capture_file)


def belt_speed(latest: Latest | None, figures: dict[str, Any]) -> float | None:
    """The belt's speed when the pipeline or telemetry reports one (belt motion is measured by a later stage)."""
    value = getattr(latest.result, "belt_speed", None) if latest is not None else None
    if value is None:
        value = figures.get("belt_speed")
    try:
        return round(float(value), 2) if value is not None else None
    except (TypeError, ValueError):
        return None
