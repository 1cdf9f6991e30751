/*
 * Prints the binary layout of the plugin ABI v1.0: every type, field, constant
 * and size a v1.0 plugin was compiled with.  tests/abi/abi-v1.0.t builds it
 * twice, against the frozen tests/abi/plugin-v1.0.h and against the current
 * <mailmode/plugin.h>, and compares: under the same ABI major, every line
 * the frozen header gives must come out the same for the current one (it
 * may give more: minors append).  A field removed or renamed fails the
 * build instead.
 *
 * Sizes are printed only for structs whose size a plugin fixes: those it
 * allocates (the descriptor, the diagnostic, the HTTP request and response).
 * The host table and the request are allocated by the host and may grow at
 * the end (they carry struct_size), so only their field offsets are printed.
 */
#include <mailmode/plugin.h>

#include <stddef.h>
#include <stdio.h>

#define SIZE(type) printf("sizeof %s %zu\n", #type, sizeof(struct type))
#define FIELD(type, field) \
	printf("offsetof %s.%s %zu size %zu\n", #type, #field, offsetof(struct type, field), \
	       sizeof(((struct type *)0)->field))
#define VALUE(name) printf("value %s %lld\n", #name, (long long)(name))

int main(void)
{
	printf("abi major %d\n", MAILMODE_ABI_MAJOR);
	printf("symbol %s\n", MAILMODE_PLUGIN_SYMBOL);

	SIZE(mailmode_plugin);
	FIELD(mailmode_plugin, abi_major);
	FIELD(mailmode_plugin, abi_minor);
	FIELD(mailmode_plugin, struct_size);
	FIELD(mailmode_plugin, name);
	FIELD(mailmode_plugin, description);
	FIELD(mailmode_plugin, version);
	FIELD(mailmode_plugin, caps);
	FIELD(mailmode_plugin, init);
	FIELD(mailmode_plugin, fini);
	FIELD(mailmode_plugin, validate_config);
	FIELD(mailmode_plugin, observe);
	FIELD(mailmode_plugin, plan);
	FIELD(mailmode_plugin, setup);
	FIELD(mailmode_plugin, verify);
	FIELD(mailmode_plugin, teardown);
	/* Not the reserved slots: a minor version turns the first of them into
	 * an operation, which is allowed; the size stays.  What later minors
	 * added is printed when the header has it, for their frozen copies. */
#if MAILMODE_ABI_MINOR >= 1
	FIELD(mailmode_plugin, resources);
#endif

	FIELD(mailmode_host, struct_size);
	FIELD(mailmode_host, abi_major);
	FIELD(mailmode_host, abi_minor);
	FIELD(mailmode_host, handle);
	FIELD(mailmode_host, log);
	FIELD(mailmode_host, config_get);
	FIELD(mailmode_host, secret_load);
	FIELD(mailmode_host, secret_free);
	FIELD(mailmode_host, config_path);
	FIELD(mailmode_host, http_session_new);
	FIELD(mailmode_host, http_session_free);
	FIELD(mailmode_host, http_request);
	FIELD(mailmode_host, http_response_free);
	FIELD(mailmode_host, clock_wall_ms);
	FIELD(mailmode_host, clock_mono_ms);
	FIELD(mailmode_host, sleep_ms);
	FIELD(mailmode_host, progress);
	FIELD(mailmode_host, alloc);
	FIELD(mailmode_host, strdup);
	FIELD(mailmode_host, free);
	FIELD(mailmode_host, diag_set);
	FIELD(mailmode_host, diag_append);

	FIELD(mailmode_request, struct_size);
	FIELD(mailmode_request, domain);
	FIELD(mailmode_request, profile);
	FIELD(mailmode_request, section);
	FIELD(mailmode_request, receipt);
	FIELD(mailmode_request, flags);

	SIZE(mailmode_diag);
	FIELD(mailmode_diag, severity);
	FIELD(mailmode_diag, retryable);
	FIELD(mailmode_diag, summary);
	FIELD(mailmode_diag, detail);
	VALUE(MAILMODE_DIAG_SUMMARY_MAX);
	VALUE(MAILMODE_DIAG_DETAIL_MAX);

	SIZE(mailmode_http_request);
	FIELD(mailmode_http_request, method);
	FIELD(mailmode_http_request, url);
	FIELD(mailmode_http_request, headers);
	FIELD(mailmode_http_request, body);
	FIELD(mailmode_http_request, body_len);
	FIELD(mailmode_http_request, ca_file);
	FIELD(mailmode_http_request, timeout_ms);
	FIELD(mailmode_http_request, retry_budget_ms);

	SIZE(mailmode_http_response);
	FIELD(mailmode_http_response, status);
	FIELD(mailmode_http_response, body);
	FIELD(mailmode_http_response, body_len);
	FIELD(mailmode_http_response, headers);
	FIELD(mailmode_http_response, attempts);

	VALUE(MAILMODE_OK);
	VALUE(MAILMODE_ERR_FAILED);
	VALUE(MAILMODE_ERR_CONFIG);
	VALUE(MAILMODE_ERR_NOT_READY);
	VALUE(MAILMODE_ERR_CONFLICT);
	VALUE(MAILMODE_ERR_DENIED);
	VALUE(MAILMODE_ERR_UNKNOWN);
	VALUE(MAILMODE_ERR_NOMEM);
	VALUE(MAILMODE_SEV_NONE);
	VALUE(MAILMODE_SEV_INFO);
	VALUE(MAILMODE_SEV_WARNING);
	VALUE(MAILMODE_SEV_ERROR);
	VALUE(MAILMODE_LOG_DEBUG);
	VALUE(MAILMODE_LOG_INFO);
	VALUE(MAILMODE_LOG_WARNING);
	VALUE(MAILMODE_LOG_ERROR);
	VALUE(MAILMODE_REQ_FORCE);
	VALUE(MAILMODE_REQ_ACCEPT_CONFLICTS);
	VALUE(MAILMODE_REQ_ADOPTED);
	VALUE(MAILMODE_ABSENT);
	VALUE(MAILMODE_PRESENT);
	VALUE(MAILMODE_PARTIAL);
	VALUE(MAILMODE_PLAN_SETUP);
	VALUE(MAILMODE_PLAN_TEARDOWN);
	VALUE(MAILMODE_CAP_THREADSAFE);
	VALUE(MAILMODE_CAP_ADOPT);
	VALUE(MAILMODE_CAP_FORCE);
	return 0;
}
