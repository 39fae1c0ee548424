"""The console in a real browser: Debian's chromium driven by Playwright, against the real daemon (bundled model,
simulated camera) publishing to a real Mosquitto. Screenshots of each page go to test-artifacts/console/."""

from __future__ import annotations

import http.server
import json
import re
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from helpers.broker import Mosquitto
from helpers.console import Http, start_console_daemon
from helpers.daemon import DaemonProcess, daemon_config, wait_until, write_config
from helpers.subscriber import Subscriber

from edge.config import load_config
from edge.demo.broker import free_port

if TYPE_CHECKING:  # Playwright is in the main environment only (the browser extra); these tests run there
    from playwright.sync_api import Browser, Page

pytestmark = [pytest.mark.output_side, pytest.mark.browser, pytest.mark.broker, pytest.mark.slow]
REPO = Path(__file__).resolve().parent.parent
ARTEFACTS = REPO / "test-artifacts" / "console"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
PREFIX = "plant/s1/l1/dev1"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    started = Mosquitto(tmp_path_factory.mktemp("broker")).start()
    yield started
    started.close()


class Running:
    def __init__(self, url: str, config: Path, process: DaemonProcess) -> None:
        self.url, self.config, self.process = url, config, process


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, broker: Mosquitto) -> Iterator[Running]:
    """The real daemon: bundled model, simulated camera at 10 fps with a drop in flow every 8 s, console on."""
    tmp = tmp_path_factory.mktemp("browser-daemon")
    port = free_port()
    config = daemon_config(tmp, broker, source={"realtime": True, "fps": 10, "width": 320, "height": 240, "duration_s": None,
                                                "drops": [{"start_s": 2.0 + 8.0 * k, "duration_s": 3.0} for k in range(40)]},
                           telemetry={"interval_s": 5}, evidence={"spacing_s": 0.3, "max_per_hour": 3600},
                           capture={"every_s": 1.0, "min_interval_s": 0.5},
                           console={"enabled": True, "listen": f"127.0.0.1:{port}"})
    path = write_config(tmp / "config.yaml", config)
    process = DaemonProcess(path, tmp / "daemon.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _ok(url + "/api/status") or not process.alive(), 60, "the console to answer")
        assert process.alive(), process.log()
        yield Running(url, path, process)
    finally:
        process.terminate()
        process.close()


def _ok(url: str) -> bool:
    try:
        return Http(url.rsplit("/api", 1)[0]).get("/api/status")[0] == 200
    except OSError:
        return False


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 820}, accept_downloads=True)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


def shot(page: Page, name: str) -> Path:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTEFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def canvas_pixel(page: Page, selector: str, x: int, fy: float) -> list[int]:
    """RGBA of a canvas at pixel column ``x`` and a fraction ``fy`` of its height."""
    return page.evaluate("""([selector, x, fy]) => {
        const c = document.querySelector(selector);
        return Array.from(c.getContext('2d').getImageData(x, Math.floor(c.height * fy), 1, 1).data);
    }""", [selector, x, fy])


LEVEL_RGB = {"ok": (0x2E, 0x9E, 0x48), "warning": (0xD9, 0x9A, 0x00), "alert": (0xD3, 0x31, 0x31), "unknown": (0x8A, 0x8F, 0x98)}


def test_the_live_page_shows_the_frame_the_lanes_by_level_and_a_moving_chart(daemon: Running, page: Page) -> None:
    """Live: the camera frame, the ROI drawn in its level's colour, and its probability chart gaining points."""
    page.goto(daemon.url + "/")
    page.wait_for_function("() => document.getElementById('frame').naturalWidth === 320")
    page.wait_for_function("() => (document.getElementById('overlay').dataset.rois || '').startsWith('belt:')")
    chart = "#chart-belt canvas"
    page.wait_for_selector(chart)
    first = float(page.get_attribute(chart, "data-last") or 0)
    page.wait_for_function(f"() => Number(document.querySelector('{chart}').dataset.last) > {first}")
    second = float(page.get_attribute(chart, "data-last") or 0)
    page.wait_for_function(f"() => Number(document.querySelector('{chart}').dataset.last) > {second}")
    assert int(page.get_attribute(chart, "data-points") or 0) >= 3
    # The ROI's outline, 1.5 px inside the overlay's left edge, is drawn in the colour of its current level.
    level = (page.get_attribute("#overlay", "data-rois") or "").split(",")[0].split(":")[1]
    r, g, b, a = canvas_pixel(page, "#overlay", 1, 0.5)
    assert a == 255 and (r, g, b) == LEVEL_RGB[level]
    frame_seq = int(page.get_attribute("#frame", "data-seq") or -1)
    page.wait_for_function(f"() => Number(document.getElementById('frame').dataset.seq) > {frame_seq}")  # the picture refreshes
    assert page.text_content("#model").startswith(json.loads(Http(daemon.url).get("/api/status")[2])["model_sha256"][:16])
    page.wait_for_function("() => document.getElementById('focus').textContent.includes('% of best')")
    shot(page, "live")


