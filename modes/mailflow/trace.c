/*
 * The message trace of a test message (ABI 1.1 trace, for `mailmode verify
 * --quick-test`): where it went, read with Get-MessageTraceV2.
 *
 * Exchange Online writes one trace row per receipt of the message for a
 * recipient: a message that reaches the tenant from the internet, is routed
 * by the mailflow rule to the service and comes back has two rows; one that
 * came through the gateway has one.  A row's FromIP says who handed the
 * message over: one of the service's sending addresses (the profile's
 * service_ips) means it passed through the service on that way in, so the
 * rows from there count the scans.  Delivered with no ToIP is the delivery
 * to the mailbox; Delivered with a ToIP is the message sent on (to the
 * connector's smart host), whose name Get-MessageTraceDetailV2's "Send
 * external" event gives.
 */
#include "mailflow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Next hops named per call: a looping message is sent to the same host
 * over and over, and one detail lookup per address is enough. */
#define MAX_NAMED_HOPS 8

struct trace_row {
	const cJSON *object;
	size_t index;              /* order in the answer, to keep sorting stable */
	const char *received;      /* ISO 8601, sorts as text */
	const char *status;
	const char *from_ip;
	const char *to_ip;         /* NULL or empty: not sent on */
	const char *trace_id;
};

struct next_hop {
	char *address;
	char *name;                /* NULL when the detail did not say */
	char *connector;           /* the outbound connector it went by, or NULL */
};

/* One trace call: the profile, the locked tenant, what was read. */
struct trace {
	struct mf_ctx *ctx;
	const struct mailmode_host *host;
	const struct mailmode_request *req;
	const char *message_id;
	const char *recipient;
	struct mf_profile *profile;
	struct mf_tenant *tenant;
	struct ms_exo exo;
	cJSON *rows_json;
	struct trace_row *rows;
	size_t nrows;
	struct next_hop hops[MAX_NAMED_HOPS];
	size_t nhops;
};

static int present(const char *s)
{
	return s && *s;
}

static int by_received(const void *a, const void *b)
{
	const struct trace_row *x = a, *y = b;
	int order = strcmp(x->received ? x->received : "", y->received ? y->received : "");

	if (order)
		return order;
	/* Same instant: the service lists newest first. */
	return x->index < y->index ? 1 : x->index > y->index ? -1 : 0;
}

static int read_rows(struct trace *t, struct mailmode_diag *diag)
{
	cJSON *params = cJSON_CreateObject();
	const cJSON *item;
	size_t i = 0;
	int rc;

	if (!params || !cJSON_AddStringToObject(params, "MessageId", t->message_id) ||
	    !cJSON_AddStringToObject(params, "RecipientAddress", t->recipient)) {
		cJSON_Delete(params);
		t->host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory");
		return MAILMODE_ERR_NOMEM;
	}
	rc = ms_exo_invoke(&t->exo, "Get-MessageTraceV2", params, &t->rows_json, NULL, diag);
	cJSON_Delete(params);
	if (rc != MAILMODE_OK)
		return rc;
	t->rows = calloc((size_t)cJSON_GetArraySize(t->rows_json) + 1, sizeof(*t->rows));
	if (!t->rows) {
		t->host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory");
		return MAILMODE_ERR_NOMEM;
	}
	cJSON_ArrayForEach(item, t->rows_json) {
		struct trace_row *row = &t->rows[i];

		if (!cJSON_IsObject(item))
			continue;
		row->object = item;
		row->index = i;
		row->received = ms_field_str(item, "Received");
		row->status = ms_field_str(item, "Status");
		row->from_ip = ms_field_str(item, "FromIP");
		row->to_ip = ms_field_str(item, "ToIP");
		row->trace_id = ms_field_str(item, "MessageTraceId");
		i++;
	}
	t->nrows = i;
	qsort(t->rows, t->nrows, sizeof(*t->rows), by_received);
	return MAILMODE_OK;
}

/* A Send external event's detail names the host as "Message sent to
 * **host** at ..."; a route by connector may add "outbound connector
 * 'NAME'". */
