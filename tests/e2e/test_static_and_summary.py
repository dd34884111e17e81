"""Static dashboard files from --web-root and GET /api/v1/energy/summary, end
to end.

Static files: loaded into memory at start from a temporary web root; content
types, "/" and "/docs", ETag / If-None-Match, caching and security headers,
HEAD, wrong methods, unknown paths, dot files, path traversal, and a server
without a web root.

Energy summary: kWh per meter over [from, to) widened to whole minutes, from
hourly rollups for whole hours plus minute rollups at the ragged ends; checked
against hand-computed totals of steady counters and against the sum of the
per-minute kWh of /series for an irregular counter.
"""
import json
import random
import time

import pytest

from conftest import (HttpClient, iso, now_ms, reading, ts_ms)

# ---------------------------------------------------------------------------
# Static files: helpers

SECRET = "TOP-SECRET-OUTSIDE-THE-WEB-ROOT"

WEB_FILES = {
    "index.html": "<!doctype html><title>meterhub</title><script src=\"js/app.js\"></script>\n",
    "docs.html": "<!doctype html><title>API reference</title>\n",
    "js/app.js": "export const answer = 42;\n",
    "js/vendor/lib.mjs": "export default 1;\n",
    "css/a.css": "body { color: #333; }\n",
    "data/info.json": '{"hello": "world"}\n',
    "img/logo.svg": "<svg xmlns=\"http://www.w3.org/2000/svg\"/>\n",
    "my file.txt": "a file with spaces in its name\n",
    "blob.bin": "\x00\x01\x02 binary-ish\n",
    "sub/deeper/page.html": "<!doctype html><p>deep</p>\n",
    ".secret": SECRET + " dotfile\n",
    "js/.env": SECRET + " dotfile in a subdirectory\n",
    ".hidden/inside.js": SECRET + " file in a dot directory\n",
}

CONTENT_TYPES = [
    ("/index.html", "text/html; charset=utf-8"),
    ("/docs.html", "text/html; charset=utf-8"),
    ("/sub/deeper/page.html", "text/html; charset=utf-8"),
    ("/js/app.js", "text/javascript; charset=utf-8"),
    ("/js/vendor/lib.mjs", "text/javascript; charset=utf-8"),
    ("/css/a.css", "text/css; charset=utf-8"),
    ("/data/info.json", "application/json"),
    ("/img/logo.svg", "image/svg+xml"),
    ("/my%20file.txt", "text/plain; charset=utf-8"),
    ("/blob.bin", "application/octet-stream"),
]


def file_for(path):
    """The WEB_FILES key a request path names."""
    return path.lstrip("/").replace("%20", " ")


def make_web_root(base):
    root = base / "web"
    for name, text in WEB_FILES.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    (base / "outside.txt").write_text(SECRET + " next to the web root\n")
    return root


@pytest.fixture
def web(server_factory, tmp_path):
    """A server whose --web-root is a fresh directory holding WEB_FILES."""
    root = make_web_root(tmp_path)
    srv = server_factory(["--web-root", str(root)])
    srv.web_root = root
    return srv


def raw_get(srv, target, method="GET", extra=b""):
    """A request with the target sent exactly as given (no client normalisation)."""
    return srv.raw(b"%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s\r\n"
                   % (method.encode(), target.encode("latin-1"), extra))


def assert_json_error(r, status, code):
    assert r.status == status, r
    assert r.header("content-type", "").startswith("application/json"), r
    assert r.error_code() == code, r


# ---------------------------------------------------------------------------
# Static files: tests


@pytest.mark.parametrize("path,ctype", CONTENT_TYPES, ids=[p for p, _ in CONTENT_TYPES])
def test_static_file_body_and_content_type(web, path, ctype):
    r = web.get(path)
    assert r.status == 200, r
    assert r.header("content-type") == ctype, r
    assert r.body == WEB_FILES[file_for(path)].encode()
    assert int(r.header("content-length")) == len(r.body)


