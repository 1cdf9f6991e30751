#!/usr/bin/python3
"""mailsim: the mail path of the mailmode sandbox.

Five commands, one module (m365emu.py imports it for its SMTP front door;
the sandbox driver, sandbox.py, starts the service):

  mailsim.py service --dir DIR --port P --dns ADDR:PORT[,ADDR:PORT]
                     --ca-dir EMU_DIR [--gateway NAME[=ADDR]]... [--smart-host NAME[=ADDR]]
                     [--return-host NAME[=ADDR]] [--loop-header NAME]
                     [--destination TEMPLATE] [--owner-pid PID]
      The email-security service.  SMTP listeners on port P of its gateway
      hosts (gateway mode: the domain's MX) and of its mailflow smart host
      (mailflow mode: the tenant's outbound connector delivers there); the
      addresses come from the A records of the names in the sandbox DNS unless
      given.  Every message received is "scanned": it gets a header
          X-Sandbox-Scan: id=<uuid>; path=gateway|mailflow; host=<listener>
      and the service's loop header (X-Sandbox-Mailflow-Processing-Id: <uuid>,
      which the mailflow transport rule's exception recognises), a Received
      header, and one JSON line in DIR/scans.jsonl (every message it receives
      is scanned, its own stamps notwithstanding, as a service would: keeping
      its mail from coming back is the tenant rule's exception's job)
          {"scan_id","message_id","path","host","address","peer","from","to",
           "t" (epoch s),"at" (ISO),"loop_header" (stamped?)}
      Then it is queued and delivered on to the tenant's front door
      (TEMPLATE, default {domain_dashes}.mail.protection.outlook.test, resolved
      in the sandbox DNS, port P, STARTTLS required, the name verified against
      the test CA): gateway traffic from the gateway host's own address,
      mailflow traffic from the return host (mf-return.sandbox.test), both
      presenting the service's certificate (CN mf-return.sandbox.test, the
      listeners' names as SANs: what the tenant's inbound connector, and a
      lock-down, is tied to; the internet sender presents none).  The
      address a delivery leaves from is the connecting address the front door
      sees, which is what the mailflow rule's ExceptIfSenderIpRanges matches.
      Transient failures are retried (queue), 5xx are bounced (logged).
      Control API (plain HTTP on 127.0.0.1, address in DIR/mailsim.json):
          GET  /health
          GET  /config               current settings
          POST /config               {"gateway_loop_header": bool,
                                      "mailflow_loop_header": bool,
                                      "gateway_certificate": bool,
                                      "gateway_source": ADDR | null,
                                      "mailflow_source": ADDR | null,
                                      "tempfail": [listener name or address...]}
                                     gateway_loop_header=false: the gateway
                                     hosts do not stamp the loop header (a
                                     service of another region/tenant);
                                     gateway_certificate=false: the gateway
                                     hosts present no client certificate;
                                     *_source: that path delivers to the
                                     tenant from ADDR (a loopback address)
                                     instead of its own host's address, with
                                     the same certificate and stamps: a
                                     service node the profile's service_ips
                                     does not list (null: back to normal);
                                     tempfail: those listeners answer 451 to
                                     MAIL FROM (an outage; senders fall back to
                                     the next MX)
          GET  /scans[?message_id=]  the scan records
          GET  /queue                {"pending","delivered","bounced","deferrals"}
          GET  /internet             what reached the internet's mail server
      --outbound-host NAME: a listener (path=outbound) for the tenant's
      outgoing mail (gateway mode's outbound connector delivers there): each
      message is scanned like the others and then delivered to its
      recipient's MX in the sandbox DNS, from the listener's own address.
      --internet-mx NAME: the internet's mail server (an MX of recipients
      outside the tenant, e.g. internet.sandbox.test): it keeps every
      message in DIR/internet.jsonl, one JSON line each
          {"message_id","from","to","peer","helo","scans" (the X-Sandbox-Scan
           values it carries),"t","at"}
      so a test sees whether outgoing mail came through the service (peer:
      an outbound listener, one scan) or straight from the tenant.

  mailsim.py send (--sandbox DIR | --dns ADDR:PORT[,..] --smtp-port P)
                  --to ADDR[,ADDR]... [--count N] [--interval-ms A-B]
                  [--until-file F] [--log F] [--cache-mx] [--from ADDR]
                  [--header 'Name: value']... [--retry-for S] [--owner-pid PID]
                  [--via HOST]
      The internet sender.  One message every A-B ms (uniformly random) to the
      recipients round-robin, until N were sent or file F exists.  Per message
      it resolves the recipient domain's MX in the sandbox DNS (authoritative
      queries, a random authoritative server first, the other on failure; with
      --cache-mx answers are cached for their TTL, without: re-resolved for
      every message), tries the MX hosts in preference order (random among
      equal ones) and their A addresses on port P, falling back to the next on
      a connection failure or 4xx; a message no MX took is retried every
      second for S seconds (default 30).  --via HOST: every message goes to
      HOST's A addresses instead of the MX (mail handed to the service's
      smart host directly, as a hop in front of it would).  The sender uses
      no TLS and presents no certificate (what a tenant's lock-down connector
      refuses).  Each message's outcome is one JSON line in F (default
      stdout):
          {"seq","message_id","from","to","subject","t" (first attempt, epoch s),
           "accepted_at","result":"accepted"|"failed","mx","ip","attempts",
           "response","error"}
      Exit 0 when every message was accepted, 3 when some were not.

  mailsim.py oracle --sent F --emu URL --ca CA --tenant T --scans F
                    [--switch-done-at T] [--wait S] [--settle S] [--json F]
      Waits until every accepted message is in its mailbox (at most S s,
      default 20), then settles (default 1 s) and counts, per sent message:
      deliveries to its recipient's mailbox (emulator control API) and scans
      (the service's scan log).  Prints
          sent N, delivered N, scanned once N, scanned twice N, unscanned N
          delivered exactly once N, duplicated N, lost N (not accepted by any MX N)
          after switch (sent at/after T): N sent, N scanned exactly once, N violations
          paths: gateway N, mailflow N, gateway+mailflow N, none N
          VIOLATION <kind>: N message(s) ...   (kinds: lost, duplicated,
              unscanned, scanned twice after the switch, nothing sent)
          oracle: PASS | oracle: FAIL (<kinds>)
      "scanned twice" counts messages scanned two or more times.  The oracle
      holds when every message was delivered exactly once, scanned at least
      once, and every message sent at or after T (epoch seconds or ISO 8601)
      was scanned exactly once.  Exit 0 when it holds, 1 when not, 2 on
      errors.

  mailsim.py trace --sandbox DIR (--message-id ID | --recipient ADDR) [--detail]
      Get-MessageTraceV2 (and with --detail Get-MessageTraceDetailV2 per row)
      through the emulated Exchange Online admin API with the sandbox app's
      credentials: how `mailmode verify --quick-test` follows a message.

  mailsim.py invoke --sandbox DIR CMDLET ['{"Param": value}']
      Any cmdlet through the admin API as the sandbox app (all pages); prints
      the objects as JSON, or the error (exit 1).

Standard library, python3-aiosmtpd (SMTP servers) and python3-cryptography
(certificates).  Loopback only.
"""

