"""The device registry end to end (docs/api.md "Registering meters", "API
tokens"): registering meters and validating what is registered, changing,
rotating keys of and deleting meters (with their readings, keys and the
/ws "deleted" event), API tokens (create, list without secrets, revoke, the
last admin token), the `meterhub meter …` / `meterhub token …` CLI beside a
running server, and Cache-Control: no-store on every answer carrying a key.

Servers run with the defaults a user gets (secure, not the harness's lab
mode); the admin token is the one printed at the first start.
"""
import asyncio
import json
import re
import threading
import time
import urllib.parse

import pytest

from conftest import (BASE_TS, DEVICE_KEY_RE, TOKEN_RE, Keyed, banner_token, cli_meter_add,
                      cli_token, iso, key_id, key_secret, meterhub_cli, module_server, reading,
                      run_async, start_secure, ws_next, ws_open, ws_recv_json, ws_watch)

TARIFF = {"currency": "EUR", "price_per_kwh": 0.25,
          "windows": [{"from": "07:00", "to": "23:00", "price_per_kwh": 0.3}]}
CLI_DELAY = 1.5  # docs: CLI changes take effect "within one second"; polled, with slack


class Reg:
    """A secure server and its first-start admin token."""

    def __init__(self, srv):
        self.srv = srv
        self.admin = banner_token(srv)
        assert self.admin, srv.run_log()
        self.a = Keyed(srv, self.admin)

    def register(self, meter, **fields):
        r = self.a("POST", "/api/v1/meters", {"meter_id": meter, **fields})
        assert r.status == 201, r
        return r.json()["device_key"]

    def post(self, key, body):
        return Keyed(self.srv, key)("POST", "/api/v1/readings", body)

    def meters(self):
        return self.a.get("/api/v1/meters")

    def meter_ids(self):
        return [m["meter_id"] for m in self.meters()["meters"]]

    def tokens(self):
        return self.a.get("/api/v1/tokens")["tokens"]


