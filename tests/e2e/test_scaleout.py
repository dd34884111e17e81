"""Scale-out end to end (issue 8): several meterhub nodes on one PostgreSQL
database. A reading ingested on one node reaches WebSocket subscribers on the
others after commit, in order per meter, once; latest-value caches agree; a
node that lost the database resyncs; registry changes and alerts behave as
with one node.

One throwaway PostgreSQL 15 cluster per module (tests/pg/pg_cluster.py), a
fresh database per test. The cluster (and every database in it) is removed at
the end of the module; each test's servers are stopped by server_factory.
"""
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import pytest

from conftest import (BASE_TS, iso, post_async, reading, run_async, run_binary, ws_assert_silent,
                      ws_connect, ws_open, ws_recv_json, ws_recv_n)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pg"))
from pg_cluster import Cluster  # noqa: E402

# Fast readers must get every reading, never a coalesced subset: the tests are
# about the fan-out, not about slow clients.
NODE_FLAGS = ["--ws-queue", "100000", "--query-threads", "2", "--pg-connections", "3"]


@pytest.fixture(scope="module")
def pg():
    if not os.path.exists("/usr/lib/postgresql/15/bin/initdb") and \
            "METERHUB_PG_BIN" not in os.environ:
        pytest.skip("PostgreSQL 15 server binaries not installed")
    base = tempfile.mkdtemp(prefix="fan_pg_", dir="/tmp")
    c = Cluster(base)
    c.init().start()
    try:
        yield c
    finally:
        c.destroy()


@pytest.fixture
def db_url(pg):
    return pg.create_database("fan_" + uuid.uuid4().hex[:12])


@pytest.fixture
def nodes(server_factory, db_url):
    """make(name, *args) -> a running node on the test's database."""
    def make(name, *args):
        return server_factory([*NODE_FLAGS, "--node-id", name, *args], db=db_url)
    return make


def ts(k):
    return BASE_TS + 1000 * k


