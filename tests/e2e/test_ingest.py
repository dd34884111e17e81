"""Ingest and query API, end to end: POST shapes and framing (ESP32-style raw
sockets, keep-alive, chunked, 100-continue, pipelining), validation limits
that must be accepted, timestamps, duplicates, late readings, the meters and
readings endpoints, paging and output formatting."""
import json
import re
import threading
import time

import pytest

from conftest import (BASE_TS, HttpClient, chunked, iso, now_ms, post_bytes, reading, ts_ms)

ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


# ---------------------------------------------------------------------------
# ESP32-style clients on raw sockets

def esp32_request(port, body, chunk_sizes=None):
    """The bytes an ESP32 HTTPClient sends: Content-Length framing, or chunked
    framing in pieces of chunk_sizes when given."""
    if isinstance(body, str):
        body = body.encode()
    framing = (b"Transfer-Encoding: chunked\r\n" if chunk_sizes is not None
               else b"Content-Length: %d\r\n" % len(body))
    head = (b"POST /api/v1/readings HTTP/1.1\r\n"
            b"Host: 127.0.0.1:%d\r\n"
            b"User-Agent: ESP32HTTPClient\r\n"
            b"Connection: keep-alive\r\n"
            b"Content-Type: application/json\r\n" % port) + framing + b"\r\n"
    return head + (chunked(body, chunk_sizes) if chunk_sizes is not None else body)


def esp32_body(meter, ts, k):
    # What the firmware prints: compact JSON, fixed decimals.
    return ('{"meter_id":"%s","ts":"%s","voltage":%.1f,"current":%.3f,"power":%.1f,'
            '"energy":%.3f,"frequency":50.01,"power_factor":0.97}'
            % (meter, iso(ts), 229.5 + k, 1.25 + k, 286.9 + k, 1234.5 + k))


def test_esp32_raw_keepalive_several_requests(server):
    meter = "esp32-0a1b2c"
    with server.connect() as c:
        for k in range(5):
            c.send(esp32_request(server.port, esp32_body(meter, BASE_TS + k * 1000, k)))
            r = c.read_response()
            assert r.status == 201, r
            assert r.version == "1.1"
            assert r.header("content-type", "").startswith("application/json")
            assert r.header("connection", "keep-alive").lower() != "close", r
            assert r.json() == {"accepted": 1, "duplicates": 0}
        # The very same connection is still usable for a GET.
        c.send(b"GET /api/v1/meters/%s/latest HTTP/1.1\r\nHost: x\r\n\r\n" % meter.encode())
        r = c.read_response()
        assert r.status == 200, r
        assert r.json()["ts"] == iso(BASE_TS + 4000)
    got, _ = server.all_readings(meter)
    assert [g["ts"] for g in got] == [iso(BASE_TS + k * 1000) for k in range(5)]
    assert got[2] == {"meter_id": meter, "ts": iso(BASE_TS + 2000), "voltage": 231.5,
                      "current": 3.25, "power": 288.9, "energy": 1236.5, "frequency": 50.01,
                      "power_factor": 0.97}


def test_esp32_raw_request_split_in_odd_pieces(server):
    """A microcontroller writes headers and body in several small TCP segments."""
    meter = "esp32-split"
    data = esp32_request(server.port, esp32_body(meter, BASE_TS, 0))
    with server.connect() as c:
        pieces = [data[:1], data[1:7], data[7:60], data[60:len(data) - 3], data[len(data) - 3:]]
        for p in pieces:
            c.send(p)
            time.sleep(0.02)
        r = c.read_response()
        assert r.status == 201, r
        assert r.json() == {"accepted": 1, "duplicates": 0}
    assert server.get_json(f"/api/v1/meters/{meter}/latest")["ts"] == iso(BASE_TS)