import argparse
import asyncio
import datetime
import email.parser
import email.policy
import email.utils
import heapq
import ipaddress
import itertools
import json
import os
import random
import signal
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from srvlib import pid_alive, write_atomic  # noqa: E402

LOOP_HEADER = "X-Sandbox-Mailflow-Processing-Id"
SCAN_HEADER = "X-Sandbox-Scan"
DESTINATION = "{domain_dashes}.mail.protection.outlook.test"
MAX_HOPS = 30
MAX_RECORDS = 200000


def now_iso(t=None):
    return datetime.datetime.fromtimestamp(time.time() if t is None else t,
                                           datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text):
    """Epoch seconds (float) from epoch text or ISO 8601."""
    text = str(text).strip()
    try:
        return float(text)
    except ValueError:
        pass
    t = text.replace("Z", "+00:00")
    d = datetime.datetime.fromisoformat(t)
    if d.tzinfo is None:
        d = d.replace(tzinfo=datetime.timezone.utc)
    return d.timestamp()






def parse_servers(spec):
    """"127.0.0.11:5300,127.0.0.12:5300" -> [(addr, port)]."""
    out = []
    for part in str(spec).replace(" ", "").split(","):
        if not part:
            continue
        host, sep, port = part.rpartition(":")
        if not sep:
            raise ValueError("expected ADDR:PORT, got '%s'" % part)
        out.append((host.strip("[]"), int(port)))
    if not out:
        raise ValueError("no DNS server given")
    return out


def domain_of(address):
    return address.rpartition("@")[2].strip().strip(">").lower()


def dashes(domain):
    return domain.replace(".", "-")


# --------------------------------------------------------------------------
# DNS: authoritative queries only (the sandbox servers do not recurse)

T_A, T_NS, T_CNAME, T_SOA, T_MX, T_TXT = 1, 2, 5, 6, 15, 16
TYPE_NAMES = {T_A: "A", T_NS: "NS", T_CNAME: "CNAME", T_SOA: "SOA", T_MX: "MX", T_TXT: "TXT"}


class DnsError(Exception):
    pass


class NxDomain(DnsError):
    pass


def _encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\0"


def _read_name(msg, pos):
    labels, end, hops = [], None, 0
    while True:
        if pos >= len(msg):
            raise DnsError("truncated name")
        n = msg[pos]
        if n & 0xC0 == 0xC0:
            if end is None:
                end = pos + 2
            pos = ((n & 0x3F) << 8) | msg[pos + 1]
            hops += 1
            if hops > 64:
                raise DnsError("name compression loop")
            continue
        if n == 0:
            pos += 1
            break
        labels.append(msg[pos + 1:pos + 1 + n].decode("ascii", "replace"))
        pos += 1 + n
    return ".".join(labels).lower(), (end if end is not None else pos)


def _parse_reply(reply, qid):
    if len(reply) < 12:
        raise DnsError("short reply")
    rid, flags, qd, an, _ns, _ar = struct.unpack("!HHHHHH", reply[:12])
    if rid != qid:
        raise DnsError("reply id mismatch")
    pos = 12
    for _ in range(qd):
        _, pos = _read_name(reply, pos)
        pos += 4
    answers = []
    for _ in range(an):
        rname, pos = _read_name(reply, pos)
        rtype, _cls, ttl, rdlen = struct.unpack("!HHIH", reply[pos:pos + 10])
        pos += 10
        rdata = reply[pos:pos + rdlen]
        if rtype == T_A and rdlen == 4:
            value = socket.inet_ntoa(rdata)
        elif rtype == T_MX:
            value = (struct.unpack("!H", rdata[:2])[0], _read_name(reply, pos + 2)[0])
        elif rtype in (T_CNAME, T_NS):
            value = _read_name(reply, pos)[0]
        elif rtype == T_TXT:
            value = _txt_text(rdata)
        else:
            value = rdata
        answers.append((rname, rtype, ttl, value))
        pos += rdlen
    return {"rcode": flags & 0xF, "aa": bool(flags & 0x0400), "tc": bool(flags & 0x0200),
            "answers": answers}


def _txt_text(rdata):
    """A TXT record's character-strings, joined (RFC 7208 3.3: an SPF
    record split into several strings is read as their concatenation)."""
    out, pos = [], 0
    while pos < len(rdata):
        n = rdata[pos]
        out.append(rdata[pos + 1:pos + 1 + n].decode("utf-8", "replace"))
        pos += 1 + n
    return "".join(out)


