"""Store faults on a real filesystem under a running meterhub: the disk fills
up, the disk turns read-only, the database file turns read-only.

Expectations (docs/api.md § Store failures):
  - POST /readings answers 503 with Retry-After and a JSON error
    "store_unavailable" and stores nothing of that request;
  - nothing is acknowledged that is not in the database afterwards;
  - /readyz turns red (503) while /healthz stays 200 and reads keep working;
  - the writer thread survives (no crash, no transaction left open): when
    the fault goes away, ingest and /readyz recover by themselves;
  - WebSocket subscribers stay connected and get exactly the committed
    readings;
  - afterwards PRAGMA integrity_check is ok and the rollups equal the raw
    rows.

These tests need root (mount, chattr). They use a tmpfs of a few MiB for the
full disk, an ext4 image on a loop device for the read-only disk and the
immutable flag for the read-only database file; each is
skipped with the reason when that is not possible here. Every mount is
undone in teardown, after the servers stopped.
"""
import contextlib
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import BASE_TS, RawWebSocket, reading, run_binary, ts_ms
import db_check

STEP_MS = 1000
KWH_STEP = 0.001


def _run(*cmd):
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=30)


@pytest.fixture
def small_fs(tmp_path):
    """A 4 MiB tmpfs at tmp_path/fs. Requested before server_factory, so the
    servers on it are stopped before it is unmounted."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    mnt = tmp_path / "fs"
    mnt.mkdir()
    r = _run("mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(mnt))
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        if _run("umount", str(mnt)).returncode != 0:
            _run("umount", "-l", str(mnt))


class Meter:
    """Readings of one meter with increasing ts and energy."""

    def __init__(self, name):
        self.name = name
        self.k = 0

    def take(self, n):
        out = []
        for _ in range(n):
            ts = BASE_TS + self.k * STEP_MS
            out.append(reading(self.name, ts, energy=round(1000 + self.k * KWH_STEP, 6),
                               power=100 + self.k % 17, frequency=50.0))
            self.k += 1
        return out


def ts_of(body):
    return [ts_ms(r["ts"]) for r in body]


class Subscriber:
    """/ws/{meter} over a raw socket; collects the ts of every reading it gets."""

    def __init__(self, port, meter):
        self.ws = RawWebSocket(port, meter)
        self.seen = []
        self.sync()

    def _frame(self, timeout):
        op, payload = self.ws.read_frame(timeout)
        if op == 0x1:
            self.seen.append(ts_ms(json.loads(payload)["ts"]))
        elif op == 0x8:
            raise AssertionError(f"subscriber closed by the server: {payload!r}")
        return op

    def sync(self, timeout=5.0):
        """Everything the server queued before now has arrived (ping/pong)."""
        self.ws.send_frame(0x9, b"sync")
        deadline = time.monotonic() + timeout
        while self._frame(max(0.1, deadline - time.monotonic())) != 0xA:
            pass

    def wait_for(self, want, timeout=5.0):
        """Reads until every ts in `want` arrived (the server delivers to
        subscribers just after answering the sender), then syncs."""
        deadline = time.monotonic() + timeout
        while not want <= set(self.seen):
            try:
                self._frame(max(0.05, deadline - time.monotonic()))
            except TimeoutError:
                return  # the caller's comparison reports what is missing
        self.sync()

    def close(self):
        self.ws.close()


def fill(path):
    """Writes a filler file until the filesystem is full; returns its size."""
    n = 0
    with open(path, "wb", buffering=0) as f:
        for chunk in (1 << 16, 4096, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    n += f.write(b"\0" * chunk)
    return n


def assert_refused(r, reason):
    """A write refused by a store fault: 503 store_unavailable with
    Retry-After, its message naming the filesystem's `reason`."""
    assert r.status == 503, r
    assert r.header("retry-after", "").isdigit(), r
    err = r.json()["error"]
    assert err["code"] == "store_unavailable", r
    assert reason in err["message"], r  # says why


def post_refused(srv, meter, sizes, reason, refused):
    """Posts fresh readings of each size in `sizes`; each must be refused."""
    for n in sizes:
        body = meter.take(n)
        assert_refused(srv.post(body), reason)
        refused.append(body)


def assert_not_ready_but_serving(srv, meter_id, acked):
    """/readyz red; /healthz and reads still answer, with what was committed."""
    r = srv.get("/readyz")
    assert r.status == 503 and r.header("retry-after", "").isdigit(), r
    assert r.json()["error"]["code"] == "store_unavailable", r
    srv.assert_healthy()
    assert srv.readings(meter_id, limit=1000)["count"] == len(acked)


