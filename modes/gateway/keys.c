/* The configuration keys the gateway mode reads (ABI 1.2 config_keys), so
 * the core can refuse a misspelt one.  Keep in step with config.c. */
#include "gateway.h"

#include <stddef.h>

static const struct mailmode_config_key keys[] = {
	{ "profile", "dns", MAILMODE_KEY_STRING, NULL,
	  "names the [dns NAME] section: where and how the MX records are updated" },
	{ "profile", "service", MAILMODE_KEY_STRING, NULL,
	  "names the [service NAME] section: the gateway MX set" },
	{ "profile", "zone", MAILMODE_KEY_STRING, NULL,
	  "the zone holding the domain's MX (default: found with an SOA walk)" },
	{ "profile", "fallback_mx", MAILMODE_KEY_STRING, NULL,
	  "MX set teardown restores for an adopted domain; {domain} and {domain_dashes} expand" },
	{ "profile", "fallback_ttl", MAILMODE_KEY_INT, "3600", "TTL of fallback_mx" },
	{ "dns", "provider", MAILMODE_KEY_STRING, "rfc2136",
	  "who holds the zone: rfc2136 (a primary taking UPDATEs), cloudflare, gcloud or azure" },
	{ "dns", "primary", MAILMODE_KEY_STRING, NULL,
	  "address or host name UPDATEs go to (default: the zone's SOA MNAME)" },
	{ "dns", "port", MAILMODE_KEY_INT, "53", "port of the primary and every authoritative server" },
	{ "dns", "resolver", MAILMODE_KEY_STRING, NULL,
	  "address asked for the SOA walk and NS lookups (default: /etc/resolv.conf)" },
	{ "dns", "resolver_port", MAILMODE_KEY_INT, "53", "port of resolver" },
	{ "dns", "tsig_key", MAILMODE_KEY_STRING, NULL, "TSIG key name the primary knows" },
	{ "dns", "tsig_algorithm", MAILMODE_KEY_STRING, "hmac-sha256",
	  "hmac-sha256 or hmac-sha512" },
	{ "dns", "tsig_secret_file", MAILMODE_KEY_PATH, NULL,
	  "file holding the key's base64 secret, mode 0600" },
	{ "dns", "api_url", MAILMODE_KEY_STRING, NULL,
	  "cloudflare, gcloud, azure: the API base URL (default: the provider's public API)" },
	{ "dns", "ca_file", MAILMODE_KEY_PATH, NULL,
	  "cloudflare, gcloud, azure: CA certificates to trust for the API and its sign-in (default: the system store)" },
	{ "dns", "api_token_file", MAILMODE_KEY_PATH, NULL,
	  "cloudflare: file holding the API token (Zone:Zone:Read, Zone:DNS:Edit), mode 0600" },
	{ "dns", "service_account_file", MAILMODE_KEY_PATH, NULL,
	  "gcloud: the service account's JSON key file, mode 0600" },
	{ "dns", "project", MAILMODE_KEY_STRING, NULL,
	  "gcloud: the project holding the managed zone (default: the key's project_id)" },
	{ "dns", "managed_zone", MAILMODE_KEY_STRING, NULL,
	  "gcloud: the managed zone's name (default: the public zone whose dnsName is the longest suffix)" },
	{ "dns", "subscription", MAILMODE_KEY_STRING, NULL,
	  "azure: the subscription id holding the DNS zone" },
	{ "dns", "resource_group", MAILMODE_KEY_STRING, NULL,
	  "azure: the zone's resource group (default: found by listing the subscription's DNS zones)" },
	{ "dns", "tenant", MAILMODE_KEY_STRING, NULL,
	  "azure: the Entra ID tenant of the app (GUID or x.onmicrosoft.com)" },
	{ "dns", "client_id", MAILMODE_KEY_STRING, NULL,
	  "azure: the app registration's application (client) id" },
	{ "dns", "client_secret_file", MAILMODE_KEY_PATH, NULL,
	  "azure: file holding the app's client secret, mode 0600" },
	{ "dns", "private_key_file", MAILMODE_KEY_PATH, NULL,
	  "azure: PEM private key of the app's certificate, mode 0600 (instead of a secret)" },
	{ "dns", "certificate_file", MAILMODE_KEY_PATH, NULL,
	  "azure: PEM certificate of private_key_file (default: a CERTIFICATE block in it)" },
	{ "dns", "login_url", MAILMODE_KEY_STRING, "https://login.microsoftonline.com",
	  "azure: the Entra ID sign-in endpoint" },
	{ "dns", "assertion_alg", MAILMODE_KEY_STRING, "PS256",
	  "azure: PS256 (x5t#S256) or RS256 (x5t) for the certificate assertion" },
	{ "dns", "timeout", MAILMODE_KEY_INT, "5", "seconds to wait for each DNS or API answer (1-300)" },
	{ "dns", "debug_pause_before_update_ms", MAILMODE_KEY_INT, "0",
	  "testing aid: pause between reading the MX set and the UPDATE" },
	{ "service", "gateway_mx", MAILMODE_KEY_STRING, NULL,
	  "the gateway MX set, 'PREF HOST' items, comma-separated" },
	{ "service", "gateway_ttl", MAILMODE_KEY_INT, "300", "TTL of the gateway MX records" },
	{ NULL, NULL, MAILMODE_KEY_STRING, NULL, NULL }
};

const struct mailmode_config_key *gw_config_keys(void)
{
	return keys;
}
