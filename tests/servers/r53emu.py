#!/usr/bin/python3
"""Amazon Route 53 API emulator (2013-04-01, XML) over HTTPS on loopback,
with AWS Signature Version 4 checked against each user's secret, backed by
real BIND zones (provemu.py).

    r53emu.py --dir DIR --spec SPEC.json --dns ADDR:PORT:KEY:SECRETFILE
              [--owner-pid PID] [--propagation-delay S]

SPEC: {"zones": [{"name": "route53.test.", "id": "Z0..." (optional),
                  "private": false,
                  "rrsets": [{"name": "route53.test.", "type": "MX", "ttl": 3600,
                              "values": ["10 mx1.route53.test."]}]}],
       "users": [{"name": "dns-admin", "access_key_id": "AKIA...",
                  "secret_access_key": "...", "session_token": "..." (optional),
                  "actions": ["route53:ListHostedZonesByName", ...] or ["route53:*"]}]}

API (base /2013-04-01), as in the Route 53 API reference:
  GET  /hostedzonesbyname?dnsname=&hostedzoneid=&maxitems=   ListHostedZonesByName
       (zones sorted by name with the labels reversed, then id; at most 100)
  GET  /hostedzone/ID/rrset?name=&type=&identifier=&maxitems= ListResourceRecordSets
       (sets sorted by reversed name, then type; at most 300; IsTruncated,
       NextRecordName, NextRecordType)
  POST /hostedzone/ID/rrset                 ChangeResourceRecordSets: CREATE,
       DELETE (exact: name, type, TTL, values), UPSERT; all or nothing, else
       400 InvalidChangeBatch; PENDING until BIND serves it, then INSYNC
  GET  /change/ID                           GetChange
Auth: SigV4 (AWS4-HMAC-SHA256): the canonical request (method, the path
URI-encoded, the query sorted and encoded, the signed headers, the payload
hash), the string to sign and the signing key are recomputed with the
user's secret; scope DATE/us-east-1/route53/aws4_request; X-Amz-Date within
15 minutes; X-Amz-Security-Token required for users with a session token.
Errors: ErrorResponse/Error/{Type,Code,Message} and RequestId, as AWS:
403 MissingAuthenticationToken, IncompleteSignature, InvalidClientTokenId,
SignatureDoesNotMatch, AccessDenied (an action the user may not do), 400
InvalidInput, 404 NoSuchHostedZone, NoSuchChange.

Control (besides provemu's): GET /_emu/zones/NAME (rrsets, changes); POST
/_emu/zones/NAME/rrset {"name","type","ttl","values"}: sets (or with no
values removes) a record set as someone else would, propagated.  Fault
kinds: "throttling" (400 Throttling: Rate exceeded), "prior" (400
PriorRequestNotComplete); 429 gets a Throttling body too.
"""

import argparse
import datetime
import hashlib
import hmac
import json
import os
import sys
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import provemu  # noqa: E402
from provemu import Reply  # noqa: E402

PREFIX = "/2013-04-01"
NS = "https://route53.amazonaws.com/doc/2013-04-01/"
REGION, SERVICE = "us-east-1", "route53"
ACCOUNT = "123456789012"
MAX_SKEW_S = 15 * 60


def xml_doc(root, inner):
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<%s xmlns="%s">%s</%s>'
            % (root, NS, inner, root)).encode()


def error_body(code, message, sender=True):
    return xml_doc("ErrorResponse", "<Error><Type>%s</Type><Code>%s</Code><Message>%s</Message>"
                   "</Error><RequestId>%s</RequestId>"
                   % ("Sender" if sender else "Receiver", code, escape(message), uuid.uuid4()))


def error(status, code, message):
    raise Reply(status, error_body(code, message))


def invalid_batch(messages):
    raise Reply(400, xml_doc("InvalidChangeBatch", "<Messages>%s</Messages><RequestId>%s</RequestId>"
                             % ("".join("<Message>%s</Message>" % escape(m) for m in messages),
                                uuid.uuid4())))


def name_key(name):
    """Route 53's order: the labels reversed ("com.example.www")."""
    return tuple(reversed(name.lower().rstrip(".").split(".")))


