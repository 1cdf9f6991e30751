/*
 * The ABI 1.4 mx_ttl operation: the TTL of the MX set in the zone the
 * profile names, lowered ahead of a change window and put back on undo.
 *
 * The records stay the same; only their TTLs change, in one
 * compare-and-swap through the provider seam (swap.c), checkpointed first.
 * What the TTLs were before is the "before" set of the checkpoint and of
 * the report, handed back in req->prepared: a LOWER run again after a kill
 * keeps it (the live TTLs may be the lowered ones by then), RESTORE puts
 * it back.
 *
 * While the domain is in another mode the set is the one a gateway setup
 * replaces (Microsoft's MX): it is kept as the original with the TTLs
 * before, so that the teardown after a switch restores those, not the
 * lowered ones.  While the domain is in gateway mode it is the gateway set
 * of the receipt, which is handed back with the new TTLs (verify checks
 * them exactly).
 */
#include "provider.h"

#include <cjson/cJSON.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int gw_prepared_before(const struct gw_call *call, struct gw_mx_set *before, bool *has_before)
{
	const struct mailmode_request *req = call->req;
	cJSON *root;
	int rc;

	*has_before = false;
	if (req->struct_size < offsetof(struct mailmode_request, prepared) +
	                               sizeof(req->prepared) || !req->prepared)
		return MAILMODE_OK;
	root = cJSON_Parse(req->prepared);
	rc = gw_mx_set_from_json(cJSON_GetObjectItemCaseSensitive(root, "before"), before);
	cJSON_Delete(root);
	if (rc != MAILMODE_OK) {
		call->op.ctx->host->diag_set(call->op.diag, MAILMODE_SEV_ERROR, 0,
		                             "the TTLs recorded by the prepare of %s have no "
		                             "valid \"before\" list", req->domain);
		return MAILMODE_ERR_FAILED;
	}
	*has_before = true;
	return MAILMODE_OK;
}

/* The records of live with each TTL at most ttl (LOWER) or as in before
 * (RESTORE). */
static void target_set(const struct gw_mx_set *live, const struct gw_mx_set *before,
                       enum mailmode_ttl_action action, uint32_t ttl,
                       struct gw_mx_set *target)
{
	size_t i;

	*target = action == MAILMODE_TTL_RESTORE ? *before : *live;
	for (i = 0; action == MAILMODE_TTL_LOWER && i < target->count; i++)
		if (target->mx[i].ttl > ttl)
			target->mx[i].ttl = ttl;
}

/* Whether the live set is the domain's gateway set (it is in this mode):
 * the receipt's, or whatever an adopted domain has (it has no receipt). */
static bool in_mode(const struct gw_call *call, const struct gw_mx_set *live)
{
	if (call->req->flags & MAILMODE_REQ_ADOPTED)
		return true;
	return call->has_receipt && gw_mx_set_equal(live, &call->receipt.gateway);
}

/* {"version":1,"zone":..,"ttl":N,"before":[..]} plus, in a checkpoint,
 * the write; in a report what the core shows and stores. */
static cJSON *render_state(const struct gw_call *call, uint32_t ttl,
                           const struct gw_mx_set *before)
{
	cJSON *root = cJSON_CreateObject();

	if (!root || !cJSON_AddNumberToObject(root, "version", 1) ||
	    !cJSON_AddStringToObject(root, "zone", call->op.zone) ||
	    !cJSON_AddNumberToObject(root, "ttl", ttl) ||
	    !cJSON_AddItemToObject(root, "before", gw_mx_set_json(before))) {
		cJSON_Delete(root);
		return NULL;
	}
	return root;
}

static char *host_text(const struct gw_call *call, cJSON *root)
{
	char *text = root ? cJSON_PrintUnformatted(root) : NULL;
	char *copy = text ? call->op.ctx->host->strdup(text) : NULL;

	cJSON_free(text);
	cJSON_Delete(root);
	return copy;
}