def test_root_is_index_and_docs_is_docs_html(web):
    root, index = web.get("/"), web.get("/index.html")
    assert root.status == index.status == 200
    assert root.body == index.body == WEB_FILES["index.html"].encode()
    assert root.header("etag") == index.header("etag")
    docs, docs_html = web.get("/docs"), web.get("/docs.html")
    assert docs.status == docs_html.status == 200
    assert docs.body == docs_html.body == WEB_FILES["docs.html"].encode()
    assert docs.header("content-type") == "text/html; charset=utf-8"


def test_etag_and_if_none_match(web):
    r = web.get("/js/app.js")
    etag = r.header("etag")
    assert etag and etag.startswith('"') and etag.endswith('"') and len(etag) > 2, r
    assert web.get("/css/a.css").header("etag") != etag, "different bodies, same ETag"
    assert web.get("/js/app.js").header("etag") == etag, "ETag not stable"
    for inm in (etag, f'"nope", {etag}', f"W/{etag}", "*"):
        nm = web.http("GET", "/js/app.js", headers={"If-None-Match": inm})
        assert nm.status == 304, (inm, nm)
        assert nm.body == b"", nm
        assert nm.header("etag") == etag, nm
        assert nm.header("cache-control") == "no-cache", nm
    for inm in ('"nope"', etag[:-2] + '"', ""):
        r2 = web.http("GET", "/js/app.js", headers={"If-None-Match": inm})
        assert r2.status == 200 and r2.body == WEB_FILES["js/app.js"].encode(), (inm, r2)


def test_304_on_keep_alive_connection_has_no_body(web):
    """A 304 carries no body: the next response on the same connection parses."""
    etag = web.get("/").header("etag")
    with web.connect() as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\nIf-None-Match: %s\r\n\r\n" % etag.encode())
        r = c.read_response()
        assert r.status == 304 and r.body == b"", r
        c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        r2 = c.read_response()
        assert r2.status == 200 and r2.json() == {"status": "ok"}, r2


def test_304_content_length_is_absent_or_that_of_the_200(web):
    """RFC 9110 8.6: a 304 MUST NOT send Content-Length unless it equals the
    length the 200 would have had."""
    full = web.get("/index.html")
    nm = web.http("GET", "/index.html", headers={"If-None-Match": full.header("etag")})
    assert nm.status == 304, nm
    cl = nm.header("content-length")
    assert cl is None or int(cl) == len(full.body), \
        f"304 carries Content-Length: {cl}, the 200 has {len(full.body)} bytes"


@pytest.mark.parametrize("path", ["/", "/docs", "/js/app.js", "/css/a.css", "/data/info.json"])
def test_cache_and_security_headers(web, path):
    r = web.get(path)
    assert r.status == 200, r
    assert r.header("cache-control") == "no-cache", r
    assert r.header("x-content-type-options") == "nosniff", r
    csp = r.header("content-security-policy")
    if r.header("content-type").startswith("text/html"):
        assert csp, f"no Content-Security-Policy on HTML {path}"
        directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
        assert directives.get("script-src") == ["'self'"], csp
        assert "'unsafe-inline'" not in directives.get("default-src", []), csp


def test_head_has_headers_and_no_body(web):
    get = web.get("/js/app.js")
    with web.connect() as c:
        c.send(b"HEAD /js/app.js HTTP/1.1\r\nHost: x\r\n\r\n")
        head = c._read_until(b"\r\n\r\n", time.monotonic() + 5)
        assert head.startswith(b"HTTP/1.1 200 "), head
        fields = {}
        for ln in head[:-4].split(b"\r\n")[1:]:
            k, _, v = ln.partition(b":")
            fields[k.strip().lower().decode()] = v.strip().decode()
        assert int(fields["content-length"]) == len(get.body), head
        assert fields["content-type"] == "text/javascript; charset=utf-8", head
        assert fields["etag"] == get.header("etag"), head
        # No body bytes: the next response starts right away.
        c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and r.json() == {"status": "ok"}, r


@pytest.mark.parametrize("method,path", [("POST", "/"), ("POST", "/index.html"),
                                         ("PUT", "/js/app.js"), ("DELETE", "/css/a.css"),
                                         ("PATCH", "/docs")])
