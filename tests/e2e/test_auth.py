"""Access control end to end (docs/api.md "Authentication", "Rate limits",
"CORS"): which key may do what on every route, how keys are presented
(Authorization: Bearer, X-API-Key, ?token= and the "bearer.<key>"
subprotocol on WebSockets), that a refused request stores and streams
nothing, the lab flags --public-read and --auto-register, rate limits, CORS,
security headers, and that keys never reach the log.

Every server here runs with the defaults a user gets (secure=True), not the
harness's lab mode. The route matrix shares one module-scoped server (with
--ip-rate 0 only so that its few hundred requests in a second are not
throttled); tests that need their own flags start their own server.
"""
import asyncio
import base64
import http.client as httplib
import json
import os
import re
import signal
import subprocess
import time

import pytest
import websockets

from conftest import (BASE_TS, DEVICE_KEY_RE, HOST, LISTEN_RE, LOG_LINE_RE, TOKEN_RE,
                      HandshakeWebSocket, HttpClient, Keyed, Response, banner_token, bearer,
                      cli_meter_add, cli_token, http, iso, key_id, key_secret, meterhub_bin,
                      module_server, reading, run_async, start_secure, ws_expect_revoked_close,
                      ws_next, ws_open, ws_recv_json, ws_watch)

A, B, VICTIM = "kitchen", "garage", "victim"
WWW_AUTH = 'Bearer realm="meterhub"'
TARIFF = {"currency": "EUR", "price_per_kwh": 0.25}


def random_secret():
    return base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()


def unknown_key(prefix="mht"):
    """Well-formed, but no such key."""
    return f"{prefix}_{os.urandom(6).hex()}_{random_secret()}"


def error_of(r):
    try:
        return r.error_code()
    except AssertionError:
        return None


def is_unauthorized(r):
    return (r.status == 401 and error_of(r) == "unauthorized"
            and (r.header("WWW-Authenticate") or "").startswith(WWW_AUTH))


def is_forbidden(r):
    return r.status == 403 and error_of(r) == "forbidden"


_ts_counter = [0]


def fresh_ts():
    """A reading time no other request of this module used."""
    _ts_counter[0] += 1
    return BASE_TS + 1000 * _ts_counter[0]


# ---------------------------------------------------------------------------
# The shared server: an admin token (from the first-start banner), a read
# token, a revoked token, device keys of A, B and a victim meter whose state
# must survive every refused admin request.

class Ctx:
    def __init__(self, srv, admin):
        self.srv = srv
        self.admin = admin
        self.as_admin = Keyed(srv, admin)

    def register(self, meter, **fields):
        doc = self.as_admin.json("POST", "/api/v1/meters", {"meter_id": meter, **fields}, 201)
        return doc["device_key"]

    def new_token(self, scope, name):
        return self.as_admin.json("POST", "/api/v1/tokens", {"name": name, "scope": scope},
                                  201)["token"]

    def stored(self, meter, ts):
        """How many readings `meter` has at exactly `ts` (0 for an unknown meter)."""
        r = self.as_admin("GET", f"/api/v1/meters/{meter}/readings?from={ts}&to={ts + 1}")
        if r.status == 404 and error_of(r) == "unknown_meter":
            return 0
        assert r.status == 200, r
        return r.json()["count"]

    def meter_ids(self):
        return [m["meter_id"] for m in self.as_admin.get("/api/v1/meters")["meters"]]


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    db = tmp_path_factory.mktemp("auth") / "m.db"
    with module_server(db, args=["--ip-rate", "0"]) as srv:
        admin = banner_token(srv)
        assert admin, f"no admin token at first start:\n{srv.run_log()}"
        c = Ctx(srv, admin)
        c.read = c.new_token("read", "reader")
        c.revoked = c.new_token("read", "gone")
        c.as_admin.json("DELETE", f"/api/v1/tokens/{key_id(c.revoked)}")
        c.dev_a = c.register(A)
        c.dev_b = c.register(B)
        c.dev_victim = c.register(VICTIM, name="Victim")
        r = Keyed(srv, c.dev_a)("POST", "/api/v1/readings", reading(A, ts=BASE_TS))
        assert r.status == 201, r
        yield c


# ---------------------------------------------------------------------------
# The route matrix

# (method, path, body, need): need is "read", "admin", "any" (whoami) or
# "write" (readings). Destructive routes aim at VICTIM; bodies are valid, so
# a request that got through would show (checked by assert_untouched).
ROUTES = [
    ("GET", "/api/v1/meters", None, "read"),
    ("GET", f"/api/v1/meters/{A}", None, "read"),
    ("GET", f"/api/v1/meters/{A}/latest", None, "read"),
    ("GET", f"/api/v1/meters/{A}/readings", None, "read"),
    ("GET", f"/api/v1/meters/{A}/series", None, "read"),
    ("GET", f"/api/v1/meters/{A}/energy", None, "read"),
    ("GET", "/api/v1/energy/summary", None, "read"),
    ("GET", f"/api/v1/meters/{A}/tariff", None, "read"),
    ("GET", "/api/v1/tariff", None, "read"),
    ("PUT", f"/api/v1/meters/{VICTIM}/tariff", TARIFF, "admin"),
    ("DELETE", f"/api/v1/meters/{VICTIM}/tariff", None, "admin"),
    ("PUT", "/api/v1/tariff", TARIFF, "admin"),
    ("DELETE", "/api/v1/tariff", None, "admin"),
    ("POST", "/api/v1/meters", {"meter_id": "intruder"}, "admin"),
    ("PATCH", f"/api/v1/meters/{VICTIM}", {"name": "pwned"}, "admin"),
    ("DELETE", f"/api/v1/meters/{VICTIM}?confirm={VICTIM}", None, "admin"),
    ("POST", f"/api/v1/meters/{VICTIM}/rotate-key", None, "admin"),
    ("GET", "/api/v1/tokens", None, "admin"),
    ("POST", "/api/v1/tokens", {"name": "intruder", "scope": "admin"}, "admin"),
    ("DELETE", "/api/v1/tokens/000000000000", None, "admin"),
    ("GET", "/api/v1/whoami", None, "any"),
    ("POST", "/api/v1/readings", "reading", "write"),
]
WS_PATHS = ["/ws", f"/ws/{A}"]

