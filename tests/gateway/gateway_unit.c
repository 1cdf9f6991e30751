/*
 * Unit tests of the gateway plugin's pure parts, against a mock host:
 * config validation (one-line errors naming section and key), MX sets,
 * the receipt, and the verdict over authoritative answers (including a
 * lagging server, which the server tests cannot produce on demand).
 */
#include "gateway.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"

/* ---- a mock host: config from a table, diag helpers -------------------- */

struct entry {
	const char *section, *key, *value;
};

#define MAX_ENTRIES 64
static struct entry config[MAX_ENTRIES];

static void config_reset(void)
{
	static const struct entry valid[] = {
		{ "profile p", "dns", "d" },
		{ "profile p", "service", "s" },
		{ "profile p", "fallback_mx", "0 contoso.mail.protection.outlook.test" },
		{ "dns d", "port", "5353" },
		{ "dns d", "resolver", "127.0.0.11" },
		{ "dns d", "tsig_key", "Gw-Key" },
		{ "dns d", "tsig_secret_file", "gw.secret" },
		{ "service s", "gateway_mx", "20 MX-02.gw.test, 10 mx-01.gw.test." },
		{ NULL, NULL, NULL },
	};

	memset(config, 0, sizeof(config));
	memcpy(config, valid, sizeof(valid));
}

/* Sets (or with value NULL removes) one key. */
static void config_set(const char *section, const char *key, const char *value)
{
	size_t i;

	for (i = 0; config[i].section; i++) {
		if (strcmp(config[i].section, section) == 0 &&
		    strcmp(config[i].key, key) == 0) {
			config[i].value = value ? value : "";
			return;
		}
	}
	if (value && i + 1 < MAX_ENTRIES)
		config[i] = (struct entry){ section, key, value };
}

static const char *mock_config_get(void *handle, const char *section,
                                   const char *key)
{
	size_t i;

	(void)handle;
	for (i = 0; config[i].section; i++) {
		if (strcmp(config[i].section, section) == 0 &&
		    strcmp(config[i].key, key) == 0)
			return config[i].value;
	}
	return NULL;
}

static const char *secret_text = "c2VjcmV0";

static int mock_secret_load(void *handle, const char *path, char **secret,
                            struct mailmode_diag *diag)
{
	(void)handle;
	(void)path;
	(void)diag;
	*secret = strdup(secret_text);
	return *secret ? MAILMODE_OK : MAILMODE_ERR_NOMEM;
}

static void mock_secret_free(void *handle, char *secret)
{
	(void)handle;
	free(secret);
}

static void mock_log(void *handle, enum mailmode_log_level level,
                     const char *fmt, ...)
{
	(void)handle;
	(void)level;
	(void)fmt;
}

static void mock_progress(void *handle, const char *fmt, ...)
{
	(void)handle;
	(void)fmt;
}

static void mock_diag_set(struct mailmode_diag *diag,
                          enum mailmode_severity severity, int retryable,
                          const char *fmt, ...)
{
	va_list ap;

	diag->severity = severity;
	diag->retryable = retryable;
	diag->detail[0] = '\0';
	va_start(ap, fmt);
	vsnprintf(diag->summary, sizeof(diag->summary), fmt, ap);
	va_end(ap);
}

static void mock_diag_append(struct mailmode_diag *diag, const char *fmt, ...)
{
	size_t used = strlen(diag->detail);
	va_list ap;

	if (used && used + 1 < sizeof(diag->detail))
		diag->detail[used++] = '\n';
	va_start(ap, fmt);
	vsnprintf(diag->detail + used, sizeof(diag->detail) - used, fmt, ap);
	va_end(ap);
}

static void *mock_alloc(size_t size)
{
	return malloc(size);
}

static char *mock_strdup(const char *s)
{
	return strdup(s);
}

static const struct mailmode_host host = {
	.struct_size = sizeof(struct mailmode_host),
	.abi_major = MAILMODE_ABI_MAJOR,
	.abi_minor = MAILMODE_ABI_MINOR,
	.log = mock_log,
	.config_get = mock_config_get,
	.secret_load = mock_secret_load,
	.secret_free = mock_secret_free,
	.progress = mock_progress,
	.alloc = mock_alloc,
	.strdup = mock_strdup,
	.free = free,
	.diag_set = mock_diag_set,
	.diag_append = mock_diag_append,
};

