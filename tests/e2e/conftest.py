"""End-to-end test harness for meterhub: starts the real binary, talks to it
over raw sockets, http.client and WebSockets.

Everything here is bounded: every socket read has a timeout, every loop has a
deadline, and every test runs under an alarm. Only 127.0.0.1 and free ports
(port 0) are used, and each server gets its own database under tmp_path, so
test files can run in parallel.

Uses only the standard library, pytest and websockets (asyncio API).
"""
import asyncio
import base64
import calendar
import contextlib
import gc
import hashlib
import http.client as httplib
import json
import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest
import websockets

# ---------------------------------------------------------------------------
# Binary and basic constants

HOST = "127.0.0.1"
START_TIMEOUT = 10.0  # seconds for the "listening on" line
STOP_TIMEOUT = 10.0  # seconds after SIGTERM before kill -9
TEST_ALARM = 90  # hard per-test limit (seconds): a hung test fails instead of hanging ctest
LISTEN_RE = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")


def meterhub_bin():
    path = os.environ.get("METERHUB_BIN")
    if not path:
        pytest.fail("METERHUB_BIN is not set (path to the meterhub binary)")
    path = os.path.abspath(path)
    if not os.access(path, os.X_OK):
        pytest.fail(f"METERHUB_BIN={path} is not an executable file")
    return path


def run_binary(args, env=None, timeout=30):
    """Runs meterhub to completion (start-up failures, --help, the CLI)
    -> (exit code, stdout + stderr), without the caller's METERHUB_* variables."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("METERHUB_")}
    if env:
        full_env.update(env)
    try:
        p = subprocess.run([meterhub_bin(), *args], stdin=subprocess.DEVNULL,
                           capture_output=True, env=full_env, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"meterhub {args} did not exit within {timeout}s: {e.stderr!r}")
    return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")


# ---------------------------------------------------------------------------
# Time helpers. Timestamps are int milliseconds since the epoch (UTC).

def now_ms():
    return int(time.time() * 1000)


def ts_ms(text):
    """'2025-06-01T12:00:00.123Z' -> epoch ms (UTC, Z only; for building tests)."""
    m = re.fullmatch(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{3}))?Z", text)
    assert m, text
    y, mo, d, h, mi, s = (int(x) for x in m.groups()[:6])
    frac = int(m.group(7) or 0)
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) * 1000 + frac


def iso(ms):
    """epoch ms -> '2025-06-01T12:00:00.123Z', the server's output format."""
    secs, frac = divmod(int(ms), 1000)
    t = time.gmtime(secs)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour,
                                                   t.tm_min, t.tm_sec, frac)


# A fixed moment safely in the past (and after 2000-01-01) for readings that
# need a deterministic timestamp.
BASE_TS = ts_ms("2025-06-01T12:00:00.000Z")


def reading(meter_id, ts=None, voltage=230.0, current=1.5, power=345.0, energy=1000.0,
            raw_ts=None, **extra):
    """A valid reading object. ts: epoch ms (int, sent as RFC 3339 text) or a
    string sent as is; raw_ts: any JSON value sent as "ts" unchanged (numbers)."""
    r = {"meter_id": meter_id, "voltage": voltage, "current": current, "power": power,
         "energy": energy}
    if ts is not None:
        r["ts"] = iso(ts) if isinstance(ts, int) else ts
    if raw_ts is not None:
        r["ts"] = raw_ts
    r.update(extra)
    return r


# ---------------------------------------------------------------------------
# HTTP over raw sockets

class Response:
    def __init__(self, status, reason, version, headers, body, raw_head=b""):
        self.status = status
        self.reason = reason
        self.version = version
        self.header_list = headers  # [(name, value)] in wire order
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body
        self.raw_head = raw_head

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise AssertionError(f"response body is not JSON ({e}): {self.body[:500]!r}")

    def error_code(self):
        doc = self.json()
        assert isinstance(doc, dict) and isinstance(doc.get("error"), dict), doc
        return doc["error"].get("code")

    def __repr__(self):
        return f"<Response {self.status} {self.headers} {self.body[:300]!r}>"


class ConnectionClosed(Exception):
    pass