def test_wrong_method_on_static_path_is_405(web, method, path):
    r = web.http(method, path, body=b"{}", headers={"Content-Type": "application/json"})
    assert_json_error(r, 405, "method_not_allowed")
    assert r.header("allow") == "GET", r


@pytest.mark.parametrize("path", ["/nope", "/nope.html", "/js/nope.js", "/js", "/js/", "/sub",
                                  "/sub/deeper", "/sub/deeper/", "/index.htm", "/INDEX.HTML",
                                  "/docs/", "/index.html/", "/my file.txt".replace(" ", "+"),
                                  "/openapi.json", "/api", "/api/v2/x"])
def test_unknown_path_is_404_json(web, path):
    assert_json_error(web.get(path), 404, "not_found")


@pytest.mark.parametrize("path", ["/.secret", "/%2esecret", "/js/.env", "/.hidden/inside.js",
                                  "/%2ehidden/inside.js"])
def test_dot_files_are_not_served(web, path):
    r = raw_get(web, path)
    assert r.status in (400, 404), r
    assert SECRET.encode() not in r.body


TRAVERSALS = [
    "/../outside.txt", "/%2e%2e/outside.txt", "/%2E%2E/outside.txt", "/.%2e/outside.txt",
    "/js/../../outside.txt", "/js/%2e%2e/%2e%2e/outside.txt", "/..%2foutside.txt",
    "/%2e%2e%2foutside.txt", "/js%2f..%2f..%2foutside.txt", "/..%5coutside.txt",
    "/..\\outside.txt", "//outside.txt", "/%2F..%2Foutside.txt", "/web/../outside.txt",
    "/./../outside.txt", "/js/./../../outside.txt", "/%00/../outside.txt",
    "/../../../../../../etc/passwd", "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/..%252f..%252foutside.txt", "/%c0%ae%c0%ae/outside.txt", "/etc/passwd",
]


@pytest.mark.parametrize("target", TRAVERSALS)
def test_path_traversal_serves_nothing_outside(web, target):
    r = raw_get(web, target)
    assert r.status in (400, 404), r
    assert SECRET.encode() not in r.body and b"root:" not in r.body, r
    assert r.error_code() in ("not_found", "bad_target", "bad_request"), r


@pytest.mark.parametrize("target", ["/js%2Fapp.js", "/js%2fapp.js", "/sub%2Fdeeper%2Fpage.html",
                                    "/js/../index.html", "/./index.html"])
def test_odd_paths_serve_at_most_a_file_of_the_set(web, target):
    """Encoded slashes and dot segments either fail or name a loaded file;
    never anything else. (Today "/js%2Fapp.js" serves js/app.js and
    "/./index.html" serves index.html, while "/js/../index.html" is 404.)"""
    r = raw_get(web, target)
    assert r.status in (200, 400, 404), r
    if r.status == 200:
        assert r.body.decode() in WEB_FILES.values(), r
        assert SECRET.encode() not in r.body


def test_files_are_loaded_at_start(web):
    """Changes to the web root after start are not seen (served from memory)."""
    (web.web_root / "index.html").write_text("changed")
    (web.web_root / "new.js").write_text("new")
    (web.web_root / "js" / "app.js").unlink()
    assert web.get("/").body == WEB_FILES["index.html"].encode()
    assert web.get("/js/app.js").body == WEB_FILES["js/app.js"].encode()
    assert_json_error(web.get("/new.js"), 404, "not_found")


def test_no_web_root_api_still_works(server_factory, tmp_path):
    srv = server_factory(["--web-root", str(tmp_path / "does-not-exist")])
    line = srv.wait_for_log(r"no dashboard", 2)
    assert line and " warning " in line, srv.run_log()
    for path in ("/", "/index.html", "/docs", "/js/app.js"):
        assert_json_error(srv.get(path), 404, "not_found")
    r = srv.http("POST", "/", body=b"{}", headers={"Content-Type": "application/json"})
    assert r.status == 404, r
    srv.post_ok(reading("api-ok", ts_ms("2025-06-01T12:00:00Z")), accepted=1)
    assert srv.meter_count() == 1
    assert srv.get("/ws").status == 426
    srv.assert_healthy()


