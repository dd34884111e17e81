"""The network edge, end to end: HTTPS and WSS on the same port as plain
HTTP/WS (--tls-cert/--tls-key), --tls-only, certificate errors at start,
clients that fail or stall the TLS handshake, the "meterhub" WebSocket
subprotocol, the per-IP connection limit and keys kept out of the log.

Certificates are made per test with the openssl CLI (a self-signed P-256
certificate for IP 127.0.0.1)."""
import asyncio
import contextlib
import functools
import http.client as httplib
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import time

import pytest
import websockets

import conftest
from conftest import (BASE_TS, HOST, RawConn, RawWebSocket, Response, meterhub_bin, reading,
                      run_async, ws_open, ws_recv_json, ws_wait_closed)


# ---------------------------------------------------------------------------
# Certificates

def openssl(*args):
    if shutil.which("openssl") is None:
        pytest.fail("the openssl CLI is missing (scripts/install-deps.sh installs it)")
    p = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, f"openssl {args}: {p.stderr}"


def make_cert(directory, name="server"):
    """A self-signed certificate for 127.0.0.1 -> (cert path, key path)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert))
    return cert, key


@pytest.fixture
def certs(tmp_path):
    return make_cert(tmp_path / "tls")


def client_context(cert):
    ctx = ssl.create_default_context(cafile=str(cert))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


class TlsRawConn(RawConn):
    """conftest.RawConn whose socket speaks TLS (handshake done in __init__)."""

    def __init__(self, ctx, *args, **kw):
        super().__init__(*args, **kw)
        try:
            self.sock = ctx.wrap_socket(self.sock, server_hostname=HOST)
        except BaseException:
            self.close()
            raise


def tls_raw_websocket(ctx, *args, **kw):
    """conftest.RawWebSocket (hand-made handshake and framing) over TLS."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(conftest, "RawConn", functools.partial(TlsRawConn, ctx))
        return RawWebSocket(*args, **kw)


# ---------------------------------------------------------------------------
# Servers (through the harness's server_factory) and keys

@functools.lru_cache(maxsize=None)
def _help_text():
    p = subprocess.run([meterhub_bin(), "--help"], capture_output=True, text=True, timeout=10)
    return p.stdout + p.stderr


def has_tokens():
    """Whether this build has API tokens (the `token` subcommand)."""
    return re.search(r"^\s*token\b", _help_text(), re.M) is not None


def _cli(db, *args):
    """Runs an admin subcommand on `db`; returns the secret it prints (last word)."""
    db.parent.mkdir(parents=True, exist_ok=True)
    p = subprocess.run([meterhub_bin(), *args, "--db", str(db)], capture_output=True, text=True,
                       timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stdout + p.stderr
    words = p.stdout.split()
    assert words, f"{args} printed nothing: {p.stderr}"
    return words[-1]


def create_token(db, scope="read"):
    """A new API token on `db` through the CLI (None in a build without tokens)."""
    return _cli(db, "token", "create", "--name", "t", "--scope", scope) if has_tokens() else None


def add_meter(db, meter):
    """Registers `meter` on `db`; its device key (None in a build without keys)."""
    return _cli(db, "meter", "add", meter) if has_tokens() else None


@pytest.fixture(autouse=True)
def _banner_with_https(monkeypatch):
    """The start-up line may say https:// when TLS is on."""
    monkeypatch.setattr(conftest, "LISTEN_RE",
                        re.compile(r"listening on https?://127\.0\.0\.1:(\d+)"))


class Edge:
    """A started server plus what its clients need: port, CA file, a read
    token and the device keys of the registered meters."""

    def __init__(self, srv, cert, token, device_keys):
        self.srv = srv
        self.cert = cert
        self.token = token
        self.device_keys = device_keys

    @property
    def port(self):
        return self.srv.port

    def auth(self):
        """Headers of a reader (WebSockets, history)."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def device(self, meter):
        """Headers of the device that sends `meter`'s readings."""
        key = self.device_keys.get(meter)
        return {"Authorization": f"Bearer {key}"} if key else {}

    def ctx(self):
        return client_context(self.cert)

    def https(self, method, path, body=None, headers=None, timeout=10.0):
        headers = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        conn = httplib.HTTPSConnection(HOST, self.port, timeout=timeout, context=self.ctx())
        try:
            conn.request(method, path, body=data, headers=headers)
            r = conn.getresponse()
            payload = r.read()
            return Response(r.status, r.reason, "1.%d" % (r.version - 10), r.getheaders(),
                            payload)
        finally:
            conn.close()

    def tls_conn(self, timeout=5.0, **kw):
        return TlsRawConn(self.ctx(), self.port, timeout, **kw)

    def curl(self, *args, cacert=True):
        cmd = ["curl", "-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}"]
        if cacert:
            cmd += ["--cacert", str(self.cert)]
        p = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=20)
        body, _, code = p.stdout.rpartition("\n")
        return p.returncode, int(code or 0), body, p.stderr

    async def wss(self, path, **kw):
        """A websockets client on wss://…path (the harness's timeouts, as ws_open)."""
        kw.setdefault("open_timeout", 5)
        kw.setdefault("close_timeout", 2)
        kw.setdefault("ping_interval", None)
        kw.setdefault("ssl", self.ctx())
        return await websockets.connect(f"wss://{HOST}:{self.port}{path}", **kw)