def dns_query(server, name, qtype, timeout=1.0):
    """One non-recursive query; UDP, TCP when truncated."""
    qid = random.getrandbits(16)
    msg = struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 0) + _encode_name(name) + \
        struct.pack("!HH", qtype, 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(timeout)
    try:
        sock.sendto(msg, server)
        while True:
            reply, src = sock.recvfrom(65535)
            if src[0] == server[0] and len(reply) >= 2 and \
                    struct.unpack("!H", reply[:2])[0] == qid:
                break
    finally:
        sock.close()
    res = _parse_reply(reply, qid)
    if not res["tc"]:
        return res
    with socket.create_connection(server, timeout=timeout) as s:
        s.sendall(struct.pack("!H", len(msg)) + msg)
        data = b""
        while len(data) < 2 or len(data) < 2 + struct.unpack("!H", data[:2])[0]:
            chunk = s.recv(65535)
            if not chunk:
                raise DnsError("TCP reply truncated")
            data += chunk
    return _parse_reply(data[2:], qid)


class Resolver:
    """Asks the sandbox's authoritative servers (random order, the next on
    failure).  cache=True keeps answers for their TTL."""

    def __init__(self, servers, timeout=1.0, cache=False):
        self.servers = list(servers)
        self.timeout = timeout
        self.cache = {} if cache else None
        self.lock = threading.Lock()

    def lookup(self, name, qtype):
        """[(value, ttl)] of the RRset (CNAMEs in the answer followed);
        NxDomain when the name does not exist; DnsError when no server gave
        an authoritative answer."""
        name = name.rstrip(".").lower()
        key = (name, qtype)
        if self.cache is not None:
            with self.lock:
                hit = self.cache.get(key)
            if hit and hit[0] > time.monotonic():
                return hit[1]
        servers = list(self.servers)
        random.shuffle(servers)
        problems = []
        for server in servers:
            try:
                res = dns_query(server, name, qtype, self.timeout)
            except (OSError, DnsError) as e:
                problems.append("%s:%d: %s" % (server[0], server[1], e or type(e).__name__))
                continue
            if not res["aa"]:
                problems.append("%s:%d: answer not authoritative" % server)
                continue
            if res["rcode"] == 3:
                raise NxDomain("%s does not exist (NXDOMAIN)" % name)
            if res["rcode"] != 0:
                problems.append("%s:%d: rcode %d" % (server[0], server[1], res["rcode"]))
                continue
            target, out = name, []
            for _ in range(8):
                out = [(v, ttl) for n, t, ttl, v in res["answers"] if n == target and t == qtype]
                if out:
                    break
                cn = [v for n, t, ttl, v in res["answers"] if n == target and t == T_CNAME]
                if not cn:
                    break
                target = cn[0]
            if self.cache is not None and out:
                with self.lock:
                    self.cache[key] = (time.monotonic() + min(t for _, t in out), out)
            return out
        raise DnsError("no authoritative answer for %s %s (%s)" % (
            name, TYPE_NAMES.get(qtype, qtype), "; ".join(problems) or "no server"))

    def addresses(self, host):
        """IPv4 addresses of a host name (or a literal / [literal] address)."""
        h = host.strip().strip("[]")
        try:
            return [str(ipaddress.IPv4Address(h))]
        except ValueError:
            pass
        return [v for v, _ in self.lookup(h, T_A)]

    def mx(self, domain):
        """[(preference, host)] in the order to try them: preference order,
        random among equal preferences; the domain itself when it has no MX
        (RFC 5321 5.1).  DnsError for a null MX (RFC 7505)."""
        recs = [v for v, _ in self.lookup(domain, T_MX)]
        if not recs:
            return [(0, domain.lower())]
        if any(host in ("", ".") for _, host in recs):
            raise DnsError("%s has a null MX: it accepts no mail" % domain)
        random.shuffle(recs)
        return sorted(recs, key=lambda r: r[0])


# --------------------------------------------------------------------------
# SMTP client

class TransientError(Exception):
    pass


class PermanentError(Exception):
    pass


def cert_names(peercert):
    """DNS names (SAN, else CN) of a certificate as ssl.getpeercert() gives it."""
    if not peercert:
        return []
    names = [v.lower() for k, v in peercert.get("subjectAltName", ()) if k == "DNS"]
    if not names:
        for rdn in peercert.get("subject", ()):
            for k, v in rdn:
                if k == "commonName":
                    names.append(v.lower())
    return names


def name_matches(pattern, name):
    """Certificate-style match: '*.a.b' covers exactly one more label."""
    pattern, name = pattern.lower().rstrip("."), name.lower().rstrip(".")
    if pattern == name:
        return True
    if pattern.startswith("*."):
        head, _, rest = name.partition(".")
        return bool(head) and rest == pattern[2:]
    return False


def client_tls_context(ca=None, cert=None, key=None, verify=True):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False  # the name is checked by hand (smart host names)
    if verify:
        ctx.verify_mode = ssl.CERT_REQUIRED
        if ca:
            ctx.load_verify_locations(ca)
    else:
        ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def server_tls_context(cert, key, ca=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    if ca:
        ctx.load_verify_locations(ca)
        ctx.verify_mode = ssl.CERT_OPTIONAL  # client certificates are looked at
    return ctx


def _classify(code, text, what):
    msg = "%s: %d %s" % (what, code, text.decode("utf-8", "replace")
                         if isinstance(text, bytes) else text)
    if 500 <= code < 600:
        raise PermanentError(msg)
    raise TransientError(msg)


def smtp_try(name, ip, port, mail_from, rcpts, data, source=None, helo="localhost",
             tls=None, timeout=15.0):
    """One SMTP transaction.  tls: None (plain) or {"mode": "opportunistic" |
    "required", "context": SSLContext, "verify_name": name or None}.
    Returns {"host","ip","response","tls","refused"}."""
    import smtplib
    try:
        s = smtplib.SMTP(timeout=timeout, local_hostname=helo,
                         source_address=(source, 0) if source else None)
    except OSError as e:
        raise TransientError("%s[%s]: %s" % (name, ip, e))
    try:
        try:
            code, banner = s.connect(ip, port)
        except (OSError, smtplib.SMTPException) as e:
            raise TransientError("connect: %s" % e)
        if code != 220:
            _classify(code, banner, "banner")
        code, text = s.ehlo()
        if code != 250:
            code, text = s.helo()
            if code != 250:
                _classify(code, text, "HELO")
        tls_info = None
        if tls and tls.get("mode") in ("opportunistic", "required"):
            if s.has_extn("starttls"):
                s._host = name.strip("[]")  # smtplib's SNI name (connect() leaves it empty)
                code, text = s.starttls(context=tls["context"])
                if code != 220:
                    _classify(code, text, "STARTTLS")
                peer = s.sock.getpeercert()
                names = cert_names(peer)
                want = tls.get("verify_name")
                if want and not any(name_matches(n, want) for n in names):
                    raise TransientError("TLS: certificate of %s[%s] is for %s, not %s" % (
                        name, ip, ", ".join(names) or "no name", want))
                tls_info = {"version": s.sock.version(), "cipher": s.sock.cipher()[0],
                            "peer_names": names}
                code, text = s.ehlo()
            elif tls["mode"] == "required":
                raise TransientError("TLS required but %s[%s] does not offer STARTTLS"
                                     % (name, ip))
        code, text = s.mail(mail_from)
        if code != 250:
            _classify(code, text, "MAIL FROM")
        accepted, refused = [], {}
        for r in rcpts:
            code, text = s.rcpt(r)
            if code in (250, 251):
                accepted.append(r)
            else:
                refused[r] = (code, text.decode("utf-8", "replace"))
        if not accepted:
            s.rset()
            code, text = sorted(refused.values())[-1]
            _classify(code, text, "RCPT TO")
        code, text = s.data(data)
        if code != 250:
            _classify(code, text, "DATA")
        try:
            s.quit()
        except (OSError, smtplib.SMTPException):
            pass
        return {"host": name, "ip": ip, "response": "%d %s" % (
            code, text.decode("utf-8", "replace")), "tls": tls_info, "refused": refused}
    except (OSError, ValueError, smtplib.SMTPException) as e:
        raise TransientError("%s[%s]: %s: %s" % (name, ip, type(e).__name__, e))
    finally:
        try:
            s.close()
        except OSError:
            pass


def smtp_send(dests, port, mail_from, rcpts, data, **kw):
    """dests: [(name, ip)] tried in order until one takes the message; a 5xx
    ends the attempt (PermanentError), anything else tries the next."""
    problems = []
    for name, ip in dests:
        try:
            return smtp_try(name, ip, port, mail_from, rcpts, data, **kw)
        except TransientError as e:
            problems.append("%s[%s]: %s" % (name, ip, e))
    raise TransientError("; ".join(problems) or "no destination to try")


SPF_QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}


def spf_check(resolver, domain, ip, depth=0):
    """SPF (RFC 7208) of MAIL FROM domain for address ip, for the front
    door's Enhanced Filtering model: the domain's one "v=spf1" TXT record,
    mechanisms ip4, ip6, a, include and all, each with its qualifier.
    Returns (result, reason): pass, fail, softfail, neutral, none (no
    record), temperror (no answer), permerror (anything else: two records,
    an unknown mechanism, more than 10 includes)."""
    if depth > 10:
        return "permerror", "more than 10 includes"
    try:
        records = [v for v, _ in resolver.lookup(domain, T_TXT)
                   if v.lower() == "v=spf1" or v.lower().startswith("v=spf1 ")]
    except NxDomain:
        return "none", "%s does not exist" % domain
    except DnsError as e:
        return "temperror", str(e)
    if not records:
        return "none", "%s has no SPF record" % domain
    if len(records) > 1:
        return "permerror", "%s has %d SPF records" % (domain, len(records))
    addr = ipaddress.ip_address(ip)
    for term in records[0].split()[1:]:
        qual = SPF_QUALIFIERS.get(term[0])
        mech = term[1:] if qual else term
        qual = qual or "pass"
        name, _, arg = mech.partition(":")
        name = name.lower()
        if name in ("ip4", "ip6"):
            try:
                hit = addr in ipaddress.ip_network(arg, strict=False)
            except ValueError:
                return "permerror", "bad %s" % term
        elif name == "a":
            try:
                hit = str(addr) in resolver.addresses(arg or domain)
            except DnsError:
                hit = False
        elif name == "include":
            res, _ = spf_check(resolver, arg, ip, depth + 1)
            if res in ("temperror", "permerror"):
                return res, "include:%s: %s" % (arg, res)
            hit = res == "pass"
        elif name == "all":
            hit = True
        else:
            return "permerror", "unsupported term %s" % term
        if hit:
            return qual, "%s matched %s" % (ip, term)
    return "neutral", "no term matched %s" % ip


def mx_destinations(resolver, domain):
    """[(host, ip)] for a domain: MX in order, each host's addresses."""
    out, problems = [], []
    for _pref, host in resolver.mx(domain):
        try:
            out += [(host, ip) for ip in resolver.addresses(host)]
        except NxDomain as e:
            problems.append(str(e))
        except DnsError as e:
            problems.append(str(e))
    if not out:
        raise TransientError("no address for any MX of %s (%s)" % (domain, "; ".join(problems)))
    return out


# --------------------------------------------------------------------------
# A delivery queue with retries (store and forward)

class Job:
    def __init__(self, run, on_done=None, on_deferred=None, on_failed=None, label=""):
        self.run = run
        self.on_done = on_done or (lambda result: None)
        self.on_deferred = on_deferred or (lambda error: None)
        self.on_failed = on_failed or (lambda error: None)
        self.label = label
        self.created = time.monotonic()
        self.attempts = 0


class Outbox:
    def __init__(self, workers=4, retry_for=300.0, log=None):
        self.cv = threading.Condition()
        self.heap = []
        self.seq = itertools.count()
        self.active = 0
        self.retry_for = retry_for
        self.log = log or (lambda m: None)
        self.counts = {"delivered": 0, "bounced": 0, "deferrals": 0}
        for i in range(workers):
            threading.Thread(target=self._worker, daemon=True, name="outbox-%d" % i).start()

    def submit(self, job, delay=0.0):
        with self.cv:
            heapq.heappush(self.heap, (time.monotonic() + delay, next(self.seq), job))
            self.cv.notify()

    def pending(self):
        with self.cv:
            return len(self.heap) + self.active

    def _worker(self):
        while True:
            with self.cv:
                while True:
                    now = time.monotonic()
                    if self.heap and self.heap[0][0] <= now:
                        _, _, job = heapq.heappop(self.heap)
                        self.active += 1
                        break
                    self.cv.wait(min(1.0, self.heap[0][0] - now) if self.heap else 1.0)
            try:
                self._attempt(job)
            finally:
                with self.cv:
                    self.active -= 1

    def _attempt(self, job):
        job.attempts += 1
        try:
            result = job.run()
        except PermanentError as e:
            self.count("bounced")
            self.log("%s: bounced: %s" % (job.label, e))
            job.on_failed(str(e))
            return
        except Exception as e:  # TransientError, DnsError, anything unexpected
            err = "%s" % e if isinstance(e, (TransientError, DnsError)) else \
                "%s: %s" % (type(e).__name__, e)
            if time.monotonic() - job.created >= self.retry_for:
                self.count("bounced")
                self.log("%s: given up after %d attempts: %s" % (job.label, job.attempts, err))
                job.on_failed("retry time expired: " + err)
                return
            self.count("deferrals")
            self.log("%s: deferred (attempt %d): %s" % (job.label, job.attempts, err))
            job.on_deferred(err)
            self.submit(job, min(5.0, 0.25 * 2 ** min(job.attempts, 5)))
            return
        self.count("delivered")
        job.on_done(result)

    def count(self, key):
        with self.cv:
            self.counts[key] += 1

    def stats(self):
        with self.cv:
            out = dict(self.counts)
            out["pending"] = len(self.heap) + self.active
        return out


# --------------------------------------------------------------------------
# SMTP servers: one asyncio loop in a thread, any number of listeners

class SmtpServers:
    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.servers = []
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                       name="smtp-loop")
        self.thread.start()

    def add(self, addr, port, handler, hostname, tls_context=None, ident=None):
        from aiosmtpd.smtp import SMTP

        def factory():
            return SMTP(handler, hostname=hostname, ident=ident, tls_context=tls_context,
                        require_starttls=False, data_size_limit=36700160,
                        enable_SMTPUTF8=True, timeout=120, loop=self.loop)

        fut = asyncio.run_coroutine_threadsafe(
            self.loop.create_server(factory, host=addr, port=port, reuse_address=True),
            self.loop)
        self.servers.append(fut.result(15))

    def close(self):
        async def _close():
            for s in self.servers:
                s.close()
        try:
            asyncio.run_coroutine_threadsafe(_close(), self.loop).result(5)
        except Exception:
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)