# What a read token gets on the routes it may use (the module's state: A has
# one reading, no tariff anywhere).
READ_OK = {
    "/api/v1/meters": 200, f"/api/v1/meters/{A}": 200, f"/api/v1/meters/{A}/latest": 200,
    f"/api/v1/meters/{A}/readings": 200, f"/api/v1/meters/{A}/series": 200,
    f"/api/v1/meters/{A}/energy": 200, "/api/v1/energy/summary": 200,
    f"/api/v1/meters/{A}/tariff": 404, "/api/v1/tariff": 404, "/api/v1/whoami": 200,
}


def run_routes(ctx, client, expect, reading_meter=A):
    """Sends every route with `client`; expect(need, path) -> "401", "403" or
    an int status. Returns the mismatches and the reading times posted."""
    problems, posted = [], []
    for method, path, body, need in ROUTES:
        if body == "reading":
            t = fresh_ts()
            posted.append(t)
            body = reading(reading_meter, ts=t)
        r = client(method, path, body)
        want = expect(need, path)
        ok = (is_unauthorized(r) if want == "401" else
              is_forbidden(r) if want == "403" else r.status == want)
        if not ok:
            problems.append(f"{method} {path}: want {want}, got {r.status} "
                            f"{r.header('WWW-Authenticate')!r} {r.body[:200]!r}")
        if client.key and len(client.key) > 8 and client.key.encode() in r.raw_head + r.body:
            problems.append(f"{method} {path}: the answer echoes the key")
    return problems, posted


def ws_attempts(ctx, key, path):
    """Upgrade requests presenting `key` every way a WebSocket client can:
    -> [(how, Response)]."""
    out = []
    port = ctx.srv.port
    sep = "&" if "?" in path else "?"
    attempts = [
        ("Authorization", path, {"Authorization": f"Bearer {key}"}),
        ("X-API-Key", path, {"X-API-Key": key}),
        ("?token=", f"{path}{sep}token={key}", {}),
        ("subprotocol", path, {"Sec-WebSocket-Protocol": f"meterhub, bearer.{key}"}),
    ]
    if key is None:
        attempts = [("no key", path, {}), ("subprotocol meterhub only", path,
                                          {"Sec-WebSocket-Protocol": "meterhub"})]
    for how, p, headers in attempts:
        with HandshakeWebSocket(port, p, headers) as ws:
            out.append((how, ws.response))
            if key and len(key) > 8:
                assert key.encode() not in ws.response.raw_head + ws.response.body, \
                    (how, "the answer echoes the key", ws.response)
    return out


def assert_untouched(ctx):
    """Nothing a refused admin request would have changed has changed."""
    assert "intruder" not in ctx.meter_ids()
    victim = ctx.as_admin.get(f"/api/v1/meters/{VICTIM}")
    assert victim["name"] == "Victim", victim
    # not rotated, not deleted: the victim's key is still its key
    who = Keyed(ctx.srv, ctx.dev_victim).get("/api/v1/whoami")
    assert who == {"kind": "device", "id": key_id(ctx.dev_victim), "meter_id": VICTIM}, who
    ctx.as_admin.json("GET", f"/api/v1/meters/{VICTIM}/tariff", expect=404)
    ctx.as_admin.json("GET", "/api/v1/tariff", expect=404)
    names = [t["name"] for t in ctx.as_admin.get("/api/v1/tokens")["tokens"]]
    assert "intruder" not in names, names


def assert_refused_everywhere(ctx, key, style):
    client = Keyed(ctx.srv, key, style)
    problems, posted = run_routes(ctx, client, lambda need, path: "401")
    for path in WS_PATHS:
        for how, r in ws_attempts(ctx, key, path):
            if not is_unauthorized(r):
                problems.append(f"WS {path} via {how}: want 401, got {r.status} "
                                f"{r.body[:200]!r}")
    assert not problems, "\n".join(problems)
    for t in posted:
        assert ctx.stored(A, t) == 0
    assert_untouched(ctx)


def test_no_key_is_401_with_www_authenticate_everywhere(ctx):
    assert_refused_everywhere(ctx, None, "none")


MALFORMED = {
    "word": "secret",
    "prefix only": "mht_",
    "short": "mht_0123456789ab_abc",
    "truncated": None,  # the admin token without its last character
    "one too long": None,  # the admin token plus a character
    "bad id": "mht_0123456789xz_" + "A" * 43,
    "bad secret char": "mht_0123456789ab_" + "A" * 42 + "!",
    "unknown prefix": "mhx_0123456789ab_" + "A" * 43,
}


@pytest.mark.parametrize("style", ["bearer", "x-api-key"])
@pytest.mark.parametrize("which", sorted(MALFORMED))
def test_malformed_key_is_401(ctx, which, style):
    key = MALFORMED[which]
    if which == "truncated":
        key = ctx.admin[:-1]
    elif which == "one too long":
        key = ctx.admin + "A"
    client = Keyed(ctx.srv, key, style)
    for method, path in [("GET", "/api/v1/meters"), ("GET", "/api/v1/whoami"),
                         ("GET", "/api/v1/tokens")]:
        r = client(method, path)
        assert is_unauthorized(r), (method, path, r)
    t = fresh_ts()
    r = client("POST", "/api/v1/readings", reading(A, ts=t))
    assert is_unauthorized(r), r
    assert ctx.stored(A, t) == 0


@pytest.mark.parametrize("style", ["bearer", "x-api-key"])
def test_malformed_key_is_401_on_every_route(ctx, style):
    assert_refused_everywhere(ctx, "mht_not-a-key", style)


@pytest.mark.parametrize("style", ["bearer", "x-api-key"])
@pytest.mark.parametrize("prefix", ["mht", "mhd"])
def test_unknown_key_is_401_on_every_route(ctx, style, prefix):
    assert_refused_everywhere(ctx, unknown_key(prefix), style)


@pytest.mark.parametrize("which", ["admin token", "device key"])
def test_known_id_with_a_wrong_secret_or_kind_is_401(ctx, which):
    real = ctx.admin if which == "admin token" else ctx.dev_a
    prefix = real[:4]
    other = "mhd_" if prefix == "mht_" else "mht_"
    for key in (f"{prefix}{key_id(real)}_{random_secret()}",       # wrong secret
                f"{other}{key_id(real)}_{key_secret(real)}"):      # right secret, wrong kind
        for style in ("bearer", "x-api-key"):
            client = Keyed(ctx.srv, key, style)
            for path in ("/api/v1/whoami", "/api/v1/meters", "/api/v1/tokens"):
                r = client("GET", path)
                assert is_unauthorized(r), (key, path, r)
            t = fresh_ts()
            assert is_unauthorized(client("POST", "/api/v1/readings", reading(A, ts=t)))
            assert ctx.stored(A, t) == 0


