/*
 * mailflow mode: the domain's mail is routed through the security service
 * by Microsoft 365 itself: an outbound connector to the service, an
 * inbound connector for its return traffic (both per tenant and service,
 * shared by the tenant's domains) and one transport rule per domain at
 * priority 0.  MX records are not touched.
 *
 * setup and plan share one code path (reconcile), so a dry run lists
 * exactly the cmdlets setup would run; teardown and its plan likewise.
 */
#include "mailflow.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* How long setup waits for a new connector to be usable by the rule, when
 * the profile sets no retry budget. */
#define DEFAULT_VISIBILITY_WAIT_MS 120000
/* How old a read of the accepted domains setup and teardown still take
 * (read_accepted). */
#define ACCEPTED_FRESH_MS MF_WORLD_CACHE_MS
#define NOT_VISIBLE_HINT "new Exchange objects can take up to 30 minutes to become visible"

/* One operation on one domain: the profile, the locked tenant and what was
 * read from it. */
struct op {
	struct mf_ctx *ctx;
	const struct mailmode_host *host;
	const struct mailmode_request *req;
	struct mf_profile *profile;
	struct mf_tenant *tenant;
	struct ms_exo exo;
	struct ms_exo_error err;     /* of the last failed cmdlet */
	char rule_name[MF_NAME_MAX];
	/* setup: a rule another domain made, not listed yet ("" none): it is
	 * waited for, not made again */
	char unlisted_rule[MF_NAME_MAX];
	/* Names to act on: from the receipt when it has them (the objects
	 * setup made, even if the profile changed since), else derived. */
	char outbound_name[MF_NAME_MAX];
	char inbound_name[MF_NAME_MAX];
	int64_t set_up_at_ms;        /* from the receipt; 0: unknown */
	/* teardown: the receipt handed in (an object even when none was),
	 * kept up to date and checkpointed before each removal */
	cJSON *receipt;
	int checkpoints;             /* host->checkpoint calls made */
	/* plan, preflight, observe: nothing is written on what this
	 * operation reads, so the tenant's cached reads will do */
	int read_only;
	cJSON *accepted;             /* Get-AcceptedDomain, when read */
	cJSON *rules;                /* Get-TransportRule */
	cJSON *outbound;             /* Get-OutboundConnector */
	cJSON *inbound;              /* Get-InboundConnector */
	struct ms_buf warnings;      /* ours, one per line */
	/* setup, teardown with a host that keeps shared notes (ABI 1.6):
	 * the tenant's note of shared rule writes not visible yet (notes.c),
	 * loaded with the first read of the rules; NULL: none kept, each
	 * write is read back and waited for */
	int keep_notes;
	cJSON *notes;
};

/* ------------------------------------------------------------------ */
/* Operation scaffolding */

static void copy_name(char dst[MF_NAME_MAX], const char *src)
{
	snprintf(dst, MF_NAME_MAX, "%s", src);
}

/* Takes object names from the receipt, when it has them. */
static void names_from_receipt(struct op *op)
{
	cJSON *receipt;
	const char *name;

	if (!op->req->receipt)
		return;
	receipt = cJSON_Parse(op->req->receipt);
	name = ms_field_str(cJSON_GetObjectItem(receipt, "rule"), "name");
	if (name && strlen(name) < MF_NAME_MAX)
		copy_name(op->rule_name, name);
	name = ms_field_str(cJSON_GetObjectItem(receipt, "outbound_connector"), "name");
	if (name && strlen(name) < MF_NAME_MAX)
		copy_name(op->outbound_name, name);
	name = ms_field_str(cJSON_GetObjectItem(receipt, "inbound_connector"), "name");
	if (name && strlen(name) < MF_NAME_MAX)
		copy_name(op->inbound_name, name);
	op->set_up_at_ms = (int64_t)ms_field_long(receipt, "set_up_at_ms", 0);
	if (cJSON_IsObject(receipt)) {
		op->receipt = receipt;
		receipt = NULL;
	}
	cJSON_Delete(receipt);
}

static int op_begin(struct mf_ctx *ctx, const struct mailmode_request *req,
                    int use_receipt, struct op *op, struct mailmode_diag *diag)
{
	int rc;

	memset(op, 0, sizeof(*op));
	op->ctx = ctx;
	op->host = ctx->host;
	op->req = req;
	rc = mf_profile_load(ctx->host, ctx->mode_section, req->section,
	                     &op->profile, diag);
	if (rc != MAILMODE_OK)
		return rc;
	mf_rule_name(op->profile, req->domain, op->rule_name);
	copy_name(op->outbound_name, op->profile->outbound_name);
	copy_name(op->inbound_name, op->profile->inbound_name);
	if (use_receipt)
		names_from_receipt(op);
	if (!op->receipt && !(op->receipt = cJSON_CreateObject())) {
		ctx->host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory");
		return MAILMODE_ERR_NOMEM;
	}
	rc = mf_tenant_acquire(ctx, op->profile, &op->tenant, diag);
	if (rc != MAILMODE_OK)
		return rc;
	op->exo = (struct ms_exo){ .host = ctx->host, .app = &op->profile->app,
	                           .api_url = op->profile->api_url,
	                           .session = &op->tenant->session };
	return MAILMODE_OK;
}

static void op_end(struct op *op)
{
	if (op->exo.calls)
		op->host->log(op->host->handle, MAILMODE_LOG_DEBUG,
		              "%d admin API request(s) for %s",
		              op->exo.calls, op->req->domain);
	mf_tenant_release(op->tenant);
	mf_profile_free(op->profile);
	cJSON_Delete(op->accepted);
	cJSON_Delete(op->rules);
	cJSON_Delete(op->outbound);
	cJSON_Delete(op->inbound);
	cJSON_Delete(op->receipt);
	cJSON_Delete(op->notes);
	ms_buf_free(&op->exo.warnings);
	ms_buf_free(&op->warnings);
}

static void warn(struct op *op, const char *fmt, ...) MAILMODE_PRINTF(2, 3);
static void warn(struct op *op, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	op->host->log(op->host->handle, MAILMODE_LOG_WARNING, "%s", line);
	ms_buf_addf(&op->warnings, "%s\n", line);
}

/* Appends each line of text to the diagnostic's detail. */
static void diag_lines(const struct mailmode_host *host,
                       struct mailmode_diag *diag, const char *prefix,
                       const char *text)
{
	while (text && *text) {
		size_t len = strcspn(text, "\n");

		if (len)
			host->diag_append(diag, "%s%.*s", prefix, (int)len, text);
		text += len;
		if (*text)
			text++;
	}
}

static int64_t wall_ms(const struct op *op)
{
	return op->host->clock_wall_ms(op->host->handle);
}

/* Runs one cmdlet; a dormant tenant gets one clear message whichever
 * cmdlet met it. */
static int invoke(struct op *op, const char *cmdlet, const cJSON *params,
                  cJSON **value, struct mailmode_diag *diag)
{
	cJSON *ignored = NULL;
	int rc = ms_exo_invoke(&op->exo, cmdlet, params, value ? value : &ignored,
	                       &op->err, diag);

	cJSON_Delete(ignored);
	/* Any write, even one that failed or whose answer was lost, may have
	 * changed the tenant: what was cached is no longer what is there. */
	if (strncmp(cmdlet, "Get-", 4) != 0)
		op->tenant->world_read_ms = 0;
	if (rc != MAILMODE_OK && ms_exo_error_dehydrated(&op->err)) {
		op->host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		                   "tenant %s is dormant (dehydrated): %s refused until organization customization is enabled",
		                   op->profile->tenant, cmdlet);
		op->host->diag_append(diag, "run Enable-OrganizationCustomization once in Exchange Online PowerShell, then retry; Microsoft can take up to an hour to apply it");
		op->host->diag_append(diag, "Exchange said: %s", op->err.text);
		rc = MAILMODE_ERR_FAILED;
	}
	return rc;
}

/* Get-* of a whole collection; outbound connectors with test-mode ones
 * included (hidden otherwise, and a hidden one of ours would be
 * duplicated). */
static int read_collection(struct op *op, const char *cmdlet, int with_test_mode,
                           cJSON **out, struct mailmode_diag *diag)
{
	cJSON *params = NULL;
	int rc;

	if (with_test_mode) {
		params = cJSON_CreateObject();
		if (!params || !cJSON_AddBoolToObject(params, "IncludeTestModeConnectors", 1)) {
			cJSON_Delete(params);
			op->host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory");
			return MAILMODE_ERR_NOMEM;
		}
	}
	rc = invoke(op, cmdlet, params, out, diag);
	cJSON_Delete(params);
	return rc;
}

static int world_copy(struct op *op, struct mailmode_diag *diag)
{
	const struct mf_tenant *t = op->tenant;

	op->rules = cJSON_Duplicate(t->rules, 1);
	op->outbound = cJSON_Duplicate(t->outbound, 1);
	op->inbound = cJSON_Duplicate(t->inbound, 1);
	if (op->rules && op->outbound && op->inbound)
		return MAILMODE_OK;
	op->host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory");
	return MAILMODE_ERR_NOMEM;
}

/* Keeps what was just read for the tenant's next read-only operations. */
static void world_keep(struct op *op)
{
	struct mf_tenant *t = op->tenant;

	cJSON_Delete(t->rules);
	cJSON_Delete(t->outbound);
	cJSON_Delete(t->inbound);
	t->rules = cJSON_Duplicate(op->rules, 1);
	t->outbound = cJSON_Duplicate(op->outbound, 1);
	t->inbound = cJSON_Duplicate(op->inbound, 1);
	t->world_read_ms = t->rules && t->outbound && t->inbound ? wall_ms(op) : 0;
}

static int apply_notes(struct op *op, struct mailmode_diag *diag);

/* Reads the tenant's transport rules and connectors.  use_cache: what
 * the tenant entry holds will do, when it is younger than
 * MF_WORLD_CACHE_MS and no write of ours came since (invoke drops it).
 * Only read-only operations pass it (observe, plan, preflight): nothing
 * is written on what they read.  setup, teardown and verify read afresh
 * while holding the tenant lock, so every write decision rests on a read
 * made under the same lock hold (and verify is the read-back). */
static int read_world(struct op *op, int use_cache, struct mailmode_diag *diag)
{
	const struct mf_tenant *t = op->tenant;
	int rc;

	cJSON_Delete(op->rules);
	cJSON_Delete(op->outbound);
	cJSON_Delete(op->inbound);
	op->rules = op->outbound = op->inbound = NULL;
	if (use_cache && t->world_read_ms && wall_ms(op) - t->world_read_ms < MF_WORLD_CACHE_MS)
		return world_copy(op, diag);
	op->host->progress(op->host->handle, "reading rules and connectors of tenant %s",
	                   op->profile->tenant);
	rc = read_collection(op, "Get-TransportRule", 0, &op->rules, diag);
	if (rc == MAILMODE_OK)
		rc = read_collection(op, "Get-OutboundConnector", 1, &op->outbound, diag);
	if (rc == MAILMODE_OK)
		rc = read_collection(op, "Get-InboundConnector", 0, &op->inbound, diag);
	if (rc == MAILMODE_OK)
		world_keep(op);
	if (rc == MAILMODE_OK)
		rc = apply_notes(op, diag);
	return rc;
}

static cJSON *identity_params(const char *identity, int confirm_false)
{
	cJSON *p = cJSON_CreateObject();

	if (!p || !cJSON_AddStringToObject(p, "Identity", identity) ||
	    (confirm_false && !cJSON_AddBoolToObject(p, "Confirm", 0))) {
		cJSON_Delete(p);
		return NULL;
	}
	return p;
}

/* ------------------------------------------------------------------ */
/* Checks before setup */

static int ends_with(const char *s, const char *suffix)
{
	size_t ls = strlen(s), lx = strlen(suffix);

	return ls >= lx && strcasecmp(s + ls - lx, suffix) == 0;
}

/* The tenant's accepted domains into op->accepted: the tenant's copy when
 * read within max_age_ms.  Read-only operations take TENANT_FACTS_MS;
 * setup and teardown, whose subdomain exceptions are written from it,
 * ACCEPTED_FRESH_MS: the read of the same command's preflight, or of a
 * runbook's previous domain a moment ago.  Reading again right before the
 * write would not close the gap: mailmode does not write accepted domains,
 * and one added a second after any read is missed all the same (setup or
 * verify of a domain brings its rule's exceptions up to date). */
static int read_accepted(struct op *op, int64_t max_age_ms, struct mailmode_diag *diag)
{
	struct mf_tenant *t = op->tenant;
	int64_t now = wall_ms(op);
	int rc = MAILMODE_OK;

	cJSON_Delete(op->accepted);
	op->accepted = NULL;
	if (t->accepted && now - t->accepted_read_ms < max_age_ms)
		op->accepted = cJSON_Duplicate(t->accepted, 1);
	else if ((rc = invoke(op, "Get-AcceptedDomain", NULL, &op->accepted, diag)) == MAILMODE_OK) {
		cJSON_Delete(t->accepted);
		t->accepted = cJSON_Duplicate(op->accepted, 1);
		t->accepted_read_ms = now;
	}
	if (rc == MAILMODE_OK && !op->accepted) {
		op->host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory");
		rc = MAILMODE_ERR_NOMEM;
	}
	return rc;
}

