/*
 * Calls the gateway plugin's preflight operation (ABI 1.2) through the
 * core's loader and host, for tests/gateway/preflight.t, until the CLI
 * runs it:
 *
 *   gw_preflight CONFIG PLUGIN_DIR DOMAIN PROFILE setup|teardown [RECEIPT]
 *
 * Prints the result code's name and the diagnostic's retryable flag on
 * stdout ("DENIED retryable=0") and the diagnostic on stderr;
 * exits 0 for MAILMODE_OK, 2 for a usage or load error, 1 otherwise.
 */
#include "config.h"
#include "host.h"
#include "loader.h"

#include <stdio.h>
#include <string.h>

static const char *rc_name(int rc)
{
	switch (rc) {
	case MAILMODE_OK: return "OK";
	case MAILMODE_ERR_FAILED: return "FAILED";
	case MAILMODE_ERR_CONFIG: return "CONFIG";
	case MAILMODE_ERR_NOT_READY: return "NOT_READY";
	case MAILMODE_ERR_CONFLICT: return "CONFLICT";
	case MAILMODE_ERR_DENIED: return "DENIED";
	case MAILMODE_ERR_UNKNOWN: return "UNKNOWN";
	case MAILMODE_ERR_NOMEM: return "NOMEM";
	default: return "?";
	}
}

int main(int argc, char **argv)
{
	struct mm_output output = { .verbosity = 0 };
	struct mm_plugin_set set = { 0 };
	struct mailmode_diag diag = { 0 };
	struct mm_config *config = NULL;
	struct mm_plugin *plugin;
	struct mailmode_request req = { .struct_size = sizeof(req) };
	char err[512], section[512];
	int rc, status = 2;

	if (argc < 6 || argc > 7 ||
	    (strcmp(argv[5], "setup") && strcmp(argv[5], "teardown"))) {
		fprintf(stderr, "usage: gw_preflight CONFIG PLUGIN_DIR DOMAIN PROFILE "
		        "setup|teardown [RECEIPT]\n");
		return 2;
	}
	pthread_mutex_init(&output.lock, NULL);
	config = mm_config_load(argv[1], 1, err, sizeof(err));
	if (!config || mm_plugins_load(&set, argv[2], config, &output, err,
	                               sizeof(err)) != 0) {
		fprintf(stderr, "gw_preflight: %s\n", err);
		goto out;
	}
	plugin = mm_plugins_find(&set, "gateway");
	if (!plugin || !plugin->desc->preflight ||
	    mm_plugin_start(plugin, &diag) != MAILMODE_OK) {
		fprintf(stderr, "gw_preflight: no gateway plugin with preflight: %s\n",
		        diag.summary);
		goto out;
	}
	snprintf(section, sizeof(section), "profile %s", argv[4]);
	req.domain = argv[3];
	req.profile = argv[4];
	req.section = section;
	req.receipt = argc == 7 && argv[6][0] ? argv[6] : NULL;
	rc = plugin->desc->preflight(plugin->ctx, &req,
	                             strcmp(argv[5], "setup") == 0 ?
	                                     MAILMODE_PLAN_SETUP :
	                                     MAILMODE_PLAN_TEARDOWN, &diag);
	printf("%s retryable=%d\n", rc_name(rc), diag.retryable);
	fprintf(stderr, "%s\n%s", diag.summary, diag.detail);
	status = rc == MAILMODE_OK ? 0 : 1;
out:
	mm_plugins_unload(&set);
	mm_config_free(config);
	pthread_mutex_destroy(&output.lock);
	return status;
}
