/*
 * Gateway mode configuration.
 *
 * The core passes the profile's INI section in req->section ("profile
 * NAME"); it points to a DNS profile and a service profile:
 *
 *   [profile NAME]
 *   dns = LAB                  ; required: the [dns LAB] section
 *   service = GW               ; required: the [service GW] section
 *   zone = example.test        ; optional: the zone holding the domain's MX;
 *                              ;   default: found with an SOA walk (a mail
 *                              ;   domain may sit below its zone apex)
 *   fallback_mx = 0 {domain_dashes}.mail.protection.outlook.com
 *                              ; optional: the MX set teardown restores for
 *                              ;   a domain adopted in gateway mode (there
 *                              ;   is no receipt with the original set);
 *                              ;   {domain} and {domain_dashes} (dots made
 *                              ;   dashes) stand for the domain
 *   fallback_ttl = 3600        ; optional: TTL of fallback_mx (default 3600)
 *
 *   [dns LAB]
 *   provider = rfc2136         ; optional: rfc2136 (default), cloudflare,
 *                              ;   gcloud, route53 or azure.  The API
 *                              ;   providers read api_url, ca_file and
 *                              ;   their credential file (cloudflare:
 *                              ;   api_token_file; gcloud:
 *                              ;   service_account_file, project,
 *                              ;   managed_zone; route53: access_key_id
 *                              ;   and secret_access_key_file, or
 *                              ;   aws_credentials_file and aws_profile,
 *                              ;   session_token_file, region; azure:
 *                              ;   subscription, resource_group, tenant,
 *                              ;   client_id, client_secret_file or
 *                              ;   private_key_file + certificate_file,
 *                              ;   login_url, assertion_alg) instead of
 *                              ;   the primary
 *                              ;   and TSIG keys (mailmode.conf(5))
 *   primary = 192.0.2.53       ; optional: where UPDATEs and the reads
 *                              ;   before them go (address or host name);
 *                              ;   default: the zone's SOA MNAME.  Set it
 *                              ;   for hidden primaries.
 *   port = 53                  ; optional: port of the primary and of every
 *                              ;   authoritative server (default 53)
 *   resolver = 127.0.0.53      ; optional: address where the SOA walk and the
 *                              ;   NS/address lookups are asked (recursion
 *                              ;   desired); default: /etc/resolv.conf
 *   resolver_port = 53         ; optional: port of `resolver` (default 53)
 *   tsig_key = gw-key          ; required: TSIG key name
 *   tsig_algorithm = hmac-sha256 ; optional: hmac-sha256 (default) or
 *                              ;   hmac-sha512
 *   tsig_secret_file = gw-key.secret
 *                              ; required: file holding the base64 secret;
 *                              ;   refused when group/world-readable;
 *                              ;   relative to the config file's directory
 *   timeout = 5                ; optional: seconds to wait for each answer
 *                              ;   (1-300); UDP queries are tried twice,
 *                              ;   TCP reads and UPDATEs once.  After an
 *                              ;   UPDATE without an answer the primary is
 *                              ;   re-read for up to 3 timeouts
 *   debug_pause_before_update_ms = 0
 *                              ; TESTING AID, leave unset in production:
 *                              ;   setup and teardown wait this long (via
 *                              ;   the host's sleep) between reading the MX
 *                              ;   set and sending the UPDATE, so a test can
 *                              ;   change the MX in between and check that
 *                              ;   the compare-and-swap refuses (NXRRSET),
 *                              ;   or stop the primary with the UPDATE in
 *                              ;   flight (an unknown outcome).
 *                              ;   A warning is logged whenever it is set.
 *
 *   [service GW]
 *   gateway_mx = 10 mx-01.gw.test, 20 mx-02.gw.test
 *                              ; required: the gateway MX set
 *                              ;   ("PREF HOST" items, comma-separated)
 *   gateway_ttl = 300          ; optional: their TTL (default 300)
 *
 * UPDATEs always go over TCP: a UDP resend of an UPDATE that was already
 * applied would come back NXRRSET and make the outcome ambiguous.
 */
#include "gateway.h"

#include "ms/ms.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ldns/ldns.h>

#define DEFAULT_PORT 53
#define DEFAULT_TIMEOUT_S 5
#define DEFAULT_GATEWAY_TTL 300
#define DEFAULT_FALLBACK_TTL 3600
#define MAX_TTL 2147483647L      /* RFC 2181: TTLs are 31-bit */
#define MAX_DEBUG_PAUSE_MS 600000

struct key_reader {
	const struct gw_ctx *ctx;
	struct mailmode_diag *diag;
};

static const char *get(const struct key_reader *kr, const char *section,
                       const char *key)
{
	const struct mailmode_host *host = kr->ctx->host;
	const char *value = host->config_get(host->handle, section, key);

	/* An empty value is as good as none: every key here needs content. */
	if (value && value[0] == '\0')
		return NULL;
	return value;
}