static int checkpoint_write(struct gw_call *call, uint32_t ttl, const struct gw_mx_set *before,
                            const struct gw_mx_set *from, const struct gw_mx_set *to,
                            const char *doing)
{
	const struct mailmode_host *host = call->op.ctx->host;
	cJSON *root = render_state(call, ttl, before), *write = NULL;
	char object[GW_NAME_MAX + 8], *text;
	int rc;

	snprintf(object, sizeof(object), "MX %s", call->op.domain);
	if (root && (write = cJSON_AddObjectToObject(root, "write")) != NULL) {
		cJSON_AddStringToObject(write, "object", object);
		cJSON_AddStringToObject(write, "doing", doing);
		cJSON_AddItemToObject(write, "from", gw_mx_set_json(from));
		cJSON_AddItemToObject(write, "to", gw_mx_set_json(to));
	}
	text = write ? host_text(call, root) : NULL;
	if (!write)
		cJSON_Delete(root);
	if (!text)
		return MAILMODE_ERR_NOMEM;
	rc = host->checkpoint(host->handle, call->req, text, call->op.diag);
	host->free(text);
	if (rc != MAILMODE_OK)
		host->diag_append(call->op.diag, "the UPDATE of %s MX was not sent: its "
		                  "checkpoint could not be stored", call->op.domain);
	return rc;
}

/* The records as they stand refuse a change: edited since the prepare. */
static int refuse_changed(const struct gw_call *call, const struct gw_mx_set *live,
                          const struct gw_mx_set *before)
{
	char diff[MAILMODE_DIAG_SUMMARY_MAX];

	gw_mx_set_diff(live, before, diff, sizeof(diff));
	call->op.ctx->host->diag_set(call->op.diag, MAILMODE_SEV_ERROR, 0,
	                             "the MX set of %s changed since its TTL was "
	                             "prepared (%s): refusing to touch it",
	                             call->op.domain, diff);
	gw_append_set(&call->op, "live", live);
	gw_append_set(&call->op, "when prepared", before);
	return MAILMODE_ERR_CONFLICT;
}

/* The write of LOWER or RESTORE: the original kept first when the domain
 * is not in this mode, then the checkpoint, then the compare-and-swap. */
static int write_ttls(struct gw_call *call, struct gw_provider *provider,
                      const struct gw_rrset_version *live, const struct gw_mx_set *before,
                      const struct gw_mx_set *target, enum mailmode_ttl_action action,
                      uint32_t ttl)
{
	const bool lowering = action == MAILMODE_TTL_LOWER;
	int rc;

	if (!gw_host_keeps_writes(call)) {
		call->op.ctx->host->diag_set(call->op.diag, MAILMODE_SEV_ERROR, 0,
		                             "the host cannot journal the TTL change of %s",
		                             call->op.domain);
		return MAILMODE_ERR_FAILED;
	}
	if (lowering && !in_mode(call, &live->rrset) && !call->has_original) {
		call->has_original = true;
		call->original = *before;
		rc = gw_keep_original(call);
		if (rc != MAILMODE_OK)
			return rc;
	}
	rc = checkpoint_write(call, ttl, before, &live->rrset, target,
	                      lowering ? "lowering the MX TTL" : "restoring the MX TTL");
	if (rc != MAILMODE_OK)
		return rc;
	return gw_replace_checkpointed(call, provider, live, target);
}

/* The report; "receipt" when the domain is in this mode and its gateway
 * set now has other TTLs. */