@pytest.fixture
def edge_factory(server_factory, tmp_path, certs):
    """make(args=(), tls=True, meters=()) -> Edge: a server with the test
    certificate (tls=True) and the defaults a user gets (secure: not the
    harness's lab mode), a read token, and `meters` registered with device
    keys (in a build without keys: lab mode, no keys)."""
    counter = [0]

    def make(args=(), tls=True, meters=()):
        counter[0] += 1
        db = tmp_path / f"edge{counter[0]}" / "m.db"
        token = create_token(db)
        keys = {m: add_meter(db, m) for m in meters}
        cert, key = certs
        full = list(args)
        if tls:
            full += ["--tls-cert", str(cert), "--tls-key", str(key)]
        srv = server_factory(full, db=db, start=False)
        srv.secure = has_tokens()  # conftest: no lab flags
        srv.start()
        return Edge(srv, cert, token, keys)

    return make


def healthz_ok(r):
    return r.status == 200 and r.json() == {"status": "ok"}


# ---------------------------------------------------------------------------
# HTTPS and plain HTTP on one port

def test_curl_https_and_plain_http_on_the_same_port(edge_factory):
    e = edge_factory(meters=["tls-curl"])
    rc, code, body, err = e.curl(f"https://{HOST}:{e.port}/healthz")
    assert rc == 0 and code == 200, (rc, code, body, err)
    assert json.loads(body) == {"status": "ok"}
    # HEAD, 100-continue and a POST over TLS behave as over plain HTTP.
    rc, code, body, err = e.curl("-I", f"https://{HOST}:{e.port}/healthz")
    assert rc == 0 and code == 200, (rc, code, body, err)
    headers = {"Content-Type": "application/json", "Expect": "100-continue",
               **e.device("tls-curl")}
    rc, code, body, err = e.curl(*(a for k, v in headers.items() for a in ("-H", f"{k}: {v}")),
                                 "--data-binary", json.dumps(reading("tls-curl", BASE_TS)),
                                 f"https://{HOST}:{e.port}/api/v1/readings")
    assert rc == 0 and code == 201, (rc, code, body, err)
    assert json.loads(body) == {"accepted": 1, "duplicates": 0}
    # Plain HTTP on the very same port.
    assert healthz_ok(e.srv.get("/healthz"))
    rc, code, body, err = e.curl(f"http://{HOST}:{e.port}/healthz", cacert=False)
    assert rc == 0 and code == 200, (rc, code, body, err)


