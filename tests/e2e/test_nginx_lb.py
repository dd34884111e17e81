"""nginx in front of two meterhub nodes on one PostgreSQL (docs/scale-out.md).

Runs the shipped packaging/nginx/meterhub.conf (its node addresses and port
replaced) with Debian's nginx, and checks what a user behind a load balancer
relies on: HTTP and WebSocket both pass, readings posted through nginx (landing
on either node) reach a WebSocket opened through nginx, and when a node is
killed nginx sends the devices' POSTs to the other node while subscribers that
were on the dead node reconnect through nginx and resume with the latest
reading. Nothing acknowledged is lost or stored twice.
"""
import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import (HOST, http, reading, run_async, ws_connect, ws_recv_json, ws_recv_n)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pg"))
from pg_cluster import Cluster  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NGINX_CONF = os.path.join(ROOT, "packaging", "nginx", "meterhub.conf")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
BASE_TS = 1_748_779_200_000  # 2025-06-01T12:00:00Z


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(tempfile.mkdtemp(prefix="meterhub-e2e-pg.")).init().start()
    yield c
    c.destroy()


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Nginx:
    """Debian's nginx with the shipped site config, on a free loopback port."""

    def __init__(self, node_ports):
        self.dir = tempfile.mkdtemp(prefix="meterhub-nginx.")
        self.port = free_port()
        site = open(NGINX_CONF).read()
        servers = "".join(f"    server {HOST}:{p} max_fails=1 fail_timeout=5s;\n"
                          for p in node_ports)
        site, n = re.subn(r"(    server 10\.0\.0\.\d+:8000[^\n]*\n)+", servers, site)
        assert n == 1, "the upstream block of packaging/nginx/meterhub.conf changed shape"
        site, n = re.subn(r"listen 80;", f"listen {HOST}:{self.port};", site)
        assert n == 1
        site = site.replace("/var/log/nginx/", self.dir + "/")
        with open(os.path.join(self.dir, "meterhub.conf"), "w") as f:
            f.write(site)
        temp = "".join(f"  {k}_temp_path {self.dir}/{k};\n"
                       for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        user = "user root;\n" if os.geteuid() == 0 else ""
        with open(os.path.join(self.dir, "nginx.conf"), "w") as f:
            f.write(f"{user}daemon off;\nworker_processes 1;\npid {self.dir}/nginx.pid;\n"
                    f"error_log {self.dir}/error.log warn;\n"
                    "events { worker_connections 1024; }\n"
                    f"http {{\n  access_log off;\n{temp}  include {self.dir}/meterhub.conf;\n}}\n")
        self.proc = subprocess.Popen([NGINX, "-p", self.dir, "-c", f"{self.dir}/nginx.conf"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex((HOST, self.port)) == 0:
                    return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        err = self.proc.stderr.read().decode() if self.proc.poll() is not None else ""
        self.stop()
        pytest.fail(f"nginx did not start: {err}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def lb(cluster, server_factory, request):
    """Two nodes on a fresh database and nginx in front of them."""
    url = cluster.create_database(re.sub(r"\W", "_", request.node.name)[:50])
    nodes = [server_factory(db=url, args=["--node-id", f"n{k}"]) for k in range(2)]
    ngx = Nginx([n.port for n in nodes])
    yield ngx, nodes
    ngx.stop()


def requests_served(node):
    """POSTs to /api/v1/readings this node answered (its /metrics)."""
    r = http(node.port, "GET", "/metrics")
    assert r.status == 200, r
    total = 0
    for line in r.body.decode().splitlines():
        if line.startswith("meterhub_http_requests_total{") and '"/api/v1/readings"' in line \
                and 'method="POST"' in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def test_http_and_websocket_through_nginx_reach_every_node(lb):
    ngx, nodes = lb
    meter = "lb-1"
    n = 40

    async def main():
        # least_conn puts the two WebSockets on different nodes; with equal
        # connection counts it then alternates the POSTs (each on a new
        # connection) between the nodes.
        subs = [await ws_connect(ngx.port, meter) for _ in range(2)]
        try:
            for i in range(n):
                r = await asyncio.to_thread(http, ngx.port, "POST", "/api/v1/readings",
                                            reading(meter, BASE_TS + i * 1000, power=100.0 + i),
                                            {"Authorization": f"Bearer {nodes[0].admin_token}"})
                assert r.status == 201, r
            for ws in subs:
                got = await ws_recv_n(ws, n, timeout=20)
                assert [g["power"] for g in got] == [100.0 + i for i in range(n)]
                assert all(g["meter_id"] == meter for g in got)
        finally:
            for ws in subs:
                await ws.close()

    run_async(main())
    served = [requests_served(s) for s in nodes]
    assert sum(served) == n and min(served) > 0, served
    r = http(ngx.port, "GET", f"/api/v1/meters/{meter}/readings?limit=1000")
    assert r.status == 200 and len(r.json()["readings"]) == n, r


def test_a_node_dies_devices_and_subscribers_carry_on_through_nginx(lb):
    ngx, nodes = lb
    meter = "lb-2"
    token = nodes[0].admin_token
    acked = []

    def post(i):
        r = http(ngx.port, "POST", "/api/v1/readings", reading(meter, BASE_TS + i * 1000,
                                                                power=float(i)),
                 {"Authorization": f"Bearer {token}"}, timeout=15)
        return r.status

    async def main():
        subs = [await ws_connect(ngx.port, meter) for _ in range(4)]  # spread over both nodes
        try:
            for i in range(20):
                assert await asyncio.to_thread(post, i) == 201
                acked.append(i)
            for ws in subs:
                got = await ws_recv_n(ws, 20, timeout=20)
                assert [g["power"] for g in got] == [float(i) for i in range(20)]
            nodes[1].allow_error_logs = True
            nodes[1].stop(signal.SIGKILL)
            # Devices keep posting through nginx: every POST is answered 201
            # by the surviving node (nginx retries a connection refused).
            for i in range(20, 60):
                assert await asyncio.to_thread(post, i) == 201, i
                acked.append(i)
            # Subscribers of the dead node were cut; the others got everything.
            alive, cut = [], 0
            for ws in subs:
                try:
                    got = await ws_recv_n(ws, 40, timeout=10)
                    assert [g["power"] for g in got] == [float(i) for i in range(20, 60)]
                    alive.append(ws)
                except Exception:
                    cut += 1
            assert alive, "every subscriber was on the killed node"
            # A subscriber reconnecting through nginx starts with the latest.
            again = await ws_connect(ngx.port, meter)
            subs.append(again)
            first = await ws_recv_json(again, 10)
            assert first["power"] == 59.0, first
        finally:
            for ws in subs:
                await ws.close()

    run_async(main(), timeout=90)
    r = http(ngx.port, "GET", f"/api/v1/meters/{meter}/readings?limit=1000")
    assert r.status == 200, r
    stored = sorted(int(x["power"]) for x in r.json()["readings"])
    assert stored == sorted(acked) == list(range(60))
