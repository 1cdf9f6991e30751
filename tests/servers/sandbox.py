#!/usr/bin/python3
"""The mailmode sandbox: a rehearsal world on loopback.

    sandbox.py start  --dir DIR --plugin-dir PLUGINS --mailmode BINARY
    sandbox.py stop   --dir DIR
    sandbox.py status --dir DIR

`start` runs, on 127.0.0.0/8 only:
  - BIND 9 primary + secondary (dns-harness, zone set "sandbox"): the zones
    contoso.test (MX at the service's gateway hosts: in gateway mode) and
    fabrikam.test (MX at its Microsoft 365 front door: no mode), TSIG key
    gw-key;
  - the Microsoft 365 emulator (m365emu.py, HTTPS with a test CA) with one
    tenant, sandbox.onmicrosoft.com, whose accepted domains are those two, and
    an app registration with a client secret;
  - one emulated DNS provider per entry of PROVIDERS (cfemu.py,
    gcloudemu.py, r53emu.py, azureemu.py), each holding one domain
    (cloudflare.test, gcloud.test, route53.test, azure.test:
    Microsoft 365 MX, no mode) whose real zone is on the BIND servers: a
    change the provider's API accepts is pushed to BIND after the
    propagation delay (--provider-delay), and verified there, on the
    authoritative servers; the domain has a [dns NAME-dns] section for the
    provider and a [profile NAME] of its own;
  - the mail path, every SMTP server on one free port P: the emulator's SMTP
    front door on 127.0.0.31 (*.mail.protection.outlook.test, zone
    outlook.test) and the security service (mailsim.py service) on its gateway
    hosts mx-01.gw / mx-02.gw.sandbox.test (127.0.0.21/.22) and its mailflow
    smart host mf-outbound.sandbox.test (127.0.0.23), returning mailflow mail
    from mf-return.sandbox.test (127.0.0.24); its outbound host
    out.gw.sandbox.test (127.0.0.25) for gateway mode's outgoing mail, and the
    internet's mail server mx.internet.sandbox.test (127.0.0.42, the MX of
    internet.sandbox.test);
and writes DIR/mailmode.conf wired to them and DIR/sandbox.json (pids,
addresses, "providers" (name -> pid, domain, profile, api_url, base_url,
ca_file, dir), "smtp_port", "front_door", "gateway_hosts", "smart_host",
"return_host", "mailsim_control_url", "scan_log", "quicktest").  The servers keep running after
`start` returns; `stop` ends them by pid.  A test sets
MAILMODE_SANDBOX_OWNER_PID so that they also stop when it dies.  Standard
library only.
"""

import argparse
import json
import os
import random
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from srvlib import pid_alive, read_env, write_atomic  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
HARNESS = os.path.join(HERE, "dns-harness")
DNSDELAY = os.path.join(HERE, "dnsdelay.py")
UPDATE_PROXY = "127.0.0.14"
EMULATOR = os.path.join(HERE, "m365emu.py")
MAILSIM = os.path.join(HERE, "mailsim.py")
PYTHON = sys.executable or "/usr/bin/python3"

TENANT = "sandbox.onmicrosoft.com"
DOMAINS = ("contoso.test", "fabrikam.test")
GATEWAY_MX = "10 mx-01.gw.sandbox.test, 20 mx-02.gw.sandbox.test"
START_TIMEOUT = 30.0
LOOP_HEADER = "X-Sandbox-Mailflow-Processing-Id"
FRONT_DOOR = {"name": "*.mail.protection.outlook.test", "address": "127.0.0.31"}
GATEWAY_HOSTS = [{"name": "mx-01.gw.sandbox.test", "address": "127.0.0.21", "preference": 10},
                 {"name": "mx-02.gw.sandbox.test", "address": "127.0.0.22", "preference": 20}]