static int missing(const struct key_reader *kr, const char *section,
                   const char *key, const char *what)
{
	kr->ctx->host->diag_set(kr->diag, MAILMODE_SEV_ERROR, 0,
	                        "[%s] %s: missing (%s)", section, key, what);
	return MAILMODE_ERR_CONFIG;
}

static int bad_value(const struct key_reader *kr, const char *section,
                     const char *key, const char *value, const char *why)
{
	kr->ctx->host->diag_set(kr->diag, MAILMODE_SEV_ERROR, 0,
	                        "[%s] %s: '%s' %s", section, key, value, why);
	return MAILMODE_ERR_CONFIG;
}

/* An optional integer key within [min, max]; *out keeps its default when
 * the key is absent. */
static int read_long(const struct key_reader *kr, const char *section,
                     const char *key, long min, long max, long *out)
{
	const char *value = get(kr, section, key);
	char *end = NULL;
	long parsed;
	char why[96];

	if (!value)
		return MAILMODE_OK;
	errno = 0;
	parsed = strtol(value, &end, 10);
	if (errno != 0 || end == value || *end != '\0' || parsed < min ||
	    parsed > max) {
		snprintf(why, sizeof(why), "is not a whole number from %ld to %ld",
		         min, max);
		return bad_value(kr, section, key, value, why);
	}
	*out = parsed;
	return MAILMODE_OK;
}

/* A section reference ("dns = lab" -> "dns lab"). */
static int read_section_ref(const struct key_reader *kr, const char *section,
                            const char *key, char *out, size_t out_len)
{
	const char *value = get(kr, section, key);
	const char *p;

	if (!value) {
		return missing(kr, section, key,
		               strcmp(key, "dns") == 0
		                       ? "the gateway mode needs dns = NAME, "
		                         "naming a [dns NAME] section"
		                       : "the gateway mode needs service = NAME, "
		                         "naming a [service NAME] section");
	}
	for (p = value; *p; p++) {
		if (*p == ']' || *p == '[' || *p == '\n')
			return bad_value(kr, section, key, value,
			                 "is not a section name");
	}
	if ((size_t)snprintf(out, out_len, "%s %s", key, value) >= out_len)
		return bad_value(kr, section, key, value, "is too long");
	return MAILMODE_OK;
}

static bool is_ip_address(const char *text)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, text, buf) == 1 ||
	       inet_pton(AF_INET6, text, buf) == 1;
}

/* fallback_mx may name the domain, so that one profile serves all of a
 * tenant's domains: {domain} is the domain, {domain_dashes} the same with
 * dashes for dots (the label Microsoft 365 front doors use). */
static int expand_domain(const char *value, const char *domain, char *out, size_t len)
{
	size_t used = 0;

	while (*value) {
		const char *insert = NULL;
		size_t skip = 1, n;

		if (strncmp(value, "{domain_dashes}", 15) == 0)
			insert = domain, skip = 15;
		else if (strncmp(value, "{domain}", 8) == 0)
			insert = domain, skip = 8;
		n = insert ? strlen(insert) : 1;
		if (used + n + 1 > len)
			return -1;
		memcpy(out + used, insert ? insert : value, n);
		if (skip == 15) {
			size_t i;

			for (i = used; i < used + n; i++)
				if (out[i] == '.')
					out[i] = '-';
		}
		used += n;
		value += skip;
	}
	out[used] = '\0';
	return 0;
}

static int read_profile(const struct key_reader *kr, const char *section, const char *domain,
                        struct gw_config *cfg)
{
	const char *value;
	long fallback_ttl = DEFAULT_FALLBACK_TTL;
	char err[256], expanded[1024];
	int rc;

	rc = read_section_ref(kr, section, "dns", cfg->dns_section,
	                      sizeof(cfg->dns_section));
	if (rc != MAILMODE_OK)
		goto out;
	rc = read_section_ref(kr, section, "service", cfg->service_section,
	                      sizeof(cfg->service_section));
	if (rc != MAILMODE_OK)
		goto out;

	value = get(kr, section, "zone");
	if (value) {
		rc = gw_name_normalise(value, cfg->zone, sizeof(cfg->zone));
		if (rc != MAILMODE_OK) {
			rc = bad_value(kr, section, "zone", value,
			               "is not a domain name");
			goto out;
		}
		/* Kept without the final dot, like the domains the core passes. */
		cfg->zone[strlen(cfg->zone) - 1] = '\0';
	}

