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