def session_tls(session):
    """(used TLS?, peer certificate names) of an aiosmtpd session."""
    extra = getattr(session, "ssl", None)
    if not extra:
        return False, []
    return True, cert_names(extra.get("peercert"))


def guarded(fn, log):
    """fn, answering 451 (the client keeps the message and retries) when it
    fails unexpectedly: a bug must not lose mail silently."""
    def run(*a):
        try:
            return fn(*a)
        except Exception as e:  # noqa: BLE001
            log("internal error: %s: %s" % (type(e).__name__, e))
            return "451 4.3.0 internal error, try again later (%s)" % type(e).__name__
    return run


def parse_headers(raw):
    return email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)


def header_block(pairs):
    return b"".join(("%s: %s\r\n" % (k, v)).encode("utf-8") for k, v in pairs)


def received_header(helo, peer_ip, by, tls, ident):
    return ("Received", "from %s ([%s]) by %s with %s id %s; %s" % (
        helo or "unknown", peer_ip, by, "ESMTPS" if tls else "ESMTP", ident,
        email.utils.formatdate(localtime=False)))


# --------------------------------------------------------------------------
# certificates (signed by the emulator's test CA, which plays the public CA)

def issue_cert(ca_dir, cert_path, key_path, cn, dns_names=(), ips=()):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_key = serialization.load_pem_private_key(
        open(os.path.join(ca_dir, "ca.key"), "rb").read(), None)
    ca = x509.load_pem_x509_certificate(open(os.path.join(ca_dir, "ca.pem"), "rb").read())
    now = datetime.datetime.now(datetime.timezone.utc)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    san = [x509.DNSName(n) for n in dns_names] + \
        [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
         .issuer_name(ca.subject).public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(days=1))
         .not_valid_after(now + datetime.timedelta(days=825))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.KeyUsage(True, False, True, False, False, False, False,
                                      False, False), critical=True)
         .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                               ExtendedKeyUsageOID.CLIENT_AUTH]),
                        critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
             ca_key.public_key()), critical=False))
    if san:
        b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
    cert = b.sign(ca_key, hashes.SHA256())
    write_atomic(key_path, key.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()).decode(), 0o600)
    write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM).decode())


# --------------------------------------------------------------------------
# the service

class ControlServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class ServiceControl(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        svc = self.server.svc
        path, _, query = self.path.partition("?")
        q = urllib.parse.parse_qs(query)
        if path in ("/health", "/"):
            return self.reply(200, {"ok": True, "pid": os.getpid()})
        if path == "/config":
            return self.reply(200, svc.config())
        if path == "/scans":
            with svc.lock:
                scans = list(svc.scans)
            if q.get("message_id"):
                want = q["message_id"][-1].strip("<>")
                scans = [s for s in scans if (s["message_id"] or "").strip("<>") == want]
            return self.reply(200, scans)
        if path == "/queue":
            return self.reply(200, svc.outbox.stats())
        if path == "/internet":
            with svc.lock:
                return self.reply(200, list(svc.internet))
        self.reply(404, {"error": "no endpoint GET %s" % path})

    def do_POST(self):
        svc = self.server.svc
        n = int(self.headers.get("Content-Length") or 0)
        try:
            data = json.loads(self.rfile.read(n) or b"{}")
            if self.path != "/config":
                return self.reply(404, {"error": "no endpoint POST %s" % self.path})
            return self.reply(200, svc.configure(data))
        except (ValueError, TypeError) as e:
            return self.reply(400, {"error": str(e)})


class InternetHandler:
    """aiosmtpd hooks of the internet's mail server (--internet-mx)."""

    def __init__(self, svc, listener):
        self.svc = svc
        self.listener = listener

    async def handle_DATA(self, server, session, envelope):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, guarded(self.svc.store_internet, self.svc.log),
                                          self.listener, session, envelope.mail_from,
                                          list(envelope.rcpt_tos),
                                          envelope.original_content or b"")


class ServiceHandler:
    """aiosmtpd hooks of one listener of the service."""

    def __init__(self, svc, listener):
        self.svc = svc
        self.listener = listener

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.svc.tempfailing(self.listener):
            return "451 4.3.2 %s: service temporarily unavailable" % self.listener["name"]
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Sender OK"

    async def handle_DATA(self, server, session, envelope):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, guarded(self.svc.receive, self.svc.log),
                                          self.listener, session, envelope.mail_from,
                                          list(envelope.rcpt_tos),
                                          envelope.original_content or b"")


class Service:
    def __init__(self, args):
        self.dir = os.path.abspath(args.dir)
        os.makedirs(self.dir, exist_ok=True)
        self.port = args.port
        self.resolver = Resolver(parse_servers(args.dns))
        self.loop_header = args.loop_header
        self.destination = args.destination
        self.lock = threading.Lock()
        self.scans = []
        self.settings = {"gateway_loop_header": True, "mailflow_loop_header": True,
                         "gateway_certificate": True,
                         "gateway_source": None, "mailflow_source": None, "tempfail": []}
        self.verbose = args.verbose
        self.scan_log = open(os.path.join(self.dir, "scans.jsonl"), "a")
        self.outbox = Outbox(workers=4, retry_for=args.retry_for, log=self.log)

        def named(spec, path):
            name, _, addr = spec.partition("=")
            name = name.strip().lower().rstrip(".")
            if not addr:
                addrs = self.resolver.addresses(name)
                if not addrs:
                    raise SystemExit("mailsim: %s has no A record in the sandbox DNS" % name)
                addr = addrs[0]
            return {"name": name, "address": addr, "path": path}

        self.listeners = [named(g, "gateway") for g in args.gateway] + \
            [named(s, "mailflow") for s in args.smart_host] + \
            [named(o, "outbound") for o in args.outbound_host]
        # The internet's mail server: where outgoing mail ends (its MX).
        self.internet_mx = [named(x, "internet") for x in args.internet_mx]
        self.internet = []
        self.internet_log = open(os.path.join(self.dir, "internet.jsonl"), "a")
        self.return_host = named(args.return_host, "return")
        ca = os.path.join(args.ca_dir, "ca.pem")
        self.ca = ca
        cert, key = os.path.join(self.dir, "service.pem"), os.path.join(self.dir, "service.key")
        issue_cert(args.ca_dir, cert, key, self.return_host["name"],
                   [self.return_host["name"]] + [l["name"] for l in self.listeners])
        self.server_tls = server_tls_context(cert, key, ca)
        self.gateway_tls = client_tls_context(ca)  # a gateway presenting no certificate
        self.return_tls = client_tls_context(ca, cert, key)

    def log(self, msg):
        if self.verbose:
            sys.stderr.write("%s mailsim: %s\n" % (time.strftime("%H:%M:%S"), msg))
            sys.stderr.flush()

    def config(self):
        with self.lock:
            return json.loads(json.dumps(self.settings))

    def configure(self, data):
        if not isinstance(data, dict):
            raise ValueError("the body must be a JSON object")
        new = {}
        for k, v in data.items():
            if k in ("gateway_loop_header", "mailflow_loop_header", "gateway_certificate"):
                if not isinstance(v, bool):
                    raise ValueError("%s must be a boolean" % k)
                new[k] = v
            elif k in ("gateway_source", "mailflow_source"):
                if v is not None:
                    try:
                        if not ipaddress.ip_address(v).is_loopback:
                            raise ValueError
                    except (TypeError, ValueError):
                        raise ValueError("%s must be a loopback address or null" % k)
                new[k] = v
            elif k == "tempfail":
                if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                    raise ValueError("tempfail must be a list of listener names or addresses")
                new[k] = [x.lower() for x in v]
            else:
                raise ValueError("unknown setting '%s'" % k)
        with self.lock:
            self.settings.update(new)
        return self.config()

    def tempfailing(self, listener):
        with self.lock:
            tf = self.settings["tempfail"]
        return listener["name"] in tf or listener["address"] in tf

    def start(self):
        self.smtp = SmtpServers()
        for l in self.listeners:
            self.smtp.add(l["address"], self.port, ServiceHandler(self, l), l["name"],
                          self.server_tls, ident="mailsim ESMTP (sandbox security service)")
        for l in self.internet_mx:
            self.smtp.add(l["address"], self.port, InternetHandler(self, l), l["name"],
                          self.server_tls, ident="mailsim ESMTP (the internet's mail server)")
        self.control = ControlServer(("127.0.0.1", 0), ServiceControl)
        self.control.svc = self
        threading.Thread(target=self.control.serve_forever, daemon=True).start()

    def receive(self, listener, session, mail_from, rcpts, raw):
        """Scan (stamp, log) and queue for delivery to the tenant."""
        try:
            msg = parse_headers(raw)
        except Exception as e:  # a message we cannot parse is refused, not lost
            return "554 5.6.0 cannot parse the message: %s" % e
        if len(msg.get_all("Received") or []) >= MAX_HOPS:
            return "554 5.4.14 Hop count exceeded - possible mail loop"
        path = listener["path"]
        scan_id = str(uuid.uuid4())
        t = time.time()
        tls, _names = session_tls(session)
        with self.lock:
            stamp = self.settings.get("%s_loop_header" % path, True)
        added = [received_header(session.host_name, session.peer[0], listener["name"], tls,
                                 scan_id),
                 (SCAN_HEADER, "id=%s; path=%s; host=%s; at=%s" % (
                     scan_id, path, listener["name"], now_iso(t)))]
        if stamp:
            added.append((self.loop_header, scan_id))
        message_id = (msg.get("Message-ID") or "").strip()
        rec = {"scan_id": scan_id, "message_id": message_id, "path": path,
               "host": listener["name"], "address": listener["address"],
               "peer": session.peer[0], "from": mail_from, "to": rcpts, "t": t,
               "at": now_iso(t), "loop_header": stamp}
        with self.lock:
            self.scan_log.write(json.dumps(rec) + "\n")
            self.scan_log.flush()
            self.scans.append(rec)
            if len(self.scans) > MAX_RECORDS:
                del self.scans[:len(self.scans) - MAX_RECORDS]
        data = header_block(added) + raw
        by_domain = {}
        for r in rcpts:
            by_domain.setdefault(domain_of(r), []).append(r)
        for dom, rs in by_domain.items():
            self.outbox.submit(Job(self._forwarder(listener, dom, mail_from, rs, data),
                                   label="%s %s -> %s" % (scan_id[:8], message_id, ",".join(rs)),
                                   on_done=lambda r, m=message_id: self.log(
                                       "%s delivered to %s[%s]: %s" % (
                                           m, r["host"], r["ip"], r["response"]))))
        self.log("%s via %s (%s): scanned %s" % (message_id, listener["name"], path, scan_id))
        return "250 2.0.0 Ok: queued as %s" % scan_id

    def store_internet(self, listener, session, mail_from, rcpts, raw):
        """A message reaching the internet (a recipient outside the tenant):
        kept with who handed it over (the peer) and how often the service
        scanned it (its scan headers)."""
        try:
            msg = parse_headers(raw)
        except Exception as e:
            return "554 5.6.0 cannot parse the message: %s" % e
        t = time.time()
        scans = [v for k, v in msg.items() if k.lower() == SCAN_HEADER.lower()]
        rec = {"message_id": (msg.get("Message-ID") or "").strip(), "from": mail_from,
               "to": rcpts, "peer": session.peer[0], "helo": session.host_name,
               "scans": scans, "t": t, "at": now_iso(t)}
        with self.lock:
            self.internet_log.write(json.dumps(rec) + "\n")
            self.internet_log.flush()
            self.internet.append(rec)
            if len(self.internet) > MAX_RECORDS:
                del self.internet[:len(self.internet) - MAX_RECORDS]
        return "250 2.0.0 Ok: delivered"

    def _forwarder(self, listener, domain, mail_from, rcpts, data):
        def run():
            if listener["path"] == "outbound":
                # The tenant's outgoing mail: on to the recipient's MX.
                dests = mx_destinations(self.resolver, domain)
                return smtp_send(dests, self.port, mail_from, rcpts, data,
                                 source=listener["address"], helo=listener["name"],
                                 tls={"mode": "opportunistic", "context": self.gateway_tls})
            host = self.destination.format(domain=domain, domain_dashes=dashes(domain))
            try:
                ips = self.resolver.addresses(host)
            except NxDomain as e:
                raise PermanentError("destination %s: %s" % (host, e))
            if not ips:
                raise TransientError("destination %s has no address" % host)
            with self.lock:
                settings = dict(self.settings)
            if listener["path"] == "gateway":
                source, helo = listener["address"], listener["name"]
                ctx = self.return_tls if settings["gateway_certificate"] else self.gateway_tls
            else:
                source, helo = self.return_host["address"], self.return_host["name"]
                ctx = self.return_tls
            source = settings["%s_source" % listener["path"]] or source
            return smtp_send([(host, ip) for ip in ips], self.port, mail_from, rcpts, data,
                             source=source, helo=helo,
                             tls={"mode": "required", "context": ctx, "verify_name": host})
        return run


