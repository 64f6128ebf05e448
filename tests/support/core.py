"""The station core on a harness: a core and its store, with the station loop's
commit-then-act order, for tests that feed it events by hand.

The store is in memory (`MemoryStore`: no file) unless a test hands the SQLite spool in."""

from __future__ import annotations

import json

from kiosk.contract.signing import Verifier
from kiosk.sim.samples import make_record
from kiosk.station.config import from_dict
from kiosk.station.core import events as ev
from kiosk.station.core.machine import StationCore
from kiosk.station.spool import Spool
from tests.support.memstore import MemoryStore

BASE = "ektp/v1/3210/st-1"


def config(**printer):
    return from_dict({
        "station": {"district": "3210", "id": "st-1", "spool": ":memory:"},
        "printer": printer,
        "security": {"require_signed_jobs": False, "trusted_keys": []},
    })


class Harness:
    """A core plus its store, with the station loop's commit-then-act order."""

    def __init__(self, store: MemoryStore | Spool | None = None, **printer) -> None:
        self.printer = printer
        self.store = store if store is not None else MemoryStore()
        self.core = StationCore(config(**printer), self.store,
                                verifier=Verifier([], required=False))
        self.mid = 0
        self.start_actions = self._commit(self.core.start)

    def restart(self) -> Harness:
        """The station stops here (what is committed stays) and starts again."""
        store = self.store
        if isinstance(store, Spool):
            store.close()
            store = Spool(store.path)
        return Harness(store, **self.printer)

    def _commit(self, fn, *args):
        with self.store.transaction():
            return fn(*args)

    def send(self, event):
        return self._commit(self.core.handle, event)

    def record(self, index=1, **changes):
        body = make_record(index)
        body.update(changes)
        self.mid += 1
        payload = json.dumps(body).encode()
        return body, self.send(ev.MessageArrived(f"{BASE}/jobs", payload, self.mid, 1))

    def command(self, name, body=b"{}", correlation=None):
        """A district command; each call a new request unless *correlation* repeats one."""
        self.mid += 1
        correlation = correlation or b"c%d" % self.mid
        return self.send(ev.MessageArrived(f"{BASE}/cmd/{name}", body, self.mid, 1,
                                           response_topic="reply/here", correlation=correlation))

    def events(self, kind=None):
        found = []
        for item in self.store.outbox():
            body = json.loads(item.payload)
            if item.topic == f"{BASE}/events" and (kind is None or body["type"] == kind):
                found.append(body)
        return found

    def job_states(self, record_id):
        return [e["job_state"] for e in self.events("job") if e["record_id"] == record_id]

    def replies(self):
        return [(item.response, json.loads(item.payload)) for item in self.store.outbox()
                if item.topic == "reply/here"]

    def print_one(self, record_id):
        """The worker's side of a good card."""
        answer = self.send(ev.PickRequested(record_id))
        assert ev.AnswerPick(record_id, True) in answer
        self.send(ev.CardPicked(record_id))
        return self.send(ev.CardPrinted(record_id))


def of(actions, kind):
    return [a for a in actions if isinstance(a, kind)]