def test_web_root_without_index_warns_and_serves_the_rest(server_factory, tmp_path):
    root = tmp_path / "partial"
    (root / "js").mkdir(parents=True)
    (root / "js" / "app.js").write_text("x")
    srv = server_factory(["--web-root", str(root)])
    assert srv.wait_for_log(r"no dashboard", 2), srv.run_log()
    assert srv.get("/js/app.js").body == b"x"
    assert_json_error(srv.get("/"), 404, "not_found")


# ---------------------------------------------------------------------------
# Energy summary: helpers

DAY = "2025-06-01"
MIN = 60_000


def t(hhmm, day=DAY):
    """'10:17' or '10:17:30.500' on the test day -> epoch ms."""
    if hhmm.count(":") == 1:
        hhmm += ":00"
    if "." not in hhmm:
        hhmm += ".000"
    return ts_ms(f"{day}T{hhmm}Z")


def steady(meter, start, minutes, start_kwh, per_minute):
    """One reading per minute from `start`, the counter rising `per_minute`."""
    return [reading(meter, start + k * MIN, energy=round(start_kwh + per_minute * k, 6),
                    power=per_minute * 60_000)
            for k in range(minutes)]


def post_all(srv, readings, per_post=500):
    with HttpClient(srv.port) as c:
        for i in range(0, len(readings), per_post):
            r = c.request("POST", "/api/v1/readings", readings[i:i + per_post])
            assert r.status == 201, r


def summary(srv, expect=200, **params):
    q = "&".join(f"{k}={v}" for k, v in params.items())
    r = srv.get("/api/v1/energy/summary" + ("?" + q if q else ""))
    assert r.status == expect, r
    return r.json() if expect == 200 else r


def kwh_of(doc):
    assert isinstance(doc.get("meters"), list), doc
    ids = [m["meter_id"] for m in doc["meters"]]
    assert ids == sorted(ids), f"meters not sorted by id: {ids}"
    return {m["meter_id"]: m["kwh"] for m in doc["meters"]}


def series_kwh(srv, meter, frm, to):
    """The sum of a meter's per-minute kWh (/series step=1m) over [frm, to)."""
    r = srv.get(f"/api/v1/meters/{meter}/series?step=1m&fields=energy&from={frm}&to={to}")
    assert r.status == 200, r
    doc = r.json()
    return sum(doc["energy"]["kwh"]) if doc["buckets"] else 0.0


@pytest.fixture
def steady_server(server_factory):
    """alpha: 09:00-14:59, +0.01 kWh a minute; beta: 10:30-12:29, +0.02 kWh a
    minute; gamma: a single reading at 16:00 (a rollup row with 0 kWh). The
    first reading of a meter counts 0, every later one its minute's rise.
    Retention off: the test day is older than the default 365 days of minute
    rollups."""
    srv = server_factory(["--retention-raw-days", "0", "--retention-1m-days", "0"])
    post_all(srv, steady("alpha", t("09:00"), 360, 100.0, 0.01) +
             steady("beta", t("10:30"), 120, 50.0, 0.02) +
             [reading("gamma", t("16:00"), energy=7.0)])
    return srv


# ---------------------------------------------------------------------------
# Energy summary: tests

# (from, to, {meter: kWh}) with hand-computed totals: alpha counts 0.01 for
# each minute 09:01..14:59 in range, beta 0.02 for each minute 10:31..12:29.
SUMMARY_CASES = [
    ("10:00", "13:00", {"alpha": 1.8, "beta": 2.38}),                 # whole hours only
    ("10:17", "13:42", {"alpha": 2.05, "beta": 2.38}),                # ragged both ends
    ("10:17", "10:42", {"alpha": 0.25, "beta": 0.22}),                # inside one hour
    ("10:50", "11:10", {"alpha": 0.2, "beta": 0.4}),                  # across one boundary
    ("11:00", "11:45", {"alpha": 0.45, "beta": 0.9}),                 # hour start, ragged end
    ("11:15", "13:00", {"alpha": 1.05, "beta": 1.5}),                 # ragged start, hour end
    ("09:00", "09:05", {"alpha": 0.04}),                              # first reading counts 0
    ("12:30", "13:00", {"alpha": 0.3}),                               # beta has no rows here
    ("10:30", "10:31", {"alpha": 0.01, "beta": 0}),                   # beta's first row: 0 kWh
    ("00:00", "23:59", {"alpha": 3.59, "beta": 2.38, "gamma": 0}),    # everything
    ("15:00", "15:59", {}),                                           # no rows at all
]


