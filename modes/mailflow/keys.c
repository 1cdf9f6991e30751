/* The configuration keys the mailflow mode reads (ABI 1.2 config_keys), so
 * the core can refuse a misspelt one.  Keep in step with config.c. */
#include "mailflow.h"

#include <stddef.h>

static const struct mailmode_config_key keys[] = {
	{ "profile", "tenant", MAILMODE_KEY_STRING, NULL,
	  "names the [tenant NAME] section: the Microsoft 365 tenant" },
	{ "profile", "service", MAILMODE_KEY_STRING, NULL,
	  "names the [service NAME] section: the security service" },
	MS_TENANT_KEYS,
	{ "tenant", "redirect_uri", MAILMODE_KEY_STRING, NULL,
	  "a redirect URI registered on the app, for 'mailmode tenant consent-url'" },
	{ "tenant", "retry_budget_ms", MAILMODE_KEY_INT, "120000",
	  "time one request may spend retrying 408/429/503/504" },
	{ "tenant", "timeout_ms", MAILMODE_KEY_INT, "30000", "one request attempt" },
	{ "mode", "retry_budget_ms", MAILMODE_KEY_INT, "120000",
	  "retry_budget_ms for tenants that do not set it" },
	{ "tenant", "visibility_window_ms", MAILMODE_KEY_INT, "1800000",
	  "how long a new object may stay unlisted (teardown waits that long for one of unknown outcome)" },
	{ "mode", "timeout_ms", MAILMODE_KEY_INT, "30000",
	  "timeout_ms for tenants that do not set it" },
	{ "mode", "visibility_window_ms", MAILMODE_KEY_INT, "1800000",
	  "visibility_window_ms for tenants that do not set it" },
	{ "service", "smart_hosts", MAILMODE_KEY_LIST, NULL,
	  "hosts the outbound connector delivers to" },
	{ "service", "tls_domain", MAILMODE_KEY_STRING, NULL,
	  "certificate domain the outbound connector validates (default: the first smart host)" },
	{ "service", "connector_type", MAILMODE_KEY_STRING, "Partner",
	  "inbound connector type: Partner (locked to the service's certificate and IPv4 addresses) or OnPremises (its mail may relay through the tenant)" },
	{ "service", "tls_cert_name", MAILMODE_KEY_STRING, NULL,
	  "certificate name of the service's mail to Microsoft 365 (inbound connector)" },
	{ "service", "loop_header", MAILMODE_KEY_STRING, NULL,
	  "not used by mailflow mode (accepted so older configurations load): the rule excepts mail from service_ips, since a sender can forge any header" },
	{ "service", "name_prefix", MAILMODE_KEY_STRING, "mailmode",
	  "prefix of the connectors' and rule's names" },
	{ "service", "service_ips", MAILMODE_KEY_LIST, NULL,
	  "required: the IPv4/IPv6 addresses or CIDR ranges the service delivers mail to Microsoft 365 from; the rule lets mail from them through, and --quick-test counts passes by them" },
	{ NULL, NULL, MAILMODE_KEY_STRING, NULL, NULL }
};

const struct mailmode_config_key *mf_config_keys(void)
{
	return keys;
}