@pytest.mark.parametrize("style", ["bearer", "x-api-key"])
def test_revoked_token_is_401_on_every_route(ctx, style):
    assert_refused_everywhere(ctx, ctx.revoked, style)


@pytest.mark.parametrize("style", ["bearer", "x-api-key"])
def test_device_key_is_403_on_read_and_admin_routes(ctx, style):
    client = Keyed(ctx.srv, ctx.dev_b, style)

    def expect(need, path):
        return {"read": "403", "admin": "403", "any": 200, "write": "403"}[need]

    # The readings route is posted with a reading of A: the other meter.
    problems, posted = run_routes(ctx, client, expect, reading_meter=A)
    for path in WS_PATHS:
        for how, r in ws_attempts(ctx, ctx.dev_b, path):
            if not is_forbidden(r):
                problems.append(f"WS {path} via {how}: want 403, got {r.status} {r.body[:200]!r}")
    assert not problems, "\n".join(problems)
    for t in posted:
        assert ctx.stored(A, t) == 0 and ctx.stored(B, t) == 0
    assert_untouched(ctx)
    assert client("GET", "/api/v1/whoami").json() == {"kind": "device", "id": key_id(ctx.dev_b),
                                                      "meter_id": B}


@pytest.mark.parametrize("style", ["bearer", "x-api-key"])
def test_read_token_reads_but_is_403_on_admin_routes_and_readings(ctx, style):
    client = Keyed(ctx.srv, ctx.read, style)

    def expect(need, path):
        if need in ("admin", "write"):
            return "403"
        return READ_OK[path]

    problems, posted = run_routes(ctx, client, expect)
    for path in WS_PATHS:
        for how, r in ws_attempts(ctx, ctx.read, path):
            if r.status != 101:
                problems.append(f"WS {path} via {how}: want 101, got {r.status} {r.body[:200]!r}")
    assert not problems, "\n".join(problems)
    for t in posted:
        assert ctx.stored(A, t) == 0
    assert_untouched(ctx)
    assert client("GET", "/api/v1/whoami").json() == {
        "kind": "token", "id": key_id(ctx.read), "name": "reader", "scope": "read"}


def test_admin_token_reads_everything(ctx):
    problems = []
    for method, path, body, need in ROUTES:
        if method != "GET":
            continue
        r = ctx.as_admin(method, path)
        want = 200 if need == "admin" else READ_OK[path]
        if r.status != want:
            problems.append(f"{method} {path}: want {want}, got {r.status} {r.body[:200]!r}")
    assert not problems, "\n".join(problems)
    assert ctx.as_admin.get("/api/v1/whoami") == {
        "kind": "token", "id": key_id(ctx.admin), "name": "initial admin", "scope": "admin"}


@pytest.mark.parametrize("path,ctype", [("/healthz", "application/json"),
                                        ("/readyz", "application/json"),
                                        ("/", "text/html"), ("/docs", "text/html"),
                                        ("/openapi.json", "application/json")])
def test_health_and_static_files_are_open(ctx, path, ctype):
    r = Keyed(ctx.srv)("GET", path)
    assert r.status == 200, r
    assert r.header("Content-Type", "").startswith(ctype), r
    assert r.header("WWW-Authenticate") is None


# ---------------------------------------------------------------------------
# Refused writes store and stream nothing

async def assert_nothing_streamed(ws, seconds=0.5):
    """No reading or meter event arrives for `seconds` (status events of
    other meters' online state would be harmless, but none are expected)."""
    deadline = time.monotonic() + seconds
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        try:
            msg = await asyncio.wait_for(ws.recv(), remaining)
        except asyncio.TimeoutError:
            return
        raise AssertionError(f"a refused request streamed {msg!r}")


def test_refused_readings_store_and_stream_nothing(ctx):
    """Every kind of refused POST /api/v1/readings, with a /ws watcher and a
    /ws/{id} watcher on both meters: nothing stored, nothing sent; then a
    permitted post arrives (the watchers work)."""
    m1, m2 = "refuse-1", "refuse-2"
    k1 = ctx.register(m1)
    k2 = ctx.register(m2)
    srv = ctx.srv

    def post(key, body, style="bearer"):
        return Keyed(srv, key, style)("POST", "/api/v1/readings", body)

    async def scenario():
        multi = await ws_watch(srv, ctx.admin, [m1, m2])
        single = await ws_open(srv, f"/ws/{m1}?token={ctx.read}")
        pong = await single.ping()
        await asyncio.wait_for(pong, 5)
        try:
            times = []
            cases = []
            for name, key, style, want in [
                    ("no key", None, "none", 401), ("malformed", "mhd_x", "bearer", 401),
                    ("unknown", unknown_key("mhd"), "bearer", 401),
                    ("unknown X-API-Key", unknown_key("mhd"), "x-api-key", 401),
                    ("revoked token", ctx.revoked, "bearer", 401),
                    ("read token", ctx.read, "bearer", 403),
                    ("read token X-API-Key", ctx.read, "x-api-key", 403),
                    ("other meter's key", k2, "bearer", 403),
                    ("other meter's key X-API-Key", k2, "x-api-key", 403)]:
                t = fresh_ts()
                times.append(t)
                cases.append((name, want, await asyncio.to_thread(
                    post, key, [reading(m1, ts=t), reading(m1, ts=t + 1)], style)))
            # A batch mixing both meters, with either meter's key: all or nothing.
            for key in (k1, k2):
                t = fresh_ts()
                times.append(t)
                cases.append(("mixed batch", 403, await asyncio.to_thread(
                    post, key, [reading(m1, ts=t), reading(m2, ts=t), reading(m1, ts=t + 1)])))
            # The same with the mixed meter first and in the {"readings": [...]} form.
            t = fresh_ts()
            times.append(t)
            cases.append(("wrapped mixed batch", 403, await asyncio.to_thread(
                post, k1, {"readings": [reading(m2, ts=t), reading(m1, ts=t)]})))
            for name, want, r in cases:
                if want == 401:
                    assert is_unauthorized(r), (name, r)
                else:
                    assert is_forbidden(r), (name, r)
            await assert_nothing_streamed(multi, 0.5)
            await assert_nothing_streamed(single, 0.1)
            for t in times:
                for m in (m1, m2):
                    for dt in (0, 1):
                        assert ctx.stored(m, t + dt) == 0, (m, t + dt)
            # The watchers work: a permitted reading arrives on both.
            t = fresh_ts()
            r = await asyncio.to_thread(post, k1, reading(m1, ts=t))
            assert r.status == 201, r
            got = await ws_next(multi)
            assert (got["meter_id"], got["ts"]) == (m1, iso(t)), got
            got = await ws_recv_json(single)
            assert (got["meter_id"], got["ts"]) == (m1, iso(t)), got
        finally:
            await multi.close()
            await single.close()

    run_async(scenario())
    for m in (m1, m2):
        doc = ctx.as_admin.get(f"/api/v1/meters/{m}/readings")
        assert doc["count"] == (1 if m == m1 else 0), doc


