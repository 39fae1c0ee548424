"""TLS with client certificates, the broker ACL, and secrets that never leak."""

from __future__ import annotations

import ssl
import subprocess
import threading
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from helpers.broker import Mosquitto
from helpers.daemon import DaemonProcess, daemon_config, run_to_end, wait_until, write_config
from helpers.subscriber import Subscriber, validate
from paho.mqtt.enums import CallbackAPIVersion

pytestmark = pytest.mark.broker
REPO = Path(__file__).resolve().parent.parent
PREFIX = "plant/s1/l1/dev1"


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def make_pki(d: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1, a client certificate for dev1, and an unrelated CA."""
    d.mkdir(parents=True, exist_ok=True)
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={ca}",
                "-keyout", str(d / f"{ca}.key"), "-out", str(d / f"{ca}.crt"))
    ext = d / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    for name, cn in (("server", "127.0.0.1"), ("client", "dev1")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}", "-keyout", str(d / f"{name}.key"),
                "-out", str(d / f"{name}.csr"))
        openssl("x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / "ca.crt"), "-CAkey", str(d / "ca.key"),
                "-CAcreateserial", "-days", "2", "-out", str(d / f"{name}.crt"), *(["-extfile", str(ext)] if name == "server" else []))
    for key in d.glob("*.key"):
        key.chmod(0o600)
    return {p.stem + p.suffix.replace(".", "_"): p for p in d.iterdir()}


@pytest.fixture
def tls_broker(tmp_path: Path) -> tuple[Mosquitto, dict[str, Path]]:
    pki = make_pki(tmp_path / "pki")
    broker = Mosquitto(tmp_path / "broker")
    broker.extra = (f"listener {broker.port} 127.0.0.1\ncafile {pki['ca_crt']}\ncertfile {pki['server_crt']}\n"
                    f"keyfile {pki['server_key']}\nrequire_certificate true\nuse_identity_as_username true\ntls_version tlsv1.2")
    broker.start()
    yield broker, pki
    broker.stop()


def client_context(pki: dict[str, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki["ca_crt"]))
    context.load_cert_chain(str(pki["client_crt"]), str(pki["client_key"]))
    return context


def test_client_certificate_authentication_works_end_to_end(tmp_path: Path, tls_broker) -> None:
    """TLS 1.2+, server verified against the CA, our client certificate accepted: events arrive."""
    broker, pki = tls_broker
    sub = Subscriber(broker.host, broker.port, "plant/#", tls=client_context(pki))
    config = daemon_config(tmp_path, broker, source={"duration_s": 9.0},
                           mqtt={"tls": {"ca_file": str(pki["ca_crt"]), "cert_file": str(pki["client_crt"]),
                                         "key_file": str(pki["client_key"])}})
    daemon = DaemonProcess(write_config(tmp_path / "c.yaml", config), tmp_path / "d.log")
    try:
        assert daemon.wait(60) == 0, daemon.log()
        sub.wait_for(lambda ms: len([m for m in ms if m.topic.endswith("/event")]) >= 2, what="events over TLS")
        for message in sub.messages:
            validate(message)
        assert "TLSv1.2" in broker.log.read_text() or "TLSv1.3" in broker.log.read_text() or "dev1" in broker.log.read_text()
    finally:
        sub.close()
        daemon.close()


@pytest.mark.parametrize("case", ["wrong_ca", "no_client_certificate"])
def test_a_wrong_ca_or_a_missing_client_certificate_is_refused(tmp_path: Path, tls_broker, case: str) -> None:
    """The daemon never talks to a broker it cannot verify, and the broker refuses a client without a certificate."""
    broker, pki = tls_broker
    tls = {"ca_file": str(pki["other-ca_crt"] if case == "wrong_ca" else pki["ca_crt"])}
    if case == "wrong_ca":
        tls |= {"cert_file": str(pki["client_crt"]), "key_file": str(pki["client_key"])}
    config = daemon_config(tmp_path, broker, source={"realtime": True, "duration_s": 3600, "drops": []}, mqtt={"tls": tls})
    daemon = DaemonProcess(write_config(tmp_path / "c.yaml", config), tmp_path / "d.log")
    try:
        expected = "CERTIFICATE_VERIFY_FAILED" if case == "wrong_ca" else "closed the connection before accepting it"
        wait_until(lambda: expected in daemon.log() or "connection lost" in daemon.log(), 30, "a refused TLS connection")
        wait_until(lambda: "first inference" in daemon.log(), 30, "the daemon running anyway")
        assert "MQTT connected" not in daemon.log()
        assert daemon.terminate() == 0
    finally:
        daemon.close()


@pytest.fixture
def acl_broker(tmp_path: Path) -> Mosquitto:
    passwd = tmp_path / "passwd"
    for i, (user, password) in enumerate((("dev1", "dev1-Secret-9"), ("scada", "scada-Secret-9"))):
        subprocess.run(["mosquitto_passwd", *(["-c"] if i == 0 else []), "-b", str(passwd), user, password],
                       check=True, timeout=30)
    passwd.chmod(0o644)
    broker = Mosquitto(tmp_path / "broker",
                       extra=f"allow_anonymous false\npassword_file {passwd}\nacl_file {REPO / 'docs' / 'mosquitto-acl.conf'}")
    broker.start()
    yield broker
    broker.stop()


def test_the_acl_example_lets_a_device_write_only_under_its_own_prefix(tmp_path: Path, acl_broker: Mosquitto) -> None:
    """Under docs/mosquitto-acl.conf the daemon works; a publish outside its prefix is denied (MQTT 5: 0x87)."""
    sub = Subscriber(acl_broker.host, acl_broker.port, "plant/#", username="scada", password="scada-Secret-9")
    secret = tmp_path / "pw"
    secret.write_text("dev1-Secret-9\n")
    # Paced in real time (9 s), so that telemetry (every second) certainly goes out too. One drop that ends
    # 4 s before the stream does: on a loaded 2-core CI machine the recovery must still fit in the run.
    config = daemon_config(tmp_path, acl_broker, source={"duration_s": 9.0, "realtime": True, "fps": 10,
                                                         "drops": [{"start_s": 2.0, "duration_s": 3.0}]},
                           mqtt={"username": "dev1", "password_file": str(secret)})
    log = run_to_end(write_config(tmp_path / "c.yaml", config), tmp_path / "d.log", 60)
    sub.wait_for(lambda ms: any(m.topic == f"{PREFIX}/status" and m.payload == "offline" for m in ms), what="offline")
    assert len(sub.events()) == 2 and any(m.topic.endswith("/telemetry") for m in sub.messages)

    outside = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="dev1-intruder", protocol=paho.MQTTv5)
    outside.username_pw_set("dev1", "dev1-Secret-9")
    acked = threading.Event()
    codes: list[int] = []
    outside.on_publish = lambda c, u, mid, rc, p: (codes.append(rc.value), acked.set())
    outside.connect(acl_broker.host, acl_broker.port)
    outside.loop_start()
    try:
        outside.publish("plant/s1/l1/other-device/event", b'{"forged": true}', qos=1)
        assert acked.wait(10)
        assert codes == [0x87]  # Not authorized
        outside.publish(f"{PREFIX}/probe", b"allowed", qos=1)
        sub.wait_for(lambda ms: any(m.topic == f"{PREFIX}/probe" for m in ms), what="the allowed publish")
        assert not any("other-device" in m.topic for m in sub.messages)
    finally:
        outside.loop_stop()
        outside.disconnect()
        sub.close()
    # Secrets never appear in the log, in any published message, or in check-config's output.
    check = subprocess.run([__import__("sys").executable, "-m", "edge", "check-config", str(tmp_path / "c.yaml")],
                           capture_output=True, text=True, timeout=60)
    everything = log + "".join(m.payload for m in sub.messages) + check.stdout + check.stderr
    assert "dev1-Secret-9" not in everything and check.returncode == 0


def test_secrets_stay_out_of_reprs_and_errors(tmp_path: Path) -> None:
    """The Secrets object and the errors about secret files never carry the secret value."""
    from edge.config import parse_config
    from edge.errors import ConfigError
    from edge.secrets import load_secrets

    secret = tmp_path / "pw"
    secret.write_text("Sup3r-Secret\n")
    config = parse_config({"mqtt": {"username": "u", "password_file": str(secret)}}, check_files=False)
    secrets = load_secrets(config)
    assert secrets.password == "Sup3r-Secret" and "Sup3r" not in repr(secrets) and "Sup3r" not in str(secrets)
    secret.write_text("Sup3r-Secret\nsecond line\n")
    with pytest.raises(ConfigError) as info:
        load_secrets(config)
    assert "Sup3r" not in str(info.value) and "exactly one non-empty line" in str(info.value)
