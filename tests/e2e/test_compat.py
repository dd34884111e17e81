"""Device formats of other servers against the real binary (docs/formats.md):
ThingsBoard telemetry (POST /api/v1/{device key}/telemetry) and Emoncms
inputs (/input/post, /input/bulk). Each documented example payload is posted,
stored, visible through /api/v1/meters/{id}/readings and pushed on /ws/{id};
bad payloads are 400 and store nothing; wrong keys are 401/403 and store
nothing; a retry of the same ts stores no duplicate.

One module-scoped server with the defaults a user gets (secure=True).
"""
import json
import urllib.parse

import pytest

from conftest import (BASE_TS, Keyed, banner_token, bearer, http, iso, module_server, run_async,
                      ws_connect, ws_recv_json)

TB, EMON, OTHER = "tb-meter", "emon-meter", "other-meter"


class Ctx:
    def __init__(self, srv, admin):
        self.srv = srv
        self.admin = admin
        self.as_admin = Keyed(srv, admin)
        self.ts = BASE_TS

    def register(self, meter):
        return self.as_admin.json("POST", "/api/v1/meters", {"meter_id": meter}, 201)["device_key"]

    def next_ts(self):
        self.ts += 1000
        return self.ts

    def readings(self, meter):
        return self.as_admin.get(f"/api/v1/meters/{meter}/readings?limit=10000")["readings"]

    def count(self, meter):
        return len(self.readings(meter))

    def at(self, meter, ts):
        return [r for r in self.readings(meter) if r["ts"] == iso(ts)]


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    db = tmp_path_factory.mktemp("compat") / "m.db"
    with module_server(db, args=["--ip-rate", "0"]) as srv:
        admin = banner_token(srv)
        assert admin
        c = Ctx(srv, admin)
        c.read = c.as_admin.json("POST", "/api/v1/tokens", {"name": "r", "scope": "read"},
                                 201)["token"]
        c.dev_tb = c.register(TB)
        c.dev_emon = c.register(EMON)
        c.dev_other = c.register(OTHER)
        yield c


def watched(ctx, meter, post):
    """Runs post() while a /ws/{meter} socket watches; returns (post's result, the
    readings the socket got afterwards, up to `n` given by post's result)."""
    async def go():
        ws = await ws_connect(ctx.srv, meter, extra_headers=bearer(ctx.read))
        try:
            first = await ws_recv_json(ws, 1.0) if ctx.count(meter) else None  # latest
            del first
            result = post()
            got = []
            for _ in range(result[1]):
                got.append(await ws_recv_json(ws))
            return result[0], got
        finally:
            await ws.close()
    return run_async(go())


# ---------------------------------------------------------------------------
# ThingsBoard

def tb_post(ctx, body, key=None, headers=None):
    key = ctx.dev_tb if key is None else key
    data = body if isinstance(body, str) else json.dumps(body)
    return http(ctx.srv.port, "POST", f"/api/v1/{key}/telemetry", data,
                {"Content-Type": "application/json", **(headers or {})})


def test_thingsboard_ts_values_stored_and_pushed(ctx):
    ts = ctx.next_ts()
    body = {"ts": ts, "values": {"voltage": 230.1, "current": 1.52, "power": 349.8,
                                 "energy": 1234.567, "frequency": 50.01, "pf": 0.97,
                                 "rssi": -61}}
    r, got = watched(ctx, TB, lambda: (tb_post(ctx, body), 1))
    assert r.status == 200 and r.body == b"", r
    assert got[0]["ts"] == iso(ts) and got[0]["meter_id"] == TB, got
    stored = ctx.at(TB, ts)
    assert stored == [{"meter_id": TB, "ts": iso(ts), "voltage": 230.1, "current": 1.52,
                       "power": 349.8, "energy": 1234.567, "frequency": 50.01,
                       "power_factor": 0.97}], stored
    # A retry is harmless: 200 again, nothing new.
    before = ctx.count(TB)
    assert tb_post(ctx, body).status == 200
    assert ctx.count(TB) == before


def test_thingsboard_flat_and_array(ctx):
    before = ctx.count(TB)
    r = tb_post(ctx, {"voltage": 229.8, "current": 1.49, "power": 342.1, "kwh": 1234.6})
    assert r.status == 200, r
    t1, t2 = ctx.next_ts(), ctx.next_ts()
    r = tb_post(ctx, [{"ts": t1, "values": {"Voltage": 230, "Current": 1, "Power": 230,
                                            "energy_kwh": 1234.7}},
                      {"ts": t2, "values": {"voltage": 230, "current": 1, "power": 230,
                                            "energy_wh": 1234800}}])
    assert r.status == 200, r
    assert ctx.count(TB) == before + 3
    assert ctx.at(TB, t2)[0]["energy"] == 1234.8