def hmac256(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def aws_quote(text):
    return urllib.parse.quote(text, safe="-_.~")


class R53Emu(provemu.Emu):
    name = "r53emu"

    def __init__(self, args):
        super().__init__(args)
        with open(args.spec) as f:
            spec = json.load(f)
        self.zones = {}
        for i, z in enumerate(spec.get("zones", [])):
            zid = z.get("id") or "Z%019d" % (i + 1)
            name = z["name"].lower().rstrip(".") + "."
            zone = {"id": zid, "name": name, "private": bool(z.get("private")),
                    "caller_reference": str(uuid.uuid4()), "rrsets": {}}
            zone["rrsets"][(name, "SOA")] = {
                "name": name, "type": "SOA", "ttl": 900,
                "values": ["ns1.%s hostmaster.%s 1 7200 900 1209600 86400" % (name, name)]}
            zone["rrsets"][(name, "NS")] = {"name": name, "type": "NS", "ttl": 172800,
                                            "values": ["ns1.%s" % name, "ns2.%s" % name]}
            for r in z.get("rrsets", []):
                r = dict(r, name=r["name"].lower().rstrip(".") + ".")
                zone["rrsets"][(r["name"], r["type"])] = r
            self.zones[zid] = zone
        self.users = {u["access_key_id"]: u for u in spec.get("users", [])}
        self.changes = {}

    def start(self):
        # BIND starts out serving exactly what the provider holds.
        if self.bind:
            for zone in self.zones.values():
                if zone["private"]:
                    continue
                for (name, rtype) in list(zone["rrsets"]):
                    if rtype == "MX":
                        self.bind.push_now(zone["name"].rstrip("."), name.rstrip("."),
                                           self.mx_of(zone, name))

    # ---- state
    def mx_of(self, zone, name):
        r = zone["rrsets"].get((name, "MX"))
        if not r:
            return []
        return [(r["ttl"], int(v.split()[0]), v.split()[1]) for v in r["values"]]

    def locked_mx(self, zone, name):
        with self.lock:
            return self.mx_of(zone, name)

    def propagate(self, zone, names, done=None):
        # A private zone has no BIND behind it: the world does not see it.
        self.push_names(zone["name"], [] if zone["private"] else names,
                        lambda name: self.locked_mx(zone, name), done)

    def zone_named(self, name):
        name = name.lower().rstrip(".") + "."
        for z in self.zones.values():
            if z["name"] == name:
                return z
        return None

    # ---- faults and control
    def fault_body(self, status):
        if status == 429:
            return error_body("Throttling", "Rate exceeded")
        return error_body("ServiceUnavailable", "Service Unavailable", sender=False) \
            if status == 503 else error_body("InternalFailure", "An internal error occurred",
                                             sender=False)

    def own_fault(self, fault):
        kind = str(fault.get("kind"))
        if kind == "throttling":
            return 400, error_body("Throttling", "Rate exceeded"), {}
        if kind == "prior":
            return 400, error_body("PriorRequestNotComplete", "The request was rejected "
                                   "because Route 53 was still processing a prior request."), {}
        return None

    def after_reply_fault(self, fault, path):
        pass

    def own_control(self, method, path, body):
        parts = path.split("/")  # '', '_emu', 'zones', NAME, ['rrset']
        if len(parts) >= 4 and parts[2] == "zones":
            with self.lock:
                zone = self.zone_named(parts[3])
                if not zone:
                    return 404, {"error": "no such zone"}
                if len(parts) == 5 and parts[4] == "rrset" and method == "POST":
                    name = body["name"].lower().rstrip(".") + "."
                    key = (name, body["type"])
                    if body.get("values"):
                        zone["rrsets"][key] = dict(body, name=name)
                    else:
                        zone["rrsets"].pop(key, None)
                    self.propagate(zone, [name])
                    return 200, body
                return 200, {"id": zone["id"], "rrsets": list(zone["rrsets"].values()),
                             "changes": [c for c in self.changes.values()
                                         if c["zone"] == zone["id"]]}
        return 404, {"error": "no such control endpoint"}

    # ---- SigV4
    def authenticate(self, handler, method, raw):
        """The user whose secret signed the request, or an AWS error."""
        auth = handler.headers.get("Authorization")
        if not auth:
            error(403, "MissingAuthenticationToken", "Missing Authentication Token")
        algo, _, rest = auth.partition(" ")
        fields = {}
        for part in rest.split(","):
            k, _, v = part.strip().partition("=")
            fields[k] = v
        if algo != "AWS4-HMAC-SHA256" or not {"Credential", "SignedHeaders",
                                                "Signature"} <= set(fields):
            error(403, "IncompleteSignature", "Authorization header requires 'Credential', "
                  "'Signature' and 'SignedHeaders' parameters with AWS4-HMAC-SHA256.")
        cred = fields["Credential"].split("/")
        if len(cred) != 5 or cred[4] != "aws4_request":
            error(403, "IncompleteSignature", "Credential is malformed: %s" % fields["Credential"])
        key_id, day, region, service = cred[:4]
        user = self.users.get(key_id)
        if user is None:
            error(403, "InvalidClientTokenId",
                  "The security token included in the request is invalid.")
        if region != REGION or service != SERVICE:
            error(403, "SignatureDoesNotMatch", "Credential should be scoped to a valid region "
                  "and service ('%s', '%s'), not '%s', '%s'." % (REGION, SERVICE, region,
                                                                  service))
        amz_date = handler.headers.get("X-Amz-Date", "")
        try:
            when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
                tzinfo=datetime.timezone.utc)
        except ValueError:
            error(403, "IncompleteSignature", "Date must be in ISO-8601 'basic format'. Got "
                  "'%s'." % amz_date)
        skew = abs((datetime.datetime.now(datetime.timezone.utc) - when).total_seconds())
        if skew > MAX_SKEW_S or when.strftime("%Y%m%d") != day:
            error(403, "SignatureDoesNotMatch", "Signature expired: %s is now earlier or later "
                  "than 15 min from the current time, or not of the credential's date."
                  % amz_date)
        signed = fields["SignedHeaders"].split(";")
        if "host" not in signed or "x-amz-date" not in signed:
            error(403, "SignatureDoesNotMatch", "'Host' and 'X-Amz-Date' must be signed headers.")
        if user.get("session_token"):
            token = handler.headers.get("X-Amz-Security-Token")
            if token is None:
                error(403, "InvalidClientTokenId",
                      "The security token included in the request is invalid.")
            if token != user["session_token"]:
                error(403, "InvalidClientTokenId",
                      "The security token included in the request is invalid.")
        want = self.signature(user["secret_access_key"], handler, method, raw, signed,
                              amz_date, "/".join(cred[1:]))
        if not hmac.compare_digest(want, fields["Signature"]):
            error(403, "SignatureDoesNotMatch", "The request signature we calculated does not "
                  "match the signature you provided. Check your AWS Secret Access Key and "
                  "signing method. Consult the service documentation for details.")
        return user

    @staticmethod
    def signature(secret, handler, method, raw, signed, amz_date, scope):
        url = urllib.parse.urlsplit(handler.path)
        # Every segment of the path URI-encoded (the non-S3 rule).
        path = urllib.parse.quote(url.path or "/", safe="/~")
        pairs = []
        for item in url.query.split("&") if url.query else []:
            k, _, v = item.partition("=")
            pairs.append((aws_quote(urllib.parse.unquote(k)), aws_quote(urllib.parse.unquote(v))))
        query = "&".join("%s=%s" % kv for kv in sorted(pairs))
        headers = ""
        for h in signed:
            values = handler.headers.get_all(h) or []
            headers += "%s:%s\n" % (h, ",".join(" ".join(v.split()) for v in values))
        canonical = "\n".join([method, path, query, headers, ";".join(signed),
                               hashlib.sha256(raw).hexdigest()])
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        day, region, service = scope.split("/")[:3]
        key = hmac256(("AWS4" + secret).encode(), day)
        key = hmac256(hmac256(hmac256(key, region), service), "aws4_request")
        return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()

    def need(self, user, action, resource):
        acts = user.get("actions", [])
        if "route53:*" in acts or "route53:" + action in acts:
            return
        error(403, "AccessDenied", "User: arn:aws:iam::%s:user/%s is not authorized to perform: "
              "route53:%s on resource: %s because no identity-based policy allows the "
              "route53:%s action" % (ACCOUNT, user.get("name", "?"), action, resource, action))

    # ---- API
    def api(self, handler, method, path, query, raw):
        with self.lock:
            user = self.authenticate(handler, method, raw)
            if not path.startswith(PREFIX + "/"):
                error(404, "UnknownOperationException", "Unknown operation")
            parts = path[len(PREFIX):].strip("/").split("/")
            q = {k: v[0] for k, v in query.items()}
            if parts == ["hostedzonesbyname"] and method == "GET":
                self.need(user, "ListHostedZonesByName", "*")
                return self.list_zones(q)
            if len(parts) == 3 and parts[0] == "hostedzone" and parts[2] == "rrset":
                zone = self.zones.get(parts[1])
                resource = "arn:aws:route53:::hostedzone/%s" % parts[1]
                if method == "GET":
                    self.need(user, "ListResourceRecordSets", resource)
                    self.zone_or_404(zone, parts[1])
                    return self.list_rrsets(zone, q)
                if method == "POST":
                    self.need(user, "ChangeResourceRecordSets", resource)
                    self.zone_or_404(zone, parts[1])
                    return self.change(zone, raw)
            if len(parts) == 2 and parts[0] == "change" and method == "GET":
                self.need(user, "GetChange", "arn:aws:route53:::change/%s" % parts[1])
                change = self.changes.get(parts[1])
                if change is None:
                    error(404, "NoSuchChange", "Could not find resource with ID: %s" % parts[1])
                return 200, xml_doc("GetChangeResponse", self.change_info(change)), {}
            error(404, "UnknownOperationException", "Unknown operation")

    @staticmethod
    def zone_or_404(zone, zid):
        if zone is None:
            error(404, "NoSuchHostedZone", "No hosted zone found with ID: %s" % zid)

    def max_items(self, q, cap):
        try:
            n = int(q.get("maxitems", cap))
        except ValueError:
            error(400, "InvalidInput", "1 validation error detected: Value '%s' at 'maxItems' "
                  "failed to satisfy constraint: Member must be a number" % q["maxitems"])
        n = max(1, min(n, cap))
        if self.config.get("page_size"):
            n = min(n, int(self.config["page_size"]))
        return n

    def list_zones(self, q):
        n = self.max_items(q, 100)
        dns = q.get("dnsname")
        if "hostedzoneid" in q and not dns:
            error(400, "InvalidInput", "The DNS name is required when the hosted zone id is given.")
        zones = sorted(self.zones.values(), key=lambda z: (name_key(z["name"]), z["id"]))
        if dns:
            start = (name_key(dns), q.get("hostedzoneid", ""))
            zones = [z for z in zones if (name_key(z["name"]), z["id"]) >= start]
        page, rest = zones[:n], zones[n:]
        inner = "<HostedZones>%s</HostedZones>" % "".join(
            "<HostedZone><Id>/hostedzone/%s</Id><Name>%s</Name><CallerReference>%s"
            "</CallerReference><Config><Comment>mailmode test</Comment><PrivateZone>%s"
            "</PrivateZone></Config><ResourceRecordSetCount>%d</ResourceRecordSetCount>"
            "</HostedZone>" % (z["id"], z["name"], z["caller_reference"],
                               "true" if z["private"] else "false", len(z["rrsets"]))
            for z in page)
        if dns:
            inner += "<DNSName>%s</DNSName>" % escape(dns)
        if "hostedzoneid" in q:
            inner += "<HostedZoneId>%s</HostedZoneId>" % escape(q["hostedzoneid"])
        inner += "<IsTruncated>%s</IsTruncated>" % ("true" if rest else "false")
        if rest:
            inner += "<NextDNSName>%s</NextDNSName><NextHostedZoneId>%s</NextHostedZoneId>" % (
                rest[0]["name"], rest[0]["id"])
        inner += "<MaxItems>%d</MaxItems>" % n
        return 200, xml_doc("ListHostedZonesByNameResponse", inner), {}

    @staticmethod
    def rrset_xml(r):
        return ("<ResourceRecordSet><Name>%s</Name><Type>%s</Type><TTL>%d</TTL>"
                "<ResourceRecords>%s</ResourceRecords></ResourceRecordSet>"
                % (r["name"], r["type"], r["ttl"], "".join(
                    "<ResourceRecord><Value>%s</Value></ResourceRecord>" % escape(v)
                    for v in r["values"])))

    def list_rrsets(self, zone, q):
        n = self.max_items(q, 300)
        if "type" in q and "name" not in q:
            error(400, "InvalidInput", "The input is not valid: type requires name")
        sets = sorted(zone["rrsets"].values(), key=lambda r: (name_key(r["name"]), r["type"]))
        if "name" in q:
            start = (name_key(q["name"]), q.get("type", ""))
            sets = [r for r in sets if (name_key(r["name"]), r["type"]) >= start]
        page, rest = sets[:n], sets[n:]
        inner = "<ResourceRecordSets>%s</ResourceRecordSets>" % "".join(
            self.rrset_xml(r) for r in page)
        inner += "<IsTruncated>%s</IsTruncated>" % ("true" if rest else "false")
        if rest:
            inner += "<NextRecordName>%s</NextRecordName><NextRecordType>%s</NextRecordType>" % (
                rest[0]["name"], rest[0]["type"])
        inner += "<MaxItems>%d</MaxItems>" % n
        return 200, xml_doc("ListResourceRecordSetsResponse", inner), {}

    # ---- ChangeResourceRecordSets
    @staticmethod
    def parse_changes(raw):
        try:
            root = ET.fromstring(raw)
        except ET.ParseError as e:
            error(400, "InvalidInput", "Invalid XML ; %s" % e)
        t = lambda tag: "{%s}%s" % (NS, tag)  # noqa: E731
        if root.tag != t("ChangeResourceRecordSetsRequest"):
            error(400, "InvalidInput", "Invalid XML ; the root element is not "
                  "ChangeResourceRecordSetsRequest in %s" % NS)
        out = []
        for c in root.iter(t("Change")):
            rs = c.find(t("ResourceRecordSet"))
            if rs is None or c.findtext(t("Action")) not in ("CREATE", "DELETE", "UPSERT"):
                error(400, "InvalidInput", "Invalid XML ; a Change needs an Action and a "
                      "ResourceRecordSet")
            try:
                ttl = int(rs.findtext(t("TTL")))
            except (TypeError, ValueError):
                error(400, "InvalidInput", "Invalid XML ; TTL is required")
            out.append((c.findtext(t("Action")), {
                "name": (rs.findtext(t("Name")) or "").lower().rstrip(".") + ".",
                "type": rs.findtext(t("Type")) or "", "ttl": ttl,
                "values": [v.text or "" for v in rs.iter(t("Value"))]}))
        if not out:
            error(400, "InvalidInput", "Invalid XML ; Changes must hold at least one Change")
        return out

    def change(self, zone, raw):
        changes = self.parse_changes(raw)
        work, problems, names = dict(zone["rrsets"]), [], set()
        for action, r in changes:
            key = (r["name"], r["type"])
            what = "resource record set [name='%s', type='%s']" % key
            if r["name"] != zone["name"] and not r["name"].endswith("." + zone["name"]):
                problems.append("RRSet with DNS name %s is not permitted in zone %s"
                                % (r["name"], zone["name"]))
                continue
            if r["type"] == "MX" and not all(
                    len(v.split()) == 2 and v.split()[0].isdigit() and
                    int(v.split()[0]) <= 65535 for v in r["values"]):
                problems.append("Invalid Resource Record: 'FATAL problem: "
                                "MXRRDATANotTwoFields encountered at %s'" % r["values"])
                continue
            cur = work.get(key)
            if action == "DELETE":
                if cur is None:
                    problems.append("Tried to delete %s but it was not found" % what)
                elif cur["ttl"] != r["ttl"] or sorted(cur["values"]) != sorted(r["values"]):
                    problems.append("Tried to delete %s but the values provided do not match "
                                    "the current values" % what)
                else:
                    del work[key]
            elif action == "CREATE" and cur is not None:
                problems.append("Tried to create %s but it already exists" % what)
            else:
                work[key] = r
            names.add(r["name"])
        if problems:
            invalid_batch(["[%s]" % ", ".join(problems)])
        zone["rrsets"] = work
        cid = "C%s" % uuid.uuid4().hex[:13].upper()
        change = {"id": cid, "zone": zone["id"], "status": "PENDING",
                  "submitted": datetime.datetime.now(datetime.timezone.utc)
                  .strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"}
        self.changes[cid] = change

        def done():
            change["status"] = "INSYNC"
            self.log("change %s INSYNC" % cid)
        self.propagate(zone, sorted(n for n in names if n.endswith(zone["name"])), done)
        return 200, xml_doc("ChangeResourceRecordSetsResponse", self.change_info(change)), {}

    @staticmethod
    def change_info(c):
        return ("<ChangeInfo><Id>/change/%s</Id><Status>%s</Status><SubmittedAt>%s</SubmittedAt>"
                "</ChangeInfo>" % (c["id"], c["status"], c["submitted"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    provemu.common_args(ap)
    args = ap.parse_args()
    emu = R53Emu(args)
    return provemu.serve(emu, lambda e: {"api_url": e.base})


if __name__ == "__main__":
    sys.exit(main())
