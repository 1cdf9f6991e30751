/*
 * The mailflow profile, read from the INI configuration.
 *
 *   [profile NAME]                 the core passes this section
 *   tenant  = T                    -> [tenant T]
 *   service = S                    -> [service S]
 *
 *   [tenant T]                     one Microsoft 365 tenant (app-only auth)
 *   tenant             = contoso.onmicrosoft.com | tenant GUID
 *                        (default: T itself)
 *   client_id          = the app registration's application (client) id
 *   client_secret_file = file holding the client secret            -- or --
 *   private_key_file   = PEM private key of the app's certificate
 *   certificate_file   = PEM certificate (default: a CERTIFICATE block in
 *                        private_key_file)
 *   login_url          = identity platform (default
 *                        https://login.microsoftonline.com); the token URL
 *                        is {login_url}/{tenant}/oauth2/v2.0/token
 *   api_url            = admin API (default https://outlook.office365.com);
 *                        calls go to {api_url}/adminapi/beta/{tenant}/InvokeCommand
 *   ca_file            = CA bundle for both (default: the system trust
 *                        store)
 *   assertion_alg      = PS256 | RS256: how the certificate client
 *                        assertion is signed (default PS256, with header
 *                        x5t#S256, as Microsoft documents it now; RS256 with
 *                        x5t is the older form, for a platform that wants it)
 *   retry_budget_ms    = time one request may spend retrying 408/429/503/504
 *                        (default: the host's, 120 s)
 *   timeout_ms         = one request attempt (default: the host's, 30 s)
 *   visibility_window_ms = how long a new object may stay unlisted
 *                        (eventual consistency; default 1800000, 30 min):
 *                        until then teardown does not call an object gone
 *                        that an attempt may have made
 *
 *   [service S]                    the security service; shared with the
 *                                  gateway plugin (gateway_mx, gateway_ttl)
 *   smart_hosts    = hosts the outbound connector delivers to (comma or
 *                    space separated)
 *   tls_domain     = certificate domain the outbound connector validates
 *                    (default: the first smart host)
 *   connector_type = Partner | OnPremises (default Partner): the inbound
 *                    connector's type.  Partner, as most services use it,
 *                    grants the service's mail nothing but the way in and
 *                    can be locked to its certificate and addresses;
 *                    OnPremises would treat it as the organization's own
 *                    mail and let it relay to the internet through the
 *                    tenant (doc/mailflow-connectors.md)
 *   tls_cert_name  = certificate name of the service's return traffic
 *                    (inbound connector TlsSenderCertificateName)
 *   loop_header    = accepted and ignored: older versions excepted mail
 *                    carrying the service's header, which any sender can
 *                    write (doc/mailflow-rule.md)
 *   name_prefix    = prefix of the objects' deterministic names
 *                    (default "mailmode")
 *   service_ips    = the addresses the service sends mail from, as its
 *                    vendor publishes them: IPv4 or IPv6 addresses or CIDR
 *                    ranges (comma or space separated).  Required: the
 *                    rule excepts mail delivered to Exchange Online from
 *                    them (ExceptIfSenderIpRanges, doc/mailflow-rule.md),
 *                    and the message trace (`--quick-test`) counts a row
 *                    from one of them as a pass through the service.
 *
 *   [mode mailflow]                optional, defaults for every tenant
 *   retry_budget_ms, timeout_ms, visibility_window_ms
 *
 * Secret and key files are read with host->secret_load: relative paths are
 * taken from the configuration file's directory, and files readable by
 * group or others are refused.  certificate_file and ca_file are public:
 * relative paths start at the configuration file's directory too.
 *
 * Object names (deterministic, so an interrupted setup is resumed and
 * never duplicated):
 *   outbound connector  "<prefix> outbound to <S>"   one per tenant+service
 *   inbound connector   "<prefix> inbound from <S>"  one per tenant+service
 *   transport rule      "<prefix> route <domain>"    one per domain
 * One rule per domain (rather than one per tenant listing its domains)
 * keeps setup and teardown of one domain from rewriting an object other
 * domains depend on, and lets verify report per domain.
 */