@pytest.mark.parametrize("frm,to,want", SUMMARY_CASES,
                         ids=[f"{a}-{b}" for a, b, _ in SUMMARY_CASES])
def test_summary_hand_computed_totals(steady_server, frm, to, want):
    doc = summary(steady_server, **{"from": iso(t(frm)), "to": iso(t(to))})
    assert doc["from"] == iso(t(frm)) and doc["to"] == iso(t(to)), doc
    assert set(doc) == {"from", "to", "meters"}, doc
    assert kwh_of(doc) == want, doc
    for m in doc["meters"]:
        assert set(m) == {"meter_id", "kwh"}, m


def test_summary_widens_to_whole_minutes(steady_server):
    doc = summary(steady_server, **{"from": iso(t("10:17:30.500")),
                                    "to": iso(t("13:41:00.001"))})
    assert doc["from"] == iso(t("10:17")) and doc["to"] == iso(t("13:42")), doc
    assert kwh_of(doc) == {"alpha": 2.05, "beta": 2.38}
    # Within one minute: that whole minute.
    doc = summary(steady_server, **{"from": iso(t("10:40:10")), "to": iso(t("10:40:20"))})
    assert doc["from"] == iso(t("10:40")) and doc["to"] == iso(t("10:41")), doc
    assert kwh_of(doc) == {"alpha": 0.01, "beta": 0.02}


