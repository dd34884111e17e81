#!/usr/bin/env python3
"""HTTP half of the history benchmark (bench/history.sh, bench/README.md).

Starts the real meterhub (Release build) on a database filled by
meterhub-histload, waits for "listening on http://127.0.0.1:PORT", and for
each case

  series  step=auto points=1000 over the last 1 h, 1 day, 30 days, 365 days
  energy  period=day tz=Europe/Berlin over the last 365 days

of one meter sends --warmup requests (the first one is reported separately:
the cold-cache answer), then --reps timed requests over one keep-alive
connection. Reports p50/p99/max latency (request written -> whole body read),
the answer's source/resolution and size, server CPU per request, and the
CPU used by other processes meanwhile (the machine is shared).

With --inproc (meterhub-histquery --json) the table also shows the in-process
times of the same queries and of computing the same answer from raw readings,
and checks that the HTTP answer agrees with the raw computation (bucket count
and total kWh). With --load (the DB.done marker of meterhub-histload) it adds
the load figures. Writes markdown to --out and prints it. Python stdlib only.
"""

import argparse
import http.client
import json
import math
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.parse

HOUR = 3_600_000
DAY = 24 * HOUR


def log(msg):
    print(f"[histquery.py {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def cpu_ticks_machine():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def cpu_ticks_pid(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return int(parts[11]) + int(parts[12])
    except OSError:
        return 0


def busy_pct(seconds=1.0):
    b0, t0 = cpu_ticks_machine()
    time.sleep(seconds)
    b1, t1 = cpu_ticks_machine()
    return 100.0 * (b1 - b0) / max(1, t1 - t0)


def wait_quiet(limit_pct, max_wait):
    """Waits (up to max_wait s) for whole-machine CPU below limit_pct; returns the last sample."""
    deadline = time.monotonic() + max_wait
    while True:
        b = busy_pct()
        if b < limit_pct or time.monotonic() >= deadline:
            return b
        log(f"machine busy ({b:.0f}% CPU), waiting")


def pct(values, p):
    if not values:
        return float("nan")
    s = sorted(values)
    return s[max(0, min(len(s) - 1, math.ceil(p * len(s)) - 1))]  # nearest rank


class Server:
    def __init__(self, binary, db, log_path, extra):
        self.log_path = log_path
        self.logf = open(log_path, "w")
        cmd = [binary, "--listen", "127.0.0.1:0", "--db", db, "--retention-raw-days", "0",
               "--retention-1m-days", "0", "--log-level", "info",
               # Queries only, from one loopback client: no keys, no rate limits.
               "--public-read", "--ip-rate", "0"] + extra
        log("starting " + " ".join(shlex.quote(c) for c in cmd))
        self.proc = subprocess.Popen(cmd, stdout=self.logf, stderr=subprocess.STDOUT)
        self.port = None
        t0 = time.monotonic()
        while time.monotonic() - t0 < 120:
            with open(log_path) as f:
                m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", f.read())
            if m:
                self.port = int(m.group(1))
                break
            if self.proc.poll() is not None:
                raise SystemExit(f"meterhub exited ({self.proc.returncode}); log: {log_path}")
            time.sleep(0.05)
        if self.port is None:
            self.stop()
            raise SystemExit(f"meterhub did not report its port within 120 s; log: {log_path}")
        self.startup_s = time.monotonic() - t0
        log(f"meterhub pid {self.proc.pid} on 127.0.0.1:{self.port} (up in {self.startup_s:.2f} s)")

    def rss_kib(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()


class Client:
    def __init__(self, port):
        self.port = port
        self.conn = None
        self.reconnects = 0

    def connect(self):
        self.close()
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
        self.conn.connect()
        self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reconnects += 1

    def get(self, path):
        """Returns (seconds, status, body) of one GET on the keep-alive connection.
        A reused connection the server has closed meanwhile is reopened once
        (and counted in reconnects); that attempt is not timed."""
        for attempt in (0, 1):
            if self.conn is None:
                self.connect()
            try:
                t0 = time.perf_counter()
                self.conn.request("GET", path, headers={"Accept": "application/json"})
                resp = self.conn.getresponse()
                body = resp.read()
                dt = time.perf_counter() - t0
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                if attempt:
                    raise
                self.conn.close()
                self.conn = None
                continue
            if resp.will_close:
                self.conn.close()
                self.conn = None
            return dt, resp.status, body

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def cases(meter, end, tz):
    m = urllib.parse.quote(meter, safe="")
    out = []
    for name, span, text in (("1h", HOUR, "1 h"), ("1d", DAY, "1 day"), ("30d", 30 * DAY, "30 days"),
                             ("365d", 365 * DAY, "365 days")):
        out.append({"name": name, "kind": "series", "label": f"series, last {text}",
                    "path": f"/api/v1/meters/{m}/series?from={end - span}&to={end}&step=auto&points=1000"})
    out.append({"name": "energy", "kind": "energy", "label": f"daily energy, last 365 days ({tz})",
                "path": f"/api/v1/meters/{m}/energy?period=day&tz={urllib.parse.quote(tz, safe='')}"
                        f"&from={end - 365 * DAY}&to={end}"})
    return out


def describe(kind, body):
    d = json.loads(body)
    if kind == "series":
        kwh = sum(x for x in d["energy"]["kwh"] if x is not None) if "energy" in d else float("nan")
        return {"source": d.get("source"), "step_ms": d.get("step_ms"), "buckets": d.get("buckets"),
                "total_kwh": kwh}
    return {"source": "resolution " + str(d.get("resolution")), "resolution": d.get("resolution"),
            "buckets": len(d.get("periods", [])), "total_kwh": d["total"]["kwh"]}


def fmt_step(ms):
    if ms is None:
        return "?"
    for unit, n in (("d", DAY), ("h", HOUR), ("m", 60_000), ("s", 1000)):
        if ms % n == 0:
            return f"{ms // n}{unit}"
    return f"{ms}ms"


def kv_line(text, prefix="RESULT"):
    out = {}
    for line in text.splitlines():
        if line.startswith(prefix + " "):
            for tok in line.split()[1:]:
                if "=" in tok:
                    k, v = tok.split("=", 1)
                    out[k] = v
    return out


def ratio(x):
    return f"{x:,.1f}×" if x < 10 else f"{x:,.0f}×"


def human(n):
    n = float(n)
    for u in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or u == "TiB":
            return f"{n:.1f} {u}"
        n /= 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", required=True, help="meterhub binary (Release)")
    ap.add_argument("--db", required=True)
    ap.add_argument("--meter", default="big")
    ap.add_argument("--end", type=int, help="end of the ranges, epoch ms (default: from --inproc)")
    ap.add_argument("--tz", default="Europe/Berlin")
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--target-ms", type=float, default=20.0)
    ap.add_argument("--inproc", help="meterhub-histquery --json output")
    ap.add_argument("--load", help="the DB.done marker of meterhub-histload")
    ap.add_argument("--describe", default="", help="data-set description for the report header")
    ap.add_argument("--server-log", default="/tmp/meterhub-history-server.log")
    ap.add_argument("--server-arg", action="append", default=[], help="extra meterhub option (repeatable)")
    ap.add_argument("--quiet-pct", type=float, default=15.0)
    ap.add_argument("--quiet-wait", type=float, default=30.0)
    ap.add_argument("--out", help="write the markdown report here")
    ap.add_argument("--json", help="write the raw HTTP results here")
    a = ap.parse_args()

    inproc = {}
    if a.inproc and os.path.exists(a.inproc):
        with open(a.inproc) as f:
            inproc = json.load(f)
    end = a.end or inproc.get("end")
    if not end:
        raise SystemExit("need --end or --inproc with an end")
    by_name = {c["name"]: c for c in inproc.get("cases", [])}

    server = Server(a.server, a.db, a.server_log, a.server_arg)
    results = []
    try:
        client = Client(server.port)
        planned = 0
        for c in cases(a.meter, end, a.tz):
            before = wait_quiet(a.quiet_pct, a.quiet_wait)
            planned += 1
            client.connect()  # the server may have closed an idle connection while we waited
            first_s, status, body = client.get(c["path"])
            if status != 200:
                raise SystemExit(f"{c['path']}: HTTP {status}: {body[:300]!r}")
            for _ in range(max(0, a.warmup - 1)):
                client.get(c["path"])
            b0, t0 = cpu_ticks_machine()
            s0 = cpu_ticks_pid(server.proc.pid)
            me0 = os.times()
            lat = []
            for _ in range(a.reps):
                dt, status, body = client.get(c["path"])
                if status != 200:
                    raise SystemExit(f"{c['path']}: HTTP {status}: {body[:300]!r}")
                lat.append(dt * 1000)
            b1, t1 = cpu_ticks_machine()
            s1 = cpu_ticks_pid(server.proc.pid)
            me1 = os.times()
            hz = os.sysconf("SC_CLK_TCK")
            ncpu = os.cpu_count() or 1
            total_ticks = max(1, t1 - t0)
            server_ticks = s1 - s0
            client_ticks = ((me1.user - me0.user) + (me1.system - me0.system)) * hz
            other = max(0.0, 100.0 * (b1 - b0 - server_ticks - client_ticks) / total_ticks)
            info = describe(c["kind"], body)
            r = dict(c, **info, first_ms=first_s * 1000, p50_ms=pct(lat, 0.5), p99_ms=pct(lat, 0.99),
                     max_ms=max(lat), bytes=len(body), server_cpu_ms=1000.0 * server_ticks / hz / a.reps,
                     busy_before=before, other_during=other, ncpu=ncpu)
            results.append(r)
            log(f"{c['label']}: {r['source']}, {info['buckets']} buckets, "
                f"{len(body)} B; first {r['first_ms']:.1f} ms, p50 {r['p50_ms']:.2f} / p99 {r['p99_ms']:.2f} / "
                f"max {r['max_ms']:.2f} ms, server CPU {r['server_cpu_ms']:.2f} ms/req, other CPU {other:.0f}%")
        rss = server.rss_kib()
        reconnects = client.reconnects - planned
        client.close()
    finally:
        server.stop()

    if a.json:
        with open(a.json, "w") as f:
            json.dump({"end": end, "results": results, "server_rss_kib": rss}, f, indent=1)

    # ---- report ----------------------------------------------------------
    load = {}
    if a.load and os.path.exists(a.load):
        with open(a.load) as f:
            load = kv_line(f.read())
    L = []
    L.append(f"# meterhub history benchmark — {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}")
    L.append("")
    if a.describe:
        L.append(f"- data: {a.describe}")
    L.append(f"- database: `{a.db}`; queries for meter `{a.meter}`, ranges ending "
             f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(end / 1000))}")
    L.append(f"- server: `{a.server}` (Release), `--retention-raw-days 0 --retention-1m-days 0`, up in "
             f"{server.startup_s:.2f} s, VmRSS after the run {rss / 1024:.0f} MiB; one keep-alive connection "
             f"per query ({reconnects} unplanned reconnects), {a.warmup} warm-up requests then {a.reps} timed per query; client "
             f"(Python http.client) on the same {os.cpu_count()} cores")
    L.append("")
    if load:
        rows = int(load.get("rows", 0) or 0)
        L.append("## Load (meterhub-histload, SqliteStore::write, rollups maintained in the same transactions)")
        L.append("")
        L.append("| readings | batch / order | load time | readings/s | per batch p50 / p99 / max ms | "
                 "DB + WAL after load | DB file after close | bytes/reading | raw table | rollup_1m | rollup_1h |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|")

        def per(key):
            v = load.get(key)
            return f"{human(v)} ({int(v) / rows:.1f} B/reading)" if v and rows else "n/a"
        resumed = " (resumed: time of the last part only)" if load.get("resumed") == "1" else ""
        L.append(f"| {rows:,} | {load.get('batch')} / {load.get('order')} | {float(load.get('load_s', 0)):.0f} s"
                 f"{resumed} | {float(load.get('readings_per_s', 0)):,.0f} | {load.get('batch_p50_ms')} / "
                 f"{load.get('batch_p99_ms')} / {load.get('batch_max_ms')} | {human(load.get('db_wal_bytes', 0))} | "
                 f"{human(load.get('final_db_bytes', 0))} | {load.get('bytes_per_reading')} | "
                 f"{per('bytes_meter_readings')} | {per('bytes_rollup_1m')} | {per('bytes_rollup_1h')} |")
        L.append("")
    L.append(f"## Queries (target: every answer under {a.target_ms:g} ms)")
    L.append("")
    L.append("| query | step | answered from | buckets (bytes) | HTTP p50 / p99 / max ms | first request ms | "
             "server CPU ms/req | in-process p50 / p99 ms | raw readings in range | same answer from raw rows "
             "(in-process) ms | raw ÷ served (in-process) | same answer | HTTP p99 < target | other CPU before / during |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        ip = by_name.get(r["name"], {})
        raw_ms = min(ip["raw_ms"]) if ip.get("raw_ms") else None
        same = "n/a"
        if ip:
            http_ok = ip.get("buckets") == r["buckets"] and abs(ip.get("total_kwh", 0) - r["total_kwh"]) <= \
                1e-6 * max(1.0, abs(r["total_kwh"]))
            same = ("yes" if ip.get("mismatched") == 0 and http_ok else
                    f"**NO** (in-process mismatches {ip.get('mismatched')}, HTTP buckets {r['buckets']} vs "
                    f"{ip.get('buckets')}, kWh {r['total_kwh']} vs {ip.get('total_kwh')})")
        warn = lambda v: f"{v:.0f}%" + (" ⚠" if v > a.quiet_pct else "")
        L.append(
            f"| {r['label']} | {fmt_step(r.get('step_ms') or ip.get('step_ms'))} | {r['source']} | "
            f"{r['buckets']} ({r['bytes']:,}) | {r['p50_ms']:.2f} / {r['p99_ms']:.2f} / {r['max_ms']:.2f} | "
            f"{r['first_ms']:.1f} | {r['server_cpu_ms']:.2f} | "
            + (f"{ip['server_p50_ms']:.2f} / {ip['server_p99_ms']:.2f} | {ip['raw_rows']:,} | "
               + (f"{raw_ms:,.1f} ({len(ip['raw_ms'])} run{'s' if len(ip['raw_ms']) != 1 else ''})" if raw_ms is not None else "n/a")
               + f" | {ratio(raw_ms / ip['server_p50_ms'])} |" if ip and raw_ms is not None else "n/a | n/a | n/a | n/a |")
            + f" {same} | {'**yes**' if r['p99_ms'] < a.target_ms else '**no**'} | "
              f"{warn(r['busy_before'])} / {warn(r['other_during'])} |")
    L.append("")
    L.append("HTTP latency: request written → whole body read, Python client on the same machine. "
             "\"first request\" is the first of the warm-ups (cold caches right after start-up). "
             "In-process: the server's query code (find_meter, read_rollup + regroup / energy_report; "
             "read_range + bucketize for steps under a minute) called directly (meterhub-histquery). "
             "\"Same answer from raw rows\": read_range of every raw reading of the range + query::bucketize "
             "(energy: bucketize at the rollup width + energy_report), best run; the 30- and 365-day ranges "
             "exceed the server's 1 000 000-reading limit for raw answers, so this is the only way to get them "
             "from raw rows. \"Same answer\": rollup and raw answers agree bucket by bucket (in-process) and "
             "the HTTP answer has the same bucket count and total kWh.")
    if inproc.get("peak_rss_kib"):
        L.append(f"meterhub-histquery peak RSS {inproc['peak_rss_kib'] / 1024:.0f} MiB.")
    md = "\n".join(L) + "\n"
    if a.out:
        with open(a.out, "w") as f:
            f.write(md)
    sys.stdout.write(md)


if __name__ == "__main__":
    main()
