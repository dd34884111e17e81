"""meterhub-sim (tools/sim) against the real server, with the defaults a user
gets (keys required, rate limits on): it registers its meters with an admin
token, its readings are stored and streamed live, their values are plausible,
and when the server goes away mid-run it buffers and, once the server is
back, every reading it made is stored exactly once. With --mqtt it publishes
through a Mosquitto broker (started as in test_mqtt.py) to a meterhub that
subscribes to it, again every reading stored exactly once.

The simulator binary is found next to METERHUB_BIN (both are built into the
same directory), or at METERHUB_SIM_BIN.
"""
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import time

import shutil

import pytest

from conftest import (HOST, Keyed, cli_meter_add, cli_token, http, meterhub_bin, run_async, ts_ms,
                      ws_recv_json, ws_watch)
from test_mqtt import MOSQUITTO, Broker, mh, wait_subscribed  # noqa: F401 (mh: a fixture)


def sim_bin():
    path = os.environ.get("METERHUB_SIM_BIN") or os.path.join(
        os.path.dirname(meterhub_bin()), "meterhub-sim")
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is not an executable (build the meterhub-sim target)")
    return path


def sim_cmd(*args):
    return [sim_bin(), "--json", *[str(a) for a in args]]


def summary_of(stdout):
    """The simulator's --json summary: the last line of its stdout."""
    lines = [ln for ln in stdout.splitlines() if ln.strip()]
    assert lines, "meterhub-sim printed no summary"
    return json.loads(lines[-1])


def secure_server_with_token(server_factory, **kw):
    srv = server_factory(start=False, **kw)
    srv.secure = True
    token = cli_token(srv.db_path, "admin", "sim")
    srv.start()
    return srv, token


def stored(srv, token, meter):
    """Every stored reading of `meter`, oldest first (asserts one page)."""
    r = http(srv.port, "GET", f"/api/v1/meters/{meter}/readings?limit=10000",
             headers={"Authorization": f"Bearer {token}"})
    assert r.status == 200, r
    doc = r.json()
    assert doc["next"] is None, doc["next"]
    return doc["readings"]


def check_plausible(readings, interval_ms):
    assert readings
    prev = None
    for r in readings:
        assert 207 <= r["voltage"] <= 253, r
        assert 49.95 <= r["frequency"] <= 50.05, r
        assert 0.85 <= r["power_factor"] <= 1.0, r
        assert 1 <= r["power"] <= 20000, r
        # current = P / (V * PF), up to the rounding of the printed values
        expect = r["power"] / (r["voltage"] * r["power_factor"])
        assert abs(r["current"] - expect) <= 0.01 * expect + 0.002, (r, expect)
        if prev is not None:
            assert r["energy"] >= prev["energy"], (prev, r)  # monotonic counter
            assert ts_ms(r["ts"]) - ts_ms(prev["ts"]) == interval_ms, (prev, r)
        prev = r


