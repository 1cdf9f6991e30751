/*
 * The tenant entries: one per token URL and client id, each with its
 * connection (an HTTP session reused across calls and the token cache,
 * lib/ms) and the tenant's cached reads, locked for a whole operation.
 */
#include "mailflow.h"

#include <stdlib.h>
#include <string.h>

static void tenant_free(const struct mailmode_host *host, struct mf_tenant *t)
{
	if (!t)
		return;
	ms_session_free(host, &t->session);
	pthread_mutex_destroy(&t->lock);
	cJSON_Delete(t->accepted);
	cJSON_Delete(t->rules);
	cJSON_Delete(t->outbound);
	cJSON_Delete(t->inbound);
	free(t->key);
	free(t);
}

int mf_tenant_acquire(struct mf_ctx *ctx, const struct mf_profile *profile,
                      struct mf_tenant **out, struct mailmode_diag *diag)
{
	const struct mailmode_host *host = ctx->host;
	struct mf_tenant *t = NULL;
	char *key;
	int rc = MAILMODE_ERR_NOMEM;

	*out = NULL;
	key = ms_printf("%s/%s\n%s", profile->login_url, profile->tenant,
	                profile->client_id);
	if (!key)
		goto nomem;
	pthread_mutex_lock(&ctx->lock);
	for (t = ctx->tenants; t; t = t->next)
		if (strcmp(t->key, key) == 0)
			break;
	if (!t) {
		t = calloc(1, sizeof(*t));
		if (!t || pthread_mutex_init(&t->lock, NULL) != 0) {
			free(t);
			pthread_mutex_unlock(&ctx->lock);
			goto nomem;
		}
		t->key = key;
		key = NULL;
		if (ms_session_init(host, &t->session) != MAILMODE_OK) {
			tenant_free(host, t);
			pthread_mutex_unlock(&ctx->lock);
			goto nomem;
		}
		t->next = ctx->tenants;
		ctx->tenants = t;
	}
	pthread_mutex_unlock(&ctx->lock);
	/* Held for the whole operation: the tenant's connectors and rule
	 * priorities are shared by its domains, and the session must not be
	 * used by two threads at once. */
	pthread_mutex_lock(&t->lock);
	*out = t;
	rc = MAILMODE_OK;
	goto out;
nomem:
	host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
	               "out of memory preparing the connection to tenant %s",
	               profile->tenant);
out:
	free(key);
	return rc;
}

void mf_tenant_release(struct mf_tenant *tenant)
{
	if (tenant)
		pthread_mutex_unlock(&tenant->lock);
}

void mf_tenants_free(struct mf_ctx *ctx)
{
	while (ctx->tenants) {
		struct mf_tenant *next = ctx->tenants->next;

		tenant_free(ctx->host, ctx->tenants);
		ctx->tenants = next;
	}
}