	rc = read_long(kr, section, "fallback_ttl", 0, MAX_TTL, &fallback_ttl);
	if (rc != MAILMODE_OK)
		goto out;
	value = get(kr, section, "fallback_mx");
	if (value && expand_domain(value, domain, expanded, sizeof(expanded)) != 0) {
		rc = bad_value(kr, section, "fallback_mx", value, "is too long");
		goto out;
	}
	if (value) {
		rc = gw_mx_set_parse(expanded, (uint32_t)fallback_ttl,
		                     &cfg->fallback, err, sizeof(err));
		if (rc != MAILMODE_OK) {
			rc = bad_value(kr, section, "fallback_mx", value, err);
			goto out;
		}
		cfg->has_fallback = true;
	}
	rc = MAILMODE_OK;
out:
	return rc;
}

/* A path key copied as given (the host resolves it when it is used). */
static int read_path(const struct key_reader *kr, const char *section,
                     const char *key, char *out, size_t out_len)
{
	const char *value = get(kr, section, key);

	if (!value)
		return MAILMODE_OK;
	if ((size_t)snprintf(out, out_len, "%s", value) >= out_len)
		return bad_value(kr, section, key, value, "is too long");
	return MAILMODE_OK;
}

static const char *const provider_names[] = {
	[GW_PROVIDER_RFC2136] = "rfc2136",
	[GW_PROVIDER_CLOUDFLARE] = "cloudflare",
	[GW_PROVIDER_GCLOUD] = "gcloud",
	[GW_PROVIDER_ROUTE53] = "route53",
	[GW_PROVIDER_AZURE] = "azure",
};

const char *gw_config_provider_name(enum gw_provider_kind kind)
{
	return provider_names[kind];
}

static int read_provider(const struct key_reader *kr, struct gw_config *cfg)
{
	const char *section = cfg->dns_section;
	const char *value = get(kr, section, "provider");
	size_t i;

	cfg->provider = GW_PROVIDER_RFC2136;
	if (!value)
		return MAILMODE_OK;
	for (i = 0; i < sizeof(provider_names) / sizeof(provider_names[0]); i++) {
		if (strcmp(value, provider_names[i]) == 0) {
			cfg->provider = (enum gw_provider_kind)i;
			return MAILMODE_OK;
		}
	}
	return bad_value(kr, section, "provider", value,
	                 "is not a DNS provider (use rfc2136, cloudflare, "
	                 "gcloud, route53 or azure)");
}

static int read_tsig(const struct key_reader *kr, struct gw_config *cfg)
{
	const char *section = cfg->dns_section;
	const char *value;

	value = get(kr, section, "tsig_key");
	if (!value)
		return missing(kr, section, "tsig_key",
		               "the TSIG key name the primary knows; is there a "
		               "[dns ...] section of that name?");
	if (gw_name_normalise(value, cfg->tsig_key, sizeof(cfg->tsig_key)) !=
	    MAILMODE_OK)
		return bad_value(kr, section, "tsig_key", value,
		                 "is not a valid key name");
	/* Key names are compared as domain names; ldns wants no final dot. */
	cfg->tsig_key[strlen(cfg->tsig_key) - 1] = '\0';

	value = get(kr, section, "tsig_algorithm");
	if (!value)
		value = "hmac-sha256";
	if (strcmp(value, "hmac-sha256") != 0 && strcmp(value, "hmac-sha512") != 0) {
		/* hmac-sha384 is misspelt inside ldns 1.8 and cannot work. */
		return bad_value(kr, section, "tsig_algorithm", value,
		                 "is not supported (use hmac-sha256 or hmac-sha512)");
	}
	snprintf(cfg->tsig_algorithm, sizeof(cfg->tsig_algorithm), "%s", value);

	if (!get(kr, section, "tsig_secret_file"))
		return missing(kr, section, "tsig_secret_file",
		               "a file holding the key's base64 secret, mode 0600");
	return read_path(kr, section, "tsig_secret_file", cfg->tsig_secret_file,
	                 sizeof(cfg->tsig_secret_file));
}

/* A string key copied into out; "" when absent.  required: its absence
 * is an error that says what to put there. */
static int read_string(const struct key_reader *kr, const char *section,
                       const char *key, const char *required, char *out,
                       size_t out_len)
{
	const char *value = get(kr, section, key);

	if (!value && required)
		return missing(kr, section, key, required);
	if (value && (size_t)snprintf(out, out_len, "%s", value) >= out_len)
		return bad_value(kr, section, key, value, "is too long");
	return MAILMODE_OK;
}

/* An https:// URL key, without a final slash; dflt when absent. */
static int read_url(const struct key_reader *kr, const char *section, const char *key,
                    const char *dflt, char *out, size_t out_len)
{
	const char *value = get(kr, section, key);
	size_t len;

	if (!value)
		value = dflt;
	if (strncmp(value, "https://", 8) != 0)
		return bad_value(kr, section, key, value, "is not an https:// URL");
	if ((size_t)snprintf(out, out_len, "%s", value) >= out_len)
		return bad_value(kr, section, key, value, "is too long");
	len = strlen(out);
	if (out[len - 1] == '/')
		out[len - 1] = '\0';
	return MAILMODE_OK;
}