@pytest.fixture
def reg(server_factory):
    """A fresh server per test."""
    return Reg(start_secure(server_factory))


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One server for the tests that only check refusals: they name their own
    meters and compare before/after, so they do not interfere."""
    with module_server(tmp_path_factory.mktemp("registry") / "m.db") as srv:
        yield Reg(srv)


_n = [0]


def unique(prefix):
    _n[0] += 1
    return f"{prefix}{_n[0]}"


def error_of(r):
    try:
        return r.error_code()
    except AssertionError:
        return None


def assert_error(r, status, code, field=None):
    assert r.status == status and error_of(r) == code, r
    if field is not None:
        assert r.json()["error"].get("field") == field, r


def assert_unauthorized(r):
    assert_error(r, 401, "unauthorized")
    assert r.header("WWW-Authenticate", "").startswith('Bearer realm="meterhub"'), r


def path_id(meter_id):
    return urllib.parse.quote(meter_id, safe="")


ISO_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


# ---------------------------------------------------------------------------
# Registering meters

def test_register_meter(reg):
    body = {"meter_id": "kitchen", "name": "Kitchen", "location": "ground floor",
            "interval_s": 10}
    r = reg.a("POST", "/api/v1/meters", body)
    assert r.status == 201, r
    assert r.header("Cache-Control") == "no-store", r
    assert r.header("Location") == "/api/v1/meters/kitchen", r
    doc = r.json()
    assert set(doc) == {"meter", "device_key"}, doc
    key = doc["device_key"]
    assert DEVICE_KEY_RE.fullmatch(key) and len(key) == 60, key
    m = doc["meter"]
    assert m["meter_id"] == "kitchen" and m["name"] == "Kitchen", m
    assert m["location"] == "ground floor" and m["interval_s"] == 10, m
    assert ISO_RE.fullmatch(m["created_at"]) and m["last_seen"] is None and m["latest"] is None
    assert reg.a.get("/api/v1/meters/kitchen") == m
    assert reg.meters() == {"meters": [m], "count": 1}
    assert Keyed(reg.srv, key).get("/api/v1/whoami") == {
        "kind": "device", "id": key_id(key), "meter_id": "kitchen"}
    # The key writes its meter at once.
    r = reg.post(key, reading("kitchen", ts=BASE_TS))
    assert r.status == 201 and r.json() == {"accepted": 1, "duplicates": 0}, r
    m = reg.a.get("/api/v1/meters/kitchen")
    assert m["latest"]["ts"] == iso(BASE_TS) and ISO_RE.fullmatch(m["last_seen"]), m
    # Only the optional fields' defaults.
    doc = reg.a.json("POST", "/api/v1/meters", {"meter_id": "bare"}, 201)
    m = doc["meter"]
    assert (m["name"], m["location"], m["interval_s"]) == ("", "", None), m
    assert doc["device_key"] != key


@pytest.mark.parametrize("body", [
    {"meter_id": "a" * 64},
    {"meter_id": "Az09_.:-x"},
    {"meter_id": "...", "name": "n" * 100, "location": "l" * 200},
    {"meter_id": "b", "interval_s": 1},
    {"meter_id": "c", "interval_s": 86400},
    {"meter_id": "d", "name": "Küche ☕", "location": None, "interval_s": None},
], ids=["64-chars", "all-char-classes", "longest-texts", "interval-1", "interval-86400",
        "unicode-name-and-nulls"])
def test_register_meter_accepts_the_boundaries(shared, body):
    reg = shared
    doc = reg.a.json("POST", "/api/v1/meters", body, 201)
    assert doc["meter"]["meter_id"] == body["meter_id"]
    assert doc["meter"]["name"] == (body.get("name") or "")
    assert doc["meter"]["interval_s"] == body.get("interval_s")
    assert reg.a.get(f"/api/v1/meters/{path_id(body['meter_id'])}") == doc["meter"]


BAD_IDS = ["x';DROP TABLE smart_meter;--", "../etc", "%2e%2e", "..", ".", "", "mètre", "日本",
           "a b", "a/b", "a\\b", "a" * 65, "kitchen\n", "plug🔌", "a?b", "a#b", "a%00"]
BAD_BODIES = [
    # (body, code, field)
    *[({"meter_id": i}, "invalid_meter_id", "meter_id") for i in BAD_IDS],
    ({"meter_id": 5}, "invalid_parameter", "meter_id"),
    ({"meter_id": None}, "invalid_parameter", "meter_id"),
    ({"meter_id": ["a"]}, "invalid_parameter", "meter_id"),
    ({"name": "no id"}, "invalid_parameter", "meter_id"),
    ({"meter_id": "ok", "name": 5}, "invalid_parameter", "name"),
    ({"meter_id": "ok", "name": "n" * 101}, "invalid_parameter", "name"),
    ({"meter_id": "ok", "name": "bell\u0007"}, "invalid_parameter", "name"),
    ({"meter_id": "ok", "location": {}}, "invalid_parameter", "location"),
    ({"meter_id": "ok", "location": "l" * 201}, "invalid_parameter", "location"),
    *[({"meter_id": "ok", "interval_s": v}, "invalid_parameter", "interval_s")
      for v in (0, -1, 86401, 1.5, "10", True, [10], 1e300)],
    ({"meter_id": "ok", "colour": "red"}, "invalid_parameter", "colour"),
    ({"meter_id": "ok", "device_key": "mhd_0123456789ab_" + "A" * 43}, "invalid_parameter",
     "device_key"),
    ({"meter_id": "ok", "meter_id ": "x"}, "invalid_parameter", "meter_id "),
    ("not json", "malformed_json", None),
    ("", "empty_body", None),
    ([{"meter_id": "ok"}], "malformed_json", None),
    ("null", "malformed_json", None),
    ('{"meter_id": "ok"', "malformed_json", None),
]


@pytest.mark.parametrize("body,code,field", BAD_BODIES,
                         ids=[f"{i}" for i in range(len(BAD_BODIES))])
def test_register_meter_validation(shared, body, code, field):
    reg = shared
    before = reg.meters()
    r = reg.a("POST", "/api/v1/meters", body,
              headers={"Content-Type": "application/json"})
    assert_error(r, 400, code, field)
    assert "mhd_" not in r.text
    assert reg.meters() == before
    assert "ok" not in reg.meter_ids()


def test_register_after_sql_like_ids(reg):
    """After every bad id of the list, the table is intact and takes a good one."""
    for bad in BAD_IDS:
        r = reg.a("POST", "/api/v1/meters", {"meter_id": bad})
        assert_error(r, 400, "invalid_meter_id", "meter_id")
    k = reg.register("ok")
    assert reg.meter_ids() == ["ok"]
    assert reg.post(k, reading("ok", ts=BASE_TS)).status == 201


def test_register_meter_wrong_content_type_is_415(shared):
    m = unique("ct")
    r = shared.a("POST", "/api/v1/meters", json.dumps({"meter_id": m}),
                 headers={"Content-Type": "text/plain"})
    assert_error(r, 415, "unsupported_media_type")
    assert m not in shared.meter_ids()


def test_duplicate_meter_is_409(reg):
    key = reg.register("dup", name="first")
    r = reg.a("POST", "/api/v1/meters", {"meter_id": "dup", "name": "second"})
    assert_error(r, 409, "meter_exists")
    assert "mhd_" not in r.text
    # Nothing changed: same name, the first key still the key.
    assert reg.a.get("/api/v1/meters/dup")["name"] == "first"
    assert reg.post(key, reading("dup", ts=BASE_TS)).status == 201
    assert reg.meters()["count"] == 1


@pytest.mark.parametrize("method,suffix,body", [
    ("GET", "", None), ("PATCH", "", {"name": "x"}), ("DELETE", "?confirm={id}", None),
    ("POST", "/rotate-key", None), ("GET", "/readings", None), ("PUT", "/tariff", TARIFF),
])
def test_bad_meter_id_in_path_is_400(shared, method, suffix, body):
    reg = shared
    before = reg.meters()
    for bad in ["x';DROP TABLE smart_meter;--", "mètre", "a" * 65]:
        q = path_id(bad)
        r = reg.a(method, f"/api/v1/meters/{q}{suffix.format(id=q)}", body)
        assert_error(r, 400, "invalid_meter_id")
    # ".." percent-encoded: decoded, then refused as a meter id.
    for enc in ["%2e%2e", "%2E%2E", ".%2e"]:
        r = reg.a(method, f"/api/v1/meters/{enc}{suffix.format(id=enc)}", body)
        assert r.status in (400, 404), r
        assert error_of(r) in ("invalid_meter_id", "not_found", "bad_target"), r
    assert reg.meters() == before


# ---------------------------------------------------------------------------
# Changing meters

def test_patch_meter(reg):
    reg.register("p1", name="P", location="cellar", interval_s=10)
    a = reg.a
    m = a.json("PATCH", "/api/v1/meters/p1", {"name": "Pump"})
    assert (m["meter_id"], m["name"], m["location"], m["interval_s"]) == ("p1", "Pump", "cellar",
                                                                          10), m
    assert a.get("/api/v1/meters/p1") == m
    m = a.json("PATCH", "/api/v1/meters/p1", {"location": "garden", "interval_s": 60})
    assert (m["name"], m["location"], m["interval_s"]) == ("Pump", "garden", 60), m
    m = a.json("PATCH", "/api/v1/meters/p1", {"interval_s": None})
    assert m["interval_s"] is None and m["name"] == "Pump", m
    m = a.json("PATCH", "/api/v1/meters/p1", {"name": "", "location": ""})
    assert (m["name"], m["location"]) == ("", ""), m
    # tariff: set (normalised as PUT .../tariff stores it), then removed
    m = a.json("PATCH", "/api/v1/meters/p1", {"tariff": TARIFF})
    assert m["meter_id"] == "p1"
    patched = a.get("/api/v1/meters/p1/tariff")
    put = a.json("PUT", "/api/v1/meters/p1/tariff", TARIFF)
    assert patched == put
    a.json("PATCH", "/api/v1/meters/p1", {"tariff": None})
    r = a("GET", "/api/v1/meters/p1/tariff")
    assert_error(r, 404, "no_tariff")
    # everything at once
    m = a.json("PATCH", "/api/v1/meters/p1", {"name": "N", "location": "L", "interval_s": 5,
                                               "tariff": TARIFF})
    assert (m["name"], m["location"], m["interval_s"]) == ("N", "L", 5), m
    assert a.get("/api/v1/meters/p1/tariff") == put
    assert a.get("/api/v1/meters") == {"meters": [m], "count": 1}


@pytest.mark.parametrize("body,code,field", [
    ({}, "invalid_parameter", None),
    ({"colour": "red"}, "invalid_parameter", "colour"),
    ({"meter_id": "other"}, "invalid_parameter", "meter_id"),
    ({"name": 5}, "invalid_parameter", "name"),
    ({"name": "n" * 101}, "invalid_parameter", "name"),
    ({"location": "l" * 201}, "invalid_parameter", "location"),
    ({"location": "tab\there"}, "invalid_parameter", "location"),
    ({"interval_s": 0}, "invalid_parameter", "interval_s"),
    ({"interval_s": 86401}, "invalid_parameter", "interval_s"),
    ({"interval_s": "60"}, "invalid_parameter", "interval_s"),
    ({"interval_s": 2.5}, "invalid_parameter", "interval_s"),
    ({"tariff": 5}, "invalid_parameter", "tariff"),
    ({"tariff": "EUR"}, "invalid_parameter", "tariff"),
    ({"tariff": {"currency": "euro", "price_per_kwh": 0.3}}, None, "tariff.currency"),
    ({"tariff": {"currency": "EUR"}}, None, "tariff"),
    # all or nothing: a good field beside a bad one changes nothing
    ({"name": "changed", "interval_s": -5}, "invalid_parameter", "interval_s"),
    ({"name": "changed", "tariff": {"currency": "EUR", "price_per_kwh": "x"}}, None, "tariff"),
    ("not json", "malformed_json", None),
    ("", "empty_body", None),
    ("[]", "malformed_json", None),
], ids=lambda v: None)
def test_bad_patch_is_400_and_changes_nothing(shared, body, code, field):
    reg = shared
    p1 = unique("p")
    reg.register(p1, name="P", location="cellar", interval_s=10)
    reg.a.json("PUT", f"/api/v1/meters/{p1}/tariff", {"currency": "EUR", "price_per_kwh": 0.1})
    before = reg.a.get(f"/api/v1/meters/{p1}")
    tariff = reg.a.get(f"/api/v1/meters/{p1}/tariff")
    r = reg.a("PATCH", f"/api/v1/meters/{p1}", body,
              headers={"Content-Type": "application/json"})
    assert r.status == 400, r
    err = r.json()["error"]
    if code is not None:
        assert err["code"] == code, err
    else:
        assert err["code"] in ("invalid_tariff", "invalid_parameter"), err
    if field is not None:
        # a tariff's own field may be named below "tariff" (tariff.currency)
        if field == "tariff":
            assert str(err.get("field", "")).startswith("tariff"), err
        else:
            assert err.get("field") == field, err
    assert reg.a.get(f"/api/v1/meters/{p1}") == before
    assert reg.a.get(f"/api/v1/meters/{p1}/tariff") == tariff


def test_patch_unknown_meter_is_404(shared):
    r = shared.a("PATCH", "/api/v1/meters/ghost", {"name": "x"})
    assert_error(r, 404, "unknown_meter")
    r = shared.a("PATCH", "/api/v1/meters/ghost", {"tariff": TARIFF})
    assert_error(r, 404, "unknown_meter")
    assert "ghost" not in shared.meter_ids()
    assert_error(shared.a("GET", "/api/v1/meters/ghost/tariff"), 404, "unknown_meter")


# ---------------------------------------------------------------------------
# Rotating device keys

def test_rotate_key(reg):
    k1 = reg.register("r1")
    assert reg.post(k1, reading("r1", ts=BASE_TS)).status == 201
    r = reg.a("POST", "/api/v1/meters/r1/rotate-key")
    assert r.status == 200, r
    assert r.header("Cache-Control") == "no-store", r
    doc = r.json()
    assert set(doc) == {"meter_id", "device_key"} and doc["meter_id"] == "r1", doc
    k2 = doc["device_key"]
    assert DEVICE_KEY_RE.fullmatch(k2) and k2 != k1 and key_id(k2) != key_id(k1)
    # The old key stops at once (no waiting), on every route.
    assert_unauthorized(reg.post(k1, reading("r1", ts=BASE_TS + 1000)))
    assert_unauthorized(Keyed(reg.srv, k1)("GET", "/api/v1/whoami"))
    assert_unauthorized(Keyed(reg.srv, k1, "x-api-key")("POST", "/api/v1/readings",
                                                        reading("r1", ts=BASE_TS + 1000)))
    assert reg.a.get("/api/v1/meters/r1/readings")["count"] == 1
    r = reg.post(k2, reading("r1", ts=BASE_TS + 2000))
    assert r.status == 201, r
    k3 = reg.a.json("POST", "/api/v1/meters/r1/rotate-key")["device_key"]
    assert_unauthorized(reg.post(k2, reading("r1", ts=BASE_TS + 3000)))
    assert_unauthorized(reg.post(k1, reading("r1", ts=BASE_TS + 3000)))
    assert reg.post(k3, reading("r1", ts=BASE_TS + 3000)).status == 201
    assert [x["ts"] for x in reg.a.get("/api/v1/meters/r1/readings")["readings"]] == [
        iso(BASE_TS), iso(BASE_TS + 2000), iso(BASE_TS + 3000)]


def test_rotate_key_errors(shared):
    reg = shared
    assert_error(reg.a("POST", "/api/v1/meters/ghost/rotate-key"), 404, "unknown_meter")
    assert_error(reg.a("POST", "/api/v1/meters/a%20b/rotate-key"), 400, "invalid_meter_id")
    r = reg.a("GET", "/api/v1/meters/ghost/rotate-key")
    assert_error(r, 405, "method_not_allowed")
    assert "ghost" not in reg.meter_ids()


# ---------------------------------------------------------------------------
# Deleting meters

@pytest.mark.parametrize("query", ["", "?confirm=", "?confirm=other", "?confirm={M}",
                                   "?confirm={m}x", "?confirm={p}", "?Confirm={m}",
                                   "?confirm=%20{m}", "?confirm={m}%00", "?confirm"])
def test_delete_needs_confirmation(shared, query):
    reg = shared
    m = unique("del")
    k = reg.register(m)
    assert reg.post(k, [reading(m, ts=BASE_TS), reading(m, ts=BASE_TS + 1)]).status == 201
    r = reg.a("DELETE", f"/api/v1/meters/{m}" + query.format(m=m, M=m.upper(), p=m[:-1]))
    assert_error(r, 400, "confirmation_required")
    assert reg.a.get(f"/api/v1/meters/{m}/readings")["count"] == 2
    assert reg.post(k, reading(m, ts=BASE_TS + 2)).status == 201


def test_delete_meter_removes_everything_and_tells_watchers(reg):
    srv, a = reg.srv, reg.a
    k = reg.register("del1", name="Doomed", interval_s=30)
    keep = reg.register("keep")
    a.json("PUT", "/api/v1/meters/del1/tariff", TARIFF)
    assert reg.post(k, [reading("del1", ts=BASE_TS + i * 60_000) for i in range(3)]).status == 201
    assert reg.post(keep, reading("keep", ts=BASE_TS)).status == 201

    async def scenario():
        named = await ws_watch(srv, reg.admin, ["del1"])
        star = await ws_watch(srv, reg.admin, "*")
        single = await ws_open(srv, f"/ws/del1?token={reg.admin}")
        try:
            assert (await ws_recv_json(single))["ts"] == iso(BASE_TS + 120_000)
            r = await asyncio.to_thread(a, "DELETE", "/api/v1/meters/del1?confirm=del1")
            assert r.status == 200 and r.json() == {"deleted": "del1", "readings": 3}, r
            for ws in (named, star):
                ev = await ws_next(ws, "meter")
                assert ev == {"type": "meter", "event": "deleted", "meter_id": "del1"}, ev
            # "keep" is untouched and still streams.
            r = await asyncio.to_thread(reg.post, keep, reading("keep", ts=BASE_TS + 1000))
            assert r.status == 201, r
            assert (await ws_next(star))["meter_id"] == "keep"
        finally:
            for ws in (named, star, single):
                await ws.close()

    run_async(scenario())
    for path in ["", "/readings", "/latest", "/series", "/energy"]:
        assert_error(a("GET", f"/api/v1/meters/del1{path}"), 404, "unknown_meter")
    assert reg.meter_ids() == ["keep"]
    summary = a.get(f"/api/v1/energy/summary?from={BASE_TS - 3_600_000}&to={BASE_TS + 3_600_000}")
    assert [m["meter_id"] for m in summary["meters"]] in ([], ["keep"]), summary
    # Its key is gone with it; so are further deletes.
    assert_unauthorized(reg.post(k, reading("del1", ts=BASE_TS + 999_000)))
    assert_unauthorized(Keyed(srv, k)("GET", "/api/v1/whoami"))
    assert_error(a("DELETE", "/api/v1/meters/del1?confirm=del1"), 404, "unknown_meter")
    assert_error(a("POST", "/api/v1/meters/del1/rotate-key"), 404, "unknown_meter")
    # An admin cannot write readings for it either (it is not registered).
    r = a("POST", "/api/v1/readings", reading("del1", ts=BASE_TS))
    assert_error(r, 404, "unknown_meter")
    assert reg.meter_ids() == ["keep"]
    assert a.get("/api/v1/meters/keep/readings")["count"] == 2


def test_recreated_meter_is_fresh(reg):
    srv, a = reg.srv, reg.a
    old = reg.register("again", name="Old", location="attic", interval_s=30)
    a.json("PUT", "/api/v1/meters/again/tariff", TARIFF)
    body = [reading("again", ts=BASE_TS + i * 60_000, energy=100.0 + i) for i in range(5)]
    assert reg.post(old, body).status == 201
    a.json("DELETE", "/api/v1/meters/again?confirm=again")

    doc = a.json("POST", "/api/v1/meters", {"meter_id": "again"}, 201)
    new = doc["device_key"]
    assert new != old
    m = doc["meter"]
    assert (m["name"], m["location"], m["interval_s"]) == ("", "", None), m
    assert m["latest"] is None and m["last_seen"] is None, m
    assert a.get("/api/v1/meters/again") == m
    assert a.get("/api/v1/meters/again/readings") == {"meter_id": "again", "count": 0,
                                                      "readings": [], "next": None}
    assert_error(a("GET", "/api/v1/meters/again/latest"), 404, "no_readings")
    assert_error(a("GET", "/api/v1/meters/again/tariff"), 404, "no_tariff")
    series = a.get(f"/api/v1/meters/again/series?from={BASE_TS - 3_600_000}"
                   f"&to={BASE_TS + 3_600_000}&step=1m")
    assert series["buckets"] == 0, series
    summary = a.get(f"/api/v1/energy/summary?from={BASE_TS - 3_600_000}&to={BASE_TS + 3_600_000}")
    assert summary["meters"] == [], summary
    assert_unauthorized(reg.post(old, reading("again", ts=BASE_TS + 600_000)))

    async def scenario():
        # No stale "latest" from before the delete on a new watcher.
        ws = await ws_open(srv, f"/ws/again?token={reg.admin}")
        try:
            pong = await ws.ping()
            await asyncio.wait_for(pong, 5)
            with pytest.raises(asyncio.TimeoutError):
                msg = await asyncio.wait_for(ws.recv(), 0.3)
                raise AssertionError(f"stale message {msg!r}")
            r = await asyncio.to_thread(reg.post, new, reading("again", ts=BASE_TS + 600_000))
            assert r.status == 201, r
            assert (await ws_recv_json(ws))["ts"] == iso(BASE_TS + 600_000)
        finally:
            await ws.close()

    run_async(scenario())
    doc = a.get("/api/v1/meters/again/readings")
    assert [x["ts"] for x in doc["readings"]] == [iso(BASE_TS + 600_000)], doc


# ---------------------------------------------------------------------------
# API tokens

TOKEN_FIELDS = {"id", "name", "scope", "created_at", "revoked_at"}


@pytest.mark.parametrize("scope", ["read", "admin"])
def test_create_token(reg, scope):
    r = reg.a("POST", "/api/v1/tokens", {"name": "grafana", "scope": scope})
    assert r.status == 201, r
    assert r.header("Cache-Control") == "no-store", r
    doc = r.json()
    assert {"id", "name", "scope", "created_at", "token"} <= set(doc), doc
    tok = doc["token"]
    assert TOKEN_RE.fullmatch(tok) and doc["id"] == key_id(tok), doc
    assert (doc["name"], doc["scope"]) == ("grafana", scope)
    assert ISO_RE.fullmatch(doc["created_at"]) and doc.get("revoked_at") is None, doc
    who = Keyed(reg.srv, tok).get("/api/v1/whoami")
    assert who == {"kind": "token", "id": doc["id"], "name": "grafana", "scope": scope}
    t = Keyed(reg.srv, tok)
    assert t("GET", "/api/v1/meters").status == 200
    r = t("POST", "/api/v1/meters", {"meter_id": "by-token"})
    if scope == "admin":
        assert r.status == 201, r
    else:
        assert_error(r, 403, "forbidden")
    listed = {x["id"]: x for x in reg.tokens()}
    assert listed[doc["id"]] == {k: doc[k] for k in TOKEN_FIELDS if k in doc} | {
        "revoked_at": None}


@pytest.mark.parametrize("body,field", [
    ({}, "name"), ({"scope": "read"}, "name"), ({"name": ""}, "name"),
    ({"name": None, "scope": "read"}, "name"), ({"name": 5, "scope": "read"}, "name"),
    ({"name": "n" * 101, "scope": "read"}, "name"), ({"name": "nl\n", "scope": "read"}, "name"),
    ({"name": "x", "scope": "root"}, "scope"), ({"name": "x", "scope": "ADMIN"}, "scope"),
    ({"name": "x", "scope": 1}, "scope"), ({"name": "x", "scope": "device"}, "scope"),
    ({"name": "x", "scope": "read", "token": "mht_0123456789ab_" + "A" * 43}, "token"),
    ({"name": "x", "scope": "read", "expires": 5}, "expires"),
])
def test_create_token_validation(shared, body, field):
    reg = shared
    before = reg.tokens()
    r = reg.a("POST", "/api/v1/tokens", body)
    assert_error(r, 400, "invalid_parameter", field)
    assert "mht_" not in r.text
    assert reg.tokens() == before


@pytest.mark.parametrize("body,code", [("nope", "malformed_json"), ("", "empty_body"),
                                       ("[]", "malformed_json")])
def test_create_token_bad_json(shared, body, code):
    reg = shared
    before = reg.tokens()
    r = reg.a("POST", "/api/v1/tokens", body, headers={"Content-Type": "application/json"})
    assert_error(r, 400, code)
    r = reg.a("POST", "/api/v1/tokens", '{"name":"x"}', headers={"Content-Type": "text/plain"})
    assert_error(r, 415, "unsupported_media_type")
    assert reg.tokens() == before


def test_token_list_never_contains_secrets(reg):
    made = [reg.a.json("POST", "/api/v1/tokens", {"name": f"t{i}", "scope": s}, 201)
            for i, s in enumerate(["read", "admin", "read"])]
    reg.a.json("DELETE", f"/api/v1/tokens/{made[2]['id']}")
    dev = reg.register("m1")
    r = reg.a("GET", "/api/v1/tokens")
    assert r.status == 200, r
    assert "mht_" not in r.text and "mhd_" not in r.text, r.text
    for secret in [key_secret(x["token"]) for x in made] + [key_secret(reg.admin),
                                                           key_secret(dev)]:
        assert secret not in r.text
    tokens = r.json()["tokens"]
    assert set(r.json()) == {"tokens"}
    for t in tokens:
        assert set(t) == TOKEN_FIELDS, t
    by_id = {t["id"]: t for t in tokens}
    # device keys are not tokens
    assert key_id(dev) not in by_id
    assert set(by_id) == {key_id(reg.admin)} | {x["id"] for x in made}
    assert by_id[key_id(reg.admin)]["name"] == "initial admin"
    assert by_id[key_id(reg.admin)]["scope"] == "admin"
    assert ISO_RE.fullmatch(by_id[made[2]["id"]]["revoked_at"]), by_id
    for x in made[:2]:
        assert by_id[x["id"]]["revoked_at"] is None
        assert by_id[x["id"]]["scope"] == x["scope"]


def test_revoke_token(reg):
    doc = reg.a.json("POST", "/api/v1/tokens", {"name": "r", "scope": "read"}, 201)
    tok = doc["token"]
    assert Keyed(reg.srv, tok).get("/api/v1/whoami")["scope"] == "read"
    r = reg.a("DELETE", f"/api/v1/tokens/{doc['id']}")
    assert r.status == 200 and r.json() == {"revoked": doc["id"]}, r
    # at once, not after a cache refresh
    for style in ("bearer", "x-api-key"):
        assert_unauthorized(Keyed(reg.srv, tok, style)("GET", "/api/v1/whoami"))
        assert_unauthorized(Keyed(reg.srv, tok, style)("GET", "/api/v1/meters"))
    assert_error(reg.a("DELETE", f"/api/v1/tokens/{doc['id']}"), 404, "unknown_token")
    assert_error(reg.a("DELETE", "/api/v1/tokens/0123456789ab"), 404, "unknown_token")
    # A device key's id is not a token id.
    dev = reg.register("m1")
    assert_error(reg.a("DELETE", f"/api/v1/tokens/{key_id(dev)}"), 404, "unknown_token")
    assert reg.post(dev, reading("m1", ts=BASE_TS)).status == 201
    assert_error(reg.a("GET", f"/api/v1/tokens/{doc['id']}"), 405, "method_not_allowed")


def test_last_admin_token_cannot_be_revoked(reg):
    admin_id = key_id(reg.admin)
    read = reg.a.json("POST", "/api/v1/tokens", {"name": "r", "scope": "read"}, 201)
    r = reg.a("DELETE", f"/api/v1/tokens/{admin_id}")
    assert_error(r, 409, "last_admin_token")
    assert reg.a.get("/api/v1/whoami")["id"] == admin_id
    second = reg.a.json("POST", "/api/v1/tokens", {"name": "a2", "scope": "admin"}, 201)
    a2 = Keyed(reg.srv, second["token"])
    r = a2("DELETE", f"/api/v1/tokens/{admin_id}")
    assert r.status == 200 and r.json() == {"revoked": admin_id}, r
    assert_unauthorized(reg.a("GET", "/api/v1/whoami"))
    # Now the second is the last one (read tokens do not count), also for itself.
    r = a2("DELETE", f"/api/v1/tokens/{second['id']}")
    assert_error(r, 409, "last_admin_token")
    assert a2.get("/api/v1/whoami")["scope"] == "admin"
    assert a2.json("DELETE", f"/api/v1/tokens/{read['id']}") == {"revoked": read["id"]}
    active = [t for t in a2.get("/api/v1/tokens")["tokens"] if t["revoked_at"] is None]
    assert [t["id"] for t in active] == [second["id"]], active


def test_concurrent_revocations_leave_an_admin_token(reg):
    """Two admins revoking each other at the same moment: one must win and
    the other be refused — 409 last_admin_token, or 401 when the winner's
    revocation of its key landed first — never both, which would leave the
    database without any admin token."""
    srv = reg.srv
    cur = reg.admin
    for trial in range(30):
        other = Keyed(srv, cur).json("POST", "/api/v1/tokens",
                                     {"name": f"a{trial}", "scope": "admin"}, 201)["token"]
        barrier = threading.Barrier(2)
        res = {}

        def revoke(actor, victim, slot):
            barrier.wait(5)
            res[slot] = Keyed(srv, actor)("DELETE", f"/api/v1/tokens/{key_id(victim)}")

        threads = [threading.Thread(target=revoke, args=(other, cur, 0)),
                   threading.Thread(target=revoke, args=(cur, other, 1))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        statuses = sorted(r.status for r in res.values())
        survivors = [k for k in (cur, other)
                     if Keyed(srv, k)("GET", "/api/v1/whoami").status == 200]
        assert survivors, (f"trial {trial}: both admin tokens revoked ({statuses}); the "
                           f"database has no active admin token left")
        assert statuses in ([200, 409], [200, 401]), (trial, [r for r in res.values()])
        cur = survivors[0]
        assert len(survivors) == 1


# ---------------------------------------------------------------------------
# The CLI beside a running server

def poll(fn, timeout):
    """Calls fn() until it returns true; -> seconds it took (fails on timeout)."""
    t0 = time.monotonic()
    while True:
        if fn():
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"not in effect within {timeout}s")
        time.sleep(0.05)


def test_cli_token_create_and_revoke_on_a_running_server(reg):
    db = reg.srv.db_path
    tok = cli_token(db, "read", name="from-cli")
    took = poll(lambda: Keyed(reg.srv, tok)("GET", "/api/v1/whoami").status == 200, CLI_DELAY)
    assert Keyed(reg.srv, tok).get("/api/v1/whoami") == {
        "kind": "token", "id": key_id(tok), "name": "from-cli", "scope": "read"}, took
    assert key_id(tok) in [t["id"] for t in reg.tokens()]
    adm = cli_token(db, "admin", name="cli-admin")
    poll(lambda: Keyed(reg.srv, adm)("GET", "/api/v1/tokens").status == 200, CLI_DELAY)
    p = meterhub_cli(db, "token", "revoke", key_id(tok))
    assert "mht_" not in p.stdout + p.stderr
    poll(lambda: Keyed(reg.srv, tok)("GET", "/api/v1/whoami").status == 401, CLI_DELAY)
    assert_unauthorized(Keyed(reg.srv, tok)("GET", "/api/v1/meters"))


def test_cli_meter_add_and_rotate_on_a_running_server(reg):
    db = reg.srv.db_path
    key = cli_meter_add(db, "cli-m", "--name", "From CLI", "--location", "shed",
                        "--interval", "15")
    body = reading("cli-m", ts=BASE_TS)
    poll(lambda: reg.post(key, body).status == 201, CLI_DELAY)
    m = reg.a.get("/api/v1/meters/cli-m")
    assert (m["name"], m["location"], m["interval_s"]) == ("From CLI", "shed", 15), m
    assert reg.a.get("/api/v1/meters/cli-m/readings")["count"] == 1
    assert Keyed(reg.srv, key).get("/api/v1/whoami")["meter_id"] == "cli-m"
    p = meterhub_cli(db, "meter", "rotate-key", "cli-m")
    new = p.stdout.strip()
    assert DEVICE_KEY_RE.fullmatch(new) and new != key, p
    poll(lambda: Keyed(reg.srv, key)("GET", "/api/v1/whoami").status == 401, CLI_DELAY)
    assert_unauthorized(reg.post(key, reading("cli-m", ts=BASE_TS + 1000)))
    assert reg.post(new, reading("cli-m", ts=BASE_TS + 2000)).status == 201
    assert [x["ts"] for x in reg.a.get("/api/v1/meters/cli-m/readings")["readings"]] == [
        iso(BASE_TS), iso(BASE_TS + 2000)]


def test_cli_errors_print_no_key(reg):
    db = reg.srv.db_path
    reg.register("taken")
    for args in (["meter", "add", "taken"], ["meter", "add", "a b"], ["meter", "add", "a" * 65],
                 ["meter", "add", "x';DROP TABLE smart_meter;--"],
                 ["meter", "add", "ok", "--interval", "0"],
                 ["meter", "rotate-key", "ghost"], ["token", "create", "--name", "x",
                                                    "--scope", "root"],
                 ["token", "revoke", "0123456789ab"]):
        p = meterhub_cli(db, *args, check=False)
        assert p.returncode != 0, (args, p)
        assert p.stdout.strip() == "" or not (TOKEN_RE.search(p.stdout) or
                                              DEVICE_KEY_RE.search(p.stdout)), (args, p)
        assert p.stderr.strip(), (args, p)
    assert reg.meter_ids() == ["taken"]
    assert len(reg.tokens()) == 1


def test_cli_lists(reg):
    db = reg.srv.db_path
    k = reg.register("listed", name="Listed Meter")
    reg.post(k, reading("listed", ts=BASE_TS))
    cli_meter_add(db, "cli-m", "--name", "Second")
    read = cli_token(db, "read", name="grafana")
    gone = reg.a.json("POST", "/api/v1/tokens", {"name": "gone", "scope": "read"}, 201)
    reg.a.json("DELETE", f"/api/v1/tokens/{gone['id']}")

    p = meterhub_cli(db, "meter", "list")
    out = p.stdout.splitlines()
    assert re.match(r"METER\s+KEY\s+LAST SEEN\s+NAME", out[0]), p.stdout
    rows = {ln.split()[0]: ln for ln in out[1:] if ln.strip()}
    assert set(rows) == {"listed", "cli-m"}, p.stdout
    assert re.match(r"listed\s+yes\s+\d{4}-\d\d-\d\dT\S+\s+Listed Meter$", rows["listed"]), rows
    assert re.match(r"cli-m\s+yes\s+never\s+Second$", rows["cli-m"]), rows
    assert "mhd_" not in p.stdout + p.stderr

    p = meterhub_cli(db, "token", "list")
    out = p.stdout.splitlines()
    assert re.match(r"ID\s+SCOPE\s+CREATED\s+REVOKED\s+NAME", out[0]), p.stdout
    rows = {ln.split()[0]: ln for ln in out[1:] if ln.strip()}
    assert set(rows) == {key_id(reg.admin), key_id(read), gone["id"]}, p.stdout
    assert re.match(r"\S+\s+admin\s+\S+\s+-\s+initial admin$", rows[key_id(reg.admin)])
    assert re.match(r"\S+\s+read\s+\S+\s+-\s+grafana$", rows[key_id(read)])
    assert re.match(r"\S+\s+read\s+\S+\s+\d{4}-\S+\s+gone$", rows[gone["id"]])
    text = p.stdout + p.stderr
    assert "mht_" not in text
    for secret in (key_secret(reg.admin), key_secret(read)):
        assert secret not in text


def test_start_names_how_many_meters_have_no_device_key(server_factory, tmp_path):
    """A database from before keys (or auto-registered meters): the server
    says at start how many meters cannot write, and how to give them keys."""
    import sqlite3

    db = tmp_path / "old" / "m.db"
    cli_meter_add(db, "keyed")
    with sqlite3.connect(db) as c:
        c.execute("INSERT INTO smart_meter(access_id, created_at) VALUES('old-1', 0), ('old-2', 0)")
    srv = start_secure(server_factory, db=db)
    lines = [ln for ln in srv.run_lines() if "have no device key" in ln]
    assert len(lines) == 1 and lines[0].split("warning ", 1)[1].startswith("2 meters"), \
        srv.run_log()
    assert "rotate-key" in lines[0]
    # Serving (and its signal handlers installed) before the teardown's SIGTERM.
    srv.assert_healthy()
