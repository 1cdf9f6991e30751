#!/usr/bin/python3
"""Google Cloud DNS v1 emulator (with its OAuth token endpoint) over HTTPS on
loopback, backed by real BIND zones (provemu.py).

    gcloudemu.py --dir DIR --spec SPEC.json --dns ADDR:PORT:KEY:SECRETFILE
                 [--owner-pid PID] [--propagation-delay S]

SPEC: {"project": "mm-test",
       "zones": [{"name": "gcloud-test", "dnsName": "gcloud.test.",
                  "visibility": "public",
                  "rrsets": [{"name": "gcloud.test.", "type": "MX", "ttl": 3600,
                              "rrdatas": ["10 mx1.gcloud.test."]}]}],
       "accounts": [{"name": "dns-admin", "roles": {"gcloud-test": "admin"}}]}
Each account gets a key file DIR/NAME.json (mode 0600: type service_account,
client_email NAME@PROJECT.iam.gserviceaccount.test, private_key, token_uri
= this emulator's /token); role "admin" is roles/dns.admin, "reader"
roles/dns.reader.

Token endpoint POST /token (jwt-bearer grant): the RS256 signature is
verified with the account's public key, aud must be the token_uri,
exp - iat at most 3600 s, iat within 5 minutes of now, the scope ndev.clouddns
or cloud-platform.  API (base /dns/v1), as in dns-providers.md D and E:
  GET  /projects/P/managedZones?dnsName=X.   (trailing dot required)
  GET  /projects/P/managedZones/Z
  GET  /projects/P/managedZones/Z/rrsets?name=&type=   (type needs name)
  POST /projects/P/managedZones/Z/changes    deletions exact (412/404),
                                             additions (409), atomic
  GET  /projects/P/managedZones/Z/changes/ID pending until BIND has it
  POST /projects/P/managedZones/Z:testIamPermissions
Control (besides provemu's): GET /_emu/zones/Z; POST /_emu/zones/Z/rrset
{rrset}: replaces that rrset as someone else would (propagated);
POST /_emu/tokens/expire: every access token issued so far expires (the
API answers it 401 authError, as Google answers a revoked token).
"""

import argparse
import base64
import json
import os
import secrets
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import provemu  # noqa: E402
from provemu import Reply  # noqa: E402

PREFIX = "/dns/v1"
SCOPES = ("https://www.googleapis.com/auth/ndev.clouddns.readwrite",
          "https://www.googleapis.com/auth/cloud-platform")
READ = {"dns.managedZones.get", "dns.managedZones.list", "dns.resourceRecordSets.list",
        "dns.changes.get", "dns.changes.list"}
ADMIN = READ | {"dns.changes.create", "dns.resourceRecordSets.create",
                "dns.resourceRecordSets.delete", "dns.resourceRecordSets.update"}
ROLES = {"admin": ADMIN, "reader": READ}
# The error of an injected fault by status: (reason, message, status).
FAULT_ERRORS = {
    400: ("invalid", "Invalid value for 'entity.change'", "INVALID_ARGUMENT"),
    403: ("forbidden", "Forbidden", "PERMISSION_DENIED"),
    404: ("notFound", "Not Found", "NOT_FOUND"),
    409: ("alreadyExists", "The resource already exists.", "ALREADY_EXISTS"),
    412: ("conditionNotMet", "Precondition not met for 'entity.change.deletions[0]'",
          "FAILED_PRECONDITION"),
    429: ("rateLimitExceeded", "Resource has been exhausted (e.g. check quota).",
          "RESOURCE_EXHAUSTED"),
    500: ("backendError", "Internal error", None)}


