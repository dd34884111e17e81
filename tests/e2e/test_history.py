"""History endpoints, end to end: energy and cost per local calendar period
(DST days, a half-hour zone, a year boundary), the counter rules as seen
through the API (resets, reboot zeros, wraps, glitches, gaps, late and
duplicate readings), bucketed series (rollups against raw readings, sources,
step ladder, widening, CSV), bad input, tariffs, persistence across a restart
and retention.

Every expected number is worked out by hand in a comment next to it. The
synthetic load is usually one reading per minute with the counter rising by
exactly 0.01 kWh, so a period gets 0.6 kWh per hour that has a reading at
every minute, and the very first reading of a meter counts nothing (it has no
predecessor)."""
import random
import re
import time
import urllib.parse

import pytest

from conftest import iso, now_ms, reading, ts_ms

MIN = 60_000
HOUR = 3_600_000
DAY = 86_400_000
TOL = 1e-6  # kWh and money: sums of many 0.01 steps carry float noise

# Time-of-use tariff used on the calendar days below (local wall-clock times):
#   07:00-23:00 at 0.30, 23:00-05:00 (wraps midnight) at 0.10, else (05:00-07:00) 0.20.
TOU = {"currency": "EUR", "price_per_kwh": 0.20,
       "windows": [{"from": "07:00", "to": "23:00", "price_per_kwh": 0.30},
                   {"from": "23:00", "to": "05:00", "price_per_kwh": 0.10}]}
FLAT = {"currency": "EUR", "price_per_kwh": 0.25}

ALL_SERIES_FIELDS = ("voltage", "current", "power", "frequency", "power_factor")


# ---------------------------------------------------------------------------
# Helpers

def url(path, **params):
    """path?params, values percent-encoded ('+' of an offset becomes %2B);
    `from_` stands for `from`."""
    if not params:
        return path
    items = [("from" if k == "from_" else k, str(v)) for k, v in params.items()]
    return path + "?" + urllib.parse.urlencode(items, quote_via=urllib.parse.quote, safe=":,")


def get_ok(srv, path, **params):
    r = srv.get(url(path, **params))
    assert r.status == 200, r
    assert r.header("content-type", "").startswith("application/json"), r
    return r.json()


def energy(srv, meter, **params):
    return get_ok(srv, f"/api/v1/meters/{meter}/energy", **params)


def series(srv, meter, **params):
    return get_ok(srv, f"/api/v1/meters/{meter}/series", **params)


def post_all(srv, readings):
    """Posts in batches of up to 5 000; returns (accepted, duplicates) summed."""
    acc = dup = 0
    for i in range(0, len(readings), 5000):
        r = srv.post(readings[i:i + 5000])
        assert r.status == 201, r
        doc = r.json()
        acc += doc["accepted"]
        dup += doc["duplicates"]
    return acc, dup