def cmd_service(args):
    svc = Service(args)
    svc.start()
    info = {"pid": os.getpid(), "smtp_port": svc.port,
            "control_url": "http://127.0.0.1:%d" % svc.control.server_address[1],
            "scan_log": os.path.join(svc.dir, "scans.jsonl"),
            "listeners": svc.listeners, "return_host": svc.return_host,
            "loop_header": svc.loop_header, "destination": svc.destination}
    jpath = os.path.join(svc.dir, "mailsim.json")
    write_atomic(jpath, json.dumps(info, indent=1) + "\n")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    while not stop.wait(0.5):
        if args.owner_pid and not pid_alive(args.owner_pid):
            break
    svc.smtp.close()
    svc.control.shutdown()
    try:
        with open(jpath) as f:
            if json.load(f).get("pid") == os.getpid():
                os.unlink(jpath)
    except (OSError, ValueError):
        pass
    return 0


# --------------------------------------------------------------------------
# the internet sender

def sandbox_info(directory):
    with open(os.path.join(directory, "sandbox.json")) as f:
        return json.load(f)


class Sender:
    def __init__(self, args):
        self.args = args
        self.resolver = Resolver(parse_servers(args.dns), cache=args.cache_mx)
        self.port = args.smtp_port
        self.out = open(args.log, "a") if args.log else sys.stdout
        self.lock = threading.Lock()
        self.retry = []
        self.counts = {"accepted": 0, "failed": 0}
        self.run_id = uuid.uuid4().hex[:8]
        extra = []
        for h in args.header:
            k, sep, v = h.partition(":")
            if not sep or not k.strip():
                raise ValueError("--header wants 'Name: value', got '%s'" % h)
            extra.append((k.strip(), v.strip()))
        self.extra = extra

    def message(self, seq, rcpt):
        mid = "<%s.%d@%s>" % (uuid.uuid4(), seq, domain_of(self.args.sender) or "internet.test")
        subject = "%s %d (run %s)" % (self.args.subject, seq, self.run_id)
        headers = [("From", self.args.sender), ("To", rcpt), ("Subject", subject),
                   ("Date", email.utils.formatdate(localtime=False)), ("Message-ID", mid),
                   ("X-Mailsim-Seq", str(seq)), ("MIME-Version", "1.0"),
                   ("Content-Type", "text/plain; charset=us-ascii")] + self.extra
        body = ("Test message %d of mailsim run %s to %s.\r\n" % (seq, self.run_id, rcpt)).encode()
        return mid, subject, header_block(headers) + b"\r\n" + body

    def attempt(self, entry):
        entry["attempts"] += 1
        try:
            if self.args.via:  # a sender that skips the MX (or a hop in front of the service)
                dests = [(self.args.via, ip) for ip in self.resolver.addresses(self.args.via)]
                if not dests:
                    raise TransientError("--via %s has no address" % self.args.via)
            else:
                dests = mx_destinations(self.resolver, domain_of(entry["to"]))
            res = smtp_send(dests, self.port, self.args.sender, [entry["to"]], entry["_data"],
                            source=self.args.source_address, helo=self.args.helo)
        except (PermanentError, NxDomain) as e:
            entry["error"] = str(e)
            return "failed"
        except (TransientError, DnsError, OSError) as e:
            entry["error"] = str(e)
            return "retry"
        entry.update({"result": "accepted", "accepted_at": time.time(), "mx": res["host"],
                      "ip": res["ip"], "response": res["response"], "error": None})
        return "accepted"

    def finish(self, entry, result):
        entry["result"] = result
        rec = {k: v for k, v in entry.items() if not k.startswith("_")}
        with self.lock:
            self.counts[result] += 1
            self.out.write(json.dumps(rec) + "\n")
            self.out.flush()

    def retry_loop(self, stop):
        while True:
            with self.lock:
                due = [e for e in self.retry if e["_next"] <= time.monotonic()]
                empty = not self.retry
            if empty and stop.is_set():
                return
            for e in due:
                r = self.attempt(e)
                if r == "retry" and time.monotonic() - e["_start"] < self.args.retry_for:
                    e["_next"] = time.monotonic() + 1.0
                    continue
                with self.lock:
                    self.retry.remove(e)
                self.finish(e, "accepted" if r == "accepted" else "failed")
            time.sleep(0.1)

    def run(self):
        a = self.args
        lo, _, hi = a.interval_ms.partition("-")
        lo, hi = float(lo), float(hi or lo)
        stop = threading.Event()
        rt = threading.Thread(target=self.retry_loop, args=(stop,), daemon=True)
        rt.start()
        seq = 0
        try:
            while True:
                if a.count and seq >= a.count:
                    break
                if a.until_file and os.path.exists(a.until_file):
                    break
                if a.owner_pid and not pid_alive(a.owner_pid):
                    break
                started = time.monotonic()
                rcpt = a.to[seq % len(a.to)]
                seq += 1
                mid, subject, data = self.message(seq, rcpt)
                entry = {"seq": seq, "message_id": mid, "from": a.sender, "to": rcpt,
                         "subject": subject, "t": time.time(), "accepted_at": None,
                         "result": None, "mx": None, "ip": None, "attempts": 0,
                         "response": None, "error": None, "_data": data,
                         "_start": time.monotonic()}
                r = self.attempt(entry)
                if r == "retry":
                    entry["_next"] = time.monotonic() + 1.0
                    with self.lock:
                        self.retry.append(entry)
                else:
                    self.finish(entry, r)
                if a.count and seq >= a.count:
                    break
                pause = random.uniform(lo, hi) / 1000.0 - (time.monotonic() - started)
                if pause > 0:
                    time.sleep(pause)
        except KeyboardInterrupt:
            pass
        stop.set()
        rt.join()
        sys.stderr.write("mailsim send: %d sent, %d accepted, %d failed\n" % (
            seq, self.counts["accepted"], self.counts["failed"]))
        return 0 if self.counts["failed"] == 0 else 3


