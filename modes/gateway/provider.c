/*
 * The provider [dns NAME] provider = names (config.c has parsed it).
 */
#include "provider.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int gw_provider_open(struct gw_op *op, bool need_secret,
                     struct gw_provider **provider)
{
	switch (op->cfg->provider) {
	case GW_PROVIDER_CLOUDFLARE:
		return gw_cloudflare_open(op, provider);
	case GW_PROVIDER_GCLOUD:
		return gw_gcloud_open(op, provider);
	case GW_PROVIDER_AZURE:
		return gw_azure_open(op, provider);
	case GW_PROVIDER_RFC2136:
	default:
		return gw_rfc2136_open(op, need_secret, provider);
	}
}

int gw_provider_check_credentials(const struct gw_ctx *ctx,
                                  const struct gw_config *cfg,
                                  struct mailmode_diag *diag)
{
	char *secret = NULL;
	int rc;

	switch (cfg->provider) {
	case GW_PROVIDER_CLOUDFLARE:
		return gw_cloudflare_check_credentials(ctx, cfg, diag);
	case GW_PROVIDER_GCLOUD:
		return gw_gcloud_check_credentials(ctx, cfg, diag);
	case GW_PROVIDER_AZURE:
		return gw_azure_check_credentials(ctx, cfg, diag);
	case GW_PROVIDER_RFC2136:
	default:
		rc = gw_config_load_secret(ctx, cfg, &secret, diag);
		if (secret)
			ctx->host->secret_free(ctx->host->handle, secret);
		return rc;
	}
}

void gw_append_line(char *buf, size_t len, const char *fmt, ...)
{
	size_t used = strlen(buf);
	va_list ap;

	if (used + 1 >= len)
		return;
	if (used > 0) {
		buf[used++] = '\n';
		buf[used] = '\0';
	}
	va_start(ap, fmt);
	vsnprintf(buf + used, len - used, fmt, ap);
	va_end(ap);
}


/* A quiet re-read: is the replacement live? */
static bool ours_live(struct gw_provider *provider, const char *name,
                      const struct gw_mx_set *replacement, const char *label)
{
	struct gw_op *op = provider->op;
	const struct mailmode_host *host = op->ctx->host;
	struct mailmode_diag scratch = { 0 }, *saved = op->diag;
	struct gw_rrset_version live;
	int rc;

	op->diag = &scratch;
	rc = provider->ops->get_rrset(provider, name, &live);
	op->diag = saved;
	if (rc != MAILMODE_OK || !gw_mx_set_same(&live.rrset, replacement))
		return false;
	host->log(host->handle, MAILMODE_LOG_WARNING, "%s: %s refused the "
	          "change, and the new MX set is live: an earlier copy of the "
	          "change landed", name, label);
	return true;
}

enum gw_replace_outcome gw_provider_cas_refused(struct gw_provider *provider,
                                                const char *name,
                                                const struct gw_mx_set *replacement,
                                                int attempts, const char *label,
                                                const char *errors)
{
	const struct gw_op *op = provider->op;
	const struct mailmode_host *host = op->ctx->host;

	if (ours_live(provider, name, replacement, label))
		return GW_REPLACE_OK;
	if (attempts > 1) {
		host->diag_set(op->diag, MAILMODE_SEV_ERROR, 1, "%s refused the "
		               "retried change of %s (%s): the first attempt may "
		               "have been applied, outcome unknown", label, name,
		               errors);
		return GW_REPLACE_UNKNOWN;
	}
	host->diag_set(op->diag, MAILMODE_SEV_ERROR, 0, "the MX set of %s changed "
	               "at %s between our read and our change (%s): someone else "
	               "is editing it; nothing was changed by mailmode", name,
	               label, errors);
	return GW_REPLACE_CONFLICT;
}