SMART_HOST = {"name": "mf-outbound.sandbox.test", "address": "127.0.0.23"}
RETURN_HOST = {"name": "mf-return.sandbox.test", "address": "127.0.0.24"}
# Gateway mode's outgoing mail (outbound = yes) goes to the service's
# outbound host, which hands it to the internet's mail server (the MX of
# internet.sandbox.test).
OUTBOUND_HOST = {"name": "out.gw.sandbox.test", "address": "127.0.0.25"}
INTERNET_MX = {"name": "mx.internet.sandbox.test", "address": "127.0.0.42"}
QUICKTEST_SENDER = "quicktest@internet.test"
# What a provider domain's MX is before any mode: its front door (TTL 60,
# the shortest Cloudflare takes).
PROVIDER_MX_TTL = 60


def front_door(domain):
    return "%s.mail.protection.outlook.test" % domain.replace(".", "-")


def cloudflare_spec(p, secrets_dir):
    """cfemu.py's spec, and the [dns] keys besides api_url and ca_file."""
    token = secrets.token_urlsafe(32)
    token_file = os.path.join(secrets_dir, "cloudflare.token")
    write_atomic(token_file, token + "\n", 0o600)
    spec = {"zones": [{"name": p["domain"], "records": [
                {"type": "MX", "name": p["domain"], "content": front_door(p["domain"]),
                 "priority": 0, "ttl": PROVIDER_MX_TTL}]}],
            "tokens": [{"value": token, "zones": {
                p["domain"]: ["zone_read", "dns_read", "dns_edit"]}}]}
    return spec, {"api_token_file": os.path.relpath(token_file, os.path.dirname(secrets_dir))}


def gcloud_spec(p, secrets_dir):
    """gcloudemu.py's spec (it writes the account's key file itself)."""
    zone = p["domain"].replace(".", "-")
    spec = {"project": "mailmode-sandbox",
            "zones": [{"name": zone, "dnsName": p["domain"] + ".", "rrsets": [
                {"name": p["domain"] + ".", "type": "MX", "ttl": PROVIDER_MX_TTL,
                 "rrdatas": ["0 %s." % front_door(p["domain"])]}]}],
            "accounts": [{"name": "mailmode", "roles": {zone: "admin"}}]}
    return spec, {"service_account_file": "providers/%s/mailmode.json" % p["name"]}


def azure_spec(p, secrets_dir):
    """azureemu.py's spec (it writes the app's secret file itself; the
    client id is in its emu.json)."""
    spec = {"subscription": "5a9c6b1e-3f0d-4c2a-9e7b-8d1f0a2b3c4d",
            "tenant": "d1c2b3a4-0e9f-4a8b-b7c6-5d4e3f2a1b0c",
            "zones": [{"resource_group": "rg-sandbox-dns", "name": p["domain"], "recordsets": [
                {"name": "@", "TTL": PROVIDER_MX_TTL,
                 "MXRecords": [{"preference": 0, "exchange": front_door(p["domain"])}]}]}],
            "apps": [{"name": "mailmode", "roles": {
                "": "Reader", "/resourceGroups/rg-sandbox-dns": "DNS Zone Contributor"}}]}
    return spec, {"subscription": spec["subscription"], "tenant": spec["tenant"],
                  "client_id": "{client_id_mailmode}", "login_url": "{login_url}",
                  "client_secret_file": "providers/%s/mailmode.secret" % p["name"]}


def route53_spec(p, secrets_dir):
    """r53emu.py's spec: an IAM user granted the actions mailmode.conf(5)
    lists, its secret in a file of its own."""
    secret = secrets.token_urlsafe(30)
    secret_file = os.path.join(secrets_dir, "route53.secret")
    write_atomic(secret_file, secret + "\n", 0o600)
    spec = {"zones": [{"name": p["domain"] + ".", "rrsets": [
                {"name": p["domain"] + ".", "type": "MX", "ttl": PROVIDER_MX_TTL,
                 "values": ["0 %s." % front_door(p["domain"])]}]}],
            "users": [{"name": "sandbox-dns", "access_key_id": ROUTE53_KEY_ID,
                       "secret_access_key": secret, "actions": ROUTE53_ACTIONS}]}
    return spec, {"access_key_id": ROUTE53_KEY_ID,
                  "secret_access_key_file": os.path.relpath(secret_file,
                                                            os.path.dirname(secrets_dir))}


