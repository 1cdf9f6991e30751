/* The report of a runbook run: loaded from the state DB (the run's rows and
 * each domain's journal), written as HTML, CSV or Markdown. */
#include "report.h"

#include "state_runs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_PHASES 16
#define STATUS_COUNT 6

/* One bar of a domain's timeline. */
struct phase {
	const char *name;            /* "setup", "verify", "settle", "teardown", "rollback" */
	long long start, end;        /* ms since the epoch; end 0: still open */
	int failed;
};

struct rdomain {
	char *domain, *from, *to, *profile, *tenant, *status, *reason, *outcome;
	char *fail_step, *fail_detail;   /* the journal's first failed step */
	int line, attempts;
	long calls;
	long long migration, start, end;
	struct phase phases[MAX_PHASES];
	int nphases;
};

struct tenant_total {
	const char *tenant;
	int domains, by_status[STATUS_COUNT];
	long calls;
	long long busy_ms;           /* sum of the domains' switch times */
};

struct mm_report {
	long long id, started_ms, finished_ms;
	char *runbook, *actor, *options, *started_at, *finished_at;
	struct rdomain *d;
	size_t n, cap;
	int by_status[STATUS_COUNT];
	long calls;
	struct tenant_total *tenants;
	size_t ntenants;
};

/* "not started" last: the bucket for anything else. */
static const char *const statuses[STATUS_COUNT] = {
	"switched", "unchanged", "skipped", "failed", "interrupted", "not started"
};
static const char *const status_keys[STATUS_COUNT] = {
	"switched", "unchanged", "skipped", "failed", "interrupted", "not_started"
};
static const char *const status_colour[STATUS_COUNT] = {
	"#2e7d32", "#546e7a", "#546e7a", "#c62828", "#ef6c00", "#8d6e63"
};

static int status_index(const char *status)
{
	int i;

	for (i = 0; i < STATUS_COUNT - 1; i++)
		if (strcmp(status, statuses[i]) == 0)
			return i;
	return STATUS_COUNT - 1;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* ------------------------------------------------------------------ */
/* Loading */

static int copy_run(const struct mm_run_row *row, void *arg)
{
	struct mm_report *r = arg;

	r->id = row->id;
	r->started_ms = row->started_ms;
	r->finished_ms = row->finished_ms;
	r->runbook = dup_or_null(row->runbook);
	r->actor = dup_or_null(row->actor);
	r->options = dup_or_null(row->options);
	r->started_at = dup_or_null(row->started_at);
	r->finished_at = dup_or_null(row->finished_at);
	return r->runbook && r->actor ? MM_OK : MM_ERR;
}

static int copy_domain(const struct mm_run_domain *d, void *arg)
{
	struct mm_report *r = arg;
	struct rdomain *x;

	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 64;
		struct rdomain *grown = realloc(r->d, cap * sizeof(*grown));

		if (!grown)
			return MM_ERR;
		r->d = grown;
		r->cap = cap;
	}
	x = &r->d[r->n++];
	memset(x, 0, sizeof(*x));
	x->domain = dup_or_null(d->domain);
	x->from = dup_or_null(d->from_mode);
	x->to = dup_or_null(d->to_mode);
	x->profile = dup_or_null(d->profile);
	x->tenant = dup_or_null(d->tenant ? d->tenant : "(none)");
	/* Rows a run left as it went: the process ended before they did. */
	if (strcmp(d->status, "running") == 0) {
		x->status = strdup("interrupted");
		x->reason = dup_or_null("the run ended while this domain was running: resume the run");
	} else if (strcmp(d->status, "pending") == 0) {
		x->status = strdup("not started");
		x->reason = dup_or_null("the run ended before this domain started");
	} else {
		x->status = dup_or_null(d->status);
		x->reason = dup_or_null(d->reason);
	}
	x->outcome = dup_or_null(d->outcome);
	x->line = d->line;
	x->attempts = d->verify_attempts;
	x->calls = d->api_calls;
	x->migration = d->migration_id;
	x->start = d->started_ms;
	x->end = d->finished_ms;
	return x->domain && x->to && x->status && x->tenant ? MM_OK : MM_ERR;
}