static int check_accepted_domain(struct op *op, struct mailmode_diag *diag)
{
	const struct mailmode_host *host = op->host;
	const char *domain = op->req->domain;
	const cJSON *accepted, *item;
	struct ms_buf names = { 0 }, fallback = { 0 };
	int found = 0, rc;

	rc = read_accepted(op, op->read_only ? TENANT_FACTS_MS : ACCEPTED_FRESH_MS, diag);
	if (rc != MAILMODE_OK)
		goto out;
	accepted = op->accepted;
	cJSON_ArrayForEach(item, accepted) {
		const char *name = ms_field_str(item, "DomainName");

		if (!name)
			name = ms_field_str(item, "Name");
		if (!name)
			continue;
		ms_buf_addf(&names, "%s%s", names.len ? ", " : "", name);
		if (ms_strcaseeq(name, domain))
			found = 1;
		if (ends_with(name, ".onmicrosoft.com") &&
		    !ends_with(name, ".mail.onmicrosoft.com"))
			ms_buf_addf(&fallback, "%s%s", fallback.len ? ", " : "", name);
	}
	if (names.failed || fallback.failed) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory");
		rc = MAILMODE_ERR_NOMEM;
		goto out;
	}
	if (!found) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "%s is not an accepted domain of tenant %s (accepted: %s)",
		               domain, op->profile->tenant,
		               names.len ? names.data : "none");
		host->diag_append(diag, "add and verify the domain in the Microsoft 365 admin center, or use the profile of the tenant that owns it");
		rc = MAILMODE_ERR_CONFIG;
		goto out;
	}
	if (fallback.len)
		warn(op, "mail to the tenant's Microsoft domain (%s) is not covered: it reaches mailboxes without passing %s",
		     fallback.data, op->profile->service);
	rc = MAILMODE_OK;
out:
	ms_buf_free(&names);
	ms_buf_free(&fallback);
	return rc;
}

/* Dormant tenants refuse New-*Connector and New-TransportRule; say so
 * before anything is attempted. */
static int check_organization(struct op *op, struct mailmode_diag *diag)
{
	int64_t now = op->host->clock_wall_ms(op->host->handle);
	cJSON *config = NULL;
	int rc;

	if (op->tenant->organization_checked_ms &&
	    now - op->tenant->organization_checked_ms < TENANT_FACTS_MS)
		return MAILMODE_OK;
	rc = invoke(op, "Get-OrganizationConfig", NULL, &config, diag);
	if (rc != MAILMODE_OK)
		goto out;
	if (ms_field_bool(cJSON_GetArrayItem(config, 0), "IsDehydrated") == 1) {
		op->host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		                   "tenant %s is dormant (dehydrated): connectors and transport rules cannot be created yet",
		                   op->profile->tenant);
		op->host->diag_append(diag, "run Enable-OrganizationCustomization once in Exchange Online PowerShell, then retry; Microsoft can take up to an hour to apply it");
		rc = MAILMODE_ERR_FAILED;
	} else {
		op->tenant->organization_checked_ms = now;
	}
out:
	cJSON_Delete(config);
	return rc;
}

/* The names the admin accepts as conflicts (ABI 1.3), or NULL. */
static const char *const *accepted_conflicts(const struct mailmode_request *req)
{
	if (req->struct_size < offsetof(struct mailmode_request, accepted_conflicts) +
	                       sizeof(req->accepted_conflicts))
		return NULL;
	return req->accepted_conflicts;
}

static void warn_lines(struct op *op, const char *prefix, const char *lines)
{
	while (lines && *lines) {
		size_t len = strcspn(lines, "\n");
		char *one = ms_printf("%s%.*s", prefix, (int)len, lines);

		if (one)
			warn(op, "%s", one);
		free(one);
		lines += len;
		if (*lines)
			lines++;
	}
}

static int check_rule_room(struct op *op, struct mailmode_diag *diag);

/* ABI 1.6: the setup deferred before (MAILMODE_REQ_DEFERRABLE) and is
 * called again. */
static int setup_deferred(const struct op *op)
{
	const struct mailmode_request *req = op->req;

	return req->struct_size > offsetof(struct mailmode_request, deferred_since_ms) &&
	       req->deferred_since_ms != 0;
}

static int preflight(struct op *op, struct mailmode_diag *diag)
{
	const struct mailmode_host *host = op->host;
	struct ms_buf refused = { 0 }, accepted = { 0 }, notes = { 0 };
	struct mf_conflicts conflicts = { accepted_conflicts(op->req), &refused, &accepted,
	                                  &notes };
	int n, rc;

	if (ends_with(op->req->domain, ".onmicrosoft.com")) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "%s is a Microsoft-managed domain: mailflow mode covers the tenant's own accepted domains only",
		               op->req->domain);
		return MAILMODE_ERR_CONFIG;
	}
	host->progress(host->handle, "checking tenant %s", op->profile->tenant);
	rc = check_organization(op, diag);
	if (rc == MAILMODE_OK)
		rc = check_accepted_domain(op, diag);
	if (rc == MAILMODE_OK)
		rc = read_world(op, op->read_only, diag);
	if (rc != MAILMODE_OK)
		goto out;
	n = mf_find_conflicts(op->profile, op->req->domain, op->rules, op->outbound,
	                      op->inbound, &conflicts);
	if (refused.failed || accepted.failed || notes.failed) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory");
		rc = MAILMODE_ERR_NOMEM;
		goto out;
	}
	if (n > 0) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "%d existing object(s) of tenant %s conflict with mailflow mode for %s",
		               n, op->profile->tenant, op->req->domain);
		diag_lines(host, diag, "", refused.data);
		host->diag_append(diag, "resolve them (disable, remove or scope them away from %s), or accept each by name with --accept-conflict NAME to put this domain's rule above it",
		                  op->req->domain);
		rc = MAILMODE_ERR_CONFLICT;
		goto out;
	}
	warn_lines(op, "accepted conflict: ", accepted.data);
	warn_lines(op, "", notes.data);
	rc = check_rule_room(op, diag);
out:
	ms_buf_free(&refused);
	ms_buf_free(&accepted);
	ms_buf_free(&notes);
	return rc;
}

/* ------------------------------------------------------------------ */
/* setup / plan(setup) */

/* Adds or replaces the receipt entry of one object.  action: what setup
 * did to it ("created", "reused", "updated"); state: where it stands
 * ("creating", "created", "updating", "updated", "reused", "removing",
 * and for the rule "waiting": to be made with the domain in it by another
 * domain's setup, notes.c), decided at state_at_ms.  "creating" in a
 * stored receipt means the answer never came: the object may exist, or
 * appear later. */
static int receipt_put(cJSON *receipt, const char *key, const char *name,
                       const char *guid, const char *action, const char *state,
                       int64_t at_ms)
{
	cJSON *entry = cJSON_CreateObject();

	if (!entry || !cJSON_AddStringToObject(entry, "name", name) ||
	    !(guid ? cJSON_AddStringToObject(entry, "guid", guid)
	           : cJSON_AddNullToObject(entry, "guid")) ||
	    !cJSON_AddStringToObject(entry, "action", action) ||
	    !cJSON_AddStringToObject(entry, "state", state) ||
	    !cJSON_AddNumberToObject(entry, "state_at_ms", (double)at_ms)) {
		cJSON_Delete(entry);
		return -1;
	}
	if (cJSON_GetObjectItemCaseSensitive(receipt, key))
		return cJSON_ReplaceItemInObjectCaseSensitive(receipt, key, entry) ? 0 : -1;
	if (!cJSON_AddItemToObject(receipt, key, entry)) {
		cJSON_Delete(entry);
		return -1;
	}
	return 0;
}

static int receipt_add(cJSON *receipt, const char *key, const char *name,
                       const cJSON *object, const char *action, int64_t at_ms)
{
	return receipt_put(receipt, key, name, object ? ms_field_str(object, "Guid") : NULL,
	                   action, action, at_ms);
}

/* Moves an object's entry to another state. */
static int receipt_mark(cJSON *receipt, const char *key, const char *state, int64_t at_ms)
{
	cJSON *entry = cJSON_GetObjectItemCaseSensitive(receipt, key);
	cJSON *value = cJSON_CreateString(state);
	cJSON *at = cJSON_CreateNumber((double)at_ms);

	if (!entry || !value || !at) {
		cJSON_Delete(value);
		cJSON_Delete(at);
		return -1;
	}
	cJSON_DeleteItemFromObjectCaseSensitive(entry, "state");
	cJSON_DeleteItemFromObjectCaseSensitive(entry, "state_at_ms");
	cJSON_AddItemToObject(entry, "state", value);
	cJSON_AddItemToObject(entry, "state_at_ms", at);
	return 0;
}

/* ABI 1.2: stores the receipt as it will be if the next write lands,
 * before that write is sent; nothing is sent when it fails.  A host
 * without the service (ABI < 1.2) stores nothing: the plugin then works
 * as before, without the record. */
static int checkpoint(struct op *op, const cJSON *receipt, struct mailmode_diag *diag)
{
	const struct mailmode_host *host = op->host;
	char *text;
	int rc;

	if (host->struct_size < offsetof(struct mailmode_host, checkpoint) +
	                        sizeof(host->checkpoint) || !host->checkpoint)
		return MAILMODE_OK;
	text = cJSON_PrintUnformatted(receipt);
	if (!text) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory");
		return MAILMODE_ERR_NOMEM;
	}
	rc = host->checkpoint(host->handle, op->req, text, diag);
	free(text);
	if (rc == MAILMODE_OK)
		op->checkpoints++;
	return rc;
}

/* The Set-* parameters: the New-* ones less what Set-* does not take. */
static cJSON *set_params(const cJSON *new_params, const char *identity,
                         int is_rule, int keep_priority)
{
	cJSON *p = cJSON_Duplicate(new_params, 1);

	if (!p)
		return NULL;
	cJSON_DeleteItemFromObjectCaseSensitive(p, "Name");
	/* Set-TransportRule has no Enabled (Enable-TransportRule does it);
	 * the connectors' Set-* have. */
	if (is_rule)
		cJSON_DeleteItemFromObjectCaseSensitive(p, "Enabled");
	if (is_rule && mf_rule_unset_retired(p) != 0) {
		cJSON_Delete(p);
		return NULL;
	}
	if (!keep_priority)
		cJSON_DeleteItemFromObjectCaseSensitive(p, "Priority");
	if (!cJSON_AddStringToObject(p, "Identity", identity)) {
		cJSON_Delete(p);
		return NULL;
	}
	return p;
}

/* One of the three kinds of object this mode owns. */
struct object_kind {
	const char *what;            /* "outbound connector" */
	const char *receipt_key;
	const char *new_cmdlet, *set_cmdlet, *remove_cmdlet;
	const char *comment_field;   /* where our marker lives */
	int is_rule;
	int shared;                  /* serves many domains of the tenant */
};

/* The plan's line for an object that differs: its mismatches, then the
 * Set-* cmdlet. */
static void plan_update(struct mf_plan *plan, const struct object_kind *kind,
                        const char *name, const char *mismatches, const cJSON *params)
{
	struct ms_buf why = { 0 };
	const char *m = mismatches;

	while (*m) {
		size_t len = strcspn(m, "\n");

		ms_buf_addf(&why, "%.*s%s", (int)len, m, m[len] && m[len + 1] ? "; " : "");
		m += len;
		if (*m)
			m++;
	}
	plan->failed |= why.failed;
	mf_plan_note(plan, "note", kind->what, name, kind->shared,
	             "%s '%s' exists but differs: %s", kind->what, name, why.data ? why.data : "");
	mf_plan_cmdlet(plan, "update", kind->what, name, kind->shared, kind->set_cmdlet, params);
	ms_buf_free(&why);
}

/* Brings an existing object of ours to the profile (Set-*). */
static int update_object(struct op *op, const struct object_kind *kind,
                         const char *name, const cJSON *existing,
                         const cJSON *new_params, const char *mismatches,
                         int keep_priority, int apply, struct mf_plan *plan,
                         cJSON *receipt, struct mailmode_diag *diag)
{
	const char *guid = ms_field_str(existing, "Guid");
	cJSON *params = set_params(new_params, name, kind->is_rule, keep_priority);
	int rc;

	if (!params)
		goto nomem;
	if (!apply) {
		plan_update(plan, kind, name, mismatches, params);
		rc = receipt_add(receipt, kind->receipt_key, name, existing, "updated", 0) == 0
		   ? MAILMODE_OK : MAILMODE_ERR_NOMEM;
		goto out;
	}
	if (receipt_put(receipt, kind->receipt_key, name, guid, "updated", "updating",
	                wall_ms(op)) != 0)
		goto nomem;
	op->host->progress(op->host->handle, "updating %s '%s'", kind->what, name);
	rc = checkpoint(op, receipt, diag);
	if (rc == MAILMODE_OK)
		rc = invoke(op, kind->set_cmdlet, params, NULL, diag);
	if (rc == MAILMODE_OK &&
	    receipt_put(receipt, kind->receipt_key, name, guid, "updated", "updated",
	                wall_ms(op)) != 0)
		goto nomem;
	goto out;
nomem:
	op->host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory");
	rc = MAILMODE_ERR_NOMEM;
out:
	cJSON_Delete(params);
	return rc;
}

/* The object's entry in the receipt of this setup's earlier attempt
 * (req->receipt: its last checkpoint, parsed into *earlier for the
 * caller to free), or NULL when that names no such object. */
static const cJSON *earlier_entry(struct op *op, const struct object_kind *kind,
                                  const char *name, cJSON **earlier)
{
	const cJSON *entry;
	const char *was;

	*earlier = op->req->receipt ? cJSON_Parse(op->req->receipt) : NULL;
	entry = cJSON_GetObjectItemCaseSensitive(*earlier, kind->receipt_key);
	was = ms_field_str(entry, "name");
	return was && ms_strcaseeq(was, name) ? entry : NULL;
}

/* 1 when the receipt handed in (the last checkpoint of an earlier attempt
 * for this domain) says this object was being created: an "already
 * exists" is then that attempt's work.  Connectors are per tenant and
 * service, so any same-named one is the same object. */
static int earlier_attempt_made(struct op *op, const struct object_kind *kind,
                                const char *name)
{
	cJSON *earlier = NULL;
	const char *state = ms_field_str(earlier_entry(op, kind, name, &earlier), "state");
	int made = state && (ms_strcaseeq(state, "creating") || ms_strcaseeq(state, "created"));

	cJSON_Delete(earlier);
	return made;
}

