"""Checks of a meterhub SQLite file from the outside, with Python's sqlite3,
for the crash and fault tests: integrity, the raw readings of each meter, and
that every rollup row equals the aggregation of the raw rows in its bucket.

The kWh check assumes the tests' readings: per meter, energy never falls and
grows by less than the counter resolution (0.01 kWh) between stored
neighbours, so the counter rules (core/energy.hpp) reduce to "a reading
consumes its difference to the reading stored before it; the first consumes
nothing", attributed to the reading's own bucket.
"""
import contextlib
import math
import sqlite3

MINUTE_MS = 60_000
HOUR_MS = 3_600_000

# Columns after meter_id, as in store/sqlite/rollups.cpp (kRollupColumns).
ROLLUP_COLUMNS = ("bucket n v_sum v_min v_max i_sum i_min i_max p_sum p_min p_max "
                  "f_n f_sum f_min f_max pf_n pf_sum pf_min pf_max "
                  "first_ts e_first last_ts e_last kwh").split()


def connect(path):
    """A read-only connection (the server may still be running on the file)."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)


def integrity(path):
    with contextlib.closing(connect(path)) as db:
        return [r[0] for r in db.execute("PRAGMA integrity_check")]


def raw_readings(path):
    """{access_id: [(ts, voltage, current, power, energy, frequency, pf), ...] by ts}."""
    out = {}
    with contextlib.closing(connect(path)) as db:
        for row in db.execute(
                "SELECT m.access_id, r.ts, r.voltage, r.current, r.power, r.energy, "
                "r.frequency, r.power_factor FROM meter_readings r "
                "JOIN smart_meter m ON m.id = r.meter_id ORDER BY m.access_id, r.ts"):
            out.setdefault(row[0], []).append(tuple(row[1:]))
    return out


def _expected_rollups(rows, width):
    """{bucket: dict of ROLLUP_COLUMNS} from one meter's raw rows (sorted by ts)."""
    out = {}
    prev_energy = None
    for ts, v, i, p, e, f, pf in rows:
        b = ts - ts % width
        a = out.get(b)
        if a is None:
            a = out[b] = {"bucket": b, "n": 0, "v_sum": 0.0, "v_min": v, "v_max": v,
                          "i_sum": 0.0, "i_min": i, "i_max": i, "p_sum": 0.0, "p_min": p,
                          "p_max": p, "f_n": 0, "f_sum": 0.0, "f_min": None, "f_max": None,
                          "pf_n": 0, "pf_sum": 0.0, "pf_min": None, "pf_max": None,
                          "first_ts": ts, "e_first": e, "last_ts": ts, "e_last": e, "kwh": 0.0}
        a["n"] += 1
        for key, val in (("v", v), ("i", i), ("p", p)):
            a[key + "_sum"] += val
            a[key + "_min"] = min(a[key + "_min"], val)
            a[key + "_max"] = max(a[key + "_max"], val)
        for key, val in (("f", f), ("pf", pf)):
            if val is None:
                continue
            a[key + "_n"] += 1
            a[key + "_sum"] += val
            a[key + "_min"] = val if a[key + "_min"] is None else min(a[key + "_min"], val)
            a[key + "_max"] = val if a[key + "_max"] is None else max(a[key + "_max"], val)
        a["last_ts"], a["e_last"] = ts, e  # rows are sorted by ts
        if prev_energy is not None:
            assert e >= prev_energy, "db_check needs readings whose energy never falls"
            a["kwh"] += e - prev_energy
        prev_energy = e
    return out


def _near(a, b):
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def rollup_mismatches(path, limit=10):
    """Every rollup row of both tables against the raw rows; returns a list of
    differences (empty when all agree), at most `limit` of them."""
    raw = raw_readings(path)
    problems = []
    with contextlib.closing(connect(path)) as db:
        for table, width in (("rollup_1m", MINUTE_MS), ("rollup_1h", HOUR_MS)):
            stored = {}
            for row in db.execute(f"SELECT m.access_id, {', '.join('r.' + c for c in ROLLUP_COLUMNS)} "
                                  f"FROM {table} r JOIN smart_meter m ON m.id = r.meter_id"):
                stored.setdefault(row[0], {})[row[1]] = dict(zip(ROLLUP_COLUMNS, row[1:]))
            orphans = set(stored) - set(raw)
            for meter in sorted(orphans):
                problems.append(f"{table}: meter {meter} has rollups but no raw readings")
            for meter, rows in raw.items():
                want = _expected_rollups(rows, width)
                got = stored.get(meter, {})
                for b in sorted(set(want) ^ set(got)):
                    problems.append(f"{table} {meter} bucket {b}: "
                                    f"{'missing' if b in want else 'has no raw readings'}")
                for b in sorted(set(want) & set(got)):
                    for c in ROLLUP_COLUMNS:
                        if not _near(got[b][c], want[b][c]):
                            problems.append(f"{table} {meter} bucket {b} {c}: stored "
                                            f"{got[b][c]!r}, raw rows give {want[b][c]!r}")
                if len(problems) >= limit:
                    return problems[:limit]
    return problems