def test_the_live_page_marks_a_lane_whose_view_spans_too_few_pitches(daemon: Running, page: Page) -> None:
    """The framing check's figure beside a lane's chart (the page's own function, with the range the status gave):
    plain inside the model's range, marked with what to do outside it, nothing before the daemon has a figure."""
    page.goto(daemon.url + "/")
    page.wait_for_selector("#chart-belt .framing", state="attached")
    shown = page.evaluate("""() => [3.45, 6.2, 13.6, null].map((pitches) => {
        const span = document.createElement("span");
        showFraming(span, {view_pitches: pitches});
        return [span.textContent, span.className];
    })""")
    assert shown == [["3.45 pitches in view (needs 3.5-13: widen it)", "framing outside"], ["6.20 pitches in view", "framing"],
                     ["13.60 pitches in view (needs 3.5-13: narrow it)", "framing outside"], ["", "framing"]]


def test_drawing_a_lane_rewrites_the_config_and_a_new_state_topic_appears(daemon: Running, broker: Mosquitto, page: Page) -> None:
    """Lanes: draw a box with the mouse, move it, resize it by a corner, save: the file holds it and the broker gets state/lane-2."""
    subscriber = Subscriber(broker.host, broker.port, f"{PREFIX}/state/#")
    try:
        before = daemon.config.read_text()
        page.goto(daemon.url + "/lanes")
        page.wait_for_function("() => document.getElementById('frame').naturalWidth === 320")
        box = page.locator("#editor").bounding_box()
        assert box is not None
        at = lambda fx, fy: (box["x"] + fx * box["width"], box["y"] + fy * box["height"])  # noqa: E731
        # Draw from (0.5, 0.5) to (0.8, 0.9) ...
        page.mouse.move(*at(0.5, 0.5))
        page.mouse.down()
        page.mouse.move(*at(0.8, 0.9), steps=8)
        page.mouse.up()
        page.wait_for_function("() => document.getElementById('editor').dataset.lanes === 'belt,lane-2'")
        # ... move it left by 0.2 (grab its middle) ...
        page.mouse.move(*at(0.65, 0.7))
        page.mouse.down()
        page.mouse.move(*at(0.45, 0.7), steps=8)
        page.mouse.up()
        # ... and pull its bottom-right corner from (0.6, 0.9) to (0.7, 0.95).
        page.mouse.move(*at(0.6, 0.9))
        page.mouse.down()
        page.mouse.move(*at(0.7, 0.95), steps=8)
        page.mouse.up()
        # Product runs down the picture in the new lane.
        page.select_option("#lane-list li:nth-child(2) select", "down")
        shot(page, "lanes-drawn")
        page.click("#save")
        page.wait_for_function("() => document.getElementById('message').textContent.startsWith('Saved to')")
        saved = load_config(daemon.config)
        assert [r.name for r in saved.rois] == ["belt", "lane-2"]
        assert [r.flow for r in saved.rois] == ["across", "down"]
        x, y, w, h = saved.rois[1].box
        assert (x, y, w, h) == pytest.approx((0.3, 0.5, 0.4, 0.45), abs=0.01)
        assert daemon.config.with_name("config.yaml.bak").read_text() == before
        subscriber.wait_for(lambda ms: any(m.topic == f"{PREFIX}/state/lane-2" and m.payload in ("ok", "warning", "alert")
                                           for m in ms), 30, "a judged state/lane-2")
        shot(page, "lanes")
    finally:
        subscriber.close()


def test_the_event_list_shows_each_change_with_its_snapshots_loaded(daemon: Running, page: Page) -> None:
    """Events: the changes of the scripted drops, each with its frames, every picture loaded."""
    page.goto(daemon.url + "/events")
    page.wait_for_selector(".event img.snapshot", timeout=30_000)
    page.wait_for_function("""() => {
        const images = [...document.querySelectorAll('.event img.snapshot')];
        return images.length >= 5 && images.every(i => i.complete && i.naturalWidth === 320);
    }""", timeout=30_000)
    assert page.locator(".event").count() >= 1
    heads = page.locator(".event .head strong").all_text_contents()
    level = r"(belt|lane-2): (ok|alert|warning|unknown) → (ok|alert|warning|unknown) \(p \d\.\d\d\)"
    alarm = r"(belt|lane-2): alarm [a-z_]+ → [a-z_]+( \(acknowledged by .+\))?"
    assert heads and all(re.fullmatch(level, h) or re.fullmatch(alarm, h) for h in heads), heads
    assert any(re.fullmatch(level, h) for h in heads)
    page.locator(".event figure.key img").first.click()
    page.wait_for_function("() => !document.getElementById('lightbox').hidden && document.getElementById('lightbox-img').naturalWidth > 0")
    page.keyboard.press("Escape")
    shot(page, "events")


