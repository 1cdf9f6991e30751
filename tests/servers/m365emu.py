#!/usr/bin/python3
"""m365emu: an HTTPS emulator of the Microsoft identity platform token endpoint
and the Exchange Online admin API (InvokeCommand), for mailmode's tests.

Wire format: /work/shared/ref/m365-admin-api.md (see docs at the end of
tests/servers/emu.sh for the control API).  Single process, standard library
plus python3-cryptography.

Usage: m365emu.py --dir DIR [--port 0] [--latency-ms 0] [--page-size 2]
                  [--consistency-delay 0] [--owner-pid PID] [--verbose]
                  [--smtp-port P [--smtp-address 127.0.0.31] [--dns ADDR:PORT,...]]

With --smtp-port, also the tenants' SMTP front door (what the MX
<domain-dashes>.mail.protection.outlook.test points at), on ADDR:P (needs
python3-aiosmtpd and mailsim.py next to this file).  It accepts mail for the
accepted domains of every tenant (RCPT to any other domain: 550 5.4.1; any
local part is a mailbox) and, per recipient, at the time of receipt, runs the
tenant's transport rules exactly as the admin API shows them (the same
objects, the same consistency delay: only visible versions count), in
priority order: State Enabled; conditions RecipientDomainIs (subdomains
included), SentToScope, FromScope; exceptions ExceptIfHeaderContains*,
ExceptIfHeaderMatches* (regex search, case-insensitive), ExceptIfSenderIpRanges,
ExceptIfSCLOver, ExceptIfMessageTypeMatches; Mode Audit/AuditAndNotify only
trace; actions SetSCL, SetHeader, RouteMessageOutboundConnector (the first
route wins; the connector must be visible and enabled, else the action is
skipped), RedirectMessageTo, Quarantine, DeleteMessage, StopRuleProcessing.
Routed mail is queued and relayed to the connector's smart hosts (A records in
the sandbox DNS, port P; TlsSettings honoured: DomainValidation checks the
certificate against TlsDomain; retried for smtp_retry_for_s), everything else
is delivered to the mailbox.  The inbound connector a message came through is
recognised by its TLS client certificate (TlsSenderCertificateName) or its
SenderIPAddresses and shown in the trace.  The MX-bypass lock-down is
applied at RCPT TO: an enabled Partner inbound connector whose SenderDomains
match the sender's domain, with RestrictDomainsToCertificate (the client's
certificate must match TlsSenderCertificateName) or
RestrictDomainsToIPAddresses (the connecting address must be in
SenderIPAddresses), refuses a connection that meets neither with
550 5.7.51 TenantInboundAttribution (counted as lockdown_refused).  A
connector with AssociatedAcceptedDomains applies (and restricts) only for
recipients in those domains, and is preferred over an unscoped one.  Per
recipient the front door stamps Authentication-Results with SPF of the MAIL
FROM domain (its v=spf1 TXT record in the sandbox DNS) judged on the
connecting address or, under the inbound connector's Enhanced Filtering
(EFSkipIPs, EFSkipLastIP, EFUsers), on the true source found by skipping
hops in the Received headers (X-MS-Exchange-SkipListedInternetSender,
X-MS-Exchange-ExternalOriginalInternetSender; doc/gateway-tenant.md).  STARTTLS
is offered (certificate for *.mail.protection.outlook.test from the test CA),
not required.
Every receipt writes one trace row per recipient (one MessageTraceId per
receipt): Status Pending -> Delivered (to the mailbox, or to the next hop:
then ToIP is set) | Failed | Quarantined, with events Receive, Transport rule,
Send external, Deliver, Defer, Fail, Drop, Quarantine.  Admin API cmdlets
Get-MessageTraceV2 (MessageId, RecipientAddress, SenderAddress, StartDate,
EndDate, Status, MessageTraceId, FromIP, ToIP, Subject, SubjectFilterType,
ResultSize, StartingRecipientAddress; default window 48 h; newest first) and
Get-MessageTraceDetailV2 (MessageTraceId, RecipientAddress, Event, Action, ...)
read them after trace_delay_s (config, default 0).  Rows carry emulator-only
fields EmuRoute ("Mailbox", "Connector:NAME", "Quarantine", "Drop",
"External"), EmuInboundConnector, EmuTransportRules and EmuHops.
Control API additions (no trace delay):
  GET    /_emu/smtp                         front door address, port, counters, queue
  GET    /_emu/tenants/T/mailboxes          {address: message count}
  GET    /_emu/tenants/T/mailboxes/ADDR     delivered messages (headers, not bodies)
  GET    /_emu/tenants/T/messages           every delivered message (?message_id=)
  DELETE /_emu/tenants/T/mailboxes          empty every mailbox
  GET    /_emu/tenants/T/trace              trace rows with events
                                            (?message_id=&recipient=&sender=)
  DELETE /_emu/tenants/T/trace
  POST   /_emu/tenants/T/submit             {"from": a mailbox of T, "to": [ADDR...],
                                             "subject", "message_id"}: the mailbox
                                            sends (FromScope InOrganization, no
                                            inbound connector); recipients outside
                                            the tenant go by a rule's connector, a
                                            connector for their domain
                                            (RecipientDomains, not rule-scoped), or
                                            their MX -> {"message_id", "trace_id"}
  POST   /_emu/config  also {"trace_delay_s": S, "smtp_retry_for_s": S}
  POST   /_emu/config  {"cloud": "global"|"gcc-high"|"dod"|"china"}: the cloud
                       the emulated tenants live in; the token endpoint then
                       issues tokens for that cloud's Exchange scope only
                       (https://outlook.office365.us/.default, ...), as a
                       national cloud's identity platform does
"""

import argparse
import datetime
import email.utils
import fcntl
import fnmatch
import hashlib
import ipaddress
import json
import os
import re
import secrets
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from srvlib import (aad_error, b64url, check_client, iso, load_certs,  # noqa: E402
                    pid_alive, write_atomic)

EXO_APP_ID = "00000002-0000-0ff1-ce00-000000000000"
SCOPES = {"https://outlook.office365.com/.default", EXO_APP_ID + "/.default"}
# The Exchange Online host of each cloud (identity reference section 3).  A
# tenant of a national cloud (config "cloud") issues tokens for its own
# cloud's Exchange audience only: another cloud's scope is invalid there.
CLOUD_EXO_HOSTS = {"global": "outlook.office365.com", "gcc-high": "outlook.office365.us",
                   "dod": "outlook-dod.office365.us", "china": "partner.outlook.cn"}


def cloud_scopes(cfg):
    return {"https://%s/.default" % CLOUD_EXO_HOSTS[cfg.get("cloud", "global")],
            EXO_APP_ID + "/.default"}
ODATA_CTYPE = ("application/json;odata.metadata=minimal;odata.streaming=true;"
               "IEEE754Compatible=false;charset=utf-8")
RULES_NS = "Microsoft.Exchange.MessagingPolicies.Rules.Tasks."
DC_NAME = "AM6PR01A00X001.EURPR01A001.PROD.OUTLOOK.COM"
THROTTLE_TEXT = ("You have reached the maximum number of concurrent requests per "
                 "tenant. Please wait and try again")
DEHYDRATED_TEXT = ("The command you tried to run isn't currently allowed in your "
                   "organization. To run this command, you first need to run the "
                   "command: Enable-OrganizationCustomization.")
MAX_RECORDS = 200000
MAX_MAILBOX = 20000     # messages kept per mailbox (oldest dropped)
GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                     r"[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
DOMAIN_RE = re.compile(r"^(\*|(\*\.)?[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
                       r"(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*)$")
HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                     r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


# --------------------------------------------------------------------------
# small helpers