class RawConn:
    """One TCP connection with exact-bytes sending and response parsing."""

    def __init__(self, port, timeout=5.0, rcvbuf=None, host=HOST, mss=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Both must be set before connect: they shape the SYN (window, MSS).
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if mss is not None:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, mss)
        self.sock.settimeout(timeout)
        self.timeout = timeout
        try:
            self.sock.connect((host, port))
        except BaseException:
            self.sock.close()
            raise
        self.buf = b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("deadline passed while reading")
        self.sock.settimeout(remaining)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionClosed("peer closed the connection")
        self.buf += chunk

    def _read_until(self, marker, deadline, limit=1 << 20):
        while marker not in self.buf:
            if len(self.buf) > limit:
                raise AssertionError(f"no {marker!r} within {limit} bytes")
            self._fill(deadline)
        idx = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:idx], self.buf[idx:]
        return out

    def _read_exact(self, n, deadline):
        while len(self.buf) < n:
            self._fill(deadline)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_response(self, timeout=None, skip_interim=True):
        """Reads one response (Content-Length, chunked or until close)."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while True:
            head = self._read_until(b"\r\n\r\n", deadline)
            lines = head[:-4].split(b"\r\n")
            m = re.fullmatch(rb"HTTP/(\d\.\d) (\d{3})(?: (.*))?", lines[0])
            assert m, f"bad status line {lines[0]!r}"
            headers = []
            for ln in lines[1:]:
                name, _, value = ln.partition(b":")
                headers.append((name.decode("latin-1").strip(), value.decode("latin-1").strip()))
            status = int(m.group(2))
            resp_hdrs = {k.lower(): v for k, v in headers}
            if 100 <= status < 200:
                interim = Response(status, (m.group(3) or b"").decode("latin-1"),
                                   m.group(1).decode(), headers, b"", head)
                if skip_interim:
                    continue
                return interim
            if "content-length" in resp_hdrs:
                body = self._read_exact(int(resp_hdrs["content-length"]), deadline)
            elif "chunked" in resp_hdrs.get("transfer-encoding", "").lower():
                body = b""
                while True:
                    size_line = self._read_until(b"\r\n", deadline)
                    size = int(size_line.split(b";")[0].strip(), 16)
                    if size == 0:
                        self._read_until(b"\r\n", deadline)  # no trailers expected
                        break
                    body += self._read_exact(size, deadline)
                    self._read_exact(2, deadline)
            elif status in (204, 304):
                body = b""
            else:
                body = self.read_until_closed(deadline - time.monotonic())
            return Response(status, (m.group(3) or b"").decode("latin-1"), m.group(1).decode(),
                            headers, body, head)

    def read_until_closed(self, timeout=5.0):
        """Everything the peer sends until it closes (FIN or RST); raises on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._fill(deadline)
            except (ConnectionClosed, ConnectionResetError):
                out, self.buf = self.buf, b""
                return out

    def closed_by_peer(self, timeout=5.0):
        """True if the peer closes (FIN/RST) within timeout; unread data is discarded."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._fill(deadline)
                self.buf = b""
            except (ConnectionClosed, ConnectionResetError, BrokenPipeError):
                return True
            except socket.timeout:
                return False


def raw_request(port, data, timeout=5.0):
    """Sends exact bytes on a fresh connection and returns the parsed response."""
    with RawConn(port, timeout) as c:
        c.send(data)
        return c.read_response(timeout)


def post_bytes(port, body, content_type="application/json", extra_headers=b"",
               keep_alive=True):
    """A POST /api/v1/readings request as exact bytes (Content-Length framing)."""
    if isinstance(body, str):
        body = body.encode()
    h = b"POST /api/v1/readings HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port
    if content_type is not None:
        h += b"Content-Type: " + content_type.encode() + b"\r\n"
    if not keep_alive:
        h += b"Connection: close\r\n"
    h += extra_headers
    h += b"Content-Length: %d\r\n\r\n" % len(body)
    return h + body


def chunked(body, sizes):
    """Encodes body as chunked transfer coding, cutting it into the given sizes (cycled)."""
    out, pos, i = b"", 0, 0
    while pos < len(body):
        n = sizes[i % len(sizes)]
        i += 1
        piece = body[pos:pos + n]
        pos += n
        out += b"%x\r\n" % len(piece) + piece + b"\r\n"
    return out + b"0\r\n\r\n"


# ---------------------------------------------------------------------------
# HTTP through http.client

def _encode_body(body, headers):
    if body is None:
        return None
    if isinstance(body, (dict, list)):
        headers.setdefault("Content-Type", "application/json")
        return json.dumps(body).encode()
    if isinstance(body, str):
        return body.encode()
    return body


def http(port, method, path, body=None, headers=None, timeout=10.0):
    """One request on a fresh http.client connection -> Response."""
    headers = dict(headers or {})
    data = _encode_body(body, headers)
    conn = httplib.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=data, headers=headers)
        r = conn.getresponse()
        body = r.read()
        return Response(r.status, r.reason, "1.%d" % (r.version - 10), r.getheaders(), body)
    finally:
        conn.close()


class HttpClient:
    """A keep-alive http.client connection (reconnects when the server closed it)."""

    def __init__(self, port, timeout=10.0):
        self.port = port
        self.timeout = timeout
        self.conn = None

    def request(self, method, path, body=None, headers=None):
        headers = dict(headers or {})
        data = _encode_body(body, headers)
        if self.conn is None:
            self.conn = httplib.HTTPConnection(HOST, self.port, timeout=self.timeout)
        try:
            self.conn.request(method, path, body=data, headers=headers)
            r = self.conn.getresponse()
            payload = r.read()
        except BaseException:
            self.close()
            raise
        resp = Response(r.status, r.reason, "1.%d" % (r.version - 10), r.getheaders(), payload)
        if r.will_close:
            self.close()
        return resp

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------
# The server under test

class MeterhubServer:
    """The real binary: start/stop/restart on the same database path.

    All output (stdout and stderr) is drained by a background thread into
    `self.lines`, so the pipe never fills; `run_lines()` is the current run's
    part of it.
    """

    # Lab mode: most suites test ingest, history and streaming, not access
    # control, so their servers run open (reads and keyless writes allowed)
    # and without rate limits. Suites of access control (test_auth.py, the
    # TLS tests) pass secure=True and get the defaults a user gets.
    LAB_FLAGS = [("--public-read",), ("--auto-register",), ("--ip-rate", "0"),
                 ("--device-rate", "0"), ("--max-connections-per-ip", "0")]

    def __init__(self, db_path, args=(), env=None, listen=True, bin_path=None, secure=False):
        self.bin = bin_path or meterhub_bin()
        self.secure = secure
        # Lab servers also get an admin token (made with the CLI before the
        # first start), sent by http() when a request names no credentials,
        # for the admin routes their suites use (tariffs).
        self.admin_token = None
        self.db_path = str(db_path)
        self.args = list(args)
        self.env = env
        self.listen = listen
        self.proc = None
        self.port = None
        self.lines = []
        self.run_start = 0
        self.returncode = None
        self.killed = False
        self.allow_error_logs = False
        self._cv = threading.Condition()
        self._reader = None
        self._eof = False

    # -- process control ---------------------------------------------------
    def command(self):
        cmd = [self.bin]
        if self.listen:
            cmd += ["--listen", f"{HOST}:0", "--db", self.db_path]
            # Many tests post readings with fixed, months-old timestamps; the
            # default 90-day retention would delete them while the test reads
            # them back. Tests of retention pass their own --retention-* flags.
            if not any(str(a).startswith("--retention") for a in self.args):
                cmd += ["--retention-raw-days", "0"]
            if not self.secure:
                given = {str(a) for a in self.args}
                for flag in self.LAB_FLAGS:
                    if flag[0] not in given:
                        cmd += list(flag)
        return cmd + self.args

    def _drain(self, stream):
        try:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip("\n")
                with self._cv:
                    self.lines.append(line)
                    self._cv.notify_all()
        finally:
            with self._cv:
                self._eof = True
                self._cv.notify_all()

    def cli(self, *args):
        """Runs `meterhub <args> --db <db>`; returns its stdout, stripped (keys print alone)."""
        out = subprocess.run([self.bin, *args, "--db", self.db_path], stdin=subprocess.DEVNULL,
                             capture_output=True, timeout=30)
        assert out.returncode == 0, out
        return out.stdout.decode().strip()

    def spawn(self):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        if self.listen and not self.secure and self.admin_token is None:
            self.admin_token = self.cli("token", "create", "--name", "e2e lab", "--scope", "admin")
        env = dict(os.environ)
        # The server must see only the METERHUB_* variables a test sets.
        for k in list(env):
            if k.startswith("METERHUB_") and k != "METERHUB_BIN":
                del env[k]
        env.pop("METERHUB_BIN", None)
        if self.env:
            env.update(self.env)
        with self._cv:
            self.lines.append(f"--- meterhub start: {' '.join(self.command())}")
            self.run_start = len(self.lines)
            self._eof = False
        self.port = None
        self.returncode = None
        self.killed = False
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                                     close_fds=True)
        self._reader = threading.Thread(target=self._drain, args=(self.proc.stdout,),
                                        daemon=True)
        self._reader.start()
        return self.proc

    def start(self, timeout=START_TIMEOUT):
        self.spawn()
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                for line in self.lines[self.run_start:]:
                    m = LISTEN_RE.search(line)
                    if m:
                        self.port = int(m.group(1))
                        return self
                if self._eof:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cv.wait(min(remaining, 0.2))
        # Did not come up: collect what it said and fail.
        if self.proc.poll() is None:
            self.proc.kill()
        rc = self.proc.wait(5)
        self._reader.join(5)
        self.returncode = rc
        pytest.fail(f"meterhub did not report 'listening on' within {timeout}s "
                    f"(exit code {rc}); log:\n{self.run_log()}")

    def wait_exit(self, timeout):
        """Waits for the process to exit by itself; returns the exit code."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(5)
            self.killed = True
        self._reader.join(5)
        self.returncode = rc
        return rc

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Sends sig, waits (kill -9 after timeout); returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait_exit(timeout)

    def restart(self, timeout=START_TIMEOUT):
        rc = self.stop()
        assert not self.killed, f"meterhub needed kill -9 to stop; log:\n{self.run_log()}"
        assert rc == 0, f"meterhub exited {rc}; log:\n{self.run_log()}"
        return self.start(timeout)

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid

    # -- logs --------------------------------------------------------------
    def log(self):
        with self._cv:
            return "\n".join(self.lines)

    def run_lines(self):
        with self._cv:
            return list(self.lines[self.run_start:])

    def run_log(self):
        return "\n".join(self.run_lines())

    def wait_for_log(self, pattern, timeout=5.0):
        """Waits until a line of the current run matches the regex; returns it or None."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                for line in self.lines[self.run_start:]:
                    if rx.search(line):
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._eof:
                    return None
                self._cv.wait(min(remaining, 0.2))

    def error_lines(self):
        return [ln for ln in self.run_lines()
                if re.search(r"^\S+ (error|critical) ", ln)]

    # -- introspection -----------------------------------------------------
    def open_sockets(self):
        """Number of TCP socket file descriptors the server process holds
        (its clients and listener; not the Unix sockets of a PostgreSQL store)."""
        tcp = set()
        for table in ("tcp", "tcp6"):
            with contextlib.suppress(OSError):
                with open(f"/proc/{self.proc.pid}/net/{table}") as f:
                    next(f)
                    tcp.update(line.split()[9] for line in f)
        n = 0
        fd_dir = f"/proc/{self.proc.pid}/fd"
        try:
            for fd in os.listdir(fd_dir):
                with contextlib.suppress(OSError):
                    link = os.readlink(os.path.join(fd_dir, fd))
                    if link.startswith("socket:[") and link[8:-1] in tcp:
                        n += 1
        except FileNotFoundError:
            return 0
        return n

    def wait_sockets_at_most(self, n, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            cur = self.open_sockets()
            if cur <= n or time.monotonic() > deadline:
                return cur
            time.sleep(0.05)

    # -- client shortcuts --------------------------------------------------
    def http(self, method, path, body=None, headers=None, timeout=10.0):
        if self.admin_token:
            given = {k.lower() for k in (headers or {})}
            if "authorization" not in given and "x-api-key" not in given:
                headers = {**(headers or {}), "Authorization": f"Bearer {self.admin_token}"}
        return http(self.port, method, path, body, headers, timeout)

    def get(self, path, timeout=10.0):
        return self.http("GET", path, timeout=timeout)

    def get_json(self, path, expect=200):
        r = self.get(path)
        assert r.status == expect, r
        return r.json()

    def post(self, body, headers=None, timeout=10.0):
        return self.http("POST", "/api/v1/readings", body, headers, timeout)

    def post_ok(self, body, accepted=None, duplicates=0):
        r = self.post(body)
        assert r.status == 201, r
        doc = r.json()
        if accepted is not None:
            assert doc == {"accepted": accepted, "duplicates": duplicates}, doc
        return doc

    def raw(self, data, timeout=5.0):
        return raw_request(self.port, data, timeout)

    def connect(self, timeout=5.0, rcvbuf=None):
        return RawConn(self.port, timeout, rcvbuf)

    def meters(self):
        return self.get_json("/api/v1/meters")

    def meter_count(self):
        return self.meters()["count"]

    def assert_healthy(self):
        r = self.get("/healthz", timeout=5)
        assert r.status == 200 and r.json() == {"status": "ok"}, r

    def assert_nothing_stored(self):
        doc = self.meters()
        assert doc == {"meters": [], "count": 0}, doc

    def readings(self, meter, **params):
        q = "&".join(f"{k}={v}" for k, v in params.items())
        return self.get_json(f"/api/v1/meters/{meter}/readings" + ("?" + q if q else ""))

    def all_readings(self, meter, limit=1000, order="asc", max_pages=1000, **params):
        """Follows `next` links; returns (readings, pages). Fails on a repeat."""
        q = f"limit={limit}&order={order}" + "".join(f"&{k}={v}" for k, v in params.items())
        path = f"/api/v1/meters/{meter}/readings?{q}"
        out, pages, seen = [], 0, set()
        while path is not None:
            pages += 1
            assert pages <= max_pages, "paging does not terminate"
            doc = self.get_json(path)
            assert doc["meter_id"] == meter
            assert doc["count"] == len(doc["readings"]), doc
            assert len(doc["readings"]) <= limit
            for r in doc["readings"]:
                assert r["ts"] not in seen, f"reading {r['ts']} returned twice while paging"
                seen.add(r["ts"])
            out.extend(doc["readings"])
            nxt = doc["next"]
            if len(doc["readings"]) < limit:
                assert nxt is None, f"next must be null on a partial page: {doc}"
            else:
                assert isinstance(nxt, str) and nxt.startswith("/api/v1/"), doc
            path = nxt
        return out, pages

    def ws_url(self, meter):
        return f"ws://{HOST}:{self.port}/ws/{meter}"


# ---------------------------------------------------------------------------
# Fixtures

def _socket_fds():
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                out.add(fd)
    return out


@pytest.fixture(autouse=True)
def _alarm():
    """A hard limit per test, so nothing can hang the suite."""
    def on_alarm(signum, frame):
        raise TimeoutError(f"test exceeded {TEST_ALARM} s")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TEST_ALARM)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.fixture
def server_factory(tmp_path):
    """make(args=..., env=..., db=..., start=True) -> MeterhubServer.

    Teardown: every server still running must have closed every client
    connection (only its listening socket left), must stop on SIGTERM within
    10 s with exit code 0 and "stopped cleanly", must leave its port closed,
    and must not have logged an error unless the test allowed it. The test
    itself must not leak sockets either.
    """
    servers = []
    fds_before = _socket_fds()
    counter = [0]

    def make(args=(), env=None, db=None, start=True, listen=True):
        counter[0] += 1
        if db is None:
            db = tmp_path / f"srv{counter[0]}" / "m.db"
        s = MeterhubServer(db, args=args, env=env, listen=listen)
        servers.append(s)
        if start:
            s.start()
        return s

    yield make

    problems = []
    for s in servers:
        if s.proc is None:
            continue
        if s.running:
            # Every client of the test is closed by now: the server must not
            # keep any connection open (linger after "Connection: close" is 2 s).
            left = s.wait_sockets_at_most(1, timeout=6.0)
            if left > 1:
                problems.append(f"server still holds {left} sockets (only the listener "
                                f"expected) after all clients closed")
            port = s.port
            rc = s.stop()
            if s.killed:
                problems.append("server did not exit within 10 s of SIGTERM (killed)")
            elif rc != 0:
                problems.append(f"server exited with {rc} after SIGTERM")
            elif not any("stopped cleanly" in ln for ln in s.run_lines()):
                problems.append("no 'stopped cleanly' log line after SIGTERM")
            if port:
                with socket.socket() as probe:
                    probe.settimeout(1)
                    if probe.connect_ex((HOST, port)) == 0:
                        problems.append(f"port {port} still accepts connections after exit")
        elif s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait(5)
        if not s.allow_error_logs:
            errs = [ln for ln in s.log().splitlines() if re.search(r"^\S+ (error|critical) ", ln)]
            if errs:
                problems.append("unexpected error log lines:\n  " + "\n  ".join(errs))
        if problems:
            problems.append("log:\n" + s.log())
    gc.collect()
    leaked = _socket_fds() - fds_before
    if leaked:
        problems.append(f"the test leaked {len(leaked)} client socket(s)")
    if problems:
        pytest.fail("teardown: " + "\n".join(problems), pytrace=False)


@pytest.fixture
def server(server_factory):
    """A running meterhub with default options and a fresh database."""
    return server_factory()


# ---------------------------------------------------------------------------
# WebSocket helpers (asyncio API of websockets 10.4)

def run_async(coro, timeout=60.0):
    """Runs a coroutine to completion with an overall timeout."""
    async def bounded():
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(bounded())


async def ws_open(srv_or_port, path, **kw):
    """Opens a WebSocket client on `path` with the tests' timeouts, no client pings."""
    port = srv_or_port.port if isinstance(srv_or_port, MeterhubServer) else srv_or_port
    kw.setdefault("open_timeout", 5)
    kw.setdefault("close_timeout", 2)
    kw.setdefault("ping_interval", None)
    return await websockets.connect(f"ws://{HOST}:{port}{path}", **kw)


