#!/usr/bin/env python3
"""A capture listener for the mailflow plugin's wire format, independent of
the Microsoft 365 emulator: an HTTPS server on loopback that records every
request as it arrived (method, path, headers, body) and answers with canned
replies, so a test can compare what the plugin sends with Microsoft's
references.

    capture.py --dir DIR [--tid GUID] [--script 408,429] [--domain D]...

Writes DIR/ca.pem (its own test CA), DIR/capture.json ({"port": N,
"pid": P}) once listening, and appends one JSON object per request to
DIR/requests.jsonl.  Answers:

    POST /login/<tenant>/oauth2/v2.0/token
        200 {"access_token": <JWT whose claims hold tid>, ...}
    POST /adminapi/beta/<tenant>/InvokeCommand
        the statuses of --script first, one per request (each with
        Retry-After: 0), then 200: Get-AcceptedDomain lists the --domain
        values, Get-OrganizationConfig says IsDehydrated false, other Get-*
        an empty collection, anything else echoes its parameters.

It exits when the process that started it is gone, or on SIGTERM.
Standard library plus python3-cryptography (as m365emu.py)."""

import argparse
import base64
import datetime
import json
import os
import secrets
import signal
import ssl
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from srvlib import pid_alive, write_atomic  # noqa: E402


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_certs(d):
    """A CA and a server certificate for 127.0.0.1 and localhost."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID
    import ipaddress

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca = (x509.CertificateBuilder().subject_name(name("capture test CA"))
          .issuer_name(name("capture test CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    san = x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                       x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    cert = (x509.CertificateBuilder().subject_name(name("127.0.0.1"))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(san, critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    write_atomic(os.path.join(d, "ca.pem"), ca.public_bytes(pem))
    write_atomic(os.path.join(d, "server.pem"), cert.public_bytes(pem) + key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()), 0o600)


class Capture:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.script = [int(s) for s in args.script.split(",") if s.strip()]
        self.log = os.path.join(args.dir, "requests.jsonl")

    def record(self, rec):
        with self.lock:
            with open(self.log, "a") as f:
                f.write(json.dumps(rec) + "\n")

    def next_scripted(self):
        with self.lock:
            return self.script.pop(0) if self.script else None

    def token(self):
        now = int(time.time())
        claims = {"aud": "https://outlook.office365.com", "tid": self.args.tid,
                  "iat": now, "nbf": now, "exp": now + 3599, "roles": ["Exchange.ManageAsApp"]}
        return "%s.%s.%s" % (b64url(json.dumps({"typ": "JWT", "alg": "RS256"}).encode()),
                             b64url(json.dumps(claims).encode()),
                             b64url(secrets.token_bytes(32)))

    def cmdlet_value(self, cmdlet, params):
        if cmdlet == "Get-AcceptedDomain":
            return [{"DomainName": d, "Name": d, "Identity": d, "DomainType": "Authoritative",
                     "Default": i == 0} for i, d in enumerate(self.args.domain)]
        if cmdlet == "Get-OrganizationConfig":
            return [{"Name": "capture", "IsDehydrated": False}]
        if cmdlet.startswith("Get-"):
            return []
        obj = dict(params)
        obj["Guid"] = str(uuid.uuid4())
        return [obj]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def send_json(self, status, obj, extra=()):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        cap = self.server.capture
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        path = self.path.split("?")[0]
        rec = {"t": time.time(), "method": self.command, "path": self.path,
               "headers": {k: v for k, v in self.headers.items()},
               "body": raw.decode("utf-8", "replace")}
        if path.startswith("/login/") and path.endswith("/oauth2/v2.0/token"):
            rec["kind"] = "token"
            rec["status"] = 200
            cap.record(rec)
            return self.send_json(200, {"token_type": "Bearer", "expires_in": 3599,
                                        "ext_expires_in": 3599, "access_token": cap.token()})
        if path.startswith("/adminapi/beta/") and path.endswith("/InvokeCommand"):
            rec["kind"] = "invoke"
            status = cap.next_scripted()
            try:
                ci = json.loads(raw)["CmdletInput"]
                cmdlet, params = ci["CmdletName"], ci.get("Parameters") or {}
            except (ValueError, KeyError, TypeError):
                cmdlet, params = None, {}
            rec["cmdlet"] = cmdlet
            if status is not None:
                rec["status"] = status
                cap.record(rec)
                return self.send_json(status, {"error": {"code": str(status),
                                                         "message": "scripted"}},
                                      [("Retry-After", "0")])
            rec["status"] = 200
            cap.record(rec)
            return self.send_json(200, {"@adminapi.warnings": [],
                                        "value": cap.cmdlet_value(cmdlet or "", params)})
        rec["kind"] = "other"
        rec["status"] = 404
        cap.record(rec)
        self.send_json(404, {"error": "not_found"})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--tid", default="7d3b0e52-4c1f-4f0e-9a55-2f6c1c0b7e11")
    ap.add_argument("--script", default="")
    ap.add_argument("--domain", action="append", default=[])
    args = ap.parse_args()
    if not args.domain:
        args.domain = ["contoso.test"]
    os.makedirs(args.dir, exist_ok=True)
    make_certs(args.dir)
    owner = os.getppid()

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.capture = Capture(args)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(args.dir, "server.pem"))
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)

    def stop(*_):
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    def watch_owner():
        while pid_alive(owner):
            time.sleep(0.5)
        stop()

    signal.signal(signal.SIGTERM, stop)
    threading.Thread(target=watch_owner, daemon=True).start()
    write_atomic(os.path.join(args.dir, "capture.json"),
                 json.dumps({"port": httpd.server_address[1], "pid": os.getpid()}))
    httpd.serve_forever()
    httpd.server_close()


if __name__ == "__main__":
    main()