/* The app's own credentials (auth = app): a secret, or a certificate's
 * key (and the certificate), and the assertion's algorithm. */
static int read_app_credentials(const struct key_reader *kr, const char *section,
                                const char *secret, const char *key, struct gw_entra *e)
{
	const char *value;
	int rc;

	if (secret && key)
		return bad_value(kr, section, "private_key_file", key,
		                 "and client_secret_file are both set: give one");
	if (!secret && !key)
		return missing(kr, section, "client_secret_file",
		               "a file holding the app's client secret, mode 0600, "
		               "or private_key_file for certificate credentials");
	e->certificate = key != NULL;
	rc = read_path(kr, section, key ? "private_key_file" : "client_secret_file",
	               e->credentials_file, sizeof(e->credentials_file));
	if (rc == MAILMODE_OK)
		rc = read_path(kr, section, "certificate_file", e->certificate_file,
		               sizeof(e->certificate_file));
	if (rc != MAILMODE_OK)
		return rc;
	if (e->certificate_file[0] && !key)
		return missing(kr, section, "private_key_file",
		               "certificate_file needs the certificate's private key");
	value = get(kr, section, "assertion_alg");
	if (value && strcasecmp(value, "RS256") != 0 && strcasecmp(value, "PS256") != 0)
		return bad_value(kr, section, "assertion_alg", value,
		                 "is not PS256 or RS256");
	e->rs256 = value && strcasecmp(value, "RS256") == 0;
	return MAILMODE_OK;
}

/* An Entra ID app's sign-in from section; the tenant is dflt_tenant when
 * the section does not name one (NULL: required).  e->device (auth =
 * device: a person's refresh token from `mailmode tenant login`) needs no
 * credentials and defaults client_id to Microsoft's public client; login
 * defaults login_url (the cloud's). */
static int read_entra(const struct key_reader *kr, const char *section,
                      const char *dflt_tenant, const char *login, struct gw_entra *e)
{
	const char *secret = get(kr, section, "client_secret_file");
	const char *key = get(kr, section, "private_key_file");
	int rc;

	if (dflt_tenant)
		snprintf(e->tenant, sizeof(e->tenant), "%s", dflt_tenant);
	if (e->device)
		snprintf(e->client_id, sizeof(e->client_id), "%s", MS_DEVICE_CLIENT_ID);
	rc = read_string(kr, section, "tenant", dflt_tenant ? NULL : "the Entra ID tenant (GUID "
	                 "or x.onmicrosoft.com) of the app", e->tenant, sizeof(e->tenant));
	if (rc == MAILMODE_OK)
		rc = read_string(kr, section, "client_id", e->device ? NULL : "the app registration's "
		                 "application (client) id", e->client_id,
		                 sizeof(e->client_id));
	if (rc == MAILMODE_OK)
		rc = read_url(kr, section, "login_url", login, e->login_url, sizeof(e->login_url));
	if (rc != MAILMODE_OK || !e->device)
		return rc == MAILMODE_OK ? read_app_credentials(kr, section, secret, key, e) : rc;
	if (secret || key)
		return bad_value(kr, section, secret ? "client_secret_file" : "private_key_file",
		                 secret ? secret : key,
		                 "is set, but auth = device signs in as a person: drop it (or set auth = app)");
	return MAILMODE_OK;
}

/* A word of the characters in `allowed` (plus letters and digits), copied
 * into out; "" when the key is absent. */
static int read_word(const struct key_reader *kr, const char *section,
                     const char *key, const char *allowed, char *out,
                     size_t out_len, const char *why)
{
	const char *value = get(kr, section, key);
	const char *p;

	out[0] = '\0';
	if (!value)
		return MAILMODE_OK;
	for (p = value; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || strchr(allowed, *p)))
			return bad_value(kr, section, key, value, why);
	if ((size_t)snprintf(out, out_len, "%s", value) >= out_len)
		return bad_value(kr, section, key, value, "is too long");
	return MAILMODE_OK;
}

/* Route 53: an access key id with secret_access_key_file, or the AWS shared
 * credentials file; the signing region. */
