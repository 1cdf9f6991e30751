#!/usr/bin/python3
"""Cloudflare API v4 emulator (DNS part) over HTTPS on loopback, backed by
real BIND zones (provemu.py).

    cfemu.py --dir DIR --spec SPEC.json --dns ADDR:PORT:KEY:SECRETFILE
             [--owner-pid PID] [--propagation-delay S]

SPEC: {"zones": [{"name": "cloudflare.test", "id": 32 hex (optional),
                  "records": [{"type": "MX", "name": "cloudflare.test",
                               "content": "mx1.cloudflare.test", "priority": 10,
                               "ttl": 3600}]}],
       "tokens": [{"value": "...", "status": "active",
                   "zones": {"cloudflare.test": ["zone_read", "dns_read", "dns_edit"]}}]}

API (base /client/v4), as in dns-providers.md A and E:
  GET  /user/tokens/verify
  GET  /zones?name=&page=&per_page=         (per_page at most 50)
  GET  /zones/{id}/dns_records?type=&name=&page=&per_page=
  POST /zones/{id}/dns_records/batch        deletes -> patches -> puts -> posts,
                                            all or nothing
Auth: "Authorization: Bearer TOKEN"; malformed 400 6003/6111, unknown 401
10000, a zone outside the token's scope 403 10000 (zones it cannot read
are not listed).

Control (besides provemu's): GET /_emu/zones/NAME (records);
POST /_emu/zones/NAME/records {record}: a record made by someone else (the
dashboard), propagated like any change; fault kind "concurrent_after":
{"record": {...}} is added right after the faulted request runs.
"""

import argparse
import json
import os
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import provemu  # noqa: E402
from provemu import Reply  # noqa: E402

PREFIX = "/client/v4"
BATCH_CAP = 200  # the Free plan's records per batch
# The envelope of an injected 4xx fault: (code, message) as Cloudflare
# sends them (dns-providers.md A; any other status comes from its edge as
# HTML).
FAULT_ERRORS = {400: (81058, "An identical record already exists."),
                403: (10000, "Authentication error"),
                404: (7003, "Could not route to the object, perhaps your object identifier "
                      "is invalid?"),
                429: (971, "Please wait and consider throttling your request speed")}


def envelope(result, info=None):
    out = {"success": True, "errors": [], "messages": [], "result": result}
    if info:
        out["result_info"] = info
    return out


def error(status, code, message, chain=None):
    err = {"code": code, "message": message}
    if chain:
        err["error_chain"] = chain
    raise Reply(status, {"success": False, "errors": [err], "messages": [], "result": None})