/* The object is not listed, but the attempt of this setup before it
 * deferred (ABI 1.6) made it (answered) within the visibility window: it
 * is not visible yet, and sending New-* again would only be refused.  Its
 * entry is kept.  Only then: a receipt of an earlier setup (set up again
 * to repair objects removed by hand) does not say the object is there. */
static int made_moments_ago(struct op *op, const struct object_kind *kind, const char *name,
                            cJSON *receipt)
{
	cJSON *earlier = NULL;
	const cJSON *entry = earlier_entry(op, kind, name, &earlier);
	const char *state = ms_field_str(entry, "state"), *action = ms_field_str(entry, "action");
	int64_t at = (int64_t)ms_field_long(entry, "state_at_ms", 0);
	int rc = 0;

	if (setup_deferred(op) && state && action && ms_strcaseeq(state, "created") &&
	    ms_strcaseeq(action, "created") && wall_ms(op) - at < op->profile->visibility_window_ms) {
		rc = receipt_put(receipt, kind->receipt_key, name, ms_field_str(entry, "guid"),
		                 "created", "created", at) != 0 ? -1 : 1;
		if (rc > 0)
			op->host->log(op->host->handle, MAILMODE_LOG_INFO,
			              "%s '%s' made by an earlier attempt is not listed yet", kind->what,
			              name);
	}
	cJSON_Delete(earlier);
	return rc;
}

/* Creates the object (New-*).  The receipt says "creating" before the
 * cmdlet is sent; an answer that never came leaves it so (the object may
 * exist, or appear later); a refusal removes the entry. */
static int create_object(struct op *op, const struct object_kind *kind,
                         const char *name, const cJSON *new_params,
                         cJSON *receipt, struct mailmode_diag *diag)
{
	const struct mailmode_host *host = op->host;
	cJSON *made = NULL;
	int rc = made_moments_ago(op, kind, name, receipt);

	if (rc < 0)
		goto nomem;
	if (rc > 0)
		return MAILMODE_OK;
	if (receipt_put(receipt, kind->receipt_key, name, NULL, "created", "creating",
	                wall_ms(op)) != 0)
		goto nomem;
	host->progress(host->handle, "creating %s '%s'", kind->what, name);
	rc = checkpoint(op, receipt, diag);
	if (rc != MAILMODE_OK)
		goto out;
	rc = invoke(op, kind->new_cmdlet, new_params, &made, diag);
	if (rc != MAILMODE_OK && ms_exo_error_exists(&op->err) && kind->is_rule &&
	    !earlier_attempt_made(op, kind, name)) {
		/* A shared rule not listed yet that this domain's attempts did
		 * not make: another domain's setup made it moments ago (in this
		 * process or another), for its own list.  Calling it ours would
		 * leave this domain out of it; it is not ready yet: the caller
		 * waits for it to be listed, then joins it. */
		host->diag_set(diag, MAILMODE_SEV_ERROR, 1,
		               "transport rule '%s' already exists in tenant %s but is not listed yet: another domain's setup made it moments ago, and %s joins it once it is listed",
		               name, op->profile->tenant, op->req->domain);
		host->diag_append(diag, "run setup again later, it resumes (%s)", NOT_VISIBLE_HINT);
		copy_name(op->unlisted_rule, name);
		cJSON_DeleteItemFromObjectCaseSensitive(receipt, kind->receipt_key);
		/* The stored receipt must not say this domain was making it. */
		rc = checkpoint(op, receipt, diag);
		if (rc == MAILMODE_OK)
			rc = MAILMODE_ERR_NOT_READY;
		goto out;
	} else if (rc != MAILMODE_OK && ms_exo_error_exists(&op->err)) {
		/* Made by an earlier attempt whose answer was lost (or this
		 * request, resent), and not listed yet: it was created. */
		host->log(host->handle, MAILMODE_LOG_INFO,
		          "%s '%s' already exists but is not listed yet: an earlier attempt made it",
		          kind->what, name);
		host->diag_set(diag, MAILMODE_SEV_NONE, 0, "%s", "");
		rc = MAILMODE_OK;
	}
	if (rc == MAILMODE_ERR_UNKNOWN)
		goto out;
	if (rc != MAILMODE_OK) {
		cJSON_DeleteItemFromObjectCaseSensitive(receipt, kind->receipt_key);
		goto out;
	}
	if (receipt_put(receipt, kind->receipt_key, name,
	                ms_field_str(cJSON_GetArrayItem(made, 0), "Guid"), "created",
	                "created", wall_ms(op)) != 0)
		goto nomem;
	host->log(host->handle, MAILMODE_LOG_INFO, "created %s '%s' in tenant %s",
	          kind->what, name, op->profile->tenant);
	goto out;
nomem:
	host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory");
	rc = MAILMODE_ERR_NOMEM;
out:
	cJSON_Delete(made);
	return rc;
}

/* Creates the object, or brings an existing one of ours to the profile.
 * apply == 0: writes the cmdlets to plan instead. */
static int reconcile_one(struct op *op, const struct object_kind *kind,
                         const char *name, const cJSON *existing,
                         cJSON *new_params, const char *mismatches,
                         int keep_priority, int apply, struct mf_plan *plan,
                         cJSON *receipt, struct mailmode_diag *diag)
{
	const struct mailmode_host *host = op->host;
	const char *comment;

	if (!existing) {
		if (apply)
			return create_object(op, kind, name, new_params, receipt, diag);
		mf_plan_cmdlet(plan, "create", kind->what, name, kind->shared, kind->new_cmdlet,
		               new_params);
		if (receipt_add(receipt, kind->receipt_key, name, NULL, "created", 0) != 0)
			goto nomem;
		return MAILMODE_OK;
	}
	comment = ms_field_str(existing, kind->comment_field);
	if (!comment || !strstr(comment, op->profile->managed_marker)) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "%s '%s' exists in tenant %s but was not made by mailmode (no '%s' in %s)",
		               kind->what, name, op->profile->tenant,
		               op->profile->managed_marker, kind->comment_field);
		host->diag_append(diag, "rename or remove it, or set another name_prefix for service %s",
		                  op->profile->service);
		return MAILMODE_ERR_CONFLICT;
	}
	if (mismatches && *mismatches)
		return update_object(op, kind, name, existing, new_params, mismatches,
		                     keep_priority, apply, plan, receipt, diag);
	if (!apply)
		mf_plan_note(plan, "reuse", kind->what, name, kind->shared,
		             "%s '%s' exists and matches the profile: reused", kind->what, name);
	if (receipt_add(receipt, kind->receipt_key, name, existing, "reused",
	                apply ? wall_ms(op) : 0) != 0)
		goto nomem;
	return MAILMODE_OK;
nomem:
	host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory");
	return MAILMODE_ERR_NOMEM;
}

static const struct object_kind inbound_kind = {
	"inbound connector", "inbound_connector", "New-InboundConnector",
	"Set-InboundConnector", "Remove-InboundConnector", "Comment", 0, 1
};
static const struct object_kind outbound_kind = {
	"outbound connector", "outbound_connector", "New-OutboundConnector",
	"Set-OutboundConnector", "Remove-OutboundConnector", "Comment", 0, 1
};
static const struct object_kind rule_kind = {
	"transport rule", "rule", "New-TransportRule", "Set-TransportRule",
	"Remove-TransportRule", "Comments", 1, 1
};

/* The shared rule a domain's setup brings to the profile: the one that
 * lists it, or the first with room for it, or a new one. */
struct rule_choice {
	char name[MF_NAME_MAX];
	const cJSON *existing;       /* NULL: a new rule */
	const char **members;        /* RecipientDomainIs after setup */
	const char **excepted;       /* its subdomain exceptions */
	struct mf_rule_want want;
};

static void choice_free(struct rule_choice *c)
{
	free(c->members);
	free(c->excepted);
	c->members = c->excepted = NULL;
}

/* Fills c for the members: exceptions from the accepted domains.  1 when
 * the rule is possible: no exception hides a member, and the estimate of
 * its size stays within the budget; 0 when not, -1 out of memory. */
static int choice_fill(struct op *op, struct rule_choice *c, const char **members)
{
	cJSON *params;
	long size;

	choice_free(c);
	c->members = members;
	c->excepted = members ? mf_subdomain_exceptions(members, op->accepted) : NULL;
	if (!c->members || !c->excepted)
		return -1;
	c->want.name = c->name;
	c->want.domains = c->members;
	c->want.excepted = c->excepted;
	params = mf_rule_params(op->profile, &c->want, 0);
	if (!params)
		return -1;
	size = mf_rule_size(params);
	cJSON_Delete(params);
	return size <= MF_RULE_SIZE_BUDGET &&
	       !mf_exceptions_cover_member(c->members, c->excepted);
}

/* Before a new rule would cross Exchange Online's limit: refused, with
 * the count, nothing changed. */
static int check_rule_count(struct op *op, struct mailmode_diag *diag)
{
	const cJSON *rule;
	int total = cJSON_GetArraySize(op->rules), ours = 0;

	cJSON_ArrayForEach(rule, op->rules)
		ours += mf_rule_is_ours(op->profile, rule);
	if (total < MF_TENANT_RULE_LIMIT)
		return MAILMODE_OK;
	op->host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
	                   "tenant %s has %d transport rules (%d of them mailmode's): a new rule for %s would cross Exchange Online's limit of %d rules per organization",
	                   op->profile->tenant, total, ours, op->req->domain,
	                   MF_TENANT_RULE_LIMIT);
	op->host->diag_append(diag, "mailmode's rules are full (%d KB each at most); remove rules of the tenant that are no longer needed, then retry",
	                      MF_RULE_SIZE_LIMIT / 1024);
	return MAILMODE_ERR_CONFLICT;
}

static int choose_rule(struct op *op, struct rule_choice *c, struct mailmode_diag *diag)
{
	const char *domain = op->req->domain;
	const cJSON *rule;
	size_t count = 0;
	const char **have;
	int fits;

	rule = mf_shared_rule_of(op->profile, op->rules, domain, NULL);
	if (rule) {
		/* Already listed: the rule as it is, its exceptions brought up
		 * to date. */
		copy_name(c->name, ms_field_str(rule, "Name"));
		c->existing = rule;
		have = ms_field_strs(rule, "RecipientDomainIs", &count);
		fits = choice_fill(op, c, have ? mf_list_with(have, NULL, NULL) : NULL);
		free(have);
		return fits < 0 ? MAILMODE_ERR_NOMEM : MAILMODE_OK;
	}
	cJSON_ArrayForEach(rule, op->rules) {
		if (!mf_shared_rule_index(op->profile, rule))
			continue;
		have = ms_field_strs(rule, "RecipientDomainIs", &count);
		fits = choice_fill(op, c, have ? mf_list_with(have, domain, NULL) : NULL);
		free(have);
		if (fits < 0)
			return MAILMODE_ERR_NOMEM;
		if (fits) {
			copy_name(c->name, ms_field_str(rule, "Name"));
			c->existing = rule;
			return MAILMODE_OK;
		}
	}
	c->existing = NULL;
	mf_shared_rule_name(op->profile, mf_shared_rule_free_index(op->profile, op->rules),
	                    c->name);
	if (choice_fill(op, c, mf_list_with(NULL, domain, NULL)) < 0)
		return MAILMODE_ERR_NOMEM;
	return check_rule_count(op, diag);
}

/* How often a shared rule's write is made again on another writer's list
 * before setup or teardown gives up (retryable). */
#define READ_BACK_ROUNDS 3

/* Writes the domain's change again on the list another writer left:
 * Set-TransportRule with that list plus (joining) or less the domain,
 * checkpointed before.  *wrote becomes the list written (owned); 1 when
 * the other writer's list already has the change (nothing written). */
static int rewrite_rule(struct op *op, const char *name, const char *const *have,
                        int joining, const char ***wrote, cJSON *receipt,
                        struct mailmode_diag *diag)
{
	const char *domain = op->req->domain;
	struct rule_choice c = { 0 };
	cJSON *params = NULL, *set = NULL;
	int rc = MAILMODE_ERR_NOMEM;

	copy_name(c.name, name);
	if (choice_fill(op, &c, joining ? mf_list_with(have, domain, NULL)
	                                : mf_list_with(have, NULL, domain)) < 0)
		goto nomem;
	if (mf_lists_equal(c.members, have)) {
		rc = 1;
		goto out;
	}
	warn(op, "transport rule '%s' was written by another writer meanwhile: %s %s again",
	     name, joining ? "adding" : "taking out", domain);
	params = mf_rule_params(op->profile, &c.want, 0);
	set = params ? set_params(params, name, 1, 0) : NULL;
	free(*wrote);
	*wrote = mf_list_copy(c.members);
	if (!set || !*wrote ||
	    receipt_mark(receipt, rule_kind.receipt_key, joining ? "updating" : "leaving",
	                 wall_ms(op)) != 0)
		goto nomem;
	rc = checkpoint(op, receipt, diag);
	if (rc == MAILMODE_OK)
		rc = invoke(op, "Set-TransportRule", set, NULL, diag);
	if (rc == MAILMODE_OK && joining &&
	    receipt_mark(receipt, rule_kind.receipt_key, "updated", wall_ms(op)) != 0)
		goto nomem;
	goto out;
nomem:
	op->host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory");
	rc = MAILMODE_ERR_NOMEM;
out:
	cJSON_Delete(params);
	cJSON_Delete(set);
	choice_free(&c);
	return rc;
}

static long visibility_budget_ms(const struct op *op)
{
	return op->profile->retry_budget_ms > 0 ? op->profile->retry_budget_ms
	                                        : DEFAULT_VISIBILITY_WAIT_MS;
}

/* Something setup needs is not visible yet: pauses *wait_ms (doubled
 * for the next pause, up to cap_ms) before the next read.  1 when the
 * pause would cross the profile's retry budget since started: nothing
 * waited then. */
