"""Process lifecycle, end to end: command line and environment, start-up
errors, restart persistence, graceful shutdown under load (no acknowledged
reading lost), SIGKILL durability, connection limits, log level and the
503 answer when the store fails."""
import asyncio
import http.client as httplib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time

import pytest

from conftest import (BASE_TS, HOST, HttpClient, RawConn, RawWebSocket, iso, meterhub_bin,
                      now_ms, post_bytes, reading, run_async, run_binary, ws_assert_silent,
                      ws_connect, ws_recv_json)


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------
# Command line

def test_help_exits_0():
    rc, out = run_binary(["--help"])
    assert rc == 0, out
    for flag in ("--listen", "--db", "--threads", "--log-level", "--max-body", "--max-batch",
                 "--max-connections", "--request-timeout", "--future-tolerance", "--ws-queue",
                 "--ws-stall-timeout", "--ws-idle-timeout", "--shutdown-timeout"):
        assert flag in out, f"{flag} missing from --help"
    assert "METERHUB_" in out


@pytest.mark.parametrize("args", [["--bogus"], ["--listen", "nope"], ["--max-body", "10"],
                                  ["--max-body", "abc"], ["--log-level", "loud"],
                                  ["--threads", "-1"], ["--request-timeout", "0"],
                                  ["--max-batch", "0"], ["--ws-queue", "0"],
                                  ["--listen", "127.0.0.1:99999"]])
def test_bad_arguments_exit_nonzero(tmp_path, args):
    rc, out = run_binary(["--db", str(tmp_path / "m.db"), *args])
    assert rc != 0, out
    assert out.strip(), "a usage error must say something"
    assert "listening on" not in out