/* The timeline bar a journal step belongs to (NULL: none). */
static const char *phase_of(const char *step)
{
	static const char *const map[][2] = {
		{ "setup_new", "setup" }, { "verify_new", "verify" }, { "adopt_confirm", "verify" },
		{ "teardown_old", "teardown" }, { "confirm_old_gone", "teardown" },
		{ "rollback_teardown_new", "rollback" }, { "rollback_confirm_new_gone", "rollback" },
	};
	size_t i;

	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(step, map[i][0]) == 0)
			return map[i][1];
	return NULL;
}

static struct phase *open_phase(struct rdomain *x, const char *name, long long at)
{
	struct phase *last = x->nphases ? &x->phases[x->nphases - 1] : NULL;

	/* teardown_old then confirm_old_gone: one teardown bar. */
	if (last && strcmp(last->name, name) == 0 && last->end) {
		last->end = 0;
		return last;
	}
	if (x->nphases == MAX_PHASES)
		return NULL;
	x->phases[x->nphases] = (struct phase){ .name = name, .start = at };
	return &x->phases[x->nphases++];
}

struct journal_scan {
	struct rdomain *x;
	long long last;              /* the newest time seen */
	int oom;
};

static void close_open(struct rdomain *x, long long at, int failed)
{
	if (x->nphases && !x->phases[x->nphases - 1].end) {
		x->phases[x->nphases - 1].end = at;
		x->phases[x->nphases - 1].failed = failed;
	}
}

static int scan_journal(const struct mm_journal_row *row, void *arg)
{
	struct journal_scan *s = arg;
	const char *name = phase_of(row->step);
	int failed = strcmp(row->phase, "fail") == 0 || strcmp(row->phase, "timeout") == 0;

	if (row->last_ms > s->last || row->at_ms > s->last)
		s->last = row->last_ms > row->at_ms ? row->last_ms : row->at_ms;
	if (!name)
		return MM_OK;
	if (strcmp(row->phase, "begin") == 0) {
		close_open(s->x, row->at_ms, 0);
		open_phase(s->x, name, row->at_ms);
	} else if (strcmp(row->phase, "settle") == 0) {
		close_open(s->x, row->at_ms, 0);
		open_phase(s->x, "settle", row->at_ms);
	} else if (strcmp(row->phase, "end") == 0 || failed) {
		close_open(s->x, row->at_ms, failed);
	}
	if (failed && !s->x->fail_step) {
		s->x->fail_step = strdup(row->step);
		s->x->fail_detail = dup_or_null(row->detail);
		s->oom = !s->x->fail_step;
	}
	return MM_OK;
}

static int load_timeline(struct mm_state *st, struct rdomain *x, char *err)
{
	struct journal_scan s = { .x = x };
	int rc;

	if (!x->migration)
		return MM_OK;
	rc = mm_runs_each_journal(st, x->migration, scan_journal, &s, err);
	/* A step that never ended (a crash, a lost answer) ends at the last
	 * thing the journal saw. */
	close_open(x, s.last, 1);
	if (rc == MM_OK && s.oom) {
		snprintf(err, MM_ERR_MAX, "out of memory");
		rc = MM_ERR;
	}
	return rc;
}

static void add_totals(struct mm_report *r)
{
	size_t i, k;

	for (i = 0; i < r->n; i++) {
		const struct rdomain *x = &r->d[i];
		int s = status_index(x->status);

		r->by_status[s]++;
		r->calls += x->calls;
		for (k = 0; k < r->ntenants && strcmp(r->tenants[k].tenant, x->tenant) != 0; k++)
			;
		if (k == r->ntenants)
			r->tenants[r->ntenants++] = (struct tenant_total){ .tenant = x->tenant };
		r->tenants[k].domains++;
		r->tenants[k].by_status[s]++;
		r->tenants[k].calls += x->calls;
		if (x->start && x->end > x->start)
			r->tenants[k].busy_ms += x->end - x->start;
	}
}

