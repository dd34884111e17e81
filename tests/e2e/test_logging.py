"""Request ids and structured logs: X-Request-Id accepted when sane, else
generated; echoed on every answer; in the access/error log line of its
request; --log-format json writes one valid JSON object per line, and keys
never appear in it even at trace level."""
import json
import re

from conftest import BASE_TS, bearer, cli_meter_add, reading, start_secure

HEX16 = re.compile(r"[0-9a-f]{16}")


def test_sane_request_id_is_echoed_and_logged(server_factory):
    srv = server_factory(["--log-level", "debug"])
    rid = "req-42.abc:XYZ_9/+="
    r = srv.http("POST", "/api/v1/readings", reading("m1", BASE_TS), headers={"X-Request-Id": rid})
    assert r.status == 201 and r.header("x-request-id") == rid, r
    line = srv.wait_for_log(re.escape(f"request_id={rid}"))
    assert line is not None, srv.run_log()
    assert " debug request: POST /api/v1/readings -> 201" in line, line
    for field in ("method=POST", "route=/api/v1/readings", "status=201", "remote=127.0.0.1",
                  "duration_ms="):
        assert field in line, line
    # Errors carry theirs too, with the error code.
    r = srv.http("POST", "/api/v1/readings", b"{bad", headers={"X-Request-Id": "bad-1"})
    assert r.status == 400 and r.header("x-request-id") == "bad-1"
    line = srv.wait_for_log(r"request_id=bad-1\b")
    assert line and "status=400" in line and "error=malformed_json" in line, line


def test_unsafe_or_missing_request_ids_are_replaced(server):
    seen = set()
    for bad in (None, "", "x" * 129, "has space", 'quote"d', "semi;colon", "tab\there",
                "ünïcode", "a\\b"):
        headers = {} if bad is None else {"X-Request-Id": bad}
        r = server.http("GET", "/healthz", headers=headers)
        assert r.status == 200, r
        got = r.header("x-request-id")
        assert got and HEX16.fullmatch(got), (bad, got)
        seen.add(got)
    assert len(seen) == 9, "generated ids must differ"
    assert server.http("GET", "/healthz", headers={"X-Request-Id": "x" * 128}) \
        .header("x-request-id") == "x" * 128
    # Every kind of answer carries one: 404, 405, static, metrics.
    for method, path in (("GET", "/nope"), ("PUT", "/healthz"), ("GET", "/metrics")):
        assert HEX16.fullmatch(server.http(method, path).header("x-request-id") or ""), path


def test_json_logs_parse_and_never_hold_keys(server_factory):
    srv = start_secure(server_factory, ["--log-format", "json", "--log-level", "trace"])
    lines = srv.run_lines()
    token = None
    for ln in lines:
        m = re.search(r"mht_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", ln)
        if m and not ln.startswith("{"):
            token = m.group(0)
    assert token, "admin token banner missing"
    key = cli_meter_add(srv.db_path, "j1")
    rid = "json-req-1"
    r = srv.http("POST", "/api/v1/readings", reading("j1", BASE_TS),
                 headers={**bearer(key), "X-Request-Id": rid})
    assert r.status == 201, r
    assert srv.http("GET", "/api/v1/meters", headers=bearer(token)).status == 200
    # A wrong key: a warning with the request id, without the key.
    wrong = key[:-4] + "AAAA"
    r = srv.http("GET", "/api/v1/meters", headers={**bearer(wrong), "X-Request-Id": "wrong-1"})
    assert r.status == 401
    # The access lines themselves: a request's id is on earlier lines too, and
    # the log reaches this process through a pipe, so wait for each.
    assert srv.wait_for_log(r"request: GET /api/v1/meters -> 401") is not None, srv.run_log()
    assert srv.wait_for_log(r"request: POST /api/v1/readings -> 201") is not None, srv.run_log()

    records = []
    for ln in srv.run_lines():
        if not ln.startswith("{"):
            continue  # the admin token banner on stdout (first start only)
        doc = json.loads(ln)
        assert isinstance(doc, dict), ln
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", doc["ts"]), ln
        assert doc["level"] in ("trace", "debug", "info", "warning", "error", "critical"), ln
        assert isinstance(doc["msg"], str), ln
        assert all(isinstance(v, str) for v in doc.values()), ln
        records.append(doc)
    assert any("listening on" in d["msg"] for d in records)
    access = [d for d in records if d.get("request_id") == rid and d["msg"].startswith("request")]
    assert len(access) == 1, records
    a = access[0]
    assert (a["method"], a["route"], a["status"], a["remote"]) == \
        ("POST", "/api/v1/readings", "201", "127.0.0.1"), a
    float(a["duration_ms"])
    denied = [d for d in records if d.get("request_id") == "wrong-1"]
    assert any(d["level"] == "warning" and "authentication failed" in d["msg"] for d in denied), \
        denied
    assert any(d.get("status") == "401" and d.get("error") == "unauthorized" for d in denied)
    # Only the banner line (stdout, shown once) may hold a token.
    log = "\n".join(ln for ln in srv.run_lines() if ln.startswith("{"))
    for k in (key, token, wrong):
        assert k.split("_", 2)[2] not in log
    srv.stop()
    assert any(json.loads(ln).get("msg", "").startswith("stopped cleanly")
               for ln in srv.run_lines() if ln.startswith("{"))


def test_text_logs_keep_their_format(server):
    # One line per record: "<ts> <level> <msg>[ key=value…]".
    server.assert_healthy()  # serving (a SIGTERM before run() would kill it: see report)
    rx = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d "
                    r"(trace|debug|info|warning|error|critical) .+")
    log_lines = [ln for ln in server.run_lines() if ln and not ln.startswith("---")]
    assert log_lines
    for ln in log_lines:
        assert rx.fullmatch(ln), ln
