"""What the DNS-provider emulators (cfemu.py, gcloudemu.py, r53emu.py,
azureemu.py) share: HTTPS on loopback with a test CA, a request log,
injectable faults, and the real BIND zone behind each emulated zone.

Every change a provider accepts is pushed to BIND with an RFC 2136 UPDATE
(nsupdate, TSIG) after the propagation delay, so the authoritative servers
serve it only then, as a provider's edge does.  Standard library plus
python3-cryptography (for the certificates).

Control API (https, same port, no auth, JSON), common to both:
  GET    /_emu/health
  GET|POST /_emu/config      {"propagation_delay_s": S, "page_size": N}
  GET|POST|DELETE /_emu/faults
         {"method": "POST", "path": "/batch" (a substring), "kind": K,
          "count": 1, "skip": 0, "retry_after": 1, "delay_ms": 0,
          "then": [fault, ...]}
         K: 429 and 503 (with Retry-After), 500, 502, 504, 400, 403, 404,
         409, 412 (the provider's error body for that status, not applied),
         drop (the answer cut short, not applied), acted_drop (applied,
         then the answer cut short), acted_late (the answer cut short now,
         applied after delay_ms), acted_STATUS (applied, then answered
         STATUS as above: acted_503 is a write that landed although the
         answer says retry), plus the emulator's own.
         A script: "then" faults (same method and path unless given) go
         first in line once this one is taken, so the requests after it
         (the host's retries) meet them in order.  A list posted is
         appended in order.
  GET|DELETE /_emu/requests  every API request: {"method","path","auth"}
"""

import datetime
import ipaddress
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from srvlib import pid_alive, write_atomic  # noqa: E402


