#!/usr/bin/env python3
"""Bounded soak of meterhub (`make soak`; SOAK_SECONDS overrides the 600 s).

Starts the real binary on 127.0.0.1 (ephemeral port, fresh database in a temp
dir, lab flags: keyless writes, no rate limits) and runs, for --seconds:

  ingest   1 000 meters, one reading each per second, posted in batches of 50
           over 20 keep-alive connections (like meterhub-sim --batch 50);
  history  2 loops querying /series and /energy of random meters;
  subs     2 000 WebSocket subscribers on /ws/{meter}, each staying 10-60 s,
           then leaving and reconnecting elsewhere (continuous churn).

ingest+history and two halves of subs run in three processes so the Python
side keeps up as far as the cores allow (client_cpu_s close to --seconds
means a client process was saturated and its latencies include its own
queueing). The parent samples the server's VmRSS every 5 s. At the
end it stops the server with SIGTERM and prints one JSON report: RSS over
time (first, after warm-up, peak, last), p50/p99 of ingest POSTs, of POST ->
WebSocket delivery (reading ts, stamped just before its POST is written, to
receipt) and of history queries, and every error counted (expected: none).
Only the standard library and python3-websockets (Debian).
"""
import argparse
import asyncio
import calendar
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HOST = "127.0.0.1"


def pct(values, p):
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, int(p / 100 * (len(s) - 1) + 0.5))], 1)


def stats(values):
    return {"n": len(values), "p50_ms": pct(values, 50), "p99_ms": pct(values, 99),
            "max_ms": round(max(values), 1) if values else None}