# Route 53's IAM user in the sandbox and what it is granted.
ROUTE53_KEY_ID = "AKIASANDBOXROUTE5301"
ROUTE53_ACTIONS = ["route53:ListHostedZonesByName", "route53:ListResourceRecordSets",
                   "route53:ChangeResourceRecordSets", "route53:GetChange"]


# The emulated DNS providers, one domain each.  name: the [dns NAME-dns]
# section's provider and the profile's name; emulator: the script in this
# directory (provemu.py: --dir --spec --dns --propagation-delay, emu.json
# with pid, api_url and ca_file); spec(p, secrets_dir): its spec and the
# section's other keys (credential files relative to DIR; "{field}" is
# filled from the emulator's emu.json, e.g. a token endpoint's URL).
# Another provider is one more entry.
PROVIDERS = [
    {"name": "cloudflare", "domain": "cloudflare.test", "emulator": "cfemu.py",
     "spec": cloudflare_spec},
    {"name": "gcloud", "domain": "gcloud.test", "emulator": "gcloudemu.py",
     "spec": gcloud_spec},
    {"name": "route53", "domain": "route53.test", "emulator": "r53emu.py",
     "spec": route53_spec},
    {"name": "azure", "domain": "azure.test", "emulator": "azureemu.py",
     "spec": azure_spec},
]

CONFIG = """\
# mailmode configuration for the sandbox in {dir}
# (written by `mailmode sandbox start`; servers on loopback only)

[mailmode]
state = state.db
plugin_dir = {plugin_dir}
default_profile = sandbox

# One profile for every sandbox domain: gateway mode uses dns + service,
# mailflow mode uses tenant + service.
[profile sandbox]
dns = sandbox-dns
service = sandbox-service
tenant = sandbox-tenant
# What gateway teardown restores for a domain adopted in gateway mode
# (no receipt holds its original MX): the tenant's front door.
fallback_mx = 0 {{domain_dashes}}.mail.protection.outlook.test
fallback_ttl = 1

[dns sandbox-dns]
primary = 127.0.0.11
port = {dns_port}
resolver = 127.0.0.11
resolver_port = {dns_port}
tsig_key = gw-key
tsig_algorithm = hmac-sha256
tsig_secret_file = dns/gw-key.secret
timeout = 2

[service sandbox-service]
gateway_mx = {gateway_mx}
gateway_ttl = 60
smart_hosts = mf-outbound.sandbox.test
tls_domain = mf-outbound.sandbox.test
# Gateway mode's outgoing mail (profile key outbound = yes).
outbound_smart_hosts = out.gw.sandbox.test
connector_type = Partner
tls_cert_name = mf-return.sandbox.test
loop_header = {loop_header}
name_prefix = mailmode
# The addresses the service sends from (a quick test counts the hops from
# them: exactly one means scanned once).
service_ips = 127.0.0.21 127.0.0.22 127.0.0.24

[tenant sandbox-tenant]
tenant = {tenant}
client_id = {client_id}
client_secret_file = client.secret
login_url = {login_url}
api_url = {api_url}
ca_file = emu/ca.pem
# How long a new Exchange object may stay unlisted (30 minutes in a real
# tenant); the emulator's objects show within seconds.
visibility_window_ms = 10000
"""

QUICKTEST = """
# The mail path: every SMTP server of the sandbox (the gateway hosts, the
# service's smart host, the tenant's front door) listens on port {smtp_port}
# of the address its name has in the sandbox DNS.  For a quick test (send a
# message to a domain's MX, follow it with Get-MessageTraceV2).
[quicktest]
smtp_port = {smtp_port}
resolver = 127.0.0.11@{dns_port}
sender = {quicktest_sender}
timeout = 120s
"""