int mm_report_load(struct mm_state *st, long long id, struct mm_report **out, char *err)
{
	struct mm_report *r = calloc(1, sizeof(*r));
	int found = 0, rc = MM_ERR;
	size_t i;

	*out = r;
	if (!r) {
		snprintf(err, MM_ERR_MAX, "out of memory");
		return MM_ERR;
	}
	if ((rc = mm_runs_get(st, id, copy_run, r, &found, err)) != MM_OK)
		return rc;
	if (!found) {
		snprintf(err, MM_ERR_MAX, "run %lld: no such run in the state DB", id);
		return MM_ERR;
	}
	if ((rc = mm_runs_each_domain(st, id, copy_domain, r, err)) != MM_OK)
		return rc;
	for (i = 0; i < r->n; i++)
		if ((rc = load_timeline(st, &r->d[i], err)) != MM_OK)
			return rc;
	if (!(r->tenants = calloc(r->n ? r->n : 1, sizeof(*r->tenants)))) {
		snprintf(err, MM_ERR_MAX, "out of memory");
		return MM_ERR;
	}
	add_totals(r);
	return MM_OK;
}

void mm_report_free(struct mm_report *r)
{
	size_t i;

	if (!r)
		return;
	for (i = 0; i < r->n; i++) {
		struct rdomain *x = &r->d[i];

		free(x->domain), free(x->from), free(x->to), free(x->profile), free(x->tenant);
		free(x->status), free(x->reason), free(x->outcome), free(x->fail_step);
		free(x->fail_detail);
	}
	free(r->d);
	free(r->tenants);
	free(r->runbook), free(r->actor), free(r->options), free(r->started_at);
	free(r->finished_at);
	free(r);
}

/* ------------------------------------------------------------------ */
/* Shared by the formats */

/* The end of the time axis: the run's end, or (a run that did not
 * finish) the last thing any domain did. */
static long long run_end(const struct mm_report *r)
{
	long long end = r->finished_ms;
	size_t i;
	int k;

	for (i = 0; i < r->n; i++) {
		if (r->d[i].end > end)
			end = r->d[i].end;
		for (k = 0; k < r->d[i].nphases; k++)
			if (r->d[i].phases[k].end > end)
				end = r->d[i].phases[k].end;
	}
	return end > r->started_ms ? end : r->started_ms + 1000;
}

static void clock_text(long long ms, char *buf, size_t len, int with_date)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, with_date ? "%Y-%m-%d %H:%M:%S UTC" : "%H:%M:%S", &tm);
}

static void duration_text(long long ms, char *buf, size_t len)
{
	if (ms < 60000)
		snprintf(buf, len, "%.1f s", (double)ms / 1000.0);
	else if (ms < 3600000)
		snprintf(buf, len, "%lld min %02lld s", ms / 60000, ms % 60000 / 1000);
	else
		snprintf(buf, len, "%lld h %02lld min", ms / 3600000, ms % 3600000 / 60000);
}

static long long phase_ms(const struct rdomain *x, const char *name)
{
	long long sum = 0;
	int k;

	for (k = 0; k < x->nphases; k++)
		if (strcmp(x->phases[k].name, name) == 0 && x->phases[k].end > x->phases[k].start)
			sum += x->phases[k].end - x->phases[k].start;
	return sum;
}

static const char *const phase_names[] = { "setup", "verify", "settle", "teardown", "rollback" };
static const char *const phase_colour[] = { "#1f77b4", "#ff9f1c", "#9b59b6", "#2ca02c",
                                            "#d62728" };
#define NPHASE_NAMES (sizeof(phase_names) / sizeof(phase_names[0]))

static const char *colour_of(const char *phase)
{
	size_t i;

	for (i = 0; i < NPHASE_NAMES; i++)
		if (strcmp(phase, phase_names[i]) == 0)
			return phase_colour[i];
	return "#999999";
}

/* The domain, tenant, from and to cells of a domain's table row, each
 * escaped for the format. */
static void domain_cells(FILE *f, const struct rdomain *x, void (*escape)(FILE *, const char *),
                         const char *open, const char *close)
{
	const char *cells[] = { x->domain, x->tenant, x->from ? x->from : "none", x->to };
	size_t i;

	for (i = 0; i < sizeof(cells) / sizeof(cells[0]); i++) {
		fputs(open, f);
		escape(f, cells[i]);
		fputs(close, f);
	}
}

/* ------------------------------------------------------------------ */
/* HTML */