#include "mailflow.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define DEFAULT_NAME_PREFIX "mailmode"
#define MANAGED_MARKER "managed by mailmode"

/* ------------------------------------------------------------------ */
/* Helpers */

/* A path from the configuration, made absolute by the host (relative paths
 * start at the configuration file's directory), in our own allocation. */
static char *config_path(const struct mailmode_host *host, const char *value)
{
	char *absolute = host->config_path(host->handle, value);
	char *copy = absolute ? ms_strdup(absolute) : NULL;

	host->free(absolute);
	return copy;
}

/* ------------------------------------------------------------------ */
/* Profile */

/* "tenant T" from "T"; NULL on allocation failure. */
static char *section_name(const char *kind, const char *name)
{
	return ms_printf("%s %s", kind, name);
}

static char *trimmed_url(const char *url)
{
	char *copy = ms_strdup(url);
	size_t len;

	if (!copy)
		return NULL;
	len = strlen(copy);
	while (len > 0 && copy[len - 1] == '/')
		copy[--len] = '\0';
	return copy;
}

/* The scheme and host are case-insensitive (RFC 3986 section 6.2.2.1):
 * "HTTPS://Login.Example" is taken, and kept as "https://login.example" so
 * the token URL in the assertion's aud is the canonical one. */
static int is_https_url(char *url)
{
	size_t i;

	if (strncasecmp(url, "https://", 8) != 0 || url[8] == '\0')
		return 0;
	for (i = 0; url[i] && url[i] != '/' && i < 8; i++)
		url[i] = (char)tolower((unsigned char)url[i]);
	for (i = 8; url[i] && !strchr("/?#", url[i]); i++)
		url[i] = (char)tolower((unsigned char)url[i]);
	return 1;
}

/* Splits "a, b c" into a NULL-terminated array of copies. */
static char **split_list(const char *text, size_t *count)
{
	char **items = NULL;
	size_t n = 0;
	const char *p = text;

	*count = 0;
	items = calloc(1, sizeof(*items));
	if (!items)
		return NULL;
	while (*p) {
		const char *start;
		size_t len;
		char **grown;

		while (*p == ',' || isspace((unsigned char)*p))
			p++;
		if (!*p)
			break;
		start = p;
		while (*p && *p != ',' && !isspace((unsigned char)*p))
			p++;
		len = (size_t)(p - start);
		grown = realloc(items, (n + 2) * sizeof(*items));
		if (!grown)
			goto fail;
		items = grown;
		items[n] = malloc(len + 1);
		if (!items[n])
			goto fail;
		memcpy(items[n], start, len);
		items[n][len] = '\0';
		items[++n] = NULL;
	}
	*count = n;
	return items;
fail:
	while (n > 0)
		free(items[--n]);
	free(items);
	return NULL;
}

/* Bits past the prefix are cleared: routers ignore them, and two ways of
 * writing one range compare equal. */
static void clear_host_bits(struct mf_ip_range *range)
{
	unsigned i;

	for (i = 0; i < sizeof(range->addr); i++) {
		unsigned bit = i * 8;

		if (bit >= range->prefix)
			range->addr[i] = 0;
		else if (bit + 8 > range->prefix)
			range->addr[i] &= (unsigned char)(0xff << (bit + 8 - range->prefix));
	}
}

/* "192.0.2.10", "192.0.2.0/24", "2001:db8::/32": one range; -1 when it is
 * none. */
