/* Checks of what the plugin declares and of how it starts, needing no
 * live target: the descriptor, init with an empty configuration, and
 * validate_config on a profile with none of the mode's keys. */
#include "check.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define TITLE_INIT "init and fini succeed with an empty configuration"
#define TITLE_REJECTS "validate_config rejects a profile with none of the mode's keys"

/* The descriptor checks, in order; each function below reports one. */
static const char *const descriptor_titles[] = {
	"descriptor: ABI version is one this mailmode accepts",
	"descriptor: struct_size covers the v1.0 descriptor",
	"descriptor: mode name follows the naming rules",
	"descriptor: description (one line) and version are set",
	"descriptor: every required operation is present",
	"descriptor: reserved operation slots are empty",
};
#define NTITLES (sizeof(descriptor_titles) / sizeof(descriptor_titles[0]))

/* Fields past struct_size are absent (plugin.h, "Loading"). */
static int covered(const struct descriptor_facts *f, size_t end)
{
	return f->struct_size >= end;
}

static void report_facts_unavailable(struct check_run *run, const char *why, const char *title)
{
	struct verdict verdict;

	verdict_init(&verdict);
	verdict_fail(&verdict, "%s", why);
	tap_report(&run->tap, &verdict, "%s", title);
}

static void check_abi(struct check_run *run, const struct descriptor_facts *f)
{
	struct verdict verdict;

	verdict_init(&verdict);
	verdict_note(&verdict, "plugin built for ABI %u.%u; this mailmode implements %d.%d",
	             f->abi_major, f->abi_minor, MAILMODE_ABI_MAJOR, MAILMODE_ABI_MINOR);
	if (f->abi_major != MAILMODE_ABI_MAJOR)
		verdict_fail(&verdict, "ABI major %u differs from %d: rebuild against this mailmode",
		             f->abi_major, MAILMODE_ABI_MAJOR);
	else if (f->abi_minor > MAILMODE_ABI_MINOR)
		verdict_fail(&verdict, "ABI minor %u is newer than %d: this mailmode is too old for it",
		             f->abi_minor, MAILMODE_ABI_MINOR);
	tap_report(&run->tap, &verdict, "%s", descriptor_titles[0]);
}

static void check_size(struct check_run *run, const struct descriptor_facts *f)
{
	struct verdict verdict;

	verdict_init(&verdict);
	verdict_note(&verdict, "struct_size %u; the ABI %d.0 descriptor is %zu bytes",
	             (unsigned)f->struct_size, MAILMODE_ABI_MAJOR, sizeof(struct mailmode_plugin));
	if (f->struct_size < sizeof(struct mailmode_plugin))
		verdict_fail(&verdict, "struct_size is too small: build with MAILMODE_PLUGIN_DEFINE()");
	tap_report(&run->tap, &verdict, "%s", descriptor_titles[1]);
}

static void check_name(struct check_run *run, const struct descriptor_facts *f)
{
	struct verdict verdict;

	verdict_init(&verdict);
	if (!covered(f, offsetof(struct mailmode_plugin, name) + sizeof(const char *)))
		verdict_fail(&verdict, "the name lies past struct_size %u: absent",
		             (unsigned)f->struct_size);
	else if (!f->has_name)
		verdict_fail(&verdict, "name is NULL");
	else if (!f->name_valid)
		verdict_fail(&verdict, "name '%s' does not match [a-z][a-z0-9_-]{0,31}", f->name);
	else
		verdict_note(&verdict, "mode name: %s", f->name);
	tap_report(&run->tap, &verdict, "%s", descriptor_titles[2]);
}

static void check_texts(struct check_run *run, const struct descriptor_facts *f)
{
	struct verdict verdict;

	verdict_init(&verdict);
	if (!covered(f, offsetof(struct mailmode_plugin, version) + sizeof(const char *))) {
		verdict_fail(&verdict, "description and version lie past struct_size %u: absent",
		             (unsigned)f->struct_size);
		goto out;
	}
	if (!f->has_description || !f->description[0])
		verdict_fail(&verdict, "description is not set (one line for `mailmode plugins`)");
	else if (f->description_multiline)
		verdict_fail(&verdict, "description is more than one line");
	if (!f->has_version || !f->version[0])
		verdict_fail(&verdict, "version is not set");
out:
	tap_report(&run->tap, &verdict, "%s", descriptor_titles[3]);
}