/* Text from the state, safe in HTML text and attribute values; control
 * characters become spaces. */
static void esc(FILE *f, const char *s)
{
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '&')
			fputs("&amp;", f);
		else if (c == '<')
			fputs("&lt;", f);
		else if (c == '>')
			fputs("&gt;", f);
		else if (c == '"')
			fputs("&quot;", f);
		else if (c == '\'')
			fputs("&#39;", f);
		else if ((c < 0x20 && c != '\n') || c == 0x7f)
			fputc(' ', f);
		else
			fputc(c, f);
	}
}

static const char html_style[] =
	"body{font-family:'DejaVu Sans',Arial,sans-serif;margin:24px;color:#212121;"
	"background:#fff}"
	"h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;"
	"border-bottom:2px solid #e0e0e0;padding-bottom:4px}"
	".meta{color:#555;font-size:13px;margin:2px 0}"
	".cards{display:flex;gap:12px;margin:16px 0;flex-wrap:wrap}"
	".card{border:1px solid #ddd;border-radius:6px;padding:8px 16px;min-width:90px;"
	"text-align:center}.card b{display:block;font-size:26px}"
	".card span{font-size:12px;color:#555}"
	"table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #ddd;"
	"padding:3px 8px;text-align:left;vertical-align:top}th{background:#f5f5f5}"
	"td.n{text-align:right}.fail{border-left:4px solid #c62828;background:#fff5f5;"
	"padding:6px 12px;margin:8px 0}.fail h3{margin:0;font-size:14px}"
	"pre{white-space:pre-wrap;word-break:break-word;font-size:12px;margin:4px 0}"
	".legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;"
	"vertical-align:middle}";

static void html_head(FILE *f, const struct mm_report *r)
{
	char start[48], end[48], took[32];
	long long stop = run_end(r);
	int i;

	fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
	           "<title>Runbook run %lld</title><style>%s</style></head><body>\n",
	        r->id, html_style);
	fprintf(f, "<h1>Runbook run %lld: ", r->id);
	esc(f, r->runbook);
	fputs("</h1>\n", f);
	clock_text(r->started_ms, start, sizeof(start), 1);
	clock_text(stop, end, sizeof(end), 1);
	duration_text(stop - r->started_ms, took, sizeof(took));
	fprintf(f, "<p class=\"meta\">Started %s, %s %s (%s) by ", start,
	        r->finished_ms ? "ended" : "did not finish; last activity", end, took);
	esc(f, r->actor);
	fputs("</p>\n<p class=\"meta\">Options: ", f);
	esc(f, r->options);
	fputs("</p>\n<div class=\"cards\">", f);
	fprintf(f, "<div class=\"card\"><b>%zu</b><span>domains</span></div>", r->n);
	for (i = 0; i < STATUS_COUNT; i++)
		fprintf(f, "<div class=\"card\"><b style=\"color:%s\">%d</b><span>%s</span></div>",
		        status_colour[i], r->by_status[i], statuses[i]);
	fprintf(f, "<div class=\"card\"><b>%ld</b><span>API calls</span></div></div>\n", r->calls);
}

/* A tick every 1, 2, 5, 10, 15, 30 s, 1, 2, 5, 10, 15, 30 min or hours:
 * at most about ten on the axis. */
static long long tick_step(long long span)
{
	static const long long steps[] = { 1000, 2000, 5000, 10000, 15000, 30000, 60000,
	                                   120000, 300000, 600000, 900000, 1800000, 3600000 };
	size_t i;

	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
		if (span / steps[i] <= 10)
			return steps[i];
	return (span / 10 / 3600000 + 1) * 3600000;
}

#define LABEL_W 230
#define CHART_W 860
#define ROW_H 18
#define AXIS_H 28

static double x_of(long long t, long long t0, long long t1)
{
	if (t < t0)
		t = t0;
	return LABEL_W + (double)(t - t0) * CHART_W / (double)(t1 - t0);
}