def iso(ms):
    secs, frac = divmod(int(ms), 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + ".%03dZ" % frac


def now_ms():
    return time.time() * 1000.0


# ---------------------------------------------------------------------------
# A minimal keep-alive HTTP/1.1 client (the server always sends Content-Length)

class Http:
    def __init__(self, port):
        self.port = port
        self.r = self.w = None

    async def request(self, method, path, body=b""):
        if self.w is None:
            self.r, self.w = await asyncio.open_connection(HOST, self.port)
        head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\n"
        if body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.w.write(head.encode() + b"\r\n" + body)
        try:
            status = int((await self.r.readline()).split()[1])
            length = 0
            while (line := await self.r.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            return status, await self.r.readexactly(length)
        except Exception:
            self.w.close()
            self.w = None
            raise


# ---------------------------------------------------------------------------
# Worker: ingest + history queries

async def ingest_worker(port, seconds, meters, errors):
    ids = [f"soak-{i:04d}" for i in range(meters)]
    conns = [Http(port) for _ in range(20)]
    post_ms, query_ms = [], []
    energy = {m: 1000.0 for m in ids}
    start = time.monotonic()
    end = start + seconds

    async def post(conn, batch):
        t0 = time.monotonic()
        ts = iso(now_ms())  # just before the POST is written: delivery latency starts here
        body = json.dumps([{"meter_id": m, "ts": ts, "voltage": 230.0, "current": 1.0,
                            "power": 230.0, "energy": energy[m]} for m in batch]).encode()
        try:
            status, resp = await asyncio.wait_for(conn.request("POST", "/api/v1/readings", body),
                                                  30)
            if status != 201:
                errors.append(f"POST {status} {resp[:200]!r}")
            post_ms.append((time.monotonic() - t0) * 1000)
        except Exception as e:  # noqa: BLE001 - every failure is counted
            errors.append(f"POST {type(e).__name__} {e}")

    async def ticker():
        tick = time.monotonic()
        while tick < end:
            for m in ids:
                energy[m] += 0.001
            batches = [ids[i:i + 50] for i in range(0, len(ids), 50)]
            await asyncio.gather(*(post(conns[i % len(conns)], b) for i, b in enumerate(batches)))
            tick += 1.0
            await asyncio.sleep(max(0.0, tick - time.monotonic()))

    async def queries():
        conn = Http(port)
        while time.monotonic() < end:
            m = random.choice(ids)
            path = random.choice([f"/api/v1/meters/{m}/series?from={iso(now_ms() - 600_000)}",
                                  f"/api/v1/meters/{m}/series?step=1m",
                                  f"/api/v1/meters/{m}/energy?period=hour",
                                  f"/api/v1/meters/{m}/energy?period=day&tz=Europe/Berlin"])
            t0 = time.monotonic()
            try:
                status, resp = await asyncio.wait_for(conn.request("GET", path), 30)
                # Before a meter's first reading its history is 404: not an error.
                if status != 200 and not (status == 404 and time.monotonic() < start + 5):
                    errors.append(f"GET {path} {status} {resp[:200]!r}")
                query_ms.append((time.monotonic() - t0) * 1000)
            except Exception as e:  # noqa: BLE001
                errors.append(f"GET {type(e).__name__} {e}")
            await asyncio.sleep(0.05)

    await asyncio.gather(ticker(), queries(), queries())
    return {"post_ms": post_ms, "query_ms": query_ms}


# ---------------------------------------------------------------------------
# Worker: WebSocket subscribers with churn

async def subs_worker(port, seconds, meters, subs, errors):
    import websockets  # python3-websockets (Debian)

    delivery_ms, sessions, messages = [], [0], [0]
    end = time.monotonic() + seconds

    async def subscriber(i):
        await asyncio.sleep(random.uniform(0, 10))  # spread the first connects
        while time.monotonic() < end - 5:
            meter = f"soak-{random.randrange(meters):04d}"
            stay = min(random.uniform(10, 60), end - time.monotonic())
            try:
                async with websockets.connect(f"ws://{HOST}:{port}/ws/{meter}", open_timeout=30,
                                              close_timeout=10, ping_interval=None,
                                              max_queue=None) as ws:
                    sessions[0] += 1
                    leave = time.monotonic() + stay
                    while (left := leave - time.monotonic()) > 0:
                        try:
                            msg = await asyncio.wait_for(ws.recv(), left)
                        except asyncio.TimeoutError:
                            break
                        t = now_ms()
                        ts = json.loads(msg)["ts"]  # 2026-11-27T17:00:00.123Z
                        sent = calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S"))
                        delivery_ms.append(t - (sent * 1000 + int(ts[20:23])))
                        messages[0] += 1
            except Exception as e:  # noqa: BLE001
                errors.append(f"WS {meter} {type(e).__name__} {e}")
                await asyncio.sleep(1)

    await asyncio.gather(*(subscriber(i) for i in range(subs)))
    # The first message of a session is the latest reading on connect (up to
    # 1 s old): part of the distribution, as a dashboard would see it.
    return {"delivery_ms": delivery_ms, "ws_sessions": sessions[0]}


def run_worker(args):
    errors = []
    if args.worker == "ingest":
        out = asyncio.run(ingest_worker(args.port, args.seconds, args.meters, errors))
    else:
        out = asyncio.run(subs_worker(args.port, args.seconds, args.meters, args.subs, errors))
    out["errors"] = errors
    out["cpu_s"] = round(time.process_time(), 1)  # near --seconds: the client was the bottleneck
    with open(args.out, "w") as f:
        json.dump(out, f, separators=(",", ":"))


# ---------------------------------------------------------------------------
# Parent: server, workers, RSS samples, report

def memory_mib(pid):
    """VmRSS and its anonymous part (heap: SQLite's page caches, sessions)."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key = line.split(":")[0]
            if key in ("VmRSS", "RssAnon"):
                out[key] = round(int(line.split()[1]) / 1024, 1)
    return out.get("VmRSS"), out.get("RssAnon")


def db_mib(path):
    """The database with its WAL: SQLite's page cache grows with it (up to cache_size)."""
    total = sum(os.path.getsize(path + ext) for ext in ("", "-wal") if os.path.exists(path + ext))
    return round(total / 1024 / 1024, 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default="build/meterhub")
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", 600)))
    ap.add_argument("--meters", type=int, default=1000)
    ap.add_argument("--subs", type=int, default=2000)
    ap.add_argument("--warmup", type=float, default=None, help="seconds (default 10%%, ≥ 30)")
    ap.add_argument("--only", choices=["ingest", "subs"],
                    help="run one side alone, to tell which one a memory growth comes from")
    ap.add_argument("--worker", choices=["ingest", "subs"], help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return run_worker(args)

    import resource
    import threading
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # workers and server inherit
    tmp = tempfile.mkdtemp(prefix="meterhub-soak-")
    server = subprocess.Popen(
        [args.bin, "--listen", f"{HOST}:0", "--db", f"{tmp}/soak.db", "--public-read",
         "--auto-register", "--ip-rate", "0", "--device-rate", "0",
         "--max-connections-per-ip", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    workers = []
    try:
        port = None
        deadline = time.monotonic() + 20
        while port is None and time.monotonic() < deadline:
            line = server.stdout.readline()
            if not line:
                break
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
            port = int(m.group(1)) if m else None
        if port is None:
            sys.exit("meterhub did not start")
        log = []  # the server's remaining output (warnings, errors)
        threading.Thread(target=lambda: log.extend(server.stdout), daemon=True).start()

        me = [sys.executable, os.path.abspath(__file__), "--port", str(port), "--seconds",
              str(args.seconds), "--meters", str(args.meters), "--subs", str(args.subs)]
        # Subscribers in two processes: Python's websockets is the heaviest part.
        half = str(args.subs // 2)
        # Results go to files: megabytes of samples would fill a pipe.
        outs = [f"{tmp}/worker{i}.json" for i in range(3)]
        workers = []
        if args.only != "subs":
            workers.append(subprocess.Popen(me + ["--worker", "ingest", "--out", outs[0]]))
        if args.only != "ingest":
            workers += [subprocess.Popen(me + ["--worker", "subs", "--subs", half, "--out", o])
                        for o in outs[1:]]
        warmup = args.warmup if args.warmup is not None else max(30.0, args.seconds / 10)
        samples = []  # (seconds since start, VmRSS MiB, RssAnon MiB, database + WAL MiB)
        t0 = time.monotonic()
        while any(w.poll() is None for w in workers):
            samples.append((round(time.monotonic() - t0), *memory_mib(server.pid),
                            db_mib(f"{tmp}/soak.db")))
            if time.monotonic() - t0 > args.seconds + 120:
                sys.exit("workers did not finish")
            time.sleep(5)
        out = []
        for o in outs:
            if os.path.exists(o):
                with open(o) as f:
                    out.append(json.load(f))
            else:
                out.append({})
        ran = [args.only != "subs"] + [args.only != "ingest"] * 2
        errors = [e for o, r in zip(out, ran) if r for e in o.get("errors", ["no result"])]
        errors += [f"worker exit code {w.returncode}" for w in workers if w.returncode != 0]
        delivery = [x for o in out[1:] for x in o.get("delivery_ms", [])]
        results = {
            "ingest_post": stats(out[0].get("post_ms", [])),
            "readings_posted": 50 * len(out[0].get("post_ms", [])),
            "history_query": stats(out[0].get("query_ms", [])),
            "ws_delivery": stats(delivery),
            "ws_sessions": sum(o.get("ws_sessions", 0) for o in out[1:]),
            "client_cpu_s": {"ingest": out[0].get("cpu_s"),
                             "subs": [o.get("cpu_s") for o in out[1:]]},
            "errors": len(errors), "error_samples": errors[:10],
        }
        server.send_signal(signal.SIGTERM)
        rc = server.wait(30)
        after = [r for t, r, *_ in samples if t >= warmup]
        report = {
            "seconds": args.seconds, "meters": args.meters, "subscribers": args.subs,
            "rss_mib": {"first": samples[0][1], "after_warmup": after[0] if after else None,
                        "peak": max(r for _, r, *_ in samples),
                        "peak_after_warmup": max(after) if after else None,
                        "last": samples[-1][1]},
            "rss_samples": {"columns": ["s", "VmRSS_MiB", "RssAnon_MiB", "db_wal_MiB"],
                            "rows": samples},
            **results,
            "server_exit_code": rc,
            "server_log_warnings": [ln.rstrip() for ln in log if " warn" in ln or " error" in ln][:20],
        }
        print(json.dumps(report, indent=1))
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()
        if server.poll() is None:
            server.kill()
            server.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