def http_date_iso_ms(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# --------------------------------------------------------------------------
# certificates

def ensure_certs(d):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    p = lambda n: os.path.join(d, n)  # noqa: E731
    lockf = open(p(".certs.lock"), "w")
    fcntl.flock(lockf, fcntl.LOCK_EX)
    try:
        now = datetime.datetime.now(datetime.timezone.utc)
        start = now - datetime.timedelta(days=1)

        def key_pem(k):
            return k.private_bytes(serialization.Encoding.PEM,
                                   serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption())

        def cert_pem(c):
            return c.public_bytes(serialization.Encoding.PEM)

        if not (os.path.exists(p("ca.pem")) and os.path.exists(p("ca.key"))):
            for n in ("server.pem", "server.key", "client.pem", "client.key"):
                if os.path.exists(p(n)):
                    os.unlink(p(n))
            k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailmode test CA"),
                              x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mailmode tests")])
            c = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                 .public_key(k.public_key()).serial_number(x509.random_serial_number())
                 .not_valid_before(start).not_valid_after(now + datetime.timedelta(days=3650))
                 .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                 .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                              False, False), critical=True)
                 .add_extension(x509.SubjectKeyIdentifier.from_public_key(k.public_key()),
                                critical=False)
                 .sign(k, hashes.SHA256()))
            write_atomic(p("ca.key"), key_pem(k), 0o600)
            write_atomic(p("ca.pem"), cert_pem(c))
        ca_key = serialization.load_pem_private_key(open(p("ca.key"), "rb").read(), None)
        ca = x509.load_pem_x509_certificate(open(p("ca.pem"), "rb").read())

        def leaf(cn, eku, san):
            k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            b = (x509.CertificateBuilder()
                 .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
                 .issuer_name(ca.subject).public_key(k.public_key())
                 .serial_number(x509.random_serial_number())
                 .not_valid_before(start).not_valid_after(now + datetime.timedelta(days=825))
                 .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                 .add_extension(x509.KeyUsage(True, False, True, False, False, False, False,
                                              False, False), critical=True)
                 .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
                 .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                     ca_key.public_key()), critical=False))
            if san:
                b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
            return k, b.sign(ca_key, hashes.SHA256())

        if not (os.path.exists(p("server.pem")) and os.path.exists(p("server.key"))):
            k, c = leaf("localhost", ExtendedKeyUsageOID.SERVER_AUTH,
                        [x509.DNSName("localhost"),
                         x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
            write_atomic(p("server.key"), key_pem(k), 0o600)
            write_atomic(p("server.pem"), cert_pem(c))
        if not (os.path.exists(p("client.pem")) and os.path.exists(p("client.key"))):
            k, c = leaf("mailmode test app", ExtendedKeyUsageOID.CLIENT_AUTH, None)
            write_atomic(p("client.key"), key_pem(k), 0o600)
            write_atomic(p("client.pem"), cert_pem(c))
    finally:
        fcntl.flock(lockf, fcntl.LOCK_UN)
        lockf.close()


# --------------------------------------------------------------------------
# cmdlet errors and parameter binding

T_NOTFOUND = "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException"
T_PARAM = "System.Management.Automation.ParameterBindingException"
T_DUP = "Microsoft.Exchange.Data.Directory.ADObjectAlreadyExistsException"
T_DUP_RULE = "Microsoft.Exchange.MessagingPolicies.Rules.Tasks.RuleNameAlreadyExistsException"
T_VALID = "Microsoft.Exchange.Data.DataValidationException"
T_RANGE = "System.ArgumentOutOfRangeException"
T_DEHYD = "Microsoft.Exchange.Configuration.Tasks.InvalidOperationInDehydratedContextException"
T_NOINBOUND = ("Microsoft.Exchange.Management.SystemConfigurationTasks."
               "InboundConnectorCreationNotAllowedException")
T_INUSE = "Microsoft.Exchange.Management.SystemConfigurationTasks.ConnectorInUseException"
T_NOCMD = "System.Management.Automation.CommandNotFoundException"
T_SKIP = "Microsoft.Exchange.Admin.OData.Core.InvalidSkipTokenException"
T_NOTREQ = "Microsoft.Exchange.Management.Deployment.OrganizationAlreadyHydratedException"
T_THROTTLE = "Microsoft.Exchange.Configuration.Tasks.ThrottlingException"
T_FAULT = "Microsoft.Exchange.Data.Directory.TransientException"
# The exception types of the two limits are not documented [I]; the texts
# are KB 3003043's (size) and, for the count, a sentence in its style.
T_RULE_SIZE = "Microsoft.Exchange.MessagingPolicies.Rules.Tasks.RuleTooLargeException"
T_RULE_COUNT = "Microsoft.Exchange.MessagingPolicies.Rules.Tasks.RuleLimitExceededException"

# Exchange Online's limits: rules per organization, characters of one
# rule's XML (msExchTransportRuleXml, the length Exchange checks).
RULE_LIMIT = 300
RULE_SIZE_LIMIT = 8192
# /_emu/faults kinds: 429/503/504 (with Retry-After), drop or reset (the
# connection closes before the cmdlet runs), slow (delay_ms, then normal),
# throttle_text (400 with the concurrency text), error (400 with a
# CmdletError body: etype/text), acted_reset (the cmdlet runs, then the
# connection closes: no answer), acted_hang (the cmdlet runs, the answer
# hangs delay_ms, then the connection closes), interleave (the cmdlet runs,
# then another admin's cmdlet "then": {"cmdlet", "params"} runs before the
# answer goes out: a second writer landing between a write and its read-back).
FAULT_KINDS = ("429", "503", "504", "drop", "reset", "slow", "throttle_text", "error",
               "acted_reset", "acted_hang", "interleave")


class CmdletError(Exception):
    def __init__(self, etype, text, errid=None):
        super().__init__(text)
        self.etype = etype
        self.text = text
        self.errid = errid if errid is not None else (
            "Ex" + hashlib.sha1(etype.encode()).hexdigest()[:6].upper())

    def body(self):
        return {"error": {
            "code": "InternalServerError", "message": "Error executing cmdlet",
            "details": [{"code": "Client", "target": "",
                         "message": "%s|%s|%s" % (self.errid, self.etype, self.text)}],
            "innererror": {"message": "Error executingcmdlet",
                           "type": "Microsoft.Exchange.Admin.OData.Core.ODataServiceException",
                           "stacktrace": "",
                           "internalexception": {"message": self.text, "type": self.etype,
                                                 "stacktrace": ""}}}}


def not_found(ident):
    return CmdletError(T_NOTFOUND, "The operation couldn't be performed because object "
                       "'%s' couldn't be found on '%s'." % (ident, DC_NAME))


def bind_error(param, value, totype, detail):
    return CmdletError(T_PARAM, "Cannot process argument transformation on parameter "
                       "'%s'. Cannot convert value \"%s\" to type \"%s\". Error: \"%s\""
                       % (param, value, totype, detail))


ENUMS = {
    "ConnectorType": ["Partner", "OnPremises"],
    "TlsSettings": ["EncryptionOnly", "CertificateValidation", "DomainValidation"],
    "Mode": ["Audit", "AuditAndNotify", "Enforce"],
    "SentToScope": ["InOrganization", "NotInOrganization", "ExternalPartner",
                    "ExternalNonPartner"],
    "FromScope": ["InOrganization", "NotInOrganization"],
    "State": ["Enabled", "Disabled"],
    "SenderAddressLocation": ["Header", "Envelope", "HeaderOrEnvelope"],
    "ExceptIfMessageTypeMatches": ["OOF", "AutoForward", "Encrypted", "Calendaring",
                                   "PermissionControlled", "Voicemail", "Signed",
                                   "ApprovalRequest", "ReadReceipt"],
}
ENUM_TYPES = {"ConnectorType": "Microsoft.Exchange.Data.TenantConnectorType",
              "TlsSettings": "Microsoft.Exchange.Data.TlsAuthLevel",
              "Mode": "Microsoft.Exchange.MessagingPolicies.Rules.RuleMode",
              "SentToScope": "Microsoft.Exchange.MessagingPolicies.Rules.ToUserScope",
              "FromScope": "Microsoft.Exchange.MessagingPolicies.Rules.FromUserScope",
              "State": "Microsoft.Exchange.MessagingPolicies.Rules.RuleState",
              "SenderAddressLocation":
                  "Microsoft.Exchange.MessagingPolicies.Rules.SenderAddressLocation",
              "ExceptIfMessageTypeMatches":
                  "Microsoft.Exchange.MessagingPolicies.Rules.MessageType"}

COMMON = {"WarningAction": "str", "ErrorAction": "str", "Verbose": "bool", "Debug": "bool",
          "WhatIf": "bool"}


def convert(param, ptype, v, allow_delta):
    if v is None:
        if ptype == "bool":
            raise bind_error(param, "", "System.Boolean",
                             "Boolean parameters accept only Boolean values and numbers, "
                             "such as $True, $False, 1 or 0.")
        return [] if ptype == "list" else None
    if ptype == "str":
        if isinstance(v, bool) or isinstance(v, (list, dict)):
            raise bind_error(param, v, "System.String", "Cannot convert to String.")
        return str(v)
    if ptype == "bool":
        if isinstance(v, bool):
            return v
        if isinstance(v, int) and not isinstance(v, bool):
            return v != 0
        raise bind_error(param, "System.String" if isinstance(v, str) else v,
                         "System.Boolean", "Boolean parameters accept only Boolean values "
                         "and numbers, such as $True, $False, 1 or 0.")
    if ptype == "int":
        if isinstance(v, int) and not isinstance(v, bool):
            return v
        if isinstance(v, str) and re.fullmatch(r"\s*[-+]?\d+\s*", v):
            return int(v)
        raise bind_error(param, v, "System.Int32", "Input string was not in a correct format.")
    if ptype == "list":
        if isinstance(v, str):
            return [v]
        if isinstance(v, list):
            for x in v:
                if not isinstance(x, (str, int)) or isinstance(x, bool):
                    raise bind_error(param, x, "System.String", "Cannot convert to String.")
            return [str(x) for x in v]
        if isinstance(v, dict) and allow_delta:
            keys = {k.lower(): k for k in v}
            extra = set(keys) - {"add", "remove", "@odata.type"}
            if extra:
                raise bind_error(param, v, "Microsoft.Exchange.Data.MultiValuedProperty",
                                 "Unknown key(s) in hashtable: %s" % ",".join(sorted(extra)))
            add = convert(param, "list", v.get(keys.get("add", "add")), False)
            rem = convert(param, "list", v.get(keys.get("remove", "remove")), False)
            return ("delta", add or [], rem or [])
        raise bind_error(param, v, "Microsoft.Exchange.Data.MultiValuedProperty",
                         "Cannot convert to a list of String.")
    if ptype == "enum":
        vals = ENUMS[param]
        if isinstance(v, str):
            for e in vals:
                if e.lower() == v.strip().lower():
                    return e
        raise bind_error(param, v, ENUM_TYPES.get(param, "System.Enum"),
                         "Unable to match the identifier name %s to a valid enumerator "
                         "name. Specify one of the following enumerator names and try "
                         "again:\r\n%s" % (v, ", ".join(vals)))
    raise AssertionError(ptype)


def bind(params, schema, mandatory=(), allow_delta=False, confirm=False):
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise CmdletError(T_PARAM, "Parameters must be a JSON object.")
    full = dict(COMMON)
    full.update(schema)
    if confirm:
        full["Confirm"] = "bool"
    lower = {k.lower(): k for k in full}
    out = {}
    for k, v in params.items():
        canon = lower.get(k.lower())
        if canon is None:
            raise CmdletError(T_PARAM, "A parameter cannot be found that matches parameter "
                              "name '%s'." % k)
        out[canon] = convert(canon, full[canon], v, allow_delta)
    missing = [m for m in mandatory if out.get(m) in (None, "", [])]
    if missing:
        raise CmdletError(T_PARAM, "Cannot process command because of one or more missing "
                          "mandatory parameters: %s." % " ".join(missing))
    return out


# --------------------------------------------------------------------------
# object kinds

INBOUND_SCHEMA = {
    "Name": "str", "ConnectorType": "enum", "SenderDomains": "list",
    "SenderIPAddresses": "list", "RequireTls": "bool", "TlsSenderCertificateName": "str",
    "RestrictDomainsToCertificate": "bool", "RestrictDomainsToIPAddresses": "bool",
    "TreatMessagesAsInternal": "bool", "CloudServicesMailEnabled": "bool",
    "AssociatedAcceptedDomains": "list", "EFSkipIPs": "list", "EFSkipLastIP": "bool",
    "EFUsers": "list", "EFTestMode": "bool", "ScanAndDropRecipients": "list",
    "TrustedOrganizations": "list", "Enabled": "bool", "Comment": "str",
}
INBOUND_DEFAULTS = {
    "Enabled": True, "ConnectorType": "Partner", "ConnectorSource": "AdminUI",
    "Comment": None, "SenderIPAddresses": [], "SenderDomains": [],
    "AssociatedAcceptedDomains": [], "TrustedOrganizations": [], "RequireTls": True,
    "RestrictDomainsToIPAddresses": False, "RestrictDomainsToCertificate": False,
    "CloudServicesMailEnabled": False, "TreatMessagesAsInternal": False,
    "TlsSenderCertificateName": None, "EFTestMode": False, "ScanAndDropRecipients": [],
    "EFSkipLastIP": False, "EFSkipIPs": [], "EFSkipMailGateway": [], "EFUsers": [],
    "ClientHostNames": [], "AdminDisplayName": None,
}
INBOUND_ORDER = list(INBOUND_DEFAULTS) + [
    "Name", "Identity", "Id", "Guid", "WhenChanged", "WhenCreated", "WhenChangedUTC",
    "WhenCreatedUTC", "IsValid", "ObjectState"]
INBOUND_LISTS = {"SenderIPAddresses", "SenderDomains", "AssociatedAcceptedDomains",
                 "TrustedOrganizations", "ScanAndDropRecipients", "EFSkipIPs",
                 "EFSkipMailGateway", "EFUsers", "ClientHostNames"}

OUTBOUND_SCHEMA = {
    "Name": "str", "ConnectorType": "enum", "SmartHosts": "list", "UseMXRecord": "bool",
    "TlsSettings": "enum", "TlsDomain": "str", "IsTransportRuleScoped": "bool",
    "RecipientDomains": "list", "RouteAllMessagesViaOnPremises": "bool",
    "AllAcceptedDomains": "bool", "TestMode": "bool", "Enabled": "bool", "Comment": "str",
    "CloudServicesMailEnabled": "bool", "SenderRewritingEnabled": "bool",
    "ValidationRecipients": "list",
}
OUTBOUND_DEFAULTS = {
    "Enabled": True, "UseMXRecord": True, "Comment": None, "ConnectorType": "Partner",
    "ConnectorSource": "AdminUI", "RecipientDomains": [], "SmartHosts": [],
    "TlsDomain": None, "TlsSettings": None, "IsTransportRuleScoped": False,
    "RouteAllMessagesViaOnPremises": False, "CloudServicesMailEnabled": False,
    "AllAcceptedDomains": False, "SenderRewritingEnabled": False, "MtaStsMode": "None",
    "SmtpDaneMode": "Opportunistic", "TestMode": False, "ValidationRecipients": [],
    "IsValidated": False, "LastValidationTimestamp": None, "AdminDisplayName": None,
}
OUTBOUND_ORDER = list(OUTBOUND_DEFAULTS) + [
    "Name", "Identity", "Id", "Guid", "WhenChanged", "WhenCreated", "WhenChangedUTC",
    "WhenCreatedUTC", "IsValid", "ObjectState"]
OUTBOUND_LISTS = {"RecipientDomains", "SmartHosts", "ValidationRecipients"}

RULE_SCHEMA = {
    "Name": "str", "Priority": "int", "RecipientDomainIs": "list", "SentToScope": "enum",
    "FromScope": "enum", "RouteMessageOutboundConnector": "str",
    "ExceptIfHeaderContainsMessageHeader": "str", "ExceptIfHeaderContainsWords": "list",
    "ExceptIfHeaderMatchesMessageHeader": "str", "ExceptIfHeaderMatchesPatterns": "list",
    "ExceptIfSenderIpRanges": "list", "ExceptIfMessageTypeMatches": "enum",
    "ExceptIfSCLOver": "int", "RedirectMessageTo": "list", "DeleteMessage": "bool",
    "Quarantine": "bool", "StopRuleProcessing": "bool", "SetSCL": "int",
    "SetHeaderName": "str", "SetHeaderValue": "str", "Mode": "enum", "Comments": "str",
    "SenderAddressLocation": "enum", "SenderDomainIs": "list",
    "ExceptIfSenderDomainIs": "list", "ExceptIfRecipientDomainIs": "list",
    "ExceptIfFromAddressContainsWords": "list",
}
RULE_DEFAULTS = {
    "Priority": 0, "ManuallyModified": False, "CreatedBy": None, "LastModifiedBy": None,
    "Comments": None, "Description": None, "Conditions": None, "Exceptions": None,
    "Actions": None, "State": "Enabled", "Mode": "Enforce", "RuleErrorAction": "Ignore",
    "SenderAddressLocation": "Header", "RuleSubType": "None", "FromScope": None,
    "SentToScope": None, "RecipientDomainIs": None,
    "ExceptIfHeaderContainsMessageHeader": None, "ExceptIfHeaderContainsWords": None,
    "ExceptIfHeaderMatchesMessageHeader": None, "ExceptIfHeaderMatchesPatterns": None,
    "ExceptIfSenderIpRanges": None, "ExceptIfMessageTypeMatches": None,
    "ExceptIfSCLOver": None, "RedirectMessageTo": None, "DeleteMessage": False,
    "Quarantine": False, "StopRuleProcessing": False, "SetSCL": None,
    "SetHeaderName": None, "SetHeaderValue": None, "RouteMessageOutboundConnector": None,
    "SenderDomainIs": None, "ExceptIfSenderDomainIs": None, "ExceptIfRecipientDomainIs": None,
    "ExceptIfFromAddressContainsWords": None,
}
RULE_ORDER = list(RULE_DEFAULTS) + [
    "Name", "Identity", "DistinguishedName", "Guid", "ImmutableId", "WhenChanged",
    "IsValid", "ObjectState", "Size", "RegexSize"]
RULE_LISTS = {"Conditions", "Exceptions", "Actions", "RecipientDomainIs",
              "ExceptIfHeaderContainsWords", "ExceptIfHeaderMatchesPatterns",
              "ExceptIfSenderIpRanges", "RedirectMessageTo", "SenderDomainIs",
              "ExceptIfSenderDomainIs", "ExceptIfRecipientDomainIs",
              "ExceptIfFromAddressContainsWords"}

KINDS = {
    "inbound": {"noun": "InboundConnector", "schema": INBOUND_SCHEMA,
                "defaults": INBOUND_DEFAULTS, "order": INBOUND_ORDER, "lists": INBOUND_LISTS},
    "outbound": {"noun": "OutboundConnector", "schema": OUTBOUND_SCHEMA,
                 "defaults": OUTBOUND_DEFAULTS, "order": OUTBOUND_ORDER,
                 "lists": OUTBOUND_LISTS},
    "rule": {"noun": "TransportRule", "schema": RULE_SCHEMA, "defaults": RULE_DEFAULTS,
             "order": RULE_ORDER, "lists": RULE_LISTS},
}
GUID_FIELDS = {"Guid", "ImmutableId"}
DATE_FIELDS = {"WhenChanged", "WhenCreated", "WhenChangedUTC", "WhenCreatedUTC",
               "LastValidationTimestamp"}

# rule parameter -> (section, predicate/action class)
RULE_PREDICATES = [
    ("Conditions", "SentToScope", "SentToScopePredicate"),
    ("Conditions", "FromScope", "FromScopePredicate"),
    ("Conditions", "RecipientDomainIs", "RecipientDomainIsPredicate"),
    ("Conditions", "SenderDomainIs", "SenderDomainIsPredicate"),
    ("Exceptions", "ExceptIfSenderDomainIs", "SenderDomainIsPredicate"),
    ("Exceptions", "ExceptIfRecipientDomainIs", "RecipientDomainIsPredicate"),
    ("Exceptions", "ExceptIfFromAddressContainsWords", "FromAddressContainsPredicate"),
    ("Exceptions", "ExceptIfHeaderContainsMessageHeader", "HeaderContainsPredicate"),
    ("Exceptions", "ExceptIfHeaderMatchesMessageHeader", "HeaderMatchesPredicate"),
    ("Exceptions", "ExceptIfSenderIpRanges", "SenderIpRangesPredicate"),
    ("Exceptions", "ExceptIfMessageTypeMatches", "MessageTypeMatchesPredicate"),
    ("Exceptions", "ExceptIfSCLOver", "SclOverPredicate"),
    ("Actions", "RouteMessageOutboundConnector", "RouteMessageOutboundConnectorAction"),
    ("Actions", "RedirectMessageTo", "RedirectMessageAction"),
    ("Actions", "SetSCL", "SetSclAction"),
    ("Actions", "SetHeaderName", "SetHeaderAction"),
    ("Actions", "DeleteMessage", "DeleteMessageAction"),
    ("Actions", "Quarantine", "QuarantineAction"),
    ("Actions", "StopRuleProcessing", "StopRuleProcessingAction"),
]


def _set(v):
    return v not in (None, False, [], "")


def quote_list(vals):
    return " or ".join("'%s'" % v for v in vals)


def rule_description(d):
    scope = {"InOrganization": "Inside the organization",
             "NotInOrganization": "Outside the organization",
             "ExternalPartner": "External partner", "ExternalNonPartner": "External non-partner"}
    conds, excs, acts = [], [], []
    if d.get("SentToScope"):
        conds.append("Is sent to '%s'" % scope[d["SentToScope"]])
    if d.get("FromScope"):
        conds.append("Is received from '%s'" % scope[d["FromScope"]])
    if d.get("RecipientDomainIs"):
        conds.append("Is sent to a recipient whose domain is %s"
                     % quote_list(d["RecipientDomainIs"]))
    if d.get("SenderDomainIs"):
        conds.append("Is received from a sender whose domain is %s"
                     % quote_list(d["SenderDomainIs"]))
    if d.get("ExceptIfSenderDomainIs"):
        excs.append("Is received from a sender whose domain is %s"
                    % quote_list(d["ExceptIfSenderDomainIs"]))
    if d.get("ExceptIfRecipientDomainIs"):
        excs.append("Is sent to a recipient whose domain is %s"
                    % quote_list(d["ExceptIfRecipientDomainIs"]))
    if d.get("ExceptIfFromAddressContainsWords"):
        excs.append("Sender address contains %s"
                    % quote_list(d["ExceptIfFromAddressContainsWords"]))
    if d.get("ExceptIfHeaderContainsMessageHeader"):
        excs.append("'%s' header contains %s" % (d["ExceptIfHeaderContainsMessageHeader"],
                                                 quote_list(d["ExceptIfHeaderContainsWords"])))
    if d.get("ExceptIfHeaderMatchesMessageHeader"):
        excs.append("'%s' header matches %s" % (d["ExceptIfHeaderMatchesMessageHeader"],
                                                quote_list(d["ExceptIfHeaderMatchesPatterns"])))
    if d.get("ExceptIfSenderIpRanges"):
        excs.append("Sender ip addresses belong to one of these ranges: %s"
                    % quote_list(d["ExceptIfSenderIpRanges"]))
    if d.get("ExceptIfMessageTypeMatches"):
        excs.append("Message type is '%s'" % d["ExceptIfMessageTypeMatches"])
    if d.get("ExceptIfSCLOver") is not None:
        excs.append("SCL is greater than or equal to '%s'" % d["ExceptIfSCLOver"])
    if d.get("RouteMessageOutboundConnector"):
        acts.append("Route the message using the connector named '%s'"
                    % d["RouteMessageOutboundConnector"])
    if d.get("RedirectMessageTo"):
        acts.append("Redirect the message to %s" % quote_list(d["RedirectMessageTo"]))
    if d.get("SetSCL") is not None:
        acts.append("Set the spam confidence level (SCL) to '%s'" % d["SetSCL"])
    if d.get("SetHeaderName"):
        acts.append("Set message header '%s' with the value '%s'"
                    % (d["SetHeaderName"], d.get("SetHeaderValue") or ""))
    if d.get("DeleteMessage"):
        acts.append("Delete the message without notifying anyone")
    if d.get("Quarantine"):
        acts.append("Deliver the message to the hosted quarantine")
    if d.get("StopRuleProcessing"):
        acts.append("Stop processing more rules")
    out = []
    for head, items in (("If the message:", conds), ("Take the following actions:", acts),
                        ("Except if the message:", excs)):
        if head.startswith("If") and not items:
            items = ["Applies to all messages"]
        if items:
            out.append(head)
            out.extend(("\t" if i == 0 else "\tand ") + s for i, s in enumerate(items))
    return "\r\n".join(out) + "\r\n"


def derive(kind, d, tenant):
    """Add the computed fields to a copy of stored data."""
    o = dict(d)
    o["Identity"] = d["Name"]
    o["IsValid"] = True
    o["ObjectState"] = "Unchanged"
    if kind == "rule":
        secs = {"Conditions": [], "Exceptions": [], "Actions": []}
        for sec, param, cls in RULE_PREDICATES:
            if _set(d.get(param)) or (param in ("ExceptIfSCLOver", "SetSCL")
                                      and d.get(param) is not None):
                secs[sec].append(RULES_NS + cls)
        for sec, vals in secs.items():
            o[sec] = vals or None
        o["Description"] = rule_description(d)
        o["ImmutableId"] = d["Guid"]
        o["Size"] = len(rule_xml(d))
        o["RegexSize"] = rule_regex_size(d)
        o["DistinguishedName"] = ("CN=%s,CN=TransportVersioned,CN=Rules,CN=Transport "
                                  "Settings,CN=%s,CN=Microsoft Exchange Hosted "
                                  "Organizations" % (d["Name"], tenant.initial_domain))
    else:
        o["Id"] = d["Name"]
    return o


def serialize(kind, data, bare):
    spec = KINDS[kind]
    out = {}
    for f in spec["order"]:
        v = data.get(f)
        if f in spec["lists"] and isinstance(v, list):
            if bare and len(v) == 1:
                out[f] = v[0]
            else:
                out[f + "@odata.type"] = "#Collection(String)"
                out[f] = list(v)
            continue
        if f in GUID_FIELDS:
            out[f + "@data.type"] = "System.Guid"
            out[f + "@odata.type"] = "#Guid"
        elif f == "Priority":
            out[f + "@data.type"] = "System.Int32"
        elif f in DATE_FIELDS and v is not None:
            out[f + "@data.type"] = "System.DateTime"
            out[f + "@odata.type"] = "#DateTimeOffset"
            v = iso(v)
        out[f] = v
    return out


def plain(kind, data):
    o = {}
    for f in KINDS[kind]["order"]:
        v = data.get(f)
        o[f] = iso(v) if (f in DATE_FIELDS and v is not None) else v
    return o


# --------------------------------------------------------------------------
# tenants and objects

class Obj:
    """An Exchange object with versions: [(visible_at, data)], newest last."""

    def __init__(self, data, visible_at):
        self.versions = [(visible_at, data)]

    @property
    def cur(self):
        return self.versions[-1][1]

    def visible(self, now):
        for t, d in reversed(self.versions):
            if t <= now:
                return d
        return None

    def commit(self, data, visible_at, now):
        self.versions.append((visible_at, data))
        # drop versions hidden behind a newer visible one
        keep = 0
        for i, (t, _) in enumerate(self.versions):
            if t <= now:
                keep = i
        self.versions = self.versions[keep:]


class Tenant:
    def __init__(self, spec):
        self.lock = threading.RLock()
        self.tenant_id = spec["tenant_id"].lower()
        self.initial_domain = spec["initial_domain"].lower()
        self.org_guid = str(uuid.uuid4())
        self.created = time.time()
        self.objs = {"inbound": {}, "outbound": {}, "rule": {}}
        self.rate_window = 0
        self.rate_used = 0
        self.mail = {}        # mailbox address -> [delivered message]
        self.trace = []       # message trace rows (front door), oldest first
        self.role_applies_at = 0.0   # /_emu/roles: a role granted, not applied yet
        self.update(spec, first=True)

    def update(self, spec, first=False):
        if first or "client_id" in spec:
            self.client_id = str(spec.get("client_id") or "").lower()
        if first or "client_secret" in spec:
            self.client_secret = spec.get("client_secret")
        if first or "display_name" in spec:
            self.display_name = spec.get("display_name") or self.initial_domain.split(".")[0]
        if first or "app_display_name" in spec:
            self.app_display_name = spec.get("app_display_name") or "mailmode test app"
        if first or "certificate_pem" in spec or "certificate_file" in spec:
            pem = spec.get("certificate_pem") or ""
            if spec.get("certificate_file"):
                with open(spec["certificate_file"]) as f:
                    pem += "\n" + f.read()
            self.certs = load_certs(pem) if pem.strip() else []
        for flag, dflt in (("dehydrated", False), ("inbound_connectors_allowed", True),
                           ("forbidden", False), ("consented", True),
                           ("public_client", False), ("delegated_consent", True)):
            if first or flag in spec:
                v = spec.get(flag, dflt)
                if not isinstance(v, bool):
                    raise ValueError("%s must be a boolean" % flag)
                setattr(self, flag, v)
        if first or "accepted_domains" in spec:
            doms = []
            for ad in spec.get("accepted_domains") or []:
                if isinstance(ad, str):
                    ad = {"DomainName": ad}
                name = str(ad["DomainName"]).lower()
                doms.append({"DomainName": name, "DomainType": ad.get("DomainType",
                                                                      "Authoritative"),
                             "Default": bool(ad.get("Default", False)),
                             "Guid": str(uuid.uuid5(uuid.NAMESPACE_DNS, name))})
            if not any(d["DomainName"] == self.initial_domain for d in doms):
                doms.append({"DomainName": self.initial_domain, "DomainType": "Authoritative",
                             "Default": False,
                             "Guid": str(uuid.uuid5(uuid.NAMESPACE_DNS, self.initial_domain))})
            if not any(d["Default"] for d in doms):
                for d in doms:
                    if d["DomainName"] == self.initial_domain:
                        d["Default"] = True
            self.accepted_domains = doms

    def summary(self):
        return {"tenant_id": self.tenant_id, "initial_domain": self.initial_domain,
                "client_id": self.client_id, "has_client_secret": bool(self.client_secret),
                "certificates": [{"x5t": c["x5t"], "x5t#S256": c["x5t#S256"],
                                  "thumbprint": c["sha1_hex"]} for c in self.certs],
                "dehydrated": self.dehydrated,
                "inbound_connectors_allowed": self.inbound_connectors_allowed,
                "forbidden": self.forbidden, "consented": self.consented,
                "accepted_domains": [{k: d[k] for k in ("DomainName", "DomainType", "Default")}
                                     for d in self.accepted_domains]}


# --------------------------------------------------------------------------
# the cmdlets

class Ctx:
    def __init__(self, emu, tenant, now):
        self.emu = emu
        self.tenant = tenant
        self.now = now
        self.delay = float(emu.cfg["consistency_delay_s"])
        self.bare = bool(emu.cfg["bare_string_singletons"])
        self.seeding = False
        self.warnings = []
        self.extra = {}

    @property
    def vis_at(self):
        return 0.0 if self.seeding else self.now + self.delay


def find_visible(ctx, kind, ident):
    if ident is None:
        raise not_found(ident)
    il = ident.strip().lower()
    for obj in ctx.tenant.objs[kind].values():
        d = obj.visible(ctx.now)
        if d is None:
            continue
        if d["Name"].lower() == il or d["Guid"].lower() == il:
            return obj, d
    raise not_found(ident)


def name_taken(ctx, kind, name, except_guid=None):
    for g, obj in ctx.tenant.objs[kind].items():
        if g != except_guid and obj.cur["Name"].lower() == name.lower():
            return True
    return False


def check_writable(ctx):
    if ctx.tenant.dehydrated and not ctx.seeding:
        raise CmdletError(T_DEHYD, DEHYDRATED_TEXT,
                          errid="Cmdlet-InvalidOperationInDehydratedContextException")


def norm_sender_domain(x):
    s = x.strip()
    m = re.fullmatch(r"(?i)smtp:(.*?)(;\d+)?", s)
    dom = m.group(1) if m else s
    if not DOMAIN_RE.match(dom):
        raise CmdletError(T_PARAM, "Cannot bind parameter 'SenderDomains'. The address "
                          "space '%s' isn't valid." % x)
    return "smtp:%s;%s" % (dom.lower(), (m.group(2) or ";1")[1:] if m else "1")


def check_ipv4(param, x):
    s = x.strip()
    try:
        if "-" in s:
            a, b = s.split("-", 1)
            ipaddress.IPv4Address(a.strip())
            ipaddress.IPv4Address(b.strip())
            return s
        if "/" in s:
            n = ipaddress.ip_network(s, strict=False)
            if n.version != 4 or not 24 <= n.prefixlen <= 32:
                raise ValueError
            return s
        ipaddress.IPv4Address(s)
        return s
    except ValueError:
        raise CmdletError(T_PARAM, "Cannot bind parameter '%s'. The value '%s' isn't a valid "
                          "IPv4 address, IPv4 range or CIDR range (/24 to /32)." % (param, x))


def check_ip_range(param, x):
    """A transport rule's ExceptIfSenderIpRanges entry: a single address, a range
    a-b or CIDR, IPv4 or IPv6 (the IPRange type; unlike a connector's
    SenderIPAddresses, no /24 floor)."""
    s = x.strip()
    try:
        if "-" in s:
            a, b = (ipaddress.ip_address(y.strip()) for y in s.split("-", 1))
            if a.version != b.version or a > b:
                raise ValueError
        elif "/" in s:
            ipaddress.ip_network(s, strict=False)
        else:
            ipaddress.ip_address(s)
        return s
    except ValueError:
        raise CmdletError(T_PARAM, "Cannot bind parameter '%s'. The value '%s' isn't a valid "
                          "IP address, IP range or CIDR range." % (param, x))


def apply_list(kind, param, old, v, norm):
    if isinstance(v, tuple):
        cur = list(old or [])
        for a in v[1]:
            a = norm(a)
            if a.lower() not in [c.lower() for c in cur]:
                cur.append(a)
        rem = {norm(r).lower() for r in v[2]}
        cur = [c for c in cur if c.lower() not in rem]
        return cur
    return [norm(x) for x in v]


def list_norm(kind, param):
    if param == "SenderDomains":
        return norm_sender_domain
    if param in ("SenderIPAddresses", "EFSkipIPs"):
        return lambda x: check_ipv4(param, x)
    if param == "ExceptIfSenderIpRanges":
        return lambda x: check_ip_range(param, x)

    def dom(x):
        x = x.strip()
        if param in ("RecipientDomains", "RecipientDomainIs", "AssociatedAcceptedDomains",
                     "SenderDomainIs", "ExceptIfSenderDomainIs",
                     "ExceptIfRecipientDomainIs") \
                and not DOMAIN_RE.match(x):
            raise CmdletError(T_PARAM, "Cannot bind parameter '%s'. The domain '%s' isn't "
                              "valid." % (param, x))
        if param == "SmartHosts" and not (HOST_RE.match(x) or re.fullmatch(
                r"\[?\d+\.\d+\.\d+\.\d+\]?", x)):
            raise CmdletError(T_PARAM, "Cannot bind parameter 'SmartHosts'. The smart host "
                              "'%s' isn't a valid host name or IP address." % x)
        return x.lower() if param in ("RecipientDomains", "RecipientDomainIs",
                                      "SmartHosts", "SenderDomainIs",
                                      "ExceptIfSenderDomainIs",
                                      "ExceptIfRecipientDomainIs") else x
    return dom


def apply_params(ctx, kind, data, p):
    spec = KINDS[kind]
    for k, v in p.items():
        if k in ("Identity", "Confirm") or k in COMMON:
            continue
        if spec["schema"].get(k) == "list":
            nv = apply_list(kind, k, data.get(k), v, list_norm(kind, k))
            data[k] = nv if (nv or kind != "rule") else None
        else:
            data[k] = v


def validate_name(ctx, kind, name):
    if len(name) > 64:
        raise CmdletError(T_VALID, "The length of the property is too long. The maximum "
                          "length is 64 and the length of the value provided is %d.\r\n"
                          "Parameter name: Name" % len(name))
    if not name.strip():
        raise CmdletError(T_PARAM, "Cannot validate argument on parameter 'Name'. The "
                          "argument is null or empty.")


def validate_connector(ctx, kind, d):
    validate_name(ctx, kind, d["Name"])
    if kind == "inbound":
        if not d["SenderDomains"]:
            raise CmdletError(T_VALID, "SenderDomains can't be empty. Specify '*' to accept "
                              "mail from all sender domains.")
        tls_name = d.get("TlsSenderCertificateName")
        if tls_name:
            if "*" in tls_name[1:] or (tls_name.startswith("*") and
                                       not tls_name.startswith("*.")):
                raise CmdletError(T_VALID, "The certificate name '%s' isn't valid. A wildcard "
                                  "is only allowed as the leftmost label ('*.contoso.com')."
                                  % tls_name)
        if d["RestrictDomainsToCertificate"] and not tls_name:
            raise CmdletError(T_VALID, "RestrictDomainsToCertificate can only be set to true "
                              "when TlsSenderCertificateName is specified.")
        if d["RestrictDomainsToIPAddresses"] and not d["SenderIPAddresses"]:
            raise CmdletError(T_VALID, "RestrictDomainsToIPAddresses can only be set to true "
                              "when SenderIPAddresses is specified.")
        if d["TreatMessagesAsInternal"] and d["ConnectorType"] != "OnPremises":
            raise CmdletError(T_VALID, "TreatMessagesAsInternal can only be set to true on "
                              "a connector whose ConnectorType is OnPremises.")
        if d["ConnectorType"] == "OnPremises" and not (d["SenderIPAddresses"] or tls_name):
            raise CmdletError(T_VALID, "An OnPremises inbound connector requires "
                              "SenderIPAddresses or TlsSenderCertificateName.")
    else:
        if not d["UseMXRecord"] and not d["SmartHosts"]:
            raise CmdletError(T_VALID, "SmartHosts can't be empty when UseMXRecord is "
                              "false. Specify at least one smart host.")
        if d.get("TlsDomain") and d.get("TlsSettings") != "DomainValidation":
            raise CmdletError(T_VALID, "TlsDomain can only be specified when TlsSettings is "
                              "DomainValidation.")
        if d.get("TlsDomain") and not DOMAIN_RE.match(d["TlsDomain"]):
            raise CmdletError(T_VALID, "The TLS domain '%s' isn't valid." % d["TlsDomain"])
        if d["RouteAllMessagesViaOnPremises"] and d["ConnectorType"] != "OnPremises":
            raise CmdletError(T_VALID, "RouteAllMessagesViaOnPremises can only be set to "
                              "true on a connector whose ConnectorType is OnPremises.")


def resolve_outbound(ctx, ident):
    try:
        _, d = find_visible(ctx, "outbound", ident)
    except CmdletError:
        raise CmdletError(T_NOTFOUND, "The outbound connector '%s' couldn't be found. The "
                          "operation couldn't be performed because object '%s' couldn't be "
                          "found on '%s'." % (ident, ident, DC_NAME))
    return d["Name"]


def _xml_text(v):
    return (str(v).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&apos;"))


def rule_xml(d):
    """The rule as Exchange stores it (msExchTransportRuleXml), in the shape
    of Export-TransportRuleCollection: a rule element with its name and
    comments, a version with the CreatedBy tag, then one element per
    condition, exception and action with one <value> per value."""
    parts = ['<rule name="%s" comments="%s" mode="%s">'
             % (_xml_text(d["Name"]), _xml_text(d.get("Comments") or ""),
                _xml_text(d.get("Mode") or "Enforce")),
             '<version requiredMinVersion="15.0.3.0"><tags><tag name="CreatedBy" value="%s" />'
             '</tags>' % _xml_text(d.get("CreatedBy") or "")]
    for section in ("Conditions", "Exceptions", "Actions"):
        body = []
        for sec, param, cls in RULE_PREDICATES:
            v = d.get(param)
            if sec != section or not (_set(v) or (param in ("ExceptIfSCLOver", "SetSCL")
                                                  and v is not None)):
                continue
            values = v if isinstance(v, list) else [v]
            body.append('<%s><argument property="%s" />%s</%s>'
                        % (cls, param, "".join("<value>%s</value>" % _xml_text(x)
                                               for x in values), cls))
        if body:
            tag = {"Conditions": "condition", "Exceptions": "exception",
                   "Actions": "action"}[section]
            parts.append("<%s><and>%s</and></%s>" % (tag, "".join(body), tag))
    parts.append("</version></rule>")
    return "".join(parts)


def rule_regex_size(d):
    return sum(len(x) for f in ("ExceptIfHeaderMatchesPatterns", "ExceptIfHeaderContainsWords",
                                "ExceptIfFromAddressContainsWords")
               for x in (d.get(f) or []))


def validate_rule(ctx, d):
    validate_name(ctx, "rule", d["Name"])
    size = len(rule_xml(d))
    if size > RULE_SIZE_LIMIT:
        raise CmdletError(T_RULE_SIZE, "The rule cannot be created because it is too large. "
                          "It has %d characters and the maximum number of characters is %d. "
                          "Reduce the size." % (size, RULE_SIZE_LIMIT))
    pairs = (("ExceptIfHeaderContainsMessageHeader", "ExceptIfHeaderContainsWords"),
             ("ExceptIfHeaderMatchesMessageHeader", "ExceptIfHeaderMatchesPatterns"),
             ("SetHeaderName", "SetHeaderValue"))
    for a, b in pairs:
        if bool(d.get(a)) != bool(d.get(b)):
            raise CmdletError(T_VALID, "The %s and %s parameters must be used together."
                              % (a, b))
    if d.get("ExceptIfHeaderMatchesPatterns"):
        for pat in d["ExceptIfHeaderMatchesPatterns"]:
            try:
                re.compile(pat)
            except re.error:
                raise CmdletError(T_VALID, "The pattern '%s' isn't a valid regular "
                                  "expression." % pat)
    for f in ("SetSCL", "ExceptIfSCLOver"):
        if d.get(f) is not None and not -1 <= d[f] <= 9:
            raise CmdletError(T_RANGE, "The value of parameter %s is out of range. Specify a "
                              "value between -1 and 9.\r\nParameter name: %s" % (f, f))
    if not any(_set(d.get(p)) or (p == "SetSCL" and d.get(p) is not None)
               for sec, p, _ in RULE_PREDICATES if sec == "Actions"):
        raise CmdletError(T_VALID, "The transport rule must have at least one action. "
                          "Specify an action and try again.")


def priority_error(p, maxp):
    return CmdletError(T_RANGE, "The value of parameter Priority is out of range. Specify a "
                       "value between 0 and %d.\r\nParameter name: Priority\r\nActual value "
                       "was %d." % (maxp, p))


def shift_rules(ctx, exclude_guid, fn):
    """fn(priority) -> new priority; commits new versions for the rules that move."""
    for g, obj in ctx.tenant.objs["rule"].items():
        if g == exclude_guid:
            continue
        old = obj.cur["Priority"]
        new = fn(old)
        if new != old:
            d = dict(obj.cur)
            d["Priority"] = new
            obj.commit(d, ctx.vis_at, ctx.now)


def cmd_new(ctx, kind, params):
    spec = KINDS[kind]
    schema = dict(spec["schema"])
    if kind == "rule":
        schema["Enabled"] = "bool"
    mandatory = ["Name"] + (["SenderDomains"] if kind == "inbound" else [])
    p = bind(params, schema, mandatory, confirm=True)
    check_writable(ctx)
    t = ctx.tenant
    if kind == "inbound" and not t.inbound_connectors_allowed and not ctx.seeding:
        raise CmdletError(T_NOINBOUND, "Your subscription doesn't allow creating inbound "
                          "connectors. Inbound connectors can't be created in organizations "
                          "with this subscription (for example, the Microsoft 365 E5 "
                          "developer subscription). Contact Microsoft support or use a "
                          "different subscription.")
    if name_taken(ctx, kind, p["Name"]):
        if kind == "rule":
            raise CmdletError(T_DUP_RULE, "A transport rule with the name '%s' already "
                              "exists. Specify a different name." % p["Name"])
        raise CmdletError(T_DUP, "The %s '%s' already exists. An object with the same name "
                          "already exists in the directory." %
                          ("inbound connector" if kind == "inbound" else "outbound connector",
                           p["Name"]))
    d = dict(spec["defaults"])
    d.update({"Name": p["Name"], "Guid": str(uuid.uuid4())})
    apply_params(ctx, kind, d, {k: v for k, v in p.items() if k not in ("Enabled",)
                                or kind != "rule"})
    if kind == "rule":
        if "Enabled" in p:
            d["State"] = "Enabled" if p["Enabled"] else "Disabled"
        if d.get("RouteMessageOutboundConnector"):
            d["RouteMessageOutboundConnector"] = resolve_outbound(
                ctx, d["RouteMessageOutboundConnector"])
        d["CreatedBy"] = d["LastModifiedBy"] = (ctx.extra.pop("_created_by", None)
                                                or t.app_display_name)
        validate_rule(ctx, d)
        n = len(t.objs["rule"])
        if n >= RULE_LIMIT:
            raise CmdletError(T_RULE_COUNT, "The transport rule can't be created because the "
                              "maximum number of transport rules (%d) for this organization "
                              "has been reached. Remove a transport rule and try again."
                              % RULE_LIMIT)
        prio = p.get("Priority")
        if prio is None:
            prio = n
        if not 0 <= prio <= n:
            raise priority_error(prio, n)
        d["Priority"] = prio
        shift_rules(ctx, None, lambda q: q + 1 if q >= prio else q)
        d["WhenChanged"] = ctx.now
    else:
        validate_connector(ctx, kind, d)
        d["WhenCreated"] = d["WhenCreatedUTC"] = d["WhenChanged"] = d["WhenChangedUTC"] = ctx.now
    obj = Obj(d, ctx.vis_at)
    t.objs[kind][d["Guid"]] = obj
    return [serialize(kind, derive(kind, d, t), ctx.bare)]


def cmd_set(ctx, kind, params):
    spec = KINDS[kind]
    schema = dict(spec["schema"])
    schema["Identity"] = "str"
    p = bind(params, schema, ["Identity"], allow_delta=True, confirm=True)
    check_writable(ctx)
    t = ctx.tenant
    obj, _ = find_visible(ctx, kind, p["Identity"])
    d = dict(obj.cur)
    old_name = d["Name"]
    if "Name" in p and p["Name"] and p["Name"].lower() != old_name.lower() and \
            name_taken(ctx, kind, p["Name"], d["Guid"]):
        raise CmdletError(T_DUP_RULE if kind == "rule" else T_DUP,
                          "An object with the name '%s' already exists." % p["Name"])
    if "Name" in p and not p["Name"]:
        raise CmdletError(T_PARAM, "Cannot validate argument on parameter 'Name'. The "
                          "argument is null or empty.")
    newprio = p.pop("Priority", None) if kind == "rule" else None
    apply_params(ctx, kind, d, p)
    if kind == "rule":
        if "RouteMessageOutboundConnector" in p and d.get("RouteMessageOutboundConnector"):
            d["RouteMessageOutboundConnector"] = resolve_outbound(
                ctx, d["RouteMessageOutboundConnector"])
        validate_rule(ctx, d)
        d["LastModifiedBy"] = t.app_display_name
        d["WhenChanged"] = ctx.now
        if newprio is not None:
            n = len(t.objs["rule"])
            if not 0 <= newprio <= n - 1:
                raise priority_error(newprio, n - 1)
            q = d["Priority"]
            if newprio < q:
                shift_rules(ctx, d["Guid"], lambda r: r + 1 if newprio <= r < q else r)
            elif newprio > q:
                shift_rules(ctx, d["Guid"], lambda r: r - 1 if q < r <= newprio else r)
            d["Priority"] = newprio
    else:
        validate_connector(ctx, kind, d)
        d["WhenChanged"] = d["WhenChangedUTC"] = ctx.now
        if kind == "outbound" and d["Name"] != old_name:
            for robj in t.objs["rule"].values():
                rc = robj.cur.get("RouteMessageOutboundConnector")
                if rc and rc.lower() == old_name.lower():
                    rd = dict(robj.cur)
                    rd["RouteMessageOutboundConnector"] = d["Name"]
                    robj.commit(rd, ctx.vis_at, ctx.now)
    obj.commit(d, ctx.vis_at, ctx.now)
    return []


def cmd_remove(ctx, kind, params):
    p = bind(params, {"Identity": "str"}, ["Identity"], confirm=True)
    t = ctx.tenant
    obj, vd = find_visible(ctx, kind, p["Identity"])
    if p.get("Confirm", True) is not False:
        ctx.extra["@adminapi.confirmationmessage"] = (
            "Are you sure you want to perform this action?\r\nRemoving %s \"%s\"."
            % ({"inbound": "inbound connector", "outbound": "outbound connector",
                "rule": "transport rule"}[kind], vd["Name"]))
        return []
    if kind == "outbound":
        users = sorted(r.cur["Name"] for r in t.objs["rule"].values()
                       if (r.cur.get("RouteMessageOutboundConnector") or "").lower()
                       == obj.cur["Name"].lower())
        if users:
            raise CmdletError(T_INUSE, "The outbound connector '%s' can't be removed because "
                              "it's used by the following transport rule(s): %s."
                              % (obj.cur["Name"], ", ".join(users)))
    guid = obj.cur["Guid"]
    del t.objs[kind][guid]
    if kind == "rule":
        q = obj.cur["Priority"]
        shift_rules(ctx, None, lambda r: r - 1 if r > q else r)
    return []


def cmd_enable_disable(ctx, enable, params):
    schema = {"Identity": "str"}
    if enable:
        schema["Mode"] = "enum"
    p = bind(params, schema, ["Identity"], confirm=True)
    check_writable(ctx)
    obj, _ = find_visible(ctx, "rule", p["Identity"])
    d = dict(obj.cur)
    d["State"] = "Enabled" if enable else "Disabled"
    if p.get("Mode"):
        d["Mode"] = p["Mode"]
    d["WhenChanged"] = ctx.now
    d["LastModifiedBy"] = ctx.tenant.app_display_name
    obj.commit(d, ctx.vis_at, ctx.now)
    return []


def cmd_get(ctx, kind, params):
    schema = {"Identity": "str", "ResultSize": "str"}
    if kind == "outbound":
        schema["IncludeTestModeConnectors"] = "bool"
    if kind == "rule":
        schema["State"] = "enum"
    p = bind(params, schema)
    t = ctx.tenant
    if p.get("Identity") is not None:
        _, d = find_visible(ctx, kind, p["Identity"])
        return [serialize(kind, derive(kind, d, t), ctx.bare)]
    items = []
    hidden = 0
    for obj in t.objs[kind].values():
        d = obj.visible(ctx.now)
        if d is None:
            continue
        if kind == "outbound" and d["TestMode"] and not p.get("IncludeTestModeConnectors"):
            hidden += 1
            continue
        if kind == "rule" and p.get("State") and d["State"] != p["State"]:
            continue
        items.append(d)
    if kind == "rule":
        items.sort(key=lambda d: d["Priority"])
    if hidden:
        ctx.warnings.append("There is at least one test mode connector which is not included "
                            "in the result. Please use -IncludeTestModeConnectors to include "
                            "test mode connectors.")
    rs = p.get("ResultSize")
    if rs and rs.lower() != "unlimited":
        if not re.fullmatch(r"\d+", rs):
            raise bind_error("ResultSize", rs, "Microsoft.Exchange.Data.Unlimited`1[System."
                             "UInt32]", "The value isn't a number or 'Unlimited'.")
        if len(items) > int(rs):
            ctx.warnings.append("There are more results available than are currently "
                                "displayed. To view them, increase the value for the "
                                "ResultSize parameter.")
        items = items[:int(rs)]
    return [serialize(kind, derive(kind, d, t), ctx.bare) for d in items]


def cmd_get_accepted_domain(ctx, params):
    p = bind(params, {"Identity": "str", "ResultSize": "str"})
    t = ctx.tenant
    out = []
    for ad in t.accepted_domains:
        if p.get("Identity") and p["Identity"].lower() not in (ad["DomainName"],
                                                               ad["Guid"].lower()):
            continue
        o = {"DomainName": ad["DomainName"], "DomainType": ad["DomainType"],
             "Default": ad["Default"], "MatchSubDomains": False,
             "InitialDomain": ad["DomainName"] == t.initial_domain,
             "SendingFromDomainDisabled": False, "IsCoexistenceDomain": False,
             "AuthenticationType": "Managed", "Name": ad["DomainName"],
             "Identity": ad["DomainName"], "Id": ad["DomainName"],
             "Guid@data.type": "System.Guid", "Guid@odata.type": "#Guid", "Guid": ad["Guid"],
             "WhenCreatedUTC@data.type": "System.DateTime",
             "WhenCreatedUTC@odata.type": "#DateTimeOffset", "WhenCreatedUTC": iso(t.created),
             "WhenChangedUTC@data.type": "System.DateTime",
             "WhenChangedUTC@odata.type": "#DateTimeOffset", "WhenChangedUTC": iso(t.created),
             "IsValid": True, "ObjectState": "Unchanged"}
        out.append(o)
    if p.get("Identity") and not out:
        raise not_found(p["Identity"])
    return out


def cmd_get_org_config(ctx, params):
    bind(params, {"Identity": "str"})
    t = ctx.tenant
    return [{"Name": t.initial_domain, "DisplayName": t.display_name,
             "Identity": t.initial_domain, "Id": t.initial_domain,
             "IsDehydrated": t.dehydrated, "IsValid": True,
             "Guid@data.type": "System.Guid", "Guid@odata.type": "#Guid", "Guid": t.org_guid,
             "ExchangeObjectId@data.type": "System.Guid", "ExchangeObjectId@odata.type": "#Guid",
             "ExchangeObjectId": t.tenant_id,
             "OrganizationId": "%s - %s" % (t.initial_domain, t.initial_domain),
             "WhenCreatedUTC@data.type": "System.DateTime",
             "WhenCreatedUTC@odata.type": "#DateTimeOffset", "WhenCreatedUTC": iso(t.created),
             "ObjectState": "Unchanged"}]


def cmd_enable_customization(ctx, params):
    bind(params, {}, confirm=True)
    t = ctx.tenant
    if not t.dehydrated:
        raise CmdletError(T_NOTREQ, "This operation is not required. Organization is already "
                          "enabled for customization.")
    t.dehydrated = False
    return []

# ---- message trace (rows written by the SMTP front door, see FrontDoor)

TRACE_STATUSES = ["None", "GettingStatus", "Failed", "Pending", "Delivered", "Expanded",
                  "Quarantined", "FilteredAsSpam"]


def parse_date(param, v):
    """A DateTime parameter: ISO 8601 or US 'MM/dd/yyyy [HH:mm[:ss]]'; UTC
    unless an offset is given.  Epoch seconds."""
    s = v.strip()
    for fmt in ("%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%m/%d/%Y"):
        try:
            return datetime.datetime.strptime(s, fmt).replace(
                tzinfo=datetime.timezone.utc).timestamp()
        except ValueError:
            pass
    try:
        d = datetime.datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1",
                                                   s.replace("Z", "+00:00")))
    except ValueError:
        raise bind_error(param, v, "System.DateTime",
                         "String '%s' was not recognized as a valid DateTime." % v)
    if d.tzinfo is None:
        d = d.replace(tzinfo=datetime.timezone.utc)
    return d.timestamp()


def trace_window(ctx, p):
    end = parse_date("EndDate", p["EndDate"]) if p.get("EndDate") else ctx.now
    start = parse_date("StartDate", p["StartDate"]) if p.get("StartDate") else end - 48 * 3600
    if start > end:
        raise CmdletError(T_VALID, "The StartDate can't be later than the EndDate.")
    if end - start > 10 * 86400 + 1:
        raise CmdletError(T_VALID, "You can only query 10 days worth of data per query. "
                          "Specify a StartDate and EndDate that are no more than 10 days "
                          "apart.")
    if start < ctx.now - 90 * 86400:
        raise CmdletError(T_VALID, "The StartDate can't be more than 90 days in the past.")
    return start, end


def trace_visible(ctx, row):
    return row["_t"] + float(ctx.emu.cfg.get("trace_delay_s") or 0) <= ctx.now


def norm_message_id(m):
    return (m or "").strip().strip("<>").lower()


def trace_row_out(ctx, row, start, end, index):
    t = ctx.tenant
    out = {"Organization": t.initial_domain, "MessageId": row["MessageId"],
           "Received@data.type": "System.DateTime", "Received@odata.type": "#DateTimeOffset",
           "Received": iso(row["_t"]), "SenderAddress": row["SenderAddress"],
           "RecipientAddress": row["RecipientAddress"], "Subject": row["Subject"],
           "Status": row["Status"], "ToIP": row["ToIP"], "FromIP": row["FromIP"],
           "Size@data.type": "System.Int32", "Size": row["Size"],
           "MessageTraceId@data.type": "System.Guid", "MessageTraceId@odata.type": "#Guid",
           "MessageTraceId": row["MessageTraceId"],
           "StartDate@data.type": "System.DateTime", "StartDate@odata.type": "#DateTimeOffset",
           "StartDate": iso(start),
           "EndDate@data.type": "System.DateTime", "EndDate@odata.type": "#DateTimeOffset",
           "EndDate": iso(end), "Index@data.type": "System.Int32", "Index": index,
           # emulator extensions (not in Exchange Online): where the message went
           "EmuRoute": row["Route"], "EmuInboundConnector": row["InboundConnector"],
           "EmuTransportRules@odata.type": "#Collection(String)",
           "EmuTransportRules": list(row["TransportRules"]),
           "EmuHops@odata.type": "#Collection(String)", "EmuHops": list(row["Hops"])}
    return out


def cmd_message_trace(ctx, params):
    p = bind(params, {"MessageId": "list", "RecipientAddress": "list", "SenderAddress": "list",
                      "StartDate": "str", "EndDate": "str", "Status": "list",
                      "MessageTraceId": "str", "FromIP": "str", "ToIP": "str", "Subject": "str",
                      "SubjectFilterType": "str", "ResultSize": "int",
                      "StartingRecipientAddress": "str"})
    start, end = trace_window(ctx, p)
    rs = p.get("ResultSize")
    if rs is None:
        rs = 1000
    if not 1 <= rs <= 5000:
        raise CmdletError(T_RANGE, "The value of parameter ResultSize is out of range. Specify "
                          "a value between 1 and 5000.\r\nParameter name: ResultSize")
    statuses = []
    for st in p.get("Status") or []:
        canon = [x for x in TRACE_STATUSES if x.lower() == st.lower()]
        if not canon:
            raise bind_error("Status", st, "Microsoft.Exchange.Management.FfoReporting."
                             "Common.MessageTraceStatus", "Unable to match the identifier "
                             "name %s to a valid enumerator name. Specify one of the following "
                             "enumerator names and try again:\r\n%s"
                             % (st, ", ".join(TRACE_STATUSES)))
        statuses.append(canon[0])
    sft = p.get("SubjectFilterType") or "Contains"
    if sft.lower() not in ("contains", "startswith", "endswith"):
        raise bind_error("SubjectFilterType", sft, "System.String",
                         "Specify Contains, StartsWith or EndsWith.")
    if p.get("MessageTraceId") and not GUID_RE.match(p["MessageTraceId"]):
        raise bind_error("MessageTraceId", p["MessageTraceId"], "System.Guid",
                         "Guid should contain 32 digits with 4 dashes "
                         "(xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx).")
    mids = {norm_message_id(m) for m in p.get("MessageId") or []}

    def addr_ok(value, patterns):
        return not patterns or any(fnmatch.fnmatchcase(value.lower(), x.lower())
                                   for x in patterns)
    rows = []
    for row in ctx.tenant.trace:
        if not trace_visible(ctx, row) or not start <= row["_t"] <= end:
            continue
        if mids and norm_message_id(row["MessageId"]) not in mids:
            continue
        if not addr_ok(row["RecipientAddress"], p.get("RecipientAddress")) or \
                not addr_ok(row["SenderAddress"] or "", p.get("SenderAddress")):
            continue
        if statuses and row["Status"] not in statuses:
            continue
        if p.get("MessageTraceId") and row["MessageTraceId"] != p["MessageTraceId"].lower():
            continue
        if p.get("FromIP") and row["FromIP"] != p["FromIP"]:
            continue
        if p.get("ToIP") and row["ToIP"] != p["ToIP"]:
            continue
        if p.get("Subject"):
            subj, want = (row["Subject"] or "").lower(), p["Subject"].lower()
            if not {"contains": want in subj, "startswith": subj.startswith(want),
                    "endswith": subj.endswith(want)}[sft.lower()]:
                continue
        if p.get("StartingRecipientAddress") and \
                row["RecipientAddress"] < p["StartingRecipientAddress"].lower():
            continue
        rows.append(row)
    rows.sort(key=lambda r: (-r["_t"], r["RecipientAddress"]))
    if len(rows) > rs:
        ctx.warnings.append("There are more results, use the following command to get more. "
                            "Get-MessageTraceV2 -StartingRecipientAddress \"%s\" -EndDate "
                            "\"%s\"" % (rows[rs]["RecipientAddress"], iso(rows[rs]["_t"])))
        rows = rows[:rs]
    return [trace_row_out(ctx, r, start, end, i) for i, r in enumerate(rows)]


def cmd_message_trace_detail(ctx, params):
    p = bind(params, {"MessageTraceId": "str", "RecipientAddress": "str", "Action": "list",
                      "Event": "list", "MessageId": "str", "SenderAddress": "str",
                      "StartDate": "str", "EndDate": "str"},
             ["MessageTraceId", "RecipientAddress"])
    if not GUID_RE.match(p["MessageTraceId"]):
        raise bind_error("MessageTraceId", p["MessageTraceId"], "System.Guid",
                         "Guid should contain 32 digits with 4 dashes "
                         "(xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx).")
    start, end = trace_window(ctx, p)
    events = {e.lower() for e in p.get("Event") or []}
    actions = {a.lower() for a in p.get("Action") or []}
    out = []
    for row in ctx.tenant.trace:
        if row["MessageTraceId"] != p["MessageTraceId"].lower() or \
                row["RecipientAddress"] != p["RecipientAddress"].lower() or \
                not trace_visible(ctx, row):
            continue
        if p.get("MessageId") and norm_message_id(row["MessageId"]) != \
                norm_message_id(p["MessageId"]):
            continue
        if p.get("SenderAddress") and (row["SenderAddress"] or "").lower() != \
                p["SenderAddress"].lower():
            continue
        for e in row["Events"]:
            if not start <= e["_t"] <= end:
                continue
            if events and e["Event"].lower() not in events:
                continue
            if actions and (e["Action"] or "").lower() not in actions:
                continue
            out.append({"Organization": ctx.tenant.initial_domain,
                        "MessageId": row["MessageId"],
                        "MessageTraceId@data.type": "System.Guid",
                        "MessageTraceId@odata.type": "#Guid",
                        "MessageTraceId": row["MessageTraceId"],
                        "Date@data.type": "System.DateTime",
                        "Date@odata.type": "#DateTimeOffset", "Date": iso(e["_t"]),
                        "Event": e["Event"], "Action": e["Action"], "Detail": e["Detail"],
                        "Data": e["Data"]})
    return out


def cmdlet_table():
    tab = {"Get-AcceptedDomain": cmd_get_accepted_domain,
           "Get-OrganizationConfig": cmd_get_org_config,
           "Enable-OrganizationCustomization": cmd_enable_customization,
           "Enable-TransportRule": lambda c, p: cmd_enable_disable(c, True, p),
           "Disable-TransportRule": lambda c, p: cmd_enable_disable(c, False, p),
           "Get-MessageTraceV2": cmd_message_trace,
           "Get-MessageTraceDetailV2": cmd_message_trace_detail}
    for kind, spec in KINDS.items():
        noun = spec["noun"]
        tab["Get-" + noun] = (lambda k: lambda c, p: cmd_get(c, k, p))(kind)
        tab["New-" + noun] = (lambda k: lambda c, p: cmd_new(c, k, p))(kind)
        tab["Set-" + noun] = (lambda k: lambda c, p: cmd_set(c, k, p))(kind)
        tab["Remove-" + noun] = (lambda k: lambda c, p: cmd_remove(c, k, p))(kind)
    return tab


CMDLETS = cmdlet_table()
CMDLETS_LOWER = {k.lower(): k for k in CMDLETS}


# --------------------------------------------------------------------------
# emulator state

class ControlError(Exception):
    def __init__(self, status, msg):
        super().__init__(msg)
        self.status = status
        self.msg = msg


class Emu:
    def __init__(self, args):
        self.lock = threading.Lock()
        self.verbose = args.verbose
        self.cfg = {"consistency_delay_s": float(args.consistency_delay),
                    "page_size": int(args.page_size), "latency_ms": int(args.latency_ms),
                    "token_lifetime_s": 3599, "bare_string_singletons": True,
                    "invalid_client_status": 401, "trace_delay_s": 0.0,
                    "smtp_retry_for_s": 300.0, "device_interval_s": 5,
                    "device_expires_s": 900, "refresh_lifetime_s": 90 * 86400.0}
        self.tenants = {}
        self.tokens = {}
        self.faults = []
        self.requests = []
        self.skiptokens = {}
        self.clock_offset = 0.0
        self.frontdoor = None
        self.device = DeviceFlow(self)
        self.reset_stats()

    def reset_stats(self):
        self.stats = {"requests_by_cmdlet": {}, "token_requests": 0,
                      "max_concurrent_by_tenant": {}, "faults_injected": 0}
        self.inflight = {}

    def now(self):
        return time.time() + self.clock_offset

    def latency(self):
        ms = self.cfg["latency_ms"]
        if ms and ms > 0:
            time.sleep(ms / 1000.0)

    def find_tenant(self, ref):
        if not ref:
            return None
        r = urllib.parse.unquote(ref).lower()
        with self.lock:
            t = self.tenants.get(r)
            if t:
                return t
            for t in self.tenants.values():
                if t.initial_domain == r:
                    return t
        return None

    def record(self, rec):
        with self.lock:
            self.requests.append(rec)
            if len(self.requests) > MAX_RECORDS:
                del self.requests[:len(self.requests) - MAX_RECORDS]

    def take_fault(self, tenant, tenant_ref, cmdlet):
        with self.lock:
            for f in self.faults:
                ft = f.get("tenant")
                if ft:
                    names = {tenant_ref.lower()}
                    if tenant:
                        names |= {tenant.tenant_id, tenant.initial_domain}
                    if ft.lower() not in names:
                        continue
                fc = f.get("cmdlet")
                if fc and (cmdlet or "").lower() != fc.lower():
                    continue
                if f.get("writes") and (cmdlet or "Get-").lower().startswith("get-"):
                    continue
                # "skip": the first N matching calls pass (fault the N+1-th)
                if f.get("skip", 0) > 0:
                    f["skip"] -= 1
                    continue
                f["count"] -= 1
                if f["count"] <= 0:
                    self.faults.remove(f)
                self.stats["faults_injected"] += 1
                return dict(f)
        return None

    def issue_token(self, tenant, delegated=None):
        life = int(self.cfg["token_lifetime_s"])
        # A JWT as Entra issues them (unsigned here: clients must not check
        # it): tid is the tenant's GUID, which clients read for
        # X-AnchorMailbox.
        now_s = int(time.time())
        claims = {"aud": "https://outlook.office365.com", "iss": "https://sts.windows.net/%s/"
                  % tenant.tenant_id, "iat": now_s, "nbf": now_s, "exp": now_s + life,
                  "appid": tenant.client_id, "tid": tenant.tenant_id, "uti": secrets.token_urlsafe(16), "ver": "1.0"}
        if delegated:
            # A person's token: scp (delegated permissions) and upn, no roles.
            claims.update(delegated)
        elif tenant.consented:
            # Without admin consent Entra still issues the app's token,
            # with no roles claim (m365-identity-and-limits.md section 2).
            claims["roles"] = ["Exchange.ManageAsApp"]
        tok = "%s.%s.%s" % (b64url(json.dumps({"typ": "JWT", "alg": "RS256"}).encode()),
                            b64url(json.dumps(claims).encode()), secrets.token_urlsafe(48))
        with self.lock:
            now = self.now()
            for k in [k for k, v in self.tokens.items() if v["exp"] < now - 3600]:
                del self.tokens[k]
            self.tokens[tok] = {"tenant_id": tenant.tenant_id, "exp": now + life,
                                "roles": "roles" in claims or "scp" in claims,
                                "issued": now}
        return tok, life


# --------------------------------------------------------------------------
# The SMTP front door of the tenants (<domain-dashes>.mail.protection...):
# accepts mail for accepted domains, runs the tenant's live transport rules
# (the same objects, at the same visibility, as the admin API), routes to
# outbound connectors or delivers to mailboxes, and writes the message trace.
# The SMTP machinery (server, client, queue, DNS) is mailsim.py's.

def ip_in_ranges(ip, ranges):
    """ip (the connecting address of the last hop, as Exchange Online
    evaluates SenderIpRanges and SenderIPAddresses: never a Received header)
    in one of the ranges (single address, a-b, CIDR; IPv4 or IPv6)?  An
    IPv4 peer seen on an IPv6 socket (::ffff:a.b.c.d) is that IPv4 peer."""
    try:
        a = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if a.version == 6 and a.ipv4_mapped:
        a = a.ipv4_mapped
    for r in ranges or []:
        r = r.strip()
        try:
            if "-" in r:
                lo, hi = (ipaddress.ip_address(x.strip()) for x in r.split("-", 1))
                if lo.version == a.version == hi.version and lo <= a <= hi:
                    return True
            else:
                n = ipaddress.ip_network(r, strict=False)
                if n.version == a.version and a in n:
                    return True
        except ValueError:
            continue
    return False


LOCKDOWN_REFUSAL = ("550 5.7.51 TenantInboundAttribution; There is a partner connector "
                    "configured that matched the message's recipient domain. The connector "
                    "had either the RestrictDomainsToIPAddresses or RestrictDomainsToCertificate"
                    " set")


def sender_domain_matches(entries, domain):
    """An inbound connector's SenderDomains (as stored: 'smtp:*;1', or bare)
    covers the MAIL FROM domain: '*' every domain, also the null sender
    (the reference is silent on <>; '*' is documented as all senders);
    '*.contoso.com' its subdomains (not contoso.com itself: the reference is
    silent, this is how Exchange address spaces read); else the domain
    itself."""
    for e in entries or []:
        m = re.fullmatch(r"(?i)(?:smtp:)?(.*?)(?:;\d+)?", e.strip())
        want = m.group(1).lower().rstrip(".")
        if want == "*" or want == domain or (want.startswith("*.") and domain.endswith(want[1:])):
            return True
    return False


def connector_covers(c, rdom):
    """An inbound connector applies to recipient domain rdom: its
    AssociatedAcceptedDomains ("the accepted domains that the connector
    applies to, thereby limiting its scope") is empty or lists rdom (None:
    any)."""
    scope = [x.lower() for x in c.get("AssociatedAcceptedDomains") or []]
    return not scope or rdom is None or rdom in scope


def scoped_first(conns, rdom):
    """The visible connectors that apply to rdom, those scoped to it
    (AssociatedAcceptedDomains lists it) first.  The reference is silent on
    which of several connectors accepting one certificate a message is
    attributed to; the one limited to the recipient's domain is taken as
    the more specific."""
    conns = [c for c in conns if c and connector_covers(c, rdom)]
    return [c for c in conns if c.get("AssociatedAcceptedDomains")] + \
        [c for c in conns if not c.get("AssociatedAcceptedDomains")]


def message_types(headers):
    """The ExceptIfMessageTypeMatches classes a message belongs to (roughly)."""
    h = {k.lower(): (v or "").lower() for k, v in headers}
    ctype = h.get("content-type", "")
    out = set()
    if h.get("auto-submitted", "no") not in ("", "no") or "x-auto-response-suppress" in h:
        out.add("OOF")
    if "multipart/signed" in ctype:
        out.add("Signed")
    if "pkcs7-mime" in ctype:
        out.add("Encrypted")
    if "text/calendar" in ctype:
        out.add("Calendaring")
    if "disposition-notification" in ctype:
        out.add("ReadReceipt")
    return out


class FrontDoorHandler:
    def __init__(self, fd):
        self.fd = fd

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        t = self.fd.tenant_for(address.rpartition("@")[2].lower())
        if t is None:
            with self.fd.emu.lock:
                self.fd.stats["rejected_recipients"] += 1
            return ("550 5.4.1 Recipient address rejected: Access denied. [%s]"
                    % self.fd.hostname)
        refusal = self.fd.lockdown_refusal(t, session, envelope.mail_from,
                                           address.rpartition("@")[2].lower())
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Recipient OK"

    async def handle_DATA(self, server, session, envelope):
        import asyncio
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.fd.ms.guarded(self.fd.receive, self.fd.log),
                                          session, envelope.mail_from,
                                          list(envelope.rcpt_tos),
                                          envelope.original_content or b"")


