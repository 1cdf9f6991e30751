/* The lifecycle against a live target (plugin.h, "Lifecycle" and
 * "Idempotency"):
 *
 *   observe: absent -> plan -> setup -> setup again -> verify (polled)
 *   -> observe: present -> setup once more -> plan teardown -> teardown
 *   -> teardown again -> observe: absent
 *
 * Each step is one TAP line.  A failed step does not stop the run: the
 * later steps still tell the author something, and teardown cleans up. */
#include "check.h"

#include "actions.h"
#include "jsonsame.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const lifecycle_titles[CHECKS_LIFECYCLE] = {
	"validate_config accepts the profile",
	"resources: one KIND NAME line per shared resource (ABI 1.1)",
	"observe before setup: absent",
	"plan setup: lists the changes and changes nothing",
	"setup: succeeds with a JSON receipt",
	"setup again: succeeds, receipt of the same meaning (idempotent)",
	"verify: in effect within the verify timeout (polled)",
	"observe after verify: present",
	"setup on the verified domain: changes nothing (receipt and observe unchanged)",
	"plan teardown: lists the changes and changes nothing",
	"teardown: succeeds",
	"teardown again: succeeds (idempotent)",
	"observe after teardown: absent (polled)",
};

enum step {
	STEP_VALIDATE, STEP_RESOURCES, STEP_OBSERVE_BEFORE, STEP_PLAN_SETUP, STEP_SETUP, STEP_SETUP_AGAIN,
	STEP_VERIFY, STEP_OBSERVE_PRESENT, STEP_SETUP_VERIFIED, STEP_PLAN_TEARDOWN,
	STEP_TEARDOWN, STEP_TEARDOWN_AGAIN, STEP_OBSERVE_AFTER
};

/* What the steps hand on, as the core would: the latest receipt (the core
 * stores what setup returned and passes it back), and observe's report
 * once the mode is in effect. */
struct lifecycle {
	struct check_run *run;
	char *receipt;
	char *report_present;
};

static int is_blank(const char *text)
{
	for (; *text; text++)
		if (!isspace((unsigned char)*text))
			return 0;
	return 1;
}

static void replace(char **slot, const char *text)
{
	free(*slot);
	*slot = text ? strdup(text) : NULL;
}

/* Runs one live call and judges what every call must get right. */
static void live_call_with(struct lifecycle *lc, enum call_op op, const char *what,
                           const char *receipt, enum mailmode_plan_op plan_op,
                           struct call_result *result, struct verdict *verdict)
{
	check_call(lc->run, op, 1, receipt, 0, plan_op, result);
	call_judge(result, what, verdict);
}

/* The usual case: with the receipt the core would pass. */
static void live_call(struct lifecycle *lc, enum call_op op, const char *what,
                      enum mailmode_plan_op plan_op, struct call_result *result,
                      struct verdict *verdict)
{
	live_call_with(lc, op, what, lc->receipt, plan_op, result, verdict);
}

static int returned(const struct call_result *result)
{
	return result->op_returned;
}

static void expect_rc(const struct call_result *result, int want, const char *what,
                      struct verdict *verdict)
{
	if (!returned(result) || result->rc == want)
		return;
	verdict_fail(verdict, "%s returned %s, want %s: %.*s", what,
	             call_rc_name(result->rc) ? call_rc_name(result->rc) : "an unknown code",
	             call_rc_name(want), (int)strnlen(result->diag.summary, 200),
	             result->diag.summary);
}

/* observe's report is optional, but when given it is a JSON object. */
static void expect_report_object(const struct call_result *result, const char *what,
                                 struct verdict *verdict)
{
	const char *p;

	if (!returned(result) || !result->text)
		return;
	for (p = result->text; isspace((unsigned char)*p); p++)
		;
	if (*p != '{' || !json_valid(result->text))
		verdict_fail(verdict, "%s: the report is not a JSON object: %.200s", what,
		             result->text);
}

static void expect_presence(const struct call_result *result, int want, const char *what,
                            struct verdict *verdict)
{
	if (!returned(result) || result->rc != MAILMODE_OK)
		return;
	if (result->presence != want)
		verdict_fail(verdict, "%s says %s, want %s", what, call_presence_name(result->presence),
		             call_presence_name(want));
}

