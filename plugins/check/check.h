#ifndef MMCHECK_CHECK_H
#define MMCHECK_CHECK_H

#include "call.h"
#include "tap.h"

#include "domain.h"

#include <limits.h>

/* How many TAP lines each group prints, run or skipped: the plan comes
 * first, so it is fixed. */
#define CHECKS_DESCRIPTOR 7
#define CHECKS_STARTUP 2
#define CHECKS_LIFECYCLE 13
#define CHECKS_KEYS 1
#define CHECKS_TOTAL (CHECKS_DESCRIPTOR + CHECKS_STARTUP + CHECKS_LIFECYCLE + CHECKS_KEYS)

struct check_options {
	const char *plugin;          /* the .so to check */
	const char *config_path;     /* live checks: the author's test world */
	const char *profile;
	const char *domain;
	long timeout_ms;             /* per call */
	long verify_timeout_ms;      /* verify is polled this long */
	long poll_interval_ms;
	int verbose;
};

struct mm_config;

/* The checks that need no target run against an empty configuration, with
 * this profile (which it does not define) and this domain. */
#define EMPTY_PROFILE "mailmode-plugin-check-empty"
#define EMPTY_DOMAIN "check.example"

/* Everything the checks share. */
struct check_run {
	struct tap tap;
	const struct check_options *opt;
	char workdir[PATH_MAX];        /* private: holds only the plugin copy */
	char plugin_copy[PATH_MAX];
	struct mm_config *empty_config;
	struct mm_config *config;      /* NULL: no live target */
	char profile[256];             /* resolved profile name (live) */
	char domain[MM_DOMAIN_MAX + 1];
	int loaded;                    /* the plugin passed the loader */
	int has_resources;             /* and has the ABI 1.1 resources operation */
	int has_config_keys;           /* and the ABI 1.2 config_keys */
	int has_plan_actions;          /* and the ABI 1.5 plan_actions */
	char *key_reads;               /* every call's, each line once (call.h), with
	                                  "\tOPERATION" of the first call asking */
};

/* Runs one call of the plugin.  live: against the author's configuration,
 * profile and domain; otherwise against the empty configuration with a
 * profile no file defines. */
void check_call(struct check_run *run, enum call_op op, int live, const char *receipt,
                unsigned flags,
                enum mailmode_plan_op plan_op, struct call_result *result);

/* The groups of checks, in the order they run. */
void check_descriptor(struct check_run *run);
void check_startup(struct check_run *run);
void check_lifecycle(struct check_run *run);
/* Last: judges the keys every call before asked for. */
void check_config_reads(struct check_run *run);

/* Adds a call's key reads to run->key_reads. */
void keys_collect(struct check_run *run, enum call_op op, const struct call_result *result);

#endif