static int pause_for_visibility(struct op *op, const char *what, int64_t started,
                                int64_t *wait_ms, int64_t cap_ms)
{
	const struct mailmode_host *host = op->host;

	if (host->clock_mono_ms(host->handle) - started + *wait_ms > visibility_budget_ms(op))
		return 1;
	host->progress(host->handle, "waiting for %s", what);
	host->sleep_ms(host->handle, *wait_ms);
	*wait_ms = *wait_ms * 2 > cap_ms ? cap_ms : *wait_ms * 2;
	return 0;
}

/* A deferrable setup (ABI 1.6) not ready yet: the host calls it again
 * later, holding no slot or lock meanwhile, so the wait overlaps other
 * domains' work.  MAILMODE_ERR_FAILED (the diagnostic stands) once the
 * wait has crossed the retry budget. */
static int defer_setup(struct op *op)
{
	if (setup_deferred(op) && op->host->clock_wall_ms(op->host->handle) -
	                                  op->req->deferred_since_ms > visibility_budget_ms(op))
		return MAILMODE_ERR_FAILED;
	return MAILMODE_ERR_NOT_READY;
}

/* A write of ours not visible yet: waits (up to the profile's retry
 * budget) before the next read.  *wait_ms: the next pause. */
static int wait_for_write(struct op *op, const char *name, int64_t started,
                          int64_t *wait_ms, struct mailmode_diag *diag)
{
	const struct mailmode_host *host = op->host;
	char what[MF_NAME_MAX + 64];

	snprintf(what, sizeof(what), "transport rule '%s' to show the change", name);
	if (pause_for_visibility(op, what, started, wait_ms, 4000) == 0)
		return MAILMODE_OK;
	host->diag_set(diag, MAILMODE_SEV_ERROR, 1,
	               "transport rule '%s' of tenant %s does not show the change for %s yet: run the command again later, it resumes",
	               name, op->profile->tenant, op->req->domain);
	host->diag_append(diag, "%s", NOT_VISIBLE_HINT);
	return MAILMODE_ERR_FAILED;
}

/* ------------------------------------------------------------------ */
/* Shared rule writes not visible yet, in the tenant's note (notes.c) */

/* Set on a rule of op->rules whose list the note brought up to date: a
 * rule is judged once per read. */
#define NOTED_MARK "@mailmode.noted"   /* '@': no field to compare (objects.c) */
/* The most writes of a rule not seen yet that the note builds on. */
#define NOTE_WRITES_MAX 64

static void note_resource(const struct op *op, char *out, size_t len)
{
	/* As mf_resources names the tenant: the lock the host holds. */
	snprintf(out, len, "tenant %s", op->profile->tenant);
}

static int store_notes(struct op *op, struct mailmode_diag *diag)
{
	char resource[MF_NAME_MAX + 256];

	note_resource(op, resource, sizeof(resource));
	return mf_notes_store(op->host, op->req, resource, op->notes, diag);
}

/* A noted rule still showing what it held before writes the note knows
 * of that are older than the retry budget, or too many of them: as
 * without the note, it is read again (waited for) until it shows the
 * last one or another writer's list.  *seen: what it shows then. */
static int settle_note(struct op *op, const char *name, cJSON *entry,
                       enum mf_note_seen *seen, struct mailmode_diag *diag)
{
	int64_t started = op->host->clock_mono_ms(op->host->handle), wait_ms = 250;
	cJSON *params = identity_params(name, 0), *read = NULL;
	const char **have = NULL;
	int trimmed, rc = params ? MAILMODE_OK : MAILMODE_ERR_NOMEM;

	while (rc == MAILMODE_OK && *seen == MF_NOTE_PENDING &&
	       (rc = wait_for_write(op, name, started, &wait_ms, diag)) == MAILMODE_OK) {
		size_t count = 0;

		cJSON_Delete(read);
		free(have);
		have = NULL;
		read = NULL;
		rc = invoke(op, "Get-TransportRule", params, &read, diag);
		if (rc == MAILMODE_OK &&
		    !(have = ms_field_strs(cJSON_GetArrayItem(read, 0), "RecipientDomainIs", &count)))
			rc = MAILMODE_ERR_NOMEM;
		if (rc == MAILMODE_OK)
			*seen = mf_note_see(entry, have, &trimmed);
	}
	if (rc == MAILMODE_ERR_NOMEM)
		op->host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory");
	cJSON_Delete(params);
	cJSON_Delete(read);
	free(have);
	return rc;
}

/* One rule's entry of the note, judged on the rule as read (NULL: not
 * listed).  *changed: the entry changed (to be stored). */
static int apply_note(struct op *op, cJSON *rule, cJSON *entry, int *changed,
                      struct mailmode_diag *diag)
{
	size_t count = 0;
	const char **have = rule ? ms_field_strs(rule, "RecipientDomainIs", &count) : NULL;
	enum mf_note_seen seen = MF_NOTE_FOREIGN;
	int trimmed = 0, rc = MAILMODE_OK;

	if (rule && !have)
		goto nomem;
	if (!rule && mf_note_creation(entry) &&
	    wall_ms(op) - mf_note_oldest_ms(entry) < op->profile->visibility_window_ms)
		goto out;      /* made moments ago, not listed yet: kept */
	if (rule)
		seen = mf_note_see(entry, have, &trimmed);
	*changed |= trimmed;
	if (seen == MF_NOTE_PENDING &&
	    (wall_ms(op) - mf_note_oldest_ms(entry) > visibility_budget_ms(op) ||
	     mf_note_writes(entry) >= NOTE_WRITES_MAX))
		rc = settle_note(op, entry->string, entry, &seen, diag);
	if (rc != MAILMODE_OK)
		goto out;
	if (seen == MF_NOTE_FOREIGN && rule)
		warn(op, "transport rule '%s' shows a list no write of mailmode's made (written by hand, or by a stopped mailmode): it is written on",
		     entry->string);
	if (seen != MF_NOTE_FOREIGN &&
	    (mf_note_hold(entry, rule) != 0 || !cJSON_AddTrueToObject(rule, NOTED_MARK)))
		goto nomem;
	if (seen != MF_NOTE_PENDING) {
		mf_note_drop(op->notes, entry->string);
		*changed = 1;
	}
	goto out;
nomem:
	op->host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory");
	rc = MAILMODE_ERR_NOMEM;
out:
	free(have);
	return rc;
}

/* The rules as read, by the tenant's note: a rule showing what it held
 * before writes not visible yet gets the list it holds.  Loads the note
 * with the first read; stores it when an entry changed. */
static int apply_notes(struct op *op, struct mailmode_diag *diag)
{
	char resource[MF_NAME_MAX + 256];
	cJSON *entry, *next, *rule;
	int changed = 0, rc = MAILMODE_OK;

	if (!op->keep_notes)
		return MAILMODE_OK;
	note_resource(op, resource, sizeof(resource));
	if (!op->notes && (rc = mf_notes_load(op->host, op->req, resource, &op->notes, diag)) != MAILMODE_OK)
		return rc;
	entry = cJSON_GetObjectItemCaseSensitive(op->notes, "rules");
	for (entry = entry ? entry->child : NULL; entry && rc == MAILMODE_OK; entry = next) {
		next = entry->next;
		rule = (cJSON *)mf_find_by_name(op->rules, entry->string);
		if (!rule || !cJSON_GetObjectItemCaseSensitive(rule, NOTED_MARK))
			rc = apply_note(op, rule, entry, &changed, diag);
	}
	if (rc == MAILMODE_OK && changed)
		rc = store_notes(op, diag);
	return rc;
}

/* The read-back shows the list before the write, or an earlier write of
 * the rule's note: the write is not visible yet. */
static int read_back_pending(struct op *op, const char *name, const char *const *have,
                             const char *const *was)
{
	cJSON *entry = op->notes ? mf_note_of(op->notes, name) : NULL;
	int trimmed;

	return mf_lists_equal(have, was) ||
	       (entry && mf_note_see(entry, have, &trimmed) == MF_NOTE_PENDING);
}

/* The rule's entry of the tenant's note (when kept) after a read-back
 * that saw what (SHOWN: the write; PENDING: not visible yet, so the
 * write is added for the next writer to build on; FOREIGN: another
 * writer's list, written on again). */
static int read_back_noted(struct op *op, const char *name, enum mf_note_seen what,
                           const char *const *was, const char *const *wrote,
                           struct mailmode_diag *diag)
{
	if (!op->notes || (what != MF_NOTE_PENDING && !mf_note_of(op->notes, name)))
		return MAILMODE_OK;
	if (what != MF_NOTE_PENDING)
		mf_note_drop(op->notes, name);
	else if (mf_note_add(op->notes, name, was, wrote, wall_ms(op)) != 0) {
		op->host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory");
		return MAILMODE_ERR_NOMEM;
	}
	return store_notes(op, diag);
}

/* A rule removed: nothing to build on is left of its writes. */
static int rule_removed(struct op *op, const char *name, struct mailmode_diag *diag)
{
	return read_back_noted(op, name, MF_NOTE_SHOWN, NULL, NULL, diag);
}

/* Set-TransportRule replaces a shared rule's whole RecipientDomainIs
 * list, so each such write is read back (Get-TransportRule -Identity)
 * before the tenant lock is let go:
 * - the list as written: done;
 * - the list as before (or an earlier write of the tenant's note): not
 *   visible yet; kept in the tenant's note, so that the next domain's
 *   setup under the lock builds on it instead of writing on the old list
 *   (and dropping this domain); without notes (an older host) waited
 *   for;
 * - any other list: another writer's (a change made by hand, or a
 *   killed holder's write landing after the core took its lock over): the
 *   domain's change is made again on that list.  Other mailmode processes
 *   wait for the core's lock on the tenant (state.c shared_locks); a write
 *   landing after this read-back is not seen here (doc/mailflow-limits.md). */
static int rule_read_back(struct op *op, const char *name, const char *const *before,
                          const char *const *wrote_first, int joining, cJSON *receipt,
                          struct mailmode_diag *diag)
{
	const char **was = mf_list_copy(before), **wrote = mf_list_copy(wrote_first);
	const char **have = NULL;
	cJSON *params = NULL, *read = NULL;
	int64_t started = op->host->clock_mono_ms(op->host->handle), wait_ms = 250;
	int rewrites = 0, pending, rc = MAILMODE_OK;

	if (!was || !wrote)
		goto nomem;
	for (;;) {
		size_t count = 0;

		params = identity_params(name, 0);
		if (!params)
			goto nomem;
		rc = invoke(op, "Get-TransportRule", params, &read, diag);
		if (rc != MAILMODE_OK && ms_exo_error_not_found(&op->err)) {
			op->host->diag_set(diag, MAILMODE_SEV_NONE, 0, "%s", "");
			rc = MAILMODE_OK;
			goto out;
		}
		if (rc != MAILMODE_OK)
			goto out;
		have = ms_field_strs(cJSON_GetArrayItem(read, 0), "RecipientDomainIs", &count);
		if (!have)
			goto nomem;
		if (mf_lists_equal(have, wrote)) {
			rc = read_back_noted(op, name, MF_NOTE_SHOWN, was, wrote, diag);
			goto out;
		}
		pending = read_back_pending(op, name, have, was);
		if (pending && op->notes) {
			rc = read_back_noted(op, name, MF_NOTE_PENDING, was, wrote, diag);
			goto out;
		}
		if (pending) {
			rc = wait_for_write(op, name, started, &wait_ms, diag);
		} else if (rewrites++ == READ_BACK_ROUNDS) {
			op->host->diag_set(diag, MAILMODE_SEV_ERROR, 1,
			                   "transport rule '%s' of tenant %s keeps being rewritten by another writer: %s is %s it",
			                   name, op->profile->tenant, op->req->domain,
			                   joining ? "not sure to be in" : "maybe still in");
			op->host->diag_append(diag, "another mailmode process may be switching domains of this tenant; run the command again once it is done");
			rc = MAILMODE_ERR_FAILED;
		} else {
			free(was);
			if (!(was = mf_list_copy(have)))
				goto nomem;
			rc = read_back_noted(op, name, MF_NOTE_FOREIGN, was, wrote, diag);
			if (rc == MAILMODE_OK)
				rc = rewrite_rule(op, name, have, joining, &wrote, receipt, diag);
			if (rc == 1) {
				rc = MAILMODE_OK;   /* the other writer's list has the change */
				goto out;
			}
		}
		if (rc != MAILMODE_OK)
			goto out;
		cJSON_Delete(params);
		cJSON_Delete(read);
		free(have);
		params = read = NULL;
		have = NULL;
	}
nomem:
	op->host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory");
	rc = MAILMODE_ERR_NOMEM;
out:
	free(was);
	free(wrote);
	free(have);
	cJSON_Delete(params);
	cJSON_Delete(read);
	return rc;
}

/* Before anything is written (setup's preflight, plan and preflight()):
 * refused when the domain needs a new rule and the tenant has no room
 * for one. */
static int check_rule_room(struct op *op, struct mailmode_diag *diag)
{
	struct rule_choice c = { 0 };
	int rc = choose_rule(op, &c, diag);

	if (rc == MAILMODE_ERR_NOMEM)
		op->host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory");
	choice_free(&c);
	return rc;
}

/* Set-TransportRule has no Enabled: a disabled rule is enabled by its
 * own cmdlet (checkpointed "updating" before). */
static int enable_rule(struct op *op, int apply, struct mf_plan *plan, cJSON *receipt,
                       struct mailmode_diag *diag)
{
	cJSON *enable = identity_params(op->rule_name, 0);
	int rc = MAILMODE_ERR_NOMEM;

