"""Per-meter alerts end to end (docs/alerts.md): rules through the API,
readings that cross thresholds raise alerts that are stored, pushed on the
multiplexed /ws and POSTed to a webhook (a tiny HTTP server on loopback that
fails twice first: retried with backoff, delivered once), cleared after the
hysteresis, offline rules, restart persistence, bad input and access.
"""
import asyncio
import http.server
import json
import threading
import time

import pytest

from conftest import (BASE_TS, bearer, cli_token, reading, run_async, start_secure, ws_open,
                      ws_recv_json)
from metrics_text import Exposition

OVER_V = {"rules": [{"kind": "over_voltage", "threshold": 253, "hysteresis": 3, "hold_s": 2}]}


class Webhook:
    """A loopback HTTP server recording every POST; answers 500 to the first
    `fail_first` ones, 200 afterwards."""

    def __init__(self, fail_first=0):
        self.hits = []  # (monotonic time, status answered, parsed body)
        self.lock = threading.Lock()
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(n))
                with hook.lock:
                    status = 500 if len(hook.hits) < fail_first else 200
                    hook.hits.append((time.monotonic(), status, body,
                                      self.headers.get("Content-Type")))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def delivered(self):
        with self.lock:
            return [body for (_, status, body, _) in self.hits if status == 200]

    def wait_delivered(self, n, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.delivered()) >= n:
                return self.delivered()
            time.sleep(0.05)
        raise AssertionError(f"webhook got {self.hits} but not {n} delivered")

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def webhook():
    hooks = []

    def make(fail_first=0):
        h = Webhook(fail_first)
        hooks.append(h)
        return h

    yield make
    for h in hooks:
        h.close()


def put_rules(srv, meter, rules, expect=200, headers=None):
    r = srv.http("PUT", f"/api/v1/meters/{meter}/alerts", rules, headers)
    assert r.status == expect, r
    return r


def alerts(srv, query=""):
    return srv.get_json("/api/v1/alerts" + query)