static void check_operations(struct check_run *run, const struct descriptor_facts *f)
{
	struct verdict verdict;

	verdict_init(&verdict);
	if (f->missing_ops[0])
		verdict_fail(&verdict, "missing: %s%s", f->missing_ops,
		             covered(f, sizeof(struct mailmode_plugin)) ? "" :
		             " (operations past struct_size are absent)");
	tap_report(&run->tap, &verdict, "%s", descriptor_titles[4]);
}

static void check_reserved(struct check_run *run, const struct descriptor_facts *f)
{
	struct verdict verdict;

	verdict_init(&verdict);
	/* A later minor gives these slots a meaning: a plugin that fills them
	 * would be called through them once the host knows that minor. */
	if (f->reserved_used)
		verdict_fail(&verdict, "%d slot(s) that ABI %u.%u reserves are set: leave them NULL",
		             f->reserved_used, f->abi_major, f->abi_minor);
	if (f->has_resources)
		verdict_note(&verdict, "optional operations: resources (ABI 1.1)");
	if (f->has_mx_ttl)
		verdict_note(&verdict, "optional operations: mx_ttl (ABI 1.4)");
	if (f->has_plan_actions)
		verdict_note(&verdict, "optional operations: plan_actions (ABI 1.5)");
	tap_report(&run->tap, &verdict, "%s", descriptor_titles[5]);
}

void check_descriptor(struct check_run *run)
{
	struct call_result result;
	struct verdict verdict;
	const struct descriptor_facts *f = &result.facts;
	size_t i;

	check_call(run, CALL_LOAD, 0, NULL, 0, MAILMODE_PLAN_SETUP, &result);
	verdict_init(&verdict);
	call_judge(&result, "load", &verdict);
	if (result.has_facts && !f->loaded)
		verdict_fail(&verdict, "refused: %s", f->refusal);
	else if (!result.has_facts && !verdict.failed)
		verdict_fail(&verdict, "the load reported nothing");
	call_explain(&result, run->opt->verbose, &verdict);
	tap_report(&run->tap, &verdict, "loads through the mailmode plugin loader");
	/* Later checks run the plugin in children: only a plugin mailmode would
	 * load is worth running, and one that misbehaves while loading (say, a
	 * constructor that prints) would spoil each of them. */
	run->loaded = result.has_facts && f->loaded && !verdict.failed;
	run->has_resources = run->loaded && f->has_resources;
	run->has_config_keys = run->loaded && f->has_config_keys;
	run->has_plan_actions = run->loaded && f->has_plan_actions;

	if (!result.has_facts || !f->readable) {
		for (i = 0; i < NTITLES; i++)
			report_facts_unavailable(run, "the descriptor could not be read",
			                         descriptor_titles[i]);
		goto out;
	}
	check_abi(run, f);
	check_size(run, f);
	check_name(run, f);
	check_texts(run, f);
	check_operations(run, f);
	check_reserved(run, f);
out:
	call_result_free(&result);
}

static void check_init(struct check_run *run)
{
	struct call_result result;
	struct verdict verdict;

	check_call(run, CALL_INIT, 0, NULL, 0, MAILMODE_PLAN_SETUP, &result);
	verdict_init(&verdict);
	call_judge(&result, "init", &verdict);
	if (!result.init_returned && !verdict.failed)
		verdict_fail(&verdict, "init: no result");
	call_explain(&result, run->opt->verbose, &verdict);
	tap_report(&run->tap, &verdict, TITLE_INIT);
	call_result_free(&result);
}

static void check_validate_rejects(struct check_run *run)
{
	struct call_result result;
	struct verdict verdict;

	check_call(run, CALL_VALIDATE, 0, NULL, 0, MAILMODE_PLAN_SETUP, &result);
	verdict_init(&verdict);
	call_judge(&result, "validate_config", &verdict);
	if (result.op_returned && result.rc != MAILMODE_ERR_CONFIG)
		verdict_fail(&verdict, "validate_config returned %s for [profile " EMPTY_PROFILE
		             "], which has no keys; want MAILMODE_ERR_CONFIG",
		             call_rc_name(result.rc) ? call_rc_name(result.rc) : "an unknown code");
	else if (!result.op_returned && !verdict.failed)
		verdict_fail(&verdict, "validate_config: no result");
	call_explain(&result, run->opt->verbose, &verdict);
	tap_report(&run->tap, &verdict, TITLE_REJECTS);
	call_result_free(&result);
}

void check_startup(struct check_run *run)
{
	if (!run->loaded) {
		tap_skip(&run->tap, "the plugin did not load cleanly", TITLE_INIT);
		tap_skip(&run->tap, "the plugin did not load cleanly", TITLE_REJECTS);
		return;
	}
	check_init(run);
	check_validate_rejects(run);
}