def fail(message):
    print("mailmode: error: sandbox: " + message, file=sys.stderr)
    sys.exit(1)




def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None






def emulator_call(emu, method, path, body=None):
    context = ssl.create_default_context(cafile=emu["ca_file"])
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(emu["base_url"] + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, context=context, timeout=10) as answer:
        return json.load(answer)


def owner_args():
    owner = os.environ.get("MAILMODE_SANDBOX_OWNER_PID", "")
    return ["--owner-pid", owner] if owner.isdigit() else []


def smtp_addresses():
    return [FRONT_DOOR["address"], SMART_HOST["address"]] + \
        [h["address"] for h in GATEWAY_HOSTS]


def port_free(port):
    for addr in smtp_addresses():
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((addr, port))
        except OSError:
            return False
        finally:
            sock.close()
    return True


def pick_smtp_port(dns_port):
    for _ in range(200):
        port = random.randrange(20000, 60000)
        if port != dns_port and port_free(port):
            return port
    fail("no free SMTP port on %s" % ", ".join(smtp_addresses()))


def start_process(argv, log_path, json_path, what):
    """Start a server that writes json_path (with its pid) when ready."""
    log = open(log_path, "ab")
    process = subprocess.Popen(argv + owner_args(), stdin=subprocess.DEVNULL,
                               stdout=log, stderr=log, start_new_session=True)
    log.close()
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        info = read_json(json_path)
        if info and info.get("pid") == process.pid:
            return info
        if process.poll() is not None:
            return None
        time.sleep(0.1)
    process.terminate()
    fail("%s did not start within %ds (see %s)" % (what, START_TIMEOUT, log_path))


def mail_path_missing():
    """Why the mail path cannot run here, or None."""
    if not os.path.exists(MAILSIM):
        return "%s is missing" % MAILSIM
    probe = subprocess.run([PYTHON, "-c", "import aiosmtpd, cryptography"],
                           stdin=subprocess.DEVNULL, capture_output=True)
    if probe.returncode != 0:
        return "python3-aiosmtpd is not installed"
    return None


def start_emulator(directory, smtp_port, dns_spec, latency_ms):
    emu_dir = os.path.join(directory, "emu")
    os.makedirs(emu_dir, exist_ok=True)
    smtp = ["--smtp-port", str(smtp_port), "--smtp-address", FRONT_DOOR["address"],
            "--dns", dns_spec] if smtp_port else []
    latency = ["--latency-ms", str(latency_ms)] if latency_ms else []
    emu = start_process([PYTHON, EMULATOR, "--dir", emu_dir] + smtp + latency,
                        os.path.join(emu_dir, "emu.log"), os.path.join(emu_dir, "emu.json"),
                        "the Microsoft 365 emulator")
    if emu is None:
        fail("the Microsoft 365 emulator exited at start (see %s/emu.log)" % emu_dir)
    return emu


def start_providers(directory, dns_port, delay):
    """Each provider's emulator on its BIND zone: {name: its emu.json +
    domain and section keys}."""
    tsig = "127.0.0.11:%d:gw-key:%s" % (dns_port, os.path.join(directory, "dns",
                                                               "gw-key.secret"))
    out = {}
    for p in PROVIDERS:
        emu_dir = os.path.join(directory, "providers", p["name"])
        os.makedirs(emu_dir, exist_ok=True)
        spec, keys = p["spec"](p, os.path.join(directory, "providers"))
        spec_file = os.path.join(emu_dir, "spec.json")
        write_atomic(spec_file, json.dumps(spec, indent=1) + "\n", 0o600)
        info = start_process([PYTHON, os.path.join(HERE, p["emulator"]), "--dir", emu_dir,
                              "--spec", spec_file, "--dns", tsig,
                              "--propagation-delay", str(delay)],
                             os.path.join(emu_dir, "emu.log"), os.path.join(emu_dir, "emu.json"),
                             "the %s emulator" % p["name"])
        if info is None:
            fail("the %s emulator exited at start (see %s/emu.log)" % (p["name"], emu_dir))
        out[p["name"]] = dict(info, domain=p["domain"], profile=p["name"],
                              dns_section=p["name"] + "-dns",
                              keys={k: v.format(**info) for k, v in keys.items()})
    return out