static void svg_axis(FILE *f, long long t0, long long t1, int height)
{
	long long step = tick_step(t1 - t0), t;
	char label[16];

	for (t = t0; t <= t1; t += step) {
		double x = x_of(t, t0, t1);

		clock_text(t, label, sizeof(label), 0);
		fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#e0e0e0\"/>"
		           "<text x=\"%.1f\" y=\"16\" font-size=\"11\" text-anchor=\"middle\""
		           " fill=\"#555\">%s</text>\n",
		        x, AXIS_H - 6, x, height, x, label);
	}
}

static void svg_row(FILE *f, const struct rdomain *x, int y, long long t0, long long t1)
{
	char took[32];
	int k;

	fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"end\" fill=\"%s\">",
	        LABEL_W - 8, y + 13, status_colour[status_index(x->status)]);
	esc(f, x->domain);
	fputs("</text>\n", f);
	for (k = 0; k < x->nphases; k++) {
		const struct phase *p = &x->phases[k];
		double a = x_of(p->start, t0, t1), b = x_of(p->end, t0, t1);

		duration_text(p->end - p->start, took, sizeof(took));
		fprintf(f, "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"12\" fill=\"%s\"%s>"
		           "<title>", a, y + 3, b - a < 2 ? 2.0 : b - a, colour_of(p->name),
		        p->failed ? " stroke=\"#000\" stroke-width=\"1.5\"" : "");
		esc(f, x->domain);
		fprintf(f, ": %s %s%s</title></rect>\n", p->name, took, p->failed ? ", failed" : "");
	}
	if (!x->nphases) {
		fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\" font-style=\"italic\""
		           " fill=\"#757575\">", LABEL_W + 4, y + 13);
		esc(f, x->status);
		if (x->reason) {
			fputs(": ", f);
			esc(f, x->reason);
		}
		fputs("</text>\n", f);
	}
}

static void html_timeline(FILE *f, const struct mm_report *r)
{
	long long t0 = r->started_ms, t1 = run_end(r);
	int height = AXIS_H + (int)r->n * ROW_H + 8;
	size_t i;

	fputs("<h2>Timeline</h2>\n<p class=\"legend\">", f);
	for (i = 0; i < NPHASE_NAMES; i++)
		fprintf(f, "<span style=\"background:%s\"></span>%s", phase_colour[i], phase_names[i]);
	fputs(" &nbsp; (outlined: the step failed; times in UTC)</p>\n", f);
	fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\""
	           " viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"timeline per domain\">\n",
	        LABEL_W + CHART_W + 20, height, LABEL_W + CHART_W + 20, height);
	svg_axis(f, t0, t1, height);
	for (i = 0; i < r->n; i++) {
		if (i % 2)
			fprintf(f, "<rect x=\"0\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#fafafa\"/>\n",
			        AXIS_H + (int)i * ROW_H, LABEL_W + CHART_W, ROW_H);
		svg_row(f, &r->d[i], AXIS_H + (int)i * ROW_H, t0, t1);
	}
	fputs("</svg>\n", f);
}

static void html_tenants(FILE *f, const struct mm_report *r)
{
	char busy[32];
	size_t i;
	int s;

	fputs("<h2>Per tenant</h2>\n<table><tr><th>Tenant</th><th>Domains</th>", f);
	for (s = 0; s < STATUS_COUNT; s++)
		fprintf(f, "<th>%s</th>", statuses[s]);
	fputs("<th>API calls</th><th>Switch time (sum)</th></tr>\n", f);
	for (i = 0; i < r->ntenants; i++) {
		const struct tenant_total *t = &r->tenants[i];

		fputs("<tr><td>", f);
		esc(f, t->tenant);
		fprintf(f, "</td><td class=\"n\">%d</td>", t->domains);
		for (s = 0; s < STATUS_COUNT; s++)
			fprintf(f, "<td class=\"n\">%d</td>", t->by_status[s]);
		duration_text(t->busy_ms, busy, sizeof(busy));
		fprintf(f, "<td class=\"n\">%ld</td><td class=\"n\">%s</td></tr>\n", t->calls, busy);
	}
	fputs("</table>\n", f);
}