@pytest.mark.parametrize("body,code", [
    ("{", "malformed_json"),
    ('{"voltage": NaN, "current": 1, "power": 1, "energy": 1}', "malformed_json"),
    ("", "empty_body"),
    ("[]", "empty_batch"),
    ({"voltage": 230, "current": 1, "power": 1}, "invalid_reading"),
    ({"voltage": "230", "current": 1, "power": 1, "energy": 1}, "invalid_reading"),
    ({"voltage": 2300, "current": 1, "power": 1, "energy": 1}, "invalid_reading"),
    ([{"voltage": 230, "current": 1, "power": 1, "energy": 1}, 7], "invalid_reading"),
    ({"ts": 1000, "values": {"voltage": 230, "current": 1, "power": 1, "energy": 1}},
     "invalid_reading"),
])
def test_thingsboard_bad_payload_stores_nothing(ctx, body, code):
    before = ctx.count(TB)
    r = tb_post(ctx, body)
    assert r.status == 400 and r.error_code() == code, r
    assert ctx.count(TB) == before


def test_thingsboard_keys(ctx):
    body = {"voltage": 230, "current": 1, "power": 1, "energy": 1}
    counts = {m: ctx.count(m) for m in (TB, EMON, OTHER)}
    for key in ("A1_TEST_TOKEN", "mhd_000000000000_" + "A" * 43, ctx.dev_tb[:-1] + "x"):
        r = tb_post(ctx, body, key=key)
        assert r.status == 401 and r.error_code() == "unauthorized", (key, r)
    for key in (ctx.read, ctx.admin):
        r = tb_post(ctx, body, key=key)
        assert r.status == 403 and r.error_code() == "forbidden", r
    # A header does not override the path: the path's key decides.
    r = tb_post(ctx, body, key="mhd_000000000000_" + "A" * 43, headers=bearer(ctx.dev_tb))
    assert r.status == 401, r
    assert {m: ctx.count(m) for m in counts} == counts
    r = http(ctx.srv.port, "GET", f"/api/v1/{ctx.dev_tb}/telemetry")
    assert r.status == 405 and r.header("Allow") == "POST", r
    # Our own routes are not taken for tokens.
    assert ctx.as_admin("GET", "/api/v1/meters/telemetry").error_code() == "unknown_meter"


# ---------------------------------------------------------------------------
# Emoncms

VALUES = {"power": 349.8, "vrms": 230.1, "irms": 1.52, "kwh": 12.5, "temp": 21}


def emon(ctx, method, path, params=None, form=None, raw_query=None, headers=None):
    q = raw_query if raw_query is not None else urllib.parse.urlencode(params or {})
    body = urllib.parse.urlencode(form) if form is not None else None
    h = dict(headers or {})
    if body is not None:
        h["Content-Type"] = "application/x-www-form-urlencoded"
    return http(ctx.srv.port, method, f"{path}?{q}", body, h)


def test_emoncms_fulljson_raw_in_query_stored_and_pushed(ctx):
    ts = ctx.next_ts()
    raw = (f"node={EMON}&time={ts // 1000}&apikey={ctx.dev_emon}&fulljson="
           + json.dumps(VALUES, separators=(",", ":")))
    r, got = watched(ctx, EMON, lambda: (emon(ctx, "GET", "/input/post", raw_query=raw), 1))
    assert r.status == 200 and r.body == b"ok", r
    assert r.header("Content-Type").startswith("text/plain"), r
    assert got[0]["ts"] == iso(ts) and got[0]["power"] == 349.8, got
    assert ctx.at(EMON, ts) == [{"meter_id": EMON, "ts": iso(ts), "voltage": 230.1,
                                 "current": 1.52, "power": 349.8, "energy": 12.5}]
    before = ctx.count(EMON)
    assert emon(ctx, "GET", "/input/post", raw_query=raw).body == b"ok"
    assert ctx.count(EMON) == before