def test_device_key_of_other_meter_names_the_reading(ctx):
    t = fresh_ts()
    r = Keyed(ctx.srv, ctx.dev_a)("POST", "/api/v1/readings",
                                 [reading(A, ts=t), reading(B, ts=t)])
    assert is_forbidden(r), r
    err = r.json()["error"]
    assert err.get("index") == 1 and err.get("field") == "meter_id", err
    assert ctx.stored(A, t) == 0 and ctx.stored(B, t) == 0


@pytest.mark.parametrize("headers", [
    lambda k: {"Authorization": f"Bearer {k}"},
    lambda k: {"Authorization": f"bearer {k}"},
    lambda k: {"Authorization": f"BEARER {k}"},
    lambda k: {"Authorization": f"Bearer  {k} "},
    lambda k: {"X-API-Key": k},
    lambda k: {"x-api-key": k},
], ids=["Bearer", "bearer", "BEARER", "extra spaces", "X-API-Key", "x-api-key"])
def test_device_key_writes_its_meter_in_every_header_form(ctx, headers):
    t = fresh_ts()
    r = ctx.srv.http("POST", "/api/v1/readings", reading(A, ts=t), headers=headers(ctx.dev_a))
    assert r.status == 201 and r.json() == {"accepted": 1, "duplicates": 0}, r
    assert ctx.stored(A, t) == 1
    r = ctx.srv.http("GET", "/api/v1/whoami", headers=headers(ctx.dev_a))
    assert r.status == 200 and r.json()["meter_id"] == A, r


def test_admin_token_writes_registered_meters_only(ctx):
    t = fresh_ts()
    r = ctx.as_admin("POST", "/api/v1/readings", [reading(A, ts=t), reading(B, ts=t)])
    assert r.status == 201 and r.json() == {"accepted": 2, "duplicates": 0}, r
    assert ctx.stored(A, t) == 1 and ctx.stored(B, t) == 1
    # A meter nobody registered is not created by an admin's reading.
    t = fresh_ts()
    r = ctx.as_admin("POST", "/api/v1/readings", [reading(A, ts=t), reading("nobody", ts=t)])
    assert r.status == 404 and error_of(r) == "unknown_meter", r
    assert ctx.stored(A, t) == 0
    assert "nobody" not in ctx.meter_ids()


# ---------------------------------------------------------------------------
# WebSocket authentication

def test_ws_token_in_query_streams(ctx):
    k = ctx.register("ws-q")

    async def scenario():
        ws = await ws_open(ctx.srv, f"/ws/ws-q?token={ctx.read}")
        multi = await ws_open(ctx.srv, f"/ws?token={ctx.read}")
        try:
            await multi.send(json.dumps({"subscribe": ["ws-q"]}))
            assert (await ws_recv_json(multi))["type"] == "snapshot"
            pong = await ws.ping()
            await asyncio.wait_for(pong, 5)
            t = fresh_ts()
            r = await asyncio.to_thread(Keyed(ctx.srv, k), "POST", "/api/v1/readings",
                                        reading("ws-q", ts=t))
            assert r.status == 201, r
            assert (await ws_recv_json(ws))["ts"] == iso(t)
            assert (await ws_next(multi))["ts"] == iso(t)
        finally:
            await ws.close()
            await multi.close()

    run_async(scenario())


@pytest.mark.parametrize("path", WS_PATHS)
@pytest.mark.parametrize("protos", [["meterhub", "bearer.{k}"], ["bearer.{k}", "meterhub"]],
                         ids=["meterhub-first", "bearer-first"])
def test_ws_subprotocol_key_answers_exactly_meterhub(ctx, path, protos):
    offered = ", ".join(p.format(k=ctx.read) for p in protos)
    with HandshakeWebSocket(ctx.srv.port, path, {"Sec-WebSocket-Protocol": offered}) as ws:
        assert ws.upgraded, ws.response
        assert ws.response.header("Sec-WebSocket-Protocol") == "meterhub", ws.response.raw_head
        assert key_secret(ctx.read).encode() not in ws.response.raw_head
        assert b"bearer." not in ws.response.raw_head.lower()
        answers = [v for k, v in ws.response.header_list if k.lower() == "sec-websocket-protocol"]
        assert answers == ["meterhub"], ws.response.raw_head
    # The same through a real client library, which checks the answer itself.

    async def scenario():
        ws = await ws_open(ctx.srv, path, subprotocols=[p.format(k=ctx.read) for p in protos])
        try:
            assert ws.subprotocol == "meterhub"
            if path == "/ws":
                await ws.send(json.dumps({"subscribe": [A]}))
                assert (await ws_recv_json(ws))["type"] == "snapshot"
            else:
                # /ws/{A} sends A's latest reading at once
                assert (await ws_recv_json(ws))["meter_id"] == A
        finally:
            await ws.close()

    run_async(scenario())