def steady(meter, start, end, kwh0=1000.0):
    """One reading per minute in [start, end), the counter rising 0.01 kWh per
    reading (0.6 kWh per hour). Values are rounded so each is the double
    nearest to its decimal."""
    return [reading(meter, start + i * MIN, energy=round(kwh0 + i * 0.01, 6))
            for i in range((end - start) // MIN)]


def post_steady(srv, meter, first_period_start, end, kwh0=1000.0):
    """Steady load from one minute before the first period (so that the
    reading at the period start has a predecessor) up to `end` (exclusive)."""
    rs = steady(meter, first_period_start - MIN, end, kwh0)
    assert post_all(srv, rs) == (len(rs), 0)
    return rs


def put_tariff(srv, meter, body):
    """meter=None: the server-wide default."""
    path = "/api/v1/tariff" if meter is None else f"/api/v1/meters/{meter}/tariff"
    if isinstance(body, (dict, list)):
        return srv.http("PUT", path, body)
    return srv.http("PUT", path, body, headers={"Content-Type": "application/json"})


def put_tariff_ok(srv, meter, body):
    r = put_tariff(srv, meter, body)
    assert r.status == 200, r
    return r.json()


def approx(got, want, tol=TOL):
    return got is not None and abs(got - want) <= tol


def assert_close_list(got, want, tol=TOL, what=""):
    assert len(got) == len(want), (what, got, want)
    for i, (g, w) in enumerate(zip(got, want)):
        assert approx(g, w, tol), f"{what}[{i}]: got {g}, want {w}; all: {got}"


def assert_error(r, status, code, field=None):
    assert r.status == status, r
    assert r.header("content-type", "").startswith("application/json"), r
    err = r.json().get("error")
    assert isinstance(err, dict), r
    assert err.get("code") == code, r
    assert isinstance(err.get("message"), str) and err["message"], r
    if field is not None:
        assert err.get("field") == field, r
    return err


def assert_periods(doc, want, costs=None):
    """want: [(start, end, hours, kwh)] in local RFC 3339; costs: [cost] or None
    (then every cost must be null). Also checks the total."""
    got = [(p["start"], p["end"], p["hours"]) for p in doc["periods"]]
    assert got == [(s, e, h) for s, e, h, _ in want], doc
    assert_close_list([p["kwh"] for p in doc["periods"]], [w[3] for w in want], what="kwh")
    assert approx(doc["total"]["kwh"], sum(w[3] for w in want)), doc["total"]
    if costs is None:
        assert [p["cost"] for p in doc["periods"]] == [None] * len(want), doc
        assert doc["total"]["cost"] is None, doc
    else:
        assert_close_list([p["cost"] for p in doc["periods"]], costs, what="cost")
        assert approx(doc["total"]["cost"], sum(costs)), doc["total"]


def bucket_of(ts, step):
    return ts // step * step


def column_lengths_ok(doc):
    """Every array of a columnar series answer has `buckets` elements."""
    n = doc["buckets"]
    assert len(doc["time"]) == n and len(doc["readings"]) == n, doc
    for key, val in doc.items():
        if isinstance(val, dict):
            for col, arr in val.items():
                assert isinstance(arr, list) and len(arr) == n, (key, col, doc)


def python_buckets(readings, step):
    """Per bucket, from GET /readings: count, per-field stats, first/last
    counter, and kWh as the sum of counter differences of the bucket's readings
    to their predecessors (valid only for data without glitches)."""
    out = {}
    prev = None
    for r in readings:
        ts = ts_ms(r["ts"])
        b = out.setdefault(bucket_of(ts, step), {"readings": 0, "first": r["energy"],
                                                 "kwh": 0.0, "vals": {}})
        b["readings"] += 1
        b["last"] = r["energy"]
        if prev is not None:
            b["kwh"] += r["energy"] - prev
        prev = r["energy"]
        for f in ALL_SERIES_FIELDS:
            if r.get(f) is not None:
                b["vals"].setdefault(f, []).append(r[f])
    return out


def assert_series_equals_python(doc, expected, fields=ALL_SERIES_FIELDS):
    """A JSON series answer against python_buckets(): stats exactly or within
    1e-9 (sums in another order), empty buckets omitted."""
    column_lengths_ok(doc)
    assert doc["time"] == sorted(expected), (doc["time"], sorted(expected))
    for i, start in enumerate(doc["time"]):
        e = expected[start]
        assert doc["readings"][i] == e["readings"], (start, doc["readings"][i], e["readings"])
        for f in fields:
            vals = e["vals"].get(f, [])
            col = doc[f]
            assert col["count"][i] == len(vals), (f, start)
            if not vals:
                assert (col["avg"][i], col["min"][i], col["max"][i]) == (None, None, None), (f, i)
                continue
            assert col["min"][i] == min(vals) and col["max"][i] == max(vals), (f, start)
            want = sum(vals) / len(vals)
            assert abs(col["avg"][i] - want) <= 1e-9 * max(1.0, abs(want)), (f, start)
        assert doc["energy"]["first"][i] == e["first"], start
        assert doc["energy"]["last"][i] == e["last"], start
        assert abs(doc["energy"]["kwh"][i] - e["kwh"]) <= 1e-9, (start, doc["energy"]["kwh"][i],
                                                                 e["kwh"])


def assert_attribution(srv, meter, points, want_kwh):
    """points: [(ts, energy)] as stored, every reading in its own minute;
    want_kwh: the consumption each reading must be attributed (hand-computed),
    in ts order. Checked through the minute rollup (step=1m) and through the
    raw path (step=10s)."""
    points = sorted(points)
    lo = bucket_of(points[0][0], MIN)
    hi = bucket_of(points[-1][0], MIN) + MIN
    for step, source, width in (("1m", "rollup_1m", MIN), ("10s", "raw", 10_000)):
        doc = series(srv, meter, from_=lo, to=hi, step=step, fields="energy")
        assert doc["source"] == source, doc
        assert doc["time"] == [bucket_of(ts, width) for ts, _ in points], doc
        assert doc["readings"] == [1] * len(points), doc
        assert doc["energy"]["first"] == [e for _, e in points], doc
        assert_close_list(doc["energy"]["kwh"], want_kwh, what=f"kwh step={step}")


def hourly_kwh(srv, meter, start, hours):
    doc = energy(srv, meter, period="hour", tz="UTC", from_=start, to=start + hours * HOUR)
    assert len(doc["periods"]) == hours, doc
    return [p["kwh"] for p in doc["periods"]]


def csv_lines(body):
    """CRLF-terminated CSV text -> lines (fails on bare LF or a missing final CRLF)."""
    text = body.decode("utf-8")
    assert text.endswith("\r\n"), text[-50:]
    assert text.count("\n") == text.count("\r\n"), "bare LF in CSV"
    return text[:-2].split("\r\n")


def utc_date(ms):
    """UTC calendar date of an epoch ms, 'YYYY-MM-DD'."""
    return time.strftime("%Y-%m-%d", time.gmtime(ms // 1000))


# ---------------------------------------------------------------------------
# Energy per local calendar period: DST days

# Three consecutive local days around each transition. "bounds": local day
# starts with the same instant in UTC (hand-converted), "hours" per day.
# kWh = 0.6 * hours. Costs per day:
#   flat 0.25:  24 h -> 14.4 * 0.25 = 3.6;  23 h -> 13.8 * 0.25 = 3.45;  25 h -> 15.0 * 0.25 = 3.75
#   TOU: 16 clock hours 07-23 at 0.30, 2 hours 05-07 at 0.20, the rest of the
#   night (23-05) at 0.10: normally 6 hours (23,00,01,02,03,04):
#        0.6 * (16*0.30 + 6*0.10 + 2*0.20) = 0.6 * 5.8 = 3.48
#   spring forward (an hour of the night is skipped, 5 night hours):
#        0.6 * (4.8 + 0.5 + 0.4) = 0.6 * 5.7 = 3.42
#   fall back (an hour of the night repeats, 7 night hours):
#        0.6 * (4.8 + 0.7 + 0.4) = 0.6 * 5.9 = 3.54
# "hour_range": a few local hours around the transition for period=hour, with
# the periods expected (a skipped hour is no period, a repeated one is two).
DST_CASES = {
    "berlin-spring-2026-03-29": {
        "tz": "Europe/Berlin",
        # CET (+01:00) until 2026-03-29 01:00Z, then CEST (+02:00)
        "bounds": [("2026-03-28T00:00:00+01:00", "2026-03-27T23:00:00Z"),
                   ("2026-03-29T00:00:00+01:00", "2026-03-28T23:00:00Z"),
                   ("2026-03-30T00:00:00+02:00", "2026-03-29T22:00:00Z"),
                   ("2026-03-31T00:00:00+02:00", "2026-03-30T22:00:00Z")],
        "hours": [24, 23, 24], "kwh": [14.4, 13.8, 14.4],
        "flat": [3.6, 3.45, 3.6], "tou": [3.48, 3.42, 3.48],
        # local 01:00+01:00 = 00:00Z .. 04:00+02:00 = 02:00Z: 02:00-03:00 does not exist
        "hour_range": ("2026-03-29T01:00:00+01:00", "2026-03-29T04:00:00+02:00"),
        "hour_periods": [("2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00"),
                         ("2026-03-29T03:00:00+02:00", "2026-03-29T04:00:00+02:00")],
    },
    "berlin-fall-2026-10-25": {
        "tz": "Europe/Berlin",
        # CEST (+02:00) until 2026-10-25 01:00Z, then CET (+01:00)
        "bounds": [("2026-10-24T00:00:00+02:00", "2026-10-23T22:00:00Z"),
                   ("2026-10-25T00:00:00+02:00", "2026-10-24T22:00:00Z"),
                   ("2026-10-26T00:00:00+01:00", "2026-10-25T23:00:00Z"),
                   ("2026-10-27T00:00:00+01:00", "2026-10-26T23:00:00Z")],
        "hours": [24, 25, 24], "kwh": [14.4, 15.0, 14.4],
        "flat": [3.6, 3.75, 3.6], "tou": [3.48, 3.54, 3.48],
        # 01:00+02:00 = 23:00Z (Oct 24) .. 04:00+01:00 = 03:00Z: 02:00 twice
        "hour_range": ("2026-10-25T01:00:00+02:00", "2026-10-25T04:00:00+01:00"),
        "hour_periods": [("2026-10-25T01:00:00+02:00", "2026-10-25T02:00:00+02:00"),
                         ("2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00"),
                         ("2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00"),
                         ("2026-10-25T03:00:00+01:00", "2026-10-25T04:00:00+01:00")],
    },
    "new-york-spring-2026-03-08": {
        "tz": "America/New_York",
        # EST (-05:00) until 2026-03-08 07:00Z, then EDT (-04:00)
        "bounds": [("2026-03-07T00:00:00-05:00", "2026-03-07T05:00:00Z"),
                   ("2026-03-08T00:00:00-05:00", "2026-03-08T05:00:00Z"),
                   ("2026-03-09T00:00:00-04:00", "2026-03-09T04:00:00Z"),
                   ("2026-03-10T00:00:00-04:00", "2026-03-10T04:00:00Z")],
        "hours": [24, 23, 24], "kwh": [14.4, 13.8, 14.4],
        "flat": [3.6, 3.45, 3.6], "tou": [3.48, 3.42, 3.48],
        # 01:00-05:00 = 06:00Z .. 04:00-04:00 = 08:00Z: 02:00-03:00 does not exist
        "hour_range": ("2026-03-08T01:00:00-05:00", "2026-03-08T04:00:00-04:00"),
        "hour_periods": [("2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00"),
                         ("2026-03-08T03:00:00-04:00", "2026-03-08T04:00:00-04:00")],
    },
    "new-york-fall-2026-11-01": {
        "tz": "America/New_York",
        # EDT (-04:00) until 2026-11-01 06:00Z, then EST (-05:00)
        "bounds": [("2026-10-31T00:00:00-04:00", "2026-10-31T04:00:00Z"),
                   ("2026-11-01T00:00:00-04:00", "2026-11-01T04:00:00Z"),
                   ("2026-11-02T00:00:00-05:00", "2026-11-02T05:00:00Z"),
                   ("2026-11-03T00:00:00-05:00", "2026-11-03T05:00:00Z")],
        "hours": [24, 25, 24], "kwh": [14.4, 15.0, 14.4],
        "flat": [3.6, 3.75, 3.6], "tou": [3.48, 3.54, 3.48],
        # 00:00-04:00 = 04:00Z .. 03:00-05:00 = 08:00Z: 01:00 twice
        "hour_range": ("2026-11-01T00:00:00-04:00", "2026-11-01T03:00:00-05:00"),
        "hour_periods": [("2026-11-01T00:00:00-04:00", "2026-11-01T01:00:00-04:00"),
                         ("2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00"),
                         ("2026-11-01T01:00:00-05:00", "2026-11-01T02:00:00-05:00"),
                         ("2026-11-01T02:00:00-05:00", "2026-11-01T03:00:00-05:00")],
    },
    "santiago-spring-2026-09-06": {
        # Chile moves its clocks at midnight: 2026-09-06 00:00 (-04:00) does
        # not exist, the day starts at 01:00 (-03:00) = 04:00Z.
        "tz": "America/Santiago",
        "bounds": [("2026-09-05T00:00:00-04:00", "2026-09-05T04:00:00Z"),
                   ("2026-09-06T01:00:00-03:00", "2026-09-06T04:00:00Z"),
                   ("2026-09-07T00:00:00-03:00", "2026-09-07T03:00:00Z"),
                   ("2026-09-08T00:00:00-03:00", "2026-09-08T03:00:00Z")],
        "hours": [24, 23, 24], "kwh": [14.4, 13.8, 14.4],
        # The night of the 6th misses 00:00: 5 night hours (23, 01..04) -> 3.42
        "flat": [3.6, 3.45, 3.6], "tou": [3.48, 3.42, 3.48],
        # 23:00-04:00 = 03:00Z .. 02:00-03:00 = 05:00Z: the hour after 23:00 is 01:00
        "hour_range": ("2026-09-05T23:00:00-04:00", "2026-09-06T02:00:00-03:00"),
        "hour_periods": [("2026-09-05T23:00:00-04:00", "2026-09-06T01:00:00-03:00"),
                         ("2026-09-06T01:00:00-03:00", "2026-09-06T02:00:00-03:00")],
    },
}


@pytest.mark.parametrize("case", sorted(DST_CASES))
def test_energy_per_local_day_on_dst_days(server, case):
    c = DST_CASES[case]
    meter = "dst"
    starts = [ts_ms(u.replace("Z", ".000Z")) for _, u in c["bounds"]]
    post_steady(server, meter, starts[0], starts[-1])
    days = [(c["bounds"][i][0], c["bounds"][i + 1][0], c["hours"][i], c["kwh"][i])
            for i in range(3)]
    q = dict(period="day", tz=c["tz"], from_=c["bounds"][0][0], to=c["bounds"][-1][0])

    # No tariff anywhere: kWh only.
    doc = energy(server, meter, **q)
    assert doc["meter_id"] == meter and doc["period"] == "day" and doc["tz"] == c["tz"], doc
    assert (doc["from"], doc["to"]) == (c["bounds"][0][0], c["bounds"][-1][0]), doc
    assert doc["resolution"] == "1h", doc  # whole-hour offsets, changes on full UTC hours
    assert (doc["tariff"], doc["currency"]) == ("none", None), doc
    assert_periods(doc, days)
    # Also addressed by epoch milliseconds of the same instants.
    assert energy(server, meter, period="day", tz=c["tz"], from_=starts[0],
                  to=starts[-1]) == doc

    put_tariff_ok(server, meter, FLAT)
    doc = energy(server, meter, **q)
    assert (doc["tariff"], doc["currency"]) == ("meter", "EUR"), doc
    assert_periods(doc, days, c["flat"])

    put_tariff_ok(server, meter, TOU)
    doc = energy(server, meter, **q)
    assert doc["resolution"] == "1h", doc
    assert_periods(doc, days, c["tou"])

    # Local clock hours around the transition: 0.6 kWh each.
    hfrom, hto = c["hour_range"]
    doc = energy(server, meter, period="hour", tz=c["tz"], from_=hfrom, to=hto)
    assert (doc["from"], doc["to"]) == (hfrom, hto), doc
    # Night hours (01:00-04:59) are all in the 23:00-05:00 window: 0.6 * 0.10 = 0.06 each.
    assert_periods(doc, [(s, e, 1, 0.6) for s, e in c["hour_periods"]],
                   [0.06] * len(c["hour_periods"]))


def test_energy_half_hour_zone_kolkata(server):
    """Asia/Kolkata is +05:30: local hours start at :30 UTC, so sums come from
    the minute rollups. The load differs between even and odd UTC hours so a
    UTC-aligned attribution would show."""
    meter = "kolkata"
    # A reading every minute from 2026-06-09T18:00Z to 2026-06-10T18:59Z; the
    # counter rises 0.01 per reading in even UTC hours and 0.02 in odd ones
    # (by the reading's own time).
    t0 = ts_ms("2026-06-09T18:00:00.000Z")
    rs, hundredths = [], 0
    for i in range(25 * 60):
        ts = t0 + i * MIN
        if i > 0:
            hundredths += 1 if (ts // HOUR) % 2 == 0 else 2
        rs.append(reading(meter, ts, energy=round(2000 + hundredths / 100, 6)))
    assert post_all(server, rs) == (len(rs), 0)

    # UTC hours first, to show the data is as intended: 18:00Z (even):
    # 59 readings with a predecessor * 0.01 = 0.59; 19:00Z (odd): 60 * 0.02 = 1.2.
    doc = energy(server, meter, period="hour", tz="UTC", from_="2026-06-09T18:00:00Z",
                 to="2026-06-09T20:00:00Z")
    assert doc["resolution"] == "1h", doc
    assert_close_list([p["kwh"] for p in doc["periods"]], [0.59, 1.2])

    # Local hours 00:00-03:00 IST = 18:30Z-21:30Z. Each holds 30 readings of one
    # UTC hour and 30 of the next, one even, one odd: 30*0.01 + 30*0.02 = 0.9.
    doc = energy(server, meter, period="hour", tz="Asia/Kolkata",
                 from_="2026-06-10T00:00:00+05:30", to="2026-06-10T03:00:00+05:30")
    assert doc["resolution"] == "1m", doc
    assert_periods(doc, [("2026-06-10T00:00:00+05:30", "2026-06-10T01:00:00+05:30", 1, 0.9),
                         ("2026-06-10T01:00:00+05:30", "2026-06-10T02:00:00+05:30", 1, 0.9),
                         ("2026-06-10T02:00:00+05:30", "2026-06-10T03:00:00+05:30", 1, 0.9)])

    # The local day 2026-06-10 = 2026-06-09T18:30Z .. 2026-06-10T18:30Z:
    # 24 local hours * 0.9 = 21.6 kWh.
    q = dict(period="day", tz="Asia/Kolkata", from_="2026-06-10T00:00:00+05:30",
             to="2026-06-11T00:00:00+05:30")
    day = [("2026-06-10T00:00:00+05:30", "2026-06-11T00:00:00+05:30", 24, 21.6)]
    doc = energy(server, meter, **q)
    assert doc["resolution"] == "1m", doc
    assert_periods(doc, day)
    # flat 0.25: 21.6 * 0.25 = 5.4
    put_tariff_ok(server, meter, FLAT)
    doc = energy(server, meter, **q)
    assert doc["resolution"] == "1m", doc
    assert_periods(doc, day, [5.4])
    # TOU by local clock: 16 h at 0.30, 6 h (23-05) at 0.10, 2 h at 0.20, 0.9 kWh each:
    # 0.9 * (4.8 + 0.6 + 0.4) = 0.9 * 5.8 = 5.22
    put_tariff_ok(server, meter, TOU)
    doc = energy(server, meter, **q)
    assert doc["resolution"] == "1m", doc
    assert_periods(doc, day, [5.22])


def test_energy_half_hour_tariff_window_uses_minute_rollups(server):
    meter = "halfhour"
    # Steady load over the UTC day 2026-06-12 (a reading at 2026-06-11T23:59Z too).
    day0 = ts_ms("2026-06-12T00:00:00.000Z")
    post_steady(server, meter, day0, day0 + DAY)
    q = dict(period="day", tz="UTC", from_=day0, to=day0 + DAY)
    whole_day = [("2026-06-12T00:00:00+00:00", "2026-06-13T00:00:00+00:00", 24, 14.4)]

    # Flat: the price never changes, hourly sums do: 14.4 * 0.25 = 3.6
    put_tariff_ok(server, meter, FLAT)
    doc = energy(server, meter, **q)
    assert doc["resolution"] == "1h", doc
    assert_periods(doc, whole_day, [3.6])

    # Window 07:30-08:00 at 1.00, else 0.10. Readings 07:30..07:59 (30 * 0.01 =
    # 0.3 kWh) at 1.00 = 0.30; the other 1410 readings (14.1 kWh) at 0.10 = 1.41.
    # Total 1.71. (Priced per whole hour it would differ.)
    put_tariff_ok(server, meter, {"currency": "EUR", "price_per_kwh": 0.10,
                                  "windows": [{"from": "07:30", "to": "08:00",
                                               "price_per_kwh": 1.0}]})
    doc = energy(server, meter, **q)
    assert doc["resolution"] == "1m", doc
    assert_periods(doc, whole_day, [1.71])
    # Hour 07: 0.3 kWh at 0.10 + 0.3 kWh at 1.00 = 0.33; hour 08: 0.6 * 0.10 = 0.06
    doc = energy(server, meter, period="hour", tz="UTC", from_=day0 + 7 * HOUR,
                 to=day0 + 9 * HOUR)
    assert doc["resolution"] == "1m", doc
    assert_periods(doc, [("2026-06-12T07:00:00+00:00", "2026-06-12T08:00:00+00:00", 1, 0.6),
                         ("2026-06-12T08:00:00+00:00", "2026-06-12T09:00:00+00:00", 1, 0.6)],
                   [0.33, 0.06])

    # Whole-hour windows in UTC: hourly rollups again. 07:00-08:00 at 1.00:
    # 0.6 * 1.00 + 13.8 * 0.10 = 0.6 + 1.38 = 1.98
    put_tariff_ok(server, meter, {"currency": "EUR", "price_per_kwh": 0.10,
                                  "windows": [{"from": "07:00", "to": "08:00",
                                               "price_per_kwh": 1.0}]})
    doc = energy(server, meter, **q)
    assert doc["resolution"] == "1h", doc
    assert_periods(doc, whole_day, [1.98])


def test_energy_across_year_boundary_day_week_month(server):
    meter = "newyear"
    # Steady load over the Berlin days 2025-12-31 and 2026-01-01:
    # 2025-12-31T00:00+01:00 = 2025-12-30T23:00Z .. 2026-01-02T00:00+01:00 = 2026-01-01T23:00Z,
    # plus one reading at 2025-12-30T22:59Z (the first; it counts nothing).
    start = ts_ms("2025-12-30T23:00:00.000Z")
    end = ts_ms("2026-01-01T23:00:00.000Z")
    post_steady(server, meter, start, end)
    # from/to inside the days: widened to whole local days (to - 1 ms is on Jan 1).
    q = dict(tz="Europe/Berlin", from_="2025-12-31T12:00:00+01:00",
             to="2026-01-01T00:00:01+01:00")

    days = [("2025-12-31T00:00:00+01:00", "2026-01-01T00:00:00+01:00", 24, 14.4),
            ("2026-01-01T00:00:00+01:00", "2026-01-02T00:00:00+01:00", 24, 14.4)]
    doc = energy(server, meter, period="day", **q)
    assert (doc["from"], doc["to"]) == (days[0][0], days[-1][1]), doc
    assert_periods(doc, days)

    # Months: December has 31 * 24 = 744 hours, and so has January. Only the
    # loaded days hold consumption: 14.4 each.
    months = [("2025-12-01T00:00:00+01:00", "2026-01-01T00:00:00+01:00", 744, 14.4),
              ("2026-01-01T00:00:00+01:00", "2026-02-01T00:00:00+01:00", 744, 14.4)]
    doc = energy(server, meter, period="month", **q)
    assert (doc["period"], doc["from"], doc["to"]) == ("month", months[0][0], months[-1][1]), doc
    assert_periods(doc, months)

    # ISO week: 2026-01-01 is a Thursday, so the week runs Monday 2025-12-29 to
    # Monday 2026-01-05 (168 h) and holds both days: 28.8 kWh.
    week = [("2025-12-29T00:00:00+01:00", "2026-01-05T00:00:00+01:00", 168, 28.8)]
    doc = energy(server, meter, period="week", **q)
    assert (doc["period"], doc["from"], doc["to"]) == ("week", week[0][0], week[0][1]), doc
    assert_periods(doc, week)

    # Flat 0.25: days 14.4 * 0.25 = 3.6 each, months likewise, week 28.8 * 0.25 = 7.2.
    put_tariff_ok(server, meter, FLAT)
    assert_periods(energy(server, meter, period="day", **q), days, [3.6, 3.6])
    assert_periods(energy(server, meter, period="month", **q), months, [3.6, 3.6])
    assert_periods(energy(server, meter, period="week", **q), week, [7.2])
    # TOU on ordinary days: 3.48 each (see DST_CASES); the week 6.96.
    put_tariff_ok(server, meter, TOU)
    assert_periods(energy(server, meter, period="day", **q), days, [3.48, 3.48])
    assert_periods(energy(server, meter, period="week", **q), week, [6.96])

    # The same data by UTC days: Dec 31 UTC has all 1440 readings (14.4);
    # Jan 1 UTC only 00:00Z..22:59Z, 23 * 60 readings = 13.8.
    # Months in UTC: December also holds Dec 30 23:00Z..23:59Z (60 readings,
    # 0.6) -> 15.0; January 13.8.
    # TOU in UTC: Dec 31 is an ordinary day: 3.48. Jan 1 misses 23:00-24:00
    # (a 0.10 hour): 3.48 - 0.06 = 3.42. December gets 3.48 + the 23:00Z hour
    # of Dec 30 (0.06) = 3.54.
    utc = dict(tz="UTC", from_="2025-12-31T00:00:00Z", to="2026-01-02T00:00:00Z")
    doc = energy(server, meter, period="day", **utc)
    assert (doc["tz"], doc["from"], doc["to"]) == (
        "UTC", "2025-12-31T00:00:00+00:00", "2026-01-02T00:00:00+00:00"), doc
    assert_periods(doc, [("2025-12-31T00:00:00+00:00", "2026-01-01T00:00:00+00:00", 24, 14.4),
                         ("2026-01-01T00:00:00+00:00", "2026-01-02T00:00:00+00:00", 24, 13.8)],
                   [3.48, 3.42])
    doc = energy(server, meter, period="month", **utc)
    assert_periods(doc, [("2025-12-01T00:00:00+00:00", "2026-01-01T00:00:00+00:00", 744, 15.0),
                         ("2026-01-01T00:00:00+00:00", "2026-02-01T00:00:00+00:00", 744, 13.8)],
                   [3.54, 3.42])


def test_energy_default_timezone_and_csv(server_factory):
    srv = server_factory(args=["--timezone", "America/New_York"])
    meter = "nyc"
    # 2026-07-04 in New York (EDT, -04:00) = 04:00Z .. 2026-07-05T04:00Z.
    d0 = ts_ms("2026-07-04T04:00:00.000Z")
    post_steady(srv, meter, d0, d0 + DAY)
    doc = energy(srv, meter, from_=d0, to=d0 + DAY)  # no tz, no period: day in --timezone
    assert (doc["tz"], doc["period"]) == ("America/New_York", "day"), doc
    assert_periods(doc, [("2026-07-04T00:00:00-04:00", "2026-07-05T00:00:00-04:00", 24, 14.4)])

    # CSV: start,end,kwh,cost; cost is an empty cell without a tariff.
    r = srv.get(url(f"/api/v1/meters/{meter}/energy", from_=d0, to=d0 + DAY, format="csv"))
    assert r.status == 200, r
    assert r.header("content-type") == "text/csv; charset=utf-8", r
    lines = csv_lines(r.body)
    assert lines[0] == "start,end,kwh,cost", lines
    assert len(lines) == 2, lines
    s, e, kwh, cost = lines[1].split(",")
    assert (s, e, cost) == ("2026-07-04T00:00:00-04:00", "2026-07-05T00:00:00-04:00", ""), lines
    assert approx(float(kwh), 14.4), lines
    # With a tariff, through Accept: text/csv: 14.4 * 0.25 = 3.6
    put_tariff_ok(srv, meter, FLAT)
    r = srv.http("GET", url(f"/api/v1/meters/{meter}/energy", from_=d0, to=d0 + DAY),
                 headers={"Accept": "text/csv"})
    assert r.status == 200 and r.header("content-type") == "text/csv; charset=utf-8", r
    lines = csv_lines(r.body)
    assert lines[0] == "start,end,kwh,cost" and len(lines) == 2, lines
    assert approx(float(lines[1].split(",")[3]), 3.6), lines


def test_energy_period_lengths_across_dst_and_empty_periods(server):
    # One reading, long before: every period below is empty (kWh 0, cost 0).
    server.post_ok([reading("cal", ts_ms("2026-01-05T00:00:00.000Z"), energy=1.0)])
    put_tariff_ok(server, "cal", FLAT)
    cases = [
        # (tz, period, from, to, [(start, end, hours)])
        # March 2026 in Berlin loses an hour: 31 * 24 - 1 = 743; October gains one: 745.
        ("Europe/Berlin", "month", "2026-03-10T00:00:00+01:00", "2026-03-11T00:00:00+01:00",
         [("2026-03-01T00:00:00+01:00", "2026-04-01T00:00:00+02:00", 743)]),
        ("Europe/Berlin", "month", "2026-10-10T00:00:00+02:00", "2026-10-11T00:00:00+02:00",
         [("2026-10-01T00:00:00+02:00", "2026-11-01T00:00:00+01:00", 745)]),
        # ISO weeks holding the transitions: 7 * 24 - 1 = 167 and 7 * 24 + 1 = 169.
        ("Europe/Berlin", "week", "2026-03-29T12:00:00+02:00", "2026-03-29T13:00:00+02:00",
         [("2026-03-23T00:00:00+01:00", "2026-03-30T00:00:00+02:00", 167)]),
        ("America/New_York", "week", "2026-11-01T12:00:00-05:00", "2026-11-01T13:00:00-05:00",
         [("2026-10-26T00:00:00-04:00", "2026-11-02T00:00:00-05:00", 169)]),
    ]
    for tz, period, frm, to, want in cases:
        doc = energy(server, "cal", tz=tz, period=period, from_=frm, to=to)
        assert_periods(doc, [w + (0,) for w in want], [0] * len(want))
        assert doc["periods"][0]["kwh"] == 0 and doc["total"]["cost"] == 0, doc
    # Whole DST days by the hour: 23 and 25 periods of one hour.
    for frm, to, n in (("2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00", 23),
                       ("2026-10-25T00:00:00+02:00", "2026-10-26T00:00:00+01:00", 25)):
        doc = energy(server, "cal", tz="Europe/Berlin", period="hour", from_=frm, to=to)
        assert len(doc["periods"]) == n and {p["hours"] for p in doc["periods"]} == {1}, doc
        assert (doc["periods"][0]["start"], doc["periods"][-1]["end"]) == (frm, to)
        # Consecutive: each period starts where the previous ended.
        assert all(a["end"] == b["start"] for a, b in zip(doc["periods"], doc["periods"][1:]))


# ---------------------------------------------------------------------------
# Counter rules through the API (src/core/energy.hpp)

T_RULES = ts_ms("2026-05-10T10:00:00.000Z")


def post_points(srv, meter, points):
    rs = [reading(meter, ts, energy=e) for ts, e in points]
    assert post_all(srv, rs) == (len(rs), 0)


def test_counter_reset_mid_day_continues_from_new_value(server):
    m = "reset"
    pts = [(T_RULES + k * 10 * MIN, e) for k, e in
           enumerate([500.00, 500.10, 500.20, 0.05, 0.15, 0.25, 0.35])]
    post_points(server, m, pts)
    # 10:00 first: 0; 10:10, 10:20: +0.10 each; 10:30 drops to 0.05 (next reading
    # 0.15 stays below 500.20, so not a reboot blip): a restarted counter, 0.05
    # is plausible in 10 min -> 0.05; then +0.10 at 10:40, 10:50, 11:00.
    assert_attribution(server, m, pts, [0, 0.10, 0.10, 0.05, 0.10, 0.10, 0.10])
    # Hour 10: 0.10 + 0.10 + 0.05 + 0.10 + 0.10 = 0.45; hour 11: 0.10.
    assert_close_list(hourly_kwh(server, m, T_RULES, 2), [0.45, 0.10])
    day = energy(server, m, period="day", tz="UTC", from_=T_RULES, to=T_RULES + 1)
    assert_close_list([p["kwh"] for p in day["periods"]], [0.55])


def test_counter_zero_reboot_blip_counts_nothing(server):
    m = "reboot"
    pts = [(T_RULES + k * 10 * MIN, e) for k, e in
           enumerate([12345.6, 12345.7, 0.0, 12345.9, 12346.0])]
    post_points(server, m, pts)
    # 10:20 reports 0 and the next (12345.9) is back above 12345.7: an outlier, 0.
    # 10:30 counts from the last good reading 12345.7: 0.2. 10:40: 0.1.
    # Total 0.4 = 12346.0 - 12345.6: nothing lost, nothing doubled.
    assert_attribution(server, m, pts, [0, 0.1, 0, 0.2, 0.1])
    assert_close_list(hourly_kwh(server, m, T_RULES, 1), [0.4])


def test_counter_16bit_wrap(server):
    m = "wrap"
    pts = [(T_RULES + k * MIN, e) for k, e in
           enumerate([65.50, 65.51, 65.52, 65.53, 0.01, 0.02, 0.03])]
    post_points(server, m, pts)
    # +0.01 three times; 65.53 -> 0.01 is a reset (next 0.02 stays low), and
    # 0.01 <= plausible(1 min) = 1000 kW * 1/60 h + 0.01 = 16.68: counts 0.01;
    # then +0.01 twice. Total 6 * 0.01 = 0.06.
    assert_attribution(server, m, pts, [0, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01])
    assert_close_list(hourly_kwh(server, m, T_RULES, 1), [0.06])


def test_counter_garbage_spike_counts_nothing(server):
    m = "spike"
    pts = [(T_RULES + k * MIN, e) for k, e in
           enumerate([200.00, 200.01, 987654321.0, 200.03, 200.04])]
    post_points(server, m, pts)
    # The spike jumps far beyond plausible(1 min) = 16.68 and the next reading
    # is below it: an outlier, 0. 200.03 counts from 200.01: 0.02; then 0.01.
    # Total 0.04 = 200.04 - 200.00.
    assert_attribution(server, m, pts, [0, 0.01, 0, 0.02, 0.01])
    assert_close_list(hourly_kwh(server, m, T_RULES, 1), [0.04])


def test_counter_rules_use_neighbours_outside_the_queried_range(server):
    m = "context"
    pts = [(T_RULES + k * MIN, e) for k, e in enumerate([0.50, 0.51, 0.10, 0.53, 0.54])]
    # While 0.10 is the newest reading it is not an outlier yet: a drop to 0.10
    # is a plausible restart and counts 0.10. Hour total 0.01 + 0.10 = 0.11.
    post_points(server, m, pts[:3])
    assert_close_list(hourly_kwh(server, m, T_RULES, 1), [0.11])
    # Once 0.53 follows (back above 0.51), 0.10 is a reboot blip: 0. 0.53
    # counts from 0.51: 0.02; 0.54: 0.01. Total 0.04 = 0.54 - 0.50.
    post_points(server, m, pts[3:])
    assert_attribution(server, m, pts, [0, 0.01, 0, 0.02, 0.01])
    assert_close_list(hourly_kwh(server, m, T_RULES, 1), [0.04])
    # Ranges holding a single reading: the rules need its neighbours outside
    # the range (the next one to see that 0.10 is a blip, the one before the
    # blip to count 0.53 from), raw (10s) and rollup (1m) alike.
    for minute, want in ((2, 0), (3, 0.02)):
        for step in ("10s", "1m"):
            doc = series(server, m, from_=T_RULES + minute * MIN,
                         to=T_RULES + (minute + 1) * MIN, step=step, fields="energy")
            assert doc["readings"] == [1], doc
            assert_close_list(doc["energy"]["kwh"], [want], what=f"minute {minute} {step}")


def test_counter_gap_consumption_belongs_to_where_the_gap_ends(server):
    m = "gap"
    t21 = ts_ms("2026-05-10T21:00:00.000Z")
    # 21:00..22:00 every minute (61 readings, 300.00..300.60), then nothing
    # until 03:30 next day, where the counter stands 3.00 higher (303.60),
    # then 03:31 and 03:32.
    pts = [(t21 + i * MIN, round(300 + i * 0.01, 6)) for i in range(61)]
    t_end = ts_ms("2026-05-11T03:30:00.000Z")
    pts += [(t_end, 303.60), (t_end + MIN, 303.61), (t_end + 2 * MIN, 303.62)]
    post_points(server, m, pts)
    # The jump of 3.00 over 5.5 h is plausible (5 500 kWh at 1 MW) and is
    # attributed to the 03:30 reading, not spread over the gap.
    assert_attribution(server, m, pts, [0] + [0.01] * 60 + [3.00, 0.01, 0.01])
    # Hours 21..03 (UTC): 21: 59 * 0.01 = 0.59; 22: 0.01 (the 22:00 reading);
    # 23, 00, 01, 02: 0; 03: 3.00 + 0.01 + 0.01 = 3.02.
    assert_close_list(hourly_kwh(server, m, t21, 7), [0.59, 0.01, 0, 0, 0, 0, 3.02])
    # Days: 2026-05-10 gets 0.60, 2026-05-11 gets 3.02.
    doc = energy(server, m, period="day", tz="UTC", from_="2026-05-10T00:00:00Z",
                 to="2026-05-12T00:00:00Z")
    assert_close_list([p["kwh"] for p in doc["periods"]], [0.60, 3.02])
    # In Berlin (CEST, +02:00) the gap ends at 05:30 local on 05-11 and begins at
    # 00:00 local on 05-11 (22:00Z): 05-10 local holds 21:00Z..21:59Z = 0.59;
    # 05-11 local: 0.01 + 3.02 = 3.03.
    doc = energy(server, m, period="day", tz="Europe/Berlin", from_="2026-05-10T00:00:00+02:00",
                 to="2026-05-12T00:00:00+02:00")
    assert_close_list([p["kwh"] for p in doc["periods"]], [0.59, 3.03])


GAP_JUMP_POINTS = [  # (minutes after T_RULES, counter)
    (0, 50.00),
    (120, 51.50),   # +1.50 in 2 h
    (121, 51.51),   # +0.01 in 1 min
    (240, 60.00),   # +8.49 in 1 h 59 min
    (241, 60.01),   # +0.01
    (242, 10.00),   # drops to 10: a new counter (the next reading stays low)
    (243, 10.01),   # +0.01
]


@pytest.mark.parametrize("max_power_kw,want", [
    # Default 1 MW: plausible(dt) = 1000 kW * dt + 0.01, 16.68 for 1 min. Every
    # rise is plausible, 8.49 counts; 10.00 after a drop <= 16.68: the counter
    # restarted from 0, counts 10.00.
    (None, [0, 1.50, 0.01, 8.49, 0.01, 10.00, 0.01]),
    # 1 kW: plausible(dt) = 1 kW * dt + 0.01.
    #   2 h: 2.01 >= 1.50 -> 1.50.  1 h 59 min: 1.9833 + 0.01 < 8.49 -> 0 (and
    #   not an outlier: the next reading stays up).  1 min: 0.0267 >= 0.01.
    #   10.00 after a drop > 0.0267 -> 0 (a new counter that did not start at 0).
    (1, [0, 1.50, 0.01, 0, 0.01, 0, 0.01]),
], ids=["default-1MW", "max-power-1kW"])
def test_counter_plausibility_threshold(server_factory, max_power_kw, want):
    args = [] if max_power_kw is None else ["--max-power-kw", str(max_power_kw)]
    srv = server_factory(args=args)
    m = "jumps"
    pts = [(T_RULES + mins * MIN, e) for mins, e in GAP_JUMP_POINTS]
    post_points(srv, m, pts)
    assert_attribution(srv, m, pts, want)
    # Hours 10, 12, 14 (UTC) hold the readings: [0], [1.50, 0.01], [8.49|0, 0.01, 10|0, 0.01]
    assert_close_list(hourly_kwh(srv, m, T_RULES, 5),
                      [want[0], 0, want[1] + want[2], 0, sum(want[3:])])


# ---------------------------------------------------------------------------
# Late and duplicate readings

T_LATE = ts_ms("2026-08-03T00:00:00.000Z")


def glitchy_day():
    """(ts, energy, kWh attributed) for minutes 0..239 and 300..359 after
    T_LATE: a steady 0.01/min with a reboot zero, a garbage spike, a reset and
    a gap, each far enough from the others that the rules apply one at a time."""
    out = []
    for m in range(240):
        e, kwh = round(500 + m * 0.01, 6), (0 if m == 0 else 0.01)
        if m == 75:
            e, kwh = 0.0, 0          # reboot zero: outlier
        elif m == 76:
            kwh = 0.02               # counts from minute 74 (500.74 -> 500.76)
        elif m == 130:
            e, kwh = 1e6, 0          # garbage spike: outlier
        elif m == 131:
            kwh = 0.02               # counts from minute 129
        elif m >= 200:
            e = round(0.05 + (m - 200) * 0.01, 6)   # counter reset to 0.05 at minute 200
            kwh = 0.05 if m == 200 else 0.01
        out.append((T_LATE + m * MIN, e, kwh))
    # Minutes 240..299: nothing. Minute 300: the counter is 1.00 above minute 239
    # (0.05 + 0.39 = 0.44 -> 1.44), then 0.01/min.
    for m in range(300, 360):
        out.append((T_LATE + m * MIN, round(1.44 + (m - 300) * 0.01, 6),
                    1.00 if m == 300 else 0.01))
    return out


# Hourly kWh of glitchy_day():
#   hour 0: minutes 1..59 -> 0.59
#   hour 1: 58 * 0.01 + 0 (minute 75) + 0.02 (minute 76) = 0.60
#   hour 2: likewise with the spike at 130 -> 0.60
#   hour 3: 59 * 0.01 + 0.05 (reset at 200) = 0.64
#   hour 4: no readings -> 0
#   hour 5: 1.00 + 59 * 0.01 = 1.59
GLITCHY_HOURS = [0.59, 0.60, 0.60, 0.64, 0, 1.59]


def test_late_and_shuffled_readings_give_the_in_order_result(server):
    data = glitchy_day()
    rng = random.Random(4242)
    # "inorder": one request in time order. "shuffled": random order, 7 per
    # request. "reverse": newest first, 10 per request. "onebatch": one
    # shuffled request (the server sorts it).
    orders = {"inorder": (sorted(data), 5000)}
    shuffled = list(data)
    rng.shuffle(shuffled)
    orders["shuffled"] = (shuffled, 7)
    orders["reverse"] = (sorted(data, reverse=True), 10)
    one = list(data)
    rng.shuffle(one)
    orders["onebatch"] = (one, 5000)
    for meter, (seq, per_request) in orders.items():
        rs = [reading(meter, ts, energy=e) for ts, e, _ in seq]
        for i in range(0, len(rs), per_request):
            r = server.post(rs[i:i + per_request])
            assert r.status == 201, r
            assert r.json() == {"accepted": len(rs[i:i + per_request]), "duplicates": 0}

    points = [(ts, e) for ts, e, _ in data]
    want = [k for _, _, k in data]
    reference = None
    for meter in orders:
        assert_attribution(server, meter, points, want)
        assert_close_list(hourly_kwh(server, meter, T_LATE, 6), GLITCHY_HOURS, what=meter)
        # Everything but meter_id identical to the in-order meter, up to float noise.
        docs = {step: series(server, meter, from_=T_LATE, to=T_LATE + 6 * HOUR, step=step)
                for step in ("1m", "1h", "10s", "1d")}
        if reference is None:
            reference = docs
            continue
        for step, doc in docs.items():
            ref = reference[step]
            assert doc["time"] == ref["time"] and doc["readings"] == ref["readings"], step
            assert doc["energy"]["first"] == ref["energy"]["first"], step
            assert doc["energy"]["last"] == ref["energy"]["last"], step
            assert_close_list(doc["energy"]["kwh"], ref["energy"]["kwh"], 1e-9, f"{meter} {step}")
    # One day in total: 0.59 + 0.60 + 0.60 + 0.64 + 1.59 = 4.02
    for meter in orders:
        doc = energy(server, meter, period="day", tz="UTC", from_=T_LATE, to=T_LATE + DAY)
        assert_close_list([p["kwh"] for p in doc["periods"]], [4.02], what=meter)


def random_glitchy_readings(meter, rng, start, n=800):
    """A counter rising 0..0.02 kWh per reading 5..90 s apart, with random
    reboot zeros (5 %), garbage spikes (4 %, sometimes two in a row), resets to
    a small value (1 %), drops to half (1 %) and gaps of 1-3 hours (1 %)."""
    out, ts, e = [], start, 100.0
    for _ in range(n):
        ts += rng.randrange(5_000, 90_000)
        if rng.random() < 0.01:
            ts += rng.randrange(1, 4) * HOUR
        e = round(e + rng.uniform(0, 0.02), 6)
        x, v = rng.random(), e
        if x < 0.05:
            v = 0.0
        elif x < 0.09:
            v = round(e * 1000 + 12345, 3)
        elif x < 0.10:
            e = v = round(rng.uniform(0, 0.5), 6)
        elif x < 0.11:
            v = round(e * 0.5, 6)
        out.append(reading(meter, ts, energy=v))
    return out


def test_rollups_match_raw_with_random_glitches_arriving_late(server):
    """The rollups are corrected piece by piece as late readings change their
    neighbours' attribution; the raw path computes everything at once from
    the stored readings. Both must agree, whatever the arrival order."""
    rng = random.Random(7)
    start = ts_ms("2026-10-01T00:00:00.000Z")
    ref = random_glitchy_readings("inorder", rng, start)
    assert post_all(server, ref) == (800, 0)
    late = [dict(r, meter_id="late") for r in ref]
    rng.shuffle(late)
    i = 0
    while i < len(late):
        k = rng.randrange(1, 40)
        assert server.post_ok(late[i:i + k])["accepted"] == len(late[i:i + k])
        i += k
    end = ts_ms(ref[-1]["ts"]) + 1
    raw_ref = series(server, "inorder", from_=start, to=end, step="30s", fields="energy")
    assert raw_ref["source"] == "raw"
    for meter in ("inorder", "late"):
        raw = series(server, meter, from_=start, to=end, step="30s", fields="energy")
        # The raw path depends only on what is stored: the same for both meters.
        assert raw["time"] == raw_ref["time"] and raw["energy"] == raw_ref["energy"], meter
        for step, ms in (("1m", MIN), ("1h", HOUR)):
            sums = {}
            for t, k in zip(raw["time"], raw["energy"]["kwh"]):
                sums[bucket_of(t, ms)] = sums.get(bucket_of(t, ms), 0.0) + k
            doc = series(server, meter, from_=start, to=end, step=step, fields="energy")
            assert doc["time"] == sorted(sums), (meter, step)
            assert_close_list(doc["energy"]["kwh"], [sums[t] for t in doc["time"]], 1e-9,
                              f"{meter} {step}")
        hours = (bucket_of(end - 1, HOUR) + HOUR - start) // HOUR
        per_hour = {}
        for t, k in zip(raw["time"], raw["energy"]["kwh"]):
            per_hour[bucket_of(t, HOUR)] = per_hour.get(bucket_of(t, HOUR), 0.0) + k
        assert_close_list(hourly_kwh(server, meter, start, hours),
                          [per_hour.get(start + h * HOUR, 0.0) for h in range(hours)], 1e-9,
                          f"{meter} energy")


def test_duplicates_are_not_counted_twice(server):
    m = "dups"
    t0 = ts_ms("2026-08-10T00:00:00.000Z")
    rs = steady(m, t0, t0 + 153 * MIN, kwh0=700.0)  # minutes 0..152, 700.00..701.52
    first = rs[:100]
    assert server.post_ok(first) == {"accepted": 100, "duplicates": 0}
    # The very same request again (a retry whose answer was lost).
    assert server.post_ok(first) == {"accepted": 0, "duplicates": 100}
    # Overlapping: minutes 50..149, half of them known.
    assert server.post_ok(rs[50:150]) == {"accepted": 50, "duplicates": 50}
    # Repeats inside one request: minutes 150 and 151 twice each.
    assert server.post_ok([rs[150], rs[150], rs[151], rs[151]]) == {"accepted": 2,
                                                                    "duplicates": 2}
    # A repeat inside one request with another value: the first one is stored.
    assert server.post_ok([rs[152], dict(rs[152], energy=999.0)]) == {"accepted": 1,
                                                                      "duplicates": 1}
    # Known (meter, ts) with other values: a duplicate, stored values untouched.
    changed = [dict(rs[10], energy=0.0), dict(rs[20], energy=99999.0, voltage=1.0)]
    assert server.post_ok(changed) == {"accepted": 0, "duplicates": 2}

    got, _ = server.all_readings(m)
    assert [g["ts"] for g in got] == [iso(t0 + i * MIN) for i in range(153)]
    assert got[10]["energy"] == 700.10 and got[20]["energy"] == 700.20, (got[10], got[20])
    assert got[20]["voltage"] == 230.0
    assert got[152]["energy"] == 701.52, got[152]
    # Hours: 0: minutes 1..59 = 0.59; 1: 60 * 0.01 = 0.60; 2: minutes 120..152 = 0.33.
    assert_close_list(hourly_kwh(server, m, t0, 3), [0.59, 0.60, 0.33])
    doc = series(server, m, from_=t0, to=t0 + 3 * HOUR, step="1h")
    assert doc["readings"] == [60, 60, 33], doc
    assert doc["energy"]["last"] == [700.59, 701.19, 701.52], doc
    assert_close_list(doc["energy"]["kwh"], [0.59, 0.60, 0.33])
    doc = series(server, m, from_=t0, to=t0 + 3 * HOUR, step="1m")
    assert doc["readings"] == [1] * 153, doc
    assert doc["voltage"]["max"] == [230] * 153, doc["voltage"]


# ---------------------------------------------------------------------------
# Series

T_SERIES = ts_ms("2026-07-01T10:00:00.000Z")


def random_readings(meter, seed=20261127, n=1000):
    """n readings 2..15 s apart (ms resolution), a 20-minute gap in the middle
    (empty buckets), frequency/power_factor sometimes absent and entirely absent
    for 10 minutes after the gap; a counter that only rises, plausibly."""
    rng = random.Random(seed)
    out, ts, e = [], T_SERIES, 5000.0
    gap_end = None
    for i in range(n):
        ts += rng.randrange(2000, 15000)
        if i == n // 2:
            ts += 20 * MIN
            gap_end = ts
        e = round(e + rng.uniform(0, 0.004), 6)
        extra = {}
        quiet = gap_end is not None and ts < gap_end + 10 * MIN
        if not quiet and rng.random() < 0.7:
            extra["frequency"] = round(rng.uniform(49.9, 50.1), 3)
        if not quiet and rng.random() < 0.5:
            extra["power_factor"] = round(rng.uniform(0.8, 1.0), 3)
        out.append(reading(meter, ts, voltage=round(rng.uniform(220, 240), 1),
                           current=round(rng.uniform(-5, 20), 3),
                           power=round(rng.uniform(-1000, 4000), 1), energy=e, **extra))
    return out


@pytest.fixture
def random_meter(server):
    rs = random_readings("rnd")
    assert post_all(server, rs) == (len(rs), 0)
    stored, _ = server.all_readings("rnd", limit=10000)
    assert len(stored) == len(rs)
    last = ts_ms(stored[-1]["ts"])
    return server, stored, T_SERIES, last + 1


def test_series_rollups_equal_raw_aggregation(random_meter):
    srv, stored, lo, hi = random_meter
    # Each step against the same buckets computed here from GET /readings.
    for step, ms, source in (("5m", 5 * MIN, "rollup_1m"), ("1m", MIN, "rollup_1m"),
                             ("60s", MIN, "rollup_1m"), ("1h", HOUR, "rollup_1h"),
                             ("10s", 10_000, "raw"), ("90s", 90_000, "raw")):
        doc = series(srv, "rnd", from_=lo, to=hi, step=step)
        assert doc["source"] == source, (step, doc["source"])
        assert doc["step_ms"] == ms, doc["step_ms"]
        assert doc["meter_id"] == "rnd"
        assert_series_equals_python(doc, python_buckets(stored, ms))

    # A range starting and ending in the middle of the data, off the grid: the
    # buckets it is widened to, with the consumption of their first readings
    # counted from readings before the range (raw: read as context).
    lo2, hi2 = lo + 37 * MIN + 10_500, lo + 87 * MIN + 4_321
    for step, ms in (("10s", 10_000), ("90s", 90_000), ("1m", MIN), ("5m", 5 * MIN)):
        full = python_buckets(stored, ms)
        want = {k: v for k, v in full.items()
                if bucket_of(lo2, ms) <= k < bucket_of(hi2 - 1, ms) + ms}
        doc = series(srv, "rnd", from_=lo2, to=hi2, step=step)
        assert (doc["from"], doc["to"]) == (iso(bucket_of(lo2, ms)),
                                            iso(bucket_of(hi2 - 1, ms) + ms)), doc["from"]
        assert_series_equals_python(doc, want)

    # The 1d bucket (rollup_1h): one UTC day, every reading; its kWh is the
    # whole rise minus nothing (the first reading counts nothing).
    doc = series(srv, "rnd", from_=lo, to=hi, step="1d")
    assert (doc["source"], doc["step"], doc["buckets"]) == ("rollup_1h", "1d", 1), doc
    assert doc["time"] == [bucket_of(lo, DAY)] and doc["readings"] == [len(stored)]
    assert abs(doc["energy"]["kwh"][0] - (stored[-1]["energy"] - stored[0]["energy"])) <= 1e-9

    # kWh of each 5-minute rollup bucket = sum of the raw 30 s buckets in it.
    five = series(srv, "rnd", from_=lo, to=hi, step="5m", fields="energy")
    raw = series(srv, "rnd", from_=lo, to=hi, step="30s", fields="energy")
    assert raw["source"] == "raw"
    sums = {}
    for t, k in zip(raw["time"], raw["energy"]["kwh"]):
        sums[bucket_of(t, 5 * MIN)] = sums.get(bucket_of(t, 5 * MIN), 0.0) + k
    assert five["time"] == sorted(sums)
    assert_close_list(five["energy"]["kwh"], [sums[t] for t in five["time"]], 1e-9)


def test_series_shape_empty_buckets_nulls_and_fields(random_meter):
    srv, stored, lo, hi = random_meter
    doc = series(srv, "rnd", from_=lo, to=hi, step="5m")
    column_lengths_ok(doc)
    assert set(doc) == {"meter_id", "from", "to", "step", "step_ms", "source", "buckets", "time",
                        "readings", "voltage", "current", "power", "frequency", "power_factor",
                        "energy"}, set(doc)
    assert set(doc["voltage"]) == {"avg", "min", "max", "count"}
    assert set(doc["energy"]) == {"first", "last", "kwh"}
    # Empty buckets are omitted: the 20-minute gap leaves consecutive times
    # more than step_ms apart, and no bucket has 0 readings.
    gaps = [b - a for a, b in zip(doc["time"], doc["time"][1:])]
    assert max(gaps) >= 4 * 5 * MIN, gaps
    assert all(g % (5 * MIN) == 0 and g > 0 for g in gaps), gaps
    assert min(doc["readings"]) > 0
    assert sum(doc["readings"]) == len(stored)
    # After the gap there is a whole 5-minute bucket without frequency and
    # power factor: count 0, avg/min/max null.
    quiet = [i for i, c in enumerate(doc["frequency"]["count"]) if c == 0]
    assert quiet, doc["frequency"]["count"]
    for i in quiet:
        assert doc["frequency"]["avg"][i] is None and doc["frequency"]["min"][i] is None
        assert doc["frequency"]["max"][i] is None
    pf_quiet = [i for i, c in enumerate(doc["power_factor"]["count"]) if c == 0]
    assert pf_quiet and all(doc["power_factor"]["avg"][i] is None for i in pf_quiet)
    # Voltage always has values.
    assert doc["voltage"]["count"] == doc["readings"]

    # fields= selects columns; time and readings are always there.
    doc = series(srv, "rnd", from_=lo, to=hi, step="5m", fields="power,energy")
    assert set(doc) == {"meter_id", "from", "to", "step", "step_ms", "source", "buckets", "time",
                        "readings", "power", "energy"}, set(doc)
    column_lengths_ok(doc)
    doc = series(srv, "rnd", from_=lo, to=hi, step="5m", fields="frequency")
    assert "energy" not in doc and "voltage" not in doc and "frequency" in doc


def test_series_sources_and_step_names(random_meter):
    srv, _, lo, hi = random_meter
    for step, name, ms, source in (("10s", "10s", 10_000, "raw"), ("90s", "90s", 90_000, "raw"),
                                   ("60s", "1m", MIN, "rollup_1m"),
                                   ("5m", "5m", 5 * MIN, "rollup_1m"),
                                   ("120m", "2h", 2 * HOUR, "rollup_1h"),
                                   ("1h", "1h", HOUR, "rollup_1h"),
                                   ("24h", "1d", DAY, "rollup_1h"),
                                   ("1d", "1d", DAY, "rollup_1h")):
        doc = series(srv, "rnd", from_=lo, to=hi, step=step)
        assert (doc["step"], doc["step_ms"], doc["source"]) == (name, ms, source), (step, doc)
    doc = series(srv, "rnd", from_=lo, to=lo + HOUR, step="1s")  # 3 600 buckets at most
    assert (doc["step"], doc["step_ms"], doc["source"]) == ("1s", 1000, "raw"), doc


def test_series_range_widened_to_step_grid(random_meter):
    srv, stored, _, _ = random_meter
    # 10:02:30 .. 10:17:10 with 5m: widened to 10:00 .. 10:20 (4 buckets at most).
    lo, hi = T_SERIES + 150_000, T_SERIES + 17 * MIN + 10_000
    doc = series(srv, "rnd", from_=lo, to=hi, step="5m")
    assert (doc["from"], doc["to"]) == ("2026-07-01T10:00:00.000Z", "2026-07-01T10:20:00.000Z")
    inside = [r for r in stored if T_SERIES <= ts_ms(r["ts"]) < T_SERIES + 20 * MIN]
    assert doc["time"] == sorted({bucket_of(ts_ms(r["ts"]), 5 * MIN) for r in inside})
    assert sum(doc["readings"]) == len(inside)
    # A to on the grid is not widened: [10:00, 10:20) exactly.
    doc = series(srv, "rnd", from_="2026-07-01T10:00:00Z", to="2026-07-01T10:20:00Z", step="5m")
    assert (doc["from"], doc["to"]) == ("2026-07-01T10:00:00.000Z", "2026-07-01T10:20:00.000Z")
    # 1h: 10:02:30 .. 10:17:10 -> 10:00 .. 11:00.
    doc = series(srv, "rnd", from_=lo, to=hi, step="1h")
    assert (doc["from"], doc["to"]) == ("2026-07-01T10:00:00.000Z", "2026-07-01T11:00:00.000Z")


def test_series_step_auto_ladder(random_meter):
    srv, _, _, _ = random_meter
    t = T_SERIES
    # points=1000 (default). 1 h: 1s would be 3 600 buckets, 10s 360 -> 10s.
    # 1 d: 10s 8 640, 1m 1 440, 5m 288 -> 5m. 30 d: 5m 8 640, 15m 2 880, 1h 720 -> 1h.
    for span, name, source in ((HOUR, "10s", "raw"), (DAY, "5m", "rollup_1m"),
                               (30 * DAY, "1h", "rollup_1h")):
        doc = series(srv, "rnd", from_=t, to=t + span, step="auto")
        assert (doc["step"], doc["source"]) == (name, source), (span, doc["step"])
        doc2 = series(srv, "rnd", from_=t, to=t + span)  # step defaults to auto
        assert doc2["step"] == name
    # points=100 over 1 d: 5m gives 288, 15m 96 -> 15m. points=10: 1h 24, 6h 4 -> 6h.
    assert series(srv, "rnd", from_=t, to=t + DAY, points=100)["step"] == "15m"
    assert series(srv, "rnd", from_=t, to=t + DAY, points=10)["step"] == "6h"
    # points=1 over a year: nothing fits, the largest step of the ladder (1d).
    assert series(srv, "rnd", from_=t, to=t + 365 * DAY, points=1)["step"] == "1d"


def test_series_step_auto_exact_fit(random_meter):
    """docs/api.md: step=auto picks "the smallest step of the ladder ... that
    gives at most this many buckets". An hour aligned to the grid, [10:00,
    11:00), is exactly 360 buckets of 10s, so points=360 allows 10s."""
    srv, _, _, _ = random_meter
    doc = series(srv, "rnd", from_=T_SERIES, to=T_SERIES + HOUR, points=360)
    assert (doc["from"], doc["to"]) == ("2026-07-01T10:00:00.000Z", "2026-07-01T11:00:00.000Z")
    assert doc["step"] == "10s", (doc["step"], doc["buckets"])
    # Likewise a whole UTC day is 288 buckets of 5m.
    d0 = bucket_of(T_SERIES, DAY)
    assert series(srv, "rnd", from_=d0, to=d0 + DAY, points=288)["step"] == "5m"


def test_series_csv(random_meter):
    srv, _, lo, hi = random_meter
    path = "/api/v1/meters/rnd/series"
    doc = series(srv, "rnd", from_=lo, to=hi, step="5m")
    r = srv.get(url(path, from_=lo, to=hi, step="5m", format="csv"))
    assert r.status == 200, r
    assert r.header("content-type") == "text/csv; charset=utf-8", r
    lines = csv_lines(r.body)
    header = ["time", "readings"]
    for f in ALL_SERIES_FIELDS:
        header += [f"{f}_avg", f"{f}_min", f"{f}_max", f"{f}_count"]
    header += ["energy_first", "energy_last", "kwh"]
    assert lines[0] == ",".join(header), lines[0]
    assert len(lines) == 1 + doc["buckets"], (len(lines), doc["buckets"])
    for i, line in enumerate(lines[1:]):
        cells = dict(zip(header, line.split(",")))
        assert len(line.split(",")) == len(header), line
        assert cells["time"] == iso(doc["time"][i])
        assert int(cells["readings"]) == doc["readings"][i]
        for f in ALL_SERIES_FIELDS:
            assert int(cells[f"{f}_count"]) == doc[f]["count"][i]
            for s in ("avg", "min", "max"):
                v, cell = doc[f][s][i], cells[f"{f}_{s}"]
                if v is None:
                    assert cell == "", (f, s, i, line)
                else:
                    assert float(cell) == v, (f, s, i, line)
        assert float(cells["energy_first"]) == doc["energy"]["first"][i]
        assert float(cells["energy_last"]) == doc["energy"]["last"][i]
        assert float(cells["kwh"]) == doc["energy"]["kwh"][i]
    # At least one row has empty frequency cells (count 0).
    assert any(",,,,0," in ln for ln in lines[1:]), "no empty frequency cells"

    # Accept: text/csv gives the same bytes; an explicit format=json wins over it.
    r2 = srv.http("GET", url(path, from_=lo, to=hi, step="5m"), headers={"Accept": "text/csv"})
    assert r2.status == 200 and r2.header("content-type") == "text/csv; charset=utf-8", r2
    assert r2.body == r.body
    r3 = srv.http("GET", url(path, from_=lo, to=hi, step="5m", format="json"),
                  headers={"Accept": "text/csv"})
    assert r3.status == 200 and r3.json() == doc
    r4 = srv.http("GET", url(path, from_=lo, to=hi, step="5m"),
                  headers={"Accept": "application/json, text/csv"})
    assert r4.status == 200 and r4.json() == doc

    # fields= narrows the CSV columns too.
    r = srv.get(url(path, from_=lo, to=hi, step="5m", format="csv", fields="power,energy"))
    lines = csv_lines(r.body)
    assert lines[0] == ("time,readings,power_avg,power_min,power_max,power_count,"
                        "energy_first,energy_last,kwh"), lines[0]
    assert len(lines) == 1 + doc["buckets"]


def test_readings_csv_pages_with_link_header(server):
    m = "csvpages"
    t0 = ts_ms("2026-09-01T00:00:00.000Z")
    rs = [reading(m, t0 + i * 1000, energy=round(10 + i * 0.001, 6),
                  **({"frequency": 50.0} if i % 2 else {})) for i in range(250)]
    assert post_all(server, rs) == (250, 0)
    path = url(f"/api/v1/meters/{m}/readings", limit=100, format="csv")
    rows, pages = [], 0
    while path is not None:
        pages += 1
        assert pages <= 3
        r = server.get(path)
        assert r.status == 200, r
        assert r.header("content-type") == "text/csv; charset=utf-8", r
        lines = csv_lines(r.body)
        assert lines[0] == "time,voltage,current,power,energy,frequency,power_factor"
        rows += lines[1:]
        link = r.header("link")
        if len(lines) - 1 == 100:
            mt = re.fullmatch(r'<(/api/v1/meters/csvpages/readings\?[^>]*&format=csv)>; rel="next"',
                              link or "")
            assert mt, link
            path = mt.group(1)
        else:
            assert link is None, link
            path = None
    assert pages == 3 and len(rows) == 250
    # Rows in ts order, values as stored; absent frequency is an empty cell.
    assert rows[0] == f"{iso(t0)},230,1.5,345,10,,"
    assert rows[1] == f"{iso(t0 + 1000)},230,1.5,345,10.001,50,"
    assert [ln.split(",")[0] for ln in rows] == [iso(t0 + i * 1000) for i in range(250)]
    # Accept: text/csv without format: also CSV, and its Link names the CSV page.
    r = server.http("GET", url(f"/api/v1/meters/{m}/readings", limit=100),
                    headers={"Accept": "text/csv"})
    assert r.status == 200 and r.header("content-type") == "text/csv; charset=utf-8", r
    assert len(csv_lines(r.body)) == 101
    assert r.header("link", "").endswith('&format=csv>; rel="next"'), r
    # A page that is not full has no Link.
    r = server.get(url(f"/api/v1/meters/{m}/readings", limit=1000, format="csv"))
    assert r.status == 200 and r.header("link") is None and len(csv_lines(r.body)) == 251, r


# ---------------------------------------------------------------------------
# Bad input

T_BAD = ts_ms("2026-04-01T00:00:00.000Z")

BAD_SERIES = [
    ("step=0s", "invalid_parameter"),
    ("step=2d", "invalid_parameter"),
    ("step=25h", "invalid_parameter"),
    ("step=86401s", "invalid_parameter"),
    ("step=abc", "invalid_parameter"),
    ("step=5", "invalid_parameter"),
    ("step=-5m", "invalid_parameter"),
    ("step=1.5h", "invalid_parameter"),
    ("step=", "invalid_parameter"),
    ("points=0", "invalid_parameter"),
    ("points=10001", "invalid_parameter"),
    ("points=x", "invalid_parameter"),
    ("points=-1", "invalid_parameter"),
    ("fields=foo", "invalid_parameter"),
    ("fields=power,foo", "invalid_parameter"),
    ("fields=Power", "invalid_parameter"),
    ("fields=", "invalid_parameter"),
    ("format=xml", "invalid_parameter"),
    ("format=CSV", "invalid_parameter"),
    (f"from={T_BAD}&to={T_BAD}", "invalid_parameter"),
    (f"from={T_BAD + 1}&to={T_BAD}", "invalid_parameter"),
    ("from=yesterday", "invalid_parameter"),
    ("to=2026-04-01T00:00:00", "invalid_parameter"),  # no offset
    # 30 days of 1 s buckets: 2 592 000 > 10 000
    (f"step=1s&from={T_BAD}&to={T_BAD + 30 * DAY}", "range_too_large"),
    # 10 001 one-second buckets
    (f"step=1s&from={T_BAD}&to={T_BAD + 10_001_000}", "range_too_large"),
]


@pytest.fixture
def bad_input_server(server):
    server.post_ok([reading("m", T_BAD + i * MIN, energy=1 + i * 0.01) for i in range(3)])
    return server


@pytest.mark.parametrize("query,code", BAD_SERIES, ids=[q for q, _ in BAD_SERIES])
def test_series_bad_parameters(bad_input_server, query, code):
    r = bad_input_server.get(f"/api/v1/meters/m/series?{query}")
    assert_error(r, 400, code)


def test_series_bucket_limit_is_inclusive(bad_input_server):
    # Exactly 10 000 one-second buckets are allowed.
    doc = series(bad_input_server, "m", from_=T_BAD, to=T_BAD + 10_000_000, step="1s")
    assert doc["buckets"] == 3 and doc["source"] == "raw"
    doc = series(bad_input_server, "m", from_=T_BAD, to=T_BAD + DAY, points=10000)
    assert doc["step"] == "10s"  # 1s would need 86 400


BAD_ENERGY = [
    ("tz=Mars/Olympus", "invalid_parameter", "tz"),
    ("tz=../etc/passwd", "invalid_parameter", "tz"),
    ("tz=..%2Fetc%2Fpasswd", "invalid_parameter", "tz"),
    ("tz=%2Fetc%2Flocaltime", "invalid_parameter", "tz"),
    ("tz=localtime", "invalid_parameter", "tz"),
    ("tz=europe/berlin", "invalid_parameter", "tz"),
    ("tz=Europe/Berlin%00", "invalid_parameter", "tz"),
    ("tz=" + "A" * 300, "invalid_parameter", "tz"),
    ("tz=Europe/" + "B" * 60, "invalid_parameter", "tz"),
    ("tz=", "invalid_parameter", "tz"),
    ("period=year", "invalid_parameter", "period"),
    ("period=DAY", "invalid_parameter", "period"),
    ("period=", "invalid_parameter", "period"),
    ("format=xml", "invalid_parameter", None),
    (f"from={T_BAD}&to={T_BAD}", "invalid_parameter", None),
    (f"from={T_BAD + DAY}&to={T_BAD}", "invalid_parameter", None),
    ("from=not-a-time", "invalid_parameter", None),
    # 3 years of hours: 26 280 > 10 000
    (f"period=hour&from={T_BAD - 3 * 365 * DAY}&to={T_BAD}", "range_too_large", None),
    # 30 years of days: 10 950 > 10 000
    (f"period=day&from={T_BAD - 30 * 365 * DAY}&to={T_BAD}", "range_too_large", None),
]


@pytest.mark.parametrize("query,code,field", BAD_ENERGY,
                         ids=[q[:40] for q, _, _ in BAD_ENERGY])
def test_energy_bad_parameters(bad_input_server, query, code, field):
    r = bad_input_server.get(f"/api/v1/meters/m/energy?{query}")
    assert_error(r, 400, code, field)


def test_history_of_unknown_or_invalid_meter(bad_input_server):
    srv = bad_input_server
    for path in ("/api/v1/meters/ghost/series", "/api/v1/meters/ghost/energy",
                 "/api/v1/meters/ghost/tariff", "/api/v1/meters/ghost/series?format=csv",
                 "/api/v1/meters/ghost/energy?format=csv",
                 "/api/v1/meters/ghost/readings?format=csv"):
        assert_error(srv.get(path), 404, "unknown_meter")
    assert_error(put_tariff(srv, "ghost", FLAT), 404, "unknown_meter")
    assert_error(srv.http("DELETE", "/api/v1/meters/ghost/tariff"), 404, "unknown_meter")
    # Setting a tariff does not create the meter.
    assert_error(srv.get("/api/v1/meters/ghost"), 404, "unknown_meter")
    assert srv.meter_count() == 1
    for path in ("/api/v1/meters/bad%20id/series", "/api/v1/meters/bad%20id/energy",
                 "/api/v1/meters/bad%20id/tariff"):
        assert_error(srv.get(path), 400, "invalid_meter_id")


def test_history_wrong_methods(bad_input_server):
    srv = bad_input_server
    for method, path, allow in (("POST", "/api/v1/meters/m/tariff", "GET, PUT, DELETE"),
                                ("PATCH", "/api/v1/meters/m/tariff", "GET, PUT, DELETE"),
                                ("POST", "/api/v1/tariff", "GET, PUT, DELETE"),
                                ("POST", "/api/v1/meters/m/series", "GET"),
                                ("PUT", "/api/v1/meters/m/energy", "GET"),
                                ("DELETE", "/api/v1/meters/m/series", "GET")):
        r = srv.http(method, path, FLAT if method in ("POST", "PUT", "PATCH") else None)
        assert_error(r, 405, "method_not_allowed")
        assert r.header("allow") == allow, (method, path, r)
    # The POST did not set a tariff.
    assert_error(srv.get("/api/v1/meters/m/tariff"), 404, "no_tariff")
    assert_error(srv.get("/api/v1/tariff"), 404, "no_tariff")


# ---------------------------------------------------------------------------
# Tariffs

def window(frm, to, price=0.3):
    return {"from": frm, "to": to, "price_per_kwh": price}


# (body, error code, field)
BAD_TARIFFS = [
    ("{bad", "malformed_json", None),
    ('{"currency":"EUR","price_per_kwh":NaN}', "malformed_json", None),
    ("", "empty_body", None),
    ({"price_per_kwh": 0.2}, "invalid_tariff", "currency"),
    ({"currency": None, "price_per_kwh": 0.2}, "invalid_tariff", "currency"),
    ({"currency": "eur", "price_per_kwh": 0.2}, "invalid_tariff", "currency"),
    ({"currency": "EURO", "price_per_kwh": 0.2}, "invalid_tariff", "currency"),
    ({"currency": "E1R", "price_per_kwh": 0.2}, "invalid_tariff", "currency"),
    ({"currency": 978, "price_per_kwh": 0.2}, "invalid_tariff", "currency"),
    ({"currency": "EUR"}, "invalid_tariff", "price_per_kwh"),
    ({"currency": "EUR", "price_per_kwh": "0.2"}, "invalid_tariff", "price_per_kwh"),
    ({"currency": "EUR", "price_per_kwh": True}, "invalid_tariff", "price_per_kwh"),
    ({"currency": "EUR", "price_per_kwh": 1e7}, "invalid_tariff", "price_per_kwh"),
    ({"currency": "EUR", "price_per_kwh": -1e7}, "invalid_tariff", "price_per_kwh"),
    ('{"currency":"EUR","price_per_kwh":1e999}', "invalid_tariff", "price_per_kwh"),
    ({"currency": "EUR", "price_per_kwh": 0.2, "vat": 0.19}, "invalid_tariff", "vat"),
    ({"currency": "EUR", "price_per_kwh": 0.2, "windows": {}}, "invalid_tariff", "windows"),
    ({"currency": "EUR", "price_per_kwh": 0.2, "windows": ["07:00"]}, "invalid_tariff",
     "windows[0]"),
    ({"currency": "EUR", "price_per_kwh": 0.2,
      "windows": [window("07:00", "12:00"), window("11:00", "13:00")]},
     "invalid_tariff", "windows[1]"),
    ({"currency": "EUR", "price_per_kwh": 0.2,   # wraps midnight into the next one
      "windows": [window("22:00", "06:00"), window("05:00", "07:00")]},
     "invalid_tariff", "windows[1]"),
    ({"currency": "EUR", "price_per_kwh": 0.2,
      "windows": [window("08:00", "09:00"), window("00:00", "24:00")]},
     "invalid_tariff", "windows[1]"),
    ({"currency": "EUR", "price_per_kwh": 0.2, "windows": [window("25:00", "26:00")]},
     "invalid_tariff", "windows[0].from"),
    ({"currency": "EUR", "price_per_kwh": 0.2, "windows": [window("07:00", "25:00")]},
     "invalid_tariff", "windows[0].to"),
    ({"currency": "EUR", "price_per_kwh": 0.2, "windows": [window("24:00", "01:00")]},
     "invalid_tariff", "windows[0].from"),
    ({"currency": "EUR", "price_per_kwh": 0.2, "windows": [window("7:00", "08:00")]},
     "invalid_tariff", "windows[0].from"),
    ({"currency": "EUR", "price_per_kwh": 0.2, "windows": [window("07:60", "08:00")]},
     "invalid_tariff", "windows[0].from"),
    ({"currency": "EUR", "price_per_kwh": 0.2, "windows": [window(700, "08:00")]},
     "invalid_tariff", "windows[0].from"),
    ({"currency": "EUR", "price_per_kwh": 0.2, "windows": [window("08:00", "08:00")]},
     "invalid_tariff", "windows[0]"),
    ({"currency": "EUR", "price_per_kwh": 0.2, "windows": [window("07:00", "08:00", "0.3")]},
     "invalid_tariff", "windows[0].price_per_kwh"),
    ({"currency": "EUR", "price_per_kwh": 0.2, "windows": [window("07:00", "08:00", 1e7)]},
     "invalid_tariff", "windows[0].price_per_kwh"),
    ({"currency": "EUR", "price_per_kwh": 0.2,
      "windows": [{"from": "07:00", "to": "08:00"}]}, "invalid_tariff",
     "windows[0].price_per_kwh"),
    ({"currency": "EUR", "price_per_kwh": 0.2,
      "windows": [dict(window("07:00", "08:00"), days="mon")]}, "invalid_tariff",
     "windows[0].days"),
    ({"currency": "EUR", "price_per_kwh": 0.2,   # 49 windows of 10 minutes
      "windows": [window("%02d:%02d" % divmod(10 * i, 60), "%02d:%02d" % divmod(10 * i + 10, 60))
                  for i in range(49)]}, "invalid_tariff", "windows"),
]


@pytest.mark.parametrize("scope", ["meter", "server"])
def test_tariff_invalid_bodies_leave_previous_tariff(bad_input_server, scope):
    srv = bad_input_server
    meter = "m" if scope == "meter" else None
    path = "/api/v1/meters/m/tariff" if meter else "/api/v1/tariff"
    stored = put_tariff_ok(srv, meter, TOU)
    assert stored == TOU, stored
    for body, code, field in BAD_TARIFFS:
        r = put_tariff(srv, meter, body)
        err = assert_error(r, 400, code, field)
        if code == "invalid_tariff":
            assert "field" in err, (body, err)
        assert srv.get_json(path) == stored, body
    # The energy report still uses it.
    assert energy(srv, "m", from_=T_BAD, to=T_BAD + DAY)["tariff"] == scope


def test_tariff_put_get_delete(bad_input_server):
    srv = bad_input_server
    for path, meter in (("/api/v1/meters/m/tariff", "m"), ("/api/v1/tariff", None)):
        assert_error(srv.get(path), 404, "no_tariff")
        # Stored normalised: windows always listed, times as HH:MM.
        got = put_tariff_ok(srv, meter, {"price_per_kwh": 1, "currency": "CHF"})
        assert got == {"currency": "CHF", "price_per_kwh": 1, "windows": []}, got
        assert srv.get_json(path) == got
        # PUT replaces; the limits are inclusive (1e6, 48 windows, 00:00-24:00).
        body = {"currency": "EUR", "price_per_kwh": -1e6,
                "windows": [window("%02d:%02d" % divmod(30 * i, 60),
                                   "%02d:%02d" % divmod(30 * i + 30, 60), 1e6)
                            for i in range(48)]}
        got = put_tariff_ok(srv, meter, body)
        assert got["windows"][-1] == {"from": "23:30", "to": "24:00", "price_per_kwh": 1e6}, got
        assert len(got["windows"]) == 48 and got["price_per_kwh"] == -1e6
        assert srv.get_json(path) == got
        r = srv.http("DELETE", path)
        assert r.status == 204 and r.body == b"", r
        assert_error(srv.get(path), 404, "no_tariff")
        r = srv.http("DELETE", path)  # nothing to delete: still 204
        assert r.status == 204, r


def test_tariff_sources_server_default_and_meter_override(server):
    d0 = ts_ms("2026-09-20T00:00:00.000Z")
    for m in ("a", "b"):
        post_steady(server, m, d0, d0 + DAY)  # 14.4 kWh on 2026-09-20 (UTC)
    q = dict(period="day", tz="UTC", from_=d0, to=d0 + DAY)

    def report(m):
        doc = energy(server, m, **q)
        assert_close_list([p["kwh"] for p in doc["periods"]], [14.4])
        cost = doc["periods"][0]["cost"]
        assert cost == doc["total"]["cost"] or approx(cost, doc["total"]["cost"]), doc
        return doc["tariff"], doc["currency"], cost

    assert report("a") == ("none", None, None)
    put_tariff_ok(server, None, {"currency": "EUR", "price_per_kwh": 0.10})
    # Both use the server's: 14.4 * 0.10 = 1.44
    for m in ("a", "b"):
        t, c, cost = report(m)
        assert (t, c) == ("server", "EUR") and approx(cost, 1.44), (m, t, c, cost)
    put_tariff_ok(server, "a", {"currency": "USD", "price_per_kwh": 0.30})
    # a: its own, 14.4 * 0.30 = 4.32; b: still the server's 1.44
    t, c, cost = report("a")
    assert (t, c) == ("meter", "USD") and approx(cost, 4.32), (t, c, cost)
    t, c, cost = report("b")
    assert (t, c) == ("server", "EUR") and approx(cost, 1.44), (t, c, cost)
    # A feed-in (negative) price on b: 14.4 * -0.05 = -0.72
    put_tariff_ok(server, "b", {"currency": "EUR", "price_per_kwh": -0.05})
    t, c, cost = report("b")
    assert (t, c) == ("meter", "EUR") and approx(cost, -0.72), (t, c, cost)
    # Deleting the meter's tariff falls back to the server's.
    assert server.http("DELETE", "/api/v1/meters/a/tariff").status == 204
    t, c, cost = report("a")
    assert (t, c) == ("server", "EUR") and approx(cost, 1.44), (t, c, cost)
    # Deleting the server's leaves a with none, b with its own.
    assert server.http("DELETE", "/api/v1/tariff").status == 204
    assert report("a") == ("none", None, None)
    t, c, cost = report("b")
    assert (t, c) == ("meter", "EUR") and approx(cost, -0.72)


# ---------------------------------------------------------------------------
# Persistence

def test_tariffs_and_rollups_survive_restart(server_factory):
    srv = server_factory()
    d0 = ts_ms("2026-09-15T00:00:00.000Z")
    rs = post_steady(srv, "p", d0, d0 + DAY)   # minutes 2026-09-14T23:59Z .. 09-15T23:59Z
    post_steady(srv, "q", d0, d0 + DAY)
    put_tariff_ok(srv, "p", TOU)
    server_tariff = put_tariff_ok(srv, None, {"currency": "CHF", "price_per_kwh": 0.5})
    q = dict(period="day", tz="UTC", from_=d0, to=d0 + DAY)
    before = {
        "energy_p": energy(srv, "p", **q), "energy_q": energy(srv, "q", **q),
        "1m": series(srv, "p", from_=d0, to=d0 + DAY, step="1m"),
        "1h": series(srv, "p", from_=d0, to=d0 + DAY, step="1h"),
    }
    # TOU on an ordinary UTC day: 3.48; q uses the server's: 14.4 * 0.5 = 7.2
    assert_periods(before["energy_p"], [("2026-09-15T00:00:00+00:00", "2026-09-16T00:00:00+00:00",
                                         24, 14.4)], [3.48])
    assert before["energy_q"]["tariff"] == "server"
    assert approx(before["energy_q"]["total"]["cost"], 7.2)
    assert before["1m"]["buckets"] == 1440 and before["1h"]["buckets"] == 24

    srv.stop()
    assert srv.returncode == 0
    srv2 = server_factory(db=srv.db_path)
    assert srv2.get_json("/api/v1/meters/p/tariff") == TOU
    assert srv2.get_json("/api/v1/tariff") == server_tariff
    assert energy(srv2, "p", **q) == before["energy_p"]
    assert energy(srv2, "q", **q) == before["energy_q"]
    for step in ("1m", "1h"):
        doc = series(srv2, "p", from_=d0, to=d0 + DAY, step=step)
        assert doc == before[step], step

    # Rollups keep being maintained from the stored history: the next minute
    # counts 0.01 against the last reading before the restart, a repeat is a
    # duplicate.
    last = rs[-1]
    nxt = reading("p", d0 + DAY, energy=round(last["energy"] + 0.01, 6))
    assert srv2.post_ok([nxt, last]) == {"accepted": 1, "duplicates": 1}
    doc = energy(srv2, "p", period="day", tz="UTC", from_=d0, to=d0 + 2 * DAY)
    assert_close_list([p["kwh"] for p in doc["periods"]], [14.4, 0.01])
    doc = series(srv2, "p", from_=d0 + DAY, to=d0 + DAY + MIN, step="1m")
    assert doc["readings"] == [1] and approx(doc["energy"]["kwh"][0], 0.01), doc


# ---------------------------------------------------------------------------
# Retention

class RetentionSetup:
    """One meter "ret" with three segments of 61 readings a minute apart (0.01
    kWh each), ~100 days, ~45 days and 2-3 hours old; across each gap the
    counter is 0.50 higher (counted at the gap's end):
      h100: 2000.00 .. 2000.60  -> hour h100: 59 * 0.01 = 0.59, next hour 0.01
      h45:  2001.10 .. 2001.70  -> hour h45: 0.50 + 0.59 = 1.09, next hour 0.01
      hr:   2002.20 .. 2002.80  -> hour hr: 1.09, next hour 0.01
    and a meter "oldonly" whose 5 readings are all ~100 days old."""

    def __init__(self):
        now = now_ms()
        self.d100 = (now - 100 * DAY) // DAY * DAY  # UTC midnight, 100-101 days ago
        self.d45 = (now - 45 * DAY) // DAY * DAY    # 45-46 days: older than 30, younger than 60
        self.h100, self.h45 = self.d100 + 10 * HOUR, self.d45 + 10 * HOUR
        self.hr = (now - 3 * HOUR) // HOUR * HOUR   # recent: 2-3 hours ago
        self.main = []
        for seg_start, e0 in ((self.h100, 2000.00), (self.h45, 2001.10), (self.hr, 2002.20)):
            self.main += [reading("ret", seg_start + i * MIN, energy=round(e0 + i * 0.01, 6))
                          for i in range(61)]
        self.old_only = [reading("oldonly", self.h100 + i * MIN, energy=10 + i)
                         for i in range(5)]

    def post(self, srv):
        assert post_all(srv, self.main + self.old_only) == (188, 0)

    def restart_with_retention(self, server_factory, srv):
        """Stops srv and starts its database again with 30 days of raw readings
        and 60 days of minute rollups; waits (up to 5 s) for the first
        retention pass, which runs right after start."""
        srv.stop()
        assert srv.returncode == 0
        srv2 = server_factory(args=["--retention-raw-days", "30", "--retention-1m-days", "60"],
                              db=srv.db_path)
        recent = [r["ts"] for r in self.main[122:]]
        deadline = time.monotonic() + 5
        while True:
            got, _ = srv2.all_readings("ret")
            old, _ = srv2.all_readings("oldonly")
            m100 = series(srv2, "ret", from_=self.h100, to=self.h100 + 2 * HOUR, step="1m")
            if [g["ts"] for g in got] == recent and len(old) == 1 and m100["buckets"] == 0:
                return srv2
            assert time.monotonic() < deadline, (
                f"retention did not run within 5 s: {len(got)} readings of ret, "
                f"{len(old)} of oldonly, {m100['buckets']} minute buckets 100 days ago")
            time.sleep(0.05)


def test_retention_drops_old_raw_and_minute_rows_keeps_hourly(server_factory):
    rs = RetentionSetup()
    d100, d45, h100, h45 = rs.d100, rs.d45, rs.h100, rs.h45
    srv = server_factory()  # raw retention off (harness), minute rollups 365 days
    rs.post(srv)

    def snapshot(s):
        return {
            "1h_100": series(s, "ret", from_=h100, to=h100 + 2 * HOUR, step="1h"),
            "1h_45": series(s, "ret", from_=h45, to=h45 + 2 * HOUR, step="1h"),
            "1m_45": series(s, "ret", from_=h45, to=h45 + 2 * HOUR, step="1m"),
            "day_100": energy(s, "ret", period="day", tz="UTC", from_=d100, to=d100 + DAY),
            "day_45": energy(s, "ret", period="day", tz="UTC", from_=d45, to=d45 + DAY),
            "latest": s.get_json("/api/v1/meters/ret/latest"),
        }

    before = snapshot(srv)
    assert before["1h_100"]["readings"] == [60, 1]
    assert_close_list(before["1h_100"]["energy"]["kwh"], [0.59, 0.01])
    assert_close_list(before["1h_45"]["energy"]["kwh"], [1.09, 0.01])
    assert before["1m_45"]["buckets"] == 61
    assert series(srv, "ret", from_=h100, to=h100 + 2 * HOUR, step="1m")["buckets"] == 61
    # Days (UTC): d100 holds 0.59 + 0.01 = 0.60; d45: 1.09 + 0.01 = 1.10.
    assert_close_list([p["kwh"] for p in before["day_100"]["periods"]], [0.60])
    assert_close_list([p["kwh"] for p in before["day_45"]["periods"]], [1.10])
    # Kolkata days: 10:00Z and 11:00Z are 15:30/16:30 local on the same date.
    kol = {}
    for d, h, kwh in ((d100, h100, 0.60), (d45, h45, 1.10)):
        doc = energy(srv, "ret", period="day", tz="Asia/Kolkata", from_=h, to=h + 1)
        assert doc["resolution"] == "1m", doc
        assert doc["periods"][0]["start"] == utc_date(d) + "T00:00:00+05:30", doc
        assert_close_list([p["kwh"] for p in doc["periods"]], [kwh])
        kol[d] = doc

    # Same database, now with retention: raw readings older than 30 days are
    # gone (the recent segment is left), minute rollups older than 60 days too
    # (step=1m over h100 is empty): restart_with_retention waits for that.
    srv2 = rs.restart_with_retention(server_factory, srv)
    # The newest reading of a meter stays even when it is old.
    old, _ = srv2.all_readings("oldonly")
    assert [(o["ts"], o["energy"]) for o in old] == [(iso(h100 + 4 * MIN), 14)], old
    assert srv2.get_json("/api/v1/meters/oldonly/latest")["ts"] == iso(h100 + 4 * MIN)

    after = snapshot(srv2)
    assert after == before, {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    # Raw readings 45 days old are gone: a raw step shows nothing there.
    doc = series(srv2, "ret", from_=h45, to=h45 + 2 * HOUR, step="10s")
    assert (doc["source"], doc["buckets"], doc["time"]) == ("raw", 0, []), doc
    # Kolkata 100 days ago: minute rollups deleted -> hourly resolution, hours
    # attributed by the hour they start in (10:00Z and 11:00Z are on the same
    # local day): still 0.60. 45 days ago: minutes are still there.
    doc = energy(srv2, "ret", period="day", tz="Asia/Kolkata", from_=h100, to=h100 + 1)
    assert doc["resolution"] == "1h", doc
    assert doc["periods"][0]["start"] == kol[d100]["periods"][0]["start"]
    assert_close_list([p["kwh"] for p in doc["periods"]], [0.60])
    assert energy(srv2, "ret", period="day", tz="Asia/Kolkata", from_=h45, to=h45 + 1) == kol[d45]


def test_retention_late_reading_older_than_raw_retention_counts_nothing_twice(server_factory):
    """docs/api.md: "A late reading older than the raw retention is still
    stored and counted in the rollups". Its neighbours' raw rows are gone, so
    it cannot change what was attributed before; in particular the
    consumption of the first kept reading (hr, counted from the last reading
    of the 45-day segment) must not be counted again from the late reading."""
    rs = RetentionSetup()
    srv = server_factory()
    rs.post(srv)
    srv2 = rs.restart_with_retention(server_factory, srv)
    hours = {h: series(srv2, "ret", from_=h, to=h + 2 * HOUR, step="1h", fields="energy")
             for h in (rs.h100, rs.h45, rs.hr)}
    # A reading from 100 days ago, 10 minutes after the 100-day segment (2000.61).
    late = reading("ret", rs.h100 + 70 * MIN, energy=2000.61)
    assert srv2.post_ok([late]) == {"accepted": 1, "duplicates": 0}
    # It is counted in the hourly rollup of its hour (readings 1 -> 2).
    doc = series(srv2, "ret", from_=rs.h100, to=rs.h100 + 2 * HOUR, step="1h", fields="energy")
    assert doc["readings"] == [60, 2], doc
    # The recent hour keeps its 1.09 (0.50 across the gap + 59 * 0.01), and
    # the 45-day hours are untouched.
    for h in (rs.h45, rs.hr):
        doc = series(srv2, "ret", from_=h, to=h + 2 * HOUR, step="1h", fields="energy")
        assert_close_list(doc["energy"]["kwh"], hours[h]["energy"]["kwh"], what=iso(h))
    day = energy(srv2, "ret", period="day", tz="UTC", from_=rs.hr, to=rs.hr + 1)
    assert day["periods"][0]["kwh"] <= 1.10 + TOL, day
    # Everything together can never exceed the counter's whole rise,
    # 2002.80 - 2000.00 = 2.80 kWh.
    total = series(srv2, "ret", from_=rs.d100, to=rs.hr + 2 * HOUR, step="1d", fields="energy")
    assert sum(total["energy"]["kwh"]) <= 2.80 + TOL, total["energy"]["kwh"]
