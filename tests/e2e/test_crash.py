"""kill -9 under load, repeated: the real meterhub on one SQLite file, driven
by device threads, killed with SIGKILL at random moments and restarted on
the same file, cycle after cycle.

Devices behave like the firmware: each sends its own meter's readings in
order, some one reading per POST, some in batches; a request whose answer
never came (connection reset by the kill, refused while the server is down)
or that was answered 503 is sent again, with the same readings, until it is
answered 201. meterhub de-duplicates such retries by the primary key
(meter, ts) of meter_readings: the 201 of a retry counts the readings the
lost attempt had already committed as duplicates.

Afterwards (the devices drain their retries against a last, clean run):
  - every reading a device sent is stored exactly once — in particular every
    acknowledged one, across every kill;
  - nothing is stored that no device sent;
  - the 201 bodies add up: accepted + duplicates = readings in the request,
    and duplicates appear only in the retry of an attempt whose answer was
    lost (a 503 stored nothing);
  - PRAGMA integrity_check is "ok";
  - every rollup_1m/rollup_1h row equals the aggregation of the raw rows
    (db_check.py recomputes them with Python's sqlite3).

Cycles: METERHUB_CRASH_CYCLES (default 8, a few seconds, for `make test`);
run it with METERHUB_CRASH_CYCLES=50 for the full run (see docs/testing.md
for its numbers). METERHUB_CRASH_SEED repeats a run; the seed is printed.
"""
import http.client as httplib
import os
import random
import signal
import threading
import time

from conftest import BASE_TS, HttpClient, reading
import db_check

DEVICES = 6  # half send single readings, half batches
STEP_MS = 1000  # one reading per second of meter time
KWH_STEP = 0.001  # below the counter resolution: db_check's kWh rule holds


class Device(threading.Thread):
    """One meter: sends its readings in order and retries until each request is answered."""

    def __init__(self, index, net, rng_seed):
        super().__init__(daemon=True, name=f"device-{index}")
        self.meter = f"crash-{index}"
        self.batched = index % 2 == 1
        self.net = net
        self.rng = random.Random(rng_seed)
        self.k = 0  # next reading number
        self.sent = {}  # ts -> energy of every reading ever sent
        self.acked = set()  # ts of readings answered 201
        self.accepted = 0  # sum of "accepted" over all 201 bodies
        self.requests = self.retries = self.duplicates = 0
        self.unanswered = 0  # attempts that got no answer (killed server)
        self.errors = []
        self.pending = None  # (body, [ts]) of the request in flight or to retry
        self.lost_attempt = False  # an attempt of `pending` got no answer (it may have committed)
        self.answered = 0  # readings in requests answered 201

    def next_request(self):
        n = self.rng.randint(2, 60) if self.batched else 1
        out, tss = [], []
        for _ in range(n):
            ts = BASE_TS + self.k * STEP_MS
            energy = round(1000 + self.k * KWH_STEP, 6)
            out.append(reading(self.meter, ts, energy=energy, voltage=220 + self.k % 20,
                               current=1 + (self.k % 7) / 10, power=100 + self.k % 50,
                               frequency=50 + (self.k % 3) / 100))
            self.sent[ts] = energy
            tss.append(ts)
            self.k += 1
        return out, tss

    def run(self):
        client, port = None, None
        try:
            while True:
                if self.pending is None:
                    if self.net.draining.is_set():
                        return
                    self.pending = self.next_request()
                elif self.net.stop.is_set():
                    return
                cur = self.net.port()
                if cur is None:
                    time.sleep(0.01)
                    continue
                if cur != port:
                    if client:
                        client.close()
                    client, port = HttpClient(cur, timeout=10), cur
                self.requests += 1
                try:
                    r = client.request("POST", "/api/v1/readings", self.pending[0])
                except (OSError, httplib.HTTPException):
                    self.unanswered += 1
                    self.lost_attempt = True
                    self.retries += 1
                    client.close()
                    time.sleep(0.01)
                    continue
                if r.status == 503:
                    self.retries += 1
                    time.sleep(0.05)
                    continue
                if r.status != 201:
                    self.errors.append(f"{self.meter}: unexpected answer {r}")
                    return
                doc = r.json()
                n = len(self.pending[1])
                if doc.get("accepted", -1) + doc.get("duplicates", -1) != n:
                    self.errors.append(f"{self.meter}: 201 body {doc} for {n} readings")
                # Only an attempt whose answer was lost may have stored readings
                # (a 503 stores nothing), so only its retry may see duplicates.
                if doc["duplicates"] and not self.lost_attempt:
                    self.errors.append(f"{self.meter}: {doc} for a request that no lost "
                                       f"attempt could have stored")
                self.answered += n
                self.lost_attempt = False
                self.accepted += doc["accepted"]
                self.duplicates += doc["duplicates"]
                self.acked.update(self.pending[1])
                self.pending = None
        except BaseException as e:  # noqa: BLE001
            self.errors.append(f"{self.meter}: {e!r}")
        finally:
            if client:
                client.close()