def test_port_in_use(tmp_path):
    with socket.socket() as blocker:
        blocker.bind((HOST, 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        rc, out = run_binary(["--listen", f"{HOST}:{port}", "--db", str(tmp_path / "m.db")])
    assert rc != 0, out
    assert "listening on" not in out
    assert str(port) in out and "in use" in out.lower(), out


def test_invalid_listen_address(tmp_path):
    rc, out = run_binary(["--listen", "256.1.1.1:0", "--db", str(tmp_path / "m.db")])
    assert rc != 0, out
    assert "256.1.1.1" in out, out


@pytest.mark.parametrize("sub", ["m.db", "sub/m.db", "a/b/c/m.db"])
def test_db_under_a_regular_file(tmp_path, sub):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("I am a file")
    db = blocker / sub
    rc, out = run_binary(["--listen", f"{HOST}:0", "--db", str(db)])
    assert rc != 0, out
    assert "listening on" not in out
    assert str(blocker) in out, f"the message should name the path: {out}"
    assert "not a directory" in out.lower() or "exists" in out.lower(), out
    assert blocker.read_text() == "I am a file"


def test_db_is_a_directory(tmp_path):
    d = tmp_path / "dir.db"
    d.mkdir()
    rc, out = run_binary(["--listen", f"{HOST}:0", "--db", str(d)])
    assert rc != 0, out
    assert str(d) in out, out


def test_db_is_not_sqlite(tmp_path):
    db = tmp_path / "m.db"
    garbage = b"this is not a database\n" * 400
    db.write_bytes(garbage)
    rc, out = run_binary(["--listen", f"{HOST}:0", "--db", str(db)])
    assert rc != 0, out
    assert "not a database" in out.lower(), out
    assert db.read_bytes() == garbage, "a foreign file must not be modified"


def test_db_directory_is_created(server_factory, tmp_path):
    db = tmp_path / "deep" / "er" / "m.db"
    srv = server_factory(db=db)
    srv.post_ok(reading("m", BASE_TS), accepted=1)
    assert db.is_file()


def test_environment_variables(server_factory, tmp_path):
    db = tmp_path / "env" / "m.db"
    env = {
        "METERHUB_LISTEN": f"{HOST}:0",
        "METERHUB_DB": str(db),
        "METERHUB_THREADS": "1",
        "METERHUB_LOG_LEVEL": "debug",
        "METERHUB_MAX_BODY": "2048",
        "METERHUB_MAX_BATCH": "2",
        "METERHUB_MAX_CONNECTIONS": "64",
        "METERHUB_REQUEST_TIMEOUT": "1.5",
        "METERHUB_FUTURE_TOLERANCE": "0",
        "METERHUB_WS_QUEUE": "8",
        "METERHUB_WS_STALL_TIMEOUT": "2",
        "METERHUB_WS_IDLE_TIMEOUT": "1",
        "METERHUB_SHUTDOWN_TIMEOUT": "5",
        # Lab mode, as the other suites (conftest.Server.LAB_FLAGS), set by environment.
        "METERHUB_PUBLIC_READ": "true",
        "METERHUB_AUTO_REGISTER": "1",
        "METERHUB_IP_RATE": "0",
    }
    srv = server_factory(env=env, listen=False)
    assert db.is_file(), "METERHUB_DB not used"
    srv.post_ok([reading("env", BASE_TS), reading("env", BASE_TS + 1)], accepted=2)
    r = srv.post([reading("env", BASE_TS + k) for k in range(3)])
    assert r.status == 400 and r.error_code() == "batch_too_large", r  # METERHUB_MAX_BATCH
    big = b'{"meter_id":"env","voltage":1,"current":1,"power":1,"energy":1}' + b" " * 2000
    r = srv.raw(post_bytes(srv.port, big))
    assert r.status == 413, r  # METERHUB_MAX_BODY
    r = srv.post(reading("env", iso(now_ms() + 30_000)))
    assert r.status == 400 and r.json()["error"]["field"] == "ts", r  # METERHUB_FUTURE_TOLERANCE
    with RawConn(srv.port) as c:  # METERHUB_REQUEST_TIMEOUT: idle keep-alive closed
        c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.read_response().status == 200
        t0 = time.monotonic()
        assert c.closed_by_peer(5)
        assert time.monotonic() - t0 < 3.5
    with RawWebSocket(srv.port, "env") as ws:  # METERHUB_WS_IDLE_TIMEOUT: pinged at 0.5 s
        op, _ = ws.read_frame(3)  # latest-on-connect first
        assert op == 0x1
        t0 = time.monotonic()
        op, _ = ws.read_frame(3)
        assert op == 0x9 and time.monotonic() - t0 < 1.5


def test_environment_value_is_validated(tmp_path):
    rc, out = run_binary([], env={"METERHUB_LISTEN": f"{HOST}:0",
                                  "METERHUB_DB": str(tmp_path / "m.db"),
                                  "METERHUB_MAX_BODY": "abc"})
    assert rc != 0, out
    assert "max-body" in out.lower() or "max_body" in out.lower(), out


def test_log_level_warn_hides_info(server_factory, tmp_path):
    """With --log-level warn there is no 'listening on' line, so pick a free
    port ourselves (retrying if someone else takes it meanwhile)."""
    for attempt in range(3):
        port = free_port()
        db = tmp_path / f"quiet{attempt}" / "m.db"
        srv = server_factory(["--listen", f"{HOST}:{port}", "--db", str(db), "--log-level",
                              "warn", "--auto-register", "--public-read"], listen=False,
                             start=False, db=db)
        srv.spawn()
        srv.port = port
        deadline = time.monotonic() + 10
        up = False
        while time.monotonic() < deadline and srv.running:
            try:
                if srv.get("/healthz", timeout=1).status == 200:
                    up = True
                    break
            except OSError:
                time.sleep(0.05)
        if up:
            break
        srv.allow_error_logs = True  # e.g. the port was taken meanwhile
        srv.stop()
    else:
        pytest.fail("could not start with --log-level warn: " + srv.log())
    srv.post_ok(reading("quiet", BASE_TS), accepted=1)
    rc = srv.stop()
    assert rc == 0 and not srv.killed
    infos = [ln for ln in srv.run_lines() if " info " in ln]
    assert not infos, infos


# ---------------------------------------------------------------------------
# Restart persistence

def test_restart_keeps_everything(server_factory):
    srv = server_factory()
    srv.post_ok([reading("r1", BASE_TS + k, energy=k) for k in range(5)], accepted=5)
    srv.post_ok(reading("r2", BASE_TS + 60_000, energy=100, frequency=50.01), accepted=1)
    srv.post_ok(reading("r2", BASE_TS, energy=99), accepted=1)  # late
    before_meters = srv.meters()
    before_r1 = srv.readings("r1")
    before_r2 = srv.readings("r2")
    srv.restart()
    assert srv.meters() == before_meters
    assert srv.readings("r1") == before_r1
    assert srv.readings("r2") == before_r2
    assert srv.get_json("/api/v1/meters/r2/latest")["energy"] == 100
    # duplicates are still recognised after the restart
    srv.post_ok(reading("r1", BASE_TS), accepted=0, duplicates=1)
    srv.post_ok(reading("r3", BASE_TS), accepted=1)
    assert srv.meter_count() == 3


def test_latest_on_connect_after_restart(server_factory):
    srv = server_factory()
    srv.post_ok(reading("w", BASE_TS + 60_000, energy=2), accepted=1)
    srv.post_ok(reading("w", BASE_TS, energy=1), accepted=1)  # older, received last
    srv.restart()

    async def main():
        ws = await ws_connect(srv, "w")
        other = await ws_connect(srv, "never-seen")
        try:
            first = await ws_recv_json(ws, 3)
            assert first == reading("w", iso(BASE_TS + 60_000), energy=2)
            await ws_assert_silent(other, 0.2)
            await asyncio.to_thread(srv.post, reading("w", BASE_TS + 120_000, energy=3))
            assert (await ws_recv_json(ws, 3))["energy"] == 3
        finally:
            await ws.close()
            await other.close()

    run_async(main())
    # and after a second restart the newest is the new one
    srv.restart()

    async def again():
        ws = await ws_connect(srv, "w")
        try:
            assert (await ws_recv_json(ws, 3))["energy"] == 3
        finally:
            await ws.close()

    run_async(again())


# ---------------------------------------------------------------------------
# Shutdown

def test_sigint_stops_cleanly(server_factory):
    srv = server_factory()
    srv.post_ok(reading("i", BASE_TS))
    rc = srv.stop(signal.SIGINT)
    assert rc == 0 and not srv.killed, srv.run_log()
    assert srv.wait_for_log("stopped cleanly", 1), srv.run_log()


def test_sigterm_with_idle_clients_is_prompt(server_factory):
    srv = server_factory()  # default --request-timeout 30 s
    conns = [RawConn(srv.port) for _ in range(3)]
    ws = None
    try:
        for c in conns:
            c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert c.read_response().status == 200
        ws = RawWebSocket(srv.port, "idle")
        time.sleep(0.1)
        t0 = time.monotonic()
        srv.send_signal(signal.SIGTERM)
        op, payload = ws.read_frame(3)
        assert op == 0x8 and int.from_bytes(payload[:2], "big") == 1001, (op, payload)
        ws.send_frame(0x8, payload[:2])  # answer the closing handshake ...
        assert ws.conn.closed_by_peer(3)  # ... the server closes the TCP connection ...
        ws.close()  # ... and so do we
        rc = srv.wait_exit(10)
        took = time.monotonic() - t0
        assert rc == 0 and not srv.killed, srv.run_log()
        assert took < 3, f"idle keep-alive connections delayed the shutdown by {took:.1f}s"
        for c in conns:
            assert c.closed_by_peer(1)
    finally:
        for c in conns:
            c.close()
        if ws is not None:
            ws.close()


def test_websocket_ignoring_close_cannot_delay_exit_past_shutdown_timeout(server_factory):
    srv = server_factory(["--shutdown-timeout", "1"])
    with RawWebSocket(srv.port, "deaf") as ws:  # never reads, never answers the close
        time.sleep(0.1)
        t0 = time.monotonic()
        rc = srv.stop(timeout=10)
        took = time.monotonic() - t0
        assert not srv.killed and rc == 0, srv.run_log()
        assert took < 4, f"exit took {took:.1f}s with --shutdown-timeout 1"
        del ws


def test_inflight_request_is_answered_during_shutdown(server_factory):
    srv = server_factory()
    body = json.dumps(reading("inflight", BASE_TS)).encode()
    with RawConn(srv.port, timeout=8) as c:
        c.send(b"POST /api/v1/readings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n" % len(body) + body[:10])
        time.sleep(0.2)
        srv.send_signal(signal.SIGTERM)
        assert srv.wait_for_log("shutting down|received signal", 3), srv.run_log()
        time.sleep(0.3)
        # no new connections once draining started
        with socket.socket() as probe:
            probe.settimeout(1)
            assert probe.connect_ex((HOST, srv.port)) != 0, "new connection accepted while draining"
        assert srv.running, "the server must wait for the request in flight"
        c.send(body[10:])
        r = c.read_response(timeout=5)
        assert r.status == 201, r
        assert r.json() == {"accepted": 1, "duplicates": 0}
        assert r.header("connection", "").lower() == "close"
    rc = srv.wait_exit(10)
    assert rc == 0 and not srv.killed, srv.run_log()
    assert srv.wait_for_log("stopped cleanly", 1)
    srv.start()
    assert srv.readings("inflight")["count"] == 1


def test_shutdown_timeout_bounds_the_drain(server_factory):
    """A request that never completes cannot hold the process past --shutdown-timeout."""
    srv = server_factory(["--shutdown-timeout", "1"])  # --request-timeout stays 30 s
    with RawConn(srv.port, timeout=5) as c:
        c.send(b"POST /api/v1/readings HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        time.sleep(0.2)
        t0 = time.monotonic()
        rc = srv.stop(timeout=10)
        took = time.monotonic() - t0
    assert not srv.killed, srv.run_log()
    assert rc == 0, srv.run_log()
    assert took < 4, f"exit took {took:.1f}s with --shutdown-timeout 1"


def _load_until_signal(srv, sig, n_threads=4, batch=50, min_acked=4000):
    """Threads POST batches (unique ts per meter) in a loop; sig is sent
    mid-way. Returns (acked, maybe): per meter, the ts of every reading the
    server acknowledged with 201, and of those sent without an answer."""
    acked = {f"load-{t}": set() for t in range(n_threads)}
    maybe = {f"load-{t}": set() for t in range(n_threads)}
    errors = []
    lock = threading.Lock()
    stop = threading.Event()

    def worker(t):
        meter = f"load-{t}"
        k = 0
        c = HttpClient(srv.port, timeout=15)
        deadline = time.monotonic() + 30
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                tss = [BASE_TS + k + j for j in range(batch)]
                k += batch
                try:
                    r = c.request("POST", "/api/v1/readings",
                                  [reading(meter, ts, energy=ts - BASE_TS) for ts in tss])
                except (OSError, httplib.HTTPException):
                    with lock:
                        maybe[meter].update(tss)
                    c.close()
                    if not srv.running:
                        break
                    time.sleep(0.01)
                    continue
                if r.status == 201:
                    doc = r.json()
                    if doc != {"accepted": batch, "duplicates": 0}:
                        errors.append(f"unexpected 201 body {doc}")
                    with lock:
                        acked[meter].update(tss)
                elif r.status == 503:
                    with lock:
                        maybe[meter].update(tss)  # refused while stopping: not acknowledged
                else:
                    errors.append(f"unexpected answer {r}")
                    break
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
        finally:
            c.close()

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    for t in threads:
        t.start()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 10:
        with lock:
            n = sum(len(v) for v in acked.values())
        if n >= min_acked:
            break
        time.sleep(0.01)
    srv.send_signal(sig)
    rc = srv.wait_exit(15)
    stop.set()
    for t in threads:
        t.join(20)
    assert not any(t.is_alive() for t in threads), "load threads did not finish"
    assert not errors, errors[:5]
    total = sum(len(v) for v in acked.values())
    assert total >= min_acked, f"only {total} readings acknowledged before the signal"
    return rc, acked, maybe


def _check_acked_present(srv, acked, maybe):
    for meter in acked:
        if not acked[meter] and not maybe[meter]:
            continue
        got, pages = srv.all_readings(meter, limit=1000)
        stored = [srv_ts for srv_ts in (g["ts"] for g in got)]
        assert len(stored) == len(set(stored))
        stored_ms = {BASE_TS + int(g["energy"]) for g in got}
        assert {iso(t) for t in stored_ms} == set(stored), "values do not match their ts"
        missing = acked[meter] - stored_ms
        assert not missing, f"{meter}: {len(missing)} acknowledged readings lost " \
                            f"(e.g. {iso(min(missing))})"
        invented = stored_ms - acked[meter] - maybe[meter]
        assert not invented, f"{meter}: {len(invented)} readings that were never sent"
        assert len(acked[meter]) <= len(got) <= len(acked[meter]) + len(maybe[meter])
        if got:
            assert pages >= len(got) // 1000
            m = srv.get_json(f"/api/v1/meters/{meter}")
            assert m["latest"]["ts"] == iso(max(stored_ms))


def test_sigterm_under_load_loses_no_acknowledged_reading(server_factory):
    srv = server_factory()
    rc, acked, maybe = _load_until_signal(srv, signal.SIGTERM)
    assert not srv.killed, "meterhub did not stop within 15 s of SIGTERM:\n" + srv.run_log()
    assert rc == 0, f"exit code {rc}:\n{srv.run_log()}"
    assert srv.wait_for_log("stopped cleanly", 1), srv.run_log()
    srv.start()
    _check_acked_present(srv, acked, maybe)


def test_sigkill_under_load_loses_no_acknowledged_reading(server_factory):
    """A 201 is sent only after the commit is durable: even kill -9 keeps it."""
    srv = server_factory()
    rc, acked, maybe = _load_until_signal(srv, signal.SIGKILL, min_acked=1500)
    assert rc == -signal.SIGKILL
    srv.start()
    _check_acked_present(srv, acked, maybe)
    srv.assert_healthy()


# ---------------------------------------------------------------------------
# Connection limit

def test_max_connections(server_factory):
    srv = server_factory(["--max-connections", "3"])
    srv.post_ok(reading("mc", BASE_TS))
    assert srv.wait_sockets_at_most(1, 5) <= 1
    held = [RawConn(srv.port) for _ in range(2)]
    ws = RawWebSocket(srv.port, "mc")  # WebSockets count too
    try:
        for c in held:
            c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert c.read_response().status == 200
        assert ws.read_frame(3)[0] == 0x1
        with RawConn(srv.port) as extra:
            extra.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            got = b""
            try:
                got = extra.read_until_closed(3)
            except socket.timeout:
                pytest.fail("a connection over --max-connections was kept open")
            assert b"200 OK" not in got, "a connection over the limit was served"
        # the held ones still work
        held[0].send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert held[0].read_response().status == 200
        held[1].close()
        assert srv.wait_sockets_at_most(3, 5) <= 3
        r = srv.get("/healthz")
        assert r.status == 200
    finally:
        for c in held:
            c.close()
        ws.close()


# ---------------------------------------------------------------------------
# The store fails: 503 with Retry-After, nothing acknowledged, recovery

def test_store_failure_is_503_and_recovers(server_factory):
    srv = server_factory()
    srv.allow_error_logs = True  # the failed commit is logged as an error
    srv.post_ok(reading("before", BASE_TS), accepted=1)
    lock = sqlite3.connect(srv.db_path, timeout=0, isolation_level=None)
    try:
        lock.execute("BEGIN IMMEDIATE")  # hold the database's write lock
        results = {}

        def call(name, fn):
            try:
                results[name] = fn()
            except BaseException as e:  # noqa: BLE001
                results[name] = e

        ts = [threading.Thread(target=call, args=("post", lambda: srv.http(
                  "POST", "/api/v1/readings", reading("during", BASE_TS), timeout=30))),
              threading.Thread(target=call, args=("ready", lambda: srv.http(
                  "GET", "/readyz", timeout=30)))]
        for t in ts:
            t.start()
        time.sleep(0.3)
        # reads and liveness do not depend on the writer
        srv.assert_healthy()
        assert srv.meter_count() == 1
        for t in ts:
            t.join(30)
        for name in ("post", "ready"):
            r = results[name]
            assert not isinstance(r, BaseException), (name, r)
            assert r.status == 503, (name, r)
            assert r.header("retry-after", "").strip().isdigit(), (name, r)
            assert r.json()["error"]["code"], (name, r)
        lock.execute("ROLLBACK")
    finally:
        lock.close()
    # nothing of the refused POST was stored
    assert srv.get("/api/v1/meters/during").status == 404
    assert srv.get("/readyz").status == 200
    srv.post_ok(reading("during", BASE_TS), accepted=1, duplicates=0)
    assert srv.readings("during")["count"] == 1
    assert srv.meter_count() == 2


# ---------------------------------------------------------------------------
# SIGTERM right after start-up

def test_sigterm_right_after_listening_line_stops_cleanly(tmp_path):
    """The signal handlers are in place before the port is announced: a
    SIGTERM sent the moment "listening on" appears (before the network
    threads run) still ends in a graceful stop with exit code 0, never in
    death by the default action (-15). Repeated, because the window is a few
    milliseconds wide."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("METERHUB_")}
    for i in range(5):
        p = subprocess.Popen([meterhub_bin(), "--listen", f"{HOST}:0", "--db",
                              str(tmp_path / f"m{i}.db"), "--auto-register"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, env=env)
        try:
            out = b""
            while True:
                line = p.stdout.readline()  # bounded by the test alarm
                assert line, f"exited before listening:\n{out.decode()}"
                out += line
                if b"listening on" in line:
                    p.send_signal(signal.SIGTERM)
                    break
            rest, _ = p.communicate(timeout=10)
            out += rest
        finally:
            if p.poll() is None:
                p.kill()
                p.wait(5)
            p.stdout.close()
        text = out.decode("utf-8", "replace")
        assert p.returncode == 0, f"run {i}: exit code {p.returncode}:\n{text}"
        assert "stopped cleanly" in text, f"run {i}:\n{text}"