static const struct gw_ctx ctx = { .host = &host };

static int load(const char *domain, struct gw_config *cfg,
                struct mailmode_diag *diag)
{
	struct mailmode_request req = {
		.struct_size = sizeof(req), .domain = domain, .profile = "p",
		.section = "profile p",
	};

	memset(diag, 0, sizeof(*diag));
	return gw_config_load(&ctx, &req, cfg, diag);
}

/* ---- tests --------------------------------------------------------------- */

static void test_config(struct tap *t)
{
	static const struct {
		const char *section, *key, *value, *error;
	} bad[] = {
		{ "profile p", "dns", NULL, "[profile p] dns: missing" },
		{ "profile p", "service", NULL, "[profile p] service: missing" },
		{ "profile p", "zone", "other.test", "[profile p] zone: 'other.test' does not contain the domain mail.example.test" },
		{ "profile p", "fallback_mx", "0", "[profile p] fallback_mx: '0' is not a list" },
		{ "dns d", "port", "0", "[dns d] port: '0' is not a whole number from 1 to 65535" },
		{ "dns d", "port", "53x", "[dns d] port: '53x' is not a whole number" },
		{ "dns d", "resolver", "ns1.example.test", "[dns d] resolver: 'ns1.example.test' is not an IP address" },
		{ "dns d", "primary", "bad..name", "[dns d] primary: 'bad..name' is neither an IP address nor a host name" },
		{ "dns d", "tsig_key", NULL, "[dns d] tsig_key: missing" },
		{ "dns d", "tsig_algorithm", "hmac-md5", "[dns d] tsig_algorithm: 'hmac-md5' is not supported (use hmac-sha256 or hmac-sha512)" },
		{ "dns d", "tsig_algorithm", "hmac-sha384", "[dns d] tsig_algorithm: 'hmac-sha384' is not supported" },
		{ "dns d", "tsig_secret_file", NULL, "[dns d] tsig_secret_file: missing" },
		{ "dns d", "timeout", "0", "[dns d] timeout: '0' is not a whole number from 1 to 300" },
		{ "dns d", "debug_pause_before_update_ms", "-1", "[dns d] debug_pause_before_update_ms: '-1' is not a whole number" },
		{ "service s", "gateway_mx", NULL, "[service s] gateway_mx: missing" },
		{ "service s", "gateway_mx", "ten mx.test", "[service s] gateway_mx: 'ten mx.test' is not a list of 'PREFERENCE HOST' items" },
		{ "service s", "gateway_mx", "10 a.test extra", "[service s] gateway_mx: '10 a.test extra' is not a list" },
		{ "service s", "gateway_mx", " , ", "[service s] gateway_mx: ' , ' holds no MX record" },
		{ "service s", "gateway_ttl", "2147483648", "[service s] gateway_ttl: '2147483648' is not a whole number from 0 to 2147483647" },
		{ "profile p", "lockdown", "yes", "[profile p] gateway_tenant: missing (enhanced_filtering, lockdown and outbound are set in the tenant" },
		{ "profile p", "outbound", "yes", "[profile p] gateway_tenant: missing" },
		{ "profile p", "enhanced_filtering", "no", "[profile p] gateway_tenant: missing" },
	};
	struct gw_config cfg;
	struct mailmode_diag diag;
	char *secret = NULL;
	size_t i;
	int rc;

	config_reset();
	rc = load("mail.example.test", &cfg, &diag);
	tap_is_int(t, rc, MAILMODE_OK, "a valid profile loads");
	tap_is_int(t, cfg.port, 5353, "port");
	tap_is_int(t, cfg.resolver_port, 53, "resolver_port defaults to 53");
	tap_is_str(t, cfg.tsig_key, "gw-key", "the key name is lower-cased, without the final dot");
	tap_is_str(t, cfg.tsig_algorithm, "hmac-sha256", "the algorithm defaults to hmac-sha256");
	tap_is_str(t, gw_config_tsig_algorithm_ldns(&cfg), "hmac-sha256.", "ldns gets an absolute algorithm name");
	tap_is_int(t, cfg.timeout_s, 5, "timeout defaults to 5 s");
	tap_is_int(t, (long)cfg.gateway.count, 2, "two gateway records");
	tap_is_str(t, cfg.gateway.mx[0].host, "mx-01.gw.test.", "gateway records are sorted and normalised");
	tap_is_int(t, cfg.gateway.mx[1].ttl, 300, "gateway_ttl defaults to 300");
	tap_is_int(t, cfg.fallback.mx[0].ttl, 3600, "fallback_ttl defaults to 3600");
	tap_is_str(t, cfg.zone, "", "no zone: it will be found by the SOA walk");

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char what[256];

		config_reset();
		config_set(bad[i].section, bad[i].key, bad[i].value);
		rc = load("mail.example.test", &cfg, &diag);
		snprintf(what, sizeof(what), "[%s] %s = %s: refused with a one-line error",
		         bad[i].section, bad[i].key, bad[i].value ? bad[i].value : "(unset)");
		tap_ok(t, rc == MAILMODE_ERR_CONFIG && strncmp(diag.summary, bad[i].error,
		                                              strlen(bad[i].error)) == 0 &&
		                  !strchr(diag.summary, '\n'), what);
		if (rc != MAILMODE_ERR_CONFIG || strncmp(diag.summary, bad[i].error, strlen(bad[i].error)))
			printf("# got %d '%s'\n", rc, diag.summary);
	}

	config_reset();
	config_set("profile p", "zone", "Example.Test.");
	rc = load("mail.example.test", &cfg, &diag);
	tap_ok(t, rc == MAILMODE_OK && strcmp(cfg.zone, "example.test") == 0,
	       "a configured zone above the domain is accepted, normalised");

	config_reset();
	rc = load("mail.example.test", &cfg, &diag);
	secret_text = "not base64 at all!";
	rc = gw_config_load_secret(&ctx, &cfg, &secret, &diag);
	tap_ok(t, rc == MAILMODE_ERR_CONFIG && secret == NULL &&
	              strstr(diag.summary, "[dns d] tsig_secret_file: 'gw.secret' does not hold a base64"),
	       "a secret that is not base64 is refused");
	secret_text = "c2VjcmV0";
	rc = gw_config_load_secret(&ctx, &cfg, &secret, &diag);
	tap_ok(t, rc == MAILMODE_OK && secret && strcmp(secret, "c2VjcmV0") == 0,
	       "a base64 secret loads");
	free(secret);
}