static int read_route53(const struct key_reader *kr, struct gw_config *cfg)
{
	const char *section = cfg->dns_section;
	bool shared = get(kr, section, "aws_credentials_file") != NULL;
	int rc;

	rc = read_word(kr, section, "region", "-", cfg->region,
	               sizeof(cfg->region), "is not an AWS region (us-east-1)");
	if (rc == MAILMODE_OK && !cfg->region[0])
		snprintf(cfg->region, sizeof(cfg->region), "us-east-1");
	if (rc == MAILMODE_OK)
		rc = read_word(kr, section, "access_key_id", "", cfg->access_key_id,
		               sizeof(cfg->access_key_id),
		               "is not an AWS access key id (AKIA...)");
	if (rc == MAILMODE_OK)
		rc = read_word(kr, section, "aws_profile", "-_.", cfg->aws_profile,
		               sizeof(cfg->aws_profile), "is not a profile name");
	if (rc != MAILMODE_OK)
		return rc;
	if (shared && (cfg->access_key_id[0] ||
	               get(kr, section, "secret_access_key_file")))
		return bad_value(kr, section, "aws_credentials_file",
		                 get(kr, section, "aws_credentials_file"),
		                 "and access_key_id/secret_access_key_file exclude "
		                 "each other: set one of them");
	if (!shared && cfg->aws_profile[0])
		return bad_value(kr, section, "aws_profile", cfg->aws_profile,
		                 "names a section of aws_credentials_file, which "
		                 "is not set");
	if (!shared && !cfg->access_key_id[0])
		return missing(kr, section, "access_key_id",
		               "the IAM access key id, with secret_access_key_file; "
		               "or set aws_credentials_file");
	if (!shared && !get(kr, section, "secret_access_key_file"))
		return missing(kr, section, "secret_access_key_file",
		               "a file holding the IAM secret access key, mode 0600");
	if (!cfg->aws_profile[0])
		snprintf(cfg->aws_profile, sizeof(cfg->aws_profile), "default");
	cfg->aws_credentials_file = shared;
	rc = read_path(kr, section, shared ? "aws_credentials_file"
	                                   : "secret_access_key_file",
	               cfg->credentials_file, sizeof(cfg->credentials_file));
	if (rc != MAILMODE_OK)
		return rc;
	return read_path(kr, section, "session_token_file", cfg->session_token_file,
	                 sizeof(cfg->session_token_file));
}

/* Azure DNS: the subscription (and resource group) holding the zone and
 * the Entra ID app (client credentials) that may change it. */
static int read_azure(const struct key_reader *kr, struct gw_config *cfg)
{
	const char *section = cfg->dns_section;
	struct gw_azure_config *az = &cfg->azure;
	int rc;

	rc = read_string(kr, section, "subscription", "the Azure subscription id "
	                 "holding the DNS zone", az->subscription,
	                 sizeof(az->subscription));
	if (rc == MAILMODE_OK)
		rc = read_string(kr, section, "resource_group", NULL,
		                 az->resource_group, sizeof(az->resource_group));
	if (rc != MAILMODE_OK)
		return rc;
	return read_entra(kr, section, NULL, MS_LOGIN_URL, &az->app);
}

/* The keys of the HTTPS providers: where the API is, whom to trust, and
 * the file holding the credential. */
static int read_https(const struct key_reader *kr, struct gw_config *cfg)
{
	const char *section = cfg->dns_section;
	bool cf = cfg->provider == GW_PROVIDER_CLOUDFLARE;
	bool r53 = cfg->provider == GW_PROVIDER_ROUTE53;
	bool az = cfg->provider == GW_PROVIDER_AZURE;
	const char *cred_key = cf ? "api_token_file" : "service_account_file";
	int rc;

	rc = read_url(kr, section, "api_url",
	              cf ? "https://api.cloudflare.com/client/v4"
	              : r53 ? "https://route53.amazonaws.com"
	              : az ? "https://management.azure.com"
	                   : "https://dns.googleapis.com/dns/v1",
	              cfg->api_url, sizeof(cfg->api_url));
	if (rc != MAILMODE_OK)
		return rc;
	rc = read_path(kr, section, "ca_file", cfg->ca_file, sizeof(cfg->ca_file));
	if (rc != MAILMODE_OK)
		return rc;
	if (r53)
		return read_route53(kr, cfg);
	if (az)
		return read_azure(kr, cfg);
	if (!get(kr, section, cred_key))
		return missing(kr, section, cred_key,
		               cf ? "a file holding the Cloudflare API token, mode 0600"
		                  : "the service account's JSON key file, mode 0600");
	rc = read_path(kr, section, cred_key, cfg->credentials_file,
	               sizeof(cfg->credentials_file));
	if (rc != MAILMODE_OK || cf)
		return rc;
	rc = read_string(kr, section, "project", NULL, cfg->project,
	                 sizeof(cfg->project));
	if (rc != MAILMODE_OK)
		return rc;
	return read_string(kr, section, "managed_zone", NULL, cfg->managed_zone,
	                   sizeof(cfg->managed_zone));
}