int mf_ip_range_parse(const char *text, struct mf_ip_range *range)
{
	char address[INET6_ADDRSTRLEN];
	const char *slash = strchr(text, '/');
	size_t len = slash ? (size_t)(slash - text) : strlen(text);
	unsigned max_prefix;

	memset(range, 0, sizeof(*range));
	if (len == 0 || len >= sizeof(address))
		return -1;
	memcpy(address, text, len);
	address[len] = '\0';
	if (inet_pton(AF_INET, address, range->addr) == 1) {
		range->family = AF_INET;
		max_prefix = 32;
	} else if (inet_pton(AF_INET6, address, range->addr) == 1) {
		range->family = AF_INET6;
		max_prefix = 128;
	} else {
		return -1;
	}
	range->prefix = max_prefix;
	if (slash) {
		char *end;
		long bits;

		if (!isdigit((unsigned char)slash[1]))
			return -1;
		errno = 0;
		bits = strtol(slash + 1, &end, 10);
		if (errno || *end != '\0' || bits < 0 || bits > (long)max_prefix)
			return -1;
		range->prefix = (unsigned)bits;
	}
	clear_host_bits(range);
	return 0;
}

void mf_ip_range_format(const struct mf_ip_range *range, char out[MF_IP_RANGE_TEXT])
{
	unsigned full = range->family == AF_INET ? 32 : 128;
	size_t len;

	if (!inet_ntop(range->family, range->addr, out, INET6_ADDRSTRLEN))
		snprintf(out, MF_IP_RANGE_TEXT, "?");
	len = strlen(out);
	if (range->prefix != full)
		snprintf(out + len, MF_IP_RANGE_TEXT - len, "/%u", range->prefix);
}

int mf_ip_range_equal(const struct mf_ip_range *a, const struct mf_ip_range *b)
{
	return a->family == b->family && a->prefix == b->prefix &&
	       memcmp(a->addr, b->addr, sizeof(a->addr)) == 0;
}

static int range_contains(const struct mf_ip_range *range, int family,
                          const unsigned char *addr)
{
	unsigned whole = range->prefix / 8, rest = range->prefix % 8;
	unsigned char mask;

	if (family != range->family || memcmp(range->addr, addr, whole) != 0)
		return 0;
	if (rest == 0)
		return 1;
	mask = (unsigned char)(0xff << (8 - rest));
	return (range->addr[whole] & mask) == (addr[whole] & mask);
}

int mf_is_service_ip(const struct mf_profile *profile, const char *address)
{
	unsigned char addr[16];
	int family;
	size_t i;

	if (!address)
		return 0;
	if (inet_pton(AF_INET, address, addr) == 1) {
		family = AF_INET;
	} else if (inet_pton(AF_INET6, address, addr) == 1) {
		family = AF_INET6;
		/* ::ffff:192.0.2.10 is the IPv4 sender seen by an IPv6 socket. */
		if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)addr)) {
			memmove(addr, addr + 12, 4);
			family = AF_INET;
		}
	} else {
		return 0;
	}
	for (i = 0; i < profile->nservice_ips; i++)
		if (range_contains(&profile->service_ips[i], family, addr))
			return 1;
	return 0;
}

/* Reads service_ips, which the rule's exception rests on: missing, it is a
 * configuration error (a rule without it would route the service's own
 * mail back to it); a malformed entry is one that names it. */
static int load_service_ips(const struct mailmode_host *host, const char *service_section,
                            struct mf_profile *p, struct mailmode_diag *diag)
{
	const char *value = host->config_get(host->handle, service_section, "service_ips");
	char **items;
	size_t n = 0, i;
	int rc = MAILMODE_OK;

	if (!value || !*value) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "[%s]: missing key 'service_ips' (the addresses the service sends mail from, as its vendor publishes them: the transport rule lets mail from them through)",
		               service_section);
		return MAILMODE_ERR_CONFIG;
	}
	items = split_list(value, &n);
	if (!items) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory reading [%s]",
		               service_section);
		return MAILMODE_ERR_NOMEM;
	}
	if (n == 0) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "[%s]: 'service_ips' lists no address", service_section);
		rc = MAILMODE_ERR_CONFIG;
		goto out;
	}
	p->service_ips = calloc(n, sizeof(*p->service_ips));
	if (!p->service_ips) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory reading [%s]",
		               service_section);
		rc = MAILMODE_ERR_NOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (mf_ip_range_parse(items[i], &p->service_ips[i]) != 0) {
			host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
			               "[%s]: 'service_ips': '%s' is not an IP address or CIDR range (e.g. 192.0.2.10, 192.0.2.0/24, 2001:db8::/32)",
			               service_section, items[i]);
			rc = MAILMODE_ERR_CONFIG;
			goto out;
		}
	}
	p->nservice_ips = n;