static void finish(struct lifecycle *lc, enum step step, const struct call_result *result,
                   struct verdict *verdict)
{
	call_explain(result, lc->run->opt->verbose, verdict);
	tap_report(&lc->run->tap, verdict, "%s", lifecycle_titles[step]);
}

static void step_validate(struct lifecycle *lc)
{
	struct call_result result;
	struct verdict verdict;

	verdict_init(&verdict);
	live_call(lc, CALL_VALIDATE, "validate_config", MAILMODE_PLAN_SETUP, &result, &verdict);
	expect_rc(&result, MAILMODE_OK, "validate_config", &verdict);
	finish(lc, STEP_VALIDATE, &result, &verdict);
	call_result_free(&result);
}

/* One resource line: "KIND NAME", KIND lower case ("tenant", "dns-zone",
 * or another kind, which the host bounds to one call at a time). */
static int resource_line_valid(const char *line, size_t len, int *known_kind)
{
	size_t kind = 0, name;

	while (kind < len && ((line[kind] >= 'a' && line[kind] <= 'z') || line[kind] == '-' ||
	                      (kind > 0 && line[kind] >= '0' && line[kind] <= '9')))
		kind++;
	if (kind == 0 || kind >= len || line[kind] != ' ')
		return 0;
	name = kind + 1;
	if (name >= len)
		return 0;
	for (; name < len; name++)
		if (isspace((unsigned char)line[name]))
			return 0;
	*known_kind = (kind == 6 && strncmp(line, "tenant", 6) == 0) ||
	              (kind == 8 && strncmp(line, "dns-zone", 8) == 0);
	return 1;
}

/* ABI 1.1: which shared resources the domain's operations use, so a host
 * running many domains bounds the load on each. */
static void step_resources(struct lifecycle *lc)
{
	struct call_result result;
	struct verdict verdict;
	const char *line, *eol;
	int known;

	if (!lc->run->has_resources) {
		tap_skip(&lc->run->tap, "the plugin has no resources operation (optional)", "%s",
		         lifecycle_titles[STEP_RESOURCES]);
		return;
	}
	verdict_init(&verdict);
	live_call(lc, CALL_RESOURCES, "resources", MAILMODE_PLAN_SETUP, &result, &verdict);
	expect_rc(&result, MAILMODE_OK, "resources", &verdict);
	if (returned(&result) && result.rc == MAILMODE_OK && !result.text)
		verdict_note(&verdict, "names no resource: the host will not bound its calls");
	for (line = returned(&result) ? result.text : NULL; line && *line; line = eol ? eol + 1 : NULL) {
		size_t len;

		eol = strchr(line, '\n');
		len = eol ? (size_t)(eol - line) : strlen(line);
		if (len == 0)
			continue;
		if (!resource_line_valid(line, len, &known))
			verdict_fail(&verdict, "resources: \"%.*s\" is not KIND NAME", (int)len, line);
		else
			verdict_note(&verdict, "resource: %.*s%s", (int)len, line,
			             known ? "" : " (a kind the host bounds to one call at a time)");
	}
	finish(lc, STEP_RESOURCES, &result, &verdict);
	call_result_free(&result);
}

/* observe, expecting a presence; the report is returned in *report. */
static void observe(struct lifecycle *lc, int want, const char *what, char **report,
                    struct verdict *verdict, struct call_result *result)
{
	live_call(lc, CALL_OBSERVE, what, MAILMODE_PLAN_SETUP, result, verdict);
	expect_rc(result, MAILMODE_OK, what, verdict);
	expect_presence(result, want, what, verdict);
	expect_report_object(result, what, verdict);
	if (report)
		replace(report, returned(result) ? result->text : NULL);
}

static void step_observe(struct lifecycle *lc, enum step step, int want)
{
	struct call_result result;
	struct verdict verdict;

	verdict_init(&verdict);
	observe(lc, want, "observe", step == STEP_OBSERVE_PRESENT ? &lc->report_present : NULL,
	        &verdict, &result);
	if (step == STEP_OBSERVE_BEFORE && result.op_returned && result.presence != MAILMODE_ABSENT)
		verdict_note(&verdict, "the target must start without this mode: use a clean domain");
	finish(lc, step, &result, &verdict);
	call_result_free(&result);
}

/* A report before and after a read-only call must match: JSON compared,
 * so that key order does not matter. */
