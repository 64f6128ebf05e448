"""How every part of kiosk speaks MQTT 5 (mqtt.md, Connection): one client set-up for all.

The station's link, the district client, the router and ``kiosk doctor`` all make their
paho client here: MQTT 5 with paho's VERSION2 callbacks, back-off, ``mqtts://`` with the
server verified and an optional client certificate, a login from a password file, the
CONNECT properties of a persistent session, and the JSON properties every payload carries.
What each does with its connection (acks, outbox, subscriptions) stays with it.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

SCHEMES = {"mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True)
class Credentials:
    """TLS files and login; TLS is used for ``mqtts://`` URLs only."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    username: str | None = None
    password_file: str | None = None

    @classmethod
    def of(cls, section: Any) -> Credentials:
        """The credentials of a configuration section with these same key names."""
        return cls(section.ca_file, section.cert_file, section.key_file, section.username,
                   section.password_file)

    def apply(self, client: mqtt.Client, url: str) -> None:
        if urlsplit(url).scheme == "mqtts":
            client.tls_set(ca_certs=self.ca_file, certfile=self.cert_file,
                           keyfile=self.key_file, cert_reqs=ssl.CERT_REQUIRED)
        if self.username:
            password = Path(self.password_file).read_text().strip() if self.password_file else None
            client.username_pw_set(self.username, password)


def broker_address(url: str) -> tuple[str, int]:
    """Host and port of a ``mqtt://`` or ``mqtts://`` URL (ValueError for anything else)."""
    target = urlsplit(url)
    if target.scheme not in SCHEMES:
        raise ValueError(f"broker URL must start with mqtt:// or mqtts://, not {url!r}")
    return target.hostname or "127.0.0.1", target.port or SCHEMES[target.scheme]


def make_client(client_id: str, *, url: str, credentials: Credentials | None = None,
                manual_ack: bool = False, max_backoff_s: int = 30) -> mqtt.Client:
    """A paho MQTT 5 client, back-off 1 s doubling to *max_backoff_s*, TLS and login set up."""
    broker_address(url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5, manual_ack=manual_ack)
    client.reconnect_delay_set(1, max_backoff_s)
    (credentials or Credentials()).apply(client, url)
    return client


def session_properties(session_expiry_s: int, *, receive_maximum: int | None = None,
                       maximum_packet_size: int | None = None) -> Properties:
    """CONNECT properties: a session kept *session_expiry_s* after a disconnect."""
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = session_expiry_s
    if receive_maximum is not None:
        props.ReceiveMaximum = receive_maximum
    if maximum_packet_size is not None:
        props.MaximumPacketSize = maximum_packet_size
    return props


def connect_client(client: mqtt.Client, url: str, *, session_expiry_s: int,
                   keepalive: int = 30, clean_start: bool | None = None,
                   properties: Properties | None = None) -> None:
    """Connect in the background (paho's thread retries until it can).

    A session that expires (> 0) is kept across connects unless *clean_start* says
    otherwise: the broker's copy of it holds the messages sent while we were away.
    """
    host, port = broker_address(url)
    if clean_start is None:
        clean_start = session_expiry_s == 0
    client.connect_async(host, port, keepalive=keepalive, clean_start=clean_start,
                         properties=properties or session_properties(session_expiry_s))


def json_properties(correlation: bytes | None = None) -> Properties:
    """PUBLISH properties of a JSON payload (mqtt.md: every payload is UTF-8 JSON)."""
    props = Properties(PacketTypes.PUBLISH)
    props.PayloadFormatIndicator = 1
    props.ContentType = "application/json"
    if correlation is not None:
        props.CorrelationData = correlation
    return props