PROVIDER_CONFIG = """
# {domain} is hosted at the emulated {name} (its changes reach the
# sandbox BIND after the provider's propagation delay).
[dns {name}-dns]
provider = {name}
api_url = {api_url}
ca_file = {ca_file}
{keys}port = {dns_port}
resolver = 127.0.0.11
resolver_port = {dns_port}
timeout = 2

[profile {name}]
dns = {name}-dns
service = sandbox-service
tenant = sandbox-tenant
"""


def provider_config(directory, providers, dns_port):
    return "".join(PROVIDER_CONFIG.format(
        name=name, domain=p["domain"], api_url=p["api_url"], dns_port=dns_port,
        ca_file=os.path.relpath(p["ca_file"], directory),
        keys="".join("%s = %s\n" % kv for kv in sorted(p["keys"].items())))
        for name, p in providers.items())


def start_mailsim(directory, smtp_port, dns_spec):
    mail_dir = os.path.join(directory, "mail")
    os.makedirs(mail_dir, exist_ok=True)
    argv = [PYTHON, MAILSIM, "service", "--dir", mail_dir, "--port", str(smtp_port),
            "--dns", dns_spec, "--ca-dir", os.path.join(directory, "emu"),
            "--loop-header", LOOP_HEADER, "--return-host", RETURN_HOST["name"],
            "--smart-host", SMART_HOST["name"], "--outbound-host", OUTBOUND_HOST["name"],
            "--internet-mx", INTERNET_MX["name"]]
    for h in GATEWAY_HOSTS:
        argv += ["--gateway", h["name"]]
    info = start_process(argv, os.path.join(mail_dir, "mailsim.log"),
                         os.path.join(mail_dir, "mailsim.json"), "the mail-path simulator")
    if info is None:
        fail("the mail-path simulator exited at start (see %s/mailsim.log)" % mail_dir)
    return info


# Extra tenants and domains (`-- --tenants T --domains N`), to rehearse a
# runbook: dNNN.test have Microsoft 365 MX and no mode; tenantNN accept
# them round-robin, each with a profile of its own name.  One multi-tenant
# app registration (the same client id and secret) serves them all.
EXTRA_TENANT = """
[tenant {name}]
tenant = {name}.onmicrosoft.com
client_id = {client_id}
client_secret_file = client.secret
login_url = {login_url}
api_url = {api_url}
ca_file = emu/ca.pem
visibility_window_ms = 10000

[profile {name}]
dns = sandbox-dns
service = sandbox-service
tenant = {name}
fallback_mx = 0 {{domain_dashes}}.mail.protection.outlook.test
fallback_ttl = 1
"""


def extra_layout(tenants, domains):
    """{tenant name: [domains]} for the extra tenants and domains."""
    names = ["d%03d.test" % i for i in range(1, domains + 1)]
    layout = {"tenant%02d" % t: [] for t in range(1, tenants + 1)} if domains else {}
    for i, name in enumerate(names):
        layout["tenant%02d" % (i % tenants + 1)].append(name)
    return layout