static void html_failures(FILE *f, const struct mm_report *r)
{
	size_t i;
	int any = 0;

	fputs("<h2>Failures</h2>\n", f);
	for (i = 0; i < r->n; i++) {
		const struct rdomain *x = &r->d[i];

		if (strcmp(x->status, "failed") != 0)
			continue;
		any = 1;
		fputs("<div class=\"fail\"><h3>", f);
		esc(f, x->domain);
		fputs("</h3><p class=\"meta\">tenant ", f);
		esc(f, x->tenant);
		fputs(", ", f);
		esc(f, x->from ? x->from : "none");
		fputs(" &rarr; ", f);
		esc(f, x->to);
		fputs(", outcome ", f);
		esc(f, x->outcome ? x->outcome : "failed");
		if (x->fail_step) {
			fputs(", failed step ", f);
			esc(f, x->fail_step);
		}
		fputs("</p><pre>", f);
		esc(f, x->reason ? x->reason : "no reason recorded");
		if (x->fail_detail) {
			fputs("\n\nJournal: ", f);
			esc(f, x->fail_detail);
		}
		fputs("</pre></div>\n", f);
	}
	if (!any)
		fputs("<p>None.</p>\n", f);
}

static void html_domains(FILE *f, const struct mm_report *r)
{
	char took[32];
	size_t i;

	fputs("<h2>Domains</h2>\n<table><tr><th>Line</th><th>Domain</th><th>Tenant</th>"
	      "<th>From</th><th>To</th><th>Status</th><th>Time</th><th>Calls</th>"
	      "<th>Reason</th></tr>\n", f);
	for (i = 0; i < r->n; i++) {
		const struct rdomain *x = &r->d[i];

		duration_text(x->end > x->start ? x->end - x->start : 0, took, sizeof(took));
		fprintf(f, "<tr><td class=\"n\">%d</td>", x->line);
		domain_cells(f, x, esc, "<td>", "</td>");
		fprintf(f, "<td style=\"color:%s\">", status_colour[status_index(x->status)]);
		esc(f, x->status);
		fprintf(f, "</td><td class=\"n\">%s</td><td class=\"n\">%ld</td><td>", took, x->calls);
		esc(f, x->reason);
		fputs("</td></tr>\n", f);
	}
	fputs("</table>\n", f);
}

static void write_html(FILE *f, const struct mm_report *r)
{
	html_head(f, r);
	html_timeline(f, r);
	html_tenants(f, r);
	html_failures(f, r);
	html_domains(f, r);
	fputs("</body></html>\n", f);
}

/* ------------------------------------------------------------------ */
/* CSV and Markdown */

/* RFC 4180 quoting; a field a spreadsheet would take for a formula gets a
 * leading apostrophe. */
static void csv_field(FILE *f, const char *s, int last)
{
	const char *p;

	s = s ? s : "";
	fputc('"', f);
	if (strchr("=+-@\t\r", *s) && *s)
		fputc('\'', f);
	for (p = s; *p; p++) {
		if (*p == '"')
			fputc('"', f);
		fputc(*p, f);
	}
	fputs(last ? "\"\r\n" : "\",", f);
}

static void write_csv(FILE *f, const struct mm_report *r)
{
	char num[7][24];
	size_t i, k;

	fputs("run,line,domain,tenant,profile,from,to,status,reason,outcome,started_ms,"
	      "finished_ms,setup_ms,verify_ms,settle_ms,teardown_ms,rollback_ms,"
	      "verify_attempts,api_calls\r\n", f);
	for (i = 0; i < r->n; i++) {
		const struct rdomain *x = &r->d[i];

		fprintf(f, "%lld,%d,", r->id, x->line);
		csv_field(f, x->domain, 0);
		csv_field(f, x->tenant, 0);
		csv_field(f, x->profile, 0);
		csv_field(f, x->from ? x->from : "none", 0);
		csv_field(f, x->to, 0);
		csv_field(f, x->status, 0);
		csv_field(f, x->reason, 0);
		csv_field(f, x->outcome, 0);
		snprintf(num[0], sizeof(num[0]), "%lld", x->start);
		snprintf(num[1], sizeof(num[1]), "%lld", x->end);
		for (k = 0; k < NPHASE_NAMES; k++)
			snprintf(num[2 + k], sizeof(num[0]), "%lld", phase_ms(x, phase_names[k]));
		for (k = 0; k < 7; k++)
			fprintf(f, "%s,", x->start || k >= 2 ? num[k] : "");
		fprintf(f, "%d,%ld\r\n", x->attempts, x->calls);
	}
}