def metric(srv, name):
    """A sample value from GET /metrics (no labels), or None."""
    r = srv.get("/metrics")
    assert r.status == 200, r
    for line in r.text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def wait_until(pred, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        time.sleep(0.05)


async def post_ok(srv, body):
    r = await post_async(srv, body)
    assert r.status == 201, r
    return r.json()


def energies(msgs):
    return [m["energy"] for m in msgs]


# ---------------------------------------------------------------------------
# (a) A -> B: once, in order; batches; a batch too large for a notification


def test_reading_on_a_reaches_subscriber_on_b_once_in_order(nodes):
    a, b = nodes("a"), nodes("b")

    async def main():
        ws = await ws_connect(b, "m1", max_queue=None)
        try:
            for k in range(5):
                await post_ok(a, reading("m1", ts(k), energy=k))
            assert energies(await ws_recv_n(ws, 5)) == list(range(5))
            # One POST of several readings: one batch, in order.
            await post_ok(a, [reading("m1", ts(10 + k), energy=10 + k) for k in range(20)])
            assert energies(await ws_recv_n(ws, 20)) == list(range(10, 30))
            # 500 readings exceed a NOTIFY payload: B reads the batch back.
            await post_ok(a, [reading("m1", ts(100 + k), energy=100 + k) for k in range(500)])
            got = await ws_recv_n(ws, 500, 20)
            assert energies(got) == list(range(100, 600))
            assert got[0]["ts"] == iso(ts(100)) and got[-1]["ts"] == iso(ts(599))
            # Nothing twice (a repeat of a batch, or of A's own readings).
            await ws_assert_silent(ws, 1.0)
        finally:
            await ws.close()

    run_async(main())
    assert metric(b, "meterhub_fanout_pointer_fetches_total") >= 1
    assert metric(b, "meterhub_fanout_connected") == 1
    # A's own batches reach A's subscribers through its ingest, not again via NOTIFY.
    assert metric(a, "meterhub_fanout_batches_total") == 0
    assert metric(a, "meterhub_fanout_skipped_batches_total") >= 7


def test_duplicates_posted_to_another_node_are_not_pushed(nodes):
    a, b = nodes("a"), nodes("b")

    async def main():
        ws = await ws_connect(b, "dup", max_queue=None)
        try:
            await post_ok(a, [reading("dup", ts(k), energy=k) for k in range(3)])
            assert energies(await ws_recv_n(ws, 3)) == [0, 1, 2]
            doc = await post_ok(b, [reading("dup", ts(k), energy=k) for k in range(4)])
            assert doc == {"accepted": 1, "duplicates": 3}
            assert energies(await ws_recv_n(ws, 1)) == [3]
            await ws_assert_silent(ws, 0.5)
        finally:
            await ws.close()

    run_async(main())


# ---------------------------------------------------------------------------
# (b) Latest-value caches stay coherent


def test_new_subscriber_on_b_gets_latest_written_via_a(nodes):
    a, b = nodes("a"), nodes("b")

    async def main():
        watcher = await ws_connect(b, "lat", max_queue=None)
        try:
            await post_ok(a, [reading("lat", ts(k), energy=k) for k in range(3)])
            # A late reading (older ts) must not become the latest.
            await post_ok(a, reading("lat", ts(-5), energy=0.5))
            assert energies(await ws_recv_n(watcher, 4)) == [0, 1, 2, 0.5]
        finally:
            await watcher.close()
        fresh = await ws_connect(b, "lat", ready=False)
        try:
            first = await ws_recv_json(fresh)
            assert first["energy"] == 2 and first["ts"] == iso(ts(2)), first
            await ws_assert_silent(fresh, 0.3)
        finally:
            await fresh.close()

    run_async(main())
    doc = b.meters()
    [m] = [m for m in doc["meters"] if m["meter_id"] == "lat"]
    assert m["latest"]["energy"] == 2 and m["latest"]["ts"] == iso(ts(2)), m


def test_node_started_later_primes_latest_from_the_database(nodes):
    a = nodes("a")
    a.post_ok([reading("early", ts(k), energy=k) for k in range(3)])
    b = nodes("b")

    async def main():
        ws = await ws_connect(b, "early", ready=False)
        try:
            assert (await ws_recv_json(ws))["energy"] == 2
            await post_ok(a, reading("early", ts(3), energy=3))
            assert energies(await ws_recv_n(ws, 1)) == [3]
            await ws_assert_silent(ws, 0.5)
        finally:
            await ws.close()

    run_async(main())


# ---------------------------------------------------------------------------
# (c) Three nodes, writes to all of them


def test_three_nodes_round_robin_every_subscriber_gets_all_once_in_order(nodes):
    ns = [nodes("n1"), nodes("n2"), nodes("n3")]
    n = 60

    async def main():
        subs = [await ws_connect(s, "rr", max_queue=None) for s in ns]
        try:
            for k in range(n):
                await post_ok(ns[k % 3], reading("rr", ts(k), energy=k))
            for s in subs:
                assert energies(await ws_recv_n(s, n, 20)) == list(range(n))
            for s in subs:
                await ws_assert_silent(s, 0.3)
        finally:
            for s in subs:
                await s.close()

    run_async(main())


# ---------------------------------------------------------------------------
# Load helpers for (d) and (e)


class Device(threading.Thread):
    """Posts readings of one meter one by one, each to the next node in turn;
    a reading whose POST failed (connection error, 5xx) is retried, on the
    next node, until acknowledged (201). `acked` holds the acknowledged ts."""

    def __init__(self, meter, targets, stop, pause=0.005):
        super().__init__(daemon=True)
        self.meter, self.targets, self.stop_evt, self.pause = meter, targets, stop, pause
        self.acked = []
        self.failures = 0
        self.statuses = {}
        self.error = None

    def run(self):
        k, turn = 0, 0
        try:
            while not self.stop_evt.is_set():
                r = reading(self.meter, ts(k), energy=k)
                while not self.stop_evt.is_set():
                    srv = self.targets[turn % len(self.targets)]
                    turn += 1
                    if not srv.running:
                        continue
                    try:
                        resp = srv.post(r, timeout=10)
                    except (OSError, ConnectionError):
                        self.failures += 1
                        time.sleep(0.05)
                        continue
                    self.statuses[resp.status] = self.statuses.get(resp.status, 0) + 1
                    if resp.status == 201:
                        self.acked.append(ts(k))
                        break
                    self.failures += 1
                    time.sleep(0.05)
                else:
                    break
                k += 1
                time.sleep(self.pause)
        except BaseException as e:  # reported by the test
            self.error = e


async def collect(ws, sink, stop):
    """Appends every reading a /ws/{meter} socket receives to sink until stop."""
    while not stop.is_set():
        try:
            sink.append(await ws_recv_json(ws, 0.2))
        except asyncio.TimeoutError:
            continue


async def drain_until(ws, sink, expected_ts, timeout):
    """Keeps reading until every expected ts has arrived (or timeout)."""
    deadline = time.monotonic() + timeout
    want = set(iso(t) for t in expected_ts)
    while not want.issubset(m["ts"] for m in sink):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        with contextlib.suppress(asyncio.TimeoutError):
            sink.append(await ws_recv_json(ws, min(remaining, 0.5)))


def stored_ts(srv, meter):
    out, _ = srv.all_readings(meter, limit=1000)
    return [r["ts"] for r in out]


def check_exactly_once(meter, dev, got, stored):
    acked = [iso(t) for t in dev.acked]
    assert len(set(acked)) == len(acked)
    # Stored: every acknowledged reading, once (the primary key), nothing else
    # (every reading was retried until acknowledged).
    assert sorted(stored) == sorted(acked), \
        f"{meter}: stored {len(stored)}, acknowledged {len(acked)}"
    seen = [m["ts"] for m in got]
    dups = {t for t in seen if seen.count(t) > 1}
    assert not dups, f"{meter}: subscriber got readings twice: {sorted(dups)[:5]}"
    missing = set(acked) - set(seen)
    assert not missing, f"{meter}: subscriber missed {len(missing)} acknowledged readings, " \
                        f"e.g. {sorted(missing)[:5]}"


# ---------------------------------------------------------------------------
# (d) kill -9 of a node under load


def test_kill_9_node_under_load_every_acked_reading_stored_once_and_pushed(nodes):
    a, b = nodes("a"), nodes("b")
    a.allow_error_logs = True
    meters = [f"k{i}" for i in range(4)]
    stop = threading.Event()
    devices = [Device(m, [a, b], stop) for m in meters]

    async def main():
        subs = {m: await ws_connect(b, m, max_queue=None) for m in meters}
        got = {m: [] for m in meters}
        collecting = threading.Event()
        tasks = [asyncio.create_task(collect(subs[m], got[m], collecting)) for m in meters]
        try:
            for d in devices:
                d.start()
            await asyncio.sleep(1.5)
            a.proc.send_signal(signal.SIGKILL)  # mid-load, no shutdown
            await asyncio.to_thread(a.proc.wait, 5)
            await asyncio.sleep(1.5)  # devices carry on through B
            stop.set()
            for d in devices:
                await asyncio.to_thread(d.join, 15)
            collecting.set()
            await asyncio.gather(*tasks)
            for m, d in zip(meters, devices):
                await drain_until(subs[m], got[m], d.acked, 10)
        finally:
            stop.set()
            for ws in subs.values():
                await ws.close()
        return got

    got = run_async(main(), timeout=80)
    for m, d in zip(meters, devices):
        assert d.error is None, d.error
        assert not d.is_alive()
        assert len(d.acked) > 20, (m, d.statuses)
        check_exactly_once(m, d, got[m], stored_ts(b, m))
    a.proc = None  # killed on purpose: nothing left for the teardown to stop


# ---------------------------------------------------------------------------
# (e) PostgreSQL restarts under load


def test_postgres_restart_under_load_503_then_recovery_and_resync(pg, nodes):
    a, b = nodes("a"), nodes("b")
    a.allow_error_logs = b.allow_error_logs = True
    stop = threading.Event()
    dev = Device("pgr", [a], stop, pause=0.01)
    probes = {"post": [], "readyz": []}

    def probe_while_down():
        # Wait until the server is really down (the socket file is gone), then
        # look at what a client gets.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not probes["readyz"]:
            if not os.path.exists(os.path.join(pg.sock, f".s.PGSQL.{pg.port}")):
                with contextlib.suppress(OSError):
                    r = a.post(reading("probe", ts(0)), timeout=10)
                    probes["post"].append((r.status, r.body))
                with contextlib.suppress(OSError):
                    probes["readyz"].append(a.get("/readyz", timeout=10).status)
            time.sleep(0.05)

    async def main():
        ws = await ws_connect(b, "pgr", max_queue=None)
        got = []
        collecting = threading.Event()
        task = asyncio.create_task(collect(ws, got, collecting))
        try:
            dev.start()
            await asyncio.sleep(1.0)
            prober = threading.Thread(target=probe_while_down, daemon=True)
            prober.start()
            await asyncio.to_thread(pg.restart, 2)
            await asyncio.to_thread(prober.join, 15)
            # Recovery by itself: writes succeed again.
            n_after = len(dev.acked)
            await asyncio.to_thread(wait_until, lambda: len(dev.acked) > n_after + 20, 20,
                                    "writes after the restart")
            stop.set()
            await asyncio.to_thread(dev.join, 15)
            collecting.set()
            await task
            await drain_until(ws, got, dev.acked, 15)
        finally:
            stop.set()
            await ws.close()
        return got

    got = run_async(main(), timeout=85)
    assert dev.error is None, dev.error
    assert probes["post"], "no POST was answered while PostgreSQL was down"
    status, body = probes["post"][0]
    assert status == 503, (status, body)
    assert json.loads(body)["error"]["code"] == "store_unavailable", body
    assert 503 in probes["readyz"], probes["readyz"]
    assert a.get("/readyz").status == 200
    # B wrote nothing across the restart: its writer connection is found broken
    # by the first use after it (one 503), then reopened.
    wait_until(lambda: b.get("/readyz").status == 200, 10, "B's /readyz green again")
    check_exactly_once("pgr", dev, got, stored_ts(b, "pgr"))
    wait_until(lambda: metric(b, "meterhub_fanout_reconnects_total") >= 1, 10,
               "B's listener reconnect")
    assert metric(b, "meterhub_fanout_resyncs_total") >= 2  # start-up and after the restart


# ---------------------------------------------------------------------------
# (f) Registry changes reach the other nodes' multiplexed /ws


def test_meter_created_and_deleted_on_a_shows_on_b(nodes):
    a, b = nodes("a"), nodes("b")

    async def main():
        ws = await ws_open(b, "/ws", max_queue=None)
        try:
            await ws.send(json.dumps({"subscribe": "*"}))
            snap = await ws_recv_json(ws)
            assert snap["type"] == "snapshot", snap
            r = await asyncio.to_thread(a.http, "POST", "/api/v1/meters",
                                        {"meter_id": "reg1", "name": "Kitchen",
                                         "interval_s": 10})
            assert r.status == 201, r
            msg = await ws_recv_json(ws, 5)
            assert msg == {"type": "meter", "event": "created", "meter_id": "reg1"}, msg
            assert any(m["meter_id"] == "reg1" for m in b.meters()["meters"])
            r = await asyncio.to_thread(a.http, "DELETE", "/api/v1/meters/reg1?confirm=reg1")
            assert r.status == 200, r
            msg = await ws_recv_json(ws, 5)
            assert msg == {"type": "meter", "event": "deleted", "meter_id": "reg1"}, msg
            assert not any(m["meter_id"] == "reg1" for m in b.meters()["meters"])
        finally:
            await ws.close()

    run_async(main())


# ---------------------------------------------------------------------------
# (g) Alerts: evaluated by one node only


def test_alert_raised_once_with_two_nodes(nodes):
    a, b = nodes("a"), nodes("b")
    wait_until(lambda: (metric(a, "meterhub_alert_leader") or 0) +
               (metric(b, "meterhub_alert_leader") or 0) == 1, 10, "one alert leader")
    leader, follower = (a, b) if metric(a, "meterhub_alert_leader") == 1 else (b, a)
    follower.post_ok(reading("al", ts(0), voltage=230))
    # Rules put through the follower: stored, and picked up by the leader.
    rules = {"rules": [{"kind": "under_voltage", "threshold": 207, "hysteresis": 3}]}
    r = follower.http("PUT", "/api/v1/meters/al/alerts", rules)
    assert r.status == 200, r
    time.sleep(6.5)  # the leader re-reads rules every 5 s
    follower.post_ok(reading("al", ts(1), voltage=190))
    wait_until(lambda: follower.get_json("/api/v1/alerts?active=true")["count"] >= 1, 10,
               "the alert")
    time.sleep(2.0)  # a second node raising it would have done so by now
    doc = b.get_json("/api/v1/alerts")
    assert doc["count"] == 1, doc
    assert doc["alerts"][0]["kind"] == "under_voltage"
    ev = metric(leader, "meterhub_alert_readings_evaluated_total")
    assert ev >= 1
    assert metric(follower, "meterhub_alert_readings_evaluated_total") == 0


def test_alert_leadership_moves_when_the_leader_dies(nodes):
    a, b = nodes("a"), nodes("b")
    wait_until(lambda: (metric(a, "meterhub_alert_leader") or 0) +
               (metric(b, "meterhub_alert_leader") or 0) == 1, 10, "one alert leader")
    leader, other = (a, b) if metric(a, "meterhub_alert_leader") == 1 else (b, a)
    leader.allow_error_logs = True
    rules = {"rules": [{"kind": "under_voltage", "threshold": 207, "hysteresis": 3}]}
    other.post_ok(reading("lm", ts(0), voltage=230))
    assert other.http("PUT", "/api/v1/meters/lm/alerts", rules).status == 200
    leader.proc.send_signal(signal.SIGKILL)
    leader.proc.wait(5)
    leader.proc = None
    wait_until(lambda: metric(other, "meterhub_alert_leader") == 1, 10, "takeover")
    other.post_ok(reading("lm", ts(1), voltage=190))
    wait_until(lambda: other.get_json("/api/v1/alerts?active=true")["count"] == 1, 10,
               "the alert raised by the new leader")


# ---------------------------------------------------------------------------
# Configuration: the password stays out of logs; env names; backup is SQLite's


def test_password_never_logged_env_node_id_and_backup_refuses_a_url(server_factory, db_url):
    url = db_url.replace("postgres@", "postgres:s3cr3t-pw@", 1)  # trust: ignored by the server
    srv = server_factory(NODE_FLAGS, db=url, env={"METERHUB_NODE_ID": "from-env"})
    assert srv.wait_for_log(r'node "from-env" of a PostgreSQL cluster')
    srv.post_ok(reading("cfg", ts(0)))
    assert "postgres:***@" in srv.run_log()
    p = subprocess.run([srv.bin, "backup", "--out", "/tmp/fan_never_written.db", "--db", url],
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode != 0
    assert "pg_dump" in p.stderr and "s3cr3t-pw" not in p.stderr, p.stderr
    assert not os.path.exists("/tmp/fan_never_written.db")
    # The admin CLI works on the URL too.
    assert "cfg" in srv.cli("meter", "list")
    srv.stop()
    said = [ln for ln in srv.log().splitlines() if not ln.startswith("--- meterhub start")]
    assert not [ln for ln in said if "s3cr3t-pw" in ln]


@pytest.mark.parametrize("where", ["no server", "no such database"])
def test_unreachable_postgresql_at_start_fails_clearly_without_the_password(pg, where):
    """A node that cannot reach its database does not start half-way: one
    critical line naming PostgreSQL's reason, no password, no "listening
    on", exit code 1 (a service manager's restart loop then shows it)."""
    if where == "no server":
        host = tempfile.mkdtemp(prefix="fan_nowhere_", dir="/tmp")  # no socket in it
        url = f"postgresql://postgres:s3cr3t-pw@/postgres?host={host}&port={pg.port}"
        reason = "No such file or directory"
    else:
        url = (f"postgresql://postgres:s3cr3t-pw@/fan_missing_db?host={pg.sock}"
               f"&port={pg.port}")
        reason = 'database "fan_missing_db" does not exist'
    rc, out = run_binary(["--listen", "127.0.0.1:0", "--db", url, "--node-id", "lost"])
    assert rc == 1, out
    assert "cannot connect to PostgreSQL" in out and reason in out, out
    assert "listening on" not in out, out
    assert "s3cr3t-pw" not in out, out


def test_every_cluster_metric_is_served_and_documented(nodes):
    """The PostgreSQL-only families of docs/operations.md's metrics table are
    served by a PostgreSQL node (test_metrics.py checks the rest)."""
    import re
    a = nodes("a")
    doc = open(os.path.join(os.path.dirname(__file__), "..", "..", "docs", "operations.md"),
               encoding="utf-8").read()
    table = doc[doc.index("| metric | type | labels | meaning |"):]
    table = table[:table.index("\n\n")]
    documented = {n for n in re.findall(r"`(meterhub_[a-z_]+)`", table)
                  if n.startswith("meterhub_fanout_") or n == "meterhub_alert_leader"}
    text = a.get("/metrics").text
    served = set(re.findall(r"^# TYPE (meterhub_(?:fanout_[a-z_]+|alert_leader)) ", text, re.M))
    assert documented == served
    # The database size comes from PostgreSQL, not from a file.
    m = re.search(r'^meterhub_store_size_bytes\{file="db"\} (\d+)', text, re.M)
    assert m and int(m.group(1)) > 1_000_000, text[:2000]
    assert 'file="wal"' not in text