class FrontDoor:
    def __init__(self, emu, emu_dir, address, port, dns, hostname):
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import mailsim
        self.ms = mailsim
        self.emu = emu
        self.address = address
        self.port = port
        self.hostname = hostname
        self.resolver = mailsim.Resolver(mailsim.parse_servers(dns)) if dns else None
        ca = os.path.join(emu_dir, "ca.pem")
        cert, key = os.path.join(emu_dir, "smtp.pem"), os.path.join(emu_dir, "smtp.key")
        mailsim.issue_cert(emu_dir, cert, key, hostname,
                           [hostname, "*.mail.protection.outlook.test",
                            "mail.protection.outlook.test"], [address])
        self.server_tls = mailsim.server_tls_context(cert, key, ca)
        self.tls_verify = mailsim.client_tls_context(ca, cert, key, verify=True)
        self.tls_any = mailsim.client_tls_context(None, cert, key, verify=False)
        self.outbox = mailsim.Outbox(workers=4, retry_for=float(emu.cfg["smtp_retry_for_s"]),
                                     log=self.log)
        self.stats = {"messages": 0, "rejected_recipients": 0, "lockdown_refused": 0,
                      "delivered": 0, "routed": 0, "relayed": 0, "relay_failures": 0,
                      "quarantined": 0, "dropped": 0}

    def log(self, msg):
        if self.emu.verbose:
            sys.stderr.write("m365emu: smtp: %s\n" % msg)

    def start(self):
        self.smtp = self.ms.SmtpServers()
        self.smtp.add(self.address, self.port, FrontDoorHandler(self), self.hostname,
                      self.server_tls, ident="Microsoft ESMTP MAIL Service (emulated)")

    def close(self):
        self.smtp.close()

    def info(self):
        with self.emu.lock:
            s = dict(self.stats)
        s.update({"address": self.address, "port": self.port, "hostname": self.hostname,
                  "queue": self.outbox.pending()})
        return s

    def tenant_for(self, domain):
        with self.emu.lock:
            tenants = list(self.emu.tenants.values())
        for t in tenants:
            if any(d["DomainName"] == domain for d in t.accepted_domains):
                return t
        return None

    def receive(self, session, mail_from, rcpts, raw):
        ms = self.ms
        try:
            msg = ms.parse_headers(raw)
        except Exception as e:
            return "554 5.6.0 cannot parse the message: %s" % e
        if len(msg.get_all("Received") or []) >= ms.MAX_HOPS:
            return "554 5.4.14 Hop count exceeded - possible mail loop"
        tls, names = ms.session_tls(session)
        peer = session.peer[0]
        trace_id = str(uuid.uuid4())
        added = [ms.received_header(session.host_name, peer, self.hostname, tls, trace_id)]
        mid = (msg.get("Message-ID") or "").strip()
        if not mid:
            mid = "<%s@%s>" % (uuid.uuid4(), self.hostname)
            added.append(("Message-ID", mid))
        raw = ms.header_block(added) + raw
        headers = added + [(k, str(v)) for k, v in msg.items()]
        with self.emu.lock:
            self.stats["messages"] += 1
        m = {"trace_id": trace_id, "message_id": mid, "from": mail_from,
             "subject": str(msg.get("Subject") or ""), "size": len(raw), "peer": peer,
             "tls": tls, "cert_names": names, "headers": headers, "raw": raw}
        for r in rcpts:
            t = self.tenant_for(r.rpartition("@")[2].lower())
            if t is None:  # accepted domain removed since RCPT
                continue
            with t.lock:
                self.process(t, m, r)
        return "250 2.6.0 %s [InternalId=%s, Hostname=%s] Queued mail for delivery" % (
            mid, trace_id, self.hostname)

    def submit(self, t, data):
        """A mailbox of tenant t sends a message (an authenticated client,
        not SMTP from outside): no inbound connector, FromScope
        InOrganization, FromIP empty (reference: empty for authenticated
        internal mail).  Then as any message: the rules, and recipients
        outside the tenant routed by a connector or sent by their MX from
        the front door's address."""
        ms = self.ms
        sender = str(data.get("from") or "")
        rcpts = data.get("to") or []
        if isinstance(rcpts, str):
            rcpts = [rcpts]
        accepted = {d["DomainName"] for d in t.accepted_domains}
        if sender.rpartition("@")[2].lower() not in accepted:
            raise ControlError(400, "'from' must be a mailbox of one of the tenant's "
                               "accepted domains")
        if not rcpts or not all(isinstance(r, str) and "@" in r for r in rcpts):
            raise ControlError(400, "'to' must list recipient addresses")
        trace_id = str(uuid.uuid4())
        mid = str(data.get("message_id") or "<%s@%s>" % (uuid.uuid4(), sender.rpartition("@")[2]))
        subject = str(data.get("subject") or "submitted")
        added = [("Received", "from mailbox (%s) by %s with MAPI; %s" % (
                     sender, self.hostname, email.utils.formatdate(usegmt=True))),
                 ("Message-ID", mid), ("From", sender), ("To", ", ".join(rcpts)),
                 ("Subject", subject), ("Date", email.utils.formatdate(usegmt=True))]
        raw = ms.header_block(added) + b"\r\n" + b"sent by a mailbox of the tenant\r\n"
        with self.emu.lock:
            self.stats["messages"] += 1
        m = {"trace_id": trace_id, "message_id": mid, "from": sender, "subject": subject,
             "size": len(raw), "peer": "", "tls": False, "cert_names": [],
             "headers": added, "raw": raw, "internal": True}
        for r in rcpts:
            with t.lock:
                self.process(t, m, r)
        return {"message_id": mid, "trace_id": trace_id}

    # ---- one recipient
    def process(self, t, m, rcpt):
        now = self.emu.now()
        row = {"_t": now, "MessageTraceId": m["trace_id"], "MessageId": m["message_id"],
               "SenderAddress": m["from"], "RecipientAddress": rcpt.lower(),
               "Subject": m["subject"], "Status": "Pending", "FromIP": m["peer"], "ToIP": None,
               "Size": m["size"], "Route": None, "InboundConnector": None,
               "TransportRules": [], "Hops": [], "Events": []}
        t.trace.append(row)
        if len(t.trace) > MAX_RECORDS:
            del t.trace[:len(t.trace) - MAX_RECORDS]
        ev = lambda *a: self.event(row, *a)  # noqa: E731
        internal = m.get("internal", False)
        inbound = None if internal else self.match_inbound(t, now, m,
                                                           rcpt.rpartition("@")[2].lower())
        if inbound:
            row["InboundConnector"] = inbound["Name"]
        if internal:
            ev("Submit", None, "The message was submitted by mailbox %s." % m["from"], None,
               "submitted by mailbox %s" % m["from"])
        else:
            ev("Receive", None, "Message received by: %s from %s%s%s" % (
                self.hostname, m["peer"], " using TLS" if m["tls"] else "",
                " through inbound connector '%s'" % inbound["Name"] if inbound else ""),
               json.dumps({"FromIP": m["peer"], "TLS": m["tls"],
                           "CertificateNames": m["cert_names"],
                           "InboundConnector": inbound["Name"] if inbound else None}),
               "received from %s%s%s" % (m["peer"], " (TLS)" if m["tls"] else "",
                                         " via inbound connector '%s'" % inbound["Name"]
                                         if inbound else ""))
        d = self.run_rules(t, now, m, rcpt, ev, row)
        if d["delete"]:
            row["Status"], row["Route"] = "Failed", "Drop"
            ev("Drop", None, "The message was deleted by a transport rule.", None, "dropped")
            self.count("dropped")
            return
        if d["quarantine"]:
            row["Status"], row["Route"] = "Quarantined", "Quarantine"
            ev("Quarantine", None, "The message was quarantined by a transport rule.", None,
               "quarantined")
            self.count("quarantined")
            return
        if not internal:
            d["headers"] = self.authentication(m, rcpt, inbound) + d["headers"]
        data = self.ms.header_block(d["headers"]) + m["raw"]
        if d["route"]:
            conn = self.find_outbound(t, now, d["route"])
            if conn is None:
                ev("Transport rule", None, "The outbound connector '%s' isn't available (not "
                   "found or disabled): the routing action was skipped." % d["route"], None,
                   "connector '%s' unavailable: not routed" % d["route"])
            else:
                row["Route"] = "Connector:%s" % conn["Name"]
                self.count("routed")
                self.relay(t, row, m, [rcpt], data, conn)
                return
        targets = d["redirect"] or [rcpt]
        local = [x for x in targets if self.tenant_for(x.rpartition("@")[2].lower()) is t]
        remote = [x for x in targets if x not in local]
        for x in local:
            self.deliver(t, row, m, x, d["headers"])
        if remote:
            row["Route"] = (row["Route"] + "," if row["Route"] else "") + "External"
            for x in remote:  # each by a connector for its domain, else its MX
                self.relay(t, row, m, [x], data, self.by_recipient(t, now, x))
        elif local:
            row["Status"] = "Delivered"

    def count(self, key):
        with self.emu.lock:
            self.stats[key] += 1

    def event(self, row, event, action, detail, data=None, hop=None):
        row["Events"].append({"_t": self.emu.now(), "Event": event, "Action": action,
                              "Detail": detail, "Data": data})
        if hop:
            row["Hops"].append(hop)

    def match_inbound(self, t, now, m, rdom=None):
        """The inbound connector the message came through, for recipient
        domain rdom: one scoped to it (AssociatedAcceptedDomains) before an
        unscoped one (see scoped_first)."""
        for c in scoped_first((o.visible(now) for o in t.objs["inbound"].values()), rdom):
            if not c.get("Enabled"):
                continue
            if m["tls"] and self.cert_matches(c.get("TlsSenderCertificateName"),
                                              m["cert_names"]):
                return c
            if c.get("SenderIPAddresses") and ip_in_ranges(m["peer"], c["SenderIPAddresses"]):
                return c
        return None

    def cert_matches(self, want, names):
        """The client certificate (its DNS names: SAN, else CN, as the front
        door's TLS layer verified it against the test CA) matches
        TlsSenderCertificateName (which may be '*.contoso.com'; so may the
        certificate's name).  The reference says the certificate's Subject
        is compared; it is silent on SANs, which are compared here too."""
        ms = self.ms
        return bool(want) and any(ms.name_matches(want, n) or ms.name_matches(n, want)
                                  for n in names)

    # ---- the MX-bypass lock-down (reference notes, identity and limits §6)
    def lockdown_refusal(self, t, session, mail_from, rdom=None):
        """The answer to RCPT TO when tenant t (the recipient domain's: the
        NDR says the connector "matched the message's recipient domain") has
        an enabled Partner inbound connector, visible now, whose SenderDomains
        match the sender's domain and which has RestrictDomainsToCertificate
        or RestrictDomainsToIPAddresses set, and this connection meets the
        restriction of none of them: 550 5.7.51.  None: the recipient may
        pass.  Only Partner connectors restrict (the reference: the flags
        "apply only to Partner connectors"); a connector that does not
        restrict does not rescue a message a restricting one refuses ("a
        restricting connector takes precedence over an allow-by-domain one").
        The reference is silent on several restricting connectors matching
        one message (here: meeting any one of them is enough, as for two
        gateways locking down one tenant) and on a trace row for a message
        refused at RCPT TO (none is written: the message was never taken)."""
        tls, names = self.ms.session_tls(session)
        peer = session.peer[0]
        sdom = (mail_from or "").rpartition("@")[2].lower()
        now = self.emu.now()
        with t.lock:
            conns = [c for c in (o.visible(now) for o in t.objs["inbound"].values())
                     if c and c.get("Enabled") and c.get("ConnectorType") == "Partner"
                     and (c.get("RestrictDomainsToCertificate") or
                          c.get("RestrictDomainsToIPAddresses"))
                     and sender_domain_matches(c.get("SenderDomains"), sdom)
                     and connector_covers(c, rdom)]
        if not conns or any(self.meets_restriction(c, tls, names, peer) for c in conns):
            return None
        self.count("lockdown_refused")
        self.log("RCPT refused (5.7.51): from %s, TLS %s, certificate %s, connector(s) %s"
                 % (peer, tls, ",".join(names) or "none", ", ".join(c["Name"] for c in conns)))
        return LOCKDOWN_REFUSAL

    def meets_restriction(self, c, tls, names, peer):
        """Every restriction set on c is met (the reference describes each
        flag as refusing on its own; it advises against setting both on one
        connector and is silent on what then happens)."""
        if c.get("RestrictDomainsToIPAddresses") and not ip_in_ranges(
                peer, c.get("SenderIPAddresses")):
            return False
        if c.get("RestrictDomainsToCertificate") and not (
                tls and self.cert_matches(c.get("TlsSenderCertificateName"), names)):
            return False
        return True

    # ---- Enhanced Filtering for Connectors (identity and limits §6)
    def true_source(self, c, m):
        """(address, helo) of the true source of message m under connector
        c's skip listing, or None when c does not skip-list (EFSkipIPs empty
        and EFSkipLastIP off: EF is off).  The hops are the connecting
        address, then each Received header of the message, newest first
        (the front door's own, the first, excepted); EFSkipLastIP skips the
        last hop only, EFSkipIPs every hop in its ranges.  The reference is
        silent on a chain in which every hop is skip-listed: here the oldest
        is taken."""
        if not c or not (c.get("EFSkipLastIP") or c.get("EFSkipIPs")):
            return None
        hops = [(m["peer"], None)]
        for k, v in m["headers"][1:]:
            got = re.match(r"\s*from\s+(\S+)\s+\(\[([^\]]+)\]\)", v) \
                if k.lower() == "received" else None
            if got:
                hops.append((got.group(2), got.group(1)))
        if c.get("EFSkipLastIP"):
            return hops[1] if len(hops) > 1 else hops[0]
        for ip, helo in hops:
            if not ip_in_ranges(ip, c["EFSkipIPs"]):
                return ip, helo
        return hops[-1]

    def authentication(self, m, rcpt, inbound):
        """The headers the front door stamps on a message for one
        recipient: SPF of the MAIL FROM domain judged on the connecting
        address, or, where the connector skip-lists (Enhanced Filtering)
        and EFUsers is empty or lists the recipient, on the true source,
        with X-MS-Exchange-SkipListedInternetSender and
        X-MS-Exchange-ExternalOriginalInternetSender.  Only SPF is
        evaluated (DKIM and DMARC are not modelled)."""
        ip, out = m["peer"], []
        src = self.true_source(inbound, m)
        if src:
            tag = "ip=[%s];domain=%s" % (src[0], src[1] or "unknown")
            out.append(("X-MS-Exchange-SkipListedInternetSender", tag))
            users = [u.lower() for u in inbound.get("EFUsers") or []]
            if not users or rcpt.lower() in users:
                out.append(("X-MS-Exchange-ExternalOriginalInternetSender", tag))
                ip = src[0]
        sdom = (m["from"] or "").rpartition("@")[2].lower()
        if not sdom:
            res, why = "none", "null sender"
        elif self.resolver is None:
            res, why = "temperror", "the front door has no DNS resolver (--dns)"
        else:
            res, why = self.ms.spf_check(self.resolver, sdom, ip)
        self.log("%s to %s: spf=%s (%s)" % (m["message_id"], rcpt, res, why))
        out.insert(0, ("Authentication-Results", "spf=%s (sender IP is %s) smtp.mailfrom=%s"
                       % (res, ip, sdom or "<>")))
        return out

    def by_recipient(self, t, now, rcpt):
        """The outbound connector that is not rule-scoped and whose
        RecipientDomains ("*" or a domain, with its subdomains; or every
        accepted domain with AllAcceptedDomains) cover rcpt, else None: mail
        to the internet then goes by the recipient's MX."""
        rdom = rcpt.rpartition("@")[2].lower()
        for obj in t.objs["outbound"].values():
            c = obj.visible(now)
            if not c or not c.get("Enabled") or c.get("IsTransportRuleScoped") or \
                    c.get("TestMode"):
                continue
            for x in c.get("RecipientDomains") or []:
                x = x.lower()
                if x == "*" or rdom == x or (x.startswith("*.") and rdom.endswith(x[1:])):
                    return c
        return None

    def find_outbound(self, t, now, name):
        for obj in t.objs["outbound"].values():
            c = obj.visible(now)
            if c and c["Name"].lower() == name.lower() and c.get("Enabled"):
                return c
        return None

    def run_rules(self, t, now, m, rcpt, ev, row):
        rules = sorted((d for d in (o.visible(now) for o in t.objs["rule"].values()) if d),
                       key=lambda d: d["Priority"])
        accepted = {d["DomainName"] for d in t.accepted_domains}
        rdom = rcpt.rpartition("@")[2].lower()
        rcpt_internal = rdom in accepted
        # A mailbox's own submission is from inside; mail from outside is
        # judged by its sender domain (as the front door always did).
        sender_internal = m["internal"] if "internal" in m else \
            (m["from"] or "").rpartition("@")[2].lower() in accepted
        out = {"route": None, "redirect": None, "delete": False, "quarantine": False,
               "headers": [], "scl": -1}
        for r in rules:
            if r["State"] != "Enabled":
                continue
            if r.get("RecipientDomainIs") and not any(
                    rdom == x.lower() or rdom.endswith("." + x.lower())
                    for x in r["RecipientDomainIs"]):
                continue
            sdom = (m["from"] or "").rpartition("@")[2].lower()
            if r.get("SenderDomainIs") and not any(
                    sdom == x.lower() or sdom.endswith("." + x.lower())
                    for x in r["SenderDomainIs"]):
                continue
            if r.get("SentToScope") in ("InOrganization", "NotInOrganization") and \
                    (r["SentToScope"] == "InOrganization") != rcpt_internal:
                continue
            if r.get("SentToScope") and r["SentToScope"] not in ("InOrganization",
                                                                  "NotInOrganization"):
                continue
            if r.get("FromScope") and (r["FromScope"] == "InOrganization") != sender_internal:
                continue
            tag = "Transport rule: '%s', ID: (%s)" % (r["Name"], r["Guid"])
            exc = self.exception(r, m["headers"] + out["headers"], m, out["scl"], rdom)
            if exc:
                ev("Transport rule", None, "%s: not applied, exception: %s" % (tag, exc), None,
                   "rule '%s' skipped: %s" % (r["Name"], exc))
                continue
            if r["Mode"] != "Enforce":
                ev("Transport rule", None, "%s: matched in %s mode, no action taken"
                   % (tag, r["Mode"]), None, "rule '%s' matched (%s)" % (r["Name"], r["Mode"]))
                continue
            acts = []
            if r.get("SetSCL") is not None:
                out["scl"] = r["SetSCL"]
                acts.append("SetSCL")
            if r.get("SetHeaderName"):
                out["headers"].append((r["SetHeaderName"], r.get("SetHeaderValue") or ""))
                acts.append("SetHeader")
            if r.get("RouteMessageOutboundConnector"):
                if out["route"] is None:
                    out["route"] = r["RouteMessageOutboundConnector"]
                acts.append("RouteMessageOutboundConnector")
            if r.get("RedirectMessageTo"):
                out["redirect"] = list(r["RedirectMessageTo"])
                acts.append("RedirectMessage")
            if r.get("Quarantine"):
                out["quarantine"] = True
                acts.append("Quarantine")
            if r.get("DeleteMessage"):
                out["delete"] = True
                acts.append("DeleteMessage")
            if r.get("StopRuleProcessing"):
                acts.append("StopRuleProcessing")
            row["TransportRules"].append(r["Name"])
            ev("Transport rule", ",".join(acts), "%s, actions: %s%s" % (
                tag, ", ".join(acts), " (connector '%s')" % r["RouteMessageOutboundConnector"]
                if r.get("RouteMessageOutboundConnector") else ""), None,
               "rule '%s' applied: %s" % (r["Name"], ", ".join(acts)))
            if r.get("StopRuleProcessing") or out["delete"]:
                break
        return out

    def exception(self, r, headers, m, scl, rdom):
        """Why the rule's exceptions apply, or None."""
        def values(name):
            return [v for k, v in headers if k.lower() == name.lower()]

        def in_domains(dom, domains):
            return any(dom == x.lower() or dom.endswith("." + x.lower()) for x in domains)
        sender = (m["from"] or "").lower()
        sdom = sender.rpartition("@")[2]
        if r.get("ExceptIfSenderDomainIs") and in_domains(sdom, r["ExceptIfSenderDomainIs"]):
            return "sender domain %s" % sdom
        if r.get("ExceptIfRecipientDomainIs") and in_domains(rdom,
                                                             r["ExceptIfRecipientDomainIs"]):
            return "recipient domain %s" % rdom
        for w in r.get("ExceptIfFromAddressContainsWords") or []:
            if w.lower() in sender:
                return "sender address contains '%s'" % w
        name = r.get("ExceptIfHeaderContainsMessageHeader")
        if name:
            for v in values(name):
                for w in r.get("ExceptIfHeaderContainsWords") or []:
                    if w.lower() in v.lower():
                        return "header '%s' contains '%s'" % (name, w)
        name = r.get("ExceptIfHeaderMatchesMessageHeader")
        if name:
            for v in values(name):
                for pat in r.get("ExceptIfHeaderMatchesPatterns") or []:
                    try:
                        if re.search(pat, v, re.I):
                            return "header '%s' matches '%s'" % (name, pat)
                    except re.error:
                        continue
        if r.get("ExceptIfSenderIpRanges") and ip_in_ranges(m["peer"],
                                                             r["ExceptIfSenderIpRanges"]):
            return "sender IP %s in %s" % (m["peer"], ", ".join(r["ExceptIfSenderIpRanges"]))
        if r.get("ExceptIfSCLOver") is not None and scl >= r["ExceptIfSCLOver"]:
            return "SCL %d >= %d" % (scl, r["ExceptIfSCLOver"])
        mt = r.get("ExceptIfMessageTypeMatches")
        if mt and mt in message_types(headers):
            return "message type %s" % mt
        return None

    def deliver(self, t, row, m, address, extra_headers):
        now = self.emu.now()
        box = address.lower()
        mails = t.mail.setdefault(box, [])
        if len(mails) >= MAX_MAILBOX:
            del mails[:len(mails) - MAX_MAILBOX + 1]
        mails.append({
            "mailbox": box, "message_id": m["message_id"], "trace_id": m["trace_id"],
            "delivered_at": now, "delivered": iso(now), "from": m["from"],
            "subject": m["subject"], "size": m["size"], "from_ip": m["peer"],
            "headers": [[k, v] for k, v in list(extra_headers) + m["headers"]]})
        row["Route"] = (row["Route"] + "," if row["Route"] else "") + "Mailbox"
        self.event(row, "Deliver", None, "The message was successfully delivered to %s."
                   % box, None, "delivered to mailbox %s" % box)
        self.count("delivered")

    def relay(self, t, row, m, rcpts, data, conn):
        """Queue the message for the connector's smart hosts (conn) or the
        recipients' MX (conn None); the row is Pending until sent."""
        ms = self.ms
        resolver = self.resolver
        row["Status"] = "Pending"
        if conn:
            mode = conn.get("TlsSettings")
            if mode in ("EncryptionOnly", None):
                tls = {"mode": "required" if mode else "opportunistic", "context": self.tls_any}
            else:
                tls = {"mode": "required", "context": self.tls_verify}

        def run():
            if resolver is None:
                raise ms.TransientError("the front door has no DNS resolver (--dns)")
            if conn is None or conn.get("UseMXRecord"):
                dests = ms.mx_destinations(resolver, rcpts[0].rpartition("@")[2])
                how = {"mode": "opportunistic", "context": self.tls_any}
                return ms.smtp_send(dests, self.port, m["from"] or "", rcpts, data,
                                    source=self.address, helo=self.hostname,
                                    tls=how if conn is None else tls)
            problems = []
            for sh in conn["SmartHosts"]:
                try:
                    ips = resolver.addresses(sh)
                except ms.DnsError as e:
                    problems.append(str(e))
                    continue
                name = conn.get("TlsDomain") or sh
                how = dict(tls, verify_name=name if mode == "DomainValidation" else None)
                try:
                    return ms.smtp_send([(sh, ip) for ip in ips], self.port, m["from"] or "",
                                        rcpts, data, source=self.address, helo=self.hostname,
                                        tls=how)
                except ms.TransientError as e:
                    problems.append(str(e))
            raise ms.TransientError("; ".join(problems) or "no smart host")

        via = " via outbound connector '%s'" % conn["Name"] if conn else ""

        def done(res):
            with t.lock:
                row["Status"], row["ToIP"] = "Delivered", res["ip"]
                tls_text = " using %s with %s" % (res["tls"]["version"], res["tls"]["cipher"]) \
                    if res.get("tls") else ""
                self.event(row, "Send external", None, "Message sent to **%s** at %s%s%s: %s"
                           % (res["host"], res["ip"], tls_text, via, res["response"]),
                           json.dumps({"SmartHost": res["host"], "ToIP": res["ip"],
                                       "Connector": conn["Name"] if conn else None}),
                           "sent to %s[%s]%s" % (res["host"], res["ip"], via))
            self.count("relayed")

        def deferred(err):
            with t.lock:
                n = sum(1 for e in row["Events"] if e["Event"] == "Defer")
                if n < 20:
                    self.event(row, "Defer", None, "The message was deferred%s: %s" % (via, err),
                               None, "deferred: %s" % err if n == 0 else None)

        def failed(err):
            with t.lock:
                row["Status"] = "Failed"
                self.event(row, "Fail", None, "The message could not be delivered%s: %s"
                           % (via, err), None, "failed: %s" % err)
            self.count("relay_failures")

        self.outbox.retry_for = float(self.emu.cfg["smtp_retry_for_s"])
        self.outbox.submit(ms.Job(run, done, deferred, failed,
                                  label="%s -> %s%s" % (m["message_id"], ",".join(rcpts), via)))