def test_esp32_raw_chunked_keepalive(server):
    meter = "esp32-chunked"
    with server.connect() as c:
        for k, sizes in enumerate(([7], [1, 2, 300], [4096], [13, 5])):
            c.send(esp32_request(server.port, esp32_body(meter, BASE_TS + k, k), sizes))
            r = c.read_response()
            assert r.status == 201, r
            assert r.json() == {"accepted": 1, "duplicates": 0}
        # A chunked batch (array) on the same connection.
        batch = json.dumps([reading(meter, BASE_TS + 100 + i) for i in range(50)]).encode()
        c.send(esp32_request(server.port, batch, [100, 1, 999]))
        r = c.read_response()
        assert r.status == 201, r
        assert r.json() == {"accepted": 50, "duplicates": 0}
    got, _ = server.all_readings(meter)
    assert len(got) == 54


def test_chunked_with_extensions_and_trailer(server):
    body = json.dumps(reading("chunk-ext", BASE_TS)).encode()
    head = (b"POST /api/v1/readings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    wire = (head + b"%x;name=value\r\n" % 10 + body[:10] + b"\r\n" +
            b"%X\r\n" % (len(body) - 10) + body[10:] + b"\r\n0\r\nX-Trailer: 1\r\n\r\n")
    r = server.raw(wire)
    assert r.status == 201, r
    assert r.json() == {"accepted": 1, "duplicates": 0}


