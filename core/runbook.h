#ifndef MM_RUNBOOK_H
#define MM_RUNBOOK_H

#include "domain.h"
#include "mm.h"

#include <stddef.h>
#include <stdio.h>

/*
 * A runbook: many domains, each to a mode, run in one go.  An INI file
 * (read with inih; line numbers are tracked so every error names its line):
 *
 *     ; EU estate, wave 1
 *     [runbook]
 *     parallel = 4            ; switches at once
 *     tenant_cap = 2          ; calls at once against one Microsoft 365 tenant
 *     verify_timeout = 15m
 *     poll_interval = 10s
 *     failure_budget = 3      ; no new switch starts after this many failures
 *     canary = 5              ; these first verify before the others start
 *     prepare_ttl = 300       ; `runbook prepare`: the MX TTL to lower to
 *     max_settle = 30m        ; cap of each switch's cache wait (none: no cap)
 *
 *     [domains]
 *     contoso.com = mailflow          ; DOMAIN = MODE [PROFILE]
 *     fabrikam.com = gateway eu-west
 */

struct mm_runbook_entry {
	char domain[MM_DOMAIN_MAX + 1];
	char mode[64];
	char profile[256];          /* "": the domain's own, else the default */
	int line;
};

struct mm_runbook {
	char *path;
	int parallel;
	int tenant_cap;
	long verify_timeout_ms;
	long poll_interval_ms;
	int failure_budget;
	int canary;                 /* the first this many domains to switch
	                               verify (or end) before others start */
	long prepare_ttl;           /* seconds */
	long max_settle_ms;         /* 0: no cap */
	struct mm_runbook_entry *entries;
	size_t count;
	char *errors;               /* "FILE:LINE: reason" lines */
	int nerrors;
};

/* Reads and checks the file's syntax and values; every problem is added to
 * rb->errors with its line.  MM_OK only when there is none.  Free with
 * mm_runbook_free in any case. */
int mm_runbook_load(const char *path, struct mm_runbook *rb);
/* The same from an open stream; path is the name shown in errors. */
int mm_runbook_read(FILE *f, const char *path, struct mm_runbook *rb);
void mm_runbook_free(struct mm_runbook *rb);

/* Adds "FILE:LINE: reason" to rb->errors (line 0: no line). */
void mm_runbook_error(struct mm_runbook *rb, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