def test_ws_of_a_revoked_token_is_closed_before_the_next_message(ctx):
    """A socket opened with a token that is then revoked gets no further
    reading: it is closed with 1008 (policy) instead."""
    k = ctx.register("ws-rev")
    made = ctx.as_admin("POST", "/api/v1/tokens", {"name": "short-lived", "scope": "read"})
    assert made.status == 201, made
    tok = made.json()["token"]

    async def scenario():
        single = await ws_open(ctx.srv, f"/ws/ws-rev?token={tok}")
        multi = await ws_open(ctx.srv, "/ws", subprotocols=["meterhub", f"bearer.{tok}"])
        try:
            await multi.send(json.dumps({"subscribe": ["ws-rev"]}))
            assert (await ws_recv_json(multi))["type"] == "snapshot"
            t = fresh_ts()
            r = await asyncio.to_thread(Keyed(ctx.srv, k), "POST", "/api/v1/readings",
                                        reading("ws-rev", ts=t))
            assert r.status == 201, r
            assert (await ws_recv_json(single))["ts"] == iso(t)
            assert (await ws_next(multi))["ts"] == iso(t)
            r = await asyncio.to_thread(ctx.as_admin, "DELETE",
                                        f"/api/v1/tokens/{made.json()['id']}")
            assert r.status == 200, r
            r = await asyncio.to_thread(Keyed(ctx.srv, k), "POST", "/api/v1/readings",
                                        reading("ws-rev", ts=fresh_ts()))
            assert r.status == 201, r
            for ws in (single, multi):
                await ws_expect_revoked_close(ws)
        finally:
            await single.close()
            await multi.close()

    run_async(scenario())


def test_ws_meterhub_subprotocol_with_header_key(ctx):
    headers = {"Sec-WebSocket-Protocol": "meterhub", "Authorization": f"Bearer {ctx.read}"}
    with HandshakeWebSocket(ctx.srv.port, "/ws", headers) as ws:
        assert ws.upgraded, ws.response
        assert ws.response.header("Sec-WebSocket-Protocol") == "meterhub"
    # No subprotocol offered: none answered.
    with HandshakeWebSocket(ctx.srv.port, "/ws", bearer(ctx.read)) as ws:
        assert ws.upgraded, ws.response
        assert ws.response.header("Sec-WebSocket-Protocol") is None, ws.response.raw_head


@pytest.mark.parametrize("path", WS_PATHS)
def test_ws_wrong_or_device_key_is_refused_before_upgrade(ctx, path):
    """A refused upgrade is an HTTP answer (no 101, no frame) and sends none
    of the meter's readings; a library client sees the status."""
    for key, want in [(unknown_key(), 401), ("mht_typo", 401), (ctx.revoked, 401),
                      (ctx.dev_a, 403)]:
        for how, r in ws_attempts(ctx, key, path):
            assert r.status == want, (key[:8], how, r)
            assert (is_unauthorized(r) if want == 401 else is_forbidden(r)), (how, r)
            assert b"voltage" not in r.body, r

        async def lib():
            with pytest.raises(websockets.InvalidStatusCode) as e:
                ws = await ws_open(ctx.srv, f"{path}?token={key}")
                await ws.close()
            return e.value.status_code

        assert run_async(lib()) == want


# ---------------------------------------------------------------------------
# Lab flags

@pytest.fixture
def keyed_db(tmp_path):
    """A database prepared with the CLI: an admin token, a read token and a
    registered meter "m1" -> (db, admin, read, device key of m1)."""
    db = tmp_path / "lab" / "m.db"
    admin = cli_token(db, "admin")
    read = cli_token(db, "read")
    dev = cli_meter_add(db, "m1")
    return db, admin, read, dev


def test_public_read_opens_reads_but_not_writes(server_factory, keyed_db):
    db, admin, read, dev = keyed_db
    srv = start_secure(server_factory, ["--public-read"], db=db)
    assert banner_token(srv) is None  # an admin token existed already
    r = Keyed(srv, dev)("POST", "/api/v1/readings", reading("m1", ts=BASE_TS))
    assert r.status == 201, r
    anon = Keyed(srv)
    for path in ["/api/v1/meters", "/api/v1/meters/m1", "/api/v1/meters/m1/latest",
                 "/api/v1/meters/m1/readings", "/api/v1/meters/m1/series",
                 "/api/v1/meters/m1/energy", "/api/v1/energy/summary"]:
        r = anon("GET", path)
        assert r.status == 200, (path, r)
    for path in ["/api/v1/meters/m1/tariff", "/api/v1/tariff"]:
        r = anon("GET", path)
        assert r.status == 404 and error_of(r) == "no_tariff", (path, r)
    assert anon.get("/api/v1/whoami") == {"kind": "anonymous"}
    for path in ["/ws", "/ws/m1"]:
        with HandshakeWebSocket(srv.port, path) as ws:
            assert ws.upgraded, ws.response
    # Writes and administration still need keys.
    for method, path, body in [("POST", "/api/v1/readings", reading("m1", ts=BASE_TS + 1000)),
                               ("POST", "/api/v1/meters", {"meter_id": "new"}),
                               ("PATCH", "/api/v1/meters/m1", {"name": "x"}),
                               ("DELETE", "/api/v1/meters/m1?confirm=m1", None),
                               ("POST", "/api/v1/meters/m1/rotate-key", None),
                               ("PUT", "/api/v1/tariff", TARIFF),
                               ("PUT", "/api/v1/meters/m1/tariff", TARIFF),
                               ("GET", "/api/v1/tokens", None),
                               ("POST", "/api/v1/tokens", {"name": "x", "scope": "admin"})]:
        r = anon(method, path, body)
        assert is_unauthorized(r), (method, path, r)
    # A read token still cannot write.
    r = Keyed(srv, read)("POST", "/api/v1/readings", reading("m1", ts=BASE_TS + 2000))
    assert is_forbidden(r), r
    # A wrong key is refused, not treated as anonymous.
    for key in (unknown_key(), "mht_typo", admin[:-1]):
        for style in ("bearer", "x-api-key"):
            for path in ("/api/v1/meters", "/api/v1/meters/m1/readings", "/api/v1/whoami"):
                r = Keyed(srv, key, style)("GET", path)
                assert is_unauthorized(r), (key, style, path, r)
        for path in ("/ws", "/ws/m1"):
            with HandshakeWebSocket(srv.port, f"{path}?token={key}") as ws:
                assert is_unauthorized(ws.response), ws.response
            with HandshakeWebSocket(srv.port, path,
                                    {"Sec-WebSocket-Protocol": f"meterhub, bearer.{key}"}) as ws:
                assert is_unauthorized(ws.response), ws.response
    a = Keyed(srv, admin)
    assert a.get("/api/v1/meters/m1/readings")["count"] == 1
    assert [m["meter_id"] for m in a.get("/api/v1/meters")["meters"]] == ["m1"]
    assert a.get("/api/v1/whoami")["scope"] == "admin"


