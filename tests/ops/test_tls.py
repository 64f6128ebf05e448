"""Transport security: a real Mosquitto with mutual TLS and the ACL of kiosk.ops.pki.

The broker admits only certificates of the district CA, takes each client's
username and client id from its certificate, and lets a station read and write
only its own topics. Observed on Mosquitto 2.0.11: a subscription to another
station's topics is granted in the SUBACK, but nothing is delivered on it (the
read ACL applies at delivery); a denied QoS 1 publish is answered with PUBACK
0x87 "Not authorized" and dropped; SIGHUP reloads the ACL and the CRL.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from kiosk.ops import pki
from kiosk.ops.status import print_status
from kiosk.sim.broker import Broker, free_port
from kiosk.station.config import from_dict
from tests.conftest import DISTRICT, STATION, StationThread, wait_until

BASE = f"ektp/v1/{DISTRICT}"
ST1 = f"{BASE}/{STATION}"
NOT_AUTHORIZED = 0x87


@dataclass(frozen=True)
class Certs:
    ca: pki.Pair
    server: pki.Pair
    st1: pki.Pair
    st2: pki.Pair
    district: pki.Pair
    rogue_ca: pki.Pair
    rogue_server: pki.Pair  # a broker certificate the district CA did not sign
    rogue_st1: pki.Pair  # CN 3210-st-1, from another CA


@pytest.fixture
def certs(tmp_path) -> Certs:
    ca = pki.make_ca(tmp_path / "pki", "district 3210 test CA")
    rogue = pki.make_ca(tmp_path / "rogue", "rogue CA")

    def client(authority, name):
        return pki.make_cert(authority, authority[0].parent, name, server=False)

    return Certs(
        ca=ca, server=pki.make_cert(ca, tmp_path / "pki", "127.0.0.1", server=True),
        st1=client(ca, pki.station_username(DISTRICT, STATION)),
        st2=client(ca, pki.station_username(DISTRICT, "st-2")),
        district=client(ca, pki.district_username(DISTRICT)),
        rogue_ca=rogue, rogue_server=pki.make_cert(rogue, tmp_path / "rogue", "127.0.0.1",
                                                   server=True),
        rogue_st1=client(rogue, pki.station_username(DISTRICT, STATION)),
    )


def start_broker(directory: Path, certs: Certs, server: pki.Pair) -> Broker:
    acl = directory / "acl.conf"
    directory.mkdir(parents=True, exist_ok=True)
    acl.write_text(pki.acl_for_district("ektp/v1", DISTRICT, [STATION, "st-2"]))
    port = free_port()
    listener = pki.tls_listener(port, ca_file=certs.ca[0], cert_file=server[0],
                                key_file=server[1], acl_file=acl,
                                crl_file=certs.ca[0].with_name("crl.pem"), address="127.0.0.1")
    return Broker(directory / "broker", port=port, persistence=False, listener=listener).start()


@pytest.fixture
def tls_broker(tmp_path, certs):
    broker = start_broker(tmp_path / "tls", certs, certs.server)
    yield broker
    broker.kill()


def broker_log(broker: Broker) -> str:
    path = broker.dir / "mosquitto.log"
    return path.read_text(errors="replace") if path.exists() else ""


class Peer:
    """A paho MQTT 5 client over TLS that keeps what it hears; one connection attempt."""

    def __init__(self, port: int, ca_file: Path, cert: pki.Pair | None,
                 client_id: str = "peer", *, session: bool = False) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.outcome: str | None = None  # "connected", or why it was not
        self.disconnects = 0
        self._acks: dict[int, object] = {}
        self._cond = threading.Condition()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=mqtt.MQTTv5)
        client.tls_set(ca_certs=str(ca_file), certfile=str(cert[0]) if cert else None,
                       keyfile=str(cert[1]) if cert else None, cert_reqs=ssl.CERT_REQUIRED)
        client.reconnect_delay_set(60, 60)  # a refused attempt is not retried in the test
        client.on_connect = lambda c, u, f, rc, p: self._settle(
            "connected" if not rc.is_failure else f"refused: {rc}")
        client.on_connect_fail = lambda c, u: self._settle("refused: TLS handshake failed")
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = lambda c, u, mid, rc, p: self._ack(mid, rc)
        client.on_subscribe = lambda c, u, mid, codes, p: self._ack(mid, codes)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600 if session else 0
        client.connect_async("127.0.0.1", port, clean_start=not session, properties=props)
        client.loop_start()
        self.client = client

    def _settle(self, outcome: str) -> None:
        with self._cond:
            self.outcome = self.outcome or outcome
            self._cond.notify_all()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.disconnects += 1
        self._settle(f"refused: {reason_code}")

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append((message.topic, message.payload))
            self._cond.notify_all()

    def _ack(self, mid: int, result: object) -> None:
        with self._cond:
            self._acks[mid] = result
            self._cond.notify_all()

    def wait_for(self, predicate, timeout: float = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    def connected(self) -> Peer:
        assert self.wait_for(lambda: self.outcome is not None), "no answer from the broker"
        assert self.outcome == "connected", self.outcome
        return self

    def subscribe(self, *topics: str) -> None:
        _, mid = self.client.subscribe([(topic, 1) for topic in topics])
        assert self.wait_for(lambda: mid in self._acks), "no SUBACK"

    def publish(self, topic: str, payload: bytes, *, retain: bool = False,
                properties: Properties | None = None) -> ReasonCode:
        """Publish at QoS 1 and return the PUBACK's reason code."""
        mid = self.client.publish(topic, payload, qos=1, retain=retain,
                                  properties=properties).mid
        assert self.wait_for(lambda: mid in self._acks), "no PUBACK"
        return self._acks[mid]  # type: ignore[return-value]

    def heard(self, topic: str) -> list[bytes]:
        with self._cond:
            return [payload for seen, payload in self.messages if seen == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def peers(tls_broker, certs):
    """peers(cert, client_id=...) → a connected Peer on the TLS broker (closed at the end)."""
    opened: list[Peer] = []

    def connect(cert: pki.Pair, client_id: str = "peer", *, session: bool = False) -> Peer:
        opened.append(Peer(tls_broker.port, certs.ca[0], cert, client_id, session=session))
        return opened[-1].connected()

    yield connect
    for peer in opened:
        peer.close()


def use_tls(settings: dict, port: int, ca: pki.Pair, own: pki.Pair) -> dict:
    settings["mqtt"].update(url=f"mqtts://127.0.0.1:{port}", ca_file=str(ca[0]),
                            cert_file=str(own[0]), key_file=str(own[1]))
    return settings


def job_states(peer: Peer, record_id: str) -> list[str]:
    events = [json.loads(payload) for payload in peer.heard(f"{ST1}/events")]
    return [e["job_state"] for e in events if e["type"] == "job" and e["record_id"] == record_id]


def test_the_station_prints_a_signed_record_sent_over_mutual_tls(
    station_settings, tls_broker, certs, peers, signed, printer_sim
):
    district = peers(certs.district)
    replies = f"{BASE}/_replies/district-{DISTRICT}"
    district.subscribe(f"{BASE}/+/events", f"{BASE}/+/availability", replies)
    record = signed(1)
    with StationThread(use_tls(station_settings, tls_broker.port, certs.ca, certs.st1)):
        assert district.wait_for(lambda: district.heard(f"{ST1}/availability") == [b"online"])
        assert district.publish(f"{ST1}/jobs", json.dumps(record).encode()).is_failure is False
        assert district.wait_for(
            lambda: job_states(district, record["record_id"])[-1:] == ["completed"], 20)
        request = Properties(PacketTypes.PUBLISH)
        request.ResponseTopic, request.CorrelationData = replies, b"status-1"
        district.publish(f"{ST1}/cmd/status", b"{}", properties=request)
        assert district.wait_for(lambda: district.heard(replies))  # the ACL lets replies out
    assert json.loads(district.heard(replies)[0])["ok"] is True
    assert printer_sim.printed == 1
    assert f"as {DISTRICT}-{STATION} " in broker_log(tls_broker)  # the CN became the client id


def test_another_station_hears_nothing_of_st1(certs, peers):
    station1, station2 = peers(certs.st1), peers(certs.st2)
    station1.subscribe(f"{ST1}/jobs", f"{ST1}/cmd/+")
    station2.subscribe(f"{ST1}/jobs", f"{ST1}/cmd/+", f"{BASE}/+/jobs", "#")
    district = peers(certs.district)
    for topic in (f"{ST1}/jobs", f"{ST1}/cmd/status", f"{BASE}/st-2/jobs"):
        assert district.publish(topic, b"{}").is_failure is False
    # The broker writes to each client in order: st-2's own job comes after anything before it.
    assert station2.wait_for(lambda: station2.heard(f"{BASE}/st-2/jobs"))
    assert station1.wait_for(lambda: len(station1.messages) == 2)
    assert {topic for topic, _ in station2.messages} == {f"{BASE}/st-2/jobs"}  # twice: + and #


def test_another_station_cannot_publish_as_st1_nor_take_its_session(certs, peers):
    station1 = peers(certs.st1, client_id=f"{DISTRICT}-{STATION}")
    station1.subscribe(f"{ST1}/jobs")
    district = peers(certs.district)
    district.subscribe(f"{BASE}/#")
    impostor = peers(certs.st2, client_id=f"{DISTRICT}-{STATION}")  # asks for st-1's client id
    forged = json.dumps({"schema": "ektp.event/1", "type": "job", "record_id": "x",
                         "job_state": "completed"}).encode()
    for leaf, retain in (("events", False), ("state", True), ("availability", True)):
        assert impostor.publish(f"{ST1}/{leaf}", forged, retain=retain).value == NOT_AUTHORIZED
    assert impostor.publish(f"{BASE}/st-2/events", b"{}").is_failure is False
    assert district.wait_for(lambda: district.heard(f"{BASE}/st-2/events"))
    assert [topic for topic, _ in district.messages] == [f"{BASE}/st-2/events"]
    # st-1 was not pushed off the broker: it is still connected and still gets its jobs.
    assert district.publish(f"{ST1}/jobs", b"{}").is_failure is False
    assert station1.wait_for(lambda: station1.heard(f"{ST1}/jobs"))
    assert station1.disconnects == 0


def test_jobs_queued_for_st1_survive_another_station_asking_for_its_session(certs, peers):
    station_id = f"{DISTRICT}-{STATION}"
    away = peers(certs.st1, station_id, session=True)
    away.subscribe(f"{ST1}/jobs")
    away.close()
    assert peers(certs.district).publish(f"{ST1}/jobs", b"queued").is_failure is False
    # Were the client id its to choose, the impostor would take over st-1's session, and
    # the broker would drop the queued job that the impostor may not read.
    impostor = peers(certs.st2, station_id, session=True)
    impostor.close()
    back = peers(certs.st1, station_id, session=True)
    assert back.wait_for(lambda: back.heard(f"{ST1}/jobs") == [b"queued"])
    assert away.messages == impostor.messages == []


@pytest.mark.parametrize(("who", "broker_says"), [
    ("no certificate", "peer did not return a certificate"),
    ("a certificate of another CA", "certificate verify failed"),
])
def test_a_client_without_a_district_certificate_cannot_connect(
    tls_broker, certs, peers, who, broker_says
):
    peers(certs.st1)  # the same broker admits a district certificate
    cert = None if who == "no certificate" else certs.rogue_st1
    stranger = Peer(tls_broker.port, certs.ca[0], cert)
    try:
        assert stranger.wait_for(lambda: stranger.outcome is not None)
        assert stranger.outcome.startswith("refused")
        assert wait_until(lambda: broker_says in broker_log(tls_broker))
    finally:
        stranger.close()


def test_a_revoked_station_is_shut_out_once_the_broker_reloads(tls_broker, certs, peers):
    station2 = peers(certs.st2)
    assert station2.publish(f"{BASE}/st-2/events", b"{}").is_failure is False
    pki.revoke(certs.ca, certs.st2[0])
    acl = tls_broker.dir.parent / "acl.conf"
    stations, tools = pki.split_names(DISTRICT, pki.issued_names(certs.ca, certs.ca[0].parent))
    acl.write_text(pki.acl_for_district("ektp/v1", DISTRICT, stations, district_users=tools))
    assert "3210-st-2" not in acl.read_text() and "3210-st-1" in acl.read_text()
    os.kill(tls_broker.process.pid, signal.SIGHUP)
    # The open connection loses its topics; a new one is refused by the CRL.
    assert wait_until(
        lambda: station2.publish(f"{BASE}/st-2/events", b"{}").value == NOT_AUTHORIZED)
    again = Peer(tls_broker.port, certs.ca[0], certs.st2)
    try:
        assert again.wait_for(lambda: again.outcome is not None)
        assert again.outcome.startswith("refused")
    finally:
        again.close()
    peers(certs.st1)


def test_the_station_refuses_a_broker_its_ca_did_not_sign(
    tmp_path, station_settings, certs, printer_sim
):
    # A rogue broker that would accept the station's certificate, with its own server certificate.
    rogue = start_broker(tmp_path / "rogue-broker", certs, certs.rogue_server)
    watcher = Peer(rogue.port, certs.rogue_ca[0], certs.district).connected()
    try:
        watcher.subscribe(f"{BASE}/+/availability")
        with StationThread(use_tls(station_settings, rogue.port, certs.ca, certs.st1)) as station:
            # TLS 1.3: the station, as client, ends the handshake with an "unknown CA" alert.
            assert wait_until(lambda: "alert unknown ca" in broker_log(rogue))
            assert not station.link.connected
            # Not silent: the cause is kept, shown on the panel and in `kiosk status`.
            assert wait_until(lambda: "CERTIFICATE_VERIFY_FAILED" in (
                station.core.state.link_error or ""), 10)
            assert station.core.desk.view().broker_error == station.core.state.link_error
        out = io.StringIO()
        print_status(from_dict(station_settings), out)
        assert "failed connection attempts" in out.getvalue()
        assert "CERTIFICATE_VERIFY_FAILED" in out.getvalue()
        assert watcher.messages == []
        assert printer_sim.printed == 0
    finally:
        watcher.close()
        rogue.kill()


def kiosk_pki(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="kiosk pki")
    pki.add_arguments(parser)
    return pki.run(parser.parse_args(argv))


def test_kiosk_pki_makes_what_an_installer_needs(tmp_path, capsys):
    ca_dir = tmp_path / "ca"
    assert kiosk_pki("ca", str(ca_dir), "--name", "Kab. Majalengka CA") == 0
    assert kiosk_pki("ca", str(ca_dir)) == 1  # never replaces a CA
    assert "already there" in capsys.readouterr().err
    assert kiosk_pki("server", str(ca_dir), "--host", "127.0.0.1", "--host", "localhost") == 0
    for station in (STATION, "st-2"):
        assert kiosk_pki("station", str(ca_dir), "--district", DISTRICT, "--station", station) == 0
    assert kiosk_pki("district", str(ca_dir), "--district", DISTRICT) == 0
    assert kiosk_pki("district", str(ca_dir), "--district", DISTRICT, "--name", "router") == 0
    assert kiosk_pki("revoke", str(ca_dir), str(ca_dir / "3210-st-2.crt")) == 0
    capsys.readouterr()
    assert kiosk_pki("acl", str(ca_dir), "--district", DISTRICT) == 0
    acl = capsys.readouterr().out
    users = [line.split()[1] for line in acl.splitlines() if line.startswith("user ")]
    assert users == ["district-3210", "district-3210-router", "3210-st-1"]
    assert {oct(path.stat().st_mode & 0o777) for path in ca_dir.glob("*.key")} == {"0o600"}

    (tmp_path / "acl.conf").write_text(acl)
    port = free_port()
    listener = pki.tls_listener(port, ca_file=ca_dir / "ca.crt", cert_file=ca_dir / "server.crt",
                                key_file=ca_dir / "server.key",
                                acl_file=tmp_path / "acl.conf", crl_file=ca_dir / "crl.pem",
                                address="127.0.0.1")
    broker = Broker(tmp_path / "broker", port=port, persistence=False, listener=listener).start()
    opened = [Peer(port, ca_dir / "ca.crt", (ca_dir / f"{name}.crt", ca_dir / f"{name}.key"))
              for name in ("3210-st-1", "district-3210", "district-3210-router", "3210-st-2")]
    try:
        assert all(peer.wait_for(lambda p=peer: p.outcome is not None) for peer in opened)
        assert [peer.outcome == "connected" for peer in opened] == [True, True, True, False]
        # Two district tools with their own certificates do not push each other off.
        assert opened[2].publish(f"{ST1}/jobs", b"{}").is_failure is False
        assert [peer.disconnects for peer in opened[:3]] == [0, 0, 0]
    finally:
        for peer in opened:
            peer.close()
        broker.kill()


@pytest.mark.parametrize("call", [
    lambda: pki.acl_for_district("ektp/v1", DISTRICT, ["st-1\nuser x"]),
    lambda: pki.acl_for_district("ektp/#", DISTRICT, ["st-1"]),
    lambda: pki.station_username("32/10", "st-1"),
    lambda: pki.station_username("3210-st", "1"),
    lambda: pki.district_username("3210-st"),
    lambda: pki.district_username(DISTRICT, "+"),
])
def test_names_that_would_widen_the_acl_are_refused(call):
    with pytest.raises(ValueError, match="must match"):
        call()


@pytest.mark.parametrize("district", ["3210-st", "32", "32100", "abcd", "3210/x"])
def test_kiosk_pki_refuses_a_district_that_is_not_four_digits(tmp_path, capsys, district):
    """Else ``--district 3210-st --station 1`` makes 3210-st-1: station st-1 of 3210 to the ACL."""
    assert kiosk_pki("ca", str(tmp_path)) == 0
    for command in (["station", "--station", "1"], ["district"], ["acl"]):
        with pytest.raises(SystemExit) as usage:
            kiosk_pki(command[0], str(tmp_path), "--district", district, *command[1:])
        assert usage.value.code == 2
        assert "must be 4 digits" in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.glob("*.crt")) == ["ca.crt"]


def test_a_certificate_names_its_hosts_and_its_key_is_private(tmp_path):
    ca = pki.make_ca(tmp_path, "CA")
    cert_path, key_path = pki.make_cert(ca, tmp_path, "broker.example", server=True,
                                        hosts=("broker.example", "10.0.0.5"), name="server")
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["broker.example"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["10.0.0.5"]
    assert key_path.stat().st_mode & 0o777 == 0o600
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca[0].read_bytes()))


def test_a_broker_certificate_for_another_host_is_refused(tmp_path, certs):
    # Signed by the right CA, but for another name: the client checks the name too.
    elsewhere = pki.make_cert(certs.ca, tmp_path / "elsewhere", "broker.example", server=True,
                              hosts=("broker.example", "10.9.9.9"))
    broker = start_broker(tmp_path / "elsewhere-broker", certs, elsewhere)
    client = Peer(broker.port, certs.ca[0], certs.st1)
    try:
        assert client.wait_for(lambda: client.outcome is not None)
        assert client.outcome == "refused: TLS handshake failed"
        assert wait_until(lambda: "alert bad certificate" in broker_log(broker))  # sent by client
    finally:
        client.close()
        broker.kill()