def test_the_dataset_page_captures_labels_by_keyboard_and_exports_a_training_set(daemon: Running, page: Page, tmp_path: Path) -> None:
    """Dataset: switch capture on, label crops with the keys, export: the archive's splits load in the converter."""
    from converter.dataset import check_layout, load_split

    http = Http(daemon.url)
    page.goto(daemon.url + "/dataset")
    page.wait_for_selector("#capture")
    page.check("#capture")
    wait_until(lambda: json.loads(http.get("/api/dataset")[2])["total"] >= 7, 30, "seven captured crops")
    page.uncheck("#capture")
    page.click("#reload")
    page.wait_for_function("() => document.querySelectorAll('.item').length >= 7")
    page.locator(".item").first.click()
    for key in ("a", "g", "a", "g", "a", "g"):
        page.keyboard.press(key)
    page.keyboard.press("u")
    page.wait_for_function("() => document.querySelector('[data-count=unknown]').textContent === 'unknown: 1'")
    counts = json.loads(http.get("/api/dataset")[2])["counts"]
    assert (counts["acceptable"], counts["alert"], counts["unknown"]) == (3, 3, 1)
    labels = [page.get_attribute(f".item:nth-child({i})", "data-label") for i in range(1, 8)]
    assert labels == ["acceptable", "alert", "acceptable", "alert", "acceptable", "alert", "unknown"]
    shot(page, "dataset")
    with page.expect_download() as download:
        page.click("#export")
    archive = tmp_path / "export.tar.gz"
    download.value.save_as(archive)
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "data", filter="data")
        names = tar.getnames()
    assert sum(n.startswith(("training_set/unknown/", "test_set/unknown/")) for n in names) == 1
    for split in ("training_set", "test_set"):
        assert load_split(check_layout(tmp_path / "data", "alert"), split).class_names[:2] == ("acceptable", "alert")


# --- security in the browser ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A console with users (in this process: the shipped fakes, the real server)."""
    from edge.console.auth import Role, set_user

    tmp = tmp_path_factory.mktemp("guarded-browser")
    users = tmp / "users"
    users.write_text(set_user(set_user("", "olga", Role.ADMIN, "belt-admin-2026"), "vic", Role.VIEWER, "just-looking-99"))
    d = start_console_daemon(tmp, console={"users_file": str(users)})
    yield d
    d.stop()


def test_a_write_without_the_password_or_the_csrf_token_is_refused_in_the_browser(guarded: Any, page: Page) -> None:
    """Logged out: sent to /login; a wrong password is said so; a viewer sees no admin controls and its writes fail;
    a write without the CSRF header fails even for the admin."""
    page.goto(guarded.url + "/")
    page.wait_for_url("**/login?next=/")
    page.fill("#user", "olga")
    page.fill("#password", "not-the-password")
    page.click("button[type=submit]")
    page.wait_for_function("() => document.getElementById('message').textContent.includes('wrong user name or password')")
    shot(page, "login")
    status = page.evaluate("fetch('/api/capture', {method: 'POST', body: '{\"enabled\": true}'}).then(r => r.status)")
    assert status == 401
    page.fill("#user", "vic")
    page.fill("#password", "just-looking-99")
    page.click("button[type=submit]")
    page.wait_for_url(guarded.url + "/")
    page.wait_for_function("() => document.body.classList.contains('viewer')")
    assert not page.is_visible("#capture")
    viewer_write = """fetch('/api/session').then(r => r.json()).then(s => fetch('/api/capture', {method: 'POST',
        headers: {'Content-Type': 'application/json', 'X-CSRF-Token': s.csrf}, body: '{"enabled": true}'})).then(r => r.status)"""
    assert page.evaluate(viewer_write) == 403
    page.context.clear_cookies()
    page.goto(guarded.url + "/login")
    page.fill("#user", "olga")
    page.fill("#password", "belt-admin-2026")
    page.click("button[type=submit]")
    page.wait_for_url(guarded.url + "/")
    page.wait_for_selector("#capture", state="visible")
    no_token = "fetch('/api/capture', {method: 'POST', headers: {'Content-Type': 'application/json'}, body: '{\"enabled\": true}'})" \
               ".then(r => r.status)"
    assert page.evaluate(no_token) == 403
    assert page.evaluate(viewer_write) == 200  # the same write with the admin's token goes through
    assert guarded.daemon.parts.evidence.capture.enabled is True
    guarded.daemon.parts.evidence.capture.switch(False)


def test_another_site_in_the_same_browser_cannot_write_to_the_console(daemon: Running, page: Page) -> None:
    """A page from another origin posting to the console (no CORS, no token) changes nothing."""
    console = daemon.url

    class Evil(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f"""<html><body><script>
              fetch('{console}/api/capture', {{method: 'POST', mode: 'no-cors', credentials: 'include',
                     headers: {{'Content-Type': 'text/plain'}}, body: '{{"enabled": true}}'}})
                .then(() => document.title = 'sent', () => document.title = 'sent');
            </script></body></html>""".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Evil)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        page.goto(console + "/")  # the operator has the console open ...
        page.goto(f"http://127.0.0.1:{server.server_address[1]}/")  # ... and visits another page
        page.wait_for_function("() => document.title === 'sent'")
        assert json.loads(Http(console).get("/api/capture")[2])["enabled"] is False
    finally:
        server.shutdown()
