#!/usr/bin/env python3
"""A throwaway PostgreSQL 15 cluster for tests, on a Unix socket only.

    python3 tests/pg/pg_cluster.py start DIR [--port N]   # prints the URL
    python3 tests/pg/pg_cluster.py stop DIR

or, from Python:

    with Cluster(tmp_dir) as pg:
        url = pg.url("postgres")
        pg.create_database("t1")
        pg.restart()          # a PostgreSQL restart under running nodes

The cluster listens on no TCP address (listen_addresses=''), only on a socket
in DIR, so parallel test processes never collide. initdb refuses to run as
root, so as root the data directory belongs to the `postgres` user (Debian's
postgresql package creates it) and the server runs as that user via
runuser. fsync stays on: the tests check durability, not just behaviour.
Start-up takes about a second.
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import time

PG_BIN = os.environ.get("METERHUB_PG_BIN", "/usr/lib/postgresql/15/bin")


def free_port():
    # Only a name for the socket file (.s.PGSQL.<port>); nothing listens on TCP.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, base_dir, port=None):
        self.base = os.path.abspath(base_dir)
        self.data = os.path.join(self.base, "data")
        self.sock = os.path.join(self.base, "sock")
        self.log = os.path.join(self.base, "postgres.log")
        self.port = port or free_port()
        self.as_root = os.geteuid() == 0

    # -- commands -----------------------------------------------------------
    def _run(self, args, check=True, timeout=60):
        if self.as_root:
            args = ["runuser", "-u", "postgres", "--"] + args
        return subprocess.run(args, check=check, timeout=timeout, capture_output=True, text=True)

    def init(self):
        os.makedirs(self.sock, exist_ok=True)
        if self.as_root:
            shutil.chown(self.base, "postgres")
            shutil.chown(self.sock, "postgres")
        if not os.path.exists(os.path.join(self.data, "PG_VERSION")):
            self._run([f"{PG_BIN}/initdb", "-D", self.data, "-U", "postgres", "--auth=trust",
                       "-E", "UTF8", "--locale=C.UTF-8", "--no-instructions"])
        return self

    def start(self):
        opts = (f"-p {self.port} -k {self.sock} -c listen_addresses='' -c max_connections=200 "
                f"-c shared_buffers=64MB")
        r = self._run([f"{PG_BIN}/pg_ctl", "-D", self.data, "-l", self.log, "-o", opts, "-w",
                       "-t", "60", "start"], check=False)
        if r.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {r.stdout}{r.stderr}\n{self.tail_log()}")
        return self

    def stop(self, mode="fast"):
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            self._run([f"{PG_BIN}/pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60", "stop"],
                      check=False)

    def restart(self, down_seconds=0.0):
        self.stop("fast")
        if down_seconds:
            time.sleep(down_seconds)
        self.start()

    def destroy(self):
        self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)

    def tail_log(self, n=30):
        try:
            with open(self.log) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    # -- use ------------------------------------------------------------------
    def url(self, db="postgres"):
        return f"postgresql://postgres@/{db}?host={self.sock}&port={self.port}"

    def psql(self, sql, db="postgres"):
        r = subprocess.run(["psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1",
                            self.url(db), "-c", sql],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"psql failed: {r.stderr}")
        return r.stdout.strip()

    def create_database(self, name):
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def __enter__(self):
        try:
            return self.init().start()
        except BaseException:
            self.destroy()
            raise

    def __exit__(self, *exc):
        self.destroy()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=["start", "stop"])
    ap.add_argument("dir")
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    if a.command == "start":
        port_file = os.path.join(a.dir, "port")
        # A leftover cluster of an interrupted run: stop it first.
        if os.path.exists(port_file):
            with open(port_file) as f:
                Cluster(a.dir, int(f.read())).destroy()
        c = Cluster(a.dir, a.port or None)
        try:
            c.init().start()
        except BaseException:
            c.destroy()  # nothing half-made is left for the next run
            raise
        with open(port_file, "w") as f:
            f.write(str(c.port))
        with open(os.path.join(a.dir, "url"), "w") as f:
            f.write(c.url())
        print(c.url())
    else:
        port_file = os.path.join(a.dir, "port")
        if not os.path.exists(port_file):
            return 0
        with open(port_file) as f:
            Cluster(a.dir, int(f.read())).destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