/* primary, port, resolver, resolver_port. */
static int read_servers(const struct key_reader *kr, struct gw_config *cfg)
{
	const char *section = cfg->dns_section;
	const char *value;
	long number;
	int rc;

	value = get(kr, section, "primary");
	if (value) {
		if (is_ip_address(value)) {
			snprintf(cfg->primary, sizeof(cfg->primary), "%s", value);
		} else if (gw_name_normalise(value, cfg->primary,
		                             sizeof(cfg->primary)) != MAILMODE_OK) {
			return bad_value(kr, section, "primary", value,
			                 "is neither an IP address nor a host name");
		}
	}

	number = DEFAULT_PORT;
	rc = read_long(kr, section, "port", 1, 65535, &number);
	if (rc != MAILMODE_OK)
		return rc;
	cfg->port = (uint16_t)number;

	value = get(kr, section, "resolver");
	if (value) {
		if (!is_ip_address(value))
			return bad_value(kr, section, "resolver", value,
			                 "is not an IP address");
		snprintf(cfg->resolver, sizeof(cfg->resolver), "%s", value);
	}
	number = DEFAULT_PORT;
	rc = read_long(kr, section, "resolver_port", 1, 65535, &number);
	if (rc != MAILMODE_OK)
		return rc;
	cfg->resolver_port = (uint16_t)number;
	return MAILMODE_OK;
}

static int read_dns(const struct key_reader *kr, struct gw_config *cfg)
{
	const char *section = cfg->dns_section;
	long number;
	int rc;

	rc = read_provider(kr, cfg);
	if (rc != MAILMODE_OK)
		return rc;
	rc = read_servers(kr, cfg);
	if (rc != MAILMODE_OK)
		return rc;
	rc = cfg->provider == GW_PROVIDER_RFC2136 ? read_tsig(kr, cfg)
	                                          : read_https(kr, cfg);
	if (rc != MAILMODE_OK)
		return rc;

	number = DEFAULT_TIMEOUT_S;
	rc = read_long(kr, section, "timeout", 1, 300, &number);
	if (rc != MAILMODE_OK)
		return rc;
	cfg->timeout_s = (int)number;

	number = 0;
	rc = read_long(kr, section, "debug_pause_before_update_ms", 0,
	               MAX_DEBUG_PAUSE_MS, &number);
	if (rc != MAILMODE_OK)
		return rc;
	cfg->debug_pause_before_update_ms = number;
	return MAILMODE_OK;
}

static int read_service(const struct key_reader *kr, struct gw_config *cfg)
{
	const char *section = cfg->service_section;
	const char *value;
	long ttl = DEFAULT_GATEWAY_TTL;
	char err[256];
	int rc;

	rc = read_long(kr, section, "gateway_ttl", 0, MAX_TTL, &ttl);
	if (rc != MAILMODE_OK)
		goto out;
	value = get(kr, section, "gateway_mx");
	if (!value) {
		rc = missing(kr, section, "gateway_mx",
		             "the gateway MX set, e.g. '10 mx-01.gw.example, "
		             "20 mx-02.gw.example'; is there a [service ...] "
		             "section of that name?");
		goto out;
	}
	rc = gw_mx_set_parse(value, (uint32_t)ttl, &cfg->gateway, err,
	                     sizeof(err));
	if (rc == MAILMODE_OK && cfg->gateway.count == 0)
		snprintf(err, sizeof(err), "holds no MX record");
	if (rc != MAILMODE_OK || cfg->gateway.count == 0) {
		rc = bad_value(kr, section, "gateway_mx", value, err);
		goto out;
	}
	rc = MAILMODE_OK;
out:
	return rc;
}

/* A yes/no key; *out keeps its default when the key is absent. */
static int read_bool(const struct key_reader *kr, const char *section,
                     const char *key, bool *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	const char *value = get(kr, section, key);
	size_t i;

	if (!value)
		return MAILMODE_OK;
	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(value, yes[i]) == 0 || strcasecmp(value, no[i]) == 0) {
			*out = strcasecmp(value, yes[i]) == 0;
			return MAILMODE_OK;
		}
	}
	return bad_value(kr, section, key, value, "is not yes or no");
}

/* The next item of a white space or comma separated list: its length (0:
 * none left) and *item where it starts; *p moves past it. */
static size_t next_item(const char **p, const char **item)
{
	size_t n;

	*p += strspn(*p, " \t,");
	*item = *p;
	n = strcspn(*p, " \t,");
	*p += n;
	return n;
}