def start_dnsdelay(directory, dns_port, update_ms):
    """A forwarder in front of the primary holding each UPDATE update_ms."""
    stats = os.path.join(directory, "dns", "dnsdelay.json")
    log = open(os.path.join(directory, "dns", "dnsdelay.log"), "ab")
    process = subprocess.Popen([PYTHON, DNSDELAY, "--listen", "%s:%d" % (UPDATE_PROXY, dns_port),
                                "--to", "127.0.0.11:%d" % dns_port, "--update-ms", str(update_ms),
                                "--stats", stats] + owner_args(),
                               stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                               start_new_session=True)
    log.close()
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and not os.path.exists(stats):
        if process.poll() is not None:
            fail("the DNS update delay exited at start (see %s/dns/dnsdelay.log)" % directory)
        time.sleep(0.05)
    return process.pid


def start(args):
    directory = os.path.abspath(args.dir)
    state = read_json(os.path.join(directory, "sandbox.json"))
    if state and pid_alive(state.get("emulator_pid", 0)):
        print("The sandbox in %s is already running." % directory)
        print_usage(directory, args.mailmode, bool(state.get("smtp_port")))
        return 0
    os.makedirs(directory, mode=0o755, exist_ok=True)
    dns_dir = os.path.join(directory, "dns")
    layout = extra_layout(args.tenants, args.domains)
    extra = [d for names in layout.values() for d in names]
    harness = subprocess.run([HARNESS, "start", dns_dir, "--zones", "sandbox",
                              "--domains", ",".join(extra + [p["domain"] for p in PROVIDERS]),
                              "--stale", args.stale] +
                             (["--querylog"] if args.querylog else []) + owner_args(),
                             stdin=subprocess.DEVNULL)
    if harness.returncode != 0:
        fail("the DNS servers did not start (see %s)" % dns_dir)
    dns = read_env(os.path.join(dns_dir, "dns.env"))
    dns_spec = "127.0.0.11:%s,127.0.0.12:%s" % (dns["DNS_PORT"], dns["DNS_PORT"])
    missing = mail_path_missing()
    if missing:
        print("mailmode: warning: sandbox: no mail path (SMTP front door, security "
              "service): %s" % missing, file=sys.stderr)
        smtp_port, mail = 0, {}
    else:
        smtp_port = pick_smtp_port(int(dns["DNS_PORT"]))
    started = []
    try:
        emu = start_emulator(directory, smtp_port, dns_spec, args.latency_ms)
        started.append(emu["pid"])
        providers = start_providers(directory, int(dns["DNS_PORT"]), args.provider_delay)
        started += [p["pid"] for p in providers.values()]
        if args.update_latency_ms:
            started.append(start_dnsdelay(directory, int(dns["DNS_PORT"]),
                                          args.update_latency_ms))
        if smtp_port:
            mail = start_mailsim(directory, smtp_port, dns_spec)
            started.append(mail["pid"])
    except BaseException:
        for pid in reversed(started):
            stop_pid(pid)
        subprocess.run([HARNESS, "stop", dns_dir])
        raise
    client_id = str(uuid.uuid4())
    client_secret = secrets.token_urlsafe(32)
    tenant_id = str(uuid.uuid4())
    emulator_call(emu, "POST", "/_emu/tenants", {
        "tenant_id": tenant_id,
        "initial_domain": TENANT,
        "accepted_domains": [{"DomainName": d, "DomainType": "Authoritative",
                              "Default": d == DOMAINS[0]}
                             for d in DOMAINS + tuple(p["domain"] for p in PROVIDERS)],
        "client_id": client_id,
        "client_secret": client_secret,
    })
    for name, names in layout.items():
        emulator_call(emu, "POST", "/_emu/tenants", {
            "tenant_id": str(uuid.uuid4()),
            "initial_domain": name + ".onmicrosoft.com",
            "accepted_domains": [{"DomainName": d, "DomainType": "Authoritative",
                                  "Default": i == 0} for i, d in enumerate(names)],
            "client_id": client_id,
            "client_secret": client_secret,
        })
    write_atomic(os.path.join(directory, "client.secret"), client_secret + "\n", 0o600)
    config = CONFIG.format(
        dir=directory, plugin_dir=os.path.abspath(args.plugin_dir), dns_port=dns["DNS_PORT"],
        gateway_mx=GATEWAY_MX, tenant=TENANT, client_id=client_id,
        login_url=emu["login_url"], api_url=emu["base_url"], loop_header=LOOP_HEADER)
    if args.update_latency_ms:
        config = config.replace("primary = 127.0.0.11", "primary = " + UPDATE_PROXY)
    config += provider_config(directory, providers, dns["DNS_PORT"])
    config += "".join(EXTRA_TENANT.format(name=name, client_id=client_id,
                                          login_url=emu["login_url"], api_url=emu["base_url"])
                      for name in layout)
    if smtp_port:
        config += QUICKTEST.format(smtp_port=smtp_port, quicktest_sender=QUICKTEST_SENDER,
                                   dns_port=dns["DNS_PORT"])
    write_atomic(os.path.join(directory, "mailmode.conf"), config, 0o644)
    state = {
        "emulator_pid": emu["pid"], "dns_dir": dns_dir, "dns_port": int(dns["DNS_PORT"]),
        "emulator_url": emu["base_url"], "emulator_ca": emu["ca_file"], "tenant": TENANT,
        "tenant_id": tenant_id, "client_id": client_id, "domains": list(DOMAINS),
        "extra_tenants": layout, "dnsdelay_pid": started[-1] if args.update_latency_ms else 0,
        "latency_ms": args.latency_ms, "update_latency_ms": args.update_latency_ms,
        "providers": {name: {k: p[k] for k in ("pid", "domain", "profile", "dns_section",
                                               "api_url", "base_url", "ca_file", "dir")}
                      for name, p in providers.items()},
        "provider_delay_s": args.provider_delay,
    }
    if smtp_port:
        state.update({
            "smtp_port": smtp_port, "front_door": FRONT_DOOR, "gateway_hosts": GATEWAY_HOSTS,
            "smart_host": SMART_HOST, "return_host": RETURN_HOST, "loop_header": LOOP_HEADER,
            "mailsim_pid": mail["pid"], "mailsim_control_url": mail["control_url"],
            "scan_log": mail["scan_log"], "mailsim": MAILSIM,
            "quicktest": {"smtp_port": smtp_port, "sender": QUICKTEST_SENDER,
                          "dns": [["127.0.0.11", int(dns["DNS_PORT"])],
                                  ["127.0.0.12", int(dns["DNS_PORT"])]],
                          "trace_cmdlet": "Get-MessageTraceV2"}})
    write_atomic(os.path.join(directory, "sandbox.json"), json.dumps(state, indent=2) + "\n",
               0o644)
    print("The sandbox is running in %s:" % directory)
    print("  BIND 9 primary 127.0.0.11 and secondary 127.0.0.12, port %s" % dns["DNS_PORT"])
    print("  Microsoft 365 emulator %s (tenant %s)" % (emu["base_url"], TENANT))
    for name, p in providers.items():
        print("  %s emulator %s (%s, profile %s)" % (name, p["api_url"], p["domain"], name))
    if smtp_port:
        print("  mail path on SMTP port %d: front door %s, gateway hosts %s, smart host %s"
              % (smtp_port, FRONT_DOOR["address"],
                 " ".join(h["address"] for h in GATEWAY_HOSTS), SMART_HOST["address"]))
    print_usage(directory, args.mailmode, bool(smtp_port))
    return 0