	if (!enable)
		goto nomem;
	if (!apply) {
		mf_plan_cmdlet(plan, "update", rule_kind.what, op->rule_name, 1,
		               "Enable-TransportRule", enable);
		rc = MAILMODE_OK;
		goto out;
	}
	if (receipt_mark(receipt, rule_kind.receipt_key, "updating", wall_ms(op)) != 0)
		goto nomem;
	rc = checkpoint(op, receipt, diag);
	if (rc == MAILMODE_OK)
		rc = invoke(op, "Enable-TransportRule", enable, NULL, diag);
	if (rc == MAILMODE_OK &&
	    receipt_mark(receipt, rule_kind.receipt_key, "updated", wall_ms(op)) != 0)
		goto nomem;
	goto out;
nomem:
	op->host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory");
	rc = MAILMODE_ERR_NOMEM;
out:
	cJSON_Delete(enable);
	return rc;
}

/* reconcile_one for the rule.  MAILMODE_ERR_NOT_READY (diagnostic set,
 * the rule's entry out of the receipt) when what the rule needs is not
 * visible yet: the outbound connector made a moment ago (eventual
 * consistency), or a rule of that name another domain made, not listed
 * yet. */
static int write_rule(struct op *op, const struct rule_choice *choice, cJSON *params,
                      const char *mismatches, int apply, struct mf_plan *plan,
                      cJSON *receipt, struct mailmode_diag *diag)
{
	const struct mailmode_host *host = op->host;
	const struct mf_profile *profile = op->profile;
	/* Priority only moves when ours is not above the others: a rule of
	 * another of our domains may sit at 0. */
	int move = mismatches && strstr(mismatches, "Priority:") != NULL;
	int rc = reconcile_one(op, &rule_kind, op->rule_name, choice->existing, params,
	                       mismatches, move, apply, plan, receipt, diag);

	if (rc == MAILMODE_OK || !apply || !ms_exo_error_not_found(&op->err) ||
	    !strstr(op->err.text, profile->outbound_name))
		return rc;
	host->diag_set(diag, MAILMODE_SEV_ERROR, 1,
	               "outbound connector '%s' is not visible yet to transport rules in tenant %s: run setup again later, it resumes",
	               profile->outbound_name, profile->tenant);
	host->diag_append(diag, "Exchange said: %s", op->err.text);
	host->diag_append(diag, "%s", NOT_VISIBLE_HINT);
	cJSON_DeleteItemFromObjectCaseSensitive(receipt, rule_kind.receipt_key);
	return MAILMODE_ERR_NOT_READY;
}

/* The rule is not listed, and a setup made it moments ago (the tenant's
 * note; for a setup called again after it deferred): MAILMODE_OK when it
 * made it with this domain in it
 * (the receipt says so, as of then: the domain is in it, not yet shown);
 * MAILMODE_ERR_NOT_READY (diagnostic set) when without it, or while that
 * making is unanswered; 1 when the note knows of no such rule. */
static int join_noted_creation(struct op *op, const char *name, cJSON *receipt,
                               struct mailmode_diag *diag)
{
	const struct mailmode_host *host = op->host;
	const cJSON *entry = op->notes ? mf_note_of(op->notes, name) : NULL;
	const char *state = mf_note_creation(entry);

	/* Only a setup called again after it deferred: a setup run anew (to
	 * repair what was removed by hand) makes what is not listed. */
	if (!state || !setup_deferred(op))
		return 1;
	if (strcmp(state, "created") == 0 && mf_note_lists(entry, op->req->domain)) {
		if (receipt_put(receipt, rule_kind.receipt_key, name, NULL, "updated", "updated",
		                mf_note_oldest_ms(entry)) != 0) {
			host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory");
			return MAILMODE_ERR_NOMEM;
		}
		host->log(host->handle, MAILMODE_LOG_INFO,
		          "transport rule '%s' was made moments ago with %s in it (not listed yet)",
		          name, op->req->domain);
		return MAILMODE_OK;
	}
	host->diag_set(diag, MAILMODE_SEV_ERROR, 1,
	               "transport rule '%s' of tenant %s was made moments ago by another domain's setup (%s) and is not listed yet: %s joins it once it is listed",
	               name, op->profile->tenant,
	               strcmp(state, "created") == 0 ? "without this domain" : "its answer is not known",
	               op->req->domain);
	host->diag_append(diag, "run setup again later, it resumes (%s)",
	                  NOT_VISIBLE_HINT);
	copy_name(op->unlisted_rule, name);
	return MAILMODE_ERR_NOT_READY;
}

/* A new rule is made with the domains waiting for it (the tenant's note)
 * as long as it has room for them: they need not wait for it to be
 * listed to join it. */
static int add_joiners(struct op *op, struct rule_choice *c)
{
	int64_t since = wall_ms(op) - op->profile->visibility_window_ms;
	const char **joiners = mf_note_joiners(op->notes, c->name, op->req->domain, since);
	const char **list = joiners ? mf_list_copy(c->members) : NULL;
	struct rule_choice trial = { 0 };
	int fits = 1;
	size_t i;

	for (i = 0; list && joiners[i] && fits > 0; i++) {
		copy_name(trial.name, c->name);
		fits = choice_fill(op, &trial, mf_list_with(list, joiners[i], NULL));
		if (fits > 0) {
			/* trial's members point into list: copied before it goes */
			const char **next = mf_list_copy(trial.members);

			free(list);
			list = next;
		}
	}
	choice_free(&trial);
	free(joiners);
	if (!list || fits < 0 || choice_fill(op, c, list) < 0)
		return MAILMODE_ERR_NOMEM;
	return MAILMODE_OK;
}

/* The note of a rule being made, stored before New-TransportRule is sent
 * (making), then of how that went (rc, made): made (the joiners made
 * with it wait no more), refused (the entry goes; the joiners wait on),
 * or unanswered (it stays "creating": the rule may appear with them). */
static int note_rule_made(struct op *op, const struct rule_choice *c, int making, int rc,
                          struct mailmode_diag *diag)
{
	int failed = 0;

	if (making)
		failed = mf_note_creating(op->notes, c->name, c->members, wall_ms(op));
	else if (rc == MAILMODE_ERR_UNKNOWN)
		return MAILMODE_OK;
	else if (rc == MAILMODE_OK && !(failed = mf_note_created(op->notes, c->name, wall_ms(op))))
		mf_note_joiners_drop(op->notes, c->name, c->members);
	else if (rc != MAILMODE_OK)
		mf_note_drop(op->notes, c->name);
	if (failed) {
		op->host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory");
		return MAILMODE_ERR_NOMEM;
	}
	return store_notes(op, diag);
}

/* write_rule for a new rule, in the tenant's note before and after. */
static int make_rule(struct op *op, const struct rule_choice *choice, cJSON *params,
                     cJSON *receipt, struct mailmode_diag *diag)
{
	struct mailmode_diag noted;
	int rc = note_rule_made(op, choice, 1, MAILMODE_OK, diag);

	if (rc != MAILMODE_OK)
		return rc;
	rc = write_rule(op, choice, params, NULL, 1, NULL, receipt, diag);
	memset(&noted, 0, sizeof(noted));
	if (note_rule_made(op, choice, 0, rc, &noted) != MAILMODE_OK && rc == MAILMODE_OK) {
		*diag = noted;
		rc = MAILMODE_ERR_FAILED;
	}
	return rc;
}

/* One pass of reconcile_rule on the rules as read. */
static int reconcile_rule_once(struct op *op, int apply, struct mf_plan *plan,
                               cJSON *receipt, struct mailmode_diag *diag)
{
	const struct mailmode_host *host = op->host;
	const struct mf_profile *profile = op->profile;
	struct rule_choice choice = { 0 };
	struct ms_buf mismatches = { 0 };
	cJSON *params = NULL;
	const cJSON *existing;
	int rc = apply_notes(op, diag);

	if (rc == MAILMODE_OK)
		rc = choose_rule(op, &choice, diag);
	if (rc == MAILMODE_ERR_NOMEM)
		goto nomem;
	if (rc != MAILMODE_OK)
		goto out;
	copy_name(op->rule_name, choice.name);
	existing = choice.existing;
	if (!existing && ms_strcaseeq(choice.name, op->unlisted_rule)) {
		rc = MAILMODE_ERR_NOT_READY;   /* still not listed: the diagnostic stands */
		goto out;
	}
	if (!existing && apply && op->notes &&
	    ((rc = join_noted_creation(op, choice.name, receipt, diag)) != 1 ||
	     (rc = add_joiners(op, &choice)) != MAILMODE_OK)) {
		if (rc == MAILMODE_ERR_NOMEM)
			goto nomem;
		goto out;
	}
	if (existing)
		mf_rule_compare(profile, &choice.want, existing, op->rules, &mismatches);
	params = mf_rule_params(profile, &choice.want, 0);
	if (!params || mismatches.failed)
		goto nomem;
	/* New-TransportRule needs no empty list (Set-TransportRule does, to
	 * clear one). */
	if (!existing && cJSON_IsNull(cJSON_GetObjectItem(params, "ExceptIfRecipientDomainIs")))
		cJSON_DeleteItemFromObjectCaseSensitive(params, "ExceptIfRecipientDomainIs");
	if (!existing && apply && op->notes)
		rc = make_rule(op, &choice, params, receipt, diag);
	else
		rc = write_rule(op, &choice, params, mismatches.data, apply, plan, receipt, diag);
	if (rc == MAILMODE_OK && apply && existing && mismatches.len) {
		size_t count = 0;
		const char **before = ms_field_strs(existing, "RecipientDomainIs", &count);

		rc = before ? rule_read_back(op, op->rule_name, before, choice.members, 1,
		                             receipt, diag)
		            : MAILMODE_ERR_NOMEM;
		free(before);
		if (rc == MAILMODE_ERR_NOMEM)
			goto nomem;
	}
	if (rc != MAILMODE_OK)
		goto out;
	if (existing && mismatches.data && (strstr(mismatches.data, "State:") ||
	                                    strstr(mismatches.data, "Enabled:")))
		rc = enable_rule(op, apply, plan, receipt, diag);
	goto out;
nomem:
	host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory");
	rc = MAILMODE_ERR_NOMEM;
out:
	cJSON_Delete(params);
	ms_buf_free(&mismatches);
	choice_free(&choice);
	return rc;
}

/* A deferred setup whose new rule is not there yet: the domain waits for
 * it in the tenant's note, to be made with it in it (by whichever setup
 * makes it), and its receipt says so first: a teardown then knows it may
 * be in the rule once it is listed.  Keeps the diagnostic. */
static int wait_as_joiner(struct op *op, cJSON *receipt, struct mailmode_diag *diag)
{
	struct mailmode_diag why;
	int64_t now = wall_ms(op);
	int rc;

	if (!op->notes || mf_find_by_name(op->rules, op->rule_name))
		return MAILMODE_ERR_NOT_READY;
	memset(&why, 0, sizeof(why));
	if (receipt_put(receipt, rule_kind.receipt_key, op->rule_name, NULL, "joining", "waiting",
	                now) != 0 ||
	    mf_note_join_wait(op->notes, op->rule_name, op->req->domain, now) != 0) {
		op->host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory");
		return MAILMODE_ERR_NOMEM;
	}
	rc = checkpoint(op, receipt, &why);
	if (rc == MAILMODE_OK)
		rc = store_notes(op, &why);
	if (rc != MAILMODE_OK) {
		*diag = why;
		return rc;
	}
	return MAILMODE_ERR_NOT_READY;
}

/* The domain waits for no new rule any more (in it, or torn down). */
static int stop_waiting(struct op *op, struct mailmode_diag *diag)
{
	struct mailmode_diag why;
	int rc;

	if (!op->notes || !mf_note_join_leave(op->notes, op->req->domain))
		return MAILMODE_OK;
	memset(&why, 0, sizeof(why));
	if ((rc = store_notes(op, &why)) != MAILMODE_OK)
		*diag = why;
	return rc;
}

/* The domain's membership of a shared rule: joins one (Set-TransportRule
 * with the list and the domain), or makes one (New-TransportRule); brings
 * the rule to the profile either way.  The receipt names the rule and
 * says "creating"/"updating" before the write.  What the rule needs and
 * is not visible yet is waited for (up to the retry budget), the rules
 * read again and the choice made again: a rule another domain made a
 * moment ago is joined once listed, never made twice. */
static int reconcile_rule(struct op *op, int apply, struct mf_plan *plan,
                          cJSON *receipt, struct mailmode_diag *diag)
{
	const struct mailmode_host *host = op->host;
	int64_t started = host->clock_mono_ms(host->handle), wait_ms = 1000;
	int rc;

	for (;;) {
		rc = reconcile_rule_once(op, apply, plan, receipt, diag);
		if (rc == MAILMODE_OK && apply)
			rc = stop_waiting(op, diag);
		if (rc != MAILMODE_ERR_NOT_READY)
			return rc;
		if (apply && (op->req->flags & MAILMODE_REQ_DEFERRABLE) &&
		    (rc = wait_as_joiner(op, receipt, diag)) != MAILMODE_ERR_NOT_READY)
			return rc;
		if (op->req->flags & MAILMODE_REQ_DEFERRABLE)
			return defer_setup(op);
		if (pause_for_visibility(op, "new objects of the tenant to become visible to transport rules",
		                         started, &wait_ms, 15000) != 0)
			return MAILMODE_ERR_FAILED;   /* the diagnostic says what */
		cJSON_Delete(op->rules);
		op->rules = NULL;
		rc = read_collection(op, "Get-TransportRule", 0, &op->rules, diag);
		if (rc != MAILMODE_OK)
			return rc;
		if (op->unlisted_rule[0] && !mf_find_by_name(op->rules, op->unlisted_rule))
			continue;      /* still not listed: the diagnostic stands */
		op->unlisted_rule[0] = '\0';
		host->diag_set(diag, MAILMODE_SEV_NONE, 0, "%s", "");
	}
}

/* The rule the previous version made for the domain alone ("<prefix>
 * route <domain>"), of ours: NULL when there is none. */
static const cJSON *legacy_rule(struct op *op, char name[MF_NAME_MAX])
{
	const cJSON *rule;

	mf_rule_name(op->profile, op->req->domain, name);
	rule = mf_find_by_name(op->rules, name);
	return rule && mf_rule_is_ours(op->profile, rule) &&
	       !mf_shared_rule_index(op->profile, rule) ? rule : NULL;
}