out:
	for (i = 0; i < n; i++)
		free(items[i]);
	free(items);
	return rc;
}

/* A positive number of milliseconds, or -1 when malformed. */
static long parse_ms(const char *text)
{
	char *end;
	long value;

	errno = 0;
	value = strtol(text, &end, 10);
	if (errno || end == text || *end != '\0' || value < 0)
		return -1;
	return value;
}

/* Exchange names may hold most characters, but not these. */
static int name_chars_ok(const char *name)
{
	return strpbrk(name, "\\/:*?\"<>|") == NULL;
}

void mf_rule_name(const struct mf_profile *profile, const char *domain,
                  char name[MF_NAME_MAX])
{
	unsigned char digest[SHA256_DIGEST_LENGTH];
	int len;

	len = snprintf(name, MF_NAME_MAX, "%s route %s", profile->name_prefix,
	               domain);
	if (len >= 0 && len < MF_NAME_MAX)
		return;
	/* Too long for Exchange: keep it unique and deterministic with a
	 * digest of the domain in place of its tail. */
	SHA256((const unsigned char *)domain, strlen(domain), digest);
	{
		char tail[12];
		size_t head;

		snprintf(tail, sizeof(tail), " ~%02x%02x%02x%02x", digest[0],
		         digest[1], digest[2], digest[3]);
		head = MF_NAME_MAX - 1 - strlen(tail);
		snprintf(name, MF_NAME_MAX, "%s route %s", profile->name_prefix,
		         domain);
		memcpy(name + head, tail, strlen(tail) + 1);
	}
}

void mf_profile_free(struct mf_profile *profile)
{
	size_t i;

	if (!profile)
		return;
	free(profile->tenant_section);
	free(profile->tenant);
	free(profile->client_id);
	free(profile->client_secret_file);
	free(profile->certificate_file);
	free(profile->private_key_file);
	free(profile->login_url);
	free(profile->api_url);
	free(profile->ca_file);
	free(profile->service);
	for (i = 0; profile->smart_hosts && profile->smart_hosts[i]; i++)
		free(profile->smart_hosts[i]);
	free(profile->smart_hosts);
	free(profile->tls_domain);
	free(profile->tls_cert_name);
	free(profile->name_prefix);
	free(profile->service_ips);
	free(profile->managed_marker);
	free(profile);
}

/* A key of the tenant section, else of the plugin's own section. */
static const char *tenant_or_mode_key(const struct mailmode_host *host,
                                      const char *tenant_section,
                                      const char *mode_section,
                                      const char *key)
{
	const char *value = host->config_get(host->handle, tenant_section, key);

	if (!value && mode_section)
		value = host->config_get(host->handle, mode_section, key);
	return value;
}

static int empty(const char *s)
{
	return !s || !*s;
}

int mf_profile_load(const struct mailmode_host *host, const char *mode_section,
                    const char *profile_section, struct mf_profile **out,
                    struct mailmode_diag *diag)
{
	struct mf_profile *p = NULL;
	const char *tenant_name, *service_name, *value;
	char *service_section = NULL;
	size_t nhosts = 0;
	int rc = MAILMODE_ERR_CONFIG;

