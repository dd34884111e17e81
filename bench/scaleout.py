#!/usr/bin/env python3
"""Scale-out benchmark (issue 8): 1, 2 and 3 meterhub nodes on one PostgreSQL
against one node on SQLite, side by side in one run, on loopback.

For each setup, with a fresh database:
  1. ingest: wrk POSTs batches of BATCH readings to every node at once (one wrk
     per node, CONNS connections shared out), for SECS seconds; reports
     readings/s and the CPU seconds meterhub and PostgreSQL spent per 10 000
     readings (from /proc), which shows where the bottleneck is;
  2. single POSTs the same way (one reading per request);
  3. live latency: meterhub-wsprobe subscribes SUBS WebSockets on the LAST node
     and POSTs single readings at RATE/s to the FIRST node, so with 2 and 3
     nodes every reading crosses nodes (NOTIFY) before it reaches a subscriber.

    bench/scaleout.py [--bin build-bench/meterhub] [--probe build-bench/meterhub-wsprobe]

Knobs (environment): SCALE_SECS [8], SCALE_CONNS [32], SCALE_BATCH [100],
SCALE_SUBS [200], SCALE_RATE [200], SCALE_WS_SECS [8], SCALE_NODES ["1 2 3"].
Prints a markdown table and writes bench/out/scaleout.md; raw output goes to
bench/out/raw/scaleout-*. Every process it starts is stopped on exit.
"""
import argparse
import atexit
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "pg"))
from pg_cluster import Cluster  # noqa: E402

SECS = int(os.environ.get("SCALE_SECS", "8"))
CONNS = int(os.environ.get("SCALE_CONNS", "32"))
BATCH = int(os.environ.get("SCALE_BATCH", "100"))
SUBS = int(os.environ.get("SCALE_SUBS", "200"))
RATE = int(os.environ.get("SCALE_RATE", "200"))
WS_SECS = int(os.environ.get("SCALE_WS_SECS", "8"))
NODES = [int(n) for n in os.environ.get("SCALE_NODES", "1 2 3").split()]
OUT = os.path.join(ROOT, "bench", "out")
RAW = os.path.join(OUT, "raw")
LUA = os.path.join(ROOT, "bench", "post_readings.lua")
TICK = os.sysconf("SC_CLK_TCK")

procs = []