def wait_alerts(srv, query, n, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        doc = alerts(srv, query)
        if doc["count"] == n or time.monotonic() > deadline:
            assert doc["count"] == n, doc
            return doc["alerts"]
        time.sleep(0.05)


async def next_alert(ws, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError("no alert message")
        try:
            msg = await ws_recv_json(ws, remaining)
        except asyncio.TimeoutError:
            raise AssertionError("no alert message")
        if msg.get("type") == "alert":
            return msg


def test_raise_push_webhook_and_clear(server_factory, webhook):
    hook = webhook(fail_first=2)
    srv = server_factory(["--alert-webhook", hook.url])
    srv.post_ok(reading("m1", BASE_TS, voltage=230), accepted=1)
    got = put_rules(srv, "m1", OVER_V).json()
    assert got == {"meter_id": "m1", "rules": [
        {"kind": "over_voltage", "threshold": 253, "hysteresis": 3, "hold_s": 2}]}
    assert srv.get_json("/api/v1/meters/m1/alerts") == got

    async def scenario():
        ws = await ws_open(srv, "/ws")
        try:
            await ws.send(json.dumps({"subscribe": ["m1"]}))
            assert (await ws_recv_json(ws))["type"] == "snapshot"
            # Over for 1 s only: held back by hold_s = 2.
            srv.post_ok([reading("m1", BASE_TS + 1000, voltage=260),
                         reading("m1", BASE_TS + 2000, voltage=260)])
            assert alerts(srv, "?active=true")["count"] == 0
            srv.post_ok(reading("m1", BASE_TS + 3000, voltage=261.5))
            raised = await next_alert(ws)
            assert raised["event"] == "raised"
            a = raised["alert"]
            assert a["meter_id"] == "m1" and a["kind"] == "over_voltage" and a["active"] is True
            assert a["raised_value"] == 261.5
            assert a["cleared_at"] is None
            # Within the hysteresis band (250..253): stays raised.
            srv.post_ok([reading("m1", BASE_TS + 4000 + k * 1000, voltage=251) for k in range(4)])
            # Back below 250 for 2 s: cleared.
            srv.post_ok([reading("m1", BASE_TS + 9000 + k * 1000, voltage=249) for k in range(3)])
            cleared = await next_alert(ws)
            assert cleared["event"] == "cleared"
            assert cleared["alert"]["id"] == a["id"]
            assert cleared["alert"]["cleared_value"] == 249
            return a
        finally:
            await ws.close()

    a = run_async(scenario())
    stored = alerts(srv)["alerts"]
    assert len(stored) == 1 and stored[0]["id"] == a["id"] and stored[0]["active"] is False
    assert stored[0]["raised_at"] == "2025-06-01T12:00:03.000Z"
    assert stored[0]["cleared_at"] == "2025-06-01T12:00:11.000Z"
    assert alerts(srv, "?active=true")["count"] == 0
    assert alerts(srv, "?active=false&meter=m1")["count"] == 1

    # Webhook: 500, 500, then 200 for the raise (once), then the clear.
    bodies = hook.wait_delivered(2)
    assert [b["event"] for b in bodies] == ["raised", "cleared"]
    assert all(b["type"] == "alert" and b["alert"]["id"] == a["id"] for b in bodies)
    with hook.lock:
        hits = list(hook.hits)
    assert [h[1] for h in hits] == [500, 500, 200, 200]
    assert all(h[3] == "application/json" for h in hits)
    assert hits[0][2] == hits[1][2] == hits[2][2]  # the same body, retried
    # Exponential backoff: 0.5 s, then 1 s (lower bounds: the server waits at least that).
    assert hits[1][0] - hits[0][0] >= 0.45
    assert hits[2][0] - hits[1][0] >= 0.95
    assert srv.wait_for_log(r"alert webhook: try 2 failed")
    # ... and served on /metrics while running.
    r = srv.http("GET", "/metrics")
    assert r.status == 200, r
    m = Exposition(r.text)
    assert m.value("meterhub_alert_events_total", event="raised") == 1
    assert m.value("meterhub_alert_events_total", event="cleared") == 1
    assert m.value("meterhub_alert_webhook_total", result="delivered") == 2
    assert m.value("meterhub_alert_webhook_total", result="retried") == 2
    assert m.value("meterhub_alert_webhook_total", result="failed") == 0
    assert m.value("meterhub_alert_readings_evaluated_total") >= 1
    # The run's counters are logged at shutdown.
    assert srv.stop() == 0
    assert "alerts: 1 raised, 1 cleared" in srv.log()
    assert "alert webhook: 2 delivered, 2 retries, 0 given up, 0 dropped" in srv.log()


def test_offline_rule(server_factory):
    srv = server_factory()
    srv.post_ok(reading("off1", BASE_TS), accepted=1)
    put_rules(srv, "off1", {"rules": [{"kind": "offline", "after_s": 1}]})

    async def scenario():
        ws = await ws_open(srv, "/ws")
        try:
            await ws.send(json.dumps({"subscribe": "*"}))
            assert (await ws_recv_json(ws))["type"] == "snapshot"
            raised = await next_alert(ws)
            assert raised["event"] == "raised" and raised["alert"]["kind"] == "offline"
            assert raised["alert"]["raised_value"] >= 1
            srv.post_ok(reading("off1", BASE_TS + 1000))
            cleared = await next_alert(ws)
            assert cleared["event"] == "cleared"
            assert cleared["alert"]["id"] == raised["alert"]["id"]
        finally:
            await ws.close()

    run_async(scenario())
    assert alerts(srv, "?meter=off1&active=false")["count"] == 1


def test_restart_keeps_rules_and_active_alerts(server_factory):
    srv = server_factory()
    srv.post_ok(reading("r1", BASE_TS, voltage=230), accepted=1)
    put_rules(srv, "r1", {"rules": [{"kind": "under_voltage", "threshold": 207, "hysteresis": 3}]})
    srv.post_ok(reading("r1", BASE_TS + 1000, voltage=200))
    [a] = wait_alerts(srv, "?active=true", 1)
    rules_before = srv.get_json("/api/v1/meters/r1/alerts")
    srv.restart()
    assert srv.get_json("/api/v1/meters/r1/alerts") == rules_before
    assert alerts(srv, "?active=true")["alerts"] == [a]
    # Still under: the restored alert stays the only one.
    srv.post_ok(reading("r1", BASE_TS + 2000, voltage=199))
    srv.post_ok(reading("r1", BASE_TS + 3000, voltage=230))
    [c] = wait_alerts(srv, "?active=false", 1)
    assert c["id"] == a["id"] and c["cleared_value"] == 230
    assert alerts(srv)["count"] == 1


def test_pages_and_filters(server_factory):
    srv = server_factory()
    srv.post_ok([reading("p1", BASE_TS), reading("p2", BASE_TS)], accepted=2)
    put_rules(srv, "p1", {"rules": [{"kind": "over_power", "threshold": 1000}]})
    # Up and down five times: five alerts, all cleared but the last.
    srv.post_ok([reading("p1", BASE_TS + 1000 * (k + 1), power=2000 if k % 2 == 0 else 10)
                 for k in range(9)])
    wait_alerts(srv, "?meter=p1", 5)
    assert alerts(srv, "?active=true")["count"] == 1
    assert alerts(srv, "?meter=p2")["count"] == 0
    seen = []
    page = alerts(srv, "?limit=2")
    while True:
        seen += [a["id"] for a in page["alerts"]]
        if page["next"] is None:
            break
        assert "limit=2" in page["next"] and "before=" in page["next"]
        page = srv.get_json(page["next"])
    assert len(seen) == 5 and seen == sorted(seen, reverse=True)


@pytest.mark.parametrize("body,code,field", [
    ({"rules": [{"kind": "over_temperature", "threshold": 1}]}, "invalid_alert_rules",
     "rules[0].kind"),
    ({"rules": [{"kind": "over_voltage", "threshold": 253, "hold_s": -1}]},
     "invalid_alert_rules", "rules[0].hold_s"),
    ({"rules": [{"kind": "frequency_out_of_band", "min": 49.8, "max": 50.2, "hysteresis": 0.3}]},
     "invalid_alert_rules", "rules[0].hysteresis"),
    ({"rules": [{"kind": "over_voltage", "threshold": "high"}]}, "invalid_alert_rules",
     "rules[0].threshold"),
    ({"rules": [{"kind": "offline", "after_s": 60}, {"kind": "offline", "after_s": 5}]},
     "invalid_alert_rules", "rules[1].kind"),
    ({"rule": []}, "invalid_alert_rules", "rule"),
    ('{"rules":[{"kind":"over_voltage","threshold":NaN}]}', "malformed_json", None),
    ("", "empty_body", None),
])
def test_bad_rules_are_refused_and_change_nothing(server, body, code, field):
    server.post_ok(reading("b1", BASE_TS), accepted=1)
    put_rules(server, "b1", OVER_V)
    r = server.http("PUT", "/api/v1/meters/b1/alerts",
                    body.encode() if isinstance(body, str) else body,
                    {"Content-Type": "application/json"})
    assert r.status == 400, r
    err = r.json()["error"]
    assert err["code"] == code and err["message"]
    if field:
        assert err["field"] == field
    assert server.get_json("/api/v1/meters/b1/alerts")["rules"] == OVER_V["rules"]


def test_other_bad_requests(server):
    server.post_ok(reading("b2", BASE_TS), accepted=1)
    r = server.http("PUT", "/api/v1/meters/nope/alerts", OVER_V)
    assert r.status == 404 and r.error_code() == "unknown_meter"
    assert server.get("/api/v1/meters/nope/alerts").status == 404
    assert server.get("/api/v1/alerts?meter=nope").status == 404
    r = server.http("PUT", "/api/v1/meters/b2/alerts", b"x", {"Content-Type": "text/plain"})
    assert r.status == 415
    for q in ["?active=maybe", "?limit=0", "?limit=1001", "?before=x", "?before=0",
              "?meter=bad%20id", "?colour=red"]:
        r = server.get("/api/v1/alerts" + q)
        assert r.status == 400 and r.error_code() == "invalid_parameter", (q, r)
    assert server.http("POST", "/api/v1/alerts", {}).status == 405
    assert server.http("DELETE", "/api/v1/meters/b2/alerts").status == 405
    assert server.get_json("/api/v1/meters/b2/alerts") == {"meter_id": "b2", "rules": []}
    server.assert_healthy()


def test_access(server_factory):
    srv = start_secure(server_factory)
    admin = cli_token(srv.db_path, "admin", "a")
    reader = cli_token(srv.db_path, "read", "r")
    srv.admin_token = None
    from conftest import http
    r = http(srv.port, "POST", "/api/v1/meters", {"meter_id": "s1"}, bearer(admin))
    assert r.status == 201, r
    path = "/api/v1/meters/s1/alerts"
    assert http(srv.port, "GET", path).status == 401
    assert http(srv.port, "GET", "/api/v1/alerts").status == 401
    assert http(srv.port, "PUT", path, OVER_V, bearer(reader)).status == 403
    assert http(srv.port, "GET", path, None, bearer(reader)).status == 200
    assert http(srv.port, "GET", "/api/v1/alerts", None, bearer(reader)).status == 200
    assert http(srv.port, "PUT", path, OVER_V, bearer(admin)).status == 200