def test_https_keep_alive_serves_many_requests_on_one_connection(edge_factory):
    e = edge_factory()
    with e.tls_conn() as c:
        assert c.sock.version() in ("TLSv1.2", "TLSv1.3")
        for _ in range(5):
            c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            r = c.read_response()
            assert healthz_ok(r), r
            assert r.header("connection", "").lower() != "close"
        c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert healthz_ok(c.read_response())
        assert c.closed_by_peer(5), "Connection: close over TLS must end the connection"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_old_tls_versions_are_refused(edge_factory):
    e = edge_factory()
    ctx = e.ctx()
    ctx.set_ciphers("ALL:@SECLEVEL=0")  # the client would offer TLS 1.0/1.1
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    with RawConn(e.port) as c:
        with pytest.raises(ssl.SSLError) as err:
            c.sock = ctx.wrap_socket(c.sock, server_hostname=HOST)
    # Refused by the server (an alert), not by the client's own policy.
    assert "PROTOCOL_VERSION" in str(err.value) or "UNSUPPORTED_PROTOCOL" in str(err.value), err
    assert healthz_ok(e.https("GET", "/healthz"))


def test_tls_only_refuses_plain_http_with_400(edge_factory):
    e = edge_factory(["--tls-only"])
    with RawConn(e.port) as c:
        c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
        assert r.status == 400, r
        assert r.json() == {"error": {"code": "tls_required",
                                      "message": "this server only accepts HTTPS; use https://"}}
        assert r.header("connection", "").lower() == "close"
        assert c.closed_by_peer(5)
    # A plain WebSocket upgrade too.
    with pytest.raises(AssertionError, match="handshake failed"):
        RawWebSocket(e.port, "m1")
    rc, code, body, err = e.curl(f"http://{HOST}:{e.port}/healthz", cacert=False)
    assert code == 400 and json.loads(body)["error"]["code"] == "tls_required", (rc, body, err)
    # HTTPS is served.
    assert healthz_ok(e.https("GET", "/healthz"))


def test_oversized_body_over_tls_gets_413_not_a_reset(edge_factory):
    e = edge_factory(["--max-body", "1024"])
    body = b"x" * 200_000
    with e.tls_conn(timeout=10) as c:
        c.send(b"POST /api/v1/readings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
               b"\r\nContent-Length: %d\r\n\r\n" % len(body))
        c.send(body)
        r = c.read_response(10)
        assert r.status == 413 and r.error_code() == "body_too_large", r
        assert c.closed_by_peer(5)


# ---------------------------------------------------------------------------
# WSS

def test_wss_receives_readings_posted_over_https(edge_factory):
    meter = "tls-live"
    e = edge_factory(meters=[meter])

    async def main():
        ws = await e.wss(f"/ws/{meter}", extra_headers=e.auth())
        try:
            pong = await ws.ping()  # subscribed once the server answers
            await asyncio.wait_for(pong, 5)
            for i in range(3):
                r = await asyncio.to_thread(e.https, "POST", "/api/v1/readings",
                                            reading(meter, BASE_TS + i * 1000, power=100.0 + i),
                                            e.device(meter))
                assert r.status == 201, r
            got = [await ws_recv_json(ws) for _ in range(3)]
            assert [g["power"] for g in got] == [100.0, 101.0, 102.0], got
            assert all(g["meter_id"] == meter for g in got)
        finally:
            await ws.close()

    run_async(main())


def test_wss_and_ws_work_side_by_side(edge_factory):
    e = edge_factory(meters=["side"])

    async def main():
        secure = await e.wss("/ws/side", extra_headers=e.auth())
        plain = await ws_open(e.srv, "/ws/side", extra_headers=e.auth())
        try:
            for ws in (secure, plain):
                await asyncio.wait_for(await ws.ping(), 5)
            r = await asyncio.to_thread(e.srv.post, reading("side", BASE_TS), e.device("side"))
            assert r.status == 201, r
            for ws in (secure, plain):
                assert (await ws_recv_json(ws))["ts"] == conftest.iso(BASE_TS)
        finally:
            await secure.close()
            await plain.close()

    run_async(main())


