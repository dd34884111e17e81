#!/usr/bin/env python3
"""Alerts: what rules cost the ingest path and how fast an alert arrives.

Starts the real binary (lab flags, fresh database under a temp dir), then
1. ingest: POSTs batches of 5000 readings to a meter without rules and to one
   with six value rules (alternating batches), reporting readings/s of each;
2. latency: N times, POSTs one reading that crosses a threshold and measures
   the time until the "alert" message arrives on /ws (and its clear).
Usage: bench/alerts.py build/meterhub [N]. Numbers go to bench/RESULTS.md by hand.
"""
import asyncio, json, os, re, shutil, statistics, subprocess, sys, tempfile, time, urllib.request

import websockets

BIN = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 50
BASE = 1_748_779_200_000  # 2025-06-01T12:00:00Z


def iso(ms):
    s, f = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + ".%03dZ" % f


TOKEN = [""]  # the admin token from the first start's banner


def req(port, method, path, body=None):
    r = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                               data=None if body is None else json.dumps(body).encode(),
                               headers={"Content-Type": "application/json",
                                        "Authorization": "Bearer " + TOKEN[0]})
    with urllib.request.urlopen(r, timeout=30) as res:
        return json.loads(res.read() or b"null")


def reading(m, ts, v=230.0):
    return {"meter_id": m, "ts": iso(ts), "voltage": v, "current": 5, "power": 1150,
            "energy": 1 + ts / 3.6e9, "frequency": 50.0, "power_factor": 0.97}


async def latency(port):
    ws = await websockets.connect(f"ws://127.0.0.1:{port}/ws", ping_interval=None)
    await ws.send(json.dumps({"subscribe": ["lat"]}))
    await ws.recv()
    out = []
    loop = asyncio.get_running_loop()
    for k in range(N):
        for v in (260.0, 230.0):  # raise, then clear
            ts = BASE + 10_000_000 + k * 2000 + (0 if v > 250 else 1000)
            t0 = time.perf_counter()
            await loop.run_in_executor(None, req, port, "POST", "/api/v1/readings",
                                       reading("lat", ts, v))
            while True:
                msg = json.loads(await ws.recv())
                if msg.get("type") == "alert":
                    break
            out.append((time.perf_counter() - t0) * 1000)
    await ws.close()
    return out


def main():
    d = tempfile.mkdtemp(prefix="meterhub-alerts-bench-")
    log = open(os.path.join(d, "log"), "w")
    p = subprocess.Popen([BIN, "--listen", "127.0.0.1:0", "--db", os.path.join(d, "m.db"),
                          "--public-read", "--auto-register", "--ip-rate", "0", "--device-rate", "0",
                          "--retention-raw-days", "0"],
                         stdout=log, stderr=subprocess.STDOUT)
    try:
        port = None
        deadline = time.time() + 10
        while port is None and time.time() < deadline:
            time.sleep(0.05)
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", open(log.name).read())
            port = int(m.group(1)) if m else None
        if port is None:
            raise SystemExit("no port")
        TOKEN[0] = re.search(r"^\s+(mht_\S+)$", open(log.name).read(), re.M).group(1)
        for m in ("plain", "ruled", "lat"):
            req(port, "POST", "/api/v1/readings", reading(m, BASE))
        six = [{"kind": "over_voltage", "threshold": 253, "hysteresis": 3, "hold_s": 5},
               {"kind": "under_voltage", "threshold": 207, "hysteresis": 3},
               {"kind": "over_current", "threshold": 32},
               {"kind": "over_power", "threshold": 7000},
               {"kind": "power_factor_below", "threshold": 0.8, "hysteresis": 0.05},
               {"kind": "frequency_out_of_band", "min": 49.8, "max": 50.2, "hysteresis": 0.05}]
        req(port, "PUT", "/api/v1/meters/ruled/alerts", {"rules": six})
        req(port, "PUT", "/api/v1/meters/lat/alerts",
            {"rules": [{"kind": "over_voltage", "threshold": 253, "hysteresis": 3}]})
        spent = {"plain": 0.0, "ruled": 0.0}
        batches = 20
        for b in range(batches):
            for m in ("plain", "ruled"):
                body = [reading(m, BASE + 1000 + (b * 5000 + i) * 1000) for i in range(5000)]
                t0 = time.perf_counter()
                req(port, "POST", "/api/v1/readings", body)
                spent[m] += time.perf_counter() - t0
        for m, s in spent.items():
            print(f"ingest {m:5}: {batches * 5000 / s:,.0f} readings/s ({batches} x 5000)")
        lat = asyncio.run(latency(port))
        lat.sort()
        print(f"POST -> /ws alert ({len(lat)}): p50 {statistics.median(lat):.2f} ms, "
              f"p99 {lat[int(len(lat) * 0.99) - 1]:.2f} ms, max {lat[-1]:.2f} ms")
    finally:
        p.terminate()
        p.wait(10)
        log.close()
        shutil.rmtree(d, ignore_errors=True)


main()