/* A Markdown table cell: no row breaks, no markup, no HTML. */
static void md_cell(FILE *f, const char *s)
{
	for (; s && *s; s++) {
		if (*s == '&')
			fputs("&amp;", f);
		else if (*s == '<')
			fputs("&lt;", f);
		else if (*s == '>')
			fputs("&gt;", f);
		else if (strchr("|\\`*_[]#", *s))
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fputc(' ', f);
		else
			fputc(*s, f);
	}
}

static void md_summary(FILE *f, const struct mm_report *r)
{
	char start[48], end[48], took[32];
	long long stop = run_end(r);
	size_t i;
	int s;

	clock_text(r->started_ms, start, sizeof(start), 1);
	clock_text(stop, end, sizeof(end), 1);
	duration_text(stop - r->started_ms, took, sizeof(took));
	fprintf(f, "# Runbook run %lld: ", r->id);
	md_cell(f, r->runbook);
	fprintf(f, "\n\nStarted %s, %s %s (%s) by ", start,
	        r->finished_ms ? "ended" : "did not finish; last activity", end, took);
	md_cell(f, r->actor);
	fprintf(f, ".\n\n%zu domains:", r->n);
	for (s = 0; s < STATUS_COUNT; s++)
		fprintf(f, "%s %d %s", s ? "," : "", r->by_status[s], statuses[s]);
	fprintf(f, "; %ld API calls.\n\n## Per tenant\n\n| Tenant | Domains |", r->calls);
	for (s = 0; s < STATUS_COUNT; s++)
		fprintf(f, " %s |", statuses[s]);
	fputs(" API calls |\n|---|--:|", f);
	for (s = 0; s < STATUS_COUNT; s++)
		fputs("--:|", f);
	fputs("--:|\n", f);
	for (i = 0; i < r->ntenants; i++) {
		fputs("| ", f);
		md_cell(f, r->tenants[i].tenant);
		fprintf(f, " | %d |", r->tenants[i].domains);
		for (s = 0; s < STATUS_COUNT; s++)
			fprintf(f, " %d |", r->tenants[i].by_status[s]);
		fprintf(f, " %ld |\n", r->tenants[i].calls);
	}
}

static void write_markdown(FILE *f, const struct mm_report *r)
{
	char took[32], phases[5][32];
	size_t i, k;

	md_summary(f, r);
	fputs("\n## Domains\n\n| Line | Domain | Tenant | From | To | Status | Time | Setup | Verify"
	      " | Settle | Teardown | Reason |\n|--:|---|---|---|---|---|--:|--:|--:|--:|--:|---|\n",
	      f);
	for (i = 0; i < r->n; i++) {
		const struct rdomain *x = &r->d[i];

		duration_text(x->end > x->start ? x->end - x->start : 0, took, sizeof(took));
		for (k = 0; k < 4; k++)
			duration_text(phase_ms(x, phase_names[k]), phases[k], sizeof(phases[k]));
		fprintf(f, "| %d | ", x->line);
		domain_cells(f, x, md_cell, "", " | ");
		md_cell(f, x->status);
		fprintf(f, " | %s | %s | %s | %s | %s | ", took, phases[0], phases[1], phases[2],
		        phases[3]);
		md_cell(f, x->reason);
		fputs(" |\n", f);
	}
	fputs("\n## Failures\n\n", f);
	for (i = 0, k = 0; i < r->n; i++) {
		if (strcmp(r->d[i].status, "failed") != 0)
			continue;
		k++;
		fputs("- **", f);
		md_cell(f, r->d[i].domain);
		fputs("**: ", f);
		md_cell(f, r->d[i].reason ? r->d[i].reason : "no reason recorded");
		fputs("\n", f);
	}
	if (!k)
		fputs("None.\n", f);
}

/* ------------------------------------------------------------------ */

static void write_format(FILE *f, const struct mm_report *r, enum mm_report_format fmt)
{
	if (fmt == MM_REPORT_HTML)
		write_html(f, r);
	else if (fmt == MM_REPORT_CSV)
		write_csv(f, r);
	else
		write_markdown(f, r);
}