def print_usage(directory, binary, mail=True):
    config = os.path.join(directory, "mailmode.conf")
    print("Domains: contoso.test (MX at the gateway hosts), fabrikam.test (Microsoft 365 MX),")
    print("  %s (Microsoft 365 MX, zones at emulated DNS providers: --profile %s)."
          % (", ".join(p["domain"] for p in PROVIDERS), "|".join(p["name"] for p in PROVIDERS)))
    print("Try:")
    print("  export MAILMODE_CONFIG=%s" % config)
    print("  %s adopt contoso.test --mode gateway" % binary)
    print("  %s switch contoso.test --to mailflow" % binary)
    print("  %s status" % binary)
    if mail:
        print("  %s %s send --sandbox %s --to someone@contoso.test --count 1"
              % (PYTHON, MAILSIM, directory))
    print("  %s sandbox stop --dir %s" % (binary, directory))


def stop_pid(pid):
    if not pid or not pid_alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


def stop(args):
    directory = os.path.abspath(args.dir)
    state = read_json(os.path.join(directory, "sandbox.json"))
    if not state:
        print("No sandbox runs in %s." % directory)
        return 0
    stop_pid(state.get("mailsim_pid"))
    stop_pid(state.get("dnsdelay_pid"))
    stop_pid(state.get("emulator_pid"))
    for p in state.get("providers", {}).values():
        stop_pid(p.get("pid"))
    subprocess.run([HARNESS, "stop", state["dns_dir"]], stdin=subprocess.DEVNULL)
    os.remove(os.path.join(directory, "sandbox.json"))
    print("The sandbox in %s is stopped." % directory)
    return 0


