#ifndef MM_REPORT_H
#define MM_REPORT_H

/* A runbook run's report for a change board: the run's start and end, a
 * timeline per domain (setup, verify, settle, teardown, rollback from the
 * journal's times), per-tenant totals and every failure with its
 * diagnostic.  As one self-contained HTML file (inline CSS and SVG, nothing
 * fetched), CSV (one row per domain) or Markdown.  Every string from the
 * state is escaped for the format. */
#include "state.h"

#include <cjson/cJSON.h>

enum mm_report_format { MM_REPORT_HTML, MM_REPORT_CSV, MM_REPORT_MARKDOWN };

struct mm_report;

/* Reads run `id` with its domains and their journals; MM_ERR naming the
 * run when there is none. */
int mm_report_load(struct mm_state *st, long long id, struct mm_report **out, char *err);
void mm_report_free(struct mm_report *r);
/* Writes the report to path ("-": stdout) through a temporary file renamed
 * into place, so a reader never sees half a report. */
int mm_report_write(const struct mm_report *r, enum mm_report_format fmt, const char *path,
                    char *err);
/* The report's data, added to doc ("run", "totals", "tenants", "domains"). */
void mm_report_json(const struct mm_report *r, cJSON *doc);

#endif