async def ws_connect(srv_or_port, meter, ready=True, **kw):
    """Opens /ws/{meter}. With ready=True it also waits for the answer to a
    ping: the server starts reading (and answering pings) only after it has
    subscribed, so from then on no committed reading can be missed."""
    ws = await ws_open(srv_or_port, f"/ws/{meter}", **kw)
    if ready:
        try:
            pong = await ws.ping()
            await asyncio.wait_for(pong, 5)
        except BaseException:
            await ws.close()
            raise
    return ws


async def ws_recv_json(ws, timeout=5.0):
    msg = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(msg, str), f"expected a text message, got {msg!r}"
    return json.loads(msg)


async def ws_expect_revoked_close(ws, timeout=5.0):
    """Reads until the server closes `ws` with 1008 (policy: its key was
    revoked); anything but a reading may still come first (status events)."""
    with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
        while True:
            msg = await ws_recv_json(ws, timeout)
            assert "voltage" not in json.dumps(msg), f"reading after revocation: {msg}"
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008, closed.value


async def ws_recv_raw(ws, timeout=5.0):
    return await asyncio.wait_for(ws.recv(), timeout)


async def ws_recv_n(ws, n, timeout=10.0):
    deadline = time.monotonic() + timeout
    out = []
    while len(out) < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"got only {len(out)} of {n} messages within {timeout}s: "
                                 f"{out[-3:]}")
        try:
            out.append(await ws_recv_json(ws, remaining))
        except asyncio.TimeoutError:
            raise AssertionError(f"got only {len(out)} of {n} messages within {timeout}s: "
                                 f"{out[-3:]}")
    return out