static void test_mx_sets(struct tap *t)
{
	struct gw_mx_set a, b;
	char err[256], text[512], name[GW_NAME_MAX];

	tap_ok(t, gw_name_normalise("MX1.Example.TEST", name, sizeof(name)) == MAILMODE_OK &&
	              strcmp(name, "mx1.example.test.") == 0,
	       "names are lower-cased and made absolute");
	tap_ok(t, gw_name_normalise("a..b", name, sizeof(name)) != MAILMODE_OK,
	       "an empty label is refused");
	tap_ok(t, gw_name_normalise("a b.test", name, sizeof(name)) != MAILMODE_OK,
	       "a space is refused");
	tap_ok(t, gw_name_normalise("0123456789012345678901234567890123456789012345678901234567890123.test",
	                            name, sizeof(name)) != MAILMODE_OK,
	       "a 64-character label is refused");

	tap_is_int(t, gw_mx_set_parse("20 b.test, 10 a.test, 10 A.test.", 60, &a, err, sizeof(err)),
	           MAILMODE_OK, "an MX list parses");
	gw_mx_set_format(&a, true, text, sizeof(text));
	tap_is_str(t, text, "10 a.test. (ttl 60), 20 b.test. (ttl 60)",
	           "sorted by preference, duplicates dropped");
	tap_ok(t, gw_mx_set_parse("70000 a.test", 60, &b, err, sizeof(err)) != MAILMODE_OK,
	       "a preference above 65535 is refused");
	gw_mx_set_parse("10 a.test., 20 B.test", 3600, &b, err, sizeof(err));
	tap_ok(t, gw_mx_set_equal(&a, &b), "sets compare without TTLs");
	gw_mx_set_parse("10 a.test", 60, &b, err, sizeof(err));
	tap_ok(t, !gw_mx_set_equal(&a, &b) && gw_mx_set_overlap(&a, &b),
	       "a subset is not equal but overlaps");
	gw_mx_set_parse("", 60, &b, err, sizeof(err));
	gw_mx_set_format(&b, false, text, sizeof(text));
	tap_is_str(t, text, "(no MX records)", "an empty set says so");

	gw_mx_set_parse("10 a.test., 20 B.test", 3600, &b, err, sizeof(err));
	tap_ok(t, gw_mx_set_equal(&a, &b) && !gw_mx_set_same(&a, &b),
	       "the same records with other TTLs are equal, not the same");
	gw_mx_set_diff(&a, &b, text, sizeof(text));
	tap_is_str(t, text, "ttl: 10 a.test. 60 instead of 3600, 20 b.test. 60 instead of 3600",
	           "the difference names the TTLs");
	gw_mx_set_parse("10 a.test, 30 c.test", 60, &b, err, sizeof(err));
	gw_mx_set_diff(&b, &a, text, sizeof(text));
	tap_is_str(t, text, "extra: 30 c.test. (ttl 60); missing: 20 b.test. (ttl 60)",
	           "the difference names extra and missing records");
	gw_mx_set_diff(&a, &a, text, sizeof(text));
	tap_is_str(t, text, "", "no difference: empty");
}