def ensure_certs(d):
    """A test CA and a server certificate for 127.0.0.1 in d."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    p = lambda n: os.path.join(d, n)  # noqa: E731
    if os.path.exists(p("server.pem")):
        return
    now = datetime.datetime.now(datetime.timezone.utc)
    start = now - datetime.timedelta(days=1)

    def key_pem(k):
        return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption())

    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailmode provider test CA")])
    ca = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(now + datetime.timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(now + datetime.timedelta(days=825))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .sign(ca_key, hashes.SHA256()))
    write_atomic(p("ca.pem"), ca.public_bytes(serialization.Encoding.PEM))
    write_atomic(p("server.key"), key_pem(key), 0o600)
    write_atomic(p("server.pem"), cert.public_bytes(serialization.Encoding.PEM))


class Bind:
    """The real zone behind an emulated one: MX sets pushed with nsupdate."""

    def __init__(self, spec, emu):
        # spec: "ADDR:PORT:KEYNAME:SECRETFILE"
        addr, port, key, secret_file = spec.split(":", 3)
        with open(secret_file) as f:
            secret = f.read().strip()
        self.addr, self.port, self.tsig = addr, int(port), "hmac-sha256:%s:%s" % (key, secret)
        self.emu = emu
        self.lock = threading.Lock()

    def push_now(self, zone, name, mx):
        """mx: [(ttl, pref, host)] with absolute host names."""
        lines = ["server %s %d" % (self.addr, self.port), "zone %s." % zone,
                 "update delete %s. MX" % name]
        lines += ["update add %s. %d MX %d %s" % (name, ttl, pref, host) for ttl, pref, host in mx]
        lines.append("send")
        with self.lock:
            res = subprocess.run(["nsupdate", "-y", self.tsig, "-t", "5"],
                                 input="\n".join(lines) + "\n", capture_output=True, text=True)
        if res.returncode != 0:
            self.emu.log("nsupdate failed for %s: %s" % (name, res.stderr.strip()))
        return res.returncode == 0

    def push(self, zone, name, current, done=None):
        """After the propagation delay, BIND gets what current() returns
        then (the provider's state at that time); done() is called after."""
        accepted = time.monotonic()

        def run():
            self.push_now(zone, name, current())
            self.emu.log("propagated %s MX to BIND %.2f s after the change was accepted"
                         % (name, time.monotonic() - accepted))
            if done:
                done()
        delay = self.emu.config["propagation_delay_s"]
        timer = threading.Timer(delay, run)
        timer.daemon = True
        timer.start()


class Reply(Exception):
    """Raised by a handler to answer at once: (status, body, headers)."""

    def __init__(self, status, body, headers=None):
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


class Emu:
    """State shared by the handler threads; subclasses add the API."""

    name = "provemu"

    def __init__(self, args):
        self.args = args
        self.lock = threading.RLock()
        self.config = {"propagation_delay_s": args.propagation_delay, "page_size": 0}
        self.faults = []
        self.requests = []
        self.bind = Bind(args.dns, self) if args.dns else None
        self.base = ""

    def log(self, msg):
        sys.stderr.write("%s %s: %s\n" % (time.strftime("%H:%M:%S"), self.name, msg))
        sys.stderr.flush()

    # ---- faults
    def take_fault(self, method, path):
        with self.lock:
            for f in self.faults:
                if f.get("method", method) != method or f.get("path", "") not in path:
                    continue
                if f.get("skip", 0) > 0:
                    f["skip"] -= 1
                    continue
                f["count"] = f.get("count", 1) - 1
                at = self.faults.index(f)
                if f["count"] <= 0:
                    self.faults.remove(f)
                else:
                    at += 1
                then = [dict({"method": method, "path": f.get("path", "")}, **t)
                        for t in f.get("then", [])]
                self.faults[at:at] = then
                return dict(f)
        return None

    def control(self, method, path, body):
        if path == "/_emu/health":
            return 200, {"ok": True}
        if path == "/_emu/config":
            if method == "POST":
                self.config.update(body or {})
            return 200, self.config
        if path == "/_emu/faults":
            with self.lock:
                if method == "POST":
                    self.faults += body if isinstance(body, list) else [body]
                elif method == "DELETE":
                    self.faults = []
                return 200, list(self.faults)
        if path.startswith("/_emu/requests"):
            with self.lock:
                if method == "DELETE":
                    self.requests = []
                return 200, list(self.requests)
        return self.own_control(method, path, body)

    def own_control(self, method, path, body):
        return 404, {"error": "no such control endpoint"}

    def push_names(self, zone, names, current, done=None):
        """After the propagation delay BIND gets current(name) for each of
        names (in zone, final dots or not); done() once all are pushed."""
        if not self.bind or not names:
            if done:
                done()
            return
        left = [len(names)]

        def one_done():
            with self.lock:
                left[0] -= 1
                if left[0] == 0 and done:
                    done()
        for name in names:
            self.bind.push(zone.rstrip("."), name.rstrip("."),
                           lambda name=name: current(name), one_done)

    def own_fault(self, fault):
        """An emulator's own fault kind answered at once: (status, body,
        headers), or None to go on."""
        return None

    def api(self, handler, method, path, query, body):
        raise Reply(404, {})


# The statuses a fault may answer with (Emu.fault_body gives the body).
FAULT_STATUSES = ("400", "403", "404", "409", "412", "429", "500", "502", "503", "504")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "provemu"
    sys_version = ""
    timeout = 60

    def log_message(self, fmt, *args):
        pass

    def handle(self):
        try:
            super().handle()
        except (ConnectionError, ssl.SSLError, socket.timeout, OSError):
            pass

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = lambda self: self.dispatch()

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def send(self, status, body, headers=None):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        # An XML document (Route 53's API) goes as XML, the rest as JSON.
        self.send_header("Content-Type", "text/xml" if data.startswith(b"<?xml")
                         else "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.end_headers()
        self.wfile.write(data)

    def drop(self):
        """The answer is lost: its first bytes go out, then the connection
        closes (closing before any byte would make libcurl re-send the
        request on a fresh connection, as it does for a reused connection
        it finds dead)."""
        self.close_connection = True
        try:
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: 4096\r\n\r\n{")
            self.wfile.flush()
        except OSError:
            pass
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def send_fault(self, fault, kind):
        """An injected answer: `kind` is its status."""
        headers = {"Retry-After": fault.get("retry_after", 1)} if kind in ("429", "503") else {}
        return self.send(int(kind), self.server.emu.fault_body(int(kind)), headers)

    def run_api(self, method, path, query, raw):
        emu = self.server.emu
        try:
            status, body, headers = emu.api(self, method, path, query, raw)
        except Reply as r:
            status, body, headers = r.status, r.body, r.headers
        return status, body, headers

    def dispatch(self):
        emu = self.server.emu
        url = urllib.parse.urlsplit(self.path)
        path, query = url.path, urllib.parse.parse_qs(url.query)
        raw = self.read_body()
        method = self.command
        if path.startswith("/_emu/"):
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                return self.send(400, {"error": "bad JSON"})
            status, out = emu.control(method, path, body)
            return self.send(status, out)
        with emu.lock:
            emu.requests.append({"method": method, "path": self.path,
                                 "time": time.time()})
        fault = emu.take_fault(method, self.path)
        kind = str(fault["kind"]) if fault else ""
        if kind in FAULT_STATUSES:
            return self.send_fault(fault, kind)
        own = emu.own_fault(fault) if fault else None
        if own:
            return self.send(*own)
        if kind == "drop":
            return self.drop()
        if kind == "acted_late":
            timer = threading.Timer(fault.get("delay_ms", 0) / 1000.0, self.run_api,
                                    (method, path, query, raw))
            timer.daemon = True
            timer.start()
            return self.drop()
        status, body, headers = self.run_api(method, path, query, raw)
        if kind == "acted_drop":
            return self.drop()
        if kind.startswith("acted_") and kind[6:] in FAULT_STATUSES:
            return self.send_fault(fault, kind[6:])
        emu.after_reply_fault(fault, path)
        return self.send(status, body, headers)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def finish_request(self, request, client_address):
        request.settimeout(30)
        try:
            tls = self.ssl_ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            try:
                tls.close()
            except OSError:
                pass


def common_args(ap):
    ap.add_argument("--dir", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--owner-pid", type=int, default=0)
    ap.add_argument("--spec", required=True, help="JSON: zones, credentials")
    ap.add_argument("--dns", default="",
                    help="ADDR:PORT:TSIGKEY:SECRETFILE of the BIND primary behind the zones")
    ap.add_argument("--propagation-delay", type=float, default=0.5)


def serve(emu, info_extra=None):
    """Runs until SIGTERM or the owner is gone; writes DIR/emu.json."""
    d = os.path.abspath(emu.args.dir)
    os.makedirs(d, exist_ok=True)
    ensure_certs(d)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(d, "server.pem"), os.path.join(d, "server.key"))
    srv = Server(("127.0.0.1", emu.args.port), Handler)
    srv.ssl_ctx, srv.emu = ctx, emu
    emu.base = "https://127.0.0.1:%d" % srv.server_address[1]
    emu.start()
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.25},
                     daemon=True).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    info = {"port": srv.server_address[1], "pid": os.getpid(), "base_url": emu.base,
            "ca_file": os.path.join(d, "ca.pem"), "dir": d}
    info.update(info_extra(emu) if info_extra else {})
    write_atomic(os.path.join(d, "emu.json"), json.dumps(info, indent=1) + "\n")
    while not stop.wait(0.5):
        if emu.args.owner_pid and not pid_alive(emu.args.owner_pid):
            break
    srv.shutdown()
    srv.server_close()
    return 0


def rfc3339(t=None):
    return datetime.datetime.fromtimestamp(t or time.time(), datetime.timezone.utc) \
        .strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def is_ldh(name):
    return bool(re.fullmatch(r"(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)*[a-z0-9-]+\.?", name))
