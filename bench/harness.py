"""What the station benches share: a private broker, simulators, the station as its own
process, and the baselines every figure is printed beside (broker latency, one fsync).

Benches are measurements, not tests: they print figures and never fail on them.
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kiosk.contract.signing import generate_key_pair, load_private_key  # noqa: E402
from kiosk.sim.broker import Broker  # noqa: E402

STATION, DISTRICT = "bench-01", "3210"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def broker_latency(url_port: int, count: int = 50) -> list[float]:
    """Publish → subscriber delivery on the same broker, QoS 1, same-size-ish payload."""
    received: dict[int, float] = {}
    done = threading.Event()

    def on_message(client, userdata, message):
        received[int(message.payload[:8])] = time.monotonic()
        if len(received) == count:
            done.set()

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    sub.on_message = on_message
    sub.connect("127.0.0.1", url_port)
    sub.subscribe("bench/latency", qos=1)
    sub.loop_start()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.connect("127.0.0.1", url_port)
    pub.loop_start()
    time.sleep(0.3)
    sent: dict[int, float] = {}
    padding = b"x" * 40_000  # about a record's size
    for index in range(count):
        sent[index] = time.monotonic()
        pub.publish("bench/latency", f"{index:08d}".encode() + padding, qos=1).wait_for_publish()
        time.sleep(0.02)
    done.wait(10)
    for client in (pub, sub):
        client.disconnect()
        client.loop_stop()
    return [received[i] - sent[i] for i in sent if i in received]


def fsync_commit(directory: Path, count: int = 50) -> list[float]:
    """One small durable SQLite commit (WAL, synchronous=FULL), as the spool does."""
    db = sqlite3.connect(directory / "fsync.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (x BLOB)")
    times = []
    for _ in range(count):
        start = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t VALUES (?)", (b"x" * 2000,))
        db.execute("COMMIT")
        times.append(time.perf_counter() - start)
    db.close()
    return times


class World:
    """A broker, a key pair and a work directory for one bench run."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="kiosk-bench-"))
        self.broker = Broker(self.dir / "broker").start()
        (self.dir / "keys").mkdir()
        private, self.public = generate_key_pair(self.dir / "keys")
        self.key = load_private_key(private)

    def station_toml(self, printer: str, tray: str, **printer_keys: object) -> Path:
        extra = "".join(f"{key} = {value}\n" for key, value in printer_keys.items())
        path = self.dir / "station.toml"
        path.write_text(
            f'[station]\ndistrict = "{DISTRICT}"\nid = "{STATION}"\n'
            f'spool = "{self.dir / "spool.db"}"\n'
            f'[mqtt]\nurl = "{self.broker.url}"\n'
            f'[printer]\nport = "{printer}"\n{extra}'
            f'[tray]\nport = "{tray}"\n'
            f'[security]\ntrusted_keys = ["{self.public}"]\n'
        )
        return path

    def start_station(self, config: Path) -> subprocess.Popen:
        log = open(self.dir / "station.log", "ab")  # noqa: SIM115 - lives as long as the process
        return subprocess.Popen([sys.executable, "-m", "kiosk", "run", "--config", str(config)],
                                stdout=log, stderr=log, cwd=ROOT)

    def close(self) -> None:
        self.broker.stop()


def peak_rss_mb(pid: int) -> float:
    """VmHWM (peak resident set) of a live process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a live process has used so far (/proc/PID/stat), in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "; field 3 is fields[0]
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def median(values: list[float]) -> float:
    return statistics.median(values)


os.environ.setdefault("GPIOZERO_PIN_FACTORY", "mock")


# -- helpers of the burst bench and its test (tests/test_burst.py) ---------------------------


def signed_payloads(key, count: int, *, start: int = 1) -> list[bytes]:
    """*count* signed sample records as the district sends them (compact JSON bytes)."""
    import json

    from kiosk.contract.signing import sign_record
    from kiosk.sim.samples import make_record

    return [json.dumps(sign_record(make_record(index), key), separators=(",", ":")).encode()
            for index in range(start, start + count)]


def raw_insert_rate(directory: Path, payloads: list[bytes], per_commit: int) -> float:
    """Rows/s of the same job rows into a bare SQLite file with the spool's schema and
    pragmas (WAL, synchronous=FULL), one durable commit every *per_commit* rows."""
    import json

    from kiosk.contract.record import mask_nik
    from kiosk.station.spool import SCHEMA

    path = directory / f"raw-{per_commit}.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(SCHEMA)
    rows = []
    for payload in payloads:
        body = json.loads(payload)
        rows.append((body["record_id"], body.get("priority", 0), mask_nik(body["nik"]), payload))
    job_sql = ("INSERT INTO jobs (record_id, priority, state, nik_masked, received_at,"
               " updated_at) VALUES (?, ?, 'pending', ?, ?, ?)")
    record_sql = "INSERT INTO records (record_id, payload) VALUES (?, ?)"
    start = time.perf_counter()
    for first in range(0, len(rows), per_commit):
        now = time.time()
        batch = rows[first:first + per_commit]
        db.execute("BEGIN IMMEDIATE")
        db.executemany(job_sql, [(rid, priority, nik, now, now) for rid, priority, nik, _ in batch])
        db.executemany(record_sql, [(rid, payload) for rid, _, _, payload in batch])
        db.execute("COMMIT")
    elapsed = time.perf_counter() - start
    db.close()
    path.unlink()
    return len(rows) / elapsed


def unacknowledged(port: int, client_id: str, wait: float = 2.0) -> int:
    """Messages the broker still holds unacknowledged for *client_id*'s session: resume the
    session (no new subscription) and count what the broker delivers again."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    got: list[str] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5, manual_ack=True)
    client.on_message = lambda c, u, message: got.append(message.topic)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    client.connect("127.0.0.1", port, clean_start=False, properties=props)
    client.loop_start()
    time.sleep(wait)
    client.disconnect()
    client.loop_stop()
    return len(got)


def process_figures(pid: int) -> tuple[float, int, int]:
    """Resident set (MB), open file descriptors and threads of a live process."""
    status = dict(line.split(":", 1) for line in
                  Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    rss = int(status["VmRSS"].split()[0]) / 1024
    return rss, len(os.listdir(f"/proc/{pid}/fd")), int(status["Threads"])