def post_until_refused(srv, meter, acked, refused, sizes=(25, 1), limit=400):
    """Posts fresh readings until requests of every size in `sizes` were
    refused 3 times in a row; checks each 503. Returns the number of posts."""
    streak = {n: 0 for n in sizes}
    for i in range(limit):
        n = sizes[i % len(sizes)]
        body = meter.take(n)
        r = srv.post(body)
        if r.status == 201:
            assert r.json() == {"accepted": n, "duplicates": 0}, r
            acked.update(ts_of(body))
            streak[n] = 0
            continue
        assert_refused(r, "No space left on device")
        refused.append(body)
        streak[n] += 1
        if all(v >= 3 for v in streak.values()):
            return i + 1
    raise AssertionError(f"ingest still accepted writes after {limit} posts on a full disk")


def wait_status(srv, path, status, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        r = srv.get(path, timeout=5)
        if r.status == status or time.monotonic() > deadline:
            return r
        time.sleep(0.05)


def check_after(srv, acked, subscriber_seen):
    """The database holds exactly the acknowledged readings, is intact, and its
    rollups equal its raw rows; the subscriber got exactly those readings."""
    stored = db_check.raw_readings(srv.db_path)
    got = {r[0] for rows in stored.values() for r in rows}
    assert got == acked, (f"{len(acked - got)} acknowledged readings missing, "
                          f"{len(got - acked)} stored without acknowledgement")
    assert len(subscriber_seen) == len(set(subscriber_seen)), "a reading was delivered twice"
    assert set(subscriber_seen) == acked, (
        f"subscriber: {len(set(subscriber_seen) - acked)} readings never committed, "
        f"{len(acked - set(subscriber_seen))} committed ones missing")
    assert db_check.integrity(srv.db_path) == ["ok"]
    bad = db_check.rollup_mismatches(srv.db_path)
    assert not bad, "rollups differ from the raw rows:\n" + "\n".join(bad)


def recover_and_check(srv, meter, acked, refused, sub):
    """After the fault cleared, without a restart: /readyz turns green, the
    devices' retries of the refused readings are stored as new (none had been
    stored), new readings go in, and the subscriber and the database hold
    exactly what was acknowledged (check_after)."""
    r = wait_status(srv, "/readyz", 200)
    assert r.status == 200, r
    for body in refused:
        srv.post_ok(body, accepted=len(body), duplicates=0)
        acked.update(ts_of(body))
    more = meter.take(30)
    srv.post_ok(more, accepted=30)
    acked.update(ts_of(more))
    sub.wait_for(acked)
    assert srv.running
    check_after(srv, acked, sub.seen)


def test_full_disk_is_503_not_ready_and_recovers_by_itself(small_fs, server_factory):
    srv = server_factory(db=small_fs / "m.db",
                         args=["--retention-raw-days", "0", "--retention-1m-days", "0"])
    srv.allow_error_logs = True  # failed commits are logged as errors
    meter = Meter("full")
    acked, refused = set(), []
    first = meter.take(1)
    srv.post_ok(first, accepted=1)
    acked.update(ts_of(first))
    sub = Subscriber(srv.port, "full")
    try:
        filler = small_fs / "filler"
        fill(filler)
        posts = post_until_refused(srv, meter, acked, refused)
        # Each successful /readyz probe may still use a little space the failed
        # commits left; once none is left it stays red.
        for probes in range(1, 21):
            r = srv.get("/readyz", timeout=10)
            if r.status != 200:
                break
        assert r.status == 503, r
        assert r.header("retry-after", "").isdigit(), r
        assert r.json()["error"]["code"] == "store_unavailable", r
        for _ in range(3):
            assert srv.get("/readyz").status == 503
            srv.assert_healthy()
        assert srv.get("/api/v1/meters/full").status == 200  # reads keep working
        body = meter.take(5)
        r = srv.post(body)
        assert r.status == 503, r
        refused.append(body)
        sub.sync()
        assert set(sub.seen) <= acked, "a subscriber got a reading that was not committed"

        os.unlink(filler)  # free the space: no restart
        recover_and_check(srv, meter, acked, refused, sub)
        print(f"full disk: {posts} posts until refused, {probes} /readyz until red, "
              f"{len(refused)} refused, {len(acked)} acknowledged")
    finally:
        sub.close()


class Ext4:
    """An ext4 image on a loop device, mounted with errors=remount-ro (the
    Debian default for the root filesystem): ext4's trigger_fs_error turns it
    read-only under open files, as a real metadata error would. The kernel
    does not allow it back to read-write without unmounting (and refuses a
    plain `mount -o remount,ro` while files are open for writing, e.g. by a
    running meterhub), so recovery here is: stop, remount, start."""

    def __init__(self, tmp_path):
        self.img = tmp_path / "ext4.img"
        self.mnt = tmp_path / "ext4"
        self.mnt.mkdir()
        self.mounted = False

    def mount(self):
        r = _run("mount", "-o", "loop,errors=remount-ro", str(self.img), str(self.mnt))
        if r.returncode != 0:
            return r.stderr.strip() or "mount failed"
        self.mounted = True
        return None

    def umount(self):
        if self.mounted and _run("umount", str(self.mnt)).returncode != 0:
            _run("umount", "-l", str(self.mnt))
        self.mounted = False

    def make_read_only(self):
        dev = _run("findmnt", "-n", "-o", "SOURCE", str(self.mnt)).stdout.strip()
        with open(f"/sys/fs/ext4/{os.path.basename(dev)}/trigger_fs_error", "w") as f:
            f.write("meterhub fault test: read-only disk\n")

    def writable(self):
        try:
            with open(self.mnt / "probe", "wb") as f:
                f.write(b"x")
            os.unlink(self.mnt / "probe")
            return True
        except OSError:
            return False


@pytest.fixture
def ext4_fs(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a loop device")
    fs = Ext4(tmp_path)
    r = _run("truncate", "-s", "32M", str(fs.img))
    if r.returncode == 0:
        r = _run("mkfs.ext4", "-q", "-F", str(fs.img))
    if r.returncode != 0:
        pytest.skip(f"cannot make an ext4 image: {r.stderr.strip()}")
    err = fs.mount()
    if err:
        pytest.skip(f"cannot mount an ext4 image on a loop device here: {err}")
    try:
        dev = _run("findmnt", "-n", "-o", "SOURCE", str(fs.mnt)).stdout.strip()
        if not os.path.exists(f"/sys/fs/ext4/{os.path.basename(dev)}/trigger_fs_error"):
            pytest.skip("this kernel has no ext4 trigger_fs_error")
        yield fs
    finally:
        fs.umount()


def test_read_only_disk_is_503_not_ready_and_stops_cleanly(ext4_fs, server_factory):
    srv = server_factory(db=ext4_fs.mnt / "m.db",
                         args=["--retention-raw-days", "0", "--retention-1m-days", "0"])
    srv.allow_error_logs = True
    meter = Meter("ro")
    acked, refused = set(), []
    for n in (1, 40, 1, 40):
        body = meter.take(n)
        srv.post_ok(body, accepted=n)
        acked.update(ts_of(body))
    sub = Subscriber(srv.port, "ro")  # gets the latest reading, then every new one
    try:
        body = meter.take(10)
        srv.post_ok(body, accepted=10)
        acked.update(ts_of(body))
        expected = {max(acked) - 10 * STEP_MS} | set(ts_of(body))
        sub.wait_for(expected)

        ext4_fs.make_read_only()
        assert not ext4_fs.writable(), "trigger_fs_error did not make the disk read-only"
        post_refused(srv, meter, (30, 1, 30), "Read-only file system", refused)
        assert_not_ready_but_serving(srv, "ro", acked)
        sub.sync()
        assert set(sub.seen) == expected and len(sub.seen) == len(expected), \
            "the subscriber must get exactly the committed readings"
    finally:
        sub.close()
    # A graceful stop still works on a read-only disk.
    rc = srv.stop()
    assert rc == 0 and not srv.killed, srv.run_log()
    assert srv.wait_for_log("stopped cleanly", 1), srv.run_log()

    # The operator fixes the disk: unmount, mount again, start meterhub.
    ext4_fs.umount()
    err = ext4_fs.mount()
    assert err is None, err
    assert db_check.integrity(srv.db_path) == ["ok"]
    srv.start()
    assert srv.get("/readyz").status == 200
    sub = Subscriber(srv.port, "ro")  # gets the latest reading first
    try:
        for body in refused:  # the devices retry: none of it was stored
            srv.post_ok(body, accepted=len(body), duplicates=0)
            acked.update(ts_of(body))
        last = ts_of(refused[-1])[-1]
        retried = {t for b in refused for t in ts_of(b)}
        sub.wait_for(retried)
        assert set(sub.seen) <= acked
        assert retried <= set(sub.seen)
    finally:
        sub.close()
    stored = db_check.raw_readings(srv.db_path)
    assert {r[0] for r in stored["ro"]} == acked
    assert max(acked) == last
    assert db_check.integrity(srv.db_path) == ["ok"]
    bad = db_check.rollup_mismatches(srv.db_path)
    assert not bad, "rollups differ from the raw rows:\n" + "\n".join(bad)


def _chattr(flag, *paths):
    return _run("chattr", flag, *[str(p) for p in paths])


def test_read_only_database_file_is_503_not_ready_and_recovers_by_itself(tmp_path,
                                                                         server_factory):
    """The database file and its WAL turned read-only under the running
    server, then writable again, with no restart. `chattr +i` (immutable)
    is used because it is the one way to make a file read-only that binds
    the descriptors meterhub already holds open (and root): permission bits
    are only checked at open, and Linux refuses to remount a filesystem
    read-only while files on it are open for writing."""
    if os.geteuid() != 0:
        pytest.skip("needs root for chattr +i")
    probe = tmp_path / "probe"
    probe.write_bytes(b"x")
    r = _chattr("+i", probe)
    if r.returncode != 0:
        pytest.skip(f"this filesystem has no immutable flag: {r.stderr.strip()}")
    _chattr("-i", probe)
    srv = server_factory(db=tmp_path / "m.db",
                         args=["--retention-raw-days", "0", "--retention-1m-days", "0"])
    srv.allow_error_logs = True  # failed commits and checkpoints are logged as errors
    files = [srv.db_path, srv.db_path + "-wal"]
    meter = Meter("imm")
    acked, refused = set(), []
    first = meter.take(1)
    srv.post_ok(first, accepted=1)
    acked.update(ts_of(first))
    sub = Subscriber(srv.port, "imm")  # gets that reading as the latest
    try:
        assert all(os.path.exists(f) for f in files), files
        r = _chattr("+i", *files)
        assert r.returncode == 0, r.stderr
        try:
            post_refused(srv, meter, (25, 1, 25, 1), "Operation not permitted", refused)
            assert_not_ready_but_serving(srv, "imm", acked)
            sub.sync()
            assert set(sub.seen) <= acked, "a subscriber got a reading that was not committed"
        finally:
            _chattr("-i", *files)  # the fault clears: no restart
        recover_and_check(srv, meter, acked, refused, sub)
    finally:
        sub.close()
        _chattr("-i", *files)


def test_start_on_a_full_disk_fails_clearly_then_starts_once_freed(small_fs, server_factory):
    """SQLite's WAL mode needs room for its -wal and -shm files even to read,
    so meterhub cannot serve from a full disk: it exits 1 naming the reason
    (a restart loop of a service manager then shows it), and starts with
    everything intact once there is room."""
    srv = server_factory(db=small_fs / "m.db",
                         args=["--retention-raw-days", "0", "--retention-1m-days", "0"])
    meter = Meter("restart")
    body = meter.take(50)
    srv.post_ok(body, accepted=50)
    assert srv.stop() == 0
    filler = small_fs / "filler"
    fill(filler)
    rc, out = run_binary(["--listen", "127.0.0.1:0", "--db", str(srv.db_path)])
    assert rc == 1, out
    assert "listening on" not in out
    assert "No space left on device" in out, out
    os.unlink(filler)
    srv.start()
    assert srv.get("/readyz").status == 200
    assert srv.readings("restart", limit=100)["count"] == 50
    srv.post_ok(meter.take(1), accepted=1)


def test_kill9_on_a_full_disk_then_restart_with_room(small_fs, server_factory):
    """Failed commits leave partial frames at the end of the WAL. A kill -9
    in that state, then a restart once there is room: SQLite's WAL recovery
    must ignore those frames, so the database holds exactly the acknowledged
    readings, with consistent rollups, and takes the refused ones as new."""
    srv = server_factory(db=small_fs / "m.db",
                         args=["--retention-raw-days", "0", "--retention-1m-days", "0"])
    srv.allow_error_logs = True
    meter = Meter("killed")
    acked, refused = set(), []
    first = meter.take(40)
    srv.post_ok(first, accepted=40)
    acked.update(ts_of(first))
    filler = small_fs / "filler"
    fill(filler)
    post_until_refused(srv, meter, acked, refused)
    srv.send_signal(signal.SIGKILL)
    assert srv.wait_exit(10) == -signal.SIGKILL
    os.unlink(filler)
    srv.start()
    assert srv.get("/readyz").status == 200
    for body in refused:
        srv.post_ok(body, accepted=len(body), duplicates=0)
        acked.update(ts_of(body))
    assert srv.stop() == 0 and not srv.killed, srv.run_log()
    stored = db_check.raw_readings(srv.db_path)
    assert {r[0] for r in stored["killed"]} == acked
    assert db_check.integrity(srv.db_path) == ["ok"]
    bad = db_check.rollup_mismatches(srv.db_path)
    assert not bad, "rollups differ from the raw rows:\n" + "\n".join(bad)