/* Once the domain is in a shared rule, its rule of the previous version
 * goes (receipt "legacy_rule", checkpointed "removing" before). */
static int fold_legacy_rule(struct op *op, int apply, struct mf_plan *plan,
                            cJSON *receipt, struct mailmode_diag *diag)
{
	char name[MF_NAME_MAX];
	const cJSON *rule = legacy_rule(op, name);
	cJSON *params;
	int rc;

	if (!rule)
		return MAILMODE_OK;
	params = identity_params(name, 1);
	if (!params)
		goto nomem;
	if (!apply) {
		mf_plan_note(plan, "note", rule_kind.what, name, 0,
		             "transport rule '%s' of the previous version (one rule per domain) is folded into '%s'",
		             name, op->rule_name);
		mf_plan_cmdlet(plan, "remove", rule_kind.what, name, 0, "Remove-TransportRule", params);
		cJSON_Delete(params);
		return MAILMODE_OK;
	}
	if (receipt_put(receipt, "legacy_rule", name, ms_field_str(rule, "Guid"), "removed",
	                "removing", wall_ms(op)) != 0) {
		cJSON_Delete(params);
		goto nomem;
	}
	rc = checkpoint(op, receipt, diag);
	if (rc == MAILMODE_OK)
		rc = invoke(op, "Remove-TransportRule", params, NULL, diag);
	if (rc != MAILMODE_OK && ms_exo_error_not_found(&op->err)) {
		op->host->diag_set(diag, MAILMODE_SEV_NONE, 0, "%s", "");
		rc = MAILMODE_OK;
	}
	cJSON_Delete(params);
	if (rc == MAILMODE_OK &&
	    receipt_mark(receipt, "legacy_rule", "removed", wall_ms(op)) != 0)
		goto nomem;
	if (rc == MAILMODE_OK)
		op->host->log(op->host->handle, MAILMODE_LOG_INFO,
		              "folded transport rule '%s' into '%s'", name, op->rule_name);
	return rc;
nomem:
	op->host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory");
	return MAILMODE_ERR_NOMEM;
}

/* The inbound connector first: a tenant whose plan forbids inbound
 * connectors then fails before anything is made. */
static int reconcile(struct op *op, int apply, struct mf_plan *plan,
                     cJSON *receipt, struct mailmode_diag *diag)
{
	const struct mailmode_host *host = op->host;
	const struct mf_profile *profile = op->profile;
	struct ms_buf mismatches = { 0 };
	cJSON *params = NULL;
	const cJSON *existing;
	int rc = MAILMODE_ERR_NOMEM;

	if (!cJSON_AddStringToObject(receipt, "tenant", profile->tenant) ||
	    !cJSON_AddStringToObject(receipt, "service", profile->service) ||
	    !cJSON_AddStringToObject(receipt, "domain", op->req->domain) ||
	    !cJSON_AddNumberToObject(receipt, "set_up_at_ms",
	                             (double)host->clock_wall_ms(host->handle)))
		goto nomem;

	existing = mf_find_by_name(op->inbound, profile->inbound_name);
	if (existing)
		mf_inbound_compare(profile, existing, &mismatches);
	params = mf_inbound_params(profile);
	if (!params || mismatches.failed)
		goto nomem;
	rc = reconcile_one(op, &inbound_kind, profile->inbound_name, existing, params,
	                   mismatches.data, 0, apply, plan, receipt, diag);
	if (rc != MAILMODE_OK && ms_exo_error_inbound_restricted(&op->err)) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "tenant %s cannot create inbound connectors: its subscription does not allow them, so mailflow mode cannot work there",
		               profile->tenant);
		host->diag_append(diag, "Exchange said: %s", op->err.text);
		host->diag_append(diag, "developer and trial subscriptions restrict inbound connectors; use gateway mode (MX) for this domain instead");
		rc = MAILMODE_ERR_FAILED;
	}
	if (rc != MAILMODE_OK)
		goto out;
	cJSON_Delete(params);
	ms_buf_free(&mismatches);

	existing = mf_find_by_name(op->outbound, profile->outbound_name);
	if (existing)
		mf_outbound_compare(profile, existing, &mismatches);
	params = mf_outbound_params(profile);
	if (!params || mismatches.failed)
		goto nomem;
	rc = reconcile_one(op, &outbound_kind, profile->outbound_name, existing, params,
	                   mismatches.data, 0, apply, plan, receipt, diag);
	if (rc != MAILMODE_OK)
		goto out;
	cJSON_Delete(params);
	params = NULL;
	ms_buf_free(&mismatches);

	rc = reconcile_rule(op, apply, plan, receipt, diag);
	if (rc == MAILMODE_OK)
		rc = fold_legacy_rule(op, apply, plan, receipt, diag);
	goto out;
nomem:
	host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory");
	rc = MAILMODE_ERR_NOMEM;
out:
	cJSON_Delete(params);
	ms_buf_free(&mismatches);
	return rc;
}

/* Success with warnings: the diagnostic carries them. */
static void report_warnings(struct op *op, struct mailmode_diag *diag,
                            const char *what)
{
	int n = 0;
	const char *p;

	for (p = op->warnings.data; p && *p; p++)
		n += *p == '\n';
	for (p = op->exo.warnings.data; p && *p; p++)
		n += *p == '\n';
	if (!n)
		return;
	op->host->diag_set(diag, MAILMODE_SEV_WARNING, 0, "%s of %s done with %d warning(s)",
	                   what, op->req->domain, n);
	diag_lines(op->host, diag, "", op->warnings.data);
	diag_lines(op->host, diag, "Exchange: ", op->exo.warnings.data);
}

/* ------------------------------------------------------------------ */
/* teardown / plan(teardown) */

/* Removes one object; gone already counts as done.  The receipt says
 * "removing" before the cmdlet is sent, so a teardown run again (after a
 * kill, a lost answer) knows that "not listed" means removed by us. */
static int remove_object(struct op *op, const struct object_kind *kind,
                         const char *name, const cJSON *object, int apply,
                         struct mf_plan *plan, struct mailmode_diag *diag)
{
	const cJSON *entry = cJSON_GetObjectItemCaseSensitive(op->receipt, kind->receipt_key);
	const char *action = ms_field_str(entry, "action");
	cJSON *params = identity_params(name, 1);
	int rc;

	if (!params)
		goto nomem;
	if (!apply) {
		mf_plan_cmdlet(plan, "remove", kind->what, name, kind->shared, kind->remove_cmdlet,
		               params);
		rc = MAILMODE_OK;
		goto out;
	}
	if (receipt_put(op->receipt, kind->receipt_key, name, ms_field_str(object, "Guid"),
	                action ? action : "found", "removing", wall_ms(op)) != 0)
		goto nomem;
	op->host->progress(op->host->handle, "%s '%s'", kind->remove_cmdlet, name);
	rc = checkpoint(op, op->receipt, diag);
	if (rc == MAILMODE_OK)
		rc = invoke(op, kind->remove_cmdlet, params, NULL, diag);
	if (rc != MAILMODE_OK && ms_exo_error_not_found(&op->err)) {
		op->host->diag_set(diag, MAILMODE_SEV_NONE, 0, "%s", "");
		rc = MAILMODE_OK;
	} else if (rc != MAILMODE_OK && strstr(op->err.text, "used by")) {
		/* A rule not listed yet still routes through it. */
		diag->retryable = 1;
	}
	goto out;
nomem:
	op->host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory");
	rc = MAILMODE_ERR_NOMEM;
out:
	cJSON_Delete(params);
	return rc;
}

/* "5 s", "30 minutes": a window for messages. */
static void describe_ms(char *out, size_t size, long ms)
{
	if (ms >= 60000 && ms % 60000 == 0)
		snprintf(out, size, "%ld minutes", ms / 60000);
	else
		snprintf(out, size, "%ld s", (ms + 999) / 1000);
}

/* An object of the receipt that is not listed: is it gone?  What an
 * attempt was creating when its answer was lost may still appear, and
 * the rule of a recent setup may not be listed yet; both are refused
 * (retryable) until the visibility window after the intent has passed,
 * unless forced.  What we were removing is gone, and so is what this
 * setup never touched.  A connector setup made or found is gone too:
 * connectors are shared, and another domain's teardown removes them. */
static int confirm_gone(struct op *op, const struct object_kind *kind, const char *name,
                        int listed, struct mailmode_diag *diag)
{
	const struct mailmode_host *host = op->host;
	const cJSON *entry = cJSON_GetObjectItemCaseSensitive(op->receipt, kind->receipt_key);
	const char *state = ms_field_str(entry, "state");
	int64_t at = (int64_t)ms_field_long(entry, "state_at_ms", 0);
	int64_t now = wall_ms(op);
	long window = op->profile->visibility_window_ms;
	int force = (op->req->flags & MAILMODE_REQ_FORCE) != 0;
	/* an update whose answer was lost (a domain joining a shared rule)
	 * is as uncertain as a creation */
	int creating = state && (ms_strcaseeq(state, "creating") ||
	                         ms_strcaseeq(state, "updating"));
	char span[32];

	if (!entry || (state && (ms_strcaseeq(state, "removing") ||
	                         ms_strcaseeq(state, "removed") ||
	                         ms_strcaseeq(state, "leaving"))))
		return MAILMODE_OK;
	/* The shared rule setup made or joined is listed without the domain:
	 * the domain left it. */
	if (listed && !creating)
		return MAILMODE_OK;
	if (!creating && !kind->is_rule)
		return MAILMODE_OK;
	if (!at)
		at = op->set_up_at_ms;
	if (!at || now - at >= window)
		return MAILMODE_OK;
	describe_ms(span, sizeof(span), window);
	if (force) {
		warn(op, "%s '%s' was not found; it was %s less than %s ago, so it may still appear: check with 'mailmode status'",
		     kind->what, name, creating ? "being created (outcome unknown)" : "created",
		     span);
		return MAILMODE_OK;
	}
	if (creating)
		host->diag_set(diag, MAILMODE_SEV_ERROR, 1,
		               "%s '%s' was being created when an earlier attempt ended (outcome unknown) and is not listed: it may still appear, so it is not called gone until %s after the attempt: retry later, or --force if it was never made",
		               kind->what, name, span);
	else
		host->diag_set(diag, MAILMODE_SEV_ERROR, 1,
		               "%s '%s' was created less than %s ago and is not listed yet, so it cannot be removed: retry later (%s), or --force if it was deleted by hand",
		               kind->what, name, span, NOT_VISIBLE_HINT);
	host->diag_append(diag, "waiting %lld s more (visibility_window_ms of [%s])",
	                  (long long)((at + window - now + 999) / 1000),
	                  op->profile->tenant_section);
	return MAILMODE_ERR_FAILED;
}

static int rule_lists_only(const cJSON *rule, const char *domain)
{
	size_t count = 0;
	const char **members = ms_field_strs(rule, "RecipientDomainIs", &count);
	int only = members && count == 1 && ms_strcaseeq(members[0], domain);

	free(members);
	return only;
}

static const struct object_kind legacy_kind = {
	"transport rule", "legacy_rule", "New-TransportRule", "Set-TransportRule",
	"Remove-TransportRule", "Comments", 1, 0
};

/* Takes the domain out of a shared rule: Set-TransportRule with the
 * list less the domain (and the exceptions for what remains), or
 * Remove-TransportRule when it was the last.  The receipt says "leaving"
 * or "removing" before the write. */
static int leave_rule(struct op *op, const cJSON *rule, int apply, struct mf_plan *plan,
                      struct mailmode_diag *diag)
{
	const char *name = ms_field_str(rule, "Name");
	const char *guid = ms_field_str(rule, "Guid");
	const cJSON *entry = cJSON_GetObjectItemCaseSensitive(op->receipt, rule_kind.receipt_key);
	const char *action = ms_field_str(entry, "action");
	struct rule_choice c = { 0 };
	size_t count = 0;
	const char **have = ms_field_strs(rule, "RecipientDomainIs", &count);
	cJSON *params = NULL, *set = NULL;
	int rc = MAILMODE_ERR_NOMEM;

	copy_name(c.name, name);
	if (!have || choice_fill(op, &c, mf_list_with(have, NULL, op->req->domain)) < 0)
		goto nomem;
	if (!c.members[0]) {
		rc = remove_object(op, &rule_kind, c.name, rule, apply, plan, diag);
		if (rc == MAILMODE_OK && apply)
			rc = rule_removed(op, c.name, diag);
		goto out;
	}
	params = mf_rule_params(op->profile, &c.want, 0);
	set = params ? set_params(params, c.name, 1, 0) : NULL;
	if (!set)
		goto nomem;
	if (!apply) {
		mf_plan_note(plan, "note", rule_kind.what, c.name, 1,
		             "%s leaves transport rule '%s' (%zu other domain(s) stay)",
		             op->req->domain, c.name, count - 1);
		mf_plan_cmdlet(plan, "update", rule_kind.what, c.name, 1, "Set-TransportRule", set);
		rc = MAILMODE_OK;
		goto out;
	}
	if (receipt_put(op->receipt, rule_kind.receipt_key, c.name, guid,
	                action ? action : "found", "leaving", wall_ms(op)) != 0)
		goto nomem;
	op->host->progress(op->host->handle, "taking %s out of transport rule '%s'",
	                   op->req->domain, c.name);
	rc = checkpoint(op, op->receipt, diag);
	if (rc == MAILMODE_OK)
		rc = invoke(op, "Set-TransportRule", set, NULL, diag);
	if (rc == MAILMODE_OK)
		rc = rule_read_back(op, c.name, have, c.members, 0, op->receipt, diag);
	goto out;
nomem:
	op->host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory");
	rc = MAILMODE_ERR_NOMEM;
out:
	free(have);
	cJSON_Delete(params);
	cJSON_Delete(set);
	choice_free(&c);
	return rc;
}