static void test_receipt(struct tap *t)
{
	struct gw_receipt in = { 0 }, out;
	char err[256], *json;

	snprintf(in.zone, sizeof(in.zone), "example.test");
	in.has_saved = true;
	gw_mx_set_parse("10 mx1.example.test, 20 mx2.example.test", 3600, &in.saved, err, sizeof(err));
	gw_mx_set_parse("10 mx-01.gw.test", 300, &in.gateway, err, sizeof(err));
	json = gw_receipt_render(&ctx, "example.test", &in);
	tap_is_str(t, json,
	           "{\"version\":1,\"zone\":\"example.test\",\"mx\":[{\"pref\":10,\"host\":\"mx1.example.test.\",\"ttl\":3600},"
	           "{\"pref\":20,\"host\":\"mx2.example.test.\",\"ttl\":3600}],"
	           "\"gateway\":[{\"pref\":10,\"host\":\"mx-01.gw.test.\",\"ttl\":300}]}",
	           "the receipt is the zone, the saved set with TTLs and the gateway set");
	tap_ok(t, json && gw_receipt_parse(json, &out, err, sizeof(err)) == MAILMODE_OK &&
	              out.has_saved && gw_mx_set_equal(&out.saved, &in.saved) &&
	              out.saved.mx[1].ttl == 3600 && strcmp(out.zone, "example.test") == 0,
	       "the receipt parses back");
	free(json);

	/* A checkpoint: the same receipt with the UPDATE in flight. */
	in.write_doing = "swapping to the gateway set";
	in.write_from = in.saved;
	in.write_to = in.gateway;
	json = gw_receipt_render(&ctx, "example.test", &in);
	tap_contains(t, json, ",\"write\":{\"object\":\"MX example.test\",\"doing\":\"swapping to the "
	             "gateway set\",\"from\":[{\"pref\":10,\"host\":\"mx1.example.test.\",\"ttl\":3600},"
	             "{\"pref\":20,\"host\":\"mx2.example.test.\",\"ttl\":3600}],\"to\":[{\"pref\":10,"
	             "\"host\":\"mx-01.gw.test.\",\"ttl\":300}]}",
	             "a checkpoint names the object, what is done and both sets");
	tap_ok(t, json && gw_receipt_parse(json, &out, err, sizeof(err)) == MAILMODE_OK &&
	              out.has_saved && gw_mx_set_same(&out.saved, &in.saved),
	       "a checkpoint parses as a receipt");
	free(json);
	in.write_doing = NULL;

	/* The tenant side: the connector and its lock-down, and a connector
	 * write in flight (doc/gateway-tenant.md). */
	in.has_tenant = true;
	snprintf(in.connector, sizeof(in.connector), "mailmode gateway for example.test from s");
	in.locked = true;
	in.write_doing = "locking down";
	in.write_object = "inbound connector mailmode gateway for example.test from s";
	json = gw_receipt_render(&ctx, "example.test", &in);
	tap_contains(t, json, "\"tenant\":{\"connector\":\"mailmode gateway for example.test from s\",\"locked\":true},"
	             "\"write\":{\"object\":\"inbound connector mailmode gateway for example.test from s\","
	             "\"doing\":\"locking down\"}",
	             "a connector checkpoint: the tenant side and the connector write");
	tap_ok(t, json && gw_receipt_parse(json, &out, err, sizeof(err)) == MAILMODE_OK &&
	              out.has_tenant && out.locked && strcmp(out.connector, in.connector) == 0,
	       "the tenant side parses back");
	free(json);
	/* outbound = yes: named in the receipt, and a rule write in flight. */
	in.outbound = true;
	in.write_object = "transport rule mailmode outbound of example.test via s";
	in.write_doing = "creating";
	json = gw_receipt_render(&ctx, "example.test", &in);
	tap_contains(t, json, "\"locked\":true,\"outbound\":true},"
	             "\"write\":{\"object\":\"transport rule mailmode outbound of example.test via s\","
	             "\"doing\":\"creating\"}",
	             "an outbound checkpoint: outbound in the tenant side, the rule write");
	tap_ok(t, json && gw_receipt_parse(json, &out, err, sizeof(err)) == MAILMODE_OK &&
	              out.outbound, "outbound parses back");
	free(json);
	in.outbound = false;
	in.write_doing = NULL;
	in.write_object = NULL;
	in.has_tenant = false;
	tap_ok(t, gw_receipt_parse("{\"zone\":\"example.test\",\"gateway\":[{\"pref\":10,\"host\":\"a.test\",\"ttl\":1}],"
	                           "\"tenant\":{\"locked\":true}}", &out, err, sizeof(err)) != MAILMODE_OK &&
	              strstr(err, "\"tenant\""),
	       "a tenant side without its connector's name is refused");

	json = gw_original_render(&ctx, "example.test", &in.saved);
	tap_is_str(t, json,
	           "{\"version\":1,\"zone\":\"example.test\",\"mx\":[{\"pref\":10,\"host\":\"mx1.example.test.\","
	           "\"ttl\":3600},{\"pref\":20,\"host\":\"mx2.example.test.\",\"ttl\":3600}]}",
	           "the original is the zone and the replaced set with TTLs");
	tap_ok(t, json && gw_original_parse(json, &out.saved, err, sizeof(err)) == MAILMODE_OK &&
	              gw_mx_set_same(&out.saved, &in.saved),
	       "the original parses back, TTLs included");
	free(json);
	tap_ok(t, gw_original_parse("{\"mx\":[{\"pref\":10,\"host\":\"a b\",\"ttl\":1}]}", &out.saved,
	                            err, sizeof(err)) != MAILMODE_OK,
	       "an original with a bad host is refused");
	tap_ok(t, gw_receipt_parse("{\"zone\":\"example.test\",\"gateway\":[{\"pref\":10,\"host\":\"a.test\",\"ttl\":1}]}",
	                           &out, err, sizeof(err)) == MAILMODE_OK && !out.has_saved,
	       "a receipt without a saved set parses (teardown will use fallback_mx)");
	tap_ok(t, gw_receipt_parse("[1]", &out, err, sizeof(err)) != MAILMODE_OK,
	       "a receipt that is not an object is refused");
	tap_ok(t, gw_receipt_parse("{\"zone\":\"example.test\",\"mx\":[{\"pref\":-1,\"host\":\"a.test\",\"ttl\":1}],"
	                           "\"gateway\":[{\"pref\":10,\"host\":\"a.test\",\"ttl\":1}]}",
	                           &out, err, sizeof(err)) != MAILMODE_OK &&
	              strstr(err, "\"mx\""),
	       "a receipt with a bad record is refused, naming the list");
	tap_ok(t, gw_receipt_parse("{\"zone\":\"example.test\"}", &out, err, sizeof(err)) != MAILMODE_OK,
	       "a receipt without the gateway set is refused");
}

