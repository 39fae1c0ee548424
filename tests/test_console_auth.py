"""Who may use the console: passwords hashed at rest, sessions, roles, CSRF on every write, throttling, safe listening."""

from __future__ import annotations

import base64
import json
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.console import ConsoleDaemon, Http, start_console_daemon

from edge.config import parse_config
from edge.console.auth import Role, parse_users, verify_password
from edge.errors import ConfigError

pytestmark = [pytest.mark.output_side]
ADMIN_PASSWORD, VIEWER_PASSWORD = "belt-admin-2026", "just-looking-99"


def console_user(file: Path, name: str, role: str, password: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge", "console-user", str(file), name, "--role", role],
                          input=password + "\n", capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def users_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    file = tmp_path_factory.mktemp("users") / "console-users"
    assert console_user(file, "olga", "admin", ADMIN_PASSWORD).returncode == 0
    assert console_user(file, "vic", "viewer", VIEWER_PASSWORD).returncode == 0
    return file


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory, users_file: Path) -> Iterator[ConsoleDaemon]:
    d = start_console_daemon(tmp_path_factory.mktemp("guarded"), console={"users_file": str(users_file)})
    yield d
    d.stop()


def login(d: ConsoleDaemon, user: str, password: str) -> tuple[Http, int, dict[str, str]]:
    http = Http(d.url)
    status, body = http.post("/api/login", {"user": user, "password": password})
    return http, status, body


def test_the_users_file_holds_salted_scrypt_hashes_never_a_password(users_file: Path) -> None:
    """edge-daemon console-user writes name:role:scrypt$... (mode 0600); the same password hashes differently per salt."""
    text = users_file.read_text()
    assert ADMIN_PASSWORD not in text and VIEWER_PASSWORD not in text
    assert stat.S_IMODE(users_file.stat().st_mode) == 0o600
    users = parse_users(text, str(users_file))
    assert users["olga"].role == Role.ADMIN and users["vic"].role == Role.VIEWER
    assert verify_password(ADMIN_PASSWORD, users["olga"].password_hash)
    assert not verify_password(ADMIN_PASSWORD + "x", users["olga"].password_hash)
    again = users_file.with_name("again")
    console_user(again, "olga", "admin", ADMIN_PASSWORD)
    assert parse_users(again.read_text(), "again")["olga"].password_hash != users["olga"].password_hash


def test_console_user_refuses_short_passwords_and_bad_names(tmp_path: Path) -> None:
    """One line, exit 2, nothing written."""
    short = console_user(tmp_path / "u", "olga", "admin", "short")
    assert short.returncode == 2 and short.stderr.strip() == "edge-daemon: the password must have at least 8 characters"
    bad = console_user(tmp_path / "u", "ol ga", "admin", ADMIN_PASSWORD)
    assert bad.returncode == 2 and "user name 'ol ga'" in bad.stderr and not (tmp_path / "u").exists()


def test_a_malformed_users_file_is_refused_line_by_line(tmp_path: Path) -> None:
    """Each bad line named with its number, never echoing a hash."""
    with pytest.raises(ConfigError) as caught:
        parse_users("# users\nolga:admin:plaintext-password\nvic:boss:scrypt$1$1$1$AAAA$AAAA\n", "users")
    assert caught.value.problems == [
        "users: line 2: the password hash is not a scrypt hash (use edge-daemon console-user)",
        "users: line 3: role 'boss': expected admin or viewer",
    ]


def test_nothing_but_the_login_page_without_logging_in(guarded: ConsoleDaemon) -> None:
    """API 401, pages redirect to /login, writes 401."""
    http = Http(guarded.url)
    for path in ("/api/status", "/api/frame.jpg", "/api/events", "/api/session", "/api/dataset"):
        assert http.get(path)[0] == 401, path
    status, _, body = http.get("/")
    assert status == 200 and b'id="login"' in body  # followed the redirect to the login page
    assert http.post("/api/rois", {"rois": []})[0] == 401


def test_a_wrong_password_or_user_is_refused(guarded: ConsoleDaemon) -> None:
    """401 for a wrong password and for a user that does not exist, alike."""
    assert login(guarded, "olga", "wrong-password")[1] == 401
    assert login(guarded, "nobody", ADMIN_PASSWORD)[1] == 401


