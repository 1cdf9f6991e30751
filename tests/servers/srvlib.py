"""Small helpers shared by the test servers and the sandbox driver
(m365emu.py, azureemu.py, mailsim.py, dns-harness, sandbox.py).  Standard
library only (the Entra ID checks import python3-cryptography when they
run)."""

import base64
import datetime
import hashlib
import json
import os
import re
import secrets
import time
import uuid


def pid_alive(pid):
    """True while PID runs; a zombie counts as gone (nobody may reap it).
    0 or less (an unknown pid) is never alive: os.kill would address a
    whole process group."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % pid) as f:
            if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                return False
    except (OSError, IndexError):
        pass
    return True


def write_atomic(path, data, mode=0o644):
    """Writes text or bytes so that a reader sees the old file or the new."""
    tmp = "%s.tmp.%d" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data if isinstance(data, bytes) else data.encode())
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_env(path):
    """The KEY=VALUE lines of a shell-sourceable file ({} when missing)."""
    values = {}
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if "=" in line and not line.startswith("#"):
                    key, value = line.split("=", 1)
                    values[key.replace("export ", "").strip()] = value.strip().strip("'\"")
    except OSError:
        pass
    return values


# ---------------------------------------------------------------------------
# The Entra ID (Microsoft identity platform) token endpoint's checks, shared
# by the emulators that sign apps in (m365emu.py for Exchange Online,
# azureemu.py for Azure Resource Manager): AADSTS error bodies, the client
# secret, and the certificate client assertion (RS256 or PS256, x5t or
# x5t#S256, aud, iss/sub, exp/nbf, jti), verified with python3-cryptography.

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")


def b64url_decode(s):
    if not isinstance(s, str) or not re.fullmatch(r"[A-Za-z0-9_-]*", s):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def load_certs(pem_text):
    """Registered app credentials: list of dicts with thumbprints and key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    out = []
    blocks = re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----",
                        pem_text, re.S)
    if not blocks:
        raise ValueError("no PEM certificate found")
    for blk in blocks:
        c = x509.load_pem_x509_certificate(blk.encode())
        der = c.public_bytes(serialization.Encoding.DER)
        out.append({"x5t": b64url(hashlib.sha1(der).digest()),
                    "x5t#S256": b64url(hashlib.sha256(der).digest()),
                    "sha1_hex": hashlib.sha1(der).hexdigest().upper(),
                    "key": c.public_key(), "pem": blk,
                    "not_before": c.not_valid_before.replace(tzinfo=datetime.timezone.utc),
                    "not_after": c.not_valid_after.replace(tzinfo=datetime.timezone.utc)})
    return out


def aad_error(correlation, status, error, code, text):
    """(status, body, extra) of an AADSTS refusal as Entra words it."""
    trace = str(uuid.uuid4())
    corr = correlation or str(uuid.uuid4())
    ts = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    desc = "AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s" % (
        code, text, trace, corr, ts)
    return status, {"error": error, "error_description": desc, "error_codes": [code],
                    "timestamp": ts, "trace_id": trace, "correlation_id": corr,
                    "error_uri": "https://login.microsoftonline.com/error?code=%d" % code
                    }, {"error_code": code}


def check_client(form, client_id, client_secret, certs, token_url, ic, rec, correlation=None):
    """The client authentication of a client credentials request (form):
    the secret, or an assertion signed by one of certs (load_certs) for
    token_url.  None when it holds, else aad_error's tuple.  ic: the status
    of invalid_client (401 as Entra answers; some clients see 400).  rec
    gets "grant" and the assertion's header and claims."""
    err = lambda *a: aad_error(correlation, *a)  # noqa: E731
    has_secret = "client_secret" in form
    has_assert = "client_assertion" in form or "client_assertion_type" in form
    if has_secret and has_assert:
        return err(400, "invalid_request", 9002313, "Invalid request. Request "
                   "is malformed or invalid. Only one client authentication "
                   "method (client_secret or client_assertion) may be used.")
    if has_secret:
        rec["grant"] = "client_secret"
        if not client_secret or not secrets.compare_digest(
                form["client_secret"].encode(), client_secret.encode()):
            return err(ic, "invalid_client", 7000215, "Invalid client secret "
                       "provided. Ensure the secret being sent in the request "
                       "is the client secret value, not the client secret ID, "
                       "for a secret added to app '%s'." % client_id)
        return None
    if has_assert:
        rec["grant"] = "client_assertion"
        return _check_assertion(form, client_id, certs, token_url, ic, rec, err)
    return err(ic, "invalid_client", 7000218, "The request body must "
               "contain the following parameter: 'client_assertion' or "
               "'client_secret'.")


