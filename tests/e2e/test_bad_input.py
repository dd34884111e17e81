"""Hostile and broken input, end to end. After every case the server must
still answer /healthz with 200 and must not have stored anything (checked
through /api/v1/meters), unless the case says otherwise."""
import json
import select
import socket
import threading
import time

import pytest

from conftest import BASE_TS, RawConn, chunked, iso, now_ms, post_bytes, reading

GOOD = {"meter_id": "m1", "voltage": 230.0, "current": 1.0, "power": 230.0, "energy": 1.0}


def body_with(**changes):
    r = dict(GOOD)
    for k, v in changes.items():
        if v is ...:
            r.pop(k, None)
        else:
            r[k] = v
    return json.dumps(r).encode()


def with_raw_field(name, raw):
    """GOOD with one field's JSON text given verbatim (for non-JSON tokens)."""
    parts = {k: json.dumps(v) for k, v in GOOD.items()}
    parts[name] = raw
    return ("{" + ",".join(f'"{k}":{v}' for k, v in parts.items()) + "}").encode()


def check_error(r, status, codes, field=None, index=None):
    assert r.status == status, r
    assert r.header("content-type", "").startswith("application/json"), r
    doc = r.json()
    err = doc.get("error")
    assert isinstance(err, dict), doc
    if isinstance(codes, str):
        codes = {codes}
    assert err.get("code") in codes, doc
    assert isinstance(err.get("message"), str) and err["message"], doc
    if field is not None:
        assert err.get("field") == field, doc
    if index is not None:
        assert err.get("index") == index, doc
    return err


def still_fine(srv):
    srv.assert_healthy()
    srv.assert_nothing_stored()


# ---------------------------------------------------------------------------
# Bodies that are not JSON, or not the JSON we want