static void names_from_detail(const char *detail, struct next_hop *hop)
{
	static const char connector_mark[] = "outbound connector '";
	const char *start = detail ? strstr(detail, "**") : NULL;
	const char *end = start ? strstr(start + 2, "**") : NULL;
	const char *connector = detail ? strstr(detail, connector_mark) : NULL;
	const char *connector_end;

	if (start && end && end > start + 2)
		hop->name = ms_printf("%.*s", (int)(end - start - 2), start + 2);
	if (connector) {
		connector += strlen(connector_mark);
		connector_end = strchr(connector, '\'');
		if (connector_end && connector_end > connector)
			hop->connector = ms_printf("%.*s", (int)(connector_end - connector), connector);
	}
}

/* The host a row sent the message on to, from the row's events; its name
 * stays NULL when they do not say (the address alone is shown then).  A
 * failure here costs only the name: the trace itself was read. */
static const struct next_hop *next_hop(struct trace *t, const struct trace_row *row)
{
	struct next_hop *hop;
	cJSON *params = NULL, *events = NULL;
	const cJSON *event;
	struct mailmode_diag ignored;
	size_t i;

	for (i = 0; i < t->nhops; i++)
		if (strcmp(t->hops[i].address, row->to_ip) == 0)
			return &t->hops[i];
	if (t->nhops == MAX_NAMED_HOPS || !present(row->trace_id))
		return NULL;
	hop = &t->hops[t->nhops];
	hop->address = ms_strdup(row->to_ip);
	if (!hop->address)
		return NULL;
	t->nhops++;
	params = cJSON_CreateObject();
	if (!params || !cJSON_AddStringToObject(params, "MessageTraceId", row->trace_id) ||
	    !cJSON_AddStringToObject(params, "RecipientAddress", t->recipient))
		goto out;
	memset(&ignored, 0, sizeof(ignored));
	if (ms_exo_invoke(&t->exo, "Get-MessageTraceDetailV2", params, &events, NULL,
	                  &ignored) != MAILMODE_OK) {
		t->host->log(t->host->handle, MAILMODE_LOG_DEBUG, "trace detail of %s: %s",
		             row->trace_id, ignored.summary);
		goto out;
	}
	cJSON_ArrayForEach(event, events) {
		if (ms_strcaseeq(ms_field_str(event, "Event"), "Send external")) {
			names_from_detail(ms_field_str(event, "Detail"), hop);
			break;
		}
	}
out:
	cJSON_Delete(params);
	cJSON_Delete(events);
	return hop;
}

/* Status values whose row will not change any more without delivery. */
static int is_final_failure(const char *status)
{
	return ms_strcaseeq(status, "Failed") || ms_strcaseeq(status, "Quarantined") ||
	       ms_strcaseeq(status, "FilteredAsSpam");
}

/* One line per row: who handed it over and what became of it. */
static char *describe_row(struct trace *t, const struct trace_row *row, int from_service)
{
	struct ms_buf line = { 0 };
	const char *status = row->status ? row->status : "unknown";

	ms_buf_addf(&line, "received from %s", present(row->from_ip) ? row->from_ip : "(unknown)");
	if (from_service)
		ms_buf_addf(&line, " (service %s)", t->profile->service);
	if (ms_strcaseeq(status, "Delivered") && !present(row->to_ip)) {
		ms_buf_addf(&line, ", delivered to %s", t->recipient);
	} else if (ms_strcaseeq(status, "Delivered")) {
		const struct next_hop *hop = next_hop(t, row);

		if (hop && hop->name)
			ms_buf_addf(&line, ", sent on to %s [%s]", hop->name, row->to_ip);
		else
			ms_buf_addf(&line, ", sent on to %s", row->to_ip);
		if (hop && hop->connector)
			ms_buf_addf(&line, " via outbound connector '%s'", hop->connector);
	} else {
		ms_buf_addf(&line, ", status %s", status);
		if (present(row->to_ip))
			ms_buf_addf(&line, " (to %s)", row->to_ip);
	}
	if (line.failed) {
		ms_buf_free(&line);
		return NULL;
	}
	return line.data;
}

