"""The ESP32 sketch (firmware/esp32) cannot be compiled here, so its wire
format is pinned instead: tests/e2e/fixtures/esp32_batch.json holds the exact
bytes the sketch's snprintf code writes for a known ring buffer, and these
tests check that

- the fixture really is what the sketch's format strings produce (they are
  read from src/main.cpp, so a change there without the fixture fails here),
- the server, with the defaults a user gets, stores those bytes sent with the
  headers Arduino's HTTPClient puts on the wire, and a retry of the same bytes
  is counted as duplicates only,
- the answers the sketch's retry logic keys on (401/403 drop, 429 with a
  whole-seconds Retry-After) are what the server gives.
"""
import os
import re
import struct

from conftest import Keyed, RawConn, cli_meter_add, cli_token, iso

HERE = os.path.dirname(os.path.abspath(__file__))
SKETCH = os.path.join(HERE, "..", "..", "firmware", "esp32", "src", "main.cpp")
FIXTURE = os.path.join(HERE, "fixtures", "esp32_batch.json")

# The ring buffer behind the fixture: (ts, V, A, W, Wh, Hz, PF), as the PZEM
# reports them (floats), the last one a moment without load (PF 0).
SAMPLES = [
    (1764234000, 230.1, 1.523, 349.8, 1234567, 50.0, 0.97),
    (1764234010, 229.8, 1.49, 342.1, 1234568, 49.9, 0.96),
    (1764234020, 231.0, 0.0, 0.0, 1234568, 50.1, 0.0),
]


def f32(x):
    """x as the sketch holds it: a float, promoted to double for printf."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def c_string(source, name):
    m = re.search(r'static const char %s\[\] = "((?:[^"\\]|\\.)*)";' % name, source)
    assert m, f"{name} not found (one-line string literal) in {SKETCH}"
    return m.group(1).replace('\\"', '"')


def sketch_batch(samples, meter_id="kitchen"):
    """What build_batch() writes, via the sketch's own format strings (C
    printf conversions; Python's % ignores the `l` length modifier)."""
    with open(SKETCH, encoding="utf-8") as f:
        src = f.read()
    fmt = c_string(src, "kReadingFormat")
    parts = [fmt % (meter_id, ts, f32(v), f32(a), f32(w), wh // 1000, wh % 1000, f32(hz), f32(pf))
             for ts, v, a, w, wh, hz, pf in samples]
    return (c_string(src, "kBatchOpen") + ",".join(parts) + c_string(src, "kBatchClose")).encode()


def fixture():
    with open(FIXTURE, "rb") as f:
        return f.read()


def esp32_request(port, body, key):
    """The request as arduino-esp32's HTTPClient writes it (begin, setReuse,
    addHeader Content-Type and Authorization, POST(bytes))."""
    head = (f"POST /api/v1/readings HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"User-Agent: ESP32HTTPClient\r\nConnection: keep-alive\r\n"
            f"Accept-Encoding: identity;q=1,chunked;q=0.1,*;q=0\r\n"
            f"Content-Type: application/json\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    return head + body


def secure_with_meter(server_factory, args=()):
    srv = server_factory(args, start=False)
    srv.secure = True
    key = cli_meter_add(srv.db_path, "kitchen")
    other = cli_meter_add(srv.db_path, "garage")
    token = cli_token(srv.db_path, "read", "viewer")
    srv.start()
    return srv, key, other, token


def test_fixture_is_exactly_what_the_sketch_writes():
    assert fixture() == sketch_batch(SAMPLES)
    assert not fixture().endswith(b"\n")


def test_sketch_batch_stored_once_and_retry_counts_duplicates(server_factory):
    srv, key, _, token = secure_with_meter(server_factory)
    body = fixture()
    # One keep-alive connection, as the sketch reuses it between batches.
    with RawConn(srv.port) as c:
        c.send(esp32_request(srv.port, body, key))
        r = c.read_response()
        assert r.status == 201, r
        assert r.json() == {"accepted": 3, "duplicates": 0}
        assert "close" not in r.header("Connection", "").lower()
        # The answer was lost, say: the sketch sends the same bytes again.
        c.send(esp32_request(srv.port, body, key))
        r = c.read_response()
        assert r.status == 201, r
        assert r.json() == {"accepted": 0, "duplicates": 3}

    doc = Keyed(srv, token).get("/api/v1/meters/kitchen/readings")
    assert doc["count"] == 3
    expect = [{"meter_id": "kitchen", "ts": iso(ts * 1000), "voltage": v, "current": a,
               "power": w, "energy": wh / 1000, "frequency": hz, "power_factor": pf}
              for ts, v, a, w, wh, hz, pf in SAMPLES]
    assert doc["readings"] == expect


def test_sketch_failure_answers(server_factory):
    srv, key, other, token = secure_with_meter(server_factory,
                                               ["--device-rate", "0.1", "--device-burst", "1"])
    body = fixture()
    # Refusals the sketch drops the batch on (4xx other than 408/429): a wrong
    # key, another meter's key. Nothing is stored.
    wrong = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    for k, status in ((wrong, 401), (other, 403)):
        with RawConn(srv.port) as c:
            c.send(esp32_request(srv.port, body, k))
            r = c.read_response()
            assert r.status == status, r
    assert Keyed(srv, token).get("/api/v1/meters/kitchen")["latest"] is None

    # Over the device's rate: 429 with Retry-After in whole seconds (the
    # sketch reads it with String::toInt), nothing stored by the refused one.
    with RawConn(srv.port) as c:
        c.send(esp32_request(srv.port, body, key))
        assert c.read_response().status == 201
        c.send(esp32_request(srv.port, body, key))
        r = c.read_response()
        assert r.status == 429, r
        assert re.fullmatch(r"[1-9]\d*", r.header("Retry-After", "")), r

