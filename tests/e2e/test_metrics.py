"""GET /metrics: the Prometheus text format parsed strictly, and counters that
move by exactly what the test did (readings ingested and rejected by reason,
HTTP requests by route template, WebSocket connections), access control, and
the process/store gauges."""
import json
import time

import pytest

from conftest import (BASE_TS, HOST, bearer, cli_meter_add, cli_token, reading, run_async,
                      start_secure, ws_open)
from metrics_text import Exposition

CT = "text/plain; version=0.0.4; charset=utf-8"


def scrape(srv, headers=None):
    r = srv.http("GET", "/metrics", headers=headers)
    assert r.status == 200, r
    assert r.header("content-type") == CT, r
    return Exposition(r.text)


def delta(before, after, name, **labels):
    return after.value(name, **labels) - before.value(name, **labels)


def test_counters_move_by_exactly_what_was_done(server):
    before = scrape(server)
    assert before.types["meterhub_readings_ingested_total"] == "counter"
    assert before.types["meterhub_ingest_commit_batch_readings"] == "histogram"
    assert before.types["meterhub_ingest_commit_duration_seconds"] == "histogram"
    assert before.types["meterhub_websocket_connections"] == "gauge"

    # N = 7 new readings in three requests, then 2 duplicates of them.
    server.post_ok([reading("m1", BASE_TS + i * 1000) for i in range(3)], accepted=3)
    server.post_ok([reading("m1", BASE_TS + i * 1000) for i in range(3, 6)], accepted=3)
    server.post_ok(reading("m2", BASE_TS), accepted=1)
    server.post_ok([reading("m1", BASE_TS), reading("m1", BASE_TS + 1000)], accepted=0,
                   duplicates=2)
    # M rejected, by reason: 2 malformed_json, 3 invalid_reading, 1 unsupported_media_type.
    for body in (b"{nope", b"[1,"):
        assert server.post(body).error_code() == "malformed_json"
    for bad in (reading("m1", voltage=-5), reading("m1", power="x"), {"meter_id": "m1"}):
        assert server.post(json.dumps(bad).encode()).error_code() == "invalid_reading"
    r = server.post(json.dumps(reading("m1")).encode(), headers={"Content-Type": "text/plain"})
    assert r.error_code() == "unsupported_media_type"
    # A read of a meter's readings: counted under the route template.
    assert server.get(f"/api/v1/meters/m1/readings?limit=5").status == 200
    assert server.get("/api/v1/meters/nosuchmeter-xyz/latest").status == 404

    after = scrape(server)
    assert delta(before, after, "meterhub_readings_ingested_total", result="new") == 7
    assert delta(before, after, "meterhub_readings_ingested_total", result="duplicate") == 2
    assert delta(before, after, "meterhub_ingest_rejected_total", reason="malformed_json") == 2
    assert delta(before, after, "meterhub_ingest_rejected_total", reason="invalid_reading") == 3
    assert delta(before, after, "meterhub_ingest_rejected_total",
                 reason="unsupported_media_type") == 1
    rejected = sum(v for _, v in after.series("meterhub_ingest_rejected_total")) - \
        sum(v for _, v in before.series("meterhub_ingest_rejected_total"))
    assert rejected == 6

    post = dict(route="/api/v1/readings", method="POST")
    assert delta(before, after, "meterhub_http_requests_total", status="201", **post) == 4
    assert delta(before, after, "meterhub_http_requests_total", status="400", **post) == 5
    assert delta(before, after, "meterhub_http_requests_total", status="415", **post) == 1
    assert delta(before, after, "meterhub_http_requests_total", status="200", method="GET",
                 route="/api/v1/meters/{meter_id}/readings") == 1
    assert delta(before, after, "meterhub_http_requests_total", status="404", method="GET",
                 route="/api/v1/meters/{meter_id}/latest") == 1
    # The scrape before this one is counted, itself not yet.
    assert delta(before, after, "meterhub_http_requests_total", status="200", method="GET",
                 route="/metrics") == 1

    # Each request was a commit of its own or shared one: 9 readings went
    # through the writer, in at least 1 and at most 4 transactions.
    assert delta(before, after, "meterhub_ingest_commit_batch_readings_sum") == 9
    commits = delta(before, after, "meterhub_ingest_commit_batch_readings_count")
    assert 1 <= commits <= 4
    assert delta(before, after, "meterhub_ingest_commit_duration_seconds_count") == commits
    assert delta(before, after, "meterhub_ingest_commits_total") == commits
    assert delta(before, after, "meterhub_http_request_duration_seconds_count",
                 route="/api/v1/readings") == 10

    # Label values are route templates: no meter id, no raw path.
    for (name, labels) in after.samples:
        for v in dict(labels).values():
            assert "m1" not in v and "nosuchmeter" not in v and "?" not in v, (name, labels)