def test_auto_register_creates_keyless_meters_only(server_factory, keyed_db):
    db, admin, read, dev = keyed_db
    srv = start_secure(server_factory, ["--auto-register"], db=db)
    a = Keyed(srv, admin)
    anon = Keyed(srv)
    # Reading is not open: that is --public-read's business.
    assert is_unauthorized(anon("GET", "/api/v1/meters"))

    async def scenario():
        ws = await ws_watch(srv, admin, "*")
        try:
            # A meter with a key refuses keyless readings, alone or in a batch
            # with a new meter: nothing stored, nothing created, nothing sent.
            for body in ([reading("m1", ts=BASE_TS)],
                         [reading("fresh2", ts=BASE_TS), reading("m1", ts=BASE_TS)],
                         [reading("m1", ts=BASE_TS), reading("fresh2", ts=BASE_TS)]):
                r = await asyncio.to_thread(anon, "POST", "/api/v1/readings", body)
                assert is_unauthorized(r), r
            # A wrong key does not fall back to keyless writing.
            for key in (unknown_key("mhd"), "mhd_typo"):
                r = await asyncio.to_thread(Keyed(srv, key), "POST", "/api/v1/readings",
                                            reading("fresh3", ts=BASE_TS))
                assert is_unauthorized(r), r
            await assert_nothing_streamed(ws, 0.4)
            # A new meter: created by its first keyless reading.
            r = await asyncio.to_thread(anon, "POST", "/api/v1/readings",
                                        reading("fresh", ts=BASE_TS))
            assert r.status == 201 and r.json() == {"accepted": 1, "duplicates": 0}, r
            got = await ws_next(ws)
            assert got["meter_id"] == "fresh", got
        finally:
            await ws.close()

    run_async(scenario())
    assert [m["meter_id"] for m in a.get("/api/v1/meters")["meters"]] == ["fresh", "m1"]
    assert a.get("/api/v1/meters/m1/readings")["count"] == 0
    assert a.get("/api/v1/meters/fresh/readings")["count"] == 1
    # The key still works for its meter.
    r = Keyed(srv, dev)("POST", "/api/v1/readings", reading("m1", ts=BASE_TS))
    assert r.status == 201, r
    # Once the auto-registered meter has a key, it needs it.
    new = a.json("POST", "/api/v1/meters/fresh/rotate-key")["device_key"]
    r = anon("POST", "/api/v1/readings", reading("fresh", ts=BASE_TS + 1000))
    assert is_unauthorized(r), r
    assert a.get("/api/v1/meters/fresh/readings")["count"] == 1
    r = Keyed(srv, new)("POST", "/api/v1/readings", reading("fresh", ts=BASE_TS + 1000))
    assert r.status == 201, r


# ---------------------------------------------------------------------------
# Rate limits

def assert_rate_limited(r):
    assert r.status == 429 and error_of(r) == "rate_limited", r
    ra = r.header("Retry-After")
    assert ra is not None and re.fullmatch(r"[0-9]+", ra) and int(ra) >= 1, r
    return int(ra)


def burst_until_429(send, burst, rate, max_extra=50):
    """Sends until a 429: the first `burst` must pass; after them at most as
    many as the bucket refilled in the meantime. -> (passed, 429 response)."""
    t0 = time.monotonic()
    passed = 0
    while True:
        r = send(passed)
        if r.status == 429:
            break
        assert r.status == 201, (passed, r)
        passed += 1
        assert passed <= burst + int((time.monotonic() - t0) * rate) + 1, \
            f"{passed} requests passed a burst of {burst} at {rate}/s"
        assert passed < burst + max_extra
    assert passed >= burst, f"only {passed} of a burst of {burst} passed: {r}"
    return passed, r


def http_from(src_ip, port, method, path, body=None, headers=None):
    """One request from another loopback address (another client IP)."""
    headers = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    conn = httplib.HTTPConnection(HOST, port, timeout=10, source_address=(src_ip, 0))
    try:
        conn.request(method, path, body=data, headers=headers)
        r = conn.getresponse()
        payload = r.read()
        return Response(r.status, r.reason, "1.1", r.getheaders(), payload)
    finally:
        conn.close()


def test_ip_rate_limit(server_factory, tmp_path):
    db = tmp_path / "ip" / "m.db"
    admin = cli_token(db)
    dev = cli_meter_add(db, "m1")
    srv = start_secure(server_factory, ["--ip-rate", "1", "--ip-burst", "5",
                                        "--device-rate", "0"], db=db)
    hdr = bearer(dev)
    with HttpClient(srv.port) as c:
        def send(i):
            return c.request("POST", "/api/v1/readings", reading("m1", ts=BASE_TS + 1000 * i),
                             headers=hdr)

        passed, r = burst_until_429(send, 5, 1)
        limited_ts = BASE_TS + 1000 * passed
        wait = assert_rate_limited(r)
        # Every request counts, WebSocket upgrades included, and a client
        # cannot pick another address with forwarding headers. (Within these
        # few milliseconds the bucket refills by far less than one request.)
        answers = []
        with HandshakeWebSocket(srv.port, f"/ws?token={admin}") as ws:
            answers.append(ws.response)
        for h in ({"X-Forwarded-For": "10.1.2.3"}, {"X-Real-IP": "10.1.2.4"},
                  {"Forwarded": "for=10.1.2.5"}):
            answers.append(c.request("GET", "/api/v1/whoami", headers={**bearer(admin), **h}))
        for x in answers:
            wait = max(wait, assert_rate_limited(x))
        # Another client IP has its own bucket: it sees the refused reading
        # was not stored.
        a2 = {**bearer(admin)}
        r = http_from("127.0.0.2", srv.port, "GET", "/api/v1/meters/m1/readings", headers=a2)
        assert r.status == 200, r
        doc = r.json()
        assert doc["count"] == passed, doc
        assert iso(limited_ts) not in [x["ts"] for x in doc["readings"]]
        # Recovered after Retry-After: the refused reading goes through now.
        time.sleep(wait + 0.05)
        r = c.request("POST", "/api/v1/readings", reading("m1", ts=limited_ts), headers=hdr)
        assert r.status == 201 and r.json() == {"accepted": 1, "duplicates": 0}, r