	*out = NULL;
	tenant_name = host->config_get(host->handle, profile_section, "tenant");
	service_name = host->config_get(host->handle, profile_section, "service");
	if (empty(tenant_name)) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "[%s]: missing key 'tenant' (names a [tenant T] section)",
		               profile_section);
		goto out;
	}
	if (empty(service_name)) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "[%s]: missing key 'service' (names a [service S] section)",
		               profile_section);
		goto out;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		goto nomem;
	p->tenant_section = section_name("tenant", tenant_name);
	service_section = section_name("service", service_name);
	p->service = ms_strdup(service_name);
	p->managed_marker = ms_strdup(MANAGED_MARKER);
	if (!p->tenant_section || !service_section || !p->service ||
	    !p->managed_marker)
		goto nomem;

	/* [tenant T] */
	value = host->config_get(host->handle, p->tenant_section, "tenant");
	p->tenant = ms_strdup(empty(value) ? tenant_name : value);
	value = host->config_get(host->handle, p->tenant_section, "client_id");
	if (empty(value)) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "[%s]: missing key 'client_id'", p->tenant_section);
		goto out;
	}
	p->client_id = ms_strdup(value);
	value = host->config_get(host->handle, p->tenant_section, "client_secret_file");
	if (!empty(value))
		p->client_secret_file = ms_strdup(value);
	value = host->config_get(host->handle, p->tenant_section, "private_key_file");
	if (!empty(value))
		p->private_key_file = ms_strdup(value);
	value = host->config_get(host->handle, p->tenant_section, "certificate_file");
	if (!empty(value))
		p->certificate_file = config_path(host, value);
	if (!p->tenant || !p->client_id)
		goto nomem;
	if (!p->client_secret_file && !p->private_key_file) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "[%s]: missing key 'client_secret_file' (or 'private_key_file' for certificate auth)",
		               p->tenant_section);
		goto out;
	}
	if (p->client_secret_file && p->private_key_file) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "[%s]: give either 'client_secret_file' or 'private_key_file', not both",
		               p->tenant_section);
		goto out;
	}
	if (p->certificate_file && !p->private_key_file) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "[%s]: 'certificate_file' needs 'private_key_file'",
		               p->tenant_section);
		goto out;
	}
	value = host->config_get(host->handle, p->tenant_section, "login_url");
	p->login_url = trimmed_url(empty(value) ? MS_LOGIN_URL : value);
	value = host->config_get(host->handle, p->tenant_section, "api_url");
	p->api_url = trimmed_url(empty(value) ? MS_EXO_API_URL : value);
	if (!p->login_url || !p->api_url)
		goto nomem;
	if (!is_https_url(p->login_url) || !is_https_url(p->api_url)) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "[%s]: 'login_url' and 'api_url' must be https:// URLs (tokens travel on them)",
		               p->tenant_section);
		goto out;
	}
	value = host->config_get(host->handle, p->tenant_section, "ca_file");
	if (!empty(value) && !(p->ca_file = config_path(host, value)))
		goto nomem;
	if (p->ca_file && access(p->ca_file, R_OK) != 0) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "[%s]: 'ca_file' %s is not a readable file", p->tenant_section,
		               p->ca_file);
		goto out;
	}
	value = host->config_get(host->handle, p->tenant_section, "assertion_alg");
	if (empty(value) || ms_strcaseeq(value, "PS256")) {
		p->assertion_alg = MS_ASSERTION_PS256;
	} else if (ms_strcaseeq(value, "RS256")) {
		p->assertion_alg = MS_ASSERTION_RS256;
	} else {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "[%s]: 'assertion_alg' must be PS256 or RS256, not '%s'",
		               p->tenant_section, value);
		goto out;
	}
	value = tenant_or_mode_key(host, p->tenant_section, mode_section,
	                           "retry_budget_ms");
	if (!empty(value) && (p->retry_budget_ms = parse_ms(value)) < 0) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "[%s]: 'retry_budget_ms' is not a number of milliseconds: '%s'",
		               p->tenant_section, value);
		goto out;
	}
	value = tenant_or_mode_key(host, p->tenant_section, mode_section,
	                           "timeout_ms");
	if (!empty(value) && (p->timeout_ms = parse_ms(value)) < 0) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "[%s]: 'timeout_ms' is not a number of milliseconds: '%s'",
		               p->tenant_section, value);
		goto out;
	}

	value = tenant_or_mode_key(host, p->tenant_section, mode_section,
	                           "visibility_window_ms");
	p->visibility_window_ms = MF_DEFAULT_VISIBILITY_WINDOW_MS;
	if (!empty(value) && (p->visibility_window_ms = parse_ms(value)) < 0) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "[%s]: 'visibility_window_ms' is not a number of milliseconds: '%s'",
		               p->tenant_section, value);
		goto out;
	}

	/* [service S] */
	value = host->config_get(host->handle, service_section, "smart_hosts");
	if (empty(value)) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "[%s]: missing key 'smart_hosts'", service_section);
		goto out;
	}
	p->smart_hosts = split_list(value, &nhosts);
	if (!p->smart_hosts)
		goto nomem;
	if (nhosts == 0) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "[%s]: 'smart_hosts' lists no host", service_section);
		goto out;
	}
	value = host->config_get(host->handle, service_section, "tls_domain");
	p->tls_domain = ms_strdup(empty(value) ? p->smart_hosts[0] : value);
	value = host->config_get(host->handle, service_section, "connector_type");
	/* Partner unless asked: the least the service's mail needs. */
	if (empty(value) || ms_strcaseeq(value, "Partner")) {
		p->connector_type = MF_CONNECTOR_PARTNER;
	} else if (ms_strcaseeq(value, "OnPremises")) {
		p->connector_type = MF_CONNECTOR_ONPREMISES;
	} else {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "[%s]: 'connector_type' must be Partner or OnPremises, not '%s'",
		               service_section, value);
		goto out;
	}
	value = host->config_get(host->handle, service_section, "tls_cert_name");
	if (empty(value)) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "[%s]: missing key 'tls_cert_name' (certificate name of the service's mail to Microsoft 365)",
		               service_section);
		goto out;
	}
	p->tls_cert_name = ms_strdup(value);
	value = host->config_get(host->handle, service_section, "name_prefix");
	p->name_prefix = ms_strdup(empty(value) ? DEFAULT_NAME_PREFIX : value);
	if (!p->tls_domain || !p->tls_cert_name || !p->name_prefix)
		goto nomem;
	rc = load_service_ips(host, service_section, p, diag);
	if (rc != MAILMODE_OK)
		goto out;
	rc = MAILMODE_ERR_CONFIG;

	if (snprintf(p->outbound_name, sizeof(p->outbound_name),
	             "%s outbound to %s", p->name_prefix, p->service) >=
	        (int)sizeof(p->outbound_name) ||
	    snprintf(p->inbound_name, sizeof(p->inbound_name),
	             "%s inbound from %s", p->name_prefix, p->service) >=
	        (int)sizeof(p->inbound_name)) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "[%s]: connector names would exceed Exchange's 64 characters: shorten 'name_prefix' or the service name",
		               service_section);
		goto out;
	}
	if (!name_chars_ok(p->outbound_name) || !name_chars_ok(p->inbound_name)) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "[%s]: 'name_prefix' and the service name may not contain any of \\ / : * ? \" < > |",
		               service_section);
		goto out;
	}
	p->app = (struct ms_app){
		.section = p->tenant_section, .tenant = p->tenant,
		.client_id = p->client_id,
		.client_secret_file = p->client_secret_file,
		.private_key_file = p->private_key_file,
		.certificate_file = p->certificate_file,
		.login_url = p->login_url, .scope = MS_SCOPE_EXO,
		.ca_file = p->ca_file, .assertion_alg = p->assertion_alg,
		.timeout_ms = p->timeout_ms, .retry_budget_ms = p->retry_budget_ms,
	};
	*out = p;
	p = NULL;
	rc = MAILMODE_OK;
	goto out;
nomem:
	host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory reading [%s]",
	               profile_section);
	rc = MAILMODE_ERR_NOMEM;
out:
	free(service_section);
	mf_profile_free(p);
	return rc;
}