def cmd_send(args):
    if args.sandbox:
        info = sandbox_info(args.sandbox)
        if not args.dns:
            args.dns = "127.0.0.11:%d,127.0.0.12:%d" % (info["dns_port"], info["dns_port"])
        if not args.smtp_port:
            args.smtp_port = int(info["smtp_port"])
    if not args.dns or not args.smtp_port:
        raise ValueError("give --dns and --smtp-port (or --sandbox DIR)")
    args.to = [t.strip() for spec in args.to for t in spec.split(",") if t.strip()]
    if not args.to:
        raise ValueError("--to is required")
    return Sender(args).run()


# --------------------------------------------------------------------------
# HTTPS helpers (emulator control API and admin API)

def https_json(url, ca, method="GET", body=None, headers=None, form=None, timeout=15):
    ctx = ssl.create_default_context(cafile=ca) if url.startswith("https:") else None
    data, hdrs = None, dict(headers or {})
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        hdrs["Content-Type"] = "application/x-www-form-urlencoded"
    elif body is not None:
        data = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    with urllib.request.urlopen(req, context=ctx, timeout=timeout) as r:
        return json.load(r)


# --------------------------------------------------------------------------
# the oracle

def read_jsonl(path):
    out = []
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        pass  # a line being written
    except FileNotFoundError:
        pass
    return out


def norm_mid(mid):
    return (mid or "").strip().strip("<>").lower()


def cmd_oracle(args):
    if not os.path.isfile(args.sent):
        raise ValueError("no sender log %s" % args.sent)
    sent = read_jsonl(args.sent)
    done_at = parse_time(args.switch_done_at) if args.switch_done_at else None
    base = args.emu.rstrip("/") + "/_emu/tenants/%s/messages" % urllib.parse.quote(args.tenant)
    want = {(norm_mid(s["message_id"]), s["to"].lower()) for s in sent
            if s.get("result") == "accepted"}

    def deliveries():
        got = {}
        for m in https_json(base, args.ca):
            key = (norm_mid(m.get("message_id")), (m.get("mailbox") or "").lower())
            got.setdefault(key, []).append(m)
        return got

    deadline = time.monotonic() + args.wait
    try:
        got = deliveries()
        while time.monotonic() < deadline and not all(k in got for k in want):
            time.sleep(0.3)
            got = deliveries()
        time.sleep(args.settle)
        got = deliveries()
    except (OSError, ValueError) as e:
        print("oracle: cannot read the mailboxes from %s: %s" % (base, e), file=sys.stderr)
        return 2
    scans = {}
    for s in read_jsonl(args.scans):
        scans.setdefault(norm_mid(s.get("message_id")), []).append(s)

    c = dict.fromkeys(("sent", "accepted", "not_accepted", "delivered", "exactly_once",
                       "duplicated", "lost", "scanned_once", "scanned_twice", "unscanned",
                       "after", "after_once", "after_twice", "after_unscanned"), 0)
    paths = {}
    bad = {"lost": [], "duplicated": [], "unscanned": [], "scanned twice after the switch": []}
    for s in sent:
        c["sent"] += 1
        key = (norm_mid(s["message_id"]), s["to"].lower())
        if s.get("result") == "accepted":
            c["accepted"] += 1
        else:
            c["not_accepted"] += 1
        n = len(got.get(key, []))
        if n:
            c["delivered"] += 1
        if n == 1:
            c["exactly_once"] += 1
        elif n > 1:
            c["duplicated"] += 1
            bad["duplicated"].append("%s to %s delivered %d times" % (s["message_id"], s["to"], n))
        else:
            c["lost"] += 1
            bad["lost"].append("%s to %s (%s)" % (
                s["message_id"], s["to"], "accepted by %s" % s.get("mx")
                if s.get("result") == "accepted" else "not accepted: %s" % s.get("error")))
        sc = scans.get(key[0], [])
        k = len(sc)
        pkey = "+".join(sorted(x["path"] for x in sc)) or "none"
        paths[pkey] = paths.get(pkey, 0) + 1
        if k == 0:
            c["unscanned"] += 1
            bad["unscanned"].append("%s to %s" % (s["message_id"], s["to"]))
        elif k == 1:
            c["scanned_once"] += 1
        else:
            c["scanned_twice"] += 1
        if done_at is not None and s["t"] >= done_at:
            c["after"] += 1
            if k == 1:
                c["after_once"] += 1
            elif k == 0:
                c["after_unscanned"] += 1
            else:
                c["after_twice"] += 1
                bad["scanned twice after the switch"].append("%s to %s (%s)" % (
                    s["message_id"], s["to"], pkey))
    failed = [k for k, v in bad.items() if v]
    if c["sent"] == 0:
        failed.append("nothing sent")
    lines = [
        "sent %d, delivered %d, scanned once %d, scanned twice %d, unscanned %d" % (
            c["sent"], c["delivered"], c["scanned_once"], c["scanned_twice"], c["unscanned"]),
        "delivered exactly once %d, duplicated %d, lost %d (not accepted by any MX %d)" % (
            c["exactly_once"], c["duplicated"], c["lost"], c["not_accepted"]),
    ]
    if done_at is not None:
        lines.append("after switch (sent at/after %s): %d sent, %d scanned exactly once, "
                     "%d violations (%d unscanned, %d scanned twice)" % (
                         now_iso(done_at), c["after"], c["after_once"],
                         c["after"] - c["after_once"], c["after_unscanned"], c["after_twice"]))
    lines.append("paths: " + ", ".join("%s %d" % (k, v) for k, v in sorted(paths.items())))
    for kind in failed:
        items = bad.get(kind, [])
        if kind == "nothing sent":
            lines.append("VIOLATION nothing sent: the sender log %s is empty" % args.sent)
            continue
        lines.append("VIOLATION %s: %d message(s), e.g. %s" % (kind, len(items),
                                                              "; ".join(items[:3])))
    lines.append("oracle: PASS" if not failed else "oracle: FAIL (%s)" % ", ".join(failed))
    print("\n".join(lines))
    if args.json:
        c["paths"] = paths
        c["violations"] = failed
        c["pass"] = not failed
        write_atomic(args.json, json.dumps(c, indent=1) + "\n")
    return 0 if not failed else 1