def test_device_rate_limit_is_per_meter(server_factory, tmp_path):
    db = tmp_path / "dev" / "m.db"
    admin = cli_token(db)
    k1 = cli_meter_add(db, "m1")
    k2 = cli_meter_add(db, "m2")
    srv = start_secure(server_factory, ["--device-rate", "2", "--device-burst", "3",
                                        "--ip-rate", "0"], db=db)
    a = Keyed(srv, admin)

    async def scenario():
        ws = await ws_watch(srv, admin, ["m1"])
        try:
            with HttpClient(srv.port) as c:
                def send(i, key=k1, meter="m1"):
                    return c.request("POST", "/api/v1/readings",
                                     reading(meter, ts=BASE_TS + 1000 * i), headers=bearer(key))

                passed, r = await asyncio.to_thread(burst_until_429, send, 3, 2)
                wait = assert_rate_limited(r)
                limited_ts = BASE_TS + 1000 * passed
                # Another device is not limited by the first one's bucket.
                for i in range(3):
                    r = await asyncio.to_thread(send, i, k2, "m2")
                    assert r.status == 201, r
                got = [await ws_next(ws) for _ in range(passed)]
                assert [g["ts"] for g in got] == [iso(BASE_TS + 1000 * i) for i in range(passed)]
                await assert_nothing_streamed(ws, 0.2)
                doc = await asyncio.to_thread(a.get, "/api/v1/meters/m1/readings")
                assert doc["count"] == passed, doc
                await asyncio.sleep(wait + 0.05)
                r = await asyncio.to_thread(send, passed)
                assert r.status == 201 and r.json() == {"accepted": 1, "duplicates": 0}, r
                assert (await ws_next(ws))["ts"] == iso(limited_ts)
        finally:
            await ws.close()

    run_async(scenario())
    assert a.get("/api/v1/meters/m2/readings")["count"] == 3


# ---------------------------------------------------------------------------
# CORS

def preflight(srv, origin, path="/api/v1/readings", method="POST"):
    return srv.http("OPTIONS", path, headers={
        "Origin": origin, "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type"})


def test_cors_off_by_default(server_factory):
    srv = start_secure(server_factory)
    admin = banner_token(srv)
    for origin in ("https://a.example", "null", f"http://127.0.0.1:{srv.port}"):
        r = srv.http("GET", "/api/v1/meters", headers={"Origin": origin, **bearer(admin)})
        assert r.status == 200, r
        assert r.header("Access-Control-Allow-Origin") is None, r
        r = srv.http("GET", "/api/v1/meters", headers={"Origin": origin})
        assert is_unauthorized(r) and r.header("Access-Control-Allow-Origin") is None, r
        r = preflight(srv, origin)
        assert r.status == 403 and error_of(r) == "cors_forbidden", r
        assert r.header("Access-Control-Allow-Origin") is None, r
        assert r.header("Access-Control-Allow-Methods") is None, r


def test_cors_allowed_origins(server_factory):
    srv = start_secure(server_factory, ["--cors-origin", "https://a.example",
                                        "--cors-origin", "https://b.example"])
    admin = banner_token(srv)
    for origin in ("https://a.example", "https://b.example"):
        r = srv.http("GET", "/api/v1/meters", headers={"Origin": origin, **bearer(admin)})
        assert r.status == 200, r
        assert r.header("Access-Control-Allow-Origin") == origin, r
        assert "origin" in r.header("Vary", "").lower(), r
        exposed = {h.strip().lower()
                   for h in r.header("Access-Control-Expose-Headers", "").split(",")}
        assert {"retry-after", "x-request-id"} <= exposed, r
        # errors too, so that the page can read them
        r = srv.http("GET", "/api/v1/meters", headers={"Origin": origin})
        assert is_unauthorized(r) and r.header("Access-Control-Allow-Origin") == origin, r
        # A preflight carries no key and needs none.
        for method in ("POST", "PUT", "PATCH", "DELETE", "GET"):
            r = preflight(srv, origin, method=method)
            assert r.status == 204, r
            assert r.body == b""
            assert r.header("Access-Control-Allow-Origin") == origin, r
            methods = {m.strip() for m in r.header("Access-Control-Allow-Methods", "").split(",")}
            assert {"GET", "POST", "PUT", "PATCH", "DELETE"} <= methods, r
            allowed = {h.strip().lower()
                       for h in r.header("Access-Control-Allow-Headers", "").split(",")}
            assert {"authorization", "content-type", "x-api-key", "x-request-id"} <= allowed, r
    for origin in ("https://c.example", "https://a.example.evil.example", "http://a.example",
                   "https://a.example:8443", "null"):
        r = srv.http("GET", "/api/v1/meters", headers={"Origin": origin, **bearer(admin)})
        assert r.status == 200 and r.header("Access-Control-Allow-Origin") is None, (origin, r)
        r = preflight(srv, origin)
        assert r.status == 403 and error_of(r) == "cors_forbidden", (origin, r)
        assert r.header("Access-Control-Allow-Origin") is None, r
    # Without Origin: a plain same-origin request, no CORS headers.
    r = srv.http("GET", "/api/v1/meters", headers=bearer(admin))
    assert r.status == 200 and r.header("Access-Control-Allow-Origin") is None, r


def test_cors_any_origin(server_factory):
    srv = start_secure(server_factory, ["--cors-origin", "*"])
    admin = banner_token(srv)
    r = srv.http("GET", "/api/v1/meters", headers={"Origin": "https://x.example",
                                                   **bearer(admin)})
    assert r.status == 200 and r.header("Access-Control-Allow-Origin") == "*", r
    r = preflight(srv, "https://y.example")
    assert r.status == 204 and r.header("Access-Control-Allow-Origin") == "*", r


# ---------------------------------------------------------------------------
# Security headers

@pytest.mark.parametrize("path", ["/", "/docs"])
def test_dashboard_html_security_headers(ctx, path):
    r = Keyed(ctx.srv)("GET", path)
    assert r.status == 200 and r.header("Content-Type", "").startswith("text/html"), r
    csp = r.header("Content-Security-Policy") or ""
    directives = {d.strip().split(" ", 1)[0]: d.strip() for d in csp.split(";") if d.strip()}
    assert directives.get("frame-ancestors") == "frame-ancestors 'none'", csp
    assert r.header("X-Content-Type-Options") == "nosniff", r


# ---------------------------------------------------------------------------
# The first-start admin token, and keys kept out of the log

