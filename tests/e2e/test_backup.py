"""`meterhub backup --db X --out Y`: an online, consistent copy while a server
ingests under load; the copy serves every reading acknowledged before the
backup began and passes integrity_check; refusals leave nothing behind."""
import os
import sqlite3
import subprocess
import threading
import time

from conftest import BASE_TS, http, meterhub_bin, reading, ts_ms


def run_backup(db, out, *extra, timeout=120):
    return subprocess.run([meterhub_bin(), "backup", "--db", str(db), "--out", str(out), *extra],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)


def integrity(path):
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [r[0] for r in con.execute("PRAGMA integrity_check")]
    finally:
        con.close()


class Loader:
    """Writers posting batches of new readings until stopped (bounded: at most
    `limit_s` seconds). Records, per meter, each batch's timestamps with the
    time its 201 arrived."""

    def __init__(self, srv, meters, batch=50, limit_s=60):
        self.srv, self.meters, self.batch, self.limit_s = srv, meters, batch, limit_s
        self.stop = threading.Event()
        self.acked = {m: [] for m in meters}  # meter -> [(ack_time, [ts…])]
        self.errors = []
        self.threads = [threading.Thread(target=self.run, args=(m,), daemon=True)
                        for m in meters]

    def run(self, meter):
        deadline = time.monotonic() + self.limit_s
        n = 0
        while not self.stop.is_set() and time.monotonic() < deadline:
            ts = [BASE_TS + (n + i) * 1000 for i in range(self.batch)]
            n += self.batch
            body = [reading(meter, t, energy=1000 + (t - BASE_TS) / 1e6) for t in ts]
            try:
                r = http(self.srv.port, "POST", "/api/v1/readings", body,
                         {"Authorization": f"Bearer {self.srv.admin_token}"})
            except OSError as e:
                self.errors.append(repr(e))
                continue
            if r.status != 201:
                self.errors.append(f"{r.status} {r.body[:200]!r}")
                continue
            self.acked[meter].append((time.monotonic(), ts))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(30)


def test_backup_under_load_keeps_every_acknowledged_reading(server_factory, tmp_path):
    srv = server_factory()
    meters = ["bk1", "bk2", "bk3"]
    out = tmp_path / "copy" / "backup.db"
    out.parent.mkdir()
    with Loader(srv, meters) as load:
        # Let the load build up some history first.
        deadline = time.monotonic() + 20
        while sum(len(v) for v in load.acked.values()) < 150:
            assert time.monotonic() < deadline and not load.errors, load.errors
            time.sleep(0.05)
        began = time.monotonic()
        # Small steps, so that many of them run while the writers commit.
        p = run_backup(srv.db_path, out, "--step-pages", "4")
        finished = time.monotonic()
        # The writers went on while the copy was taken.
        after = sum(1 for v in load.acked.values() for t, _ in v if began < t < finished)
    assert p.returncode == 0, p
    assert "integrity_check ok" in p.stderr, p.stderr
    assert not load.errors, load.errors[:5]
    assert os.path.exists(out) and not os.path.exists(str(out) + ".tmp")
    assert not os.path.exists(str(out) + "-wal"), "the copy must be one self-contained file"
    assert integrity(out) == ["ok"]
    print(f"backup took {finished - began:.3f} s; {after} batches acknowledged meanwhile; "
          f"{os.path.getsize(out)} bytes")

    expected = {m: sorted(t for ack, ts in load.acked[m] if ack < began for t in ts)
                for m in meters}
    sent = {m: {t for _, ts in load.acked[m] for t in ts} for m in meters}
    copy = server_factory(db=out)
    for m in meters:
        rows, _ = copy.all_readings(m, limit=10000)
        got = [ts_ms(r["ts"]) for r in rows]
        have = set(got)
        missing = [t for t in expected[m] if t not in have]
        assert not missing, f"{m}: {len(missing)} acknowledged readings missing from the copy"
        # Nothing that was never sent, and whole batches only (one snapshot).
        assert have <= sent[m], m
        batches = {}
        for t in got:
            batches.setdefault((t - BASE_TS) // 1000 // load.batch, 0)
            batches[(t - BASE_TS) // 1000 // load.batch] += 1
        assert all(c == load.batch for c in batches.values()), f"{m}: a partial batch"
    # The copy serves.
    assert copy.get("/readyz").status == 200


def test_backup_refuses_to_overwrite_without_force(server_factory, tmp_path):
    srv = server_factory()
    srv.post_ok([reading("f1", BASE_TS + i) for i in range(10)], accepted=10)
    out = tmp_path / "existing.db"
    out.write_bytes(b"precious")
    p = run_backup(srv.db_path, out)
    assert p.returncode != 0
    assert "--force" in p.stderr and "exists" in p.stderr, p.stderr
    assert out.read_bytes() == b"precious"
    p = run_backup(srv.db_path, out, "--force")
    assert p.returncode == 0, p
    assert integrity(out) == ["ok"]
    con = sqlite3.connect(f"file:{out}?mode=ro", uri=True)
    try:
        assert con.execute("SELECT count(*) FROM meter_readings").fetchone()[0] == 10
    finally:
        con.close()


def test_backup_of_a_stopped_server_and_bad_sources(server_factory, tmp_path):
    srv = server_factory()
    srv.post_ok([reading("s1", BASE_TS + i * 1000) for i in range(5)], accepted=5)
    srv.stop()
    out = tmp_path / "a.db"
    p = run_backup(srv.db_path, out)
    assert p.returncode == 0, p
    assert integrity(out) == ["ok"]
    # A database that does not exist is not created.
    missing = tmp_path / "nothing.db"
    p = run_backup(missing, tmp_path / "b.db")
    assert p.returncode != 0 and "no database" in p.stderr, p
    assert not missing.exists() and not (tmp_path / "b.db").exists()
    # Not a meterhub database: refused, and no copy left behind.
    junk = tmp_path / "junk.db"
    junk.write_bytes(os.urandom(8192))
    p = run_backup(junk, tmp_path / "c.db")
    assert p.returncode != 0 and p.stderr.strip(), p
    assert not (tmp_path / "c.db").exists() and not (tmp_path / "c.db.tmp").exists()
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    p = run_backup(other, tmp_path / "d.db")
    assert p.returncode != 0 and "not a meterhub database" in p.stderr, p
    assert not (tmp_path / "d.db").exists()
    # Into a directory that does not exist; onto the database itself.
    p = run_backup(srv.db_path, tmp_path / "no" / "dir" / "e.db")
    assert p.returncode != 0 and p.stderr.strip(), p
    p = run_backup(srv.db_path, srv.db_path, "--force")
    assert p.returncode != 0 and "database itself" in p.stderr, p
    assert integrity(srv.db_path) == ["ok"]
    # --out is required.
    p = subprocess.run([meterhub_bin(), "backup", "--db", srv.db_path], capture_output=True,
                       text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode != 0 and "--out" in p.stderr + p.stdout