int mm_report_write(const struct mm_report *r, enum mm_report_format fmt, const char *path,
                    char *err)
{
	char tmp[4096];
	FILE *f;
	int failed;

	if (strcmp(path, "-") == 0) {
		write_format(stdout, r, fmt);
		return fflush(stdout) == 0 ? MM_OK : MM_ERR;
	}
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp)) {
		snprintf(err, MM_ERR_MAX, "report %.300s...: the file name is too long", path);
		return MM_ERR;
	}
	if (!(f = fopen(tmp, "w"))) {
		snprintf(err, MM_ERR_MAX, "report %.300s: cannot write %.400s: %s", path, tmp,
		         strerror(errno));
		return MM_ERR;
	}
	errno = 0;
	write_format(f, r, fmt);
	failed = ferror(f);
	if (fclose(f) != 0 || failed || rename(tmp, path) != 0) {
		snprintf(err, MM_ERR_MAX, "report %.300s: cannot write it: %s", path,
		         errno ? strerror(errno) : "write error");
		unlink(tmp);
		return MM_ERR;
	}
	return MM_OK;
}

static void json_domain(cJSON *list, const struct rdomain *x)
{
	cJSON *item = cJSON_CreateObject(), *phases;
	int k;

	cJSON_AddItemToArray(list, item);
	cJSON_AddNumberToObject(item, "line", x->line);
	cJSON_AddStringToObject(item, "domain", x->domain);
	cJSON_AddStringToObject(item, "tenant", x->tenant);
	cJSON_AddStringToObject(item, "to", x->to);
	cJSON_AddStringToObject(item, "status", x->status);
	if (x->reason)
		cJSON_AddStringToObject(item, "reason", x->reason);
	cJSON_AddNumberToObject(item, "api_calls", (double)x->calls);
	phases = cJSON_AddArrayToObject(item, "phases");
	for (k = 0; k < x->nphases; k++) {
		cJSON *p = cJSON_CreateObject();

		cJSON_AddItemToArray(phases, p);
		cJSON_AddStringToObject(p, "phase", x->phases[k].name);
		cJSON_AddNumberToObject(p, "start_ms", (double)x->phases[k].start);
		cJSON_AddNumberToObject(p, "end_ms", (double)x->phases[k].end);
		cJSON_AddBoolToObject(p, "failed", x->phases[k].failed);
	}
}

void mm_report_json(const struct mm_report *r, cJSON *doc)
{
	cJSON *run = cJSON_AddObjectToObject(doc, "run");
	cJSON *totals = cJSON_AddObjectToObject(doc, "totals");
	cJSON *tenants = cJSON_AddArrayToObject(doc, "tenants");
	cJSON *list = cJSON_AddArrayToObject(doc, "domains");
	size_t i;
	int s;

	cJSON_AddNumberToObject(run, "id", (double)r->id);
	cJSON_AddStringToObject(run, "runbook", r->runbook);
	cJSON_AddStringToObject(run, "actor", r->actor);
	cJSON_AddNumberToObject(run, "started_ms", (double)r->started_ms);
	cJSON_AddNumberToObject(run, "end_ms", (double)run_end(r));
	cJSON_AddBoolToObject(run, "finished", r->finished_ms != 0);
	cJSON_AddNumberToObject(totals, "domains", (double)r->n);
	for (s = 0; s < STATUS_COUNT; s++)
		cJSON_AddNumberToObject(totals, status_keys[s], r->by_status[s]);
	cJSON_AddNumberToObject(totals, "api_calls", (double)r->calls);
	for (i = 0; i < r->ntenants; i++) {
		cJSON *t = cJSON_CreateObject();

		cJSON_AddItemToArray(tenants, t);
		cJSON_AddStringToObject(t, "tenant", r->tenants[i].tenant);
		cJSON_AddNumberToObject(t, "domains", r->tenants[i].domains);
		for (s = 0; s < STATUS_COUNT; s++)
			cJSON_AddNumberToObject(t, status_keys[s], r->tenants[i].by_status[s]);
		cJSON_AddNumberToObject(t, "api_calls", (double)r->tenants[i].calls);
	}
	for (i = 0; i < r->n; i++)
		json_domain(list, &r->d[i]);
}