def log(msg):
    print(f"[scaleout {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def cleanup():
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


atexit.register(cleanup)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except OSError:
            pass
    return total / TICK


def children_of(ppid):
    out = [ppid]
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == ppid:
                    out.append(int(d))
        except OSError:
            pass
    return out


def postmaster_pid(cluster):
    with open(os.path.join(cluster.data, "postmaster.pid")) as f:
        return int(f.readline())


def start_node(binary, db, workdir, name, token_env):
    log_path = os.path.join(workdir, f"{name}.log")
    logf = open(log_path, "w")
    p = subprocess.Popen(
        [binary, "--listen", "127.0.0.1:0", "--db", db, "--node-id", name, "--log-level", "info",
         "--auto-register", "--public-read", "--ip-rate", "0", "--device-rate", "0",
         "--max-connections-per-ip", "0"],
        stdout=subprocess.DEVNULL, stderr=logf, env=token_env)
    procs.append(p)
    deadline = time.time() + 30
    while time.time() < deadline:
        with open(log_path) as f:
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", f.read())
        if m:
            return p, int(m.group(1))
        if p.poll() is not None:
            raise SystemExit(f"{name} exited:\n" + open(log_path).read())
        time.sleep(0.05)
    raise SystemExit(f"{name} did not start")


def stop_nodes(nodes):
    for p, _ in nodes:
        p.send_signal(signal.SIGTERM)
    for p, _ in nodes:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()


def wrk_all(label, nodes, batch, base_ts, env):
    """One wrk per node at once; returns (readings/s, p99 ms of the worst, errors)."""
    per = max(1, CONNS // len(nodes))
    runs = []
    for k, (_, port) in enumerate(nodes):
        raw = open(os.path.join(RAW, f"scaleout-{label}-n{k}.txt"), "w")
        args = ["wrk", "-t1", f"-c{per}", f"-d{SECS}s", "--timeout", "10s", "--latency", "-s", LUA,
                f"http://127.0.0.1:{port}/api/v1/readings", "--", "meterhub",
                f"{label}-n{k}-m", str(base_ts), "100", str(batch)]
        runs.append((subprocess.Popen(args, stdout=raw, stderr=subprocess.STDOUT, env=env), raw))
    for p, raw in runs:
        p.wait(SECS + 60)
        raw.close()
    rps = 0.0
    p99 = 0.0
    errors = 0
    for k in range(len(nodes)):
        text = open(os.path.join(RAW, f"scaleout-{label}-n{k}.txt")).read()
        m = re.search(r"WRKRESULT (.*)", text)
        if not m:
            raise SystemExit(f"wrk {label} n{k} gave no result:\n{text}")
        kv = dict(x.split("=") for x in m.group(1).split())
        rps += float(kv["rps"])
        p99 = max(p99, float(kv["p99_ms"]))
        errors += sum(int(kv[e]) for e in ("non2xx", "connect_err", "read_err", "write_err",
                                            "timeout_err"))
    return rps * batch, p99, errors


def probe(probe_bin, nodes, label):
    ws_port = nodes[-1][1]
    post_port = nodes[0][1]
    raw = os.path.join(RAW, f"scaleout-{label}-ws.txt")
    r = subprocess.run([probe_bin, "--port", str(ws_port), "--post-ports", str(post_port),
                        "--subs", str(SUBS), "--meters", "20", "--rate", str(RATE),
                        "--duration", str(WS_SECS), "--prefix", f"{label}-ws-"],
                       capture_output=True, text=True, timeout=WS_SECS + 180)
    with open(raw, "w") as f:
        f.write(r.stdout + r.stderr)
    m = re.search(r"^RESULT (.*)$", r.stdout + r.stderr, re.M)
    if not m:
        raise SystemExit(f"wsprobe {label} gave no result:\n{r.stdout}{r.stderr}")
    return dict(x.split("=", 1) for x in m.group(1).split())


def pg_commits(cluster, db):
    """Transactions committed in database `db` so far (pg_stat_database)."""
    if cluster is None:
        return 0
    return int(cluster.psql(f"SELECT xact_commit FROM pg_stat_database WHERE datname = '{db}'"))


def run_setup(label, db, n, binary, probe_bin, workdir, pg_pids, cluster=None, dbname=None):
    tok = subprocess.run([binary, "token", "create", "--scope", "admin", "--name", "bench",
                          "--db", db], capture_output=True, text=True, timeout=60)
    if tok.returncode != 0:
        raise SystemExit(f"token create failed: {tok.stderr}")
    env = dict(os.environ, METERHUB_TOKEN=tok.stdout.strip())
    nodes = [start_node(binary, db, workdir, f"{label}-{k}", env) for k in range(n)]
    node_pids = [p.pid for p, _ in nodes]
    # Each phase 10 h of timestamps of its own, all in the past (a ts more than
    # --future-tolerance ahead is refused).
    base = int(time.time() * 1000) - 30 * 3600 * 1000
    row = {"setup": label, "nodes": n}
    for phase, batch in (("batch", BATCH), ("single", 1)):
        time.sleep(1)
        mh0, pg0 = cpu_seconds(node_pids), cpu_seconds(pg_pids())
        tx0 = pg_commits(cluster, dbname)
        t0 = time.time()
        rps, p99, errors = wrk_all(f"{label}-{phase}", nodes, batch, base, env)
        wall = time.time() - t0
        mh, pg = cpu_seconds(node_pids) - mh0, cpu_seconds(pg_pids()) - pg0
        tx = pg_commits(cluster, dbname) - tx0
        readings = rps * SECS
        row[phase] = dict(rps=rps, p99=p99, errors=errors,
                          mh_cpu=mh / readings * 1e4 if readings else 0,
                          pg_cpu=pg / readings * 1e4 if readings else 0,
                          mh_util=mh / wall, pg_util=pg / wall,
                          per_tx=readings / tx if tx else 0,
                          pg_ms_tx=pg / tx * 1000 if tx else 0)
        log(f"{label} {phase}: {rps:,.0f} readings/s, p99 {p99:.1f} ms, errors {errors}, "
            f"CPU/10k readings meterhub {row[phase]['mh_cpu']:.2f} s, "
            f"PostgreSQL {row[phase]['pg_cpu']:.2f} s; {tx} transactions "
            f"({row[phase]['per_tx']:.1f} readings, {row[phase]['pg_ms_tx']:.2f} ms of "
            "PostgreSQL CPU each)")
        base += 10 * 3600 * 1000  # the next phase's ts never collide
    row["ws"] = probe(probe_bin, nodes, label)
    log(f"{label} POST->WS: {row['ws']}")
    stop_nodes(nodes)
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build-bench", "meterhub"))
    ap.add_argument("--probe", default=os.path.join(ROOT, "build-bench", "meterhub-wsprobe"))
    a = ap.parse_args()
    for tool in ("wrk", "psql"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing (make bench installs wrk; postgresql gives psql)")
    os.makedirs(RAW, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="meterhub-scaleout.")
    atexit.register(shutil.rmtree, workdir, True)
    cluster = Cluster(tempfile.mkdtemp(prefix="meterhub-scaleout-pg.")).init().start()
    atexit.register(cluster.destroy)
    pm = postmaster_pid(cluster)
    rows = [run_setup("sqlite", os.path.join(workdir, "m.db"), 1, a.bin, a.probe, workdir,
                      lambda: [])]
    for n in NODES:
        url = cluster.create_database(f"bench{n}")
        rows.append(run_setup(f"pg{n}", url, n, a.bin, a.probe, workdir,
                              lambda: children_of(pm), cluster, f"bench{n}"))
    rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True).stdout.strip()
    lines = [
        f"Scale-out run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, meterhub {rev}, "
        f"{os.cpu_count()} CPUs; wrk {CONNS} connections in all for {SECS} s per phase, "
        f"batches of {BATCH}; POST→WS with {SUBS} subscribers on the last node, {RATE} POST/s "
        "to the first.",
        "",
        "| setup | batch: readings/s | p99 ms | CPU s / 10k readings (meterhub / PostgreSQL) "
        "| single: readings/s | p99 ms | CPU s / 10k (meterhub / PostgreSQL) "
        "| POST→WS p50 / p99 ms | delivered | readings per PostgreSQL transaction (batch / single) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        b, s, w = r["batch"], r["single"], r["ws"]
        lines.append(
            f"| {r['setup']} ({r['nodes']} node{'s' if r['nodes'] > 1 else ''}) "
            f"| {b['rps']:,.0f} | {b['p99']:.1f} | {b['mh_cpu']:.2f} / {b['pg_cpu']:.2f} "
            f"| {s['rps']:,.0f} | {s['p99']:.1f} | {s['mh_cpu']:.2f} / {s['pg_cpu']:.2f} "
            f"| {w.get('p50_ms', '?')} / {w.get('p99_ms', '?')} | {w.get('delivery', '?')} "
            + (f"| {b['per_tx']:.0f} / {s['per_tx']:.1f} |" if b["per_tx"] else "| — |"))
        if b["errors"] or s["errors"]:
            lines.append(f"|  errors: batch {b['errors']}, single {s['errors']} "
                         "| | | | | | | | | |")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(OUT, "scaleout.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
