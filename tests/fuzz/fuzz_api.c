/* libFuzzer target: answers of the Microsoft 365 APIs as mailflow reads
 * them: the token endpoint's, then the Exchange admin API's
 * (InvokeCommand: pages, errors, throttling), then the objects it returns
 * compared with what the profile wants.  The input is the sequence of
 * HTTP answers, "STATUS\nBODY" parts separated by "\n--\n". */
#include "fakehost.h"
#include "mailflow.h"

#include <cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void compare_all(const struct mf_profile *profile, const cJSON *value)
{
	static const char *const domains[] = { "contoso.test", NULL };
	static const char *const excepted[] = { "sub.contoso.test", NULL };
	const struct mf_rule_want want = { "mailmode route #1", domains, excepted };
	struct ms_buf out = { 0 };
	const cJSON *item;

	cJSON_ArrayForEach(item, value) {
		mf_rule_is_ours(profile, item);
		mf_rule_compare(profile, &want, item, value, &out);
		mf_inbound_compare(profile, item, &out);
		mf_outbound_compare(profile, item, &out);
		mf_rule_routes_to(item, "mailmode outbound to s", "guid");
	}
	mf_find_conflicts(profile, "contoso.test", value, value, value,
	                  &(struct mf_conflicts){ NULL, &out, &out, &out });
	ms_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mf_ctx ctx = { .host = &fake_host };
	struct mf_profile *profile = NULL;
	struct mf_tenant *tenant = NULL;
	struct mailmode_diag diag = { 0 };
	struct ms_exo_error err;
	cJSON *value = NULL;

	fake_answers((const char *)data, size);
	pthread_mutex_init(&ctx.lock, NULL);
	if (mf_profile_load(&fake_host, "mode mailflow", "profile p", &profile, &diag) != 0)
		abort();   /* the fixed profile is valid */
	if (mf_tenant_acquire(&ctx, profile, &tenant, &diag) == MAILMODE_OK) {
		struct ms_exo exo = { .host = &fake_host, .app = &profile->app,
		                      .api_url = profile->api_url,
		                      .session = &tenant->session };

		if (ms_exo_invoke(&exo, "Get-TransportRule", NULL, &value, &err, &diag) ==
		    MAILMODE_OK)
			compare_all(profile, value);
		else {
			ms_exo_error_not_found(&err);
			ms_exo_error_exists(&err);
			ms_exo_error_dehydrated(&err);
			ms_exo_error_inbound_restricted(&err);
		}
		cJSON_Delete(value);
		ms_buf_free(&exo.warnings);
		mf_tenant_release(tenant);
	}
	mf_tenants_free(&ctx);
	pthread_mutex_destroy(&ctx.lock);
	mf_profile_free(profile);
	fake_answers_free();
	return 0;
}
