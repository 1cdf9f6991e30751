#!/usr/bin/python3
"""Azure DNS emulator (Azure Resource Manager, Microsoft.Network/dnsZones,
api-version 2018-05-01) with its Entra ID token endpoint, over HTTPS on
loopback, backed by real BIND zones (provemu.py).

    azureemu.py --dir DIR --spec SPEC.json --dns ADDR:PORT:KEY:SECRETFILE
                [--owner-pid PID] [--propagation-delay S]

SPEC: {"subscription": GUID, "tenant": GUID,
       "zones": [{"resource_group": "rg-dns", "name": "azure.test",
                  "zoneType": "Public",
                  "recordsets": [{"name": "@", "TTL": 3600, "MXRecords":
                                  [{"preference": 10, "exchange": "mx1.azure.test"}]}]}],
       "apps": [{"name": "admin", "credential": "secret" | "certificate",
                 "roles": {"/resourceGroups/rg-dns": "DNS Zone Contributor"}}]}
Role scopes are below the subscription ("" is the subscription itself,
"/resourceGroups/RG", ".../providers/Microsoft.Network/dnsZones/Z");
roles: "DNS Zone Contributor" (its real actions) and "Reader" (*/read).
Each app gets a client id and its credential: DIR/NAME.secret (mode 0600)
or DIR/NAME.key (0600) + DIR/NAME.crt, and emu.json says
"client_id_NAME", "tenant", "subscription", "login_url" (the token URL
is {login_url}/{tenant}/oauth2/v2.0/token) and "api_url".

Token endpoint: the client credentials grant for the scope
https://management.azure.com/.default, the client secret or the
certificate assertion checked as Entra checks them (srvlib.check_client:
signature, thumbprint, aud, iss/sub, lifetime), AADSTS errors.

ARM: Bearer token required (401 AuthenticationFailed / InvalidAuthentication
Token / ExpiredAuthenticationToken), api-version required and checked (400
MissingApiVersionParameter / InvalidApiVersionParameter), role checks per
action and scope (403 AuthorizationFailed naming the action and scope);
zones listed per subscription or resource group with nextLink paging
($skipToken; page_size in /_emu/config); record sets with an etag that
changes on every write: PUT and DELETE honour If-Match: ETAG, If-Match: *
and If-None-Match: * (412 PreconditionFailed), 201 on create, 200 on update;
an absent set is 404 with the bare {"code":"NotFound"} body;
Microsoft.Authorization/permissions of a scope.  Every reply carries
x-ms-ratelimit-remaining-subscription-reads/-writes; faults as provemu.py
(429 with Retry-After, 5xx, lost answers).

Control API beyond provemu's:
  GET  /_emu/zones                       every zone and record set
  POST /_emu/zones/RG/ZONE/rrset         {"name": "race", "TTL": 3600,
                                          "MXRecords": [...]} (empty list:
                                          delete): someone else's change
  POST /_emu/tokens/expire               every token issued so far expires
"""

import argparse
import datetime
import json
import os
import secrets
import sys
import time
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import provemu  # noqa: E402
from provemu import Reply  # noqa: E402
from srvlib import aad_error, b64url, check_client, load_certs  # noqa: E402

SCOPE = "https://management.azure.com/.default"
DNS_API_VERSIONS = ("2018-05-01", "2017-10-01", "2017-09-01", "2016-04-01",
                    "2023-07-01-preview")
AUTHZ_API_VERSIONS = ("2022-04-01", "2018-07-01", "2015-07-01")
ROLES = {
    "DNS Zone Contributor": ["Microsoft.Authorization/*/read", "Microsoft.Insights/alertRules/*",
                             "Microsoft.Network/dnsZones/*",
                             "Microsoft.ResourceHealth/availabilityStatuses/read",
                             "Microsoft.Resources/deployments/*",
                             "Microsoft.Resources/subscriptions/resourceGroups/read",
                             "Microsoft.Support/*"],
    "Reader": ["*/read"],
}
NS = "/providers/Microsoft.Network/dnsZones/"