static int render_report(const struct gw_call *call, uint32_t ttl,
                         const struct gw_mx_set *before, const struct gw_mx_set *now,
                         bool changed, char **report)
{
	cJSON *root = render_state(call, ttl, before);
	struct gw_receipt receipt;
	char *text;

	if (!root)
		return MAILMODE_ERR_NOMEM;
	cJSON_AddNumberToObject(root, "ttl_before", gw_mx_set_max_ttl(before));
	cJSON_AddNumberToObject(root, "ttl_now", gw_mx_set_max_ttl(now));
	cJSON_AddBoolToObject(root, "changed", changed);
	cJSON_AddBoolToObject(root, "in_mode", in_mode(call, now));
	cJSON_AddItemToObject(root, "records", gw_mx_set_json(now));
	if (call->has_receipt && in_mode(call, now) &&
	    !gw_mx_set_same(now, &call->receipt.gateway)) {
		receipt = call->receipt;
		receipt.gateway = *now;
		text = gw_receipt_render(call->op.ctx, call->op.domain, &receipt);
		if (!text) {
			cJSON_Delete(root);
			return MAILMODE_ERR_NOMEM;
		}
		cJSON_AddStringToObject(root, "receipt", text);
		call->op.ctx->host->free(text);
	}
	*report = host_text(call, root);
	return *report ? MAILMODE_OK : MAILMODE_ERR_NOMEM;
}

static int run_ttl(struct gw_call *call, struct gw_provider *provider,
                   enum mailmode_ttl_action action, uint32_t ttl, char **report)
{
	struct gw_rrset_version live;
	struct gw_mx_set before, target;
	bool has_before, changed = false;
	int rc;

	rc = gw_prepared_before(call, &before, &has_before);
	if (rc == MAILMODE_OK)
		rc = provider->ops->get_rrset(provider, call->op.domain, &live);
	if (rc != MAILMODE_OK)
		return rc;
	if (!has_before && action == MAILMODE_TTL_RESTORE) {
		call->op.ctx->host->diag_set(call->op.diag, MAILMODE_SEV_ERROR, 0,
		                             "%s: no TTLs recorded by a prepare to put back",
		                             call->op.domain);
		return MAILMODE_ERR_CONFIG;
	}
	if (!has_before)
		before = live.rrset;
	if (action != MAILMODE_TTL_READ && live.rrset.count == 0) {
		call->op.ctx->host->diag_set(call->op.diag, MAILMODE_SEV_ERROR, 0,
		                             "%s has no MX records in zone %s: no TTL to change",
		                             call->op.domain, call->op.zone);
		return MAILMODE_ERR_CONFIG;
	}
	if (action != MAILMODE_TTL_READ && !gw_mx_set_equal(&live.rrset, &before))
		return refuse_changed(call, &live.rrset, &before);
	target_set(&live.rrset, &before, action, ttl, &target);
	if (action != MAILMODE_TTL_READ && !gw_mx_set_same(&live.rrset, &target)) {
		rc = write_ttls(call, provider, &live, &before, &target, action, ttl);
		if (rc != MAILMODE_OK)
			return rc;
		live.rrset = target;
		changed = true;
	}
	return render_report(call, ttl, &before, &live.rrset, changed, report);
}

int gw_mx_ttl(void *vctx, const struct mailmode_request *req,
              enum mailmode_ttl_action action, uint32_t ttl, char **report,
              struct mailmode_diag *diag)
{
	const struct gw_ctx *ctx = vctx;
	struct gw_call *call = calloc(1, sizeof(*call));
	struct gw_provider *provider = NULL;
	int rc;

	*report = NULL;
	if (!call)
		return MAILMODE_ERR_NOMEM;
	if (action == MAILMODE_TTL_LOWER && ttl == 0) {
		ctx->host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		                    "%s: a TTL of 0 would stop caching altogether; "
		                    "give one of at least 1 second", req->domain);
		rc = MAILMODE_ERR_CONFIG;
		goto out;
	}
	rc = gw_begin_call(ctx, req, diag, true, call);
	if (rc == MAILMODE_OK)
		rc = gw_provider_open(&call->op, action != MAILMODE_TTL_READ, &provider);
	if (rc == MAILMODE_OK)
		rc = run_ttl(call, provider, action, ttl, report);
	if (rc == MAILMODE_OK && action != MAILMODE_TTL_READ)
		ctx->host->log(ctx->host->handle, MAILMODE_LOG_INFO, "%s: MX TTL %s on %s (zone %s)",
		               req->domain, action == MAILMODE_TTL_LOWER ? "lowered" : "restored",
		               provider->where, call->op.zone);
out:
	if (provider)
		provider->ops->close(provider);
	free(call);
	return rc;
}