def test_routes_with_keys_in_the_path_are_labelled_by_template(server):
    # ThingsBoard devices put their access token in the path: it must never
    # become a label value (cardinality, and it is a key).
    fake = "mhd_0123456789ab_" + "A" * 43
    r = server.http("POST", f"/api/v1/{fake}/telemetry", b'{"voltage":230}',
                    headers={"Authorization": ""})
    assert r.status in (401, 400, 403), r
    r = server.get("/no/such/thing/here")
    assert r.status == 404
    text = server.get("/metrics").text
    assert fake not in text and "0123456789ab" not in text
    exp = Exposition(text)
    routes = {l["route"] for l, _ in exp.series("meterhub_http_requests_total")}
    assert "/api/v1/{access_token}/telemetry" in routes
    assert "(unmatched)" in routes
    assert not any("no/such" in r for r in routes)


def test_websocket_connections_gauge(server):
    server.post_ok(reading("w1", BASE_TS), accepted=1)
    assert scrape(server).value("meterhub_websocket_connections") == 0
    before_total = scrape(server).value("meterhub_websocket_connections_total")

    async def main():
        a = await ws_open(server, "/ws/w1")
        b = await ws_open(server, "/ws")
        try:
            await a.recv()  # the latest reading: the session is up
            exp = scrape(server)
            assert exp.value("meterhub_websocket_connections") == 2
            assert exp.value("meterhub_websocket_connections_total") - before_total == 2
        finally:
            await a.close()
            await b.close()

    run_async(main())
    # The sessions end on their strands just after the close handshake.
    deadline = time.monotonic() + 5
    while scrape(server).value("meterhub_websocket_connections") != 0:
        assert time.monotonic() < deadline, "gauge did not return to 0"
        time.sleep(0.05)


def test_store_and_process_metrics(server):
    started = time.time()
    server.post_ok(reading("p1", BASE_TS), accepted=1)
    exp = scrape(server)
    assert exp.value("meterhub_store_size_bytes", file="db") > 0
    assert exp.value("meterhub_store_size_bytes", -1, file="wal") >= 0
    assert exp.value("process_resident_memory_bytes") > 1 << 20
    assert exp.value("process_open_fds") >= 4  # db, wal, listener, this connection
    assert exp.value("process_max_fds") >= exp.value("process_open_fds")
    assert exp.value("process_cpu_seconds_total") > 0
    # Started before the scrape, and not before this test's server existed
    # (the fixture started it moments ago; /proc has 10 ms resolution).
    st = exp.value("process_start_time_seconds")
    assert st <= time.time() + 1
    assert st >= started - 120
    assert exp.types["process_cpu_seconds_total"] == "counter"


def test_metrics_need_a_read_token(server_factory):
    srv = start_secure(server_factory)
    admin = cli_token(srv.db_path, scope="admin", name="a")
    read = cli_token(srv.db_path, scope="read", name="prometheus")
    key = cli_meter_add(srv.db_path, "s1")
    r = srv.http("GET", "/metrics")
    assert r.status == 401 and r.error_code() == "unauthorized", r
    assert r.header("www-authenticate")
    r = srv.http("GET", "/metrics", headers=bearer(key))
    assert r.status == 403 and r.error_code() == "forbidden", r
    r = srv.http("GET", "/metrics", headers=bearer("mht_000000000000_" + "x" * 43))
    assert r.status == 401, r
    for tok in (read, admin):
        r = srv.http("GET", "/metrics", headers=bearer(tok))
        assert r.status == 200 and r.header("content-type") == CT, r
        Exposition(r.text)
    r = srv.http("GET", "/metrics", headers={"X-API-Key": read})
    assert r.status == 200
    r = srv.http("POST", "/metrics", b"", headers=bearer(read))
    assert r.status == 405 and r.header("allow") == "GET", r
    # A key never shows up in the metrics or the log.
    text = srv.http("GET", "/metrics", headers=bearer(read)).text
    for k in (admin, read, key):
        secret = k.split("_", 2)[2]
        assert secret not in text and secret not in srv.log()


