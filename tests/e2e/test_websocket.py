"""WebSocket /ws/{meter_id}, end to end: latest-on-connect, live updates in
order, isolation between meters, fan-out, duplicates, late readings, client
messages, limits, keep-alive pings, slow subscribers and shutdown."""
import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
import websockets

from conftest import (BASE_TS, HttpClient, RawWebSocket, iso, post_async, raw_request,
                      reading, run_async, ws_assert_silent, ws_connect, ws_recv_json,
                      ws_recv_n, ws_recv_raw, ws_wait_closed)

WS_HEADERS = (b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")


def post_and_see_published(srv, meter, body, n):
    """POSTs body, then waits until a watcher of `meter` has received its n
    readings: the server has then published them, not only acknowledged them
    (the two are not atomic, see test_latest_on_connect_right_after_201)."""
    async def main():
        watcher = await ws_connect(srv, meter)
        try:
            with contextlib.suppress(asyncio.TimeoutError):
                await ws_recv_json(watcher, 0.2)  # the current latest, if any
            r = await post_async(srv, body)
            assert r.status == 201 and r.json()["accepted"] == n, r
            await ws_recv_n(watcher, n, 5)
        finally:
            await watcher.close()

    run_async(main())


def test_latest_on_connect_then_live_updates_in_order(server):
    post_and_see_published(server, "ws1", [reading("ws1", BASE_TS + k, energy=k)
                                           for k in range(3)], 3)

    async def main():
        ws = await ws_connect(server, "ws1")
        try:
            first = await ws_recv_json(ws, 3)
            assert first == reading("ws1", iso(BASE_TS + 2), energy=2)
            await ws_assert_silent(ws, 0.3)  # only the latest, not the history
            for k in range(3, 8):
                await post_async(server, reading("ws1", BASE_TS + k, energy=k))
            # and a batch
            await post_async(server, [reading("ws1", BASE_TS + k, energy=k) for k in range(8, 20)])
            got = await ws_recv_n(ws, 17, 10)
            assert [g["energy"] for g in got] == list(range(3, 20))
            assert all(g["meter_id"] == "ws1" for g in got)
            await ws_assert_silent(ws, 0.3)
        finally:
            await ws.close()

    run_async(main())


def test_message_format_matches_rest(server):
    async def main():
        ws = await ws_connect(server, "fmt")
        try:
            await ws_assert_silent(ws, 0.3)  # no reading yet: nothing on connect
            await post_async(server, reading("fmt", "2026-01-15T09:00:00.5+01:00", voltage=230.1,
                                             current=0.25, power=57.5, energy=12.5,
                                             power_factor=0.9))
            raw = await ws_recv_raw(ws, 5)
            assert isinstance(raw, str), "readings are text frames"
            assert raw == ('{"meter_id":"fmt","ts":"2026-01-15T08:00:00.500Z","voltage":230.1,'
                           '"current":0.25,"power":57.5,"energy":12.5,"power_factor":0.9}')
            assert raw == server.get("/api/v1/meters/fmt/latest").text
        finally:
            await ws.close()

    run_async(main())


def test_latest_on_connect_right_after_201(server):
    """A client that connects as soon as its POST was answered must get that
    reading as latest-on-connect, and must not get it again as a live update:
    the 201 means committed, so it is already the meter's latest.

    The server's work between answering and publishing is short, so CPU
    contention is created (idle-priority busy loops, killed at the end) to
    make a wrong order visible; bounded to 1500 rounds or 6 s."""
    hogs = []
    n_hogs = min(8, len(os.sched_getaffinity(0)) + 1)
    try:
        for _ in range(n_hogs):
            hogs.append(subprocess.Popen(
                ["nice", "-n", "19", sys.executable, "-c", "while True: pass"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wrong = []
        t_end = time.monotonic() + 6
        with HttpClient(server.port) as c:
            i = 0
            while i < 1500 and time.monotonic() < t_end and len(wrong) < 3:
                r = c.request("POST", "/api/v1/readings", reading("quick", BASE_TS + i, energy=i))
                assert r.status == 201, r
                with RawWebSocket(server.port, "quick") as ws:
                    op, payload = ws.read_frame(3)
                    got = json.loads(payload)["energy"]
                    if got != i:
                        op2, payload2 = ws.read_frame(3)
                        wrong.append((i, got, json.loads(payload2)["energy"]))
                i += 1
        assert not wrong, (
            f"after the 201 of reading {wrong[0][0]} a new subscriber got reading {wrong[0][1]} "
            f"as latest-on-connect and then reading {wrong[0][2]} as a live update "
            f"({len(wrong)} times in {i} rounds)")
    finally:
        for h in hogs:
            h.kill()
        for h in hogs:
            h.wait(5)


def test_two_meters_do_not_cross(server):
    async def main():
        a = await ws_connect(server, "meter-a")
        b = await ws_connect(server, "meter-b")
        prefix = await ws_connect(server, "meter")  # a prefix of both ids
        try:
            batch = []
            for k in range(10):
                batch.append(reading("meter-a", BASE_TS + k, energy=k))
                batch.append(reading("meter-b", BASE_TS + k, energy=100 + k))
            await post_async(server, batch)
            await post_async(server, reading("meter-c", BASE_TS))
            ga = await ws_recv_n(a, 10, 5)
            gb = await ws_recv_n(b, 10, 5)
            assert [g["energy"] for g in ga] == list(range(10))
            assert [g["energy"] for g in gb] == list(range(100, 110))
            assert {g["meter_id"] for g in ga} == {"meter-a"}
            assert {g["meter_id"] for g in gb} == {"meter-b"}
            await ws_assert_silent(a, 0.3)
            await ws_assert_silent(b, 0.1)
            await ws_assert_silent(prefix, 0.1)
        finally:
            for ws in (a, b, prefix):
                await ws.close()

    run_async(main())


def test_many_sockets_one_meter(server):
    n = 40
    server.post_ok(reading("fan", BASE_TS, energy=0), accepted=1)

    async def main():
        socks = await asyncio.gather(*(ws_connect(server, "fan") for _ in range(n)))
        try:
            firsts = await asyncio.gather(*(ws_recv_json(ws, 5) for ws in socks))
            assert all(f["energy"] == 0 for f in firsts)
            await post_async(server, [reading("fan", BASE_TS + k, energy=k) for k in (1, 2, 3)])
            got = await asyncio.gather(*(ws_recv_n(ws, 3, 10) for ws in socks))
            for g in got:
                assert [x["energy"] for x in g] == [1, 2, 3]
        finally:
            await asyncio.gather(*(ws.close() for ws in socks))

    run_async(main())


def test_latest_on_connect_is_newest_ts_despite_late_arrival(server):
    post_and_see_published(server, "late", reading("late", BASE_TS + 60_000, energy=2), 1)
    # older, arrives later
    post_and_see_published(server, "late", reading("late", BASE_TS, energy=1), 1)

    async def main():
        live = await ws_connect(server, "late")
        try:
            assert (await ws_recv_json(live, 3))["energy"] == 2
            await ws_assert_silent(live, 0.3)
            # Another late reading while connected: pushed live (it is newly
            # committed) but it does not become the latest.
            await post_async(server, reading("late", BASE_TS + 30_000, energy=1.5))
            assert (await ws_recv_json(live, 3))["energy"] == 1.5
            again = await ws_connect(server, "late")
            try:
                assert (await ws_recv_json(again, 3))["energy"] == 2
                await ws_assert_silent(again, 0.3)
            finally:
                await again.close()
            # A newer one replaces it.
            await post_async(server, reading("late", BASE_TS + 90_000, energy=3))
            assert (await ws_recv_json(live, 3))["energy"] == 3
            third = await ws_connect(server, "late")
            try:
                assert (await ws_recv_json(third, 3))["energy"] == 3
            finally:
                await third.close()
        finally:
            await live.close()

    run_async(main())


def test_duplicates_counted_and_not_pushed(server):
    r0 = reading("dupws", BASE_TS, energy=0)
    server.post_ok(r0, accepted=1)

    async def main():
        ws = await ws_connect(server, "dupws")
        try:
            assert (await ws_recv_json(ws, 3))["energy"] == 0
            r = await post_async(server, r0)
            assert r.status == 201 and r.json() == {"accepted": 0, "duplicates": 1}, r
            r = await post_async(server, reading("dupws", BASE_TS, energy=99))
            assert r.json() == {"accepted": 0, "duplicates": 1}, r
            await ws_assert_silent(ws, 0.5)
            r = await post_async(server, [r0, reading("dupws", BASE_TS + 1, energy=1), r0,
                                          reading("dupws", BASE_TS + 1, energy=7)])
            assert r.json() == {"accepted": 1, "duplicates": 3}, r
            got = await ws_recv_json(ws, 3)
            assert got["energy"] == 1 and got["ts"] == iso(BASE_TS + 1)
            await ws_assert_silent(ws, 0.5)
        finally:
            await ws.close()

    run_async(main())


def test_rejected_batch_pushes_nothing(server):
    async def main():
        ws = await ws_connect(server, "rej")
        try:
            r = await post_async(server, [reading("rej", BASE_TS), reading("rej", BASE_TS + 1,
                                                                          voltage=5000)])
            assert r.status == 400, r
            await ws_assert_silent(ws, 0.5)
        finally:
            await ws.close()

    run_async(main())


def test_subscribe_before_first_reading(server):
    async def main():
        ws = await ws_connect(server, "brand-new")
        try:
            await ws_assert_silent(ws, 0.3)
            await post_async(server, reading("brand-new", BASE_TS))
            assert (await ws_recv_json(ws, 3))["ts"] == iso(BASE_TS)
        finally:
            await ws.close()

    run_async(main())


def test_client_messages_are_ignored(server):
    async def main():
        ws = await ws_connect(server, "chatty")
        try:
            await ws.send("hello")
            await ws.send(b"\x00\x01binary")
            await ws.send("x" * 4096)  # the largest allowed client message
            pong = await ws.ping(b"p")
            await asyncio.wait_for(pong, 3)
            await post_async(server, reading("chatty", BASE_TS))
            assert (await ws_recv_json(ws, 3))["meter_id"] == "chatty"
            await ws_assert_silent(ws, 0.2)
        finally:
            await ws.close()

    run_async(main())


def test_oversized_client_message_closes_1009(server):
    async def main():
        ws = await ws_connect(server, "big-msg")
        try:
            await ws.send("y" * 5000)
            code = await ws_wait_closed(ws, 5)
            assert code == 1009, code
        finally:
            await ws.close()
        # The server is fine and other sockets work.
        ws2 = await ws_connect(server, "big-msg")
        try:
            await post_async(server, reading("big-msg", BASE_TS))
            assert (await ws_recv_json(ws2, 3))["meter_id"] == "big-msg"
        finally:
            await ws2.close()

    run_async(main())


def test_permessage_deflate_option(server_factory):
    """--ws-deflate: a client offering permessage-deflate gets compressed
    frames and the same messages; without it the extension is declined."""
    for args, expect in ((["--ws-deflate"], True), ([], False)):
        srv = server_factory(args)
        srv.post_ok(reading("zip", BASE_TS, energy=1))

        async def main():
            ws = await ws_connect(srv, "zip", compression="deflate")
            try:
                negotiated = any(type(e).__name__ == "PerMessageDeflate" for e in ws.extensions)
                assert negotiated == expect, ws.extensions
                assert (await ws_recv_json(ws, 3))["energy"] == 1
                await post_async(srv, reading("zip", BASE_TS + 1, energy=2))
                assert (await ws_recv_json(ws, 3))["energy"] == 2
            finally:
                await ws.close()

        run_async(main())


def test_client_close_is_clean(server):
    async def main():
        ws = await ws_connect(server, "bye")
        await ws.close(1000, "done")
        assert ws.close_code == 1000

    run_async(main())
    server.assert_healthy()


@pytest.mark.parametrize("path,status", [
    ("/ws/%2e%2e", 400), ("/ws/..", 400), ("/ws/.", 400), ("/ws/bad%20id", 400),
    ("/ws/" + "x" * 65, 400), ("/ws/%C3%A9", 400), ("/ws/a%2Fb", 400),
])
def test_invalid_meter_id_refuses_upgrade(server, path, status):
    r = raw_request(server.port, b"GET %s HTTP/1.1\r\nHost: x\r\n" % path.encode() + WS_HEADERS +
                    b"\r\n")
    assert r.status == status, r
    assert r.error_code() == "invalid_meter_id", r
    assert "upgrade" not in r.header("connection", "").lower()


def test_invalid_meter_id_with_websocket_client(server):
    async def main():
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as ei:
            await ws_connect(server, "%2e%2e")
        assert ei.value.status_code == 400

    run_async(main())
    server.assert_nothing_stored()


def test_plain_get_on_ws_is_426(server):
    r = server.get("/ws/x")
    assert r.status == 426, r
    assert r.json()["error"]["code"]


def test_server_pings_idle_client_keeps_it(server_factory):
    """--ws-idle-timeout 1: the server pings after 0.5 s of silence; a client
    that answers (websockets does automatically) stays connected."""
    srv = server_factory(["--ws-idle-timeout", "1"])

    async def main():
        ws = await ws_connect(srv, "idle")
        try:
            await ws_assert_silent(ws, 3.0)  # 3 idle timeouts
            await post_async(srv, reading("idle", BASE_TS))
            assert (await ws_recv_json(ws, 3))["meter_id"] == "idle"
        finally:
            await ws.close()

    run_async(main())


def test_client_that_never_answers_pings_is_dropped(server_factory):
    srv = server_factory(["--ws-idle-timeout", "1"])
    with RawWebSocket(srv.port, "mute") as ws:
        t0 = time.monotonic()
        op, payload = ws.read_frame(timeout=3)
        assert op == 0x9, f"expected a ping, got opcode {op}"
        assert time.monotonic() - t0 < 2.0
        # never answer: the connection must go away within a few seconds
        assert ws.conn.closed_by_peer(5), "a client that never answers pings must be dropped"
        assert time.monotonic() - t0 < 6
    srv.assert_healthy()


def test_raw_client_answering_pings_stays(server_factory):
    srv = server_factory(["--ws-idle-timeout", "1"])
    with RawWebSocket(srv.port, "pongs") as ws:
        deadline = time.monotonic() + 3
        pings = 0
        while time.monotonic() < deadline:
            try:
                op, payload = ws.read_frame(timeout=deadline - time.monotonic())
            except TimeoutError:
                break
            if op == 0x9:
                pings += 1
                ws.send_frame(0xA, payload)
        assert pings >= 2
        srv.post_ok(reading("pongs", BASE_TS))
        while True:
            op, payload = ws.read_frame(timeout=3)
            if op == 0x9:
                ws.send_frame(0xA, payload)
                continue
            assert op == 0x1, op
            assert json.loads(payload)["meter_id"] == "pongs"
            break
        ws.send_frame(0x8, b"\x03\xe8")  # close 1000
        op, payload = ws.read_frame(timeout=3)
        while op == 0x9:
            op, payload = ws.read_frame(timeout=3)
        assert op == 0x8


def test_fast_subscriber_gets_every_reading_of_a_big_batch(server):
    """A subscriber that reads promptly must get every committed reading, even
    when one POST commits more readings than --ws-queue (default 64) at once;
    coalescing is only for subscribers that do not read."""
    n = 500

    async def main():
        ws = await ws_connect(server, "burst", max_queue=None)
        try:
            r = await post_async(server, [reading("burst", BASE_TS + k, energy=k)
                                          for k in range(n)])
            assert r.status == 201 and r.json() == {"accepted": n, "duplicates": 0}, r
            got = []
            with contextlib.suppress(asyncio.TimeoutError):
                while len(got) < n:
                    got.append((await ws_recv_json(ws, 2))["energy"])
            assert got == list(range(n)), \
                f"a fast subscriber received {len(got)} of {n} readings of one batch"
        finally:
            await ws.close()

    run_async(main())


def test_slow_reader_is_dropped_others_unaffected(server_factory):
    """--ws-queue 4 --ws-stall-timeout 1: a subscriber that never reads (tiny
    receive buffer) is coalesced and then disconnected; a normal subscriber on
    the same meter receives every reading promptly; the server stays healthy.

    The stuck client also advertises a small MSS, which keeps the server's
    autotuned send buffer small (with the loopback MSS it grows to megabytes).
    Readings are posted one per POST until the server reports the stalled
    subscriber, then a few more (bounded in time and count)."""
    srv = server_factory(["--ws-queue", "4", "--ws-stall-timeout", "1"])
    meter = "slow-" + "m" * 59  # 64 characters: the biggest messages
    per_post = 1
    max_readings = 20_000
    post_deadline = 25.0

    def big(k):
        return reading(meter, BASE_TS + k, voltage=230.123456789012, current=12.3456789012345,
                       power=2841.98765432101, energy=123456.789012345, frequency=49.9876543210123,
                       power_factor=0.987654321012345)

    stall_rx = re.compile(r"stall")

    def stalled():
        return any(stall_rx.search(ln) for ln in srv.run_lines()[-20:])

    stuck = RawWebSocket(srv.port, meter, rcvbuf=2048, mss=536)
    try:
        acked_at = {}
        errors = []
        state = {"posted": 0, "done": False, "stalled_at": None}

        def poster():
            try:
                with HttpClient(srv.port) as c:
                    t_end = time.monotonic() + post_deadline
                    k = 0
                    extra = 20  # POSTs after the stall was reported
                    while k < max_readings and time.monotonic() < t_end and extra > 0:
                        ks = range(k, k + per_post)
                        r = c.request("POST", "/api/v1/readings", [big(i) for i in ks])
                        assert r.status == 201 and r.json()["accepted"] == per_post, r
                        t = time.monotonic()
                        for i in ks:
                            acked_at[iso(BASE_TS + i)] = t
                        k += per_post
                        state["posted"] = k
                        if state["stalled_at"] is None and k % 10 == 0 and stalled():
                            state["stalled_at"] = k
                        if state["stalled_at"] is not None:
                            extra -= 1
            except BaseException as e:  # noqa: BLE001
                errors.append(e)
            finally:
                state["done"] = True

        async def main():
            normal = await ws_connect(srv, meter, max_queue=None)
            try:
                th = threading.Thread(target=poster)
                th.start()
                got, lag = [], 0.0
                last_progress = time.monotonic()
                while not (state["done"] and len(got) >= state["posted"]):
                    try:
                        m = await ws_recv_json(normal, 0.25)
                    except asyncio.TimeoutError:
                        if time.monotonic() - last_progress > 5:
                            break  # nothing for 5 s: the assertions below report it
                        continue
                    last_progress = time.monotonic()
                    got.append(m["ts"])
                    t = acked_at.get(m["ts"])
                    if t is not None:
                        lag = max(lag, time.monotonic() - t)
                await asyncio.to_thread(th.join, 40)
                assert not errors, errors
                total = state["posted"]
                assert state["stalled_at"] is not None, \
                    f"the non-reading subscriber was never reported stalled ({total} readings)"
                assert got == [iso(BASE_TS + k) for k in range(total)], \
                    f"the normal subscriber got {len(got)} of {total} readings"
                assert lag < 2.0, f"the normal subscriber lagged {lag:.2f}s behind the 201"
                return total
            finally:
                await normal.close()

        total = run_async(main(), 70)
        # The stuck socket was dropped: draining what is buffered ends in
        # FIN/RST, not in a timeout.
        received = stuck.conn.read_until_closed(timeout=15)
        assert len(received) < total * 200, "the stalled subscriber got everything"
    finally:
        stuck.close()

    srv.assert_healthy()

    async def fresh():
        ws = await ws_connect(srv, meter)
        try:
            assert (await ws_recv_json(ws, 3))["ts"] == iso(BASE_TS + total - 1)
        finally:
            await ws.close()

    run_async(fresh())


def test_slow_reader_queue_is_coalesced_to_newest(server_factory):
    """A subscriber that pauses (but for less than --ws-stall-timeout) loses
    intermediate readings, never the newest one, and stays connected: what it
    gets is in ts order without repeats and ends with the newest reading."""
    srv = server_factory(["--ws-queue", "4", "--ws-stall-timeout", "10"])
    meter = "pause-" + "p" * 58
    total = 1000
    with RawWebSocket(srv.port, meter, rcvbuf=2048, mss=536) as ws:
        time.sleep(0.1)
        t0 = time.monotonic()
        with HttpClient(srv.port) as c:
            for k in range(total):
                r = c.request("POST", "/api/v1/readings",
                              reading(meter, BASE_TS + k, voltage=230.123456789012,
                                      current=12.3456789012345, power=2841.98765432101,
                                      energy=123456.789012345, frequency=49.9876543210123))
                assert r.status == 201, r
                if time.monotonic() - t0 > 7:
                    pytest.skip("posting too slow on this machine to stay under the stall timeout")
        got = []
        while True:
            try:
                op, payload = ws.read_frame(timeout=1.0)
            except TimeoutError:
                break
            assert op == 0x1, (op, payload[:80])
            got.append(json.loads(payload)["ts"])
            if got[-1] == iso(BASE_TS + total - 1):
                break
        assert got, "nothing received after the pause"
        assert got[-1] == iso(BASE_TS + total - 1), "the newest reading was not delivered"
        assert got == sorted(set(got)), "coalesced messages out of order or repeated"
        assert len(got) < total, "no coalescing happened (the pause did not fill the buffers)"
        assert not srv.wait_for_log("stall", 0.1), "dropped although it read again in time"
        # still subscribed and live
        srv.post_ok(reading(meter, BASE_TS + total))
        op, payload = ws.read_frame(timeout=3)
        assert json.loads(payload)["ts"] == iso(BASE_TS + total)


def test_shutdown_closes_websockets_with_1001(server_factory):
    srv = server_factory()
    srv.post_ok(reading("bye", BASE_TS))

    async def main():
        socks = [await ws_connect(srv, m) for m in ("bye", "bye", "other")]
        assert (await ws_recv_json(socks[0], 3))["meter_id"] == "bye"
        assert (await ws_recv_json(socks[1], 3))["meter_id"] == "bye"
        t0 = time.monotonic()
        srv.send_signal(signal.SIGTERM)
        codes = await asyncio.gather(*(ws_wait_closed(ws, 8) for ws in socks))
        assert codes == [1001, 1001, 1001], codes
        assert time.monotonic() - t0 < 5

    run_async(main())
    rc = srv.wait_exit(10)
    assert rc == 0 and not srv.killed, srv.run_log()
    assert srv.wait_for_log("stopped cleanly", 1), srv.run_log()