def test_subprotocol_meterhub_is_selected_and_the_key_never_echoed(edge_factory):
    e = edge_factory()
    key = e.token or "mht_not_a_real_key_in_a_build_without_tokens"

    async def main():
        for opener in (lambda **kw: e.wss("/ws", **kw), lambda **kw: ws_open(e.srv, "/ws", **kw)):
            ws = await opener(subprotocols=["meterhub", f"bearer.{key}"])
            try:
                assert ws.subprotocol == "meterhub"
                assert ws.response_headers.get_all("Sec-WebSocket-Protocol") == ["meterhub"]
                assert key not in str(ws.response_headers)
                await ws.send(json.dumps({"subscribe": "*"}))
                snap = await ws_recv_json(ws)
                assert snap["type"] == "snapshot", snap
            finally:
                await ws.close()
        if e.token:
            # Without the key the upgrade is refused with the Router's answer.
            with pytest.raises(websockets.InvalidStatusCode) as refused:
                await e.wss("/ws", subprotocols=["meterhub"])
            assert refused.value.status_code == 401

    run_async(main())


def test_graceful_stop_closes_wss_with_1001(edge_factory):
    e = edge_factory()

    async def main():
        ws = await e.wss("/ws/bye", extra_headers=e.auth())
        idle = e.tls_conn()  # an idle HTTPS keep-alive connection
        try:
            await asyncio.wait_for(await ws.ping(), 5)
            t0 = time.monotonic()
            e.srv.send_signal(15)
            code = await ws_wait_closed(ws, 8)
            assert code == 1001, code
            assert idle.closed_by_peer(5)
            return time.monotonic() - t0
        finally:
            await ws.close()
            idle.close()

    took = run_async(main())
    assert took < 5, f"closing took {took:.1f} s"
    rc = e.srv.wait_exit(10)
    assert rc == 0 and not e.srv.killed, e.srv.run_log()
    assert any("stopped cleanly" in ln for ln in e.srv.run_lines())


def test_stalled_wss_subscriber_is_dropped(edge_factory):
    """--ws-stall-timeout over TLS: a subscriber that stops reading (tiny
    receive window) is disconnected; the server and other subscribers go on."""
    meter = "tls-stall"
    e = edge_factory(["--ws-queue", "4", "--ws-stall-timeout", "1", "--device-rate", "0"],
                     meters=[meter])
    path = f"/ws/{meter}" + (f"?token={e.token}" if e.token else "")
    stuck = tls_raw_websocket(e.ctx(), e.port, path=path, rcvbuf=2048, mss=536)
    try:
        deadline = time.monotonic() + 30
        k = 0
        with conftest.HttpClient(e.port) as c:
            while not e.srv.wait_for_log(r"warn.*subscriber stalled", 0.01):
                assert time.monotonic() < deadline, "the stuck subscriber was never dropped"
                batch = [reading(meter, BASE_TS + k + i, voltage=230.123456789012)
                         for i in range(200)]
                k += 200
                r = c.request("POST", "/api/v1/readings", batch, e.device(meter))
                assert r.status == 201, r
        stuck.conn.read_until_closed(timeout=15)  # FIN/RST, not a timeout
    finally:
        stuck.close()
    assert healthz_ok(e.https("GET", "/healthz"))

    async def fresh():
        ws = await e.wss(f"/ws/{meter}", extra_headers=e.auth())
        try:
            assert (await ws_recv_json(ws, 3))["ts"] == conftest.iso(BASE_TS + k - 1)
        finally:
            await ws.close()

    run_async(fresh())


# ---------------------------------------------------------------------------
# Clients that fail or stall the handshake