class Net:
    """Where the devices find the server (None while it is down)."""

    def __init__(self):
        self._port = None
        self._lock = threading.Lock()
        self.draining = threading.Event()  # finish the request in hand, send no new ones
        self.stop = threading.Event()  # give up even on the request in hand

    def port(self):
        with self._lock:
            return self._port

    def set_port(self, p):
        with self._lock:
            self._port = p


def test_kill9_cycles_keep_every_acknowledged_reading(server_factory, capsys):
    cycles = int(os.environ.get("METERHUB_CRASH_CYCLES", "8"))
    seed = int(os.environ.get("METERHUB_CRASH_SEED", str(random.randrange(1 << 30))))
    with capsys.disabled():
        print(f"\ncrash test: {cycles} cycles, seed {seed} (METERHUB_CRASH_SEED={seed} repeats it)")
    rng = random.Random(seed)
    net = Net()
    devices = [Device(i, net, rng.randrange(1 << 30)) for i in range(DEVICES)]
    # The readings are from 2025: keep raw rows and minute rollups forever.
    srv = server_factory(start=False, args=["--retention-raw-days", "0", "--retention-1m-days", "0"])
    t0 = time.monotonic()
    kills = 0
    acked_at_kill = []
    for d in devices:
        d.start()
    try:
        for cycle in range(cycles):
            srv.start()
            net.set_port(srv.port)
            time.sleep(rng.uniform(0.05, 1.2))  # a random moment under load
            net.set_port(None)  # devices still hold their connections: the kill resets them
            srv.send_signal(signal.SIGKILL)
            rc = srv.wait_exit(10)
            assert rc == -signal.SIGKILL, f"cycle {cycle}: exit code {rc}\n{srv.run_log()}"
            kills += 1
            acked_at_kill.append(sum(len(d.acked) for d in devices))
            for d in devices:
                assert not d.errors, d.errors
        # A last clean run: every device gets its request in hand answered.
        srv.start()
        net.set_port(srv.port)
        net.draining.set()
        for d in devices:
            d.join(60)
        assert not any(d.is_alive() for d in devices), "devices did not drain within 60 s"
    finally:
        net.draining.set()
        net.stop.set()
        for d in devices:
            d.join(15)
    errors = [e for d in devices for e in d.errors]
    assert not errors, errors[:5]
    rc = srv.stop()
    assert rc == 0 and not srv.killed, srv.run_log()
    elapsed = time.monotonic() - t0

    stored = db_check.raw_readings(srv.db_path)
    for d in devices:
        rows = stored.get(d.meter, [])
        ts = [r[0] for r in rows]
        assert len(ts) == len(set(ts)), f"{d.meter}: a reading is stored twice"
        assert set(ts) == d.acked, (
            f"{d.meter}: {len(d.acked - set(ts))} acknowledged readings lost, "
            f"{len(set(ts) - d.acked)} stored but never acknowledged")
        assert d.acked == set(d.sent), f"{d.meter}: a sent reading was never acknowledged"
        for t, _v, _i, _p, e, _f, _pf in rows:
            assert e == d.sent[t], f"{d.meter} ts {t}: stored energy {e}, sent {d.sent[t]}"
        assert d.answered == len(rows) and d.accepted <= len(rows), (
            f"{d.meter}: 201 answers for {d.answered} readings ({d.accepted} new), "
            f"{len(rows)} stored")
    assert set(stored) == {d.meter for d in devices}, f"unexpected meters {set(stored)}"
    assert db_check.integrity(srv.db_path) == ["ok"]
    bad = db_check.rollup_mismatches(srv.db_path)
    assert not bad, "rollups differ from the raw rows:\n" + "\n".join(bad)

    total = sum(len(d.acked) for d in devices)
    with capsys.disabled():
        print(f"crash test: {kills} kills in {elapsed:.1f} s; {total} readings stored once each; "
              f"{sum(d.requests for d in devices)} requests, "
              f"{sum(d.unanswered for d in devices)} unanswered (retried), "
              f"{sum(d.retries for d in devices)} retries, "
              f"{sum(d.duplicates for d in devices)} readings answered as duplicates; "
              f"acknowledged before each kill: {acked_at_kill}")
    assert total > 0 and kills == cycles