static void expect_same_report(const char *before, const char *after, const char *what,
                               struct verdict *verdict)
{
	if (!before || !after) {
		if (before != after)
			verdict_fail(verdict, "%s: observe gave a report once and not the other time", what);
		return;
	}
	if (json_same(before, after) == 0) {
		verdict_fail(verdict, "%s: observe's report changed", what);
		verdict_note(verdict, "before: %.1000s", before);
		verdict_note(verdict, "after:  %.1000s", after);
	}
}

/* ABI 1.5: plan_actions says what plan said, as values (plugin.h). */
static void check_plan_actions(struct lifecycle *lc, enum mailmode_plan_op which,
                               const char *plan, struct verdict *verdict)
{
	struct call_result result;
	char why[512] = "";

	live_call(lc, CALL_PLAN_ACTIONS, "plan_actions", which, &result, verdict);
	expect_rc(&result, MAILMODE_OK, "plan_actions", verdict);
	if (returned(&result) && result.rc == MAILMODE_OK &&
	    plan_actions_problem(result.text, plan, why, sizeof(why))) {
		verdict_fail(verdict, "%s", why);
		verdict_block(verdict, "plan_actions: ", result.text ? result.text : "(NULL)");
	}
	call_result_free(&result);
}

/* plan, then observe again: plan is read-only, so presence and report stay. */
static void step_plan(struct lifecycle *lc, enum step step, enum mailmode_plan_op which,
                      int presence)
{
	struct call_result result, seen_before, seen_after;
	struct verdict verdict;
	char *before = NULL, *after = NULL;

	verdict_init(&verdict);
	observe(lc, presence, "observe before plan", &before, &verdict, &seen_before);
	live_call(lc, CALL_PLAN, "plan", which, &result, &verdict);
	expect_rc(&result, MAILMODE_OK, "plan", &verdict);
	if (returned(&result) && result.rc == MAILMODE_OK) {
		if (!result.text)
			verdict_fail(&verdict, "plan returned no text (*plan NULL)");
		else if (is_blank(result.text))
			verdict_fail(&verdict, "plan is empty although %s has changes to make",
			             which == MAILMODE_PLAN_SETUP ? "setup" : "teardown");
		else
			verdict_block(&verdict, "plan: ", result.text);
		if (lc->run->has_plan_actions)
			check_plan_actions(lc, which, result.text, &verdict);
	}
	observe(lc, presence, "observe after plan", &after, &verdict, &seen_after);
	expect_same_report(before, after, "plan", &verdict);
	call_explain(&seen_before, lc->run->opt->verbose, &verdict);
	call_explain(&seen_after, lc->run->opt->verbose, &verdict);
	finish(lc, step, &result, &verdict);
	free(before);
	free(after);
	call_result_free(&seen_before);
	call_result_free(&seen_after);
	call_result_free(&result);
}

/* The plan teardown would follow with a receipt; NULL when plan failed
 * (the failure is in the verdict). */
static char *teardown_plan(struct lifecycle *lc, const char *receipt, const char *what,
                           struct verdict *verdict)
{
	struct call_result result;
	char *plan = NULL;

	live_call_with(lc, CALL_PLAN, what, receipt, MAILMODE_PLAN_TEARDOWN, &result, verdict);
	expect_rc(&result, MAILMODE_OK, what, verdict);
	if (returned(&result) && result.rc == MAILMODE_OK && result.text)
		plan = strdup(result.text);
	call_result_free(&result);
	return plan;
}

/* A receipt's meaning is what teardown does with it.  Receipts that are the
 * same JSON mean the same; otherwise (a timestamp, what this run created or
 * reused) the teardown plans made from each must be the same. */
static void expect_same_meaning(struct lifecycle *lc, const char *first, const char *now,
                                const char *what, struct verdict *verdict)
{
	char *plan_first, *plan_now;

	if (json_same(first, now) == 1)
		return;
	plan_first = teardown_plan(lc, first, "plan teardown with the earlier receipt", verdict);
	plan_now = teardown_plan(lc, now, "plan teardown with the new receipt", verdict);
	if (plan_first && plan_now && strcmp(plan_first, plan_now) == 0) {
		verdict_note(verdict, "%s: the receipt differs from the earlier one, but teardown "
		             "plans the same with either", what);
	} else if (plan_first && plan_now) {
		verdict_fail(verdict, "%s: the receipt means something else: teardown would do "
		             "other things with it than with the earlier one", what);
		verdict_note(verdict, "earlier receipt: %.1000s", first);
		verdict_note(verdict, "new receipt:     %.1000s", now);
		verdict_block(verdict, "plan with the earlier: ", plan_first);
		verdict_block(verdict, "plan with the new:     ", plan_now);
	}
	free(plan_first);
	free(plan_now);
}