def _check_assertion(form, client_id, certs, token_url, ic, rec, err):
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    doc = ("Review the documentation at https://docs.microsoft.com/en-us/azure/"
           "active-directory/develop/active-directory-certificate-credentials .")
    if form.get("client_assertion_type") != JWT_BEARER:
        return err(400, "invalid_request", 9002313, "Invalid request. Request is "
                   "malformed or invalid. client_assertion_type must be '%s'."
                   % JWT_BEARER)
    jwt = form.get("client_assertion") or ""
    parts = jwt.split(".")
    try:
        if len(parts) != 3:
            raise ValueError("expected 3 parts")
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
        sig = b64url_decode(parts[2])
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise ValueError("not a JSON object")
    except (ValueError, UnicodeDecodeError) as e:
        return err(400, "invalid_request", 50027, "JWT token is invalid or "
                   "malformed (%s)." % e)
    rec["assertion_header"] = header
    rec["assertion_claims"] = claims
    alg = header.get("alg")
    if alg not in ("RS256", "PS256"):
        return err(ic, "invalid_client", 5002738, "Invalid JWT token. '%s' is "
                   "not a supported signature algorithm. Supported signing "
                   "algorithms are: 'RS256, PS256'." % alg)
    cert, thumb = None, header.get("x5t#S256") or header.get("x5t")
    for c in certs:
        if (header.get("x5t") and header["x5t"] == c["x5t"]) or \
                (header.get("x5t#S256") and header["x5t#S256"] == c["x5t#S256"]):
            cert = c
            break
    if cert is None:
        return err(ic, "invalid_client", 700027, "Client assertion failed "
                   "signature validation. [Reason - The key was not found., "
                   "Thumbprint of key used by client: '%s', Please visit the "
                   "Azure Portal, Graph Explorer or directly use MS Graph to see "
                   "configured keys for app Id '%s'.]" % (thumb, client_id))
    signing_input = (parts[0] + "." + parts[1]).encode()
    try:
        if alg == "RS256":
            cert["key"].verify(sig, signing_input, padding.PKCS1v15(), hashes.SHA256())
        else:
            cert["key"].verify(sig, signing_input,
                               padding.PSS(mgf=padding.MGF1(hashes.SHA256()),
                                           salt_length=32), hashes.SHA256())
    except (InvalidSignature, ValueError, TypeError, AttributeError):
        return err(ic, "invalid_client", 700027, "Client assertion failed "
                   "signature validation. [Reason - The provided signature value "
                   "did not match the expected signature value., Thumbprint of "
                   "key used by client: '%s', Found key 'Start=%s, End=%s']"
                   % (cert["sha1_hex"], cert["not_before"].strftime("%m/%d/%Y %H:%M:%S"),
                      cert["not_after"].strftime("%m/%d/%Y %H:%M:%S")))
    if claims.get("aud") != token_url:
        return err(ic, "invalid_client", 50012, "Client assertion audience claim "
                   "does not match Realm issuer. Expected '%s', got '%s'. %s"
                   % (token_url, claims.get("aud"), doc))
    cid = form["client_id"]
    if str(claims.get("iss", "")).lower() != cid.lower() or \
            str(claims.get("sub", "")).lower() != cid.lower():
        return err(ic, "invalid_client", 700021, "Client assertion application "
                   "identifier doesn't match 'client_id' parameter. %s" % doc)
    for c in ("exp", "nbf"):
        if not isinstance(claims.get(c), (int, float)) or isinstance(claims.get(c), bool):
            return err(400, "invalid_request", 50027, "JWT token is invalid or "
                       "malformed: the '%s' claim is missing or not a number."
                       % c)
    if not claims.get("jti"):
        return err(400, "invalid_request", 50027, "JWT token is invalid or "
                   "malformed: the 'jti' claim is missing.")
    now = time.time()
    exp, nbf = claims["exp"], claims["nbf"]
    if exp <= now or nbf > now + 300 or exp > now + 3600 + 300:
        return err(ic, "invalid_client", 700024, "Client assertion is not within "
                   "its valid time range. Current time: %s, assertion valid from "
                   "%s, expiry time of assertion %s. %s"
                   % (iso(now), iso(nbf), iso(exp), doc))
    return None