def test_untrusted_client_fails_the_handshake_and_others_are_served(edge_factory, tmp_path):
    e = edge_factory()
    other_cert, _ = make_cert(tmp_path / "other", "other")
    for _ in range(3):
        with RawConn(e.port) as c:
            with pytest.raises(ssl.SSLCertVerificationError):
                client_context(other_cert).wrap_socket(c.sock, server_hostname=HOST)
        rc, code, _, err = e.curl(f"https://{HOST}:{e.port}/healthz", cacert=False)
        assert rc == 60, (rc, code, err)  # curl: peer certificate cannot be authenticated

        async def untrusted_ws():
            with pytest.raises(ssl.SSLCertVerificationError):
                await e.wss("/ws/x", ssl=client_context(other_cert))
        run_async(untrusted_ws())
    assert healthz_ok(e.https("GET", "/healthz"))
    assert healthz_ok(e.srv.get("/healthz"))
    assert e.srv.wait_sockets_at_most(1, 5) <= 1, "failed handshakes left connections open"


def _client_hello():
    """The first flight of a real TLS client, from an in-memory handshake."""
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=HOST)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


@pytest.mark.parametrize("tls_only", [False, True])
def test_stalled_or_garbage_handshakes_do_not_block_others(edge_factory, tls_only):
    timeout = 3.0
    args = ["--request-timeout", str(timeout)] + (["--tls-only"] if tls_only else [])
    e = edge_factory(args)
    hello = _client_hello()
    stalled = []
    try:
        t0 = time.monotonic()
        for data in (hello[:len(hello) // 2],      # half a ClientHello, then silence
                     b"\x16\x03\x01",               # a record header, cut short
                     b"\x16" + os.urandom(3),       # a record type, then noise
                     b""):                          # connects, never speaks
            c = RawConn(e.port, timeout=10)
            stalled.append(c)
            if data:
                c.send(data)
        garbage = RawConn(e.port)
        stalled.append(garbage)
        garbage.send(b"\x16\x03\x01\x00\x40" + os.urandom(64))  # a "ClientHello" of noise
        # Others are served meanwhile, at once.
        for _ in range(3):
            assert healthz_ok(e.https("GET", "/healthz", timeout=timeout / 2))
            if not tls_only:
                assert healthz_ok(e.srv.get("/healthz", timeout=timeout / 2))
        assert time.monotonic() - t0 < timeout, "served only after the stalled ones were cut"
        for c in stalled[:-1]:
            assert not c.closed_by_peer(0.05), "a stalled handshake was cut before the timeout"
        # The noise is refused at once; the stalled ones by the request timeout.
        assert garbage.closed_by_peer(timeout)
        for c in stalled[:-1]:
            assert c.closed_by_peer(timeout + 3), "a stalled handshake was never cut off"
    finally:
        for c in stalled:
            c.close()
    assert e.srv.wait_sockets_at_most(1, 5) <= 1
    assert healthz_ok(e.https("GET", "/healthz"))


# ---------------------------------------------------------------------------
# Certificate renewal: SIGHUP (systemctl reload) reloads the files

def der(cert_path):
    return ssl.PEM_cert_to_DER_cert(open(cert_path).read())


def test_sighup_reloads_the_certificate_for_new_connections(edge_factory, certs, tmp_path):
    """As after a certbot renewal: the files are replaced in place and the
    server gets SIGHUP. New connections get the new certificate, a connection
    opened before keeps working on the old one, a broken replacement is
    refused with an error while the last good certificate stays in use, and
    the server never stops."""
    cert, key = certs
    e = edge_factory()
    e.srv.allow_error_logs = True  # the broken replacement is logged as an error
    old = e.tls_conn()
    try:
        assert old.sock.getpeercert(binary_form=True) == der(cert)
        old.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert healthz_ok(old.read_response())

        first = shutil.copyfile(cert, tmp_path / "first.pem")
        new_cert, new_key = make_cert(tmp_path / "renewed", "renewed")
        shutil.copyfile(new_cert, cert)
        shutil.copyfile(new_key, key)
        e.srv.send_signal(signal.SIGHUP)
        assert e.srv.wait_for_log(r"TLS certificate reloaded", 10), e.srv.run_log()
        with TlsRawConn(client_context(new_cert), e.port, 5) as c:
            assert c.sock.getpeercert(binary_form=True) == der(new_cert)
            c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert healthz_ok(c.read_response())
        # The old certificate is no longer offered to anyone new.
        with pytest.raises(ssl.SSLCertVerificationError):
            TlsRawConn(client_context(first), e.port, 5)
        # The connection from before still works, on its own context.
        old.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert healthz_ok(old.read_response())
    finally:
        old.close()

    # A half-written renewal (a key that is not PEM): refused, nothing changes.
    key.write_text("not a key\n")
    e.srv.send_signal(signal.SIGHUP)
    assert e.srv.wait_for_log(r"TLS reload failed, the current certificate stays in use", 10)
    with TlsRawConn(client_context(new_cert), e.port, 5) as c:
        assert c.sock.getpeercert(binary_form=True) == der(new_cert)
    assert e.srv.running and healthz_ok(e.srv.get("/healthz"))


def test_sighup_without_tls_is_harmless(server_factory):
    srv = server_factory()
    srv.send_signal(signal.SIGHUP)
    assert srv.wait_for_log(r"received SIGHUP: nothing to reload \(TLS is off\)", 10)
    assert srv.running
    srv.assert_healthy()


# ---------------------------------------------------------------------------
# Bad certificates stop the start

def _start_fails(server_factory, args):
    srv = server_factory(args, start=False)
    srv.allow_error_logs = True
    srv.spawn()
    rc = srv.wait_exit(15)
    out = srv.run_log()
    assert not srv.killed, out
    assert rc != 0, out
    assert "listening on" not in out, out
    return out


def test_start_fails_with_a_key_that_does_not_match(server_factory, certs, tmp_path):
    cert, _ = certs
    _, other_key = make_cert(tmp_path / "other", "other")
    out = _start_fails(server_factory, ["--tls-cert", str(cert), "--tls-key", str(other_key)])
    assert "does not match" in out and str(other_key) in out, out


def test_start_fails_with_a_missing_key(server_factory, certs, tmp_path):
    cert, _ = certs
    missing = tmp_path / "nowhere" / "server.key"
    out = _start_fails(server_factory, ["--tls-cert", str(cert), "--tls-key", str(missing)])
    assert str(missing) in out, out


@pytest.mark.parametrize("which", ["cert", "key"])
def test_start_fails_with_a_file_that_is_not_pem(server_factory, certs, tmp_path, which):
    cert, key = certs
    junk = tmp_path / "junk.pem"
    junk.write_text("this is not PEM\n")
    if which == "cert":
        cert = junk
    else:
        key = junk
    out = _start_fails(server_factory, ["--tls-cert", str(cert), "--tls-key", str(key)])
    assert str(junk) in out and "TLS" in out, out


def test_start_fails_with_an_encrypted_key_instead_of_prompting(server_factory, certs,
                                                                  tmp_path):
    cert, key = certs
    locked = tmp_path / "locked.key"
    openssl("pkey", "-in", str(key), "-aes256", "-passout", "pass:secret", "-out", str(locked))
    out = _start_fails(server_factory, ["--tls-cert", str(cert), "--tls-key", str(locked)])
    assert str(locked) in out, out


# ---------------------------------------------------------------------------
# Open connections per client IP

@pytest.mark.parametrize("tls", [False, True])
def test_max_connections_per_ip(edge_factory, tls):
    e = edge_factory(["--max-connections-per-ip", "5"], tls=tls)
    assert e.srv.wait_sockets_at_most(1, 5) <= 1
    held = [RawConn(e.port) for _ in range(4)]  # idle, not a byte sent
    ws = None
    try:
        # A WebSocket counts for its whole life, like an HTTP connection.
        ws = RawWebSocket(e.port, path="/ws" + (f"?token={e.token}" if e.token else ""))
        assert e.srv.wait_sockets_at_most(6, 5) <= 6
        with RawConn(e.port) as sixth:
            assert sixth.closed_by_peer(3), "a 6th connection from the same IP was kept open"
        assert e.srv.wait_for_log(r"warn.*per IP \(5\)", 5), e.srv.run_log()
        held[0].close()
        assert e.srv.wait_sockets_at_most(5, 5) <= 5
        if tls:
            assert healthz_ok(e.https("GET", "/healthz"))
        else:
            assert healthz_ok(e.srv.get("/healthz"))
        # The held ones were not disturbed.
        held[1].send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")  # plain is served too
        assert healthz_ok(held[1].read_response())
        ws.send_frame(0x9, b"still there")
        op, payload = ws.read_frame(3)
        assert (op, payload) == (0xA, b"still there")
    finally:
        for c in held:
            c.close()
        if ws is not None:
            ws.close()


def test_per_ip_limit_counts_each_connection_once_over_many_cycles(edge_factory):
    """Slots are given back: 200 short connections under a limit of 3."""
    e = edge_factory(["--max-connections-per-ip", "3"], tls=True)
    for i in range(100):
        r = e.srv.get("/healthz") if i % 2 else e.https("GET", "/healthz")
        assert healthz_ok(r), (i, r)
        with RawConn(e.port) as c:  # connect and leave without a byte
            pass
        e.srv.wait_sockets_at_most(3, 5)
    held = [RawConn(e.port) for _ in range(3)]
    try:
        assert e.srv.wait_sockets_at_most(4, 5) <= 4
        with RawConn(e.port) as extra:
            assert extra.closed_by_peer(3)
    finally:
        for c in held:
            c.close()


# ---------------------------------------------------------------------------
# Keys stay out of the log

def test_keys_never_reach_the_log(edge_factory):
    e = edge_factory(["--log-level", "trace"])
    secret = "mht_" + "5ec7e7" * 8
    probes = [
        ("GET", f"/api/v1/meters?token={secret}", {}),
        ("GET", "/api/v1/meters", {"Authorization": f"Bearer {secret}"}),
        ("GET", "/api/v1/meters", {"X-API-Key": secret}),
        ("GET", f"/no/such/{secret}?token={secret}", {}),
    ]
    for method, path, headers in probes:
        e.https(method, path, headers=headers)
        e.srv.http(method, path, headers=headers)
    # Upgrades with the key in every place a browser or a device may put it.
    for path, protos in ((f"/ws?token={secret}", None), ("/ws", ["meterhub", f"bearer.{secret}"]),
                         (f"/ws/%ZZ?token={secret}", None)):
        async def attempt():
            with contextlib.suppress(Exception):
                ws = await e.wss(path, subprotocols=protos,
                                 extra_headers={"X-API-Key": secret})
                await ws.close()
            with contextlib.suppress(Exception):
                ws = await ws_open(e.srv, path, subprotocols=protos,
                                   extra_headers={"Authorization": f"Bearer {secret}"})
                await ws.close()
        run_async(attempt())
    # Malformed requests carrying a key.
    for data in (f"GET /?token={secret} HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n".encode(),
                 f"BREW /?token={secret} HTCPCP/1.0\r\n\r\n".encode()):
        with contextlib.suppress(Exception):
            with RawConn(e.port) as c:
                c.send(data)
                c.read_response(3)
    assert e.srv.wait_sockets_at_most(1, 5) <= 1
    log = e.srv.run_log()
    assert secret not in log, [ln for ln in log.splitlines() if secret in ln]
    assert "5ec7e75ec7e7" not in log