/* setup; when an earlier receipt exists, the new one must mean the same. */
static void setup(struct lifecycle *lc, const char *what, struct call_result *result,
                  struct verdict *verdict)
{
	char *previous = lc->receipt ? strdup(lc->receipt) : NULL;

	live_call(lc, CALL_SETUP, what, MAILMODE_PLAN_SETUP, result, verdict);
	expect_rc(result, MAILMODE_OK, what, verdict);
	if (!returned(result) || result->rc != MAILMODE_OK)
		goto out;
	if (!result->text) {
		verdict_fail(verdict, "%s returned no receipt", what);
		goto out;
	}
	if (!json_valid(result->text)) {
		verdict_fail(verdict, "%s: the receipt is not JSON: %.200s", what, result->text);
		goto out;
	}
	if (previous)
		expect_same_meaning(lc, previous, result->text, what, verdict);
	/* The core stores the latest receipt: later steps use it. */
	replace(&lc->receipt, result->text);
out:
	free(previous);
}

static void step_setup(struct lifecycle *lc, enum step step)
{
	struct call_result result;
	struct verdict verdict;

	verdict_init(&verdict);
	setup(lc, step == STEP_SETUP ? "setup" : "setup again", &result, &verdict);
	if (step == STEP_SETUP && returned(&result) && result.text)
		verdict_note(&verdict, "receipt: %.1000s", result.text);
	finish(lc, step, &result, &verdict);
	call_result_free(&result);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* verify until it says the mode is in effect: MAILMODE_ERR_NOT_READY means
 * "not yet", anything else ends the wait. */
static void step_verify(struct lifecycle *lc)
{
	const struct check_options *opt = lc->run->opt;
	int64_t start = isolate_now_ms(), deadline = start + opt->verify_timeout_ms;
	struct call_result result;
	struct verdict verdict;
	int attempt;

	verdict_init(&verdict);
	for (attempt = 1;; attempt++) {
		live_call(lc, CALL_VERIFY, "verify", MAILMODE_PLAN_SETUP, &result, &verdict);
		expect_report_object(&result, "verify", &verdict);
		if (verdict.failed || !returned(&result))
			break;
		if (result.rc == MAILMODE_OK) {
			verdict_note(&verdict, "in effect after %d attempt(s), %.1f s", attempt,
			             (double)(isolate_now_ms() - start) / 1000);
			break;
		}
		if (result.rc != MAILMODE_ERR_NOT_READY) {
			expect_rc(&result, MAILMODE_OK, "verify", &verdict);
			break;
		}
		if (isolate_now_ms() + opt->poll_interval_ms > deadline) {
			verdict_fail(&verdict, "verify: still not ready after %d attempt(s), %.1f s: %.*s",
			             attempt, (double)(isolate_now_ms() - start) / 1000,
			             (int)strnlen(result.diag.summary, 200), result.diag.summary);
			break;
		}
		call_result_free(&result);
		sleep_ms(opt->poll_interval_ms);
	}
	finish(lc, STEP_VERIFY, &result, &verdict);
	call_result_free(&result);
}

/* Setup on a domain where it already succeeded and took effect must find
 * and reuse everything: the same receipt, and observe sees the same world
 * (nothing duplicated, nothing moved). */
static void step_setup_verified(struct lifecycle *lc)
{
	struct call_result result, seen;
	struct verdict verdict;
	char *after = NULL;

	verdict_init(&verdict);
	setup(lc, "setup once more", &result, &verdict);
	observe(lc, MAILMODE_PRESENT, "observe after setup once more", &after, &verdict, &seen);
	if (lc->report_present || after)
		expect_same_report(lc->report_present, after, "setup once more", &verdict);
	call_explain(&seen, lc->run->opt->verbose, &verdict);
	finish(lc, STEP_SETUP_VERIFIED, &result, &verdict);
	free(after);
	call_result_free(&seen);
	call_result_free(&result);
}

/* After teardown the world may take a while to agree (a DNS secondary that
 * has not transferred the zone yet shows the mode partly there): observe is
 * polled like verify, until it says absent. */
static void step_observe_gone(struct lifecycle *lc)
{
	const struct check_options *opt = lc->run->opt;
	int64_t start = isolate_now_ms(), deadline = start + opt->verify_timeout_ms;
	struct call_result result;
	struct verdict verdict;
	int attempt;

	verdict_init(&verdict);
	for (attempt = 1;; attempt++) {
		live_call(lc, CALL_OBSERVE, "observe", MAILMODE_PLAN_SETUP, &result, &verdict);
		expect_rc(&result, MAILMODE_OK, "observe", &verdict);
		expect_report_object(&result, "observe", &verdict);
		if (verdict.failed || !returned(&result) || result.presence == MAILMODE_ABSENT)
			break;
		if (isolate_now_ms() + opt->poll_interval_ms > deadline) {
			expect_presence(&result, MAILMODE_ABSENT, "observe", &verdict);
			verdict_note(&verdict, "still %s after %d attempt(s), %.1f s",
			             call_presence_name(result.presence), attempt,
			             (double)(isolate_now_ms() - start) / 1000);
			break;
		}
		call_result_free(&result);
		sleep_ms(opt->poll_interval_ms);
	}
	if (attempt > 1 && !verdict.failed)
		verdict_note(&verdict, "absent after %d attempt(s), %.1f s", attempt,
		             (double)(isolate_now_ms() - start) / 1000);
	finish(lc, STEP_OBSERVE_AFTER, &result, &verdict);
	call_result_free(&result);
}

static void step_teardown(struct lifecycle *lc, enum step step)
{
	const char *what = step == STEP_TEARDOWN ? "teardown" : "teardown again";
	struct call_result result;
	struct verdict verdict;

	verdict_init(&verdict);
	live_call(lc, CALL_TEARDOWN, what, MAILMODE_PLAN_TEARDOWN, &result, &verdict);
	/* plugin.h allows a plugin whose world is eventually consistent to
	 * refuse, retryably, while what it made is too new to tell "gone"
	 * from "not listed yet"; forced, it must then succeed. */
	if (step == STEP_TEARDOWN_AGAIN && returned(&result) && result.rc != MAILMODE_OK &&
	    result.diag.retryable) {
		char summary[MAILMODE_DIAG_SUMMARY_MAX];

		snprintf(summary, sizeof(summary), "%s", result.diag.summary);
		call_result_free(&result);
		verdict_init(&verdict);
		check_call(lc->run, CALL_TEARDOWN, 1, lc->receipt, MAILMODE_REQ_FORCE,
		           MAILMODE_PLAN_TEARDOWN, &result);
		call_judge(&result, "teardown again (forced)", &verdict);
		verdict_note(&verdict, "refused retryably (%s); forced, it succeeded", summary);
		expect_rc(&result, MAILMODE_OK, "teardown again with MAILMODE_REQ_FORCE", &verdict);
	} else {
		expect_rc(&result, MAILMODE_OK, what, &verdict);
	}
	finish(lc, step, &result, &verdict);
	call_result_free(&result);
}

void check_lifecycle(struct check_run *run)
{
	struct lifecycle lc = { .run = run };
	const char *skip = !run->loaded ? "the plugin did not load cleanly" :
	                   !run->config ? "no live target: give --config, --profile and --domain" :
	                   NULL;
	int i;

	if (skip) {
		for (i = 0; i < CHECKS_LIFECYCLE; i++)
			tap_skip(&run->tap, skip, "%s", lifecycle_titles[i]);
		return;
	}
	step_validate(&lc);
	step_resources(&lc);
	step_observe(&lc, STEP_OBSERVE_BEFORE, MAILMODE_ABSENT);
	step_plan(&lc, STEP_PLAN_SETUP, MAILMODE_PLAN_SETUP, MAILMODE_ABSENT);
	step_setup(&lc, STEP_SETUP);
	step_setup(&lc, STEP_SETUP_AGAIN);
	step_verify(&lc);
	step_observe(&lc, STEP_OBSERVE_PRESENT, MAILMODE_PRESENT);
	step_setup_verified(&lc);
	step_plan(&lc, STEP_PLAN_TEARDOWN, MAILMODE_PLAN_TEARDOWN, MAILMODE_PRESENT);
	step_teardown(&lc, STEP_TEARDOWN);
	step_teardown(&lc, STEP_TEARDOWN_AGAIN);
	step_observe_gone(&lc);
	free(lc.receipt);
	free(lc.report_present);
}