def test_sim_registers_stores_and_streams(server_factory):
    srv, token = secure_server_with_token(server_factory)
    meters = ["sim-01", "sim-02", "sim-03"]

    async def scenario():
        ws = await ws_watch(srv, token, "*")
        try:
            proc = await asyncio.create_subprocess_exec(
                *sim_cmd("--url", f"http://{HOST}:{srv.port}", "--key", token, "--register",
                         "--meters", 3, "--interval", 0.5, "--duration", 3, "--seed", 11,
                         "--batch", 10),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            live = []

            async def collect():
                while True:
                    msg = await ws_recv_json(ws, 30)
                    if msg.get("type") == "reading":
                        live.append(msg["reading"])

            reader = asyncio.ensure_future(collect())
            out, err = await asyncio.wait_for(proc.communicate(), 40)
            # The last readings are pushed right after their commit: a moment more.
            deadline = time.monotonic() + 5
            while len(live) < 18 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            return proc.returncode, out.decode(), err.decode(), live
        finally:
            await ws.close()

    rc, out, err, live = run_async(scenario(), timeout=60)
    assert rc == 0, (rc, out, err)
    s = summary_of(out)
    # 3 meters x 6 ticks (t = 0, 0.5, ... 2.5 s), all acknowledged as new
    assert s["generated"] == 18, s
    assert s["acked"] == s["accepted"] == 18, s
    assert s["buffered"] == 0 and s["dropped"] == 0 and s["errors"] == 0, s
    assert "registered" in err

    doc = Keyed(srv, token).get("/api/v1/meters")
    assert [m["meter_id"] for m in doc["meters"]] == meters
    assert all(m["name"] == f"Simulated {m['meter_id']}" for m in doc["meters"])

    all_stored = []
    for m in meters:
        rs = stored(srv, token, m)
        assert len(rs) == 6, rs
        check_plausible(rs, 500)
        all_stored += rs
    # A mixed fleet: the third meter is a small business, busier than a home.
    # (Its base load alone is 0.8-2 kW; a home idles at 60-180 W plus appliances.)
    assert min(r["power"] for r in stored(srv, token, "sim-03")) >= 700

    # The WebSocket subscriber saw every stored reading, live, once.
    key = lambda r: (r["meter_id"], r["ts"])  # noqa: E731
    assert sorted(map(key, live)) == sorted(map(key, all_stored))


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def test_sim_buffers_while_server_is_down_and_stores_everything_once(server_factory, tmp_path):
    # The simulator keeps one URL, so the server must come back on the same port.
    port = free_port()
    db = tmp_path / "restart" / "m.db"
    srv = server_factory(args=["--listen", f"{HOST}:{port}", "--db", str(db),
                               "--retention-raw-days", "0"],
                         listen=False, start=False)
    srv.secure = True
    token = cli_token(db, "admin", "sim")
    srv.start()
    assert srv.port == port

    proc = subprocess.Popen(
        sim_cmd("--url", f"http://{HOST}:{port}", "--key", token, "--register", "--meters", 3,
                "--interval", 0.25, "--duration", 7, "--seed", 5, "--batch", 4,
                "--max-backoff", 0.5, "--flush-timeout", 20),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        admin = Keyed(srv, token)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            doc = admin.get("/api/v1/meters")
            if doc["count"] == 3 and all(m["latest"] for m in doc["meters"]):
                break
            time.sleep(0.1)
        else:
            pytest.fail("the simulator's first readings did not arrive")
        time.sleep(0.5)

        rc = srv.stop()
        assert rc == 0 and not srv.killed, srv.run_log()
        time.sleep(2.0)  # ~8 ticks x 3 meters made while nobody listens
        srv.start()
        assert srv.port == port

        out, err = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, (proc.returncode, out, err)
    s = summary_of(out)
    assert s["generated"] == 3 * 28, s  # ticks at 0, 0.25, ... 6.75 s
    assert s["buffered"] == 0 and s["dropped"] == 0, s
    assert s["errors"] > 0 and s["retried"] > 0, s  # it did notice the outage
    assert s["buffered_max"] > 3, s  # and held readings meanwhile
    assert s["acked"] == s["generated"], s
    assert s["accepted"] + s["duplicates"] == s["acked"], s
    assert "retrying" in err and "server back" in err, err

    total = 0
    for m in ("sim-01", "sim-02", "sim-03"):
        rs = stored(srv, token, m)
        check_plausible(rs, 250)  # evenly spaced: no gap where the server was down
        total += len(rs)
    assert total == s["generated"]


def test_sim_dry_run_is_deterministic_and_resets_once():
    def run(*args):
        p = subprocess.run(sim_cmd("--dry-run", "--start", 1764234000, *args),
                           capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        assert p.returncode == 0, p
        return [json.loads(ln) for ln in p.stdout.splitlines()]

    a = run("--meters", 2, "--seed", 42, "--duration", 3600, "--interval", 10)
    b = run("--meters", 2, "--seed", 42, "--duration", 3600, "--interval", 10)
    c = run("--meters", 2, "--seed", 43, "--duration", 3600, "--interval", 10)
    assert len(a) == 2 * 360
    assert a == b and a != c

    r = run("--meters", 1, "--seed", 1, "--duration", 100, "--interval", 10, "--reset-after", 5)
    energies = [x["energy"] for x in r]
    assert energies[5] < 1 < energies[4], energies
    assert energies[:5] == sorted(energies[:5]) and energies[5:] == sorted(energies[5:])


@pytest.fixture
def sim_broker(tmp_path):
    if not os.path.exists(MOSQUITTO):
        pytest.skip("mosquitto is needed (scripts/install-deps.sh)")
    d = tmp_path / "mosquitto"
    d.mkdir()
    b = Broker(str(d)).start()
    try:
        yield b
    finally:
        b.stop()


def test_sim_over_mqtt_every_reading_stored_once(sim_broker, mh, tmp_path):
    # A secure server (no --auto-register) that knows the two meters and
    # subscribes to the broker; the simulator only talks to the broker.
    db = tmp_path / "mq" / "m.db"
    meters = ["sim-01", "sim-02"]
    for m in meters:
        cli_meter_add(db, m)
    srv = mh(["--mqtt", sim_broker.url, "--mqtt-client-id", f"mh-sim-test-{os.getpid()}"],
             db=db, start=False)
    srv.secure = True
    token = cli_token(db, "admin", "sim")
    srv.start()
    wait_subscribed(srv)

    p = subprocess.run(
        sim_cmd("--mqtt", sim_broker.url, "--meters", 2, "--interval", 0.25, "--duration", 3,
                "--seed", 7, "--batch", 3),
        capture_output=True, text=True, timeout=40, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p
    s = summary_of(p.stdout)
    # 2 meters x 12 ticks (t = 0, 0.25, ... 2.75 s), every one PUBACKed
    assert s["generated"] == 24, s
    assert s["acked"] == s["sent"] == s["generated"], s
    assert s["buffered"] == 0 and s["dropped"] == 0 and s["errors"] == 0, s
    assert s["requests"] >= 24 // 3, s  # messages: one meter's readings each

    # PUBACK is the broker's; the server stores them a moment later.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if sum(len(stored(srv, token, m)) for m in meters) >= s["generated"]:
            break
        time.sleep(0.1)
    time.sleep(0.3)  # nothing more arrives: each reading stored exactly once
    for m in meters:
        rs = stored(srv, token, m)
        assert len(rs) == 12, (m, rs, srv.run_log())
        check_plausible(rs, 250)


def test_sim_over_mqtt_buffers_until_the_broker_is_up(tmp_path):
    # No server needed: a reading counts as acknowledged on the broker's PUBACK.
    if not os.path.exists(MOSQUITTO):
        pytest.skip("mosquitto is needed (scripts/install-deps.sh)")
    d = tmp_path / "mosquitto"
    d.mkdir()
    broker = Broker(str(d))  # its port is chosen, nobody listens yet
    proc = subprocess.Popen(
        sim_cmd("--mqtt", f"mqtt://u:p%40ss@{HOST}:{broker.port}", "--meters", 2,
                "--interval", 0.25, "--duration", 3, "--max-backoff", 0.3, "--batch", 5,
                "--flush-timeout", 15),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        time.sleep(1.5)
        broker.start()
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        broker.stop()
    assert proc.returncode == 0, (proc.returncode, out, err)
    s = summary_of(out)
    assert s["generated"] == 24, s
    assert s["acked"] == s["generated"] and s["buffered"] == 0 and s["dropped"] == 0, s
    assert s["errors"] > 0 and s["buffered_max"] > 2, s  # it held readings meanwhile
    assert "retrying" in err and "broker back" in err, err


def test_sim_bad_mqtt_flags_refused():
    for args in (["--mqtt", "http://127.0.0.1:1883"], ["--mqtt", "mqtt://host:99999"],
                 ["--mqtt", "mqtt://127.0.0.1:1883", "--mqtt-topic-prefix", "a/#"]):
        p = subprocess.run(sim_cmd(*args, "--duration", 1), capture_output=True, text=True,
                           timeout=10, stdin=subprocess.DEVNULL)
        assert p.returncode == 1 and "--mqtt" in p.stderr, (args, p)