def status(args):
    directory = os.path.abspath(args.dir)
    state = read_json(os.path.join(directory, "sandbox.json"))
    if not state:
        print("No sandbox runs in %s." % directory)
        return 0
    dns = read_env(os.path.join(state["dns_dir"], "dns.env"))
    rows = [("Microsoft 365 emulator", state.get("emulator_pid"), state.get("emulator_url"))]
    rows += [("%s emulator" % name, p.get("pid"), p.get("api_url"))
             for name, p in sorted(state.get("providers", {}).items())]
    if state.get("smtp_port"):
        rows.append(("Microsoft 365 front door", state.get("emulator_pid"), "smtp %s:%s" % (
            state["front_door"]["address"], state["smtp_port"])))
        rows.append(("mail-path simulator", state.get("mailsim_pid"), "smtp %s:%s" % (
            " ".join(h["address"] for h in state["gateway_hosts"] + [state["smart_host"]]),
            state["smtp_port"])))
    for label, key in (("BIND 9 primary", "DNS_PRIMARY_PID"),
                       ("BIND 9 secondary", "DNS_SECONDARY_PID")):
        pid = int(dns.get(key, "0") or 0)
        rows.append((label, pid, "port %s" % state.get("dns_port")))
    down = 0
    for label, pid, where in rows:
        alive = bool(pid) and pid_alive(pid)
        down += not alive
        print("%-24s pid %-8s %-8s %s" % (label, pid, "running" if alive else "DOWN", where))
    print("config: %s" % os.path.join(directory, "mailmode.conf"))
    return 1 if down else 0


def main():
    parser = argparse.ArgumentParser(prog="mailmode sandbox")
    parser.add_argument("action", choices=("start", "stop", "status"))
    parser.add_argument("--dir", required=True)
    parser.add_argument("--plugin-dir", default="")
    parser.add_argument("--mailmode", default="mailmode")
    parser.add_argument("--tenants", type=int, default=1,
                        help="extra tenants tenant01.. for the extra domains")
    parser.add_argument("--domains", type=int, default=0,
                        help="extra domains d001.test.. (Microsoft 365 MX, no mode)")
    parser.add_argument("--stale", default="",
                        help="extra domains whose secondary never receives changes")
    parser.add_argument("--latency-ms", type=int, default=0,
                        help="added to every Microsoft 365 API call")
    parser.add_argument("--update-latency-ms", type=int, default=0,
                        help="added to every DNS UPDATE (a forwarder before the primary)")
    parser.add_argument("--provider-delay", type=float, default=1.0,
                        help="seconds before a DNS provider's accepted change reaches BIND")
    parser.add_argument("--querylog", action="store_true",
                        help="BIND logs every query and update (dns/*/query.log)")
    args = parser.parse_args()
    return {"start": start, "stop": stop, "status": status}[args.action](args)


if __name__ == "__main__":
    sys.exit(main())