MALFORMED = {
    "open_brace": b"{",
    "truncated": b'{"meter_id":"m1","voltage":230',
    "single_quotes": b"{'meter_id':'m1','voltage':230,'current':1,'power':1,'energy':1}",
    "trailing_comma": body_with()[:-1] + b",}",
    "extra_data": body_with() + b" {}",
    "two_objects": body_with() + body_with(),
    "bare_word": b"hello",
    "comment": b"/* hi */" + body_with(),
    "nul_byte": body_with()[:10] + b"\x00" + body_with()[10:],
    "unterminated_string": b'{"meter_id":"m1',
    "control_char_in_string": b'{"meter_id":"m\x011","voltage":1,"current":1,"power":1,"energy":1}',
    "deep_nesting": b"[" * 10000 + b"]" * 10000,
    "deep_objects": b'{"a":' * 5000 + b"1" + b"}" * 5000,
    "bad_escape": b'{"meter_id":"m\\q1","voltage":1,"current":1,"power":1,"energy":1}',
    "hex_number": with_raw_field("voltage", "0x10"),
    "leading_zero": with_raw_field("voltage", "0230"),
    "plus_number": with_raw_field("voltage", "+230"),
    "bom": b"\xef\xbb\xbf" + body_with(),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_json(server, name):
    r = server.post(MALFORMED[name])
    check_error(r, 400, "malformed_json")
    still_fine(server)


@pytest.mark.parametrize("token", ["NaN", "-NaN", "Infinity", "-Infinity", "inf", "nan"])
@pytest.mark.parametrize("field", ["voltage", "energy", "power_factor", "ts"])
def test_nan_infinity_tokens(server, token, field):
    r = server.post(with_raw_field(field, token))
    check_error(r, 400, {"malformed_json", "invalid_reading"})
    still_fine(server)


@pytest.mark.parametrize("number", ["1e999", "-1e999", "1E400"])
@pytest.mark.parametrize("field", ["voltage", "current", "power", "energy", "frequency",
                                   "power_factor", "ts"])
def test_overflowing_numbers(server, number, field):
    r = server.post(with_raw_field(field, number))
    err = check_error(r, 400, {"malformed_json", "invalid_reading"})
    if err["code"] == "invalid_reading":
        assert err.get("field") == field, err
    still_fine(server)


WRONG_TYPES = [
    ("voltage", "230"), ("voltage", True), ("voltage", None), ("voltage", [230]),
    ("voltage", {"v": 230}), ("voltage", ...), ("current", "1"), ("current", ...),
    ("power", False), ("power", ...), ("energy", "1.0"), ("energy", ...),
    ("frequency", "50"), ("frequency", [50]), ("power_factor", "0.9"), ("power_factor", True),
    ("meter_id", 5), ("meter_id", None), ("meter_id", ...), ("meter_id", ["m1"]),
    ("meter_id", {"id": "m1"}), ("meter_id", True), ("ts", True), ("ts", [1748779200]),
    ("ts", {"s": 1748779200}),
]


@pytest.mark.parametrize("field,value", WRONG_TYPES,
                         ids=[f"{f}={v!r}" for f, v in WRONG_TYPES])
def test_wrong_types(server, field, value):
    r = server.post(body_with(**{field: value}))
    check_error(r, 400, "invalid_reading", field=field)
    still_fine(server)


@pytest.mark.parametrize("body", [b'"a string"', b"42", b"true", b"null", b'{"readings":{}}',
                                  b'{"readings":"x"}', b'{"readings":null}', b"[1]",
                                  b'[{"meter_id":"m1","voltage":1,"current":1,"power":1,'
                                  b'"energy":1}, "x"]', b"[[]]", b"{}",
                                  b'{"unrelated":true}'])
def test_wrong_shapes(server, body):
    r = server.post(body)
    check_error(r, 400, "invalid_reading")
    still_fine(server)


def test_array_error_names_index_and_field(server):
    batch = [dict(GOOD, ts=iso(BASE_TS + k)) for k in range(6)]
    batch[3]["voltage"] = 1000.5
    r = server.post(batch)
    err = check_error(r, 400, "invalid_reading", field="voltage", index=3)
    assert "readings[3]" in err["message"] and "voltage" in err["message"], err
    # the same in the {"readings": [...]} shape, type error at index 0
    batch = [dict(GOOD, ts=iso(BASE_TS + k)) for k in range(3)]
    batch[0]["current"] = "x"
    r = server.post({"readings": batch})
    err = check_error(r, 400, "invalid_reading", field="current", index=0)
    assert "readings[0]" in err["message"], err
    # a single object has no index
    r = server.post(body_with(voltage=-1))
    err = check_error(r, 400, "invalid_reading", field="voltage")
    assert "index" not in err, err
    still_fine(server)


def test_batch_is_all_or_nothing(server):
    """Readings before and after the bad one, for several meters: none stored."""
    batch = []
    for k in range(200):
        batch.append(reading(f"meter-{k % 7}", BASE_TS + k))
    batch[150]["power_factor"] = 1.5
    r = server.post(batch)
    check_error(r, 400, "invalid_reading", field="power_factor", index=150)
    batch[150]["power_factor"] = 0.5
    batch[199]["ts"] = "1970-01-01T00:00:00Z"
    r = server.post(batch)
    check_error(r, 400, "invalid_reading", field="ts", index=199)
    still_fine(server)


# ---------------------------------------------------------------------------
# Out-of-range values

OUT_OF_RANGE = [
    ("voltage", -0.001), ("voltage", 1000.001), ("voltage", 1e6),
    ("current", -10000.01), ("current", 10000.01),
    ("power", -1.0000001e7), ("power", 1.0000001e7),
    ("energy", -0.001), ("energy", 1.000001e12),
    ("frequency", -1), ("frequency", 1000.5),
    ("power_factor", -0.01), ("power_factor", 1.01),
]


@pytest.mark.parametrize("field,value", OUT_OF_RANGE, ids=[f"{f}={v}" for f, v in OUT_OF_RANGE])
def test_out_of_range(server, field, value):
    r = server.post(body_with(**{field: value}))
    err = check_error(r, 400, "invalid_reading", field=field)
    assert field in err["message"], err
    still_fine(server)


# ---------------------------------------------------------------------------
# meter_id

BAD_IDS = ["", " ", "a b", "x" * 65, ".", "..", "a/b", "a\\b", "a\u0000b", "caf\u00e9",
           "m\u00fcller", "a?b", "a#b", "a%2e", "tab\there", "new\nline", "\u2028", "emoji\U0001F600"]


@pytest.mark.parametrize("meter_id", BAD_IDS, ids=[repr(m) for m in BAD_IDS])
def test_invalid_meter_id(server, meter_id):
    r = server.post(body_with(meter_id=meter_id))
    check_error(r, 400, "invalid_reading", field="meter_id")
    still_fine(server)


@pytest.mark.parametrize("raw_id", [b"m\xff1", b"m\xc0\xaf", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80",
                                    b"m\xc3", b"\xfe\xff", b"m\x80"])
def test_invalid_utf8_in_meter_id(server, raw_id):
    body = b'{"meter_id":"' + raw_id + b'","voltage":230,"current":1,"power":1,"energy":1}'
    r = server.post(body)
    check_error(r, 400, {"malformed_json", "invalid_reading"})
    # the error message itself must be valid UTF-8 JSON
    r.body.decode("utf-8")
    still_fine(server)


@pytest.mark.parametrize("esc", ["\\ud800", "\\udfff", "\\ud800\\u0041"])
def test_lone_surrogate_escape_in_meter_id(server, esc):
    body = ('{"meter_id":"m%s","voltage":230,"current":1,"power":1,"energy":1}' % esc).encode()
    r = server.post(body)
    check_error(r, 400, {"malformed_json", "invalid_reading"})
    still_fine(server)


# ---------------------------------------------------------------------------
# Timestamps

def bad_ts_cases():
    n = now_ms()
    return [
        ("1970_text", "1970-01-01T00:00:00Z"),
        ("1970_zero", 0),
        ("1970_seconds", 86400),
        ("1970_ms", 123456789012 - 100000000000),
        ("negative", -1),
        ("before_2000", "1999-12-31T23:59:59.999Z"),
        ("before_2000_offset", "2000-01-01T00:30:00+01:00"),
        ("far_future_text", "2999-01-01T00:00:00Z"),
        ("future_1h", iso(n + 3600_000)),
        ("future_ms", n + 3600_000),
        ("future_s", (n + 3600_000) / 1000),
        ("year_33658_ms", 1e15),
        ("huge_ms", 1e300),
        ("garbage", "yesterday"),
        ("empty", ""),
        ("date_only", "2025-06-01"),
        ("no_offset", "2025-06-01T12:00:00"),
        ("bad_date", "2025-02-30T00:00:00Z"),
        ("hour_24", "2025-06-01T24:00:00Z"),
        ("leap_second", "2024-12-31T23:59:60Z"),
        ("bad_offset", "2025-06-01T12:00:00+25:00"),
        ("trailing", "2025-06-01T12:00:00Zjunk"),
        ("five_digit_year", "12025-06-01T12:00:00Z"),
    ]


@pytest.mark.parametrize("case", range(len(bad_ts_cases())),
                         ids=[c[0] for c in bad_ts_cases()])
def test_bad_timestamps(server, case):
    _, ts = bad_ts_cases()[case]
    r = server.post(body_with(ts=ts))
    check_error(r, 400, "invalid_reading", field="ts")
    still_fine(server)


# ---------------------------------------------------------------------------
# Empty and oversized bodies, batch limits

@pytest.mark.parametrize("body,code", [(b"", "empty_body"), (b"   \r\n\t ", "empty_body"),
                                       (b"[]", "empty_batch"), (b'{"readings":[]}',
                                                                "empty_batch"),
                                       (b" [ ] ", "empty_batch")])
def test_empty(server, body, code):
    r = server.raw(post_bytes(server.port, body))
    check_error(r, 400, code)
    still_fine(server)


def test_batch_too_large(server):
    r = server.post([reading("big", BASE_TS + k) for k in range(5001)])
    check_error(r, 400, "batch_too_large")
    still_fine(server)


def test_10mb_body_content_length_answered_before_body(server):
    size = 10 * 1024 * 1024
    with RawConn(server.port, timeout=5) as c:
        c.send(b"POST /api/v1/readings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n" % size)
        r = c.read_response(timeout=3)  # no body sent yet
        check_error(r, 413, "body_too_large")
        assert r.header("connection", "").lower() == "close", r
        assert c.closed_by_peer(5)
    still_fine(server)


def _send_while_reading(conn, head, body_iter):
    """Sends head + body from a thread while the caller reads the response."""
    errors = []

    def sender():
        try:
            conn.sock.sendall(head)
            for piece in body_iter:
                conn.sock.sendall(piece)
        except OSError as e:  # the server may close once it has answered
            errors.append(e)

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    return t


def test_10mb_body_sent_in_full(server):
    size = 10 * 1024 * 1024
    with RawConn(server.port, timeout=10) as c:
        filler = b"[" + b" " * (size - 2) + b"]"
        head = (b"POST /api/v1/readings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % size)
        t = _send_while_reading(c, head, (filler[i:i + 65536] for i in range(0, size, 65536)))
        r = c.read_response(timeout=10)
        check_error(r, 413, "body_too_large")
        c.close()
        t.join(15)
        assert not t.is_alive()
    still_fine(server)


def test_10mb_chunked_body(server):
    size = 10 * 1024 * 1024
    with RawConn(server.port, timeout=10) as c:
        head = (b"POST /api/v1/readings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")
        piece = b" " * 65536

        def chunks():
            for _ in range(size // len(piece)):
                yield b"%x\r\n" % len(piece) + piece + b"\r\n"
            yield b"0\r\n\r\n"

        t = _send_while_reading(c, head, chunks())
        r = c.read_response(timeout=10)
        check_error(r, 413, "body_too_large")
        c.close()
        t.join(15)
        assert not t.is_alive()
    still_fine(server)
    # and a normal request still works
    server.post_ok(reading("after", BASE_TS), accepted=1)


def test_expect_100_continue_too_large_gets_413_not_100(server):
    with RawConn(server.port, timeout=5) as c:
        c.send(b"POST /api/v1/readings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Expect: 100-continue\r\nContent-Length: 50000000\r\n\r\n")
        r = c.read_response(timeout=3, skip_interim=False)
        assert r.status == 413, r
    still_fine(server)


def test_max_body_option(server_factory):
    srv = server_factory(["--max-body", "2048"])
    ok = json.dumps(reading("mb", BASE_TS)).encode()
    ok = ok + b" " * (2048 - len(ok))  # exactly the limit
    r = srv.raw(post_bytes(srv.port, ok))
    assert r.status == 201, r
    over = ok + b" "
    r = srv.raw(post_bytes(srv.port, over))
    check_error(r, 413, "body_too_large")
    wire = (b"POST /api/v1/readings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + chunked(over, [100]))
    r = srv.raw(wire)
    check_error(r, 413, "body_too_large")
    srv.assert_healthy()
    assert srv.readings("mb")["count"] == 1


# ---------------------------------------------------------------------------
# HTTP framing and routing errors

def test_post_without_length_is_411(server):
    r = server.raw(b"POST /api/v1/readings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                   b"\r\n\r\n")
    check_error(r, 411, "length_required")
    still_fine(server)


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded",
                                   "multipart/form-data; boundary=x", "application/jsonx",
                                   "text/json", "application/xml"])
def test_unsupported_media_type(server, ctype):
    r = server.raw(post_bytes(server.port, json.dumps(GOOD), content_type=ctype))
    check_error(r, 415, "unsupported_media_type")
    still_fine(server)


@pytest.mark.parametrize("method,path,allow", [
    ("GET", "/api/v1/readings", "POST"),
    ("PUT", "/api/v1/readings", "POST"),
    ("DELETE", "/api/v1/readings", "POST"),
    ("PUT", "/api/v1/meters", "POST"),
    ("PUT", "/api/v1/meters/m1", "PATCH"),
    ("GET", "/api/v1/meters/m1/rotate-key", "POST"),
    ("PUT", "/api/v1/tokens", "POST"),
    ("GET", "/api/v1/tokens/abc", "DELETE"),
    ("POST", "/api/v1/whoami", "GET"),
    ("PUT", "/api/v1/meters/m1/latest", "GET"),
    ("POST", "/api/v1/meters/m1/readings", "GET"),
    ("POST", "/healthz", "GET"),
    ("POST", "/readyz", "GET"),
])
def test_method_not_allowed(server, method, path, allow):
    r = server.raw(b"%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   b"Content-Length: 2\r\n\r\n{}" % (method.encode(), path.encode()))
    check_error(r, 405, "method_not_allowed")
    assert r.header("allow") is not None, r
    assert allow in [a.strip() for a in r.header("allow").split(",")], r
    still_fine(server)


@pytest.mark.parametrize("path", ["/api", "/api/v1", "/api/v2/readings", "/api/v1/reading",
                                  "/api/v1/meters/m1/latest/x", "/api/v1/meters/m1/other",
                                  "/API/V1/METERS", "/healthz/x", "/favicon.ico",
                                  "/api/v1/meters/m1/readings/x"])
def test_unknown_routes_404(server, path):
    r = server.get(path)
    check_error(r, 404, "not_found")
    still_fine(server)


@pytest.mark.parametrize("path,status,code", [
    ("/api/v1/meters/%2e%2e", 400, "invalid_meter_id"),
    ("/api/v1/meters/%2E%2E", 400, "invalid_meter_id"),
    ("/api/v1/meters/%2e", 400, "invalid_meter_id"),
    ("/api/v1/meters/%2e%2e/latest", 400, "invalid_meter_id"),
    ("/api/v1/meters/%2e%2e/readings", 400, "invalid_meter_id"),
    ("/api/v1/meters/..", 400, "invalid_meter_id"),
    ("/api/v1/meters/../latest", 400, "invalid_meter_id"),
    ("/api/v1/meters/%2e%2e%2f%2e%2e%2fetc%2fpasswd", 400, "invalid_meter_id"),
    ("/api/v1/meters/a%2Fb", 400, "invalid_meter_id"),
    ("/api/v1/meters/%ff", 400, "invalid_meter_id"),
    ("/api/v1/meters/a%00b", 400, "invalid_meter_id"),
    ("/api/v1/meters/" + "x" * 65, 400, "invalid_meter_id"),
    ("/api/v1/meters/caf%C3%A9", 400, "invalid_meter_id"),
])
def test_bad_meter_paths(server, path, status, code):
    server.post_ok(reading("m1", BASE_TS), accepted=1)
    r = server.raw(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
    check_error(r, status, code)
    server.assert_healthy()
    assert server.meter_count() == 1


@pytest.mark.parametrize("path", ["/api/v1/meters/../../etc/passwd", "/../../etc/passwd",
                                  "/api/v1/../../healthz", "/%2e%2e/%2e%2e/etc/passwd"])
def test_dot_dot_traversal_never_succeeds(server, path):
    r = server.raw(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
    assert r.status in (400, 404), r
    assert b"root:" not in r.body
    r.json()
    still_fine(server)


def test_huge_header_431(server):
    r = server.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (20 * 1024) +
                   b"\r\n\r\n")
    check_error(r, 431, {"headers_too_large", "request_header_fields_too_large"})
    r = server.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" +
                   b"".join(b"X-%d: %s\r\n" % (i, b"b" * 200) for i in range(100)) + b"\r\n")
    assert r.status == 431, r
    # a POST with a huge header is refused before its body is considered
    body = json.dumps(GOOD).encode()
    r = server.raw(b"POST /api/v1/readings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   b"Cookie: " + b"c" * (17 * 1024) + b"\r\nContent-Length: %d\r\n\r\n" % len(body)
                   + body)
    assert r.status == 431, r
    still_fine(server)


def test_header_below_limit_is_fine(server):
    r = server.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 15000 + b"\r\n\r\n")
    assert r.status == 200, r


def test_huge_header_sent_slowly_does_not_grow_memory(server):
    """Header bytes beyond the limit are refused even when they trickle in."""
    with RawConn(server.port, timeout=5) as c:
        c.send(b"GET /healthz HTTP/1.1\r\nX-Big: ")
        for _ in range(40):
            try:
                c.send(b"a" * 1024)
            except OSError:
                break
            rl, _, _ = select.select([c.sock], [], [], 0)
            if rl:
                break
        got = c.read_until_closed(5)
        assert got.startswith(b"HTTP/1.1 431"), got[:200]
    still_fine(server)


GARBAGE_LINES = [
    b"GARBAGE\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET / HTTP/1.1 extra\r\n\r\n",
    b"GET / FOO/1.1\r\n\r\n",
    b"G\x00T / HTTP/1.1\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40 + b"\r\n\r\n",  # TLS hello
    b"\xff\xfe\xfd\r\n\r\n",
    b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
    b"GET / HTTP/1.1\r\n: empty-name\r\n\r\n",
    b"POST /api/v1/readings HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
    b"POST /api/v1/readings HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
    b"POST /api/v1/readings HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nabcdef",
    b"POST /api/v1/readings HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"0\r\n\r\n",
    b"POST /api/v1/readings HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
]


@pytest.mark.parametrize("wire", GARBAGE_LINES, ids=[repr(w[:24]) for w in GARBAGE_LINES])
def test_garbage_requests_400(server, wire):
    with RawConn(server.port, timeout=5) as c:
        c.send(wire)
        r = c.read_response(timeout=5)
        check_error(r, 400, {"bad_request"})
        assert r.header("connection", "").lower() == "close"
        assert c.closed_by_peer(5), "after a framing error the connection must be closed"
    still_fine(server)


def test_head_response_has_no_body(server):
    """A response to HEAD must not carry content, or the next response on a
    keep-alive connection is misread (RFC 9110 9.3.2)."""
    with RawConn(server.port, timeout=3) as c:
        c.send(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        head = c._read_until(b"\r\n\r\n", time.monotonic() + 3)
        assert head.startswith(b"HTTP/1.1 "), head
        # The next bytes must be the status line of the GET's response.
        nxt = c._read_exact(12, time.monotonic() + 3)
        assert nxt.startswith(b"HTTP/1.1 200"), \
            f"HEAD response carried a body: {(nxt + c.buf)[:120]!r}"
    still_fine(server)


# ---------------------------------------------------------------------------
# Unknown meter

def test_unknown_meter_404(server):
    for path in ("/api/v1/meters/nobody", "/api/v1/meters/nobody/latest",
                 "/api/v1/meters/nobody/readings",
                 "/api/v1/meters/nobody/readings?limit=5&order=desc"):
        check_error(server.get(path), 404, "unknown_meter")
    still_fine(server)


# ---------------------------------------------------------------------------
# Slow clients (--request-timeout)

def _disconnected(sock):
    """True when the peer closed (FIN or RST); consumes any readable bytes."""
    rl, _, _ = select.select([sock], [], [], 0)
    if not rl:
        return False
    try:
        data = sock.recv(65536, socket.MSG_DONTWAIT)
    except BlockingIOError:
        return False
    except OSError:
        return True
    return data == b""


def _trickle(srv, wire, interval=0.3, other_client=None, max_seconds=12.0):
    """Sends wire one byte per interval until the server disconnects; returns
    seconds from connect to disconnect (None if never). other_client() runs
    between bytes and must succeed."""
    with RawConn(srv.port, timeout=5) as c:
        t0 = time.monotonic()
        for i in range(len(wire)):
            if time.monotonic() - t0 > max_seconds:
                return None
            try:
                c.sock.sendall(wire[i:i + 1])
            except OSError:
                return time.monotonic() - t0
            if other_client is not None:
                other_client()
            deadline = time.monotonic() + interval
            while time.monotonic() < deadline:
                if _disconnected(c.sock):
                    return time.monotonic() - t0
                time.sleep(0.02)
        # all bytes sent without being cut off
        return None


def test_slowloris_headers_disconnected_others_served(server_factory):
    srv = server_factory(["--request-timeout", "2"])
    served = []

    def other():
        t = time.monotonic()
        srv.assert_healthy()
        served.append(time.monotonic() - t)

    wire = (b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slowloris\r\n"
            b"X-Padding: " + b"a" * 200 + b"\r\n\r\n")
    took = _trickle(srv, wire, 0.3, other)
    assert took is not None, "a client sending one header byte per 0.3 s was never cut off"
    assert 1.5 <= took <= 4.5, f"disconnected after {took:.2f}s with --request-timeout 2"
    assert len(served) >= 4 and max(served) < 1.0, served
    still_fine(srv)


def test_slow_body_disconnected(server_factory):
    srv = server_factory(["--request-timeout", "2"])
    body = json.dumps(reading("slowbody", BASE_TS)).encode()
    head = (b"POST /api/v1/readings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body))
    with RawConn(srv.port, timeout=5) as c:
        t0 = time.monotonic()
        c.send(head)
        cut = None
        for i in range(len(body)):
            try:
                c.sock.sendall(body[i:i + 1])
            except OSError:
                cut = time.monotonic() - t0
                break
            time.sleep(0.3)
            if _disconnected(c.sock):
                cut = time.monotonic() - t0
                break
            if time.monotonic() - t0 > 10:
                break
        assert cut is not None, "a body trickling in was never cut off"
        assert cut <= 4.5, cut
    still_fine(srv)


def test_silent_connection_closed(server_factory):
    srv = server_factory(["--request-timeout", "1.5"])
    with RawConn(srv.port, timeout=5) as c:
        t0 = time.monotonic()
        assert c.closed_by_peer(6)
        took = time.monotonic() - t0
        assert 1.0 <= took <= 4.0, took
    srv.assert_healthy()


def test_idle_keepalive_closed_after_request_timeout(server_factory):
    srv = server_factory(["--request-timeout", "1.5"])
    with RawConn(srv.port, timeout=5) as c:
        c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.read_response().status == 200
        t0 = time.monotonic()
        time.sleep(0.5)
        # still open: a request within the limit is served
        c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.read_response().status == 200
        t0 = time.monotonic()
        assert c.closed_by_peer(6)
        took = time.monotonic() - t0
        assert 1.0 <= took <= 4.0, took


def test_request_timeout_default_allows_slow_but_steady_client(server):
    """With the default 30 s a request whose bytes come over ~2 s is fine."""
    body = json.dumps(reading("steady", BASE_TS)).encode()
    wire = post_bytes(server.port, body)
    with RawConn(server.port, timeout=10) as c:
        for i in range(0, len(wire), 20):
            c.send(wire[i:i + 20])
            time.sleep(0.1)
        assert c.read_response().status == 201
    server.assert_healthy()


# ---------------------------------------------------------------------------
# A burst of many bad requests in a row on one connection does not hurt

def test_many_bad_requests_keepalive(server):
    with RawConn(server.port, timeout=5) as c:
        for i in range(50):
            bad = [body_with(voltage=-1), b"{", b"[]", body_with(meter_id=".."),
                   body_with(ts="1970-01-01T00:00:00Z")][i % 5]
            c.send(post_bytes(server.port, bad))
            r = c.read_response()
            assert r.status == 400, r
            assert r.header("connection", "keep-alive").lower() != "close"
    still_fine(server)