def arm_error(status, code, message, bare=False):
    err = {"code": code, "message": message}
    raise Reply(status, err if bare else {"error": err})


def action_matches(pattern, action):
    import fnmatch
    return fnmatch.fnmatchcase(action.lower(), pattern.lower())


class AzEmu(provemu.Emu):
    name = "azureemu"

    def __init__(self, args):
        super().__init__(args)
        with open(args.spec) as f:
            spec = json.load(f)
        self.subscription = spec.get("subscription", str(uuid.uuid4()))
        self.tenant = spec.get("tenant", str(uuid.uuid4()))
        self.spec_apps = spec.get("apps", [])
        self.apps = {}    # client id -> app
        self.tokens = {}  # access token -> (client id, expires)
        self.token_lifetime = spec.get("token_lifetime_s", 3599)
        self.zones = {}   # (rg lower, zone name) -> zone
        for z in spec.get("zones", []):
            zone = {"resource_group": z["resource_group"], "name": z["name"],
                    "zoneType": z.get("zoneType", "Public"), "etag": str(uuid.uuid4()),
                    "recordsets": {}}
            for r in z.get("recordsets", []):
                zone["recordsets"][r["name"].lower()] = {
                    "name": r["name"], "TTL": r["TTL"], "MXRecords": r["MXRecords"],
                    "etag": str(uuid.uuid4())}
            self.zones[(z["resource_group"].lower(), z["name"].lower())] = zone

    # ---- set-up
    def start(self):
        d = os.path.abspath(self.args.dir)
        for a in self.spec_apps:
            app = {"name": a["name"], "client_id": str(uuid.uuid4()),
                   "object_id": str(uuid.uuid4()), "roles": a.get("roles", {}),
                   "secret": None, "certs": []}
            if a.get("credential", "secret") == "certificate":
                key_pem, cert_pem = self.make_certificate(a["name"])
                provemu.write_atomic(os.path.join(d, a["name"] + ".key"), key_pem, 0o600)
                provemu.write_atomic(os.path.join(d, a["name"] + ".crt"), cert_pem)
                app["certs"] = load_certs(cert_pem)
            else:
                app["secret"] = "emu~" + secrets.token_urlsafe(30)
                provemu.write_atomic(os.path.join(d, a["name"] + ".secret"),
                                     app["secret"] + "\n", 0o600)
            self.apps[app["client_id"]] = app
        if self.bind:
            for zone in self.zones.values():
                for rel in list(zone["recordsets"]):
                    self.bind.push_now(zone["name"], self.fqdn(zone, rel),
                                       self.mx_of(zone, rel))

    def make_certificate(self, name):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = datetime.datetime.now(datetime.timezone.utc)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailmode-" + name)])
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=365))
                .sign(key, hashes.SHA256()))
        return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()).decode(),
                cert.public_bytes(serialization.Encoding.PEM).decode())

    def info(self):
        out = {"tenant": self.tenant, "subscription": self.subscription,
               "login_url": self.base, "api_url": self.base}
        for app in self.apps.values():
            out["client_id_" + app["name"]] = app["client_id"]
        return out

    # ---- the zones and BIND
    def fqdn(self, zone, rel):
        return zone["name"] if rel == "@" else "%s.%s" % (rel, zone["name"])

    def mx_of(self, zone, rel):
        r = zone["recordsets"].get(rel.lower())
        if not r:
            return []
        return [(r["TTL"], m["preference"], m["exchange"].rstrip(".") + ".")
                for m in r["MXRecords"]]

    def propagate(self, zone, rel):
        if self.bind:
            self.bind.push(zone["name"], self.fqdn(zone, rel),
                           lambda: self.locked_mx(zone, rel))

    def locked_mx(self, zone, rel):
        with self.lock:
            return self.mx_of(zone, rel)

    def fault_body(self, status):
        if status == 429:
            return {"error": {"code": "TooManyRequests", "message": "The request is being "
                              "throttled as the limit has been reached for operation type - "
                              "Read_ObservationWindow_00:05:00. For more information, see - "
                              "https://aka.ms/srpthrottlinglimits"}}
        return {"error": {"code": "InternalServerError", "message": "Encountered internal "
                          "server error. Diagnostic information: timestamp '%s'."
                          % provemu.rfc3339()}}

    def after_reply_fault(self, fault, path):
        pass

    def own_control(self, method, path, body):
        parts = path.split("/")  # '', '_emu', 'zones', RG, ZONE, 'rrset'
        with self.lock:
            if parts[2:] == ["tokens", "expire"] and method == "POST":
                self.tokens = {t: (app, 0) for t, (app, _) in self.tokens.items()}
                return 200, {"expired": len(self.tokens)}
            if parts[2:] == ["zones"]:
                return 200, [dict(z, recordsets=list(z["recordsets"].values()))
                             for z in self.zones.values()]
            if len(parts) == 6 and parts[2] == "zones" and parts[5] == "rrset" and \
                    method == "POST":
                zone = self.zones.get((parts[3].lower(), parts[4].lower()))
                if zone is None:
                    return 404, {"error": "no such zone"}
                rel = body["name"]
                if body.get("MXRecords"):
                    zone["recordsets"][rel.lower()] = {
                        "name": rel, "TTL": body.get("TTL", 3600),
                        "MXRecords": body["MXRecords"], "etag": str(uuid.uuid4())}
                else:
                    zone["recordsets"].pop(rel.lower(), None)
                self.propagate(zone, rel)
                return 200, body
        return 404, {"error": "no such control endpoint"}

    # ---- Entra ID
    def token(self, handler, tenant, raw):
        corr = handler.headers.get("client-request-id")
        form = {k: v[-1] for k, v in urllib.parse.parse_qs(raw.decode("utf-8", "replace"),
                                                           keep_blank_values=True).items()}
        status, body, _ = self.token_logic(handler, tenant, form, corr)
        return status, body, {"Cache-Control": "no-store, no-cache",
                              "x-ms-request-id": str(uuid.uuid4())}

    def token_logic(self, handler, tenant, form, corr):
        if tenant.lower() != self.tenant:
            return aad_error(corr, 400, "invalid_request", 90002, "Tenant '%s' not found. "
                             "Check to make sure you have the correct tenant ID and are "
                             "signing into the correct cloud." % tenant)
        for p in ("grant_type", "client_id", "scope"):
            if not form.get(p):
                return aad_error(corr, 400, "invalid_request", 900144, "The request body "
                                 "must contain the following parameter: '%s'." % p)
        if form["grant_type"] != "client_credentials":
            return aad_error(corr, 400, "unsupported_grant_type", 70003, "The app requested "
                             "an unsupported grant type '%s'." % form["grant_type"])
        app = self.apps.get(form["client_id"].lower())
        if app is None:
            return aad_error(corr, 400, "unauthorized_client", 700016, "Application with "
                             "identifier '%s' was not found in the directory '%s'."
                             % (form["client_id"], self.tenant))
        if form["scope"] != SCOPE:
            return aad_error(corr, 400, "invalid_scope", 70011, "The provided value for the "
                             "input parameter 'scope' is not valid. The scope %s is not "
                             "valid." % form["scope"])
        token_url = "%s/%s/oauth2/v2.0/token" % (self.base, tenant)
        err = check_client(form, app["client_id"], app["secret"], app["certs"], token_url,
                           401, {}, corr)
        if err:
            return err
        now = int(time.time())
        claims = {"aud": "https://management.azure.com/", "iss": "https://sts.windows.net/%s/"
                  % self.tenant, "iat": now, "nbf": now, "exp": now + self.token_lifetime,
                  "appid": app["client_id"], "oid": app["object_id"], "tid": self.tenant,
                  "ver": "1.0"}
        token = "%s.%s.%s" % (b64url(json.dumps({"typ": "JWT", "alg": "RS256"}).encode()),
                              b64url(json.dumps(claims).encode()), secrets.token_urlsafe(40))
        self.tokens[token] = (app["client_id"], now + self.token_lifetime)
        return 200, {"token_type": "Bearer", "expires_in": self.token_lifetime,
                     "ext_expires_in": self.token_lifetime, "access_token": token}, {}

    def caller(self, handler):
        auth = handler.headers.get("Authorization") or ""
        if not auth:
            arm_error(401, "AuthenticationFailed", "Authentication failed. The "
                      "'Authorization' header is missing.")
        entry = self.tokens.get(auth[7:]) if auth.startswith("Bearer ") else None
        if entry is None:
            arm_error(401, "InvalidAuthenticationToken", "The access token is invalid.")
        if entry[1] < time.time():
            arm_error(401, "ExpiredAuthenticationToken", "The access token expiry UTC time "
                      "is earlier than current UTC time.")
        return self.apps[entry[0]]

    # ---- authorization
    def actions_at(self, app, scope):
        """[(actions, notActions)] of every assignment at or above scope."""
        out = []
        for at, role in app["roles"].items():
            if not at or scope.lower() == at.lower() or scope.lower().startswith(at.lower() + "/"):
                out.append((ROLES.get(role, []), []))
        return out

    def authorize(self, app, scope, action):
        for actions, not_actions in self.actions_at(app, scope):
            if any(action_matches(p, action) for p in actions) and \
                    not any(action_matches(p, action) for p in not_actions):
                return
        arm_error(403, "AuthorizationFailed", "The client '%s' with object id '%s' does not "
                  "have authorization to perform action '%s' over scope '/subscriptions/%s%s' "
                  "or the scope is invalid. If access was recently granted, please refresh "
                  "your credentials." % (app["client_id"], app["object_id"], action,
                                         self.subscription, scope))

    # ---- ARM
    def api(self, handler, method, path, query, raw):
        parts = path.split("/")
        if len(parts) == 5 and parts[2:] == ["oauth2", "v2.0", "token"] and method == "POST":
            return self.token(handler, parts[1], raw)
        if not path.lower().startswith("/subscriptions/"):
            arm_error(404, "NotFound", "The requested resource was not found.")
        with self.lock:
            self.headers_now = handler.headers   # for If-Match, under the lock
            app = self.caller(handler)
            status, body, headers = self.arm(app, method, parts, query, raw)
        reads = "x-ms-ratelimit-remaining-subscription-%s" % (
            "reads" if method == "GET" else "writes")
        headers = dict(headers, **{reads: 11999, "x-ms-request-id": str(uuid.uuid4())})
        return status, body, headers

    def api_version(self, query, known):
        v = query.get("api-version", [None])[0]
        if not v:
            arm_error(400, "MissingApiVersionParameter", "The api-version query parameter "
                      "(?api-version=) is required for all requests.")
        if v not in known:
            arm_error(400, "InvalidApiVersionParameter", "The api-version '%s' is invalid. "
                      "The supported versions are '%s'." % (v, ",".join(known)))

    def arm(self, app, method, parts, query, raw):
        # '', 'subscriptions', S, rest...
        if parts[2].lower() != self.subscription:
            arm_error(404, "SubscriptionNotFound", "The subscription '%s' could not be "
                      "found." % parts[2])
        rest = parts[3:]
        low = [p.lower() for p in rest]
        if low == ["providers", "microsoft.network", "dnszones"] and method == "GET":
            self.api_version(query, DNS_API_VERSIONS)
            return self.list_zones(app, None, query)
        if len(rest) < 2 or low[0] != "resourcegroups":
            arm_error(404, "NotFound", "The requested resource was not found.")
        group = rest[1]
        if not any(rg == group.lower() for rg, _ in self.zones):
            arm_error(404, "ResourceGroupNotFound", "Resource group '%s' could not be found."
                      % group)
        low, rest = low[2:], rest[2:]
        if low == ["providers", "microsoft.network", "dnszones"] and method == "GET":
            self.api_version(query, DNS_API_VERSIONS)
            return self.list_zones(app, group, query)
        if len(rest) < 3 or low[:2] != ["providers", "microsoft.network"] or \
                low[2] != "dnszones":
            arm_error(404, "NotFound", "The requested resource was not found.")
        return self.zone_api(app, group, rest[3:], method, query, raw)

    def zone_scope(self, zone):
        return "/resourceGroups/%s%s%s" % (zone["resource_group"], NS, zone["name"])

    def zone_view(self, zone):
        return {"id": "/subscriptions/%s%s" % (self.subscription, self.zone_scope(zone)),
                "name": zone["name"], "type": "Microsoft.Network/dnszones",
                "etag": zone["etag"], "location": "global", "tags": {},
                "properties": {"maxNumberOfRecordSets": 10000,
                               "numberOfRecordSets": len(zone["recordsets"]) + 2,
                               "nameServers": ["ns1-01.azure-dns.test.",
                                               "ns2-01.azure-dns.test."],
                               "zoneType": zone["zoneType"]}}

    def list_zones(self, app, group, query):
        # A collection is read at its own scope: the subscription's needs
        # dnsZones/read on the subscription, a resource group's on the group.
        self.authorize(app, "/resourceGroups/" + group if group else "",
                       "Microsoft.Network/dnsZones/read")
        zones = []
        for zone in sorted(self.zones.values(), key=lambda z: (z["resource_group"], z["name"])):
            if group and zone["resource_group"].lower() != group.lower():
                continue
            try:
                self.authorize(app, self.zone_scope(zone), "Microsoft.Network/dnsZones/read")
            except Reply:
                continue   # ARM lists what the caller may read
            zones.append(self.zone_view(zone))
        size = int(self.config.get("page_size") or 100)
        start = int(query.get("$skipToken", ["0"])[0] or 0)
        out = {"value": zones[start:start + size]}
        if start + size < len(zones):
            path = "/subscriptions/%s%s/providers/Microsoft.Network/dnszones" % (
                self.subscription, "/resourceGroups/" + group if group else "")
            out["nextLink"] = "%s%s?api-version=%s&$skipToken=%d" % (
                self.base, path, query["api-version"][0], start + size)
        return 200, out, {}

    def zone_api(self, app, group, rest, method, query, raw):
        zname = rest[0]
        zone = self.zones.get((group.lower(), zname.lower().rstrip(".")))
        scope = "/resourceGroups/%s%s%s" % (group, NS, zname)
        if len(rest) >= 3 and [p.lower() for p in rest[1:3]] == ["providers",
                                                                 "microsoft.authorization"]:
            self.api_version(query, AUTHZ_API_VERSIONS)
            if rest[3:] != ["permissions"] or method != "GET":
                arm_error(404, "NotFound", "The requested resource was not found.")
            self.authorize(app, scope, "Microsoft.Authorization/permissions/read")
            return 200, {"value": [{"actions": a, "notActions": n}
                                   for a, n in self.actions_at(app, scope)]}, {}
        self.api_version(query, DNS_API_VERSIONS)
        if len(rest) == 1 and method == "GET":
            self.authorize(app, scope, "Microsoft.Network/dnsZones/read")
            if zone is None:
                self.zone_missing(zname, group)
            return 200, self.zone_view(zone), {}
        if len(rest) != 3 or rest[1].upper() != "MX":
            arm_error(404, "NotFound", "The requested resource was not found.")
        action = {"GET": "read", "PUT": "write", "DELETE": "delete"}.get(method)
        if action is None:
            arm_error(405, "MethodNotAllowed", "The HTTP method '%s' is not supported." % method)
        self.authorize(app, scope + "/MX/" + rest[2], "Microsoft.Network/dnsZones/MX/" + action)
        if zone is None:
            arm_error(404, "ParentResourceNotFound", "Can not perform requested operation on "
                      "nested resource. Parent resource '%s' not found." % zname)
        return self.rrset_api(zone, rest[2], method, raw)

    def zone_missing(self, zname, group):
        arm_error(404, "ResourceNotFound", "The Resource 'Microsoft.Network/dnszones/%s' under "
                  "resource group '%s' was not found. For more details please go to "
                  "https://aka.ms/ARMResourceNotFoundFix" % (zname, group))

    def rrset_view(self, zone, r):
        return {"id": "/subscriptions/%s%s/MX/%s" % (self.subscription, self.zone_scope(zone),
                                                    r["name"]),
                "name": r["name"], "type": "Microsoft.Network/dnszones/MX", "etag": r["etag"],
                "properties": {"metadata": {}, "TTL": r["TTL"],
                               "fqdn": self.fqdn(zone, r["name"]) + ".",
                               "provisioningState": "Succeeded",
                               "MXRecords": r["MXRecords"]}}

    def precondition(self, handler_headers, current):
        if_match = handler_headers.get("If-Match")
        if_none = handler_headers.get("If-None-Match")
        etag = current["etag"] if current else ""
        if if_match and (current is None or (if_match != "*" and if_match != etag)):
            arm_error(412, "PreconditionFailed", "The condition '%s' in the If-Match header "
                      "was not satisfied. The current was '%s'." % (if_match, etag))
        if if_none == "*" and current is not None:
            arm_error(412, "PreconditionFailed", "The condition '*' in the If-None-Match "
                      "header was not satisfied. The current was '%s'." % etag)

    def rrset_api(self, zone, rel, method, raw):
        current = zone["recordsets"].get(rel.lower())
        if method == "GET":
            if current is None:
                arm_error(404, "NotFound", "The resource record '%s' does not exist in "
                          "resource group '%s' of subscription '%s'."
                          % (rel, zone["resource_group"], self.subscription), bare=True)
            return 200, self.rrset_view(zone, current), {}
        self.precondition(self.headers_now, current)
        if method == "DELETE":
            if current is None:
                return 204, b"", {}
            del zone["recordsets"][rel.lower()]
            self.propagate(zone, rel)
            return 200, b"", {}
        props = self.parse_rrset(raw)
        record = {"name": current["name"] if current else rel, "TTL": props["TTL"],
                  "MXRecords": props["MXRecords"], "etag": str(uuid.uuid4())}
        zone["recordsets"][rel.lower()] = record
        self.propagate(zone, rel)
        return (200 if current else 201), self.rrset_view(zone, record), {}

    def parse_rrset(self, raw):
        try:
            props = json.loads(raw)["properties"]
            ttl, mx = props["TTL"], props["MXRecords"]
            if not isinstance(ttl, int) or not 0 <= ttl <= 2147483647 or not mx:
                raise ValueError("TTL")
            for m in mx:
                if not isinstance(m.get("preference"), int) or \
                        not provemu.is_ldh(str(m.get("exchange", "")).lower()):
                    raise ValueError("MXRecords")
        except (ValueError, KeyError, TypeError, AttributeError):
            arm_error(400, "BadRequest", "The request body of the record set is invalid: it "
                      "needs properties.TTL and properties.MXRecords[{preference, exchange}].")
        return {"TTL": ttl, "MXRecords": [{"preference": m["preference"],
                                           "exchange": m["exchange"]} for m in mx]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    provemu.common_args(ap)
    args = ap.parse_args()
    emu = AzEmu(args)
    return provemu.serve(emu, lambda e: e.info())


if __name__ == "__main__":
    sys.exit(main())
