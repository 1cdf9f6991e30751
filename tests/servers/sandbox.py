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
and writes DIR/mailmode.conf wired to them.  The servers keep running after
`start` returns; `stop` ends them by pid.  A test sets
MAILMODE_SANDBOX_OWNER_PID so that they also stop when it dies.  Standard
library only.
"""

import argparse
import json
import os
import secrets
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
HARNESS = os.path.join(HERE, "dns-harness")
EMULATOR = os.path.join(HERE, "m365emu.py")
PYTHON = sys.executable or "/usr/bin/python3"

TENANT = "sandbox.onmicrosoft.com"
DOMAINS = ("contoso.test", "fabrikam.test")
GATEWAY_MX = "10 mx-01.gw.sandbox.test, 20 mx-02.gw.sandbox.test"
START_TIMEOUT = 30.0

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
fallback_ttl = 300

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
connector_type = OnPremises
tls_cert_name = mf-return.sandbox.test
loop_header = X-Sandbox-Mailflow-Processing-Id
name_prefix = mailmode

[tenant sandbox-tenant]
tenant = {tenant}
client_id = {client_id}
client_secret_file = client.secret
login_url = {login_url}
api_url = {api_url}
ca_file = emu/ca.pem
"""


def fail(message):
    print("mailmode: error: sandbox: " + message, file=sys.stderr)
    sys.exit(1)


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def write_file(path, text, mode):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def read_env(path):
    """Variables of a shell-sourceable KEY=VALUE file."""
    values = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if "=" in line and not line.startswith("#"):
                key, _, value = line.partition("=")
                values[key.replace("export ", "").strip()] = value.strip().strip("'\"")
    return values


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


def start_emulator(directory):
    emu_dir = os.path.join(directory, "emu")
    os.makedirs(emu_dir, exist_ok=True)
    log = open(os.path.join(emu_dir, "emu.log"), "ab")
    process = subprocess.Popen([PYTHON, EMULATOR, "--dir", emu_dir] + owner_args(),
                               stdin=subprocess.DEVNULL,
                               stdout=log, stderr=log, start_new_session=True)
    log.close()
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        emu = read_json(os.path.join(emu_dir, "emu.json"))
        if emu and emu.get("pid") == process.pid:
            return emu
        if process.poll() is not None:
            fail("the Microsoft 365 emulator exited at start (see %s/emu.log)" % emu_dir)
        time.sleep(0.1)
    process.terminate()
    fail("the Microsoft 365 emulator did not start within %ds" % START_TIMEOUT)


def start(args):
    directory = os.path.abspath(args.dir)
    state = read_json(os.path.join(directory, "sandbox.json"))
    if state and pid_alive(state.get("emulator_pid", 0)):
        print("The sandbox in %s is already running." % directory)
        print_usage(directory, args.mailmode)
        return 0
    os.makedirs(directory, mode=0o755, exist_ok=True)
    dns_dir = os.path.join(directory, "dns")
    harness = subprocess.run([HARNESS, "start", dns_dir, "--zones", "sandbox"] + owner_args(),
                             stdin=subprocess.DEVNULL)
    if harness.returncode != 0:
        fail("the DNS servers did not start (see %s)" % dns_dir)
    dns = read_env(os.path.join(dns_dir, "dns.env"))
    try:
        emu = start_emulator(directory)
    except BaseException:
        subprocess.run([HARNESS, "stop", dns_dir])
        raise
    client_id = str(uuid.uuid4())
    client_secret = secrets.token_urlsafe(32)
    tenant_id = str(uuid.uuid4())
    emulator_call(emu, "POST", "/_emu/tenants", {
        "tenant_id": tenant_id,
        "initial_domain": TENANT,
        "accepted_domains": [{"DomainName": d, "DomainType": "Authoritative",
                              "Default": d == DOMAINS[0]} for d in DOMAINS],
        "client_id": client_id,
        "client_secret": client_secret,
    })
    write_file(os.path.join(directory, "client.secret"), client_secret + "\n", 0o600)
    write_file(os.path.join(directory, "mailmode.conf"), CONFIG.format(
        dir=directory, plugin_dir=os.path.abspath(args.plugin_dir), dns_port=dns["DNS_PORT"],
        gateway_mx=GATEWAY_MX, tenant=TENANT, client_id=client_id,
        login_url=emu["login_url"], api_url=emu["base_url"]), 0o644)
    write_file(os.path.join(directory, "sandbox.json"), json.dumps({
        "emulator_pid": emu["pid"], "dns_dir": dns_dir, "dns_port": int(dns["DNS_PORT"]),
        "emulator_url": emu["base_url"], "emulator_ca": emu["ca_file"], "tenant": TENANT,
        "tenant_id": tenant_id, "client_id": client_id, "domains": list(DOMAINS),
    }, indent=2) + "\n", 0o644)
    print("The sandbox is running in %s:" % directory)
    print("  BIND 9 primary 127.0.0.11 and secondary 127.0.0.12, port %s" % dns["DNS_PORT"])
    print("  Microsoft 365 emulator %s (tenant %s)" % (emu["base_url"], TENANT))
    print_usage(directory, args.mailmode)
    return 0


def print_usage(directory, binary):
    config = os.path.join(directory, "mailmode.conf")
    print("Domains: contoso.test (MX at the gateway hosts), fabrikam.test (Microsoft 365 MX).")
    print("Try:")
    print("  export MAILMODE_CONFIG=%s" % config)
    print("  %s adopt contoso.test --mode gateway" % binary)
    print("  %s switch contoso.test --to mailflow" % binary)
    print("  %s status" % binary)
    print("  %s sandbox stop --dir %s" % (binary, directory))


def stop_emulator(pid):
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
    stop_emulator(state.get("emulator_pid"))
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
    args = parser.parse_args()
    return {"start": start, "stop": stop, "status": status}[args.action](args)


if __name__ == "__main__":
    sys.exit(main())