/* service_ips, white-space separated, for EFSkipIPs. */
static int read_service_ips(const struct key_reader *kr, struct gw_config *cfg)
{
	const char *section = cfg->service_section;
	const char *value = get(kr, section, "service_ips"), *p = value, *item;
	struct gw_tenant_config *t = &cfg->tenant;
	size_t n;

	if (!value)
		return missing(kr, section, "service_ips",
		               "enhanced_filtering = yes skip-lists the addresses the "
		               "service delivers to Microsoft 365 from");
	while ((n = next_item(&p, &item)) > 0) {
		if (t->ip_count == GW_SERVICE_IPS_MAX || n >= sizeof(t->ips[0]))
			return bad_value(kr, section, "service_ips", value,
			                 "has too many or too long entries");
		memcpy(t->ips[t->ip_count], item, n);
		t->ips[t->ip_count++][n] = '\0';
	}
	return MAILMODE_OK;
}

/* outbound = yes: [service] outbound_smart_hosts (host names, white space
 * or comma separated) and outbound_tls_domain (default: the first). */
static int read_outbound_hosts(const struct key_reader *kr, struct gw_config *cfg)
{
	const char *section = cfg->service_section;
	const char *value = get(kr, section, "outbound_smart_hosts"), *p = value, *item;
	struct gw_tenant_config *t = &cfg->tenant;
	char name[GW_NAME_MAX], *host;
	size_t n;

	if (!value)
		return missing(kr, section, "outbound_smart_hosts",
		               "outbound = yes sends the domain's outgoing mail to these hosts "
		               "of the service");
	while ((n = next_item(&p, &item)) > 0) {
		if (t->out_host_count == GW_OUT_HOSTS_MAX || n >= sizeof(name))
			return bad_value(kr, section, "outbound_smart_hosts", value,
			                 "has too many or too long entries");
		memcpy(name, item, n);
		name[n] = '\0';
		host = t->out_hosts[t->out_host_count];
		if (gw_name_normalise(name, host, sizeof(t->out_hosts[0])) != MAILMODE_OK)
			return bad_value(kr, section, "outbound_smart_hosts", value,
			                 "is not a list of host names");
		/* Exchange takes them without the final dot. */
		host[strlen(host) - 1] = '\0';
		t->out_host_count++;
	}
	if (t->out_host_count == 0)
		return missing(kr, section, "outbound_smart_hosts", "no host given");
	snprintf(t->out_tls_domain, sizeof(t->out_tls_domain), "%s", t->out_hosts[0]);
	return read_string(kr, section, "outbound_tls_domain", NULL, t->out_tls_domain,
	                   sizeof(t->out_tls_domain));
}

/* gateway_tenant and what the tenant side reads from the profile and the
 * service (doc/gateway-tenant.md). */
static int read_tenant(const struct key_reader *kr, const char *section, const char *domain,
                       struct gw_config *cfg)
{
	struct gw_tenant_config *t = &cfg->tenant;
	const char *value = get(kr, section, "gateway_tenant");
	const char *prefix, *service = cfg->service_section + strlen("service ");
	const struct ms_cloud *cloud;
	enum ms_auth auth;
	int rc;

	if (!value) {
		if (get(kr, section, "enhanced_filtering") || get(kr, section, "lockdown") ||
		    get(kr, section, "outbound"))
			return missing(kr, section, "gateway_tenant",
			               "enhanced_filtering, lockdown and outbound are set in the "
			               "tenant named by gateway_tenant = NAME");
		return MAILMODE_OK;
	}
	if (strpbrk(value, "[]\n") ||
	    (size_t)snprintf(t->section, sizeof(t->section), "tenant %s", value) >=
	            sizeof(t->section))
		return bad_value(kr, section, "gateway_tenant", value, "is not a section name");
	t->enabled = true;
	t->enhanced_filtering = true;
	/* auth and cloud as mailflow mode reads them (lib/ms). */
	rc = ms_signin_keys(kr->ctx->host, t->section, &auth, &cloud, kr->diag);
	if (rc != MAILMODE_OK)
		return rc;
	t->app.device = auth == MS_AUTH_DEVICE;
	snprintf(t->scope, sizeof(t->scope), "%s", cloud->exo_scope);
	rc = read_entra(kr, t->section, value, cloud->login_url, &t->app);
	if (rc == MAILMODE_OK)
		rc = read_url(kr, t->section, "api_url", cloud->exo_url, t->api_url,
		              sizeof(t->api_url));
	if (rc == MAILMODE_OK)
		rc = read_path(kr, t->section, "ca_file", t->ca_file, sizeof(t->ca_file));
	if (rc != MAILMODE_OK)
		return rc;
	rc = read_bool(kr, section, "enhanced_filtering", &t->enhanced_filtering);
	if (rc == MAILMODE_OK)
		rc = read_bool(kr, section, "lockdown", &t->lockdown);
	if (rc == MAILMODE_OK)
		rc = read_bool(kr, section, "outbound", &t->outbound);
	if (rc != MAILMODE_OK)
		return rc;
	value = get(kr, cfg->service_section, "tls_cert_name");
	if (!value)
		return missing(kr, cfg->service_section, "tls_cert_name",
		               "the gateway connector knows the service's mail by the "
		               "name on its certificate");
	snprintf(t->tls_cert_name, sizeof(t->tls_cert_name), "%s", value);
	prefix = get(kr, cfg->service_section, "name_prefix");
	if ((size_t)snprintf(t->connector, sizeof(t->connector), "%s gateway for %s from %s",
	                     prefix ? prefix : "mailmode", domain, service) >= 64)
		return bad_value(kr, cfg->service_section, "name_prefix", prefix ? prefix : "mailmode",
		                 "makes the connector's name longer than 64 characters");
	/* The outbound connector and its rule share one name (their kinds
	 * are apart in Exchange). */
	if ((size_t)snprintf(t->out_name, sizeof(t->out_name), "%s outbound of %s via %s",
	                     prefix ? prefix : "mailmode", domain, service) >= 64)
		return bad_value(kr, cfg->service_section, "name_prefix", prefix ? prefix : "mailmode",
		                 "makes the outbound connector's name longer than 64 characters");
	rc = t->outbound ? read_outbound_hosts(kr, cfg) : MAILMODE_OK;
	if (rc != MAILMODE_OK)
		return rc;
	return t->enhanced_filtering ? read_service_ips(kr, cfg) : MAILMODE_OK;
}