def test_mqtt_metrics_absent_without_mqtt(server):
    exp = scrape(server)
    assert "meterhub_mqtt_connected" not in exp.types


def test_head_of_metrics(server):
    r = server.http("HEAD", "/metrics")
    assert r.status == 200 and r.body == b""
    assert int(r.header("content-length")) > 100


def test_mqtt_metrics(server_factory, tmp_path):
    from test_mqtt import MOSQUITTO, Broker, client_id, pub, wait_readings, wait_subscribed
    import os
    import shutil
    if not (shutil.which("mosquitto") or os.path.exists(MOSQUITTO)) or \
            not shutil.which("mosquitto_pub"):
        pytest.skip("mosquitto and mosquitto_pub are needed (scripts/install-deps.sh)")
    broker = Broker(str(tmp_path)).start()
    try:
        srv = server_factory(["--mqtt", broker.url, "--mqtt-client-id", client_id("metrics")])
        wait_subscribed(srv)
        before = scrape(srv)
        assert before.value("meterhub_mqtt_connected") == 1
        assert before.value("meterhub_mqtt_connects_total") == 1
        pub(broker, "meterhub/q1/readings", json.dumps(reading("q1", BASE_TS)))
        pub(broker, "meterhub/q1/readings", b"not json")
        pub(broker, "meterhub/q1/readings", json.dumps(reading("other", BASE_TS)))
        pub(broker, "meterhub/q1/readings", json.dumps([reading("q1", BASE_TS + 1000),
                                                        reading("q1", BASE_TS)]))
        wait_readings(srv, "q1", 2)
        deadline = time.monotonic() + 10
        while True:  # the last message is acknowledged after its commit
            after = scrape(srv)
            if after.value("meterhub_mqtt_messages_received_total") == 4 and \
                    after.value("meterhub_mqtt_readings_total", result="duplicate") == 1:
                break
            assert time.monotonic() < deadline, after.samples
            time.sleep(0.05)
        assert after.value("meterhub_mqtt_messages_rejected_total", reason="garbled") == 1
        assert after.value("meterhub_mqtt_messages_rejected_total", reason="mismatched") == 1
        assert after.value("meterhub_mqtt_readings_total", result="new") == 2
        # MQTT readings go through the same writer as HTTP ones.
        assert delta(before, after, "meterhub_readings_ingested_total", result="new") == 2
        assert delta(before, after, "meterhub_readings_ingested_total", result="duplicate") == 1
        broker.stop()
        deadline = time.monotonic() + 10
        while scrape(srv).value("meterhub_mqtt_connected") != 0:
            assert time.monotonic() < deadline, "mqtt_connected stayed 1 with the broker gone"
            time.sleep(0.1)
        srv.allow_error_logs = True  # the lost broker may be logged as an error
        assert srv.stop() == 0
    finally:
        broker.stop()


def test_every_metric_is_documented(server):
    """docs/operations.md's table lists exactly what /metrics serves (the MQTT
    families appear only with --mqtt; test_mqtt_metrics scrapes those; the
    fan-out and leader families only with PostgreSQL: test_scaleout.py)."""
    import os
    import re
    doc = open(os.path.join(os.path.dirname(__file__), "..", "..", "docs", "operations.md"),
               encoding="utf-8").read()
    table = doc[doc.index("| metric | type | labels | meaning |"):]
    table = table[:table.index("\n\n")]
    documented = set(re.findall(r"`((?:meterhub|process)_[a-z_]+)`", table))
    served = set(scrape(server).types)
    assert served - documented == set(), "served but not in docs/operations.md"
    mqtt = {n for n in documented if n.startswith("meterhub_mqtt_")}
    assert len(mqtt) == 5
    pg_only = {n for n in documented
               if n.startswith("meterhub_fanout_") or n == "meterhub_alert_leader"}
    assert len(pg_only) == 11
    assert documented - served == mqtt | pg_only, "documented but not served"