async def ws_assert_silent(ws, seconds=0.5):
    """Nothing may arrive for `seconds`."""
    try:
        msg = await asyncio.wait_for(ws.recv(), seconds)
    except asyncio.TimeoutError:
        return
    raise AssertionError(f"unexpected WebSocket message: {msg!r}")


async def ws_wait_closed(ws, timeout=5.0):
    """Reads (discarding) until the connection closes; returns the close code."""
    deadline = time.monotonic() + timeout
    with contextlib.suppress(websockets.ConnectionClosed):
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"WebSocket not closed within {timeout}s")
            try:
                await asyncio.wait_for(ws.recv(), remaining)
            except asyncio.TimeoutError:
                raise AssertionError(f"WebSocket not closed within {timeout}s")
    await asyncio.wait_for(ws.wait_closed(), 3)
    return ws.close_code


async def post_async(srv, body):
    """A POST from a worker thread, so the event loop keeps reading sockets."""
    return await asyncio.to_thread(srv.post, body)


# ---------------------------------------------------------------------------
# A WebSocket client over a raw socket (hand-made handshake and framing), for
# misbehaving peers: one that never reads, or never answers pings.

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class RawWebSocket:
    """A WebSocket client with a hand-made handshake and framing on
    /ws/{meter}, or on `path` when given."""

    def __init__(self, port, meter=None, rcvbuf=None, timeout=5.0, mss=None, path=None):
        path = path or f"/ws/{meter}"
        self.conn = RawConn(port, timeout, rcvbuf=rcvbuf, mss=mss)
        try:
            key = base64.b64encode(os.urandom(16)).decode()
            req = (f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                   f"Sec-WebSocket-Version: 13\r\n\r\n").encode()
            self.conn.send(req)
            head = self.conn._read_until(b"\r\n\r\n", time.monotonic() + timeout)
            status = head.split(b"\r\n", 1)[0]
            assert b" 101 " in status + b" ", f"handshake failed: {head!r}"
            accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest())
            fields = {}
            for ln in head[:-4].split(b"\r\n")[1:]:
                k, _, v = ln.partition(b":")
                fields[k.strip().lower()] = v.strip()
            assert fields.get(b"sec-websocket-accept") == accept, head
        except BaseException:
            self.conn.close()
            raise

    @property
    def sock(self):
        return self.conn.sock

    def close(self):
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def read_frame(self, timeout=5.0):
        """-> (opcode, payload) of one server frame (server frames are unmasked)."""
        deadline = time.monotonic() + timeout
        b0, b1 = self.conn._read_exact(2, deadline)
        opcode = b0 & 0x0F
        assert not (b1 & 0x80), "server frames must not be masked"
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self.conn._read_exact(2, deadline))[0]
        elif n == 127:
            n = struct.unpack("!Q", self.conn._read_exact(8, deadline))[0]
        return opcode, self.conn._read_exact(n, deadline)

    def send_frame(self, opcode, payload=b"", fin=True):
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([(0x80 if fin else 0) | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.conn.send(head + mask + masked)


# ---------------------------------------------------------------------------
# Keys and access control (test_auth.py, test_registry.py)

LOG_LINE_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:?\d\d \w+ ")
TOKEN_RE = re.compile(r"mht_[0-9a-f]{12}_[A-Za-z0-9_-]{43}")
DEVICE_KEY_RE = re.compile(r"mhd_[0-9a-f]{12}_[A-Za-z0-9_-]{43}")


def meterhub_cli(db, *args, check=True, timeout=30):
    """Runs `meterhub <args> --db <db>` -> CompletedProcess (text). With
    check=True it must exit 0."""
    os.makedirs(os.path.dirname(os.path.abspath(str(db))), exist_ok=True)
    p = subprocess.run([meterhub_bin(), *[str(a) for a in args], "--db", str(db)],
                       capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    if check:
        assert p.returncode == 0, f"meterhub {args} exited {p.returncode}:\n{p.stdout}{p.stderr}"
    return p


def cli_token(db, scope="admin", name="t"):
    """`meterhub token create` -> the token (the only thing on stdout)."""
    p = meterhub_cli(db, "token", "create", "--name", name, "--scope", scope)
    out = p.stdout.strip()
    assert TOKEN_RE.fullmatch(out), f"token create printed {p.stdout!r} (stderr {p.stderr!r})"
    return out


def cli_meter_add(db, meter_id, *args):
    """`meterhub meter add <id>` -> the device key (the only thing on stdout)."""
    p = meterhub_cli(db, "meter", "add", meter_id, *args)
    out = p.stdout.strip()
    assert DEVICE_KEY_RE.fullmatch(out), f"meter add printed {p.stdout!r} (stderr {p.stderr!r})"
    return out


def bearer(key, scheme="Bearer"):
    """Headers presenting `key` as `Authorization: <scheme> <key>`."""
    return {"Authorization": f"{scheme} {key}"}


def key_id(key):
    """The public id of a key: mht_<id>_<secret> -> <id>."""
    return key.split("_")[1]


def key_secret(key):
    """The secret part of a key: mht_<id>_<secret> -> <secret>."""
    return key.split("_", 2)[2]


def start_secure(server_factory, args=(), db=None):
    """A server through server_factory with the defaults a user gets (no lab
    flags): keys required, rate limits on."""
    srv = server_factory(args, db=db, start=False)
    srv.secure = True
    return srv.start()


def banner_token(srv):
    """The admin token printed at the first start of srv's current run, or None."""
    for line in srv.run_lines():
        m = TOKEN_RE.search(line)
        if m and not LOG_LINE_RE.match(line):
            return m.group(0)
    return None


class HandshakeWebSocket(RawWebSocket):
    """A raw WebSocket whose upgrade request carries extra headers and whose
    answer is kept in `.response` (a Response; its status is 101 when
    `.upgraded`). A refused upgrade raises nothing: look at `.response`."""

    def __init__(self, port, path, headers=None, timeout=5.0):
        self.conn = RawConn(port, timeout)
        try:
            key = base64.b64encode(os.urandom(16)).decode()
            req = (f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                   f"Sec-WebSocket-Version: 13\r\n")
            for k, v in (headers or {}).items():
                req += f"{k}: {v}\r\n"
            self.conn.send((req + "\r\n").encode())
            self.response = self.conn.read_response(timeout, skip_interim=False)
            self.upgraded = self.response.status == 101
            if self.upgraded:
                accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest())
                got = self.response.header("Sec-WebSocket-Accept", "").encode()
                assert got == accept, self.response.raw_head
        except BaseException:
            self.conn.close()
            raise


@contextlib.contextmanager
def module_server(db, args=(), secure=True):
    """A server for a module-scoped fixture (server_factory is per test):
    started now; on exit it must stop on SIGTERM with exit code 0 and
    "stopped cleanly", having logged no error."""
    srv = MeterhubServer(db, args=args, secure=secure)
    srv.start()
    try:
        yield srv
    finally:
        problems = []
        rc = srv.stop()
        if srv.killed:
            problems.append("server did not exit within 10 s of SIGTERM (killed)")
        elif rc != 0:
            problems.append(f"server exited with {rc} after SIGTERM")
        elif not any("stopped cleanly" in ln for ln in srv.run_lines()):
            problems.append("no 'stopped cleanly' log line after SIGTERM")
        if not srv.allow_error_logs and srv.error_lines():
            problems.append("unexpected error log lines:\n  " + "\n  ".join(srv.error_lines()))
        if problems:
            pytest.fail("teardown: " + "\n".join(problems) + "\nlog:\n" + srv.log(),
                        pytrace=False)


class Keyed:
    """Requests to a server presenting one key: style "bearer" (Authorization:
    Bearer), "x-api-key" (X-API-Key) or "none"/key None (no key at all)."""

    def __init__(self, srv, key=None, style="bearer"):
        self.srv = srv
        self.key = key
        self.style = style if key is not None else "none"

    def headers(self, extra=None):
        h = {}
        if self.style == "bearer":
            h["Authorization"] = f"Bearer {self.key}"
        elif self.style == "x-api-key":
            h["X-API-Key"] = self.key
        h.update(extra or {})
        return h

    def __call__(self, method, path, body=None, headers=None, timeout=10.0):
        return http(self.srv.port, method, path, body, self.headers(headers), timeout)

    def json(self, method, path, body=None, expect=200):
        r = self(method, path, body)
        assert r.status == expect, (method, path, r)
        return r.json() if r.body else None

    def get(self, path, expect=200):
        return self.json("GET", path, expect=expect)


async def ws_watch(srv, key, meters):
    """A /ws socket opened with `key` (Authorization: Bearer) and subscribed
    to `meters` (a list or "*"); its snapshot is read and checked."""
    ws = await ws_open(srv, "/ws", extra_headers=bearer(key))
    try:
        await ws.send(json.dumps({"subscribe": meters}))
        snap = await ws_recv_json(ws)
        assert snap.get("type") == "snapshot", snap
    except BaseException:
        await ws.close()
        raise
    return ws


async def ws_next(ws, type_="reading", timeout=5.0):
    """The next /ws message of `type_`, skipping others ("reading" -> the
    reading object itself)."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no {type_!r} message within {timeout}s")
        try:
            msg = await ws_recv_json(ws, remaining)
        except asyncio.TimeoutError:
            raise AssertionError(f"no {type_!r} message within {timeout}s")
        if msg.get("type") == type_:
            return msg["reading"] if type_ == "reading" else msg