# --------------------------------------------------------------------------
# HTTP

class Drop(Exception):
    pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-IIS/10.0"
    sys_version = ""
    timeout = 60

    @property
    def emu(self):
        return self.server.emu

    def version_string(self):
        return self.server_version

    def log_message(self, fmt, *args):
        if self.emu.verbose:
            sys.stderr.write("m365emu: %s\n" % (fmt % args))

    def handle(self):
        try:
            super().handle()
        except (ConnectionError, ssl.SSLError, socket.timeout, OSError):
            pass

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = lambda self: self.dispatch()

    # ---- plumbing
    def read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        if n > 20 * 1024 * 1024:
            raise Drop()
        return self.rfile.read(n) if n > 0 else b""

    def send(self, status, body=b"", headers=(), ctype="application/json; charset=utf-8"):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        if body or ctype and status not in (204, 401, 403):
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def drop(self):
        self.close_connection = True
        try:
            self.wfile.flush()
        except OSError:
            pass
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def host_base(self):
        host = self.headers.get("Host") or "127.0.0.1:%d" % self.server.server_address[1]
        return "https://" + host

    def dispatch(self):
        path, _, query = self.path.partition("?")
        try:
            if path == "/_emu" or path.startswith("/_emu/"):
                self.handle_control(path, query)
            elif path.startswith("/login/"):
                self.handle_token(path, query)
            elif path.lower().startswith("/adminapi/"):
                self.handle_invoke(path, query)
            else:
                self.read_body()
                self.send(404, {"error": {"code": "NotFound",
                                          "message": "No resource at %s" % path}})
        except Drop:
            self.drop()

    def rec_headers(self):
        h = {}
        for k, v in self.headers.items():
            h[k] = v
        return h

    # ---- token endpoint
    def handle_token(self, path, query):
        emu = self.emu
        body = self.read_body()
        m = re.fullmatch(r"/login/([^/]+)/oauth2/v2\.0/(token|devicecode)", path)
        with emu.lock:
            emu.stats["token_requests"] += 1
        emu.latency()
        rec = {"t": time.time(), "method": self.command, "path": self.path, "kind": "token",
               "tenant": None, "cmdlet": None, "headers": self.rec_headers()}
        form = {}
        if body:
            try:
                form = {k: v[-1] for k, v in urllib.parse.parse_qs(
                    body.decode("utf-8"), keep_blank_values=True).items()}
            except UnicodeDecodeError:
                form = {}
        rec["form"] = dict(form)
        if "client_secret" in rec["form"]:
            rec["form"]["client_secret"] = "<present:%d chars>" % len(form["client_secret"])
        for secret in ("refresh_token", "device_code"):
            if secret in rec["form"]:
                rec["form"][secret] = "<sha256:%s>" % sha256_hex(form[secret])
        status, resp, extra = self.token_logic(m, form, rec)
        rec["status"] = status
        rec.update(extra)
        hdrs = [("Cache-Control", "no-store, no-cache"), ("Pragma", "no-cache"),
                ("x-ms-request-id", str(uuid.uuid4())), ("x-ms-ests-server", "2.1.emu")]
        if self.headers.get("client-request-id"):
            hdrs.append(("client-request-id", self.headers["client-request-id"]))
        emu.record(rec)
        self.send(status, resp, hdrs)

    def aad_error(self, status, error, code, text):
        return aad_error(self.headers.get("client-request-id"), status, error, code, text)

    def token_logic(self, m, form, rec):
        emu = self.emu
        ic = int(emu.cfg.get("invalid_client_status", 401))
        if self.command != "POST":
            return self.aad_error(400, "invalid_request", 900561, "The endpoint only accepts "
                                  "POST, OPTIONS requests. Received a %s request." % self.command)
        if not m:
            return 404, {"error": "not_found"}, {}
        tref = urllib.parse.unquote(m.group(1))
        rec["tenant"] = tref
        tenant = emu.find_tenant(tref)
        if tenant is None:
            return self.aad_error(400, "invalid_request", 90002, "Tenant '%s' not found. Check "
                                  "to make sure you have the correct tenant ID and are signing "
                                  "into the correct cloud. Check with your subscription "
                                  "administrator, this may happen if there are no active "
                                  "subscriptions for the tenant." % tref)
        rec["tenant"] = tenant.tenant_id
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            form = {}
        if m.group(2) == "devicecode":
            rec["kind"] = "devicecode"
            return emu.device.devicecode(self, tenant, form)
        if form.get("grant_type") in (DEVICE_GRANT, "refresh_token"):
            return emu.device.token(self, tenant, form, rec)
        for p in ("grant_type", "client_id", "scope"):
            if not form.get(p):
                return self.aad_error(400, "invalid_request", 900144, "The request body must "
                                      "contain the following parameter: '%s'." % p)
        if form["grant_type"] != "client_credentials":
            return self.aad_error(400, "unsupported_grant_type", 70003, "The app requested an "
                                  "unsupported grant type '%s'." % form["grant_type"])
        cid = form["client_id"].lower()
        if not tenant.client_id or cid != tenant.client_id:
            return self.aad_error(400, "unauthorized_client", 700016, "Application with "
                                  "identifier '%s' was not found in the directory '%s'. This "
                                  "can happen if the application has not been installed by the "
                                  "administrator of the tenant or consented to by any user in "
                                  "the tenant. You may have sent your authentication request to "
                                  "the wrong tenant." % (form["client_id"], tenant.display_name))
        if form["scope"] not in cloud_scopes(emu.cfg):
            return self.aad_error(400, "invalid_scope", 70011, "The provided request must "
                                  "include a 'scope' input parameter. The provided value for "
                                  "the input parameter 'scope' is not valid. The scope %s is "
                                  "not valid." % form["scope"])
        err = check_client(form, tenant.client_id, tenant.client_secret, tenant.certs,
                           self.host_base() + self.path.split("?")[0], ic, rec,
                           self.headers.get("client-request-id"))
        if err:
            return err
        tok, life = emu.issue_token(tenant)
        return 200, {"token_type": "Bearer", "expires_in": life, "ext_expires_in": life,
                     "access_token": tok}, {}

    # ---- InvokeCommand
    def handle_invoke(self, path, query):
        emu = self.emu
        raw = self.read_body()
        m = re.fullmatch(r"/adminapi/beta/([^/]+)/InvokeCommand", path, re.I)
        rec = {"t": time.time(), "method": self.command, "path": self.path, "kind": "invoke",
               "tenant": None, "cmdlet": None, "headers": self.rec_headers()}
        if not m:
            rec["status"] = 404
            emu.record(rec)
            return self.send(404, {"error": {"code": "NotFound", "message":
                                             "The requested resource was not found."}})
        tref = urllib.parse.unquote(m.group(1))
        tenant = emu.find_tenant(tref)
        tkey = tenant.tenant_id if tenant else tref.lower()
        rec["tenant"] = tkey
        body, cmdlet, params, parse_err = None, None, None, None
        try:
            body = json.loads(raw.decode("utf-8")) if raw else None
            ci = body["CmdletInput"]
            cmdlet = ci["CmdletName"]
            params = ci.get("Parameters") or {}
            if not isinstance(cmdlet, str):
                raise TypeError("CmdletName")
        except (ValueError, UnicodeDecodeError, TypeError, KeyError) as e:
            parse_err = "The request body is not valid: %s" % e
            cmdlet = self.headers.get("X-CmdletName")
        canon = CMDLETS_LOWER.get((cmdlet or "").lower(), cmdlet)
        rec["cmdlet"] = canon
        rec["body"] = body
        auth = self.headers.get("Authorization")
        rec["auth"] = "missing" if auth is None else "present"
        with emu.lock:
            k = canon or "?"
            emu.stats["requests_by_cmdlet"][k] = emu.stats["requests_by_cmdlet"].get(k, 0) + 1
            n = emu.inflight.get(tkey, 0) + 1
            emu.inflight[tkey] = n
            mc = emu.stats["max_concurrent_by_tenant"]
            mc[tkey] = max(mc.get(tkey, 0), n)
        try:
            emu.latency()
            status, resp, hdrs = self.invoke_logic(tenant, tref, canon, params, parse_err,
                                                   query, rec)
        except Drop:
            rec["status"] = 0
            emu.record(rec)
            raise
        finally:
            with emu.lock:
                emu.inflight[tkey] -= 1
        rec["status"] = status
        emu.record(rec)
        if status == 200:
            ctype = ODATA_CTYPE
        else:
            ctype = "application/json; charset=utf-8"
        self.send(status, resp if resp is not None else b"", hdrs, ctype)

    def invoke_logic(self, tenant, tref, cmdlet, params, parse_err, query, rec):
        emu = self.emu
        if self.command != "POST":
            return 405, {"error": {"code": "MethodNotAllowed", "message":
                                   "The HTTP method '%s' is not allowed." % self.command}}, \
                [("Allow", "POST")]
        # authentication
        auth = self.headers.get("Authorization") or ""
        www = ('Bearer client_id="%s", trusted_issuers="00000001-0000-0000-c000-000000000000@*", '
               'token_types="app_asserted_user_v1 service_asserted_app_v1", '
               'authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize"'
               % EXO_APP_ID)
        mm = re.fullmatch(r"(?i)bearer\s+(\S+)\s*", auth)
        reason = None
        if not mm:
            reason = "The access token is missing or not a Bearer token."
            rec["auth"] = "missing" if not auth else "malformed"
        else:
            with emu.lock:
                ti = emu.tokens.get(mm.group(1))
            if ti is None:
                reason, rec["auth"] = "The access token is invalid.", "invalid"
            elif ti["exp"] <= emu.now():
                reason, rec["auth"] = "The access token is expired.", "expired"
            elif tenant is None or ti["tenant_id"] != tenant.tenant_id:
                reason, rec["auth"] = ("The access token was issued for another tenant.",
                                       "wrong_tenant")
            else:
                rec["auth"] = "valid"
        if reason:
            return 401, None, [("WWW-Authenticate", www + ', error="invalid_token"'),
                               ("x-ms-diagnostics", '2000001;reason="%s";error_category='
                                '"invalid_token"' % reason),
                               ("request-id", str(uuid.uuid4()))]
        if not ti["roles"]:
            # A token without Exchange.ManageAsApp: the REST 401 of a
            # missing permission (m365-identity-and-limits.md section 2).
            return 401, {"error": {"code": "Unauthorized", "message": "User is not allowed to "
                                   "call %s" % cmdlet, "innererror": {
                                       "message": "The role assigned to application %s isn't "
                                       "supported in this scenario." % tenant.client_id,
                                       "type": "Microsoft.Exchange.Admin.OData.Core."
                                       "ODataServiceException"}}}, \
                [("request-id", str(uuid.uuid4()))]
        if tenant.forbidden or emu.now() < tenant.role_applies_at:
            return 403, None, [("x-ms-diagnostics", '2000008;reason="The application does not '
                                'have the required role or permission (Exchange.ManageAsApp '
                                'with the Exchange Administrator role) to access this '
                                'resource.";error_category="insufficient_auth_strength"'),
                               ("request-id", str(uuid.uuid4()))]
        # faults
        fault = emu.take_fault(tenant, tref, cmdlet)
        after_fault = None
        if fault:
            rec["fault"] = fault["kind"]
            kind = fault["kind"]
            ra = str(fault.get("retry_after", 1))
            if kind in ("drop", "reset"):
                raise Drop()
            if kind in ("acted_reset", "acted_hang"):
                # the server acts; its answer never arrives (see below)
                after_fault = fault
            if kind == "slow":
                time.sleep(max(0, fault.get("delay_ms", 1000)) / 1000.0)
            elif kind == "429":
                return 429, {"error": {"code": "TooManyRequests", "message":
                                       "Too many requests. The request was throttled. Please "
                                       "retry after %s seconds." % ra}}, \
                    [("Retry-After", ra), ("request-id", str(uuid.uuid4()))]
            elif kind in ("503", "504"):
                code = ("ServiceUnavailable", "The service is temporarily unavailable. "
                        "Please try again later.") if kind == "503" else \
                    ("GatewayTimeout", "The gateway did not receive a response from the "
                     "backend in time.")
                return int(kind), {"error": {"code": code[0], "message": code[1]}}, \
                    [("Retry-After", ra), ("request-id", str(uuid.uuid4()))]
            elif kind == "throttle_text":
                err = CmdletError(T_THROTTLE, THROTTLE_TEXT)
                return 400, err.body(), [("request-id", str(uuid.uuid4()))]
            elif kind == "error":
                err = CmdletError(fault.get("etype") or T_FAULT, fault.get("text") or (
                    "The cmdlet '%s' couldn't be completed because of a transient server "
                    "error. Try again later." % cmdlet))
                rec["error"] = "%s|%s" % (err.etype, err.text)
                return 400, err.body(), [("request-id", str(uuid.uuid4()))]
        status, out, hdrs = self.invoke_result(tenant, tref, cmdlet, params, parse_err,
                                               query, rec)
        if fault and fault["kind"] == "interleave" and fault.get("then"):
            then = fault["then"]
            try:
                self.run_cmdlet(tenant, tref, then.get("cmdlet"), then.get("params") or {})
            except CmdletError as e:
                rec["interleave_error"] = "%s|%s" % (e.etype, e.text)
        if after_fault:
            if after_fault["kind"] == "acted_hang":
                time.sleep(max(0, after_fault.get("delay_ms", 1000)) / 1000.0)
            raise Drop()
        return status, out, hdrs

    def invoke_result(self, tenant, tref, cmdlet, params, parse_err, query, rec):
        if parse_err:
            return 400, {"error": {"code": "BadRequest", "message": parse_err}}, \
                [("request-id", str(uuid.uuid4()))]
        hdrs = [("OData-Version", "4.0"), ("request-id", str(uuid.uuid4())),
                ("Cache-Control", "no-cache")]
        hdrs += self.rate_headers(tenant)
        q = urllib.parse.parse_qs(query, keep_blank_values=True)
        select = None
        if q.get("$select"):
            select = {s.strip().lower() for s in q["$select"][-1].split(",") if s.strip()}
        try:
            if q.get("$skiptoken"):
                values, warnings, extra, nxt = self.follow_page(tenant, tref, cmdlet, params,
                                                                q["$skiptoken"][-1])
            else:
                values, warnings, extra, nxt = self.run_cmdlet(tenant, tref, cmdlet, params)
        except CmdletError as e:
            rec["error"] = "%s|%s" % (e.etype, e.text)
            return 400, e.body(), hdrs[1:2]
        if select:
            values = [{k: v for k, v in o.items() if k.split("@")[0].lower() in select}
                      for o in values]
        out = {"@odata.context": "%s/adminapi/beta/%s/$metadata#Collection("
                                 "Exchange.GenericHashTable)" % (self.host_base(), tref),
               "adminapi.warnings@odata.type": "#Collection(String)",
               "@adminapi.warnings": warnings}
        out.update(extra)
        out["value"] = values
        if nxt:
            out["@odata.nextLink"] = nxt
        return 200, out, hdrs

    def rate_headers(self, tenant):
        now = time.time()
        with tenant.lock:
            window = int(now // 300) * 300
            if window != tenant.rate_window:
                tenant.rate_window, tenant.rate_used = window, 0
            tenant.rate_used += 1
            used = tenant.rate_used
        return [("Rate-Limit-Limit", "30000"), ("Rate-Limit-Remaining", str(max(0, 30000 - used))),
                ("Rate-Limit-Reset", http_date_iso_ms(window + 300))]

    def page_size(self):
        ps = int(self.emu.cfg["page_size"])
        mm = re.search(r"odata\.maxpagesize\s*=\s*(\d+)", self.headers.get("Prefer") or "")
        if mm:
            n = int(mm.group(1))
            ps = min(ps, n) if ps > 0 else n
        return ps

    def next_link(self, tref, key):
        return "%s/adminapi/beta/%s/InvokeCommand?$skiptoken=%s" % (
            self.host_base(), tref, key)

    def paginate(self, tenant, tref, cmdlet, params, items, offset):
        ps = self.page_size()
        if ps <= 0 or len(items) - offset <= ps:
            return items[offset:], None
        emu = self.emu
        key = secrets.token_urlsafe(24)
        with emu.lock:
            now = time.time()
            for k in [k for k, v in emu.skiptokens.items() if v["expires"] < now]:
                del emu.skiptokens[k]
            emu.skiptokens[key] = {"tenant_id": tenant.tenant_id, "cmdlet": cmdlet,
                                   "params": json.dumps(params, sort_keys=True),
                                   "items": items, "offset": offset + ps,
                                   "expires": now + 600}
        return items[offset:offset + ps], self.next_link(tref, key)

    def follow_page(self, tenant, tref, cmdlet, params, key):
        emu = self.emu
        with emu.lock:
            st = emu.skiptokens.get(key)
        if st is None or st["expires"] < time.time():
            raise CmdletError(T_SKIP, "The skip token '%s' is invalid or has expired. Run the "
                              "command again without a skip token." % key)
        if st["tenant_id"] != tenant.tenant_id or st["cmdlet"] != cmdlet or \
                st["params"] != json.dumps(params or {}, sort_keys=True):
            raise CmdletError(T_SKIP, "The skip token '%s' doesn't belong to this request: "
                              "POST the same body as the first request." % key)
        values, nxt = self.paginate(tenant, tref, cmdlet, params or {}, st["items"],
                                    st["offset"])
        return values, [], {}, nxt

    def run_cmdlet(self, tenant, tref, cmdlet, params):
        fn = CMDLETS.get(cmdlet)
        if fn is None:
            raise CmdletError(T_NOCMD, "The term '%s' is not recognized as the name of a "
                              "cmdlet, function, script file, or operable program. Check the "
                              "spelling of the name, or if a path was included, verify that "
                              "the path is correct and try again." % cmdlet, errid="")
        with tenant.lock:
            ctx = Ctx(self.emu, tenant, self.emu.now())
            values = fn(ctx, params)
        nxt = None
        if cmdlet.startswith("Get-"):
            values, nxt = self.paginate(tenant, tref, cmdlet, params or {}, values, 0)
        return values, ctx.warnings, ctx.extra, nxt

    # ---- control API
    def handle_control(self, path, query):
        raw = self.read_body()
        try:
            data = json.loads(raw.decode("utf-8")) if raw.strip() else {}
        except (ValueError, UnicodeDecodeError) as e:
            return self.send(400, {"error": "invalid JSON: %s" % e})
        try:
            status, out = self.control(path.rstrip("/"), query, data)
        except ControlError as e:
            status, out = e.status, {"error": e.msg}
        except CmdletError as e:
            status, out = 400, {"error": "%s|%s|%s" % (e.errid, e.etype, e.text)}
        except (ValueError, KeyError, TypeError, OSError) as e:
            status, out = 400, {"error": "%s: %s" % (type(e).__name__, e)}
        self.send(status, out)

    def control(self, path, query, data):
        emu = self.emu
        meth = self.command
        q = urllib.parse.parse_qs(query)
        parts = path.split("/")[2:]
        if not isinstance(data, dict):
            raise ControlError(400, "the body must be a JSON object")
        if parts == ["health"] or parts == []:
            return 200, {"ok": True, "pid": os.getpid()}
        if parts and parts[0] == "device":
            return emu.device.control(meth, parts[1:], data)
        if parts == ["roles"] and meth == "POST":
            return self.grant_role(data)
        if parts == ["tenants"]:
            if meth == "GET":
                with emu.lock:
                    return 200, [t.summary() for t in emu.tenants.values()]
            if meth == "POST":
                t = self.create_tenant(data)
                return 201, t.summary()
        if len(parts) >= 3 and parts[0] == "tenants":
            t = emu.find_tenant(parts[1])
            if t is None:
                raise ControlError(404, "no tenant '%s'" % parts[1])
            if parts[2:] == ["submit"] and meth == "POST":
                if emu.frontdoor is None:
                    raise ControlError(409, "the emulator has no mail path (--smtp-port)")
                return 200, emu.frontdoor.submit(t, data)
            return self.control_mail(t, meth, parts[2:], q)
        if parts == ["smtp"] and meth == "GET":
            if emu.frontdoor is None:
                return 200, {"enabled": False}
            out = emu.frontdoor.info()
            out["enabled"] = True
            return 200, out
        if len(parts) == 2 and parts[0] == "tenants":
            t = emu.find_tenant(parts[1])
            if t is None:
                raise ControlError(404, "no tenant '%s'" % parts[1])
            if meth == "GET":
                return 200, self.tenant_state(t)
            if meth == "PATCH":
                bad = set(data) - {"dehydrated", "inbound_connectors_allowed", "forbidden",
                                   "consented", "public_client", "delegated_consent",
                                   "client_secret", "client_id", "certificate_pem",
                                   "certificate_file", "accepted_domains", "display_name",
                                   "app_display_name"}
                if bad:
                    raise ControlError(400, "unknown field(s): %s" % ", ".join(sorted(bad)))
                with t.lock:
                    t.update(data)
                return 200, t.summary()
            if meth == "DELETE":
                with emu.lock:
                    emu.tenants.pop(t.tenant_id, None)
                return 200, {"deleted": t.tenant_id}
        if parts == ["config"]:
            if meth == "POST":
                types = {"consistency_delay_s": float, "page_size": int, "latency_ms": int,
                         "token_lifetime_s": int, "bare_string_singletons": bool,
                         "invalid_client_status": int, "trace_delay_s": float,
                         "smtp_retry_for_s": float, "device_interval_s": int,
                         "device_expires_s": int, "refresh_lifetime_s": float,
                         "cloud": str}
                new = {}
                for k, v in data.items():
                    if k not in types:
                        raise ControlError(400, "unknown config key '%s'" % k)
                    if types[k] is str:
                        if v not in CLOUD_EXO_HOSTS:
                            raise ControlError(400, "%s must be one of %s" % (
                                k, ", ".join(CLOUD_EXO_HOSTS)))
                        new[k] = v
                        continue
                    if types[k] is bool and not isinstance(v, bool):
                        raise ControlError(400, "%s must be a boolean" % k)
                    if types[k] is not bool and (isinstance(v, bool) or
                                                 not isinstance(v, (int, float))):
                        raise ControlError(400, "%s must be a number" % k)
                    new[k] = types[k](v)
                with emu.lock:
                    emu.cfg.update(new)
            if meth in ("GET", "POST"):
                with emu.lock:
                    return 200, dict(emu.cfg)
        if parts == ["faults"]:
            if meth == "POST":
                kind = str(data.get("kind", ""))
                if kind not in FAULT_KINDS:
                    raise ControlError(400, "kind must be one of " + ", ".join(FAULT_KINDS))
                bad = set(data) - {"kind", "count", "tenant", "cmdlet", "writes", "skip",
                                   "retry_after", "delay_ms", "etype", "text", "then"}
                if bad:
                    raise ControlError(400, "unknown field(s): %s" % ", ".join(sorted(bad)))
                f = {"kind": kind, "count": int(data.get("count", 1)),
                     "tenant": data.get("tenant"), "cmdlet": data.get("cmdlet"),
                     "writes": bool(data.get("writes", False)),
                     "skip": int(data.get("skip", 0)),
                     "retry_after": int(data.get("retry_after", 1)),
                     "delay_ms": int(data.get("delay_ms", 1000)),
                     "etype": data.get("etype"), "text": data.get("text"),
                     "then": data.get("then")}
                with emu.lock:
                    emu.faults.append(f)
                    return 201, list(emu.faults)
            if meth == "GET":
                with emu.lock:
                    return 200, list(emu.faults)
            if meth == "DELETE":
                with emu.lock:
                    emu.faults.clear()
                return 200, []
        if parts == ["requests"]:
            if meth == "GET":
                with emu.lock:
                    reqs = list(emu.requests)
                for key in ("tenant", "cmdlet", "kind"):
                    if q.get(key):
                        want = q[key][-1].lower()
                        reqs = [r for r in reqs if (r.get(key) or "").lower() == want]
                return 200, reqs
            if meth == "DELETE":
                with emu.lock:
                    emu.requests.clear()
                return 200, []
        if parts == ["stats"]:
            if meth == "GET":
                with emu.lock:
                    s = json.loads(json.dumps(emu.stats))
                    s["in_flight_by_tenant"] = dict(emu.inflight)
                return 200, s
            if meth == "DELETE":
                with emu.lock:
                    emu.reset_stats()
                return 200, {}
        if parts == ["tokens", "expire"] and meth == "POST":
            t = emu.find_tenant(data["tenant"]) if data.get("tenant") else None
            n = 0
            with emu.lock:
                for v in emu.tokens.values():
                    if t is None or v["tenant_id"] == t.tenant_id:
                        v["exp"] = min(v["exp"], emu.now() - 1)
                        n += 1
            return 200, {"expired": n}
        if parts == ["clock"]:
            if meth == "POST":
                with emu.lock:
                    emu.clock_offset += float(data.get("advance_s", 0))
            if meth in ("GET", "POST"):
                with emu.lock:
                    return 200, {"now": emu.now(), "offset_s": emu.clock_offset}
        raise ControlError(404, "no control endpoint %s %s" % (meth, path))

    def grant_role(self, data):
        """The Exchange Administrator role assigned to the app now; Exchange
        refuses (403) until it has applied, delay_s later."""
        t = self.emu.find_tenant(str(data.get("tenant", "")))
        if t is None:
            raise ControlError(404, "no tenant '%s'" % data.get("tenant"))
        with t.lock:
            t.forbidden = False
            t.role_applies_at = self.emu.now() + float(data.get("delay_s", 0))
        return 200, {"tenant": t.tenant_id, "applies_at": t.role_applies_at}

    def control_mail(self, t, meth, rest, q):
        """/_emu/tenants/T/{mailboxes[/ADDR],messages,trace}: what the front
        door delivered and traced (no trace delay here)."""
        def want(key):
            return q[key][-1] if q.get(key) else None
        mid = norm_message_id(want("message_id")) if want("message_id") else None
        if rest[0] in ("mailboxes", "messages"):
            if meth == "DELETE" and len(rest) == 1:
                with t.lock:
                    n = sum(len(v) for v in t.mail.values())
                    t.mail.clear()
                return 200, {"deleted": n}
            if meth != "GET":
                raise ControlError(405, "GET or DELETE only")
            with t.lock:
                if rest[0] == "mailboxes" and len(rest) == 1:
                    return 200, {a: len(v) for a, v in sorted(t.mail.items())}
                if rest[0] == "mailboxes" and len(rest) == 2:
                    msgs = list(t.mail.get(urllib.parse.unquote(rest[1]).lower(), []))
                elif len(rest) == 1:
                    msgs = [x for v in t.mail.values() for x in v]
                else:
                    raise ControlError(404, "no control endpoint %s" % "/".join(rest))
            if mid:
                msgs = [x for x in msgs if norm_message_id(x["message_id"]) == mid]
            return 200, sorted(msgs, key=lambda x: x["delivered_at"])
        if rest == ["trace"]:
            if meth == "DELETE":
                with t.lock:
                    n = len(t.trace)
                    t.trace.clear()
                return 200, {"deleted": n}
            if meth != "GET":
                raise ControlError(405, "GET or DELETE only")
            with t.lock:
                rows = json.loads(json.dumps(t.trace))
            if mid:
                rows = [r for r in rows if norm_message_id(r["MessageId"]) == mid]
            for key, field in (("recipient", "RecipientAddress"), ("sender", "SenderAddress")):
                if want(key):
                    rows = [r for r in rows if (r[field] or "").lower() == want(key).lower()]
            for r in rows:
                r["Received"] = iso(r.pop("_t"))
                for e in r["Events"]:
                    e["Date"] = iso(e.pop("_t"))
            return 200, rows
        raise ControlError(404, "no control endpoint %s %s" % (meth, "/".join(rest)))

    def create_tenant(self, data):
        emu = self.emu
        for k in ("tenant_id", "initial_domain", "client_id"):
            if not isinstance(data.get(k), str) or not data[k]:
                raise ControlError(400, "'%s' is required" % k)
        if not GUID_RE.match(data["tenant_id"]):
            raise ControlError(400, "tenant_id must be a GUID")
        if not data["initial_domain"].lower().endswith(".onmicrosoft.com"):
            raise ControlError(400, "initial_domain must end with .onmicrosoft.com")
        known = {"tenant_id", "initial_domain", "accepted_domains", "client_id",
                 "client_secret", "certificate_pem", "certificate_file", "dehydrated",
                 "inbound_connectors_allowed", "forbidden", "consented", "rules", "inbound_connectors",
                 "outbound_connectors", "display_name", "app_display_name",
                 "public_client", "delegated_consent"}
        bad = set(data) - known
        if bad:
            raise ControlError(400, "unknown field(s): %s" % ", ".join(sorted(bad)))
        t = Tenant(data)
        ctx = Ctx(emu, t, emu.now())
        ctx.seeding = True
        for kind, key in (("outbound", "outbound_connectors"), ("inbound", "inbound_connectors"),
                          ("rule", "rules")):
            for i, seed in enumerate(data.get(key) or []):
                seed = dict(seed)
                state = seed.pop("State", None)
                created_by = seed.pop("CreatedBy", None)
                if created_by:
                    ctx.extra["_created_by"] = created_by
                try:
                    cmd_new(ctx, kind, seed)
                except CmdletError as e:
                    raise ControlError(400, "%s[%d] (%s): %s|%s" % (key, i, seed.get("Name"),
                                                                   e.etype, e.text))
                ctx.extra.pop("_created_by", None)
                if state:
                    cmd_enable_disable(ctx, state == "Enabled", {"Identity": seed["Name"]})
        with emu.lock:
            emu.tenants[t.tenant_id] = t
        return t

    def tenant_state(self, t):
        now = self.emu.now()
        out = t.summary()
        with t.lock:
            for kind, key in (("inbound", "inbound_connectors"), ("outbound", "outbound_connectors"),
                              ("rule", "rules")):
                lst = []
                for obj in t.objs[kind].values():
                    d = plain(kind, derive(kind, obj.cur, t))
                    vis_at = obj.versions[-1][0]
                    d["_pending"] = vis_at > now
                    d["_visible"] = obj.visible(now) is not None
                    d["_visible_at"] = vis_at if vis_at > now else None
                    lst.append(d)
                if kind == "rule":
                    lst.sort(key=lambda d: d["Priority"])
                out[key] = lst
        return out


# --------------------------------------------------------------------------
# Delegated sign-in: the device authorization grant (RFC 8628) as the
# Microsoft identity platform runs it (/work/shared/ref/
# m365-identity-and-limits.md section 1), the refresh tokens it leaves, and
# the admin's side the tests drive (/_emu/device/...):
#
#   POST /login/T/oauth2/v2.0/devicecode   client_id, scope -> device_code,
#        user_code, verification_uri, expires_in, interval, message
#   POST /login/T/oauth2/v2.0/token
#        grant_type=urn:ietf:params:oauth:grant-type:device_code:
#        400 authorization_pending (70016) until approved; slow_down when
#        polled sooner than the interval or when told to (the interval then
#        grows by 5 s, RFC 8628 3.5); 400 expired_token (70020) after
#        expires_in; 400 authorization_declined once declined; 401
#        invalid_client (7000218) for the tenant's own app unless it allows
#        public client flows; 400 invalid_grant (65001) when the tenant
#        never consented to the app (delegated_consent false); on approval
#        200 with access_token and, with offline_access, refresh_token.
#        grant_type=refresh_token: a new access token and a new refresh
#        token (the old one stays valid, as Microsoft's do); revoked: 400
#        invalid_grant (50173); past refresh_lifetime_s: 700082.
#   Control:
#     GET  /_emu/device                     the codes (state, polls, interval,
#                                           too_fast) and refresh tokens
#                                           (sha256, tenant, uses, revoked)
#     POST /_emu/device/approve  {"user_code": C}   (default: the newest
#     POST /_emu/device/decline  {"user_code": C}    pending code)
#     POST /_emu/device/expire   {"user_code": C}
#     POST /_emu/device/slow_down {"user_code": C, "count": N}
#     POST /_emu/device/revoke   {"tenant": T}      revoke its refresh tokens
#     POST /_emu/roles {"tenant": T, "delay_s": S}  the Exchange role granted
#                                           now, applied after S seconds
#                                           (403 with x-ms-diagnostics until)
#   Config (/_emu/config): device_interval_s (5), device_expires_s (900),
#   refresh_lifetime_s (90 days).

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
# Exchange Online PowerShell's public client (v2/v3) and the legacy one.
PUBLIC_CLIENT_IDS = {"fb78d390-0c51-40cd-8e17-fdbfab77341b",
                     "a0c73c16-a7e3-4564-9a95-2bdf47383716"}
OIDC_SCOPES = {"offline_access", "openid", "profile", "email"}
DEVICE_URI = "https://microsoft.com/devicelogin"


def sha256_hex(s):
    return hashlib.sha256(s.encode()).hexdigest()


class DeviceFlow:
    def __init__(self, emu):
        self.emu = emu
        self.codes = {}          # device_code -> state
        self.refresh = {}        # refresh token -> state

    def code_for(self, data):
        """The code a control call means: by user_code, else the newest
        pending one."""
        uc = data.get("user_code")
        live = [c for c in self.codes.values() if c["state"] == "pending"]
        if uc:
            live = [c for c in self.codes.values() if c["user_code"] == uc]
        if not live:
            raise ControlError(404, "no pending device code%s" % (
                " with user_code %s" % uc if uc else ""))
        return max(live, key=lambda c: c["created"])

    def control(self, meth, rest, data):
        with self.emu.lock:
            if meth == "GET" and not rest:
                return 200, {"codes": [{k: v for k, v in c.items() if k != "device_code"}
                                       for c in self.codes.values()],
                             "refresh_tokens": [dict(r, sha256=sha256_hex(tok))
                                                for tok, r in self.refresh.items()]}
            if meth != "POST" or len(rest) != 1:
                raise ControlError(404, "no control endpoint %s /_emu/device/%s"
                                   % (meth, "/".join(rest)))
            if rest[0] == "revoke":
                t = self.emu.tenants.get(str(data.get("tenant", "")).lower())
                n = 0
                for r in self.refresh.values():
                    if t is None or r["tenant_id"] == t.tenant_id:
                        r["revoked"] = True
                        n += 1
                return 200, {"revoked": n}
            c = self.code_for(data)
            if rest[0] == "approve":
                c["state"] = "approved"
                c["user"] = data.get("user", "admin@" + c["tenant_domain"])
            elif rest[0] == "decline":
                c["state"] = "declined"
            elif rest[0] == "expire":
                c["expires"] = self.emu.now() - 1
            elif rest[0] == "slow_down":
                c["slow_down"] += int(data.get("count", 1))
            else:
                raise ControlError(404, "no control endpoint /_emu/device/%s" % rest[0])
            return 200, {k: v for k, v in c.items() if k != "device_code"}

    def check_scope(self, h, scope):
        """None, or the error of a scope list naming no or two resources."""
        res = [s for s in scope.split() if s not in OIDC_SCOPES]
        if len(res) > 1 and len({s.rsplit("/", 1)[0] for s in res}) > 1:
            return h.aad_error(400, "invalid_scope", 700022, "The provided value for the input "
                               "parameter scope is not valid because it contains more than one "
                               "resource. Scope %s is not valid." % scope)
        if not res or any(s not in cloud_scopes(self.emu.cfg) for s in res):
            return h.aad_error(400, "invalid_scope", 70011, "The provided request must include "
                               "a 'scope' input parameter. The provided value for the input "
                               "parameter 'scope' is not valid. The scope %s is not valid."
                               % scope)
        return None

    def client_known(self, tenant, cid):
        return cid in PUBLIC_CLIENT_IDS or (tenant.client_id and cid == tenant.client_id)

    def devicecode(self, h, tenant, form):
        cid = (form.get("client_id") or "").lower()
        for p in ("client_id", "scope"):
            if not form.get(p):
                return h.aad_error(400, "invalid_request", 900144, "The request body must "
                                   "contain the following parameter: '%s'." % p)
        if not self.client_known(tenant, cid):
            return h.aad_error(400, "unauthorized_client", 700016, "Application with "
                               "identifier '%s' was not found in the directory '%s'."
                               % (form["client_id"], tenant.display_name))
        err = self.check_scope(h, form["scope"])
        if err:
            return err
        cfg = self.emu.cfg
        user_code = "".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789")
                            for _ in range(9))
        dc = secrets.token_urlsafe(96)
        now = self.emu.now()
        with self.emu.lock:
            self.codes[dc] = {"device_code": dc, "user_code": user_code,
                              "tenant_id": tenant.tenant_id,
                              "tenant_domain": tenant.initial_domain, "client_id": cid,
                              "scope": form["scope"], "created": now,
                              "expires": now + float(cfg["device_expires_s"]),
                              "interval": int(cfg["device_interval_s"]), "state": "pending",
                              "polls": 0, "last_poll": 0.0, "too_fast": 0, "slow_down": 0,
                              "user": None}
        return 200, {"device_code": dc, "user_code": user_code, "verification_uri": DEVICE_URI,
                     "expires_in": int(cfg["device_expires_s"]),
                     "interval": int(cfg["device_interval_s"]),
                     "message": "To sign in, use a web browser to open the page %s and enter "
                                "the code %s to authenticate." % (DEVICE_URI, user_code)}, {}

    def token(self, h, tenant, form, rec):
        rec["grant"] = form.get("grant_type")
        if not form.get("client_id"):
            return h.aad_error(400, "invalid_request", 900144, "The request body must contain "
                               "the following parameter: 'client_id'.")
        if form["grant_type"] == DEVICE_GRANT:
            return self.device_grant(h, tenant, form)
        return self.refresh_grant(h, tenant, form)

    def issue(self, tenant, cid, scope, user):
        emu = self.emu
        tok, life = emu.issue_token(tenant, delegated={"appid": cid, "scp": "Exchange.Manage",
                                                       "upn": user})
        out = {"token_type": "Bearer", "scope": scope, "expires_in": life,
               "ext_expires_in": life, "access_token": tok}
        if "offline_access" in scope.split():
            rt = "0.A" + secrets.token_urlsafe(120)
            with emu.lock:
                self.refresh[rt] = {"tenant_id": tenant.tenant_id, "client_id": cid,
                                    "user": user, "issued": emu.now(), "uses": 0,
                                    "revoked": False}
            out["refresh_token"] = rt
        return 200, out, {}

    def device_grant(self, h, tenant, form):
        emu = self.emu
        cid = form["client_id"].lower()
        now = emu.now()
        with emu.lock:
            c = self.codes.get(form.get("device_code") or "")
            if c is None or c["client_id"] != cid or c["tenant_id"] != tenant.tenant_id:
                c = None
            else:
                c["polls"] += 1
                early = now - c["last_poll"] < c["interval"] - 0.05
                c["last_poll"] = now
                if early:
                    c["too_fast"] += 1
        if c is None:
            return h.aad_error(400, "invalid_grant", 7000014, "The provided value for the "
                               "input parameter 'device_code' is not valid.")
        if cid == tenant.client_id and cid not in PUBLIC_CLIENT_IDS and not tenant.public_client:
            return h.aad_error(401, "invalid_client", 7000218, "The request body must contain "
                               "the following parameter: 'client_assertion' or "
                               "'client_secret'.")
        if now >= c["expires"]:
            return h.aad_error(400, "expired_token", 70020, "The provided authorization code "
                               "or refresh token has expired due to it being inactive. This "
                               "device code has expired.")
        if c["slow_down"] > 0 or early:
            with emu.lock:
                c["slow_down"] = max(0, c["slow_down"] - 1)
                c["interval"] += 5
            return h.aad_error(400, "slow_down", 70016, "OAuth 2.0 device flow error. Polling "
                               "too often: slow down.")
        if c["state"] == "pending":
            return h.aad_error(400, "authorization_pending", 70016, "OAuth 2.0 device flow "
                               "error. Authorization is pending. Continue polling.")
        if c["state"] == "declined":
            return h.aad_error(400, "authorization_declined", 70017, "The end user denied the "
                               "authorization request.")
        if c["state"] == "redeemed":
            return h.aad_error(400, "invalid_grant", 54005, "OAuth2 Authorization code was "
                               "already redeemed, please retry with a new valid code.")
        if not tenant.delegated_consent:
            return h.aad_error(400, "invalid_grant", 65001, "The user or administrator has not "
                               "consented to use the application with ID '%s' named '%s'. Send "
                               "an interactive authorization request for this user and "
                               "resource." % (cid, tenant.app_display_name))
        with emu.lock:
            c["state"] = "redeemed"
        return self.issue(tenant, cid, c["scope"], c["user"])

    def refresh_grant(self, h, tenant, form):
        emu = self.emu
        cid = form["client_id"].lower()
        with emu.lock:
            r = self.refresh.get(form.get("refresh_token") or "")
        if r is None or r["tenant_id"] != tenant.tenant_id or r["client_id"] != cid:
            return h.aad_error(400, "invalid_grant", 9002313, "Invalid request. Request is "
                               "malformed or invalid.")
        if r["revoked"]:
            return h.aad_error(400, "invalid_grant", 50173, "The provided grant has expired "
                               "due to it being revoked, a fresh auth token is needed. The user "
                               "might have changed or reset their password.")
        if emu.now() - r["issued"] > float(emu.cfg["refresh_lifetime_s"]):
            return h.aad_error(400, "invalid_grant", 700082, "The refresh token has expired "
                               "due to inactivity.")
        scope = form.get("scope") or "https://outlook.office365.com/.default offline_access"
        err = self.check_scope(h, scope)
        if err:
            return err
        with emu.lock:
            r["uses"] += 1
        return self.issue(tenant, cid, scope, r["user"])



class EmuServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

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

    def handle_error(self, request, client_address):
        if self.emu.verbose:
            super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency-ms", type=int, default=0)
    ap.add_argument("--page-size", type=int, default=2)
    ap.add_argument("--consistency-delay", type=float, default=0)
    ap.add_argument("--owner-pid", type=int, default=0)
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--smtp-port", type=int, default=0,
                    help="run the SMTP front door on this port (0: none)")
    ap.add_argument("--smtp-address", default="127.0.0.31")
    ap.add_argument("--smtp-hostname", default="emu-frontdoor.mail.protection.outlook.test")
    ap.add_argument("--dns", default="",
                    help="ADDR:PORT[,ADDR:PORT]: authoritative servers the front door "
                         "resolves smart hosts and MX with")
    args = ap.parse_args()

    d = os.path.abspath(args.dir)
    os.makedirs(d, exist_ok=True)
    ensure_certs(d)
    emu = Emu(args)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(os.path.join(d, "server.pem"), os.path.join(d, "server.key"))
    srv = EmuServer(("127.0.0.1", args.port), Handler)
    srv.ssl_ctx = ctx
    srv.emu = emu
    port = srv.server_address[1]
    th = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.25},
                          daemon=True)
    th.start()
    if args.smtp_port:
        try:
            emu.frontdoor = FrontDoor(emu, d, args.smtp_address, args.smtp_port, args.dns,
                                      args.smtp_hostname)
            emu.frontdoor.start()
        except (OSError, ImportError, ValueError) as e:
            sys.stderr.write("m365emu: cannot start the SMTP front door on %s:%d: %s\n"
                             % (args.smtp_address, args.smtp_port, e))
            srv.shutdown()
            srv.server_close()
            return 1

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())

    base = "https://127.0.0.1:%d" % port
    info = {"port": port, "pid": os.getpid(), "base_url": base, "login_url": base + "/login",
            "ca_file": os.path.join(d, "ca.pem"), "client_cert": os.path.join(d, "client.pem"),
            "client_key": os.path.join(d, "client.key"), "control_url": base + "/_emu",
            "dir": d}
    if emu.frontdoor:
        info.update({"smtp_address": args.smtp_address, "smtp_port": args.smtp_port,
                     "smtp_hostname": args.smtp_hostname})
    jpath = os.path.join(d, "emu.json")
    write_atomic(jpath, json.dumps(info, indent=1) + "\n")
    if args.verbose:
        sys.stderr.write("m365emu: listening on %s\n" % base)

    while not stop.wait(0.5):
        if args.owner_pid and not pid_alive(args.owner_pid):
            break
    if emu.frontdoor:
        emu.frontdoor.close()
    srv.shutdown()
    srv.server_close()
    try:
        with open(jpath) as f:
            if json.load(f).get("pid") == os.getpid():
                os.unlink(jpath)
    except (OSError, ValueError):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