static void trace_end(struct trace *t)
{
	size_t i;

	for (i = 0; i < t->nhops; i++) {
		free(t->hops[i].address);
		free(t->hops[i].name);
		free(t->hops[i].connector);
	}
	if (t->exo.calls)
		t->host->log(t->host->handle, MAILMODE_LOG_DEBUG,
		             "%d admin API request(s) for the trace of %s", t->exo.calls,
		             t->message_id);
	mf_tenant_release(t->tenant);
	mf_profile_free(t->profile);
	ms_buf_free(&t->exo.warnings);
	cJSON_Delete(t->rows_json);
	free(t->rows);
}

int mf_trace(void *opaque, const struct mailmode_request *req, const char *message_id,
             const char *recipient, char **report_out, struct mailmode_diag *diag)
{
	struct trace t = { .ctx = opaque, .req = req, .message_id = message_id,
	                   .recipient = recipient };
	cJSON *report = NULL, *hops;
	char *text = NULL;
	int delivered = 0, failed = 0, scans = 0, rc;
	size_t i;

	t.host = t.ctx->host;
	*report_out = NULL;
	rc = mf_profile_load(t.host, t.ctx->mode_section, req->section, &t.profile, diag);
	if (rc != MAILMODE_OK)
		goto out;
	rc = mf_tenant_acquire(t.ctx, t.profile, &t.tenant, diag);
	if (rc != MAILMODE_OK)
		goto out;
	t.exo = (struct ms_exo){ .host = t.host, .app = &t.profile->app,
	                         .api_url = t.profile->api_url,
	                         .session = &t.tenant->session };
	rc = read_rows(&t, diag);
	if (rc != MAILMODE_OK)
		goto out;

	report = cJSON_CreateObject();
	hops = cJSON_CreateArray();
	if (!report || !hops || !cJSON_AddItemToObject(report, "hops", hops))
		goto nomem;
	for (i = 0; i < t.nrows; i++) {
		const struct trace_row *row = &t.rows[i];
		int from_service = mf_is_service_ip(t.profile, row->from_ip);
		char *line;

		scans += from_service;
		if (ms_strcaseeq(row->status, "Delivered") && !present(row->to_ip))
			delivered = 1;
		if (is_final_failure(row->status))
			failed = 1;
		line = describe_row(&t, row, from_service);
		if (!line || !cJSON_AddItemToArray(hops, cJSON_CreateString(line))) {
			free(line);
			goto nomem;
		}
		free(line);
	}
	if (!cJSON_AddBoolToObject(report, "delivered", delivered) ||
	    !cJSON_AddNumberToObject(report, "scans", scans) ||
	    !cJSON_AddNumberToObject(report, "rows", (double)t.nrows))
		goto nomem;
	text = cJSON_PrintUnformatted(report);
	if (!text || !(*report_out = t.host->strdup(text)))
		goto nomem;

	if (delivered) {
		rc = MAILMODE_OK;
	} else if (t.nrows == 0) {
		t.host->diag_set(diag, MAILMODE_SEV_ERROR, 1,
		                 "the message trace of tenant %s lists no message %s to %s yet",
		                 t.profile->tenant, message_id, recipient);
		t.host->diag_append(diag, "Exchange Online's message trace can lag behind by several minutes");
		rc = MAILMODE_ERR_NOT_READY;
	} else {
		/* A failure is final: waiting longer will not deliver it. */
		t.host->diag_set(diag, MAILMODE_SEV_ERROR, !failed,
		                 "message %s to %s %s: %zu trace row(s) in tenant %s",
		                 message_id, recipient,
		                 failed ? "was not delivered" : "is not delivered to the mailbox yet",
		                 t.nrows, t.profile->tenant);
		for (i = 0; i < (size_t)cJSON_GetArraySize(hops); i++)
			t.host->diag_append(diag, "%s", cJSON_GetArrayItem(hops, (int)i)->valuestring);
		rc = MAILMODE_ERR_NOT_READY;
	}
	goto out;
nomem:
	t.host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory");
	t.host->free(*report_out);
	*report_out = NULL;
	rc = MAILMODE_ERR_NOMEM;
out:
	free(text);
	cJSON_Delete(report);
	trace_end(&t);
	return rc;
}