static void add_server(struct gw_auth_view *view, const char *addr, bool answered,
                       uint32_t serial, const char *mx, bool zone_signed,
                       bool mx_signed)
{
	struct gw_server_view *sv = &view->servers[view->count++];
	char err[128];

	snprintf(sv->ns_name, sizeof(sv->ns_name), "ns%zu.example.test.", view->count);
	snprintf(sv->address, sizeof(sv->address), "%s", addr);
	sv->answered = answered;
	sv->serial = serial;
	sv->zone_signed = zone_signed;
	sv->mx_signed = mx_signed;
	if (!answered)
		snprintf(sv->error, sizeof(sv->error), "SOA: no answer within 2 s");
	else
		gw_mx_set_parse(mx, 300, &sv->mx, err, sizeof(err));
}

static void test_judge(struct tap *t)
{
	struct gw_auth_view *view = calloc(1, sizeof(*view));
	struct gw_mx_set gateway;
	struct gw_auth_verdict v;
	struct mailmode_diag diag = { 0 };
	struct gw_op op = { .ctx = &ctx, .diag = &diag, .domain = "example.test",
	                    .zone = "example.test" };
	const char *gw = "10 mx-01.gw.test, 20 mx-02.gw.test";
	const char *orig = "10 mx1.example.test, 20 mx2.example.test";
	char err[128], *report;

	gw_mx_set_parse(gw, 300, &gateway, err, sizeof(err));

	add_server(view, "127.0.0.11", true, 5, gw, false, false);
	add_server(view, "127.0.0.12", true, 5, gw, false, false);
	gw_auth_judge(view, &gateway, &v);
	tap_ok(t, v.consistent && v.expected_live && v.presence == MAILMODE_PRESENT,
	       "same serial and the gateway set everywhere: present");
	report = gw_auth_report(&op, view, &gateway, &v);
	tap_contains(t, report, "\"servers\":[{\"ns\":\"ns1.example.test.\",\"address\":\"127.0.0.11\","
	             "\"answered\":true,\"serial\":5,\"mx\":[{\"pref\":10,\"host\":\"mx-01.gw.test.\"",
	             "the report lists each server's serial and MX set");
	free(report);

	view->servers[1].serial = 4;
	view->servers[1].mx.count = 0;
	gw_mx_set_parse(orig, 3600, &view->servers[1].mx, err, sizeof(err));
	gw_auth_judge(view, &gateway, &v);
	tap_ok(t, !v.consistent && !v.expected_live && v.presence == MAILMODE_PARTIAL,
	       "a lagging server (older serial, old set): partial, not verified");
	gw_auth_describe(&op, view, &gateway);
	tap_contains(t, diag.detail, "ns2.example.test. (127.0.0.12): serial 4, MX 10 mx1.example.test., "
	             "20 mx2.example.test. (not the expected set: extra: 10 mx1.example.test. (ttl 3600)",
	             "the detail shows the lagging server's answer");

	view->servers[1].mx = view->servers[0].mx;
	gw_auth_judge(view, &gateway, &v);
	tap_ok(t, !v.consistent && !v.expected_live,
	       "the same MX set but a different serial: not verified yet");

	view->count = 1;
	add_server(view, "127.0.0.12", false, 0, NULL, false, false);
	gw_auth_judge(view, &gateway, &v);
	tap_ok(t, v.answered == 1 && !v.expected_live && v.presence == MAILMODE_PARTIAL,
	       "a silent server: partial, not verified");

	view->count = 0;
	add_server(view, "127.0.0.11", true, 7, orig, false, false);
	add_server(view, "127.0.0.12", true, 6, orig, false, false);
	gw_auth_judge(view, &gateway, &v);
	tap_ok(t, v.presence == MAILMODE_ABSENT,
	       "no gateway record anywhere: absent (even while another change propagates)");

	view->count = 0;
	add_server(view, "127.0.0.11", true, 7, gw, true, true);
	add_server(view, "127.0.0.12", true, 7, gw, true, false);
	gw_auth_judge(view, &gateway, &v);
	tap_ok(t, !v.expected_live, "a signed zone whose new MX set has no RRSIG yet: not verified");

	view->count = 0;
	add_server(view, "127.0.0.11", true, 8, gw, false, false);
	add_server(view, "127.0.0.12", true, 8, gw, false, false);
	view->servers[0].mx.mx[0].ttl = view->servers[1].mx.mx[0].ttl = 60;
	gw_auth_judge(view, &gateway, &v);
	tap_ok(t, v.consistent && !v.expected_live && v.presence == MAILMODE_PARTIAL,
	       "the gateway records with another TTL everywhere: partial, not verified");
	free(view);
}

int main(void)
{
	struct tap t = { 0 };

	tap_plan(76);
	test_config(&t);
	test_mx_sets(&t);
	test_receipt(&t);
	test_judge(&t);
	return tap_done(&t);
}
