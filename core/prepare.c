/* The engine's side of the MX TTL plan (prepare.h): the settle time of a
 * switch, its --max-settle cap, and the prepare a switch consumes. */
#include "prepare.h"

#include "migrate_internal.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

void mm_prepare_format_wait(long long ms, char *buf, size_t len)
{
	long long s = ms > 0 ? (ms + 999) / 1000 : 0;

	if (s >= 2 * 3600)
		snprintf(buf, len, "%lld h", (s + 1800) / 3600);
	else if (s >= 120)
		snprintf(buf, len, "%lld min", (s + 30) / 60);
	else
		snprintf(buf, len, "%lld s", s);
}

void mm_prepare_format_time(long long epoch_ms, char *buf, size_t len)
{
	time_t t = (time_t)(epoch_ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

int mm_prepare_refuse_unfinished(struct mm_state *st, const char *domain, char *err)
{
	struct mm_prepare_row row;
	int found = 0, rc = mm_state_prepare_get(st, domain, &row, &found, err);

	if (rc == MM_OK && found && strcmp(row.phase, "lowered") != 0) {
		snprintf(err, MM_ERR_MAX,
		         "%s has an unfinished %s of its MX TTL (%s mode's records): run 'mailmode prepare %s%s' to finish it first",
		         domain, strcmp(row.phase, "restoring") == 0 ? "undo of the prepare" : "prepare",
		         row.mode, strcmp(row.phase, "restoring") == 0 ? "--undo " : "", domain);
		rc = MM_REFUSED;
	}
	mm_prepare_row_clear(&row);
	return rc;
}

/* What cutting the wait short risks, said once and journaled.  The
 * records the new mode replaced are the old mode's way in: a resolver
 * that still holds them sends mail there, and once the old mode is torn
 * down nothing routes that mail through the service any more. */
static void warn_capped(struct mm_run *r, long long until, long long cap_until)
{
	char cut[32], held[32], torn[32], line[MM_ERR_MAX];

	mm_prepare_format_wait(until - cap_until, cut, sizeof(cut));
	mm_prepare_format_time(until, held, sizeof(held));
	mm_prepare_format_time(cap_until, torn, sizeof(torn));
	snprintf(line, sizeof(line),
	         "%s: --max-settle cuts the cache wait short by %s: resolvers that cached the MX records %s mode replaced may send mail for %s to them (the %s mode's path) until %s, but %s mode is torn down at %s; mail arriving that way in between is delivered without passing through the service (not scanned): a bypass window of up to %s",
	         r->m->domain, cut, r->m->to_mode, r->m->domain, r->m->from_mode, held,
	         r->m->from_mode, torn, cut);
	mm_log(r->e->output, MAILMODE_LOG_WARNING, "%s", line);
	/* A journal row, for whoever reads what happened to that mail. */
	mm_state_journal(r->e->state, r->m->id, "verify_new", "settle_capped", line, r->err);
}

/* The prepared records' ready time, when the new mode's are the ones
 * lowered: caches may hold them with the TTL before until then. */
static long long prepared_ready(struct mm_run *r)
{
	struct mm_prepare_row row;
	char err[MM_ERR_MAX];
	int found = 0;
	long long ready = 0;

	if (mm_state_prepare_get(r->e->state, r->m->domain, &row, &found, err) != MM_OK)
		mm_log(r->e->output, MAILMODE_LOG_WARNING, "%s", err);
	else if (found && strcmp(row.mode, r->m->to_mode) == 0)
		ready = row.ready_at_ms;
	mm_prepare_row_clear(&row);
	return ready;
}

long long mm_prepare_settle_until(struct mm_run *r)
{
	long long until = r->settle_until_ms, ready, cap_until;

	if (r->kind != MM_KIND_SWITCH || !r->m->from_mode || until <= 0)
		return 0;
	ready = prepared_ready(r);
	if (ready > until)
		until = ready;
	if (r->opts.max_settle_ms <= 0)
		return until;
	cap_until = mm_migrate_now_ms() + r->opts.max_settle_ms;
	if (cap_until >= until)
		return until;
	warn_capped(r, until, cap_until);
	return cap_until;
}

int mm_prepare_record(struct mm_state *st, const char *domain, const char *mode, char **record,
                      char *err)
{
	struct mm_prepare_row row;
	int found = 0, rc = mm_state_prepare_get(st, domain, &row, &found, err);

	*record = NULL;
	if (rc == MM_OK && found && strcmp(row.mode, mode) == 0 &&
	    strcmp(row.phase, "lowered") == 0) {
		*record = row.record;
		row.record = NULL;
	}
	mm_prepare_row_clear(&row);
	return rc;
}

/* Whether the migration replaced or restored the records mode's prepare
 * lowered: they then carry the TTL the migration gave them.  Not after a
 * rollback: its teardown may have found nothing to undo, and the records
 * keep the lowered TTL. */
static int consumes(const struct mm_migration *m, const char *mode, const char *outcome)
{
	int to = m->to_mode && strcmp(m->to_mode, mode) == 0;
	int from = m->from_mode && strcmp(m->from_mode, mode) == 0;

	return (strcmp(outcome, "switched") == 0 || strcmp(outcome, "done") == 0) && (to || from);
}

void mm_prepare_after_migration(struct mm_engine *e, const struct mm_migration *m,
                                const char *outcome)
{
	struct mm_prepare_row row;
	char err[MM_ERR_MAX];
	int found = 0;

	if (!outcome || mm_state_prepare_get(e->state, m->domain, &row, &found, err) != MM_OK ||
	    !found)
		return;
	if (consumes(m, row.mode, outcome) &&
	    mm_state_prepare_drop(e->state, m->domain, "prepare-consumed", NULL, NULL, err) != MM_OK)
		mm_log(e->output, MAILMODE_LOG_WARNING, "%s", err);
	mm_prepare_row_clear(&row);
}