def test_summary_accepts_epoch_and_offset_times(steady_server):
    want = {"alpha": 2.05, "beta": 2.38}
    # epoch milliseconds, epoch seconds, and RFC 3339 with an offset ('+' sent encoded)
    assert kwh_of(summary(steady_server, **{"from": t("10:17"), "to": t("13:42")})) == want
    assert kwh_of(summary(steady_server, **{"from": t("10:17") // 1000,
                                            "to": t("13:42") // 1000})) == want
    doc = summary(steady_server, **{"from": "2025-06-01T12:17:00%2B02:00",
                                    "to": "2025-06-01T15:42:00%2B02:00"})
    assert doc["from"] == iso(t("10:17")) and kwh_of(doc) == want, doc


def test_summary_equals_sum_of_minute_kwh_for_an_irregular_counter(server_factory):
    """Irregular timing, a counter reset, a reboot zero, a spike and a gap
    across hour boundaries: for several ranges the summary equals the sum of
    the per-minute kWh that /series reports for the same range."""
    srv = server_factory(["--retention-raw-days", "0", "--retention-1m-days", "0"])
    rnd = random.Random(20250601)
    readings, when, e = [], t("08:00"), 500.0
    while when < t("15:00"):
        if t("11:20") <= when < t("12:40"):
            when = t("12:40:07")  # a gap across the 12:00 boundary
        e += rnd.uniform(0, 0.05)
        energy = round(e, 4)
        if rnd.random() < 0.01:
            energy = 0.0  # a reboot zero (an outlier)
        elif rnd.random() < 0.01:
            energy = 99999.0  # a garbage spike (an outlier)
        elif rnd.random() < 0.005:
            e = round(rnd.uniform(0, 0.01), 4)  # a counter reset
            energy = e
        readings.append(reading("irregular", when, energy=energy))
        when += rnd.randint(5_000, 50_000)
    # Late readings: the same batch again shuffled is all duplicates; shuffle
    # the order of arrival instead.
    rnd.shuffle(readings)
    post_all(srv, readings, per_post=97)
    post_all(srv, steady("steady", t("08:00"), 420, 1.0, 0.01))
    ranges = [("08:00", "15:00"), ("08:13", "14:47"), ("10:59", "13:01"), ("11:30", "12:50"),
              ("09:00", "10:00"), ("09:07", "09:08"), ("12:39", "12:41"), ("07:00", "16:00")]
    for frm, to in ranges:
        got = kwh_of(summary(srv, **{"from": iso(t(frm)), "to": iso(t(to))}))
        for meter in ("irregular", "steady"):
            want = series_kwh(srv, meter, t(frm), t(to))
            assert got.get(meter, 0.0) == pytest.approx(want, abs=1e-6), (frm, to, meter)
    assert got["irregular"] > 1.0  # the data really counted something


def test_summary_defaults_to_the_last_24_hours(server_factory):
    srv = server_factory()  # default retention: the data is recent
    now = now_ms()
    start = (now // MIN - 180) * MIN  # 3 h ago, on a minute
    post_all(srv, steady("recent", start, 61, 10.0, 0.01) +      # 60 minutes of 0.01
             steady("old", now - 30 * 3_600_000, 10, 1.0, 0.5))  # 30 h ago: out of range
    t0 = now_ms()
    doc = summary(srv)
    t1 = now_ms()
    to, frm = ts_ms(doc["to"]), ts_ms(doc["from"])
    assert to % MIN == 0 and frm % MIN == 0, doc
    assert t0 <= to <= t1 + MIN, doc
    assert to - frm in (24 * 3_600_000, 24 * 3_600_000 + MIN), doc
    assert kwh_of(doc) == {"recent": 0.6}, doc
    # Only `to`: from = to - 24 h; minutes start..start+29 (the first counts 0).
    doc = summary(srv, to=iso(start + 30 * MIN))
    assert doc["from"] == iso(start + 30 * MIN - 24 * 3_600_000), doc
    assert kwh_of(doc) == {"recent": 0.29}, doc
    # Only `from`: to = now; minutes start+30..start+60.
    doc = summary(srv, **{"from": iso(start + 30 * MIN)})
    assert ts_ms(doc["to"]) >= t1 and kwh_of(doc) == {"recent": 0.31}, doc


SUMMARY_BAD = [
    {"from": "yesterday"},
    {"to": "soon"},
    {"from": ""},
    {"to": "2025-13-01T00:00:00Z"},
    {"from": "2025-06-01T10:00:00Z", "to": "2025-06-01T10:00:00Z"},   # from == to
    {"from": "2025-06-01T11:00:00Z", "to": "2025-06-01T10:00:00Z"},   # from > to
    {"from": "12abc"},
    {"to": "1e400"},
    {"from": "-99999999999999999", "to": "1"},
]


@pytest.mark.parametrize("params", SUMMARY_BAD, ids=[json.dumps(p) for p in SUMMARY_BAD])
def test_summary_bad_parameters_are_400(server, params):
    r = summary(server, expect=400, **params)
    assert_json_error(r, 400, "invalid_parameter")
    assert r.json()["error"]["message"], r


def test_summary_bounds_near_year_9999_stay_valid(server):
    """`to` in the last minute of 9999 is accepted; the widened bounds the
    answer names must still be valid RFC 3339 (four-digit year) that the server
    accepts back -- or the request is refused with 400."""
    r = server.get("/api/v1/energy/summary?from=9999-12-31T23:00:00Z&to=9999-12-31T23:59:30Z")
    if r.status == 400:
        assert r.error_code() == "invalid_parameter", r
        return
    assert r.status == 200, r
    doc = r.json()
    for key in ("from", "to"):
        assert len(doc[key].split("-")[0]) == 4, f"{key} is not RFC 3339: {doc[key]!r}"
    again = server.get(f"/api/v1/energy/summary?from={doc['from']}&to={doc['to']}")
    assert again.status == 200, f"the server refuses its own bounds back: {again}"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_summary_wrong_method_is_405(server, method):
    r = server.http(method, "/api/v1/energy/summary", body=b"{}",
                    headers={"Content-Type": "application/json"})
    assert_json_error(r, 405, "method_not_allowed")
    assert r.header("allow") == "GET", r


def test_summary_of_empty_database(server):
    doc = summary(server)
    assert doc["meters"] == [], doc