/* Whether the rule the receipt names may have the domain in it.  A domain
 * that only waited for its new rule (receipt "waiting") is in it only when
 * the tenant's note says a setup made it (or is making it) with the
 * domain in it: from then on the rule is as uncertain as one being made
 * (the receipt entry takes that making's time). */
static int waited_made(struct op *op)
{
	cJSON *entry = cJSON_GetObjectItemCaseSensitive(op->receipt, rule_kind.receipt_key);
	const cJSON *made = op->notes ? mf_note_of(op->notes, op->rule_name) : NULL;
	const char *state = ms_field_str(entry, "state");

	if (!state || !ms_strcaseeq(state, "waiting"))
		return 1;
	if (!mf_note_creation(made) || !mf_note_lists(made, op->req->domain))
		return 0;
	return receipt_mark(op->receipt, rule_kind.receipt_key, "updating",
	                    mf_note_oldest_ms(made)) == 0;
}

/* Takes the domain out of every shared rule that lists it, removes its
 * rule of the previous version, or makes sure what the receipt knows of
 * is gone. */
static int unmake_rules(struct op *op, int apply, struct mf_plan *plan,
                        struct mailmode_diag *diag)
{
	const cJSON *rule = NULL, *entry;
	char legacy[MF_NAME_MAX];
	const cJSON *old = legacy_rule(op, legacy);
	int found = 0, rc = MAILMODE_OK;

	while (rc == MAILMODE_OK &&
	       (rule = mf_shared_rule_of(op->profile, op->rules, op->req->domain, rule))) {
		rc = leave_rule(op, rule, apply, plan, diag);
		found++;
	}
	if (rc == MAILMODE_OK && old) {
		rc = remove_object(op, &legacy_kind, legacy, old, apply, plan, diag);
		found++;
	}
	if (rc != MAILMODE_OK || found)
		return rc;
	if (!apply) {
		mf_plan_note(plan, "note", NULL, NULL, 0, "%s is in no transport rule of mailmode's",
		             op->req->domain);
		return MAILMODE_OK;
	}
	if (!waited_made(op))
		return MAILMODE_OK;
	entry = cJSON_GetObjectItemCaseSensitive(op->receipt, rule_kind.receipt_key);
	return confirm_gone(op, &rule_kind, op->rule_name,
	                    entry && mf_find_by_name(op->rules, op->rule_name) != NULL, diag);
}

/* The other rules that route through the outbound connector, as a list of
 * names in users. */
static void connector_users(struct op *op, const cJSON *outbound, struct ms_buf *users)
{
	const char *outbound_guid = outbound ? ms_field_str(outbound, "Guid") : NULL;
	char legacy[MF_NAME_MAX];
	const cJSON *item, *old = legacy_rule(op, legacy);

	cJSON_ArrayForEach(item, op->rules) {
		const char *name = ms_field_str(item, "Name");

		/* This teardown removes the domain's old rule and every shared
		 * rule that lists the domain alone. */
		if (item == old || !mf_rule_routes_to(item, op->outbound_name, outbound_guid) ||
		    (mf_shared_rule_index(op->profile, item) && rule_lists_only(item, op->req->domain)))
			continue;
		ms_buf_addf(users, "%s'%s'", users->len ? ", " : "", name ? name : "?");
	}
	/* A rule made moments ago, not listed yet, routes through it too
	 * (unless the domain is its only one). */
	cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(op->notes, "rules"))
		if (mf_note_creation(item) && !mf_find_by_name(op->rules, item->string) &&
		    !mf_note_lists_only(item, op->req->domain))
			ms_buf_addf(users, "%s'%s' (not listed yet)", users->len ? ", " : "",
			            item->string);
}

/* Removes a connector of ours, or makes sure one the receipt knows of is
 * gone.  A same-named object without our marker is someone else's. */
static int unmake_connector(struct op *op, const struct object_kind *kind,
                            const char *name, const cJSON *object, int apply,
                            struct mf_plan *plan, struct mailmode_diag *diag)
{
	const char *comment = object ? ms_field_str(object, kind->comment_field) : NULL;

	if (object && comment && strstr(comment, op->profile->managed_marker))
		return remove_object(op, kind, name, object, apply, plan, diag);
	if (object || !apply)
		return MAILMODE_OK;
	return confirm_gone(op, kind, name, 0, diag);
}

static int unmake(struct op *op, int apply, struct mf_plan *plan,
                  struct mailmode_diag *diag)
{
	const struct mailmode_host *host = op->host;
	const cJSON *outbound, *inbound;
	struct ms_buf users = { 0 };
	int rc;

	rc = read_world(op, op->read_only, diag);
	if (rc == MAILMODE_OK)
		rc = read_accepted(op, op->read_only ? TENANT_FACTS_MS : ACCEPTED_FRESH_MS, diag);
	if (rc == MAILMODE_OK && apply)
		rc = stop_waiting(op, diag);
	if (rc == MAILMODE_OK)
		rc = unmake_rules(op, apply, plan, diag);
	if (rc != MAILMODE_OK)
		goto out;

	/* The connectors are shared: they stay while any other rule routes
	 * through the outbound one (the inbound one is its return path). */
	outbound = mf_find_by_name(op->outbound, op->outbound_name);
	inbound = mf_find_by_name(op->inbound, op->inbound_name);
	connector_users(op, outbound, &users);
	if (users.failed) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory");
		rc = MAILMODE_ERR_NOMEM;
		goto out;
	}
	if (users.len) {
		if (!apply)
			mf_plan_note(plan, "note", NULL, NULL, 1,
			             "connectors '%s' and '%s' stay: still used by %s",
			             op->outbound_name, op->inbound_name, users.data);
		host->log(host->handle, MAILMODE_LOG_INFO,
		          "keeping the connectors of service %s: still used by %s",
		          op->profile->service, users.data);
		goto out;
	}
	rc = unmake_connector(op, &outbound_kind, op->outbound_name, outbound, apply,
	                      plan, diag);
	if (rc == MAILMODE_OK)
		rc = unmake_connector(op, &inbound_kind, op->inbound_name, inbound, apply,
		                      plan, diag);
	if (rc == MAILMODE_OK && !apply && !outbound && !inbound)
		mf_plan_note(plan, "note", NULL, NULL, 1, "connectors '%s' and '%s' are already absent",
		             op->outbound_name, op->inbound_name);
out:
	ms_buf_free(&users);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Read-back: verify / observe */

/* Compares what is there with the profile and fills the report.
 * *missing: objects not (yet) visible; *differences: fields that differ
 * (listed in details, one per line, prefixed with the object). */
/* The rule that routes the domain and its wanted shape: the shared rule
 * that lists it (its members as they are, the subdomain exceptions from
 * the accepted domains when read, else the rule's own exceptions that do
 * their job: below a member, hiding none), or the domain's rule of the
 * previous version (*legacy set).  NULL when none; want->members NULL
 * then means out of memory. */
static const cJSON *domain_rule(struct op *op, struct rule_choice *want, int *legacy)
{
	const cJSON *rule = mf_shared_rule_of(op->profile, op->rules, op->req->domain, NULL);
	size_t count = 0;
	const char **have;

	*legacy = 0;
	if (!rule && (rule = legacy_rule(op, want->name)))
		*legacy = 1;
	if (rule)
		copy_name(want->name, ms_field_str(rule, "Name"));
	have = ms_field_strs(rule, "RecipientDomainIs", &count);
	want->members = have ? mf_list_with(have, op->req->domain, NULL) : NULL;
	free(have);
	if (!want->members)
		return NULL;
	if (op->accepted) {
		want->excepted = mf_subdomain_exceptions(want->members, op->accepted);
	} else {
		const char **own = ms_field_strs(rule, "ExceptIfRecipientDomainIs", &count);
		size_t i, n = 0;

		want->excepted = own;
		for (i = 0; own && i < count; i++) {
			const char *one[] = { own[i], NULL };
			const char *const *m;
			int below = 0;

			for (m = want->members; *m && !below; m++)
				below = mf_domain_below(own[i], *m);
			if (below && !mf_exceptions_cover_member(want->members, one))
				own[n++] = own[i];
		}
		if (own)
			own[n] = NULL;
	}
	if (!want->excepted) {
		free(want->members);
		want->members = NULL;
		return NULL;
	}
	want->want.name = want->name;
	want->want.domains = want->members;
	want->want.excepted = want->excepted;
	return rule;
}

static int inspect(struct op *op, cJSON *report, int *missing, int *differences,
                   struct ms_buf *details)
{
	struct rule_choice want = { 0 };
	int legacy = 0;
	const struct mf_profile *profile = op->profile;
	struct {
		const char *key, *what, *name;
		const cJSON *object;
	} objects[3] = {
		{ "inbound_connector", "inbound connector", op->inbound_name, NULL },
		{ "outbound_connector", "outbound connector", op->outbound_name, NULL },
		{ "rule", "transport rule", op->rule_name, NULL },
	};
	int i;

	*missing = *differences = 0;
	objects[0].object = mf_find_by_name(op->inbound, op->inbound_name);
	objects[1].object = mf_find_by_name(op->outbound, op->outbound_name);
	objects[2].object = domain_rule(op, &want, &legacy);
	if (!objects[2].object && !want.members)
		goto fail;
	if (objects[2].object)
		objects[2].name = want.name;
	if (!cJSON_AddStringToObject(report, "tenant", profile->tenant) ||
	    !cJSON_AddStringToObject(report, "service", profile->service))
		goto fail;
	for (i = 0; i < 3; i++) {
		struct ms_buf mismatches = { 0 };
		cJSON *entry = cJSON_AddObjectToObject(report, objects[i].key);
		cJSON *fields;
		const char *guid, *line;
		int n = 0;

		if (!entry || !cJSON_AddStringToObject(entry, "name", objects[i].name))
			goto fail;
		if (!objects[i].object) {
			(*missing)++;
			ms_buf_addf(details, "%s '%s': not found\n", objects[i].what,
			            objects[i].name);
			if (!cJSON_AddBoolToObject(entry, "present", 0))
				goto fail;
			continue;
		}
		guid = ms_field_str(objects[i].object, "Guid");
		if (!cJSON_AddBoolToObject(entry, "present", 1) ||
		    !(guid ? cJSON_AddStringToObject(entry, "guid", guid)
		           : cJSON_AddNullToObject(entry, "guid")))
			goto fail;
		if (i == 0)
			n = mf_inbound_compare(profile, objects[i].object, &mismatches);
		else if (i == 1)
			n = mf_outbound_compare(profile, objects[i].object, &mismatches);
		else
			n = mf_rule_compare(profile, &want.want, objects[i].object,
			                    op->rules, &mismatches);
		if (i == 2 && legacy) {
			ms_buf_add(&mismatches, "Name: a rule of the previous version, for this domain alone: setup folds it into the shared rules\n");
			n++;
		}
		if (i == 2 && !cJSON_AddNumberToObject(entry, "priority",
		                (double)ms_field_long(objects[i].object, "Priority", -1)))
			goto fail;
		fields = cJSON_AddArrayToObject(entry, "mismatches");
		if (!fields || mismatches.failed) {
			ms_buf_free(&mismatches);
			goto fail;
		}
		for (line = mismatches.data; line && *line;) {
			size_t len = strcspn(line, "\n");
			char *one = ms_printf("%.*s", (int)len, line);

			if (!one || !cJSON_AddItemToArray(fields, cJSON_CreateString(one))) {
				free(one);
				ms_buf_free(&mismatches);
				goto fail;
			}
			ms_buf_addf(details, "%s '%s' %s\n", objects[i].what,
			            objects[i].name, one);
			free(one);
			line += len;
			if (*line)
				line++;
		}
		*differences += n;
		ms_buf_free(&mismatches);
	}
	choice_free(&want);
	return details->failed ? -1 : 0;
fail:
	choice_free(&want);
	return -1;
}

/* ------------------------------------------------------------------ */
/* Plugin operations */

static int mf_init(const struct mailmode_host *host, const char *section,
                   void **ctx_out, struct mailmode_diag *diag)
{
	struct mf_ctx *ctx;

	*ctx_out = NULL;
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx || pthread_mutex_init(&ctx->lock, NULL) != 0) {
		free(ctx);
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory starting mailflow");
		return MAILMODE_ERR_NOMEM;
	}
	ctx->host = host;
	ctx->mode_section = ms_strdup(section ? section : "mode mailflow");
	if (!ctx->mode_section) {
		pthread_mutex_destroy(&ctx->lock);
		free(ctx);
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory starting mailflow");
		return MAILMODE_ERR_NOMEM;
	}
	*ctx_out = ctx;
	return MAILMODE_OK;
}

static void mf_fini(void *opaque)
{
	struct mf_ctx *ctx = opaque;

	if (!ctx)
		return;
	mf_tenants_free(ctx);
	pthread_mutex_destroy(&ctx->lock);
	free(ctx->mode_section);
	free(ctx);
}

static int mf_validate_config(void *opaque, const struct mailmode_request *req,
                              struct mailmode_diag *diag)
{
	struct mf_ctx *ctx = opaque;
	struct mf_profile *profile = NULL;
	int rc;

	rc = mf_profile_load(ctx->host, ctx->mode_section, req->section, &profile, diag);
	if (rc == MAILMODE_OK)
		rc = ms_credentials_check(ctx->host, &profile->app, diag);
	mf_profile_free(profile);
	return rc;
}

/* ABI 1.1: Exchange Online throttles per tenant. */
static int mf_resources(void *opaque, const struct mailmode_request *req, char **resources,
                        struct mailmode_diag *diag)
{
	struct mf_ctx *ctx = opaque;
	struct mf_profile *profile = NULL;
	char *line = NULL;
	int rc;