class CfEmu(provemu.Emu):
    name = "cfemu"

    def __init__(self, args):
        super().__init__(args)
        with open(args.spec) as f:
            spec = json.load(f)
        self.zones = {}
        for z in spec.get("zones", []):
            zid = z.get("id") or uuid.uuid4().hex
            zone = {"id": zid, "name": z["name"], "status": "active",
                    "name_servers": ["ns1.%s" % z["name"], "ns2.%s" % z["name"]],
                    "records": {}}
            self.zones[zid] = zone
            for r in z.get("records", []):
                self.new_record(zone, r)
        self.tokens = {t["value"]: t for t in spec.get("tokens", [])}

    def start(self):
        # BIND starts out serving exactly what the provider holds.
        if self.bind:
            for zone in self.zones.values():
                for name in {r["name"] for r in zone["records"].values()}:
                    self.bind.push_now(zone["name"], name, self.mx_of(zone, name))

    # ---- records
    def new_record(self, zone, r):
        now = provemu.rfc3339()
        rec = {"id": uuid.uuid4().hex, "zone_id": zone["id"], "zone_name": zone["name"],
               "name": r["name"].rstrip(".").lower(), "type": r.get("type", "MX"),
               "content": r["content"].rstrip(".").lower(), "priority": int(r["priority"]),
               "ttl": int(r.get("ttl", 1)), "proxied": False, "proxiable": False,
               "comment": r.get("comment"), "tags": [], "created_on": now,
               "modified_on": now, "meta": {}}
        zone["records"][rec["id"]] = rec
        return rec

    def mx_of(self, zone, name):
        return [(300 if r["ttl"] == 1 else r["ttl"], r["priority"], r["content"] + ".")
                for r in zone["records"].values() if r["name"] == name and r["type"] == "MX"]

    def propagate(self, zone, names):
        if not self.bind:
            return
        for name in names:
            self.bind.push(zone["name"], name,
                           lambda zone=zone, name=name: self.locked_mx(zone, name))

    def locked_mx(self, zone, name):
        with self.lock:
            return self.mx_of(zone, name)

    def fault_body(self, status):
        if status in FAULT_ERRORS:
            code, message = FAULT_ERRORS[status]
            return {"success": False, "errors": [{"code": code, "message": message}],
                    "messages": [], "result": None}
        return b"<html><body><h1>%d Server Error</h1></body></html>" % status

    def after_reply_fault(self, fault, path):
        if fault and fault.get("kind") == "concurrent_after":
            self.own_control("POST", "/_emu/zones/%s/records" % fault["zone"], fault["record"])

    # ---- control
    def zone_named(self, name):
        for z in self.zones.values():
            if z["name"] == name:
                return z
        return None

    def own_control(self, method, path, body):
        parts = path.split("/")  # '', '_emu', 'zones', NAME, ['records']
        if len(parts) >= 4 and parts[2] == "zones":
            with self.lock:
                zone = self.zone_named(parts[3])
                if not zone:
                    return 404, {"error": "no such zone"}
                if len(parts) == 5 and parts[4] == "records" and method == "POST":
                    rec = self.new_record(zone, body)
                    self.propagate(zone, [rec["name"]])
                    return 200, rec
                return 200, {"id": zone["id"], "records": list(zone["records"].values())}
        return 404, {"error": "no such control endpoint"}

    # ---- auth
    def token(self, handler):
        auth = handler.headers.get("Authorization")
        if auth is None and handler.headers.get("X-Auth-Key") is None:
            error(400, 6003, "Invalid request headers",
                  [{"code": 6111, "message": "Invalid format for Authorization header"}])
        if auth is None or not auth.startswith("Bearer ") or " " in auth[7:].strip():
            error(400, 6003, "Invalid request headers",
                  [{"code": 6111, "message": "Invalid format for Authorization header"}])
        tok = self.tokens.get(auth[7:].strip())
        if not tok or tok.get("status", "active") != "active":
            return None
        return tok

    def need(self, tok, zone, perm):
        if tok is None:
            error(401, 10000, "Authentication error")
        perms = tok.get("zones", {}).get(zone["name"], [])
        if perm not in perms and not (perm == "dns_read" and "dns_edit" in perms):
            error(403, 10000, "Authentication error")

    # ---- API
    def page(self, items, query, cap):
        per_page = int(query.get("per_page", [str(cap)])[0])
        per_page = max(5, min(per_page, cap))
        if self.config.get("page_size"):
            per_page = min(per_page, int(self.config["page_size"]))
        page = max(1, int(query.get("page", ["1"])[0]))
        total = len(items)
        pages = max(1, (total + per_page - 1) // per_page)
        chunk = items[(page - 1) * per_page:page * per_page]
        return chunk, {"page": page, "per_page": per_page, "count": len(chunk),
                       "total_count": total, "total_pages": pages}

    def api(self, handler, method, path, query, raw):
        if not path.startswith(PREFIX + "/"):
            error(404, 7000, "No route for that URI")
        parts = path[len(PREFIX):].strip("/").split("/")
        with self.lock:
            tok = self.token(handler)
            if parts == ["user", "tokens", "verify"] and method == "GET":
                if tok is None:
                    error(401, 1000, "Invalid API Token")
                return 200, dict(envelope({"id": uuid.uuid5(uuid.NAMESPACE_OID, tok["value"]).hex,
                                           "status": "active"}),
                                 messages=[{"code": 10000,
                                            "message": "This API Token is valid and active",
                                            "type": None}]), {}
            if parts == ["zones"] and method == "GET":
                return self.list_zones(tok, query)
            if len(parts) >= 3 and parts[0] == "zones" and parts[2] == "dns_records":
                zone = self.zones.get(parts[1])
                if zone is None:
                    error(404, 7003, "Could not route to %s, perhaps your object identifier "
                          "is invalid?" % path[len(PREFIX):], [{"code": 7000,
                                                                "message": "No route for that URI"}])
                if len(parts) == 3 and method == "GET":
                    return self.list_records(tok, zone, query)
                if parts[3:] == ["batch"] and method == "POST":
                    return self.batch(tok, zone, raw)
            error(404, 7000, "No route for that URI")

    def list_zones(self, tok, query):
        if tok is None:
            error(401, 10000, "Authentication error")
        visible = [z for z in self.zones.values()
                   if "zone_read" in tok.get("zones", {}).get(z["name"], [])]
        if not any(tok.get("zones", {}).values()):
            error(403, 10000, "Authentication error")
        name = query.get("name", [None])[0]
        if name:
            visible = [z for z in visible if z["name"] == name.lower().rstrip(".")]
        out = [{k: z[k] for k in ("id", "name", "status", "name_servers")} for z in visible]
        chunk, info = self.page(out, query, 50)
        return 200, envelope(chunk, info), {}

    def list_records(self, tok, zone, query):
        self.need(tok, zone, "dns_read")
        recs = list(zone["records"].values())
        for key in ("type", "name", "content"):
            want = query.get(key, [None])[0]
            if want:
                recs = [r for r in recs if str(r[key]).lower() == want.lower().rstrip(".")]
        recs.sort(key=lambda r: r["created_on"] + r["id"])
        chunk, info = self.page(recs, query, 5000)
        return 200, envelope(chunk, info), {}

    def check_post(self, zone, work, r):
        name = str(r.get("name", "")).lower().rstrip(".")
        if name != zone["name"] and not name.endswith("." + zone["name"]):
            error(400, 1004, "DNS Validation Error", [{"code": 9005,
                  "message": "Record name must be in the zone"}])
        if r.get("type") != "MX" or not r.get("content") or \
                not 0 <= int(r.get("priority", -1)) <= 65535:
            error(400, 1004, "DNS Validation Error")
        ttl = int(r.get("ttl", 1))
        if ttl != 1 and not 60 <= ttl <= 86400:
            error(400, 9021, "Invalid TTL. Must be between 60 and 86400 seconds, or 1 for Automatic.")
        for other in work.values():
            if (other["name"], other["type"], other["content"], other["priority"]) == \
                    (name, "MX", r["content"].lower().rstrip("."), int(r["priority"])):
                error(400, 81058, "An identical record already exists.")

    def batch(self, tok, zone, raw):
        self.need(tok, zone, "dns_edit")
        try:
            body = json.loads(raw)
        except ValueError:
            error(400, 9207, "Request body is invalid.")
        dels, posts = body.get("deletes", []), body.get("posts", [])
        patches, puts = body.get("patches", []), body.get("puts", [])
        if len(dels) + len(posts) + len(patches) + len(puts) > BATCH_CAP:
            error(400, 81000, "Batch exceeds the record limit of your plan")
        work = {k: dict(v) for k, v in zone["records"].items()}
        deleted, touched = [], set()
        for d in dels:
            rec = work.pop(d.get("id"), None)
            if rec is None:
                error(400, 81044, "Record does not exist.")
            deleted.append(rec)
            touched.add(rec["name"])
        for p in patches + puts:
            rec = work.get(p.get("id"))
            if rec is None:
                error(400, 81044, "Record does not exist.")
            rec.update({k: p[k] for k in ("content", "priority", "ttl") if k in p})
            rec["modified_on"] = provemu.rfc3339()
            touched.add(rec["name"])
        posted = []
        for p in posts:
            self.check_post(zone, work, p)
            saved = zone["records"]
            zone["records"] = work
            posted.append(self.new_record(zone, p))
            zone["records"] = saved
            touched.add(posted[-1]["name"])
        zone["records"] = work
        self.propagate(zone, touched)
        result = {"deletes": deleted, "patches": [], "puts": [], "posts": posted}
        return 200, envelope(result), {}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    provemu.common_args(ap)
    args = ap.parse_args()
    emu = CfEmu(args)
    return provemu.serve(emu, lambda e: {"api_url": e.base + PREFIX})


if __name__ == "__main__":
    sys.exit(main())