int gw_config_load(const struct gw_ctx *ctx, const struct mailmode_request *req,
                   struct gw_config *cfg, struct mailmode_diag *diag)
{
	struct key_reader kr = { .ctx = ctx, .diag = diag };
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	if (!req->section) {
		ctx->host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		                    "no profile given for %s: the gateway mode "
		                    "needs one (--profile)", req->domain);
		rc = MAILMODE_ERR_CONFIG;
		goto out;
	}
	rc = read_profile(&kr, req->section, req->domain, cfg);
	if (rc != MAILMODE_OK)
		goto out;
	rc = read_dns(&kr, cfg);
	if (rc != MAILMODE_OK)
		goto out;
	rc = read_service(&kr, cfg);
	if (rc != MAILMODE_OK)
		goto out;
	rc = read_tenant(&kr, req->section, req->domain, cfg);
	if (rc != MAILMODE_OK)
		goto out;
	if (cfg->zone[0]) {
		size_t zlen = strlen(cfg->zone), dlen = strlen(req->domain);

		/* The domain must be the zone or below it. */
		if (!(dlen == zlen && strcmp(req->domain, cfg->zone) == 0) &&
		    !(dlen > zlen && req->domain[dlen - zlen - 1] == '.' &&
		      strcmp(req->domain + dlen - zlen, cfg->zone) == 0)) {
			char why[GW_NAME_MAX + 32];

			snprintf(why, sizeof(why), "does not contain the domain %s",
			         req->domain);
			rc = bad_value(&kr, req->section, "zone", cfg->zone, why);
			goto out;
		}
	}
out:
	return rc;
}

int gw_config_load_secret(const struct gw_ctx *ctx, const struct gw_config *cfg,
                          char **secret, struct mailmode_diag *diag)
{
	const struct mailmode_host *host = ctx->host;
	ldns_rdf *decoded = NULL;
	int rc;

	*secret = NULL;
	rc = host->secret_load(host->handle, cfg->tsig_secret_file, secret, diag);
	if (rc != MAILMODE_OK) {
		/* The host's summary names the file; say which key it is for. */
		host->diag_append(diag, "[%s] tsig_secret_file: '%s' (secret of TSIG "
		                  "key %s)", cfg->dns_section, cfg->tsig_secret_file,
		                  cfg->tsig_key);
		goto out;
	}
	/* A secret that is not base64 would only show up as BADSIG later. */
	if (ldns_str2rdf_b64(&decoded, *secret) != LDNS_STATUS_OK || !decoded ||
	    ldns_rdf_size(decoded) == 0) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "[%s] tsig_secret_file: '%s' does not hold a base64 "
		               "TSIG secret", cfg->dns_section, cfg->tsig_secret_file);
		rc = MAILMODE_ERR_CONFIG;
		goto out;
	}
	rc = MAILMODE_OK;
out:
	if (decoded) {
		explicit_bzero(ldns_rdf_data(decoded), ldns_rdf_size(decoded));
		ldns_rdf_deep_free(decoded);
	}
	if (rc != MAILMODE_OK && *secret) {
		host->secret_free(host->handle, *secret);
		*secret = NULL;
	}
	return rc;
}

const char *gw_config_tsig_algorithm_ldns(const struct gw_config *cfg)
{
	return strcmp(cfg->tsig_algorithm, "hmac-sha512") == 0 ? "hmac-sha512."
	                                                       : "hmac-sha256.";
}