	*resources = NULL;
	rc = mf_profile_load(ctx->host, ctx->mode_section, req->section, &profile, diag);
	if (rc == MAILMODE_OK && asprintf(&line, "tenant %s", profile->tenant) < 0)
		rc = MAILMODE_ERR_NOMEM;
	if (rc == MAILMODE_OK) {
		*resources = ctx->host->strdup(line);
		rc = *resources ? MAILMODE_OK : MAILMODE_ERR_NOMEM;
	}
	free(line);
	mf_profile_free(profile);
	return rc;
}

/* After a refused write, the receipt without what was refused, so that
 * the rollback does not wait for an object that cannot appear.  When this
 * cannot be stored, the last checkpoint stands: teardown then waits out
 * the visibility window. */
static void forget_refused(struct op *op, const cJSON *receipt)
{
	struct mailmode_diag diag = { 0 };

	if (checkpoint(op, receipt, &diag) != MAILMODE_OK)
		op->host->log(op->host->handle, MAILMODE_LOG_WARNING,
		              "could not record that the last write was refused: %s",
		              diag.summary);
}

static int mf_setup(void *opaque, const struct mailmode_request *req,
                    char **receipt_out, struct mailmode_diag *diag)
{
	struct op op;
	cJSON *receipt = NULL;
	char *text = NULL;
	int rc;

	*receipt_out = NULL;
	rc = op_begin(opaque, req, 0, &op, diag);
	if (rc != MAILMODE_OK)
		goto out;
	op.keep_notes = mf_notes_kept(op.host);
	rc = preflight(&op, diag);
	if (rc != MAILMODE_OK)
		goto out;
	receipt = cJSON_CreateObject();
	if (!receipt)
		goto nomem;
	rc = reconcile(&op, 1, NULL, receipt, diag);
	if (rc != MAILMODE_OK && rc != MAILMODE_ERR_UNKNOWN && op.checkpoints)
		forget_refused(&op, receipt);
	if (rc != MAILMODE_OK)
		goto out;
	text = cJSON_PrintUnformatted(receipt);
	if (!text || !(*receipt_out = op.host->strdup(text)))
		goto nomem;
	report_warnings(&op, diag, "setup");
	goto out;
nomem:
	op.host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory");
	rc = MAILMODE_ERR_NOMEM;
out:
	free(text);
	cJSON_Delete(receipt);
	op_end(&op);
	return rc;
}

/* What teardown reads, without its checks: a teardown must work on a
 * tenant that no longer accepts the domain or went dormant. */
static int teardown_reads(struct op *op, struct mailmode_diag *diag)
{
	cJSON *value = NULL;
	int64_t now = wall_ms(op);
	int rc;

	op->host->progress(op->host->handle, "checking tenant %s", op->profile->tenant);
	/* Read once per TENANT_FACTS_MS in a run, as setup's check is: a
	 * runbook tearing down 1,000 domains of a tenant needs it once. */
	if (!op->tenant->organization_checked_ms ||
	    now - op->tenant->organization_checked_ms >= TENANT_FACTS_MS) {
		rc = invoke(op, "Get-OrganizationConfig", NULL, &value, diag);
		if (rc == MAILMODE_OK &&
		    ms_field_bool(cJSON_GetArrayItem(value, 0), "IsDehydrated") != 1)
			op->tenant->organization_checked_ms = now;
		cJSON_Delete(value);
		if (rc != MAILMODE_OK)
			return rc;
	}
	rc = read_accepted(op, ACCEPTED_FRESH_MS, diag);
	if (rc == MAILMODE_OK)
		rc = read_world(op, 1, diag);
	return rc;
}

/* ABI 1.2: before a switch changes anything, the token is acquired and
 * every read setup or teardown starts with succeeds (a tenant refusing
 * the app answers 403: MAILMODE_ERR_DENIED naming the missing grant);
 * setup's own checks (accepted domain, dormancy, conflicts) run too.
 * No writes: Exchange has no way to test a write without making it. */
static int mf_preflight(void *opaque, const struct mailmode_request *req,
                        enum mailmode_plan_op which, struct mailmode_diag *diag)
{
	struct op op;
	int rc;

	rc = op_begin(opaque, req, which == MAILMODE_PLAN_TEARDOWN, &op, diag);
	op.read_only = 1;   /* writes nothing */
	if (rc == MAILMODE_OK)
		rc = which == MAILMODE_PLAN_SETUP ? preflight(&op, diag)
		                                  : teardown_reads(&op, diag);
	if (rc == MAILMODE_OK)
		report_warnings(&op, diag, "preflight");
	op_end(&op);
	return rc;
}

/* plan() and plan_actions(): the same walk as setup's (reconcile) or
 * teardown's (unmake), writing nothing. */
static int build_plan(void *opaque, const struct mailmode_request *req,
                      enum mailmode_plan_op which, struct mf_plan *plan,
                      struct mailmode_diag *diag)
{
	struct op op;
	cJSON *receipt = NULL;
	int rc;

	rc = op_begin(opaque, req, which == MAILMODE_PLAN_TEARDOWN, &op, diag);
	op.read_only = 1;   /* writes nothing */
	if (rc != MAILMODE_OK)
		goto out;
	if (mf_plan_init(plan, op.profile->tenant) != 0)
		goto nomem;
	if (which == MAILMODE_PLAN_SETUP && (rc = preflight(&op, diag)) != MAILMODE_OK)
		goto out;
	mf_plan_note(plan, "note", NULL, NULL, 0, "tenant %s, service %s, domain %s",
	             op.profile->tenant, op.profile->service, req->domain);
	if (which == MAILMODE_PLAN_SETUP) {
		receipt = cJSON_CreateObject();
		if (!receipt)
			goto nomem;
		rc = reconcile(&op, 0, plan, receipt, diag);
	} else {
		rc = unmake(&op, 0, plan, diag);
	}
	if (rc != MAILMODE_OK)
		goto out;
	if (plan->failed || plan->text.failed)
		goto nomem;
	report_warnings(&op, diag, "plan");
	goto out;
nomem:
	op.host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory");
	rc = MAILMODE_ERR_NOMEM;
out:
	cJSON_Delete(receipt);
	op_end(&op);
	return rc;
}

/* The plan as plan() hands it back (its lines) or plan_actions() (the
 * JSON actions). */
static int plan_as(void *opaque, const struct mailmode_request *req,
                   enum mailmode_plan_op which, int as_actions, char **out,
                   struct mailmode_diag *diag)
{
	const struct mailmode_host *host = ((struct mf_ctx *)opaque)->host;
	struct mf_plan plan = { 0 };
	int rc = build_plan(opaque, req, which, &plan, diag);
	char *json = NULL;

	*out = NULL;
	if (rc == MAILMODE_OK && as_actions && (json = cJSON_PrintUnformatted(plan.actions)))
		*out = host->strdup(json);
	else if (rc == MAILMODE_OK && !as_actions)
		*out = host->strdup(plan.text.data ? plan.text.data : "");
	if (rc == MAILMODE_OK && !*out) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory");
		rc = MAILMODE_ERR_NOMEM;
	}
	free(json);
	mf_plan_free(&plan);
	return rc;
}

static int mf_plan(void *opaque, const struct mailmode_request *req,
                   enum mailmode_plan_op which, char **plan_out,
                   struct mailmode_diag *diag)
{
	return plan_as(opaque, req, which, 0, plan_out, diag);
}

static int mf_plan_actions(void *opaque, const struct mailmode_request *req,
                           enum mailmode_plan_op which, char **actions,
                           struct mailmode_diag *diag)
{
	return plan_as(opaque, req, which, 1, actions, diag);
}

/* A receipt none of whose entries waits on an outcome (a write whose
 * answer was lost, or one the listing may not show yet). */
static int receipt_settled(const struct op *op)
{
	const cJSON *entry;

	cJSON_ArrayForEach(entry, op->receipt) {
		const char *state = ms_field_str(entry, "state");

		if (state && (ms_strcaseeq(state, "creating") || ms_strcaseeq(state, "updating") ||
		              ms_strcaseeq(state, "leaving") || ms_strcaseeq(state, "removing") ||
		              ms_strcaseeq(state, "waiting")))
			return 0;
	}
	return 1;
}

/* verify reads everything afresh, accepted domains included (their
 * subdomains are compared); observe (status) takes the tenant's cached
 * read when the receipt waits on nothing, and compares no accepted
 * domains: status of a tenant's N domains then costs the three reads of
 * one. */
static int read_back(struct op *op, cJSON **report, int *missing,
                     int *differences, struct ms_buf *details,
                     struct mailmode_diag *diag)
{
	int rc = read_world(op, op->read_only && receipt_settled(op), diag);

	if (rc == MAILMODE_OK && !op->read_only)
		rc = read_accepted(op, TENANT_FACTS_MS, diag);

	if (rc != MAILMODE_OK)
		return rc;
	*report = cJSON_CreateObject();
	if (!*report || inspect(op, *report, missing, differences, details) != 0) {
		op->host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory");
		return MAILMODE_ERR_NOMEM;
	}
	return MAILMODE_OK;
}

static int hand_back_report(struct op *op, cJSON *report, char **out)
{
	char *text = cJSON_PrintUnformatted(report);

	if (!text)
		return -1;
	*out = op->host->strdup(text);
	free(text);
	return *out ? 0 : -1;
}

static int mf_verify(void *opaque, const struct mailmode_request *req,
                     char **report_out, struct mailmode_diag *diag)
{
	struct op op;
	struct ms_buf details = { 0 };
	cJSON *report = NULL;
	int missing = 0, differences = 0, rc;

	*report_out = NULL;
	rc = op_begin(opaque, req, 1, &op, diag);
	if (rc != MAILMODE_OK)
		goto out;
	rc = read_back(&op, &report, &missing, &differences, &details, diag);
	if (rc != MAILMODE_OK)
		goto out;
	if (hand_back_report(&op, report, report_out) != 0) {
		op.host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory");
		rc = MAILMODE_ERR_NOMEM;
		goto out;
	}
	if (differences) {
		/* Wrong is wrong: waiting will not fix it. */
		op.host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		                  "mailflow for %s in tenant %s differs from profile %s in %d field(s)",
		                  req->domain, op.profile->tenant, req->profile, differences);
		diag_lines(op.host, diag, "", details.data);
		rc = MAILMODE_ERR_NOT_READY;
	} else if (missing) {
		op.host->diag_set(diag, MAILMODE_SEV_ERROR, 1,
		                  "mailflow for %s in tenant %s is not in effect yet: %d of 3 objects not visible",
		                  req->domain, op.profile->tenant, missing);
		diag_lines(op.host, diag, "", details.data);
		op.host->diag_append(diag, "%s", NOT_VISIBLE_HINT);
		rc = MAILMODE_ERR_NOT_READY;
	} else {
		report_warnings(&op, diag, "verify");
	}
out:
	cJSON_Delete(report);
	ms_buf_free(&details);
	op_end(&op);
	return rc;
}

static int mf_observe(void *opaque, const struct mailmode_request *req,
                      enum mailmode_presence *presence, char **report_out,
                      struct mailmode_diag *diag)
{
	struct op op;
	struct ms_buf details = { 0 };
	cJSON *report = NULL;
	int missing = 0, differences = 0, rc;

	*presence = MAILMODE_ABSENT;
	*report_out = NULL;
	rc = op_begin(opaque, req, 1, &op, diag);
	if (rc != MAILMODE_OK)
		goto out;
	op.read_only = 1;
	rc = read_back(&op, &report, &missing, &differences, &details, diag);
	if (rc != MAILMODE_OK)
		goto out;
	/* The domain's rule is what puts it in this mode; connectors alone
	 * may serve the tenant's other domains. */
	if (!mf_shared_rule_of(op.profile, op.rules, req->domain, NULL) &&
	    !legacy_rule(&op, op.rule_name))
		*presence = MAILMODE_ABSENT;
	else if (missing || differences)
		*presence = MAILMODE_PARTIAL;
	else
		*presence = MAILMODE_PRESENT;
	if (!cJSON_AddStringToObject(report, "presence",
	                             *presence == MAILMODE_PRESENT ? "present"
	                             : *presence == MAILMODE_PARTIAL ? "partial"
	                                                             : "absent") ||
	    hand_back_report(&op, report, report_out) != 0) {
		op.host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory");
		rc = MAILMODE_ERR_NOMEM;
		goto out;
	}
	if (*presence == MAILMODE_PARTIAL) {
		op.host->diag_set(diag, MAILMODE_SEV_WARNING, 0,
		                  "mailflow rule for %s exists in tenant %s but the setup is incomplete or differs",
		                  req->domain, op.profile->tenant);
		diag_lines(op.host, diag, "", details.data);
	}
out:
	cJSON_Delete(report);
	ms_buf_free(&details);
	op_end(&op);
	return rc;
}

static int mf_teardown(void *opaque, const struct mailmode_request *req,
                       struct mailmode_diag *diag)
{
	struct op op;
	int rc;

	rc = op_begin(opaque, req, 1, &op, diag);
	op.keep_notes = mf_notes_kept(op.host);
	if (rc == MAILMODE_OK)
		rc = unmake(&op, 1, NULL, diag);
	if (rc == MAILMODE_OK)
		report_warnings(&op, diag, "teardown");
	op_end(&op);
	return rc;
}

MAILMODE_PLUGIN_DEFINE(
	.name = "mailflow",
	.description = "Microsoft 365 connectors and a priority-0 transport rule (Exchange Online admin API)",
	.version = "1.0",
	.caps = MAILMODE_CAP_THREADSAFE,
	.init = mf_init,
	.fini = mf_fini,
	.validate_config = mf_validate_config,
	.observe = mf_observe,
	.plan = mf_plan,
	.plan_actions = mf_plan_actions,
	.setup = mf_setup,
	.verify = mf_verify,
	.teardown = mf_teardown,
	.resources = mf_resources,
	.trace = mf_trace,
	.preflight = mf_preflight,
	.config_keys = mf_config_keys,
	.doctor = mf_doctor);