# --------------------------------------------------------------------------
# message trace through the admin API (what a quick test does)

class AdminApi:
    def __init__(self, sandbox_dir):
        info = sandbox_info(sandbox_dir)
        self.base = info["emulator_url"]
        self.ca = info["emulator_ca"]
        self.tenant = info["tenant"]
        self.client_id = info["client_id"]
        with open(os.path.join(sandbox_dir, "client.secret")) as f:
            self.secret = f.read().strip()
        self.token = None

    def invoke(self, cmdlet, params):
        if not self.token:
            tok = https_json("%s/login/%s/oauth2/v2.0/token" % (self.base, self.tenant), self.ca,
                             method="POST", form={
                                 "client_id": self.client_id, "client_secret": self.secret,
                                 "grant_type": "client_credentials",
                                 "scope": "https://outlook.office365.com/.default"})
            self.token = tok["access_token"]
        url = "%s/adminapi/beta/%s/InvokeCommand" % (self.base, self.tenant)
        body = {"CmdletInput": {"CmdletName": cmdlet, "Parameters": params}}
        out = []
        while url:
            page = https_json(url, self.ca, method="POST", body=body,
                              headers={"Authorization": "Bearer " + self.token})
            out += page.get("value", [])
            url = page.get("@odata.nextLink")
        return out


def cmd_trace(args):
    api = AdminApi(args.sandbox)
    params = {}
    if args.message_id:
        params["MessageId"] = args.message_id
    if args.recipient:
        params["RecipientAddress"] = args.recipient
    try:
        rows = api.invoke("Get-MessageTraceV2", params)
        for r in rows:
            if args.detail:
                r["Detail"] = api.invoke("Get-MessageTraceDetailV2", {
                    "MessageTraceId": r["MessageTraceId"],
                    "RecipientAddress": r["RecipientAddress"]})
    except urllib.error.HTTPError as e:
        print("mailsim trace: %s: %s" % (e, e.read().decode("utf-8", "replace")),
              file=sys.stderr)
        return 2
    print(json.dumps(rows, indent=1))
    return 0


def cmd_invoke(args):
    api = AdminApi(args.sandbox)
    try:
        params = json.loads(args.parameters) if args.parameters else {}
        rows = api.invoke(args.cmdlet, params)
    except urllib.error.HTTPError as e:
        body = e.read().decode("utf-8", "replace")
        try:
            d = json.loads(body)["error"]
            body = (d.get("details") or [{}])[0].get("message") or d.get("message") or body
        except (ValueError, KeyError, TypeError, AttributeError, IndexError):
            pass
        print("%s: HTTP %d: %s" % (args.cmdlet, e.code, body), file=sys.stderr)
        return 1
    print(json.dumps(rows, indent=1))
    return 0


# --------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(prog="mailsim.py",
                                 description="the mail path of the mailmode sandbox")
    sub = ap.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("service", help="run the email-security service")
    s.add_argument("--dir", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--dns", required=True, help="ADDR:PORT[,ADDR:PORT]")
    s.add_argument("--ca-dir", required=True, help="directory with ca.pem and ca.key")
    s.add_argument("--gateway", action="append", default=[], help="NAME[=ADDR]")
    s.add_argument("--smart-host", action="append", default=[], help="NAME[=ADDR]")
    s.add_argument("--outbound-host", action="append", default=[], help="NAME[=ADDR]")
    s.add_argument("--internet-mx", action="append", default=[], help="NAME[=ADDR]")
    s.add_argument("--return-host", default="mf-return.sandbox.test", help="NAME[=ADDR]")
    s.add_argument("--loop-header", default=LOOP_HEADER)
    s.add_argument("--destination", default=DESTINATION)
    s.add_argument("--retry-for", type=float, default=300.0)
    s.add_argument("--owner-pid", type=int, default=0)
    s.add_argument("--verbose", action="store_true")

    s = sub.add_parser("send", help="send test messages like an internet mail server")
    s.add_argument("--sandbox", help="take --dns and --smtp-port from DIR/sandbox.json")
    s.add_argument("--dns", help="ADDR:PORT[,ADDR:PORT]")
    s.add_argument("--smtp-port", type=int, default=0)
    s.add_argument("--to", action="append", default=[], help="ADDR[,ADDR...]")
    s.add_argument("--count", type=int, default=0)
    s.add_argument("--interval-ms", default="100-200")
    s.add_argument("--until-file")
    s.add_argument("--log")
    s.add_argument("--cache-mx", action="store_true",
                   help="cache DNS answers for their TTL (default: resolve per message)")
    s.add_argument("--from", dest="sender", default="sender@internet.test")
    s.add_argument("--subject", default="mailsim")
    s.add_argument("--header", action="append", default=[])
    s.add_argument("--source-address", default="127.0.0.41")
    s.add_argument("--helo", default="mta.internet.test")
    s.add_argument("--via", help="deliver to this host (its A records) instead of the MX")
    s.add_argument("--retry-for", type=float, default=30.0)
    s.add_argument("--owner-pid", type=int, default=0, help="stop when this process is gone")

    s = sub.add_parser("oracle", help="check that no message was lost or scanned twice")
    s.add_argument("--sent", required=True)
    s.add_argument("--emu", required=True)
    s.add_argument("--ca", required=True)
    s.add_argument("--tenant", required=True)
    s.add_argument("--scans", required=True)
    s.add_argument("--switch-done-at")
    s.add_argument("--wait", type=float, default=20.0)
    s.add_argument("--settle", type=float, default=1.0)
    s.add_argument("--json")

    s = sub.add_parser("trace", help="Get-MessageTraceV2 through the admin API")
    s.add_argument("--sandbox", required=True)
    s.add_argument("--message-id")
    s.add_argument("--recipient")
    s.add_argument("--detail", action="store_true")

    s = sub.add_parser("invoke", help="run a cmdlet through the admin API as the sandbox app")
    s.add_argument("--sandbox", required=True)
    s.add_argument("cmdlet")
    s.add_argument("parameters", nargs="?", help="JSON object")

    args = ap.parse_args(argv)
    try:
        return {"service": cmd_service, "send": cmd_send, "oracle": cmd_oracle,
                "trace": cmd_trace, "invoke": cmd_invoke}[args.cmd](args)
    except (ValueError, OSError) as e:
        print("mailsim %s: %s" % (args.cmd, e), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