def b64d(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def gerror(code, reason, message, status=None):
    err = {"code": code, "message": message,
           "errors": [{"message": message, "domain": "global", "reason": reason}]}
    if status:
        err["status"] = status
    raise Reply(code, {"error": err})


def forbidden():
    gerror(403, "forbidden", "Forbidden")


class GcEmu(provemu.Emu):
    name = "gcloudemu"

    def __init__(self, args):
        super().__init__(args)
        with open(args.spec) as f:
            spec = json.load(f)
        self.project = spec["project"]
        self.zones = {}
        for z in spec.get("zones", []):
            self.zones[z["name"]] = {
                "name": z["name"], "dnsName": z["dnsName"], "id": str(len(self.zones) + 1000),
                "visibility": z.get("visibility", "public"), "kind": "dns#managedZone",
                "nameServers": ["ns1.%s" % z["dnsName"], "ns2.%s" % z["dnsName"]],
                "rrsets": {(r["name"], r["type"]): dict(r, kind="dns#resourceRecordSet")
                           for r in z.get("rrsets", [])},
                "changes": []}
        self.accounts = {}
        self.spec_accounts = spec.get("accounts", [])
        self.tokens = {}  # access token -> (email, expires)
        self.token_lifetime = spec.get("token_lifetime_s", 3600)

    def start(self):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        d = os.path.abspath(self.args.dir)
        for a in self.spec_accounts:
            email = "%s@%s.iam.gserviceaccount.test" % (a["name"], self.project)
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
            kid = secrets.token_hex(20)
            self.accounts[email] = {"public": key.public_key(), "roles": a.get("roles", {}),
                                    "kid": kid}
            keyfile = {"type": "service_account", "project_id": self.project,
                       "private_key_id": kid, "private_key": pem, "client_email": email,
                       "client_id": str(abs(hash(email)) % 10**21),
                       "auth_uri": "https://accounts.google.test/o/oauth2/auth",
                       "token_uri": self.base + "/token",
                       "auth_provider_x509_cert_url": self.base + "/certs",
                       "client_x509_cert_url": self.base + "/certs/" + email,
                       "universe_domain": "googleapis.com"}
            provemu.write_atomic(os.path.join(d, a["name"] + ".json"),
                                 json.dumps(keyfile, indent=2) + "\n", 0o600)
        if self.bind:
            for zone in self.zones.values():
                for (name, rtype) in list(zone["rrsets"]):
                    if rtype == "MX":
                        self.bind.push_now(zone["dnsName"].rstrip("."), name.rstrip("."),
                                           self.mx_of(zone, name))

    def mx_of(self, zone, name):
        r = zone["rrsets"].get((name, "MX"))
        if not r:
            return []
        return [(r["ttl"], int(d.split()[0]), d.split()[1]) for d in r["rrdatas"]]

    def propagate(self, zone, names, done=None):
        self.push_names(zone["dnsName"], names, lambda name: self.locked_mx(zone, name), done)

    def locked_mx(self, zone, name):
        with self.lock:
            return self.mx_of(zone, name)

    def fault_body(self, status):
        reason, message, state = FAULT_ERRORS.get(status, FAULT_ERRORS[500])
        err = {"code": status, "message": message,
               "errors": [{"message": message, "domain": "global", "reason": reason}]}
        if state:
            err["status"] = state
        return {"error": err}

    def after_reply_fault(self, fault, path):
        pass

    def own_control(self, method, path, body):
        parts = path.split("/")  # '', '_emu', 'zones', Z, ['rrset']
        if parts[2:] == ["tokens", "expire"] and method == "POST":
            with self.lock:
                for token, (email, _) in self.tokens.items():
                    self.tokens[token] = (email, time.time() - 1)
                return 200, {"expired": len(self.tokens)}
        if len(parts) >= 4 and parts[2] == "zones" and parts[3] in self.zones:
            zone = self.zones[parts[3]]
            with self.lock:
                if len(parts) == 5 and parts[4] == "rrset" and method == "POST":
                    key = (body["name"], body["type"])
                    if body.get("rrdatas"):
                        zone["rrsets"][key] = dict(body, kind="dns#resourceRecordSet")
                    else:
                        zone["rrsets"].pop(key, None)
                    self.propagate(zone, [body["name"]])
                    return 200, body
                return 200, {"rrsets": list(zone["rrsets"].values()),
                             "changes": zone["changes"]}
        return 404, {"error": "no such control endpoint"}

    # ---- OAuth
    def token_grant(self, raw):
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
        form = urllib.parse.parse_qs(raw.decode())
        if form.get("grant_type", [""])[0] != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            raise Reply(400, {"error": "unsupported_grant_type",
                              "error_description": "Invalid grant_type: "})
        try:
            h64, c64, s64 = form.get("assertion", [""])[0].split(".")
            header, claims = json.loads(b64d(h64)), json.loads(b64d(c64))
        except ValueError:
            raise Reply(400, {"error": "invalid_request",
                              "error_description": "Invalid JWT."})
        acct = self.accounts.get(claims.get("iss"))
        if acct is None:
            raise Reply(400, {"error": "invalid_grant",
                              "error_description": "Invalid grant: account not found"})
        try:
            if header.get("alg") != "RS256":
                raise InvalidSignature()
            acct["public"].verify(b64d(s64), (h64 + "." + c64).encode(),
                                  padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, ValueError):
            raise Reply(400, {"error": "invalid_grant",
                              "error_description": "Invalid JWT Signature."})
        now = time.time()
        iat, exp = claims.get("iat", 0), claims.get("exp", 0)
        if exp - iat > 3600 or abs(iat - now) > 300 or exp < now:
            raise Reply(400, {"error": "invalid_grant", "error_description":
                              "Invalid JWT: Token must be a short-lived token (60 minutes) and "
                              "in a reasonable timeframe. Check your iat and exp values in the "
                              "JWT claim."})
        if claims.get("aud") != self.base + "/token":
            raise Reply(400, {"error": "invalid_grant",
                              "error_description": "Invalid JWT: Failed audience check."})
        if not any(s in claims.get("scope", "").split() for s in SCOPES):
            raise Reply(400, {"error": "invalid_scope",
                              "error_description": "Invalid OAuth scope or ID token audience "
                                                   "provided."})
        token = "ya29.emu-" + secrets.token_urlsafe(32)
        self.tokens[token] = (claims["iss"], now + self.token_lifetime)
        return 200, {"access_token": token, "expires_in": self.token_lifetime,
                     "token_type": "Bearer"}, {}

    def caller(self, handler):
        auth = handler.headers.get("Authorization") or ""
        entry = self.tokens.get(auth[7:]) if auth.startswith("Bearer ") else None
        if not entry or entry[1] < time.time():
            gerror(401, "authError", "Request had invalid authentication credentials. Expected "
                   "OAuth 2 access token, login cookie or other valid authentication "
                   "credential.", "UNAUTHENTICATED")
        return self.accounts[entry[0]]

    def perms(self, acct, zone):
        return ROLES.get(acct["roles"].get(zone, ""), set())

    def need(self, acct, zone, perm):
        if perm not in self.perms(acct, zone):
            forbidden()

    # ---- API
    def api(self, handler, method, path, query, raw):
        if path == "/token" and method == "POST":
            return self.token_grant(raw)
        if not path.startswith(PREFIX + "/projects/"):
            gerror(404, "notFound", "Not Found")
        with self.lock:
            acct = self.caller(handler)
            rest = path[len(PREFIX + "/projects/"):].split("/")
            if rest[0] != self.project:
                forbidden()
            rest = rest[1:]
            if rest == ["managedZones"] and method == "GET":
                return self.list_zones(acct, query)
            if len(rest) >= 2 and rest[0] == "managedZones":
                zname, _, verb = rest[1].partition(":")
                zone = self.zones.get(zname)
                if verb == "testIamPermissions" and method == "POST" and len(rest) == 2:
                    return self.test_permissions(acct, zname, raw)
                if not self.perms(acct, zname):
                    forbidden()
                if zone is None:
                    gerror(404, "notFound", "The 'parameters.managedZone' resource named "
                           "'%s' does not exist." % zname)
                return self.zone_api(acct, zone, method, rest[2:], query, raw)
            gerror(404, "notFound", "Not Found")

    def zone_api(self, acct, zone, method, rest, query, raw):
        if rest == [] and method == "GET":
            self.need(acct, zone["name"], "dns.managedZones.get")
            return 200, self.zone_view(zone), {}
        if rest == ["rrsets"] and method == "GET":
            self.need(acct, zone["name"], "dns.resourceRecordSets.list")
            return self.list_rrsets(zone, query)
        if rest == ["changes"] and method == "POST":
            self.need(acct, zone["name"], "dns.changes.create")
            return self.create_change(acct, zone, raw)
        if len(rest) == 2 and rest[0] == "changes" and method == "GET":
            self.need(acct, zone["name"], "dns.changes.get")
            for c in zone["changes"]:
                if c["id"] == rest[1]:
                    return 200, c, {}
            gerror(404, "notFound", "The 'parameters.changeId' resource named '%s' does not "
                   "exist." % rest[1])
        gerror(404, "notFound", "Not Found")

    def zone_view(self, zone):
        return {k: zone[k] for k in ("kind", "name", "dnsName", "id", "visibility",
                                     "nameServers")}

    def paged(self, items, query, key, kind):
        size = int(query.get("maxResults", ["1000"])[0])
        if self.config.get("page_size"):
            size = min(size, int(self.config["page_size"]))
        start = int(query.get("pageToken", ["0"])[0] or 0)
        out = {"kind": kind, key: items[start:start + size]}
        if start + size < len(items):
            out["nextPageToken"] = str(start + size)
        return 200, out, {}

    def list_zones(self, acct, query):
        if not any(ROLES.get(r) for r in acct["roles"].values()):
            forbidden()
        dns_name = query.get("dnsName", [None])[0]
        if dns_name is not None and not dns_name.endswith("."):
            gerror(400, "invalid", "Invalid value for 'parameters.dnsName': '%s'" % dns_name)
        zones = [self.zone_view(z) for z in self.zones.values()
                 if dns_name is None or z["dnsName"] == dns_name]
        return self.paged(zones, query, "managedZones", "dns#managedZonesListResponse")

    def list_rrsets(self, zone, query):
        name, rtype = query.get("name", [None])[0], query.get("type", [None])[0]
        if rtype and not name:
            gerror(400, "required", "Required parameter: name")
        items = [r for (n, t), r in sorted(zone["rrsets"].items())
                 if (not name or n == name) and (not rtype or t == rtype)]
        return self.paged(items, query, "rrsets", "dns#resourceRecordSetsListResponse")

    def create_change(self, acct, zone, raw):
        try:
            body = json.loads(raw)
        except ValueError:
            gerror(400, "parseError", "Parse Error")
        dels, adds = body.get("deletions", []), body.get("additions", [])
        if not dels and not adds:
            gerror(400, "required", "The 'entity.change' parameter is required but was missing.")
        if len(adds) > 1000:
            gerror(403, "quotaExceeded", "The change would exceed quota for additions per change.")
        work = dict(zone["rrsets"])
        for i, d in enumerate(dels):
            key = (d.get("name"), d.get("type"))
            cur = work.get(key)
            if cur is None:
                gerror(404, "notFound", "The 'entity.change.deletions[%d]' resource named '%s "
                       "(%s)' does not exist." % (i, key[0], key[1]))
            if cur["ttl"] != d.get("ttl") or sorted(cur["rrdatas"]) != sorted(d.get("rrdatas", [])):
                gerror(412, "conditionNotMet", "Precondition not met for "
                       "'entity.change.deletions[%d]'" % i)
            del work[key]
        for i, a in enumerate(adds):
            key = (a.get("name"), a.get("type"))
            if key in work:
                gerror(409, "alreadyExists", "The 'entity.change.additions[%d]' resource named "
                       "'%s (%s)' already exists." % (i, key[0], key[1]))
            if not a.get("name", "").endswith(zone["dnsName"]) or not a.get("rrdatas"):
                gerror(400, "invalid", "Invalid value for 'entity.change.additions[%d]'" % i)
            work[key] = {"kind": "dns#resourceRecordSet", "name": key[0], "type": key[1],
                         "ttl": int(a.get("ttl", 300)), "rrdatas": list(a["rrdatas"])}
        zone["rrsets"] = work
        change = {"kind": "dns#change", "id": str(len(zone["changes"]) + 1),
                  "startTime": provemu.rfc3339(), "status": "pending",
                  "additions": adds, "deletions": dels}
        zone["changes"].append(change)
        names = sorted({r["name"] for r in dels + adds})

        def done():
            change["status"] = "done"
        self.propagate(zone, names, done)
        return 200, change, {}

    def test_permissions(self, acct, zname, raw):
        try:
            asked = json.loads(raw).get("permissions", [])
        except ValueError:
            gerror(400, "parseError", "Parse Error")
        have = self.perms(acct, zname)
        return 200, {"permissions": [p for p in asked if p in have]}, {}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    provemu.common_args(ap)
    args = ap.parse_args()
    emu = GcEmu(args)
    return provemu.serve(emu, lambda e: {"api_url": e.base + PREFIX,
                                         "token_uri": e.base + "/token"})


if __name__ == "__main__":
    sys.exit(main())
