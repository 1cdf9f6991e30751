/*
 * Gateway mode, the tenant side: what tenant.c (the inbound connector) and
 * outbound.c (outbound = yes: the outbound connector and its rule) share.
 * One tenant connection per call, through lib/ms.
 */
#ifndef GW_TENANT_H
#define GW_TENANT_H

#include "gateway.h"

#include "ms/ms.h"

#include <cjson/cJSON.h>

#define GW_MANAGED_MARKER "managed by mailmode"

struct gw_tenant {
	struct gw_call *call;
	const struct mailmode_host *host;
	char *certificate_file, *ca_file;   /* host->config_path'ed, or NULL */
	struct ms_app app;
	struct ms_session session;
	struct ms_exo exo;
};

int gw_tenant_open(struct gw_call *call, struct gw_tenant *t);
void gw_tenant_close(struct gw_tenant *t);

/* Get-<noun> -Identity name: *obj the object, NULL when the tenant has
 * none (free with cJSON_Delete). */
int gw_tenant_get(struct gw_tenant *t, const char *cmdlet, const char *name, cJSON **obj);

/* The checkpoint before a write (the receipt intent, with "write":
 * {"object": object, "doing": doing}), then the write. */
int gw_tenant_write(struct gw_tenant *t, struct gw_receipt *intent, const char *object,
                    const char *doing, const char *cmdlet, const cJSON *params,
                    struct ms_exo_error *err);

/* field (Comment, Comments) carries mailmode's marker. */
bool gw_tenant_ours(const cJSON *obj, const char *field);
/* One line: OBJECT of tenant [T] is not mailmode's: refused. */
int gw_tenant_not_ours(struct gw_call *call, const char *object);

/* The list field holds exactly the wanted values (any order, any case;
 * "smtp:*;1" read as "*"). */
bool gw_tenant_list_is(const cJSON *obj, const char *key, const char *const *want, size_t n);
/* key: [items...]. */
bool gw_tenant_add_list(cJSON *obj, const char *key, const char *const *items, size_t n);

/* One tenant-side action of the plan: its line, and the cmdlet with the
 * parameters setup or teardown sends (params consumed; cmdlet NULL for a
 * line that is no change). */
MAILMODE_PRINTF(7, 8)
int gw_tenant_plan_cmdlet(cJSON *actions, const char *change, const char *object,
                          const char *name, const char *cmdlet, cJSON *params,
                          const char *fmt, ...);

/* ---- outbound.c (doc/gateway-tenant.md, "Outgoing mail") --------------- */

/* Setup: the outbound connector to the service's smart hosts, then the
 * rule that routes the domain's outgoing mail through it (outbound =
 * yes); both removed when outbound is off but the receipt had them. */
int gw_outbound_setup(struct gw_tenant *t, struct gw_receipt *receipt);
/* Verify/observe: *present (any of the two there) and why, "" when both
 * are as wanted. */
int gw_outbound_check(struct gw_tenant *t, bool *present, char *why, size_t len);
/* Preflight: an object of either name that is not mailmode's is refused. */
int gw_outbound_preflight(struct gw_tenant *t);
/* Teardown: the rule, then the connector. */
int gw_outbound_remove(struct gw_tenant *t, struct gw_receipt *intent);
/* Plan: its actions, appended to actions. */
int gw_outbound_plan(struct gw_tenant *t, enum mailmode_plan_op which, cJSON *actions);

#endif /* GW_TENANT_H */