def test_expect_100_continue(server):
    body = json.dumps(reading("expect-100", BASE_TS)).encode()
    with server.connect() as c:
        c.send(b"POST /api/v1/readings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
        interim = c.read_response(timeout=3, skip_interim=False)
        assert interim.status == 100, interim
        c.send(body)
        r = c.read_response()
        assert r.status == 201, r
        assert r.json() == {"accepted": 1, "duplicates": 0}


def test_pipelined_requests_answered_in_order(server):
    bodies = [json.dumps(reading("pipe", BASE_TS + k)) for k in range(3)]
    wire = b"".join(post_bytes(server.port, b) for b in bodies)
    wire += b"GET /api/v1/meters/pipe/readings HTTP/1.1\r\nHost: x\r\n\r\n"
    with server.connect() as c:
        c.send(wire)
        for _ in range(3):
            r = c.read_response()
            assert r.status == 201, r
            assert r.json() == {"accepted": 1, "duplicates": 0}
        r = c.read_response()
        assert r.status == 200 and r.json()["count"] == 3, r


def test_http10_and_connection_close(server):
    body = json.dumps(reading("http10", BASE_TS)).encode()
    with server.connect() as c:
        c.send(b"POST /api/v1/readings HTTP/1.0\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n" % len(body) + body)
        r = c.read_response()
        assert r.status == 201, r
        assert c.closed_by_peer(3), "HTTP/1.0 without keep-alive must be closed after the answer"
    with server.connect() as c:
        c.send(post_bytes(server.port, json.dumps(reading("http10", BASE_TS + 1)),
                          keep_alive=False))
        r = c.read_response()
        assert r.status == 201, r
        assert r.header("connection", "").lower() == "close"
        assert c.closed_by_peer(3)


# ---------------------------------------------------------------------------
# Body shapes, content types, optional fields

def test_single_reading_roundtrip(server):
    before = now_ms()
    server.post_ok(reading("m1", "2026-01-15T09:00:00.123+01:00", voltage=230.1, current=-2.5,
                           power=-575.25, energy=12345.678, frequency=49.98,
                           power_factor=0.95), accepted=1)
    after = now_ms()
    expected = {"meter_id": "m1", "ts": "2026-01-15T08:00:00.123Z", "voltage": 230.1,
                "current": -2.5, "power": -575.25, "energy": 12345.678, "frequency": 49.98,
                "power_factor": 0.95}
    r = server.get("/api/v1/meters/m1/latest")
    assert r.status == 200, r
    assert r.json() == expected
    # Numbers are printed as written, the key order is the documented one.
    assert r.text == ('{"meter_id":"m1","ts":"2026-01-15T08:00:00.123Z","voltage":230.1,'
                      '"current":-2.5,"power":-575.25,"energy":12345.678,"frequency":49.98,'
                      '"power_factor":0.95}')

    m = server.get_json("/api/v1/meters/m1")
    assert set(m) == {"meter_id", "name", "location", "interval_s", "created_at", "last_seen",
                      "latest"}
    assert m["meter_id"] == "m1"
    assert isinstance(m["name"], str)
    assert m["latest"] == expected
    for k in ("created_at", "last_seen"):
        assert ISO_RE.match(m[k]), m
        assert before - 1000 <= ts_ms(m[k]) <= after + 1000, m

    lst = server.meters()
    assert lst["count"] == 1 and lst["meters"] == [m]


@pytest.mark.parametrize("shape", ["object", "array", "wrapped"])
def test_body_shapes(server, shape):
    rs = [reading("shape", BASE_TS + k) for k in range(3)]
    body = {"object": rs[0], "array": rs, "wrapped": {"readings": rs}}[shape]
    n = 1 if shape == "object" else 3
    server.post_ok(body, accepted=n)
    assert server.readings("shape")["count"] == n


@pytest.mark.parametrize("ctype", [None, "application/json", "application/json; charset=utf-8",
                                   "Application/JSON", "application/json;charset=UTF-8"])
def test_json_content_types_accepted(server, ctype):
    body = json.dumps(reading("ctype", BASE_TS)).encode()
    r = server.raw(post_bytes(server.port, body, content_type=ctype))
    assert r.status == 201, r
    assert r.json() == {"accepted": 1, "duplicates": 0}


def test_optional_fields_absent_null_and_unknown_keys(server):
    server.post_ok([
        reading("opt", BASE_TS),  # no optional fields
        reading("opt", BASE_TS + 1, frequency=None, power_factor=None, ts_source="ntp",
                extra={"nested": [1, 2]}, firmware="1.2.3"),
        reading("opt", BASE_TS + 2, frequency=50),
        reading("opt", BASE_TS + 3, power_factor=1),
    ], accepted=4)
    got = server.readings("opt")["readings"]
    base = {"meter_id": "opt", "voltage": 230, "current": 1.5, "power": 345, "energy": 1000}
    assert got == [
        dict(base, ts=iso(BASE_TS)),
        dict(base, ts=iso(BASE_TS + 1)),
        dict(base, ts=iso(BASE_TS + 2), frequency=50),
        dict(base, ts=iso(BASE_TS + 3), power_factor=1),
    ]
    for r in got:
        assert "null" not in json.dumps(r)


def test_null_ts_means_receive_time(server):
    before = now_ms()
    server.post_ok({"meter_id": "nots", "voltage": 1, "current": 1, "power": 1, "energy": 1,
                    "ts": None}, accepted=1)
    server.post_ok({"meter_id": "nots2", "voltage": 1, "current": 1, "power": 1, "energy": 1},
                   accepted=1)
    after = now_ms()
    for m in ("nots", "nots2"):
        ts = ts_ms(server.get_json(f"/api/v1/meters/{m}/latest")["ts"])
        assert before - 5 <= ts <= after + 5


# ---------------------------------------------------------------------------
# Timestamps

@pytest.mark.parametrize("given,expected", [
    ("2025-06-01T12:00:00Z", "2025-06-01T12:00:00.000Z"),
    ("2025-06-01T12:00:00.5Z", "2025-06-01T12:00:00.500Z"),
    ("2025-06-01T12:00:00.123456789Z", "2025-06-01T12:00:00.123Z"),
    ("2025-06-01T14:00:00.250+02:00", "2025-06-01T12:00:00.250Z"),
    ("2025-06-01T07:30:00-04:30", "2025-06-01T12:00:00.000Z"),
    ("2025-06-01T00:30:00+01:00", "2025-05-31T23:30:00.000Z"),
    ("2025-06-01T12:00:00+00:00", "2025-06-01T12:00:00.000Z"),
    ("2025-06-01t12:00:00z", "2025-06-01T12:00:00.000Z"),
    (1748779200, "2025-06-01T12:00:00.000Z"),          # epoch seconds
    (1748779200.5, "2025-06-01T12:00:00.500Z"),        # fractional epoch seconds
    (1748779200.123, "2025-06-01T12:00:00.123Z"),
    (1748779200123, "2025-06-01T12:00:00.123Z"),       # epoch milliseconds
    (1748779200123.9, "2025-06-01T12:00:00.123Z"),
])
def test_timestamp_formats(server, given, expected):
    server.post_ok(reading("tsfmt", raw_ts=given), accepted=1)
    assert server.get_json("/api/v1/meters/tsfmt/latest")["ts"] == expected


def test_epoch_seconds_ms_threshold(server_factory):
    # |n| < 1e11 is epoch seconds, otherwise epoch milliseconds.
    srv = server_factory()
    srv.post_ok(reading("thr", raw_ts=946684800), accepted=1)  # 2000-01-01 in seconds: oldest allowed
    assert srv.get_json("/api/v1/meters/thr/latest")["ts"] == "2000-01-01T00:00:00.000Z"
    srv.post_ok(reading("thr2", raw_ts=946684800000), accepted=1)  # the same instant in ms
    assert srv.get_json("/api/v1/meters/thr2/latest")["ts"] == "2000-01-01T00:00:00.000Z"
    r = srv.post(reading("thr3", raw_ts=946684799999))  # one ms before 2000
    assert r.status == 400 and r.json()["error"]["field"] == "ts", r
    srv.assert_healthy()


def test_future_tolerance_default_300s(server):
    n = now_ms()
    server.post_ok(reading("fut", iso(n + 200_000)), accepted=1)
    r = server.post(reading("fut", iso(n + 400_000)))
    assert r.status == 400, r
    assert r.json()["error"]["code"] == "invalid_reading"
    assert r.json()["error"]["field"] == "ts"
    assert server.readings("fut")["count"] == 1


def test_future_tolerance_option(server_factory):
    srv = server_factory(["--future-tolerance", "3600"])
    n = now_ms()
    srv.post_ok(reading("fut", iso(n + 3000_000)), accepted=1)
    r = srv.post(reading("fut", iso(n + 3700_000)))
    assert r.status == 400 and r.json()["error"]["field"] == "ts", r
    srv0 = server_factory(["--future-tolerance", "0"])
    r = srv0.post(reading("fut", iso(now_ms() + 60_000)))
    assert r.status == 400 and r.json()["error"]["field"] == "ts", r
    srv0.post_ok(reading("fut", iso(now_ms() - 1000)), accepted=1)


# ---------------------------------------------------------------------------
# Values at the edges of the documented ranges are accepted

def test_range_edges_accepted(server):
    edges = [
        dict(voltage=0, current=-10000, power=-1e7, energy=0, frequency=0, power_factor=0),
        dict(voltage=1000, current=10000, power=1e7, energy=1e12, frequency=1000,
             power_factor=1),
        dict(voltage=0.0, current=0.0, power=0.0, energy=0.0),
    ]
    rs = [reading("edge", BASE_TS + i, **e) for i, e in enumerate(edges)]
    server.post_ok(rs, accepted=3)
    got = server.readings("edge")["readings"]
    for g, e in zip(got, edges):
        for k, v in e.items():
            assert g[k] == v, (g, e)


def test_meter_id_alphabet_and_length(server):
    ids = ["a", "A-Z_a.z:0-9", "x" * 64, "..." , ".a", "a..b", "urn:dev:mac:0a1b2c3d4e5f",
           "0"]
    server.post_ok([reading(m, BASE_TS) for m in ids], accepted=len(ids))
    lst = server.meters()
    assert lst["count"] == len(ids)
    assert [m["meter_id"] for m in lst["meters"]] == sorted(ids)
    for m in ids:
        assert server.get_json(f"/api/v1/meters/{m}")["meter_id"] == m
        assert server.get_json(f"/api/v1/meters/{m}/latest")["meter_id"] == m


# ---------------------------------------------------------------------------
# Number formatting

def test_numbers_printed_as_written(server):
    server.post_ok(b'{"meter_id":"fmt","ts":"2025-06-01T12:00:00Z","voltage":230.1,'
                   b'"current":0.001,"power":-1234.5,"energy":98765.4321,'
                   b'"frequency":50,"power_factor":0.5}', accepted=1)
    text = server.get("/api/v1/meters/fmt/latest").text
    assert text == ('{"meter_id":"fmt","ts":"2025-06-01T12:00:00.000Z","voltage":230.1,'
                    '"current":0.001,"power":-1234.5,"energy":98765.4321,"frequency":50,'
                    '"power_factor":0.5}')
    assert "E" not in text and "e+" not in text


def test_large_integral_values_printed_without_exponent(server):
    """power 1000000 W / energy 1e12 Wh must come back as written: 1000000, not 1e+06."""
    server.post_ok(b'{"meter_id":"big","ts":"2025-06-01T12:00:00Z","voltage":1000,'
                   b'"current":10000,"power":1000000,"energy":1000000000000}', accepted=1)
    for path in ("/api/v1/meters/big/latest", "/api/v1/meters/big/readings",
                 "/api/v1/meters/big", "/api/v1/meters"):
        text = server.get(path).text
        assert '"power":1000000,' in text and '"energy":1000000000000' in text, \
            f"{path}: numbers not printed as written: {text}"
        assert "e+" not in text and "E+" not in text, text


def test_small_values_printed_without_exponent(server):
    """A standby current of 0.0001 A must come back as 0.0001, not 1e-04."""
    server.post_ok(b'{"meter_id":"small","ts":"2025-06-01T12:00:00Z","voltage":230,'
                   b'"current":0.0001,"power":0.00025,"energy":0.001}', accepted=1)
    text = server.get("/api/v1/meters/small/latest").text
    assert text == ('{"meter_id":"small","ts":"2025-06-01T12:00:00.000Z","voltage":230,'
                    '"current":0.0001,"power":0.00025,"energy":0.001}'), text


# ---------------------------------------------------------------------------
# Duplicates, late and out-of-order readings

def test_duplicates_counted_and_stored_once(server):
    r1 = reading("dup", BASE_TS, voltage=231)
    server.post_ok(r1, accepted=1, duplicates=0)
    server.post_ok(r1, accepted=0, duplicates=1)
    # Same (meter_id, ts) with different values: still a duplicate; the first wins.
    server.post_ok(reading("dup", BASE_TS, voltage=999), accepted=0, duplicates=1)
    # Same instant in another notation.
    server.post_ok(reading("dup", "2025-06-01T14:00:00+02:00"), accepted=0, duplicates=1)
    server.post_ok(reading("dup", raw_ts=BASE_TS // 1000), accepted=0, duplicates=1)
    # A batch mixing new, old and an internal repeat.
    server.post_ok([reading("dup", BASE_TS + 1), r1, reading("dup", BASE_TS + 1),
                    reading("dup", BASE_TS + 2), reading("other", BASE_TS)],
                   accepted=3, duplicates=2)
    got = server.readings("dup")["readings"]
    assert [g["ts"] for g in got] == [iso(BASE_TS), iso(BASE_TS + 1), iso(BASE_TS + 2)]
    assert got[0]["voltage"] == 231
    # The same ts on another meter is not a duplicate.
    assert server.readings("other")["count"] == 1


def test_late_and_out_of_order_readings(server):
    order = [5, 1, 9, 3, 7, 2, 8, 0, 6, 4]
    for k in order:
        server.post_ok(reading("late", BASE_TS + k * 60_000, energy=k), accepted=1)
    got = server.readings("late")["readings"]
    assert [g["energy"] for g in got] == list(range(10))
    desc = server.readings("late", order="desc")["readings"]
    assert [g["energy"] for g in desc] == list(range(9, -1, -1))
    # latest is the newest ts, not the last received
    assert server.get_json("/api/v1/meters/late/latest")["energy"] == 9
    assert server.get_json("/api/v1/meters/late")["latest"]["energy"] == 9
    lst = server.meters()["meters"]
    assert lst[0]["latest"]["energy"] == 9


def test_latest_not_last_received(server):
    server.post_ok(reading("newest", BASE_TS + 10_000, voltage=240), accepted=1)
    server.post_ok(reading("newest", BASE_TS, voltage=220), accepted=1)  # late arrival
    assert server.get_json("/api/v1/meters/newest/latest")["voltage"] == 240


def test_concurrent_posters(server):
    errors, acks = [], []

    def worker(t):
        try:
            with HttpClient(server.port) as c:
                for k in range(30):
                    r = c.request("POST", "/api/v1/readings",
                                  [reading("conc", BASE_TS + t * 1000 + k * 10 + j)
                                   for j in range(5)])
                    assert r.status == 201, r
                    acks.append(r.json()["accepted"])
        except BaseException as e:  # noqa: BLE001 - report in the main thread
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert sum(acks) == 6 * 30 * 5
    got, _ = server.all_readings("conc")
    assert len(got) == 900


def test_max_batch_default(server):
    rs = [reading("mb", BASE_TS + k) for k in range(5000)]
    server.post_ok(rs, accepted=5000)
    r = server.post([reading("mb2", BASE_TS + k) for k in range(5001)])
    assert r.status == 400 and r.error_code() == "batch_too_large", r
    assert server.get("/api/v1/meters/mb2").status == 404


def test_max_batch_option(server_factory):
    srv = server_factory(["--max-batch", "3"])
    srv.post_ok([reading("b", BASE_TS + k) for k in range(3)], accepted=3)
    r = srv.post({"readings": [reading("b", BASE_TS + 10 + k) for k in range(4)]})
    assert r.status == 400 and r.error_code() == "batch_too_large", r
    assert srv.readings("b")["count"] == 3


# ---------------------------------------------------------------------------
# Meters and readings endpoints

def test_meters_sorted_and_counted(server):
    ids = ["zeta", "alpha", "Mike", "m-10", "m-2", "m.1", "m:1", "m_1", "0x"]
    for i, m in enumerate(ids):
        server.post_ok(reading(m, BASE_TS + i), accepted=1)
    doc = server.meters()
    assert doc["count"] == len(ids)
    assert [m["meter_id"] for m in doc["meters"]] == sorted(ids)
    for m in doc["meters"]:
        assert m["latest"]["meter_id"] == m["meter_id"]


def test_unknown_meter_404(server):
    server.post_ok(reading("known", BASE_TS), accepted=1)
    for path in ("/api/v1/meters/unknown", "/api/v1/meters/unknown/latest",
                 "/api/v1/meters/unknown/readings", "/api/v1/meters/Known"):
        r = server.get(path)
        assert r.status == 404, (path, r)
        assert r.error_code() == "unknown_meter", (path, r)


def test_last_seen_tracks_receive_time(server):
    server.post_ok(reading("seen", BASE_TS), accepted=1)
    m1 = server.get_json("/api/v1/meters/seen")
    time.sleep(0.05)
    server.post_ok(reading("seen", BASE_TS - 1000), accepted=1)  # an old reading, received now
    m2 = server.get_json("/api/v1/meters/seen")
    assert m2["created_at"] == m1["created_at"]
    assert ts_ms(m2["last_seen"]) > ts_ms(m1["last_seen"])
    assert m2["latest"]["ts"] == iso(BASE_TS)


def test_readings_range_bounds(server):
    server.post_ok([reading("rng", BASE_TS + k * 1000, energy=k) for k in range(10)],
                   accepted=10)

    def energies(**p):
        return [r["energy"] for r in server.readings("rng", **p)["readings"]]

    assert energies() == list(range(10))
    # from inclusive, to exclusive, in every notation
    assert energies(**{"from": iso(BASE_TS + 2000), "to": iso(BASE_TS + 5000)}) == [2, 3, 4]
    assert energies(**{"from": BASE_TS + 2000, "to": BASE_TS + 5000}) == [2, 3, 4]
    assert energies(**{"from": (BASE_TS + 2000) // 1000, "to": (BASE_TS + 5000) // 1000}) == \
        [2, 3, 4]
    assert energies(**{"from": "2025-06-01T14:00:02%2B02:00"}) == list(range(2, 10))
    assert energies(**{"from": iso(BASE_TS + 1001)}) == list(range(2, 10))
    assert energies(to=iso(BASE_TS + 1001)) == [0, 1]
    assert energies(**{"from": BASE_TS + 3000, "to": BASE_TS + 3000}) == []
    assert energies(order="desc", limit=3) == [9, 8, 7]
    assert energies(order="asc", limit=2) == [0, 1]
    assert energies(**{"order": "desc", "from": BASE_TS + 4000}) == [9, 8, 7, 6, 5, 4]


@pytest.mark.parametrize("query", ["limit=0", "limit=10001", "limit=-1", "limit=abc",
                                   "limit=1.5", "limit=", "order=up", "from=yesterday",
                                   "to=2025-13-01T00:00:00Z", "from=2025-06-01T12:00:00",
                                   "from=1748779300&to=1748779200"])
def test_readings_bad_parameters(server, query):
    server.post_ok(reading("q", BASE_TS), accepted=1)
    r = server.get(f"/api/v1/meters/q/readings?{query}")
    assert r.status == 400, (query, r)
    assert r.error_code() == "invalid_parameter", (query, r)


def test_readings_limits_default_and_max(server):
    n = 10050
    for start in range(0, n, 5000):
        server.post_ok([reading("lim", BASE_TS + k) for k in range(start, min(n, start + 5000))])
    doc = server.readings("lim")
    assert doc["count"] == 1000 and len(doc["readings"]) == 1000
    assert doc["next"] is not None
    doc = server.readings("lim", limit=10000)
    assert doc["count"] == 10000 and doc["next"] is not None
    nxt = server.get_json(doc["next"])
    assert nxt["count"] == 50 and nxt["next"] is None
    assert nxt["readings"][0]["ts"] == iso(BASE_TS + 10000)


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("total,limit", [(57, 10), (30, 10), (1, 1), (5, 7)])
def test_paging_visits_everything_once(server, order, total, limit):
    # Irregular gaps and a late insert order.
    tss = [BASE_TS + k * 997 + (k % 3) for k in range(total)]
    server.post_ok([reading("page", t, energy=i) for i, t in reversed(list(enumerate(tss)))])
    got, pages = server.all_readings("page", limit=limit, order=order)
    want = [iso(t) for t in (tss if order == "asc" else reversed(tss))]
    assert [g["ts"] for g in got] == want
    assert pages == total // limit + 1


def test_paging_keeps_range(server):
    server.post_ok([reading("pr", BASE_TS + k * 1000) for k in range(40)])
    frm, to = BASE_TS + 5000, BASE_TS + 33000
    for order in ("asc", "desc"):
        got, _ = server.all_readings("pr", limit=7, order=order,
                                     **{"from": iso(frm), "to": iso(to)})
        tss = sorted(ts_ms(g["ts"]) for g in got)
        assert tss == [BASE_TS + k * 1000 for k in range(5, 33)], order


def test_paging_next_link_is_usable_verbatim(server):
    server.post_ok([reading("lnk", BASE_TS + k) for k in range(3)])
    doc = server.readings("lnk", limit=2)
    assert doc["next"].startswith("/api/v1/meters/lnk/readings?")
    doc2 = server.get_json(doc["next"])
    assert [r["ts"] for r in doc2["readings"]] == [iso(BASE_TS + 2)]
    assert doc2["next"] is None


# ---------------------------------------------------------------------------
# Health

def test_healthz_and_readyz(server):
    r = server.get("/healthz")
    assert r.status == 200 and r.json() == {"status": "ok"}, r
    assert r.header("content-type").startswith("application/json")
    for _ in range(3):
        r = server.get("/readyz")
        assert r.status == 200 and r.json() == {"status": "ready"}, r
    # readyz writes a probe row but never creates meters
    server.assert_nothing_stored()


def test_threads_option(server_factory):
    srv = server_factory(["--threads", "1", "--log-level", "debug"])
    srv.post_ok([reading("t1", BASE_TS + k) for k in range(10)], accepted=10)
    # Several connections served by one network thread.
    clients = [HttpClient(srv.port) for _ in range(5)]
    try:
        for k, c in enumerate(clients):
            r = c.request("GET", "/api/v1/meters/t1/readings?limit=2")
            assert r.status == 200, r
        for c in clients:
            assert c.request("GET", "/healthz").status == 200
    finally:
        for c in clients:
            c.close()