def test_a_viewer_reads_everything_and_writes_nothing(guarded: ConsoleDaemon) -> None:
    """The viewer role: status and frames yes; lanes, capture and labels no, even with its own CSRF token."""
    http, status, who = login(guarded, "vic", VIEWER_PASSWORD)
    assert status == 200 and who["role"] == "viewer"
    assert http.get("/api/status")[0] == 200 and http.get("/api/frame.jpg")[0] in (200, 503)
    for path, body in (("/api/rois", {"rois": [{"name": "x", "box": [0, 0, 1, 1]}]}), ("/api/capture", {"enabled": True}),
                       ("/api/dataset/labels", {"labels": []})):
        status, answer = http.post(path, body, csrf=who["csrf"])
        assert status == 403 and "viewer" in answer["error"], path
    assert guarded.daemon.parts.evidence.capture.enabled is False  # type: ignore[union-attr]


def test_an_admin_write_needs_the_sessions_csrf_token(guarded: ConsoleDaemon) -> None:
    """Logged in as admin: no token, another session's token or a forged one: 403; its own: 200."""
    http, status, who = login(guarded, "olga", ADMIN_PASSWORD)
    _other, _, other_who = login(guarded, "olga", ADMIN_PASSWORD)
    assert status == 200 and who["role"] == "admin" and who["csrf"] != other_who["csrf"]
    for token in (None, "", other_who["csrf"], who["csrf"][:-1]):
        assert http.post("/api/capture", {"enabled": False}, csrf=token)[0] == 403
    assert http.post("/api/capture", {"enabled": False}, csrf=who["csrf"])[0] == 200
    assert http.post("/api/logout", {}, csrf=who["csrf"])[0] == 200
    assert http.get("/api/status")[0] == 401  # the cookie no longer opens anything


def test_http_basic_works_for_scripts_with_the_same_rules(guarded: ConsoleDaemon) -> None:
    """Basic credentials read; a write still needs the CSRF token that /api/session gives that user."""
    http = Http(guarded.url)
    good = {"Authorization": "Basic " + base64.b64encode(f"olga:{ADMIN_PASSWORD}".encode()).decode()}
    bad = {"Authorization": "Basic " + base64.b64encode(b"olga:nope-nope-nope").decode()}
    assert http.get("/api/status", headers=bad)[0] == 401
    status, _, body = http.get("/api/session", headers=good)
    assert status == 200
    token = json.loads(body)["csrf"]
    assert http.post("/api/capture", {"enabled": False}, headers=good)[0] == 403
    assert http.post("/api/capture", {"enabled": False}, csrf=token, headers=good)[0] == 200


def test_repeated_failed_logins_lock_the_client_out(tmp_path: Path, users_file: Path) -> None:
    """Five failures in a row: even the right password is refused (429) for a while."""
    d = start_console_daemon(tmp_path, console={"users_file": str(users_file)})
    try:
        for _ in range(5):
            assert login(d, "olga", "guess-guess")[1] == 401
        assert login(d, "olga", ADMIN_PASSWORD)[1] == 429
    finally:
        d.stop()


@pytest.mark.parametrize("listen", ["0.0.0.0:8080", "[::]:8080", "192.168.1.20:8080", "console.plant.local:8080"])
def test_listening_beyond_loopback_needs_passwords(listen: str) -> None:
    """check-config refuses a console reachable from the network without a users file, in one line."""
    with pytest.raises(ConfigError) as caught:
        parse_config({"console": {"enabled": True, "listen": listen}}, "c.yaml", check_files=False)
    [problem] = caught.value.problems
    assert problem.startswith(f"c.yaml: console: listen '{listen}' is reachable from the network: it needs users_file")
    parse_config({"console": {"enabled": True, "listen": listen, "users_file": "/etc/conveyor-watch/console-users"}},
                 check_files=False)


@pytest.mark.parametrize("listen", ["127.0.0.1:8080", "localhost:9000", "[::1]:8080", "127.0.0.2:8080"])
def test_loopback_needs_no_password(listen: str) -> None:
    """On loopback only local users reach it: no password needed (default 127.0.0.1:8080)."""
    assert parse_config({"console": {"enabled": True, "listen": listen}}, check_files=False).console.listen == listen
    assert parse_config({}, check_files=False).console.listen == "127.0.0.1:8080"


def test_a_missing_users_file_is_a_config_error(tmp_path: Path) -> None:
    """The file is checked at start-up like every other file the config names."""
    with pytest.raises(ConfigError) as caught:
        parse_config({"console": {"enabled": True, "users_file": str(tmp_path / "gone")}}, "c.yaml")
    assert caught.value.problems == [f"c.yaml: console.users_file: file '{tmp_path / 'gone'}' does not exist"]