def test_emoncms_json_form_post_and_header_key(ctx):
    ts = ctx.next_ts()
    r = emon(ctx, "POST", "/input/post",
             form={"node": EMON, "time": str(ts // 1000),
                   "json": "{power:100,voltage:231,current:0.5,energy:12.6}"},
             headers=bearer(ctx.dev_emon))
    assert r.status == 200 and r.body == b"ok", r
    assert ctx.at(EMON, ts)[0]["voltage"] == 231
    # An admin token writes any registered meter.
    ts = ctx.next_ts()
    r = emon(ctx, "GET", "/input/post", {"node": OTHER, "time": ts // 1000, "apikey": ctx.admin,
                                          "fulljson": json.dumps(VALUES)})
    assert r.status == 200, r
    assert len(ctx.at(OTHER, ts)) == 1


def test_emoncms_bulk(ctx):
    t1, t2 = ctx.next_ts(), ctx.next_ts()
    data = [[t1 // 1000, EMON, {"power": 1, "voltage": 230, "current": 0.1, "energy": 13}],
            [t2 // 1000, EMON, {"power": 2}, {"voltage": 230, "current": 0.1, "energy": 13.1}]]
    before = ctx.count(EMON)
    r, got = watched(ctx, EMON, lambda: (emon(ctx, "POST", "/input/bulk",
                                               form={"data": json.dumps(data),
                                                     "apikey": ctx.dev_emon}), 2))
    assert r.status == 200 and r.body == b"ok", r
    assert [g["ts"] for g in got] == [iso(t1), iso(t2)], got
    assert ctx.count(EMON) == before + 2
    # Relative to a reference time.
    t3 = ctx.next_ts()
    r = emon(ctx, "GET", "/input/bulk",
             {"time": t3 // 1000 - 5, "apikey": ctx.dev_emon,
              "data": json.dumps([[5, EMON, {"power": 3, "voltage": 230, "current": 0.1,
                                             "energy": 13.2}]])})
    assert r.status == 200, r
    assert len(ctx.at(EMON, t3)) == 1


@pytest.mark.parametrize("path,params,code", [
    ("/input/post", {"fulljson": json.dumps(VALUES)}, "invalid_parameter"),           # no node
    ("/input/post", {"node": EMON}, "invalid_parameter"),                             # no values
    ("/input/post", {"node": EMON, "csv": "100,200,300"}, "invalid_parameter"),
    ("/input/post", {"node": EMON, "fulljson": "{bad"}, "malformed_json"),
    ("/input/post", {"node": EMON, "fulljson": '{"power":NaN}'}, "malformed_json"),
    ("/input/post", {"node": EMON, "fulljson": '{"power":1,"vrms":230,"irms":1}'},
     "invalid_reading"),
    ("/input/post", {"node": EMON, "json": "power:x,vrms:1,irms:1,kwh:1"}, "invalid_reading"),
    ("/input/post", {"node": EMON, "time": "soon", "fulljson": json.dumps(VALUES)},
     "invalid_parameter"),
    ("/input/bulk", {}, "invalid_parameter"),
    ("/input/bulk", {"data": "[[0,16,1137,1437]]"}, "invalid_reading"),
    ("/input/bulk", {"data": json.dumps([[0, EMON, {"power": 1, "vrms": 1, "irms": 1,
                                                    "kwh": 1}],
                                         [1, EMON, {"power": 1, "vrms": 9999, "irms": 1,
                                                    "kwh": 1}]])}, "invalid_reading"),
])
def test_emoncms_bad_input_stores_nothing(ctx, path, params, code):
    before = ctx.count(EMON)
    r = emon(ctx, "GET", path, {**params, "apikey": ctx.dev_emon})
    assert r.status == 400 and r.error_code() == code, r
    assert ctx.count(EMON) == before


def test_emoncms_keys(ctx):
    counts = {m: ctx.count(m) for m in (TB, EMON, OTHER)}
    params = {"node": EMON, "fulljson": json.dumps(VALUES)}
    r = emon(ctx, "GET", "/input/post", params)
    assert r.status == 401 and r.error_code() == "unauthorized", r
    r = emon(ctx, "GET", "/input/post", {**params, "apikey": "mhd_000000000000_" + "A" * 43})
    assert r.status == 401, r
    r = emon(ctx, "GET", "/input/post", {**params, "apikey": ctx.dev_other})
    assert r.status == 403 and r.error_code() == "forbidden", r
    r = emon(ctx, "GET", "/input/post", {**params, "apikey": ctx.read})
    assert r.status == 403, r
    bulk = [[0, OTHER, {"power": 1, "vrms": 1, "irms": 1, "kwh": 1}]]
    r = emon(ctx, "GET", "/input/bulk", {"data": json.dumps(bulk), "apikey": ctx.dev_emon})
    assert r.status == 403, r
    r = emon(ctx, "GET", "/input/post", {"node": "nobody", "apikey": ctx.admin,
                                          "fulljson": json.dumps(VALUES)})
    assert r.status == 404 and r.error_code() == "unknown_meter", r
    r = http(ctx.srv.port, "POST", f"/input/post?node={EMON}&apikey={ctx.dev_emon}",
             json.dumps(VALUES), {"Content-Type": "application/json"})
    assert r.status == 415, r
    assert {m: ctx.count(m) for m in counts} == counts