def test_admin_token_printed_once_at_first_start(server_factory):
    srv = start_secure(server_factory)
    token = banner_token(srv)
    assert token, srv.run_log()
    out = srv.log()
    assert len(TOKEN_RE.findall(out)) == 1, out
    assert out.count(token) == 1 and out.count(key_secret(token)) == 1, out
    banner = [ln for ln in srv.run_lines() if token in ln]
    assert len(banner) == 1 and not LOG_LINE_RE.match(banner[0]), banner
    assert Keyed(srv, token).get("/api/v1/whoami") == {
        "kind": "token", "id": key_id(token), "name": "initial admin", "scope": "admin"}
    srv.restart()
    assert banner_token(srv) is None
    assert not TOKEN_RE.search(srv.run_log()), srv.run_log()
    assert key_secret(token) not in srv.log().replace(banner[0], "", 1)
    assert Keyed(srv, token).get("/api/v1/whoami")["scope"] == "admin"
    # Still one admin token: the second start made none.
    tokens = Keyed(srv, token).get("/api/v1/tokens")["tokens"]
    assert [t["id"] for t in tokens] == [key_id(token)], tokens


def test_admin_token_goes_to_stdout_not_the_log(tmp_path):
    """The banner is on standard output; the log (standard error) has no key."""
    db = tmp_path / "split" / "m.db"
    db.parent.mkdir()
    proc = subprocess.Popen([meterhub_bin(), "--listen", f"{HOST}:0", "--db", str(db)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        err = []
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            err.append(line)
            if "listening on" in line:
                break
        m = LISTEN_RE.search("".join(err))
        assert m, "".join(err)
        # Serving (and so handling SIGTERM) before it is asked to stop.
        r = http(int(m.group(1)), "GET", "/healthz")
        assert r.status == 200, r
        proc.send_signal(signal.SIGTERM)
        out, rest = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=5)
    assert proc.returncode == 0, (out, err, rest)
    err = "".join(err) + rest
    tokens = TOKEN_RE.findall(out)
    assert len(tokens) == 1, out
    assert "mht_" not in err and key_secret(tokens[0]) not in err, err
    assert not any(LOG_LINE_RE.match(ln) for ln in out.splitlines() if tokens[0] in ln), out


def test_no_banner_when_an_admin_token_exists(server_factory, tmp_path):
    db = tmp_path / "pre" / "m.db"
    admin = cli_token(db, "admin")
    srv = start_secure(server_factory, db=db)
    assert banner_token(srv) is None
    assert not TOKEN_RE.search(srv.run_log()), srv.run_log()
    assert Keyed(srv, admin).get("/api/v1/whoami")["scope"] == "admin"


def test_keys_never_logged(server_factory, tmp_path):
    """Many successful and failed authentications with every kind of key and
    every way of presenting it, at log level debug: no key text and no secret
    part appears in the output, except the admin token's one banner line."""
    db = tmp_path / "log" / "m.db"
    cli_read = cli_token(db, "read", name="cli")  # before the first start: no admin yet
    srv = start_secure(server_factory, ["--log-level", "debug"], db=db)
    admin = banner_token(srv)
    assert admin
    a = Keyed(srv, admin)
    read = a.json("POST", "/api/v1/tokens", {"name": "r", "scope": "read"}, 201)["token"]
    gone = a.json("POST", "/api/v1/tokens", {"name": "g", "scope": "read"}, 201)["token"]
    a.json("DELETE", f"/api/v1/tokens/{key_id(gone)}")
    dev = a.json("POST", "/api/v1/meters", {"meter_id": "m1"}, 201)["device_key"]
    old_dev = dev
    dev = a.json("POST", "/api/v1/meters/m1/rotate-key")["device_key"]
    wrong = [unknown_key("mht"), unknown_key("mhd"), f"mht_{key_id(admin)}_{random_secret()}",
             admin[:-1], admin + "x", "mht_" + key_secret(admin)]
    good = [admin, read, cli_read, dev]
    bad = [gone, old_dev] + wrong
    refused = 0
    for key in good + bad:
        for style in ("bearer", "x-api-key"):
            k = Keyed(srv, key, style)
            for r in (k("GET", "/api/v1/whoami"), k("GET", "/api/v1/meters/m1/readings"),
                      k("POST", "/api/v1/readings", reading("m1", ts=BASE_TS)),
                      k("GET", "/api/v1/tokens")):
                refused += r.status == 401
        for path in ("/ws", "/ws/m1"):
            for target, headers in [(f"{path}?token={key}", {}),
                                    (path, {"Sec-WebSocket-Protocol": f"meterhub, bearer.{key}"}),
                                    (f"{path}/x?token={key}", {}),  # 404 path
                                    (f"{path}?token={key}&token={key}", {})]:
                with HandshakeWebSocket(srv.port, target, headers) as ws:
                    refused += ws.response.status == 401
        refused += srv.http("GET", f"/api/v1/meters?token={key}").status == 401
    assert refused > 100, refused
    # Rotation and revocation answers carry keys too; the log must not.
    a.json("POST", "/api/v1/meters/m1/rotate-key")
    assert srv.stop() == 0
    lines = srv.log().splitlines()
    # The one exception: the banner of the first start (a line of its own,
    # not a log line), which shows the admin token.
    banner = [i for i, ln in enumerate(lines) if admin in ln]
    assert len(banner) == 1 and lines[banner[0]].strip() == admin, banner
    del lines[banner[0]]
    secrets = {k: key_secret(k) for k in good + bad if k.count("_") >= 2}
    leaks = []
    for ln in lines:
        for k, s in secrets.items():
            if k in ln or (len(s) >= 20 and s in ln):
                leaks.append(ln)
        if TOKEN_RE.search(ln) or DEVICE_KEY_RE.search(ln):
            leaks.append(ln)
    assert not leaks, "keys in the output:\n" + "\n".join(leaks)
    # Failed authentications are logged (without keys, with the peer), a few
    # lines a second however many there are.
    failed = [ln for ln in lines if "authentication failed" in ln]
    assert failed and all("127.0.0.1" in ln for ln in failed), "\n".join(lines[-50:])
    per_second = {}
    for ln in failed:
        per_second[ln[:19]] = per_second.get(ln[:19], 0) + 1
    assert max(per_second.values()) <= 10, per_second
    assert len(failed) < refused / 2, (len(failed), refused)
