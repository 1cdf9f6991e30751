/* Declared configuration (ABI 1.2): every key a plugin asks host->config_get
 * for during the checks must be in its config_keys for a section of that
 * kind, or mailmode would refuse a configuration that sets it. */
#include "check.h"

#include <stdlib.h>
#include <string.h>

#define TITLE_KEYS "config keys: every key read is declared in config_keys (ABI 1.2)"

/* Whether run->key_reads has the line's "KIND [SECTION] KEY" part. */
static int collected(const char *reads, const char *line, size_t len)
{
	const char *p = reads;

	while (p && *p) {
		size_t linelen = strcspn(p, "\n");

		if (strcspn(p, "\t") == len && memcmp(p, line, len) == 0)
			return 1;
		p += linelen + (p[linelen] == '\n');
	}
	return 0;
}

static int append(char **text, const char *line, size_t len, const char *op)
{
	size_t have = *text ? strlen(*text) : 0, oplen = strlen(op);
	char *grown = realloc(*text, have + len + oplen + 3);

	if (!grown)
		return -1;
	memcpy(grown + have, line, len);
	grown[have + len] = '\t';
	memcpy(grown + have + len + 1, op, oplen);
	grown[have + len + 1 + oplen] = '\n';
	grown[have + len + oplen + 2] = '\0';
	*text = grown;
	return 0;
}

void keys_collect(struct check_run *run, enum call_op op, const struct call_result *result)
{
	const char *p = result->key_reads;

	while (p && *p) {
		size_t len = strcspn(p, "\n");

		if (!collected(run->key_reads, p, len))
			append(&run->key_reads, p, len, call_op_name(op));
		p += len + (p[len] == '\n');
	}
}

/* One line "KIND [SECTION] KEY\tOP": an undeclared key fails the check. */
static void judge_read(const char *line, size_t len, size_t *declared, struct verdict *verdict)
{
	const char *tab = memchr(line, '\t', len), *section = line + 3, *close, *key;

	if (len > 0 && line[0] == KEY_DECLARED)
		(*declared)++;
	if (len < 4 || line[0] != KEY_UNDECLARED || !tab || tab < section)
		return;
	close = memchr(section, ']', (size_t)(tab - section));
	if (!close || close + 2 > tab)
		return;
	key = close + 2;
	verdict_fail(verdict,
	             "%.*s read key '%.*s' in [%.*s], which config_keys does not declare for [%.*s] sections",
	             (int)(line + len - tab - 1), tab + 1, (int)(tab - key), key,
	             (int)(close - section), section, (int)strcspn(section, " ]"), section);
}

void check_config_reads(struct check_run *run)
{
	struct verdict verdict;
	const char *p;
	size_t declared = 0, reads = 0;

	if (!run->loaded) {
		tap_skip(&run->tap, "the plugin did not load cleanly", TITLE_KEYS);
		return;
	}
	if (!run->has_config_keys) {
		tap_skip(&run->tap,
		         "the plugin declares no configuration keys (no config_keys, ABI 1.2): its reads are not checked",
		         TITLE_KEYS);
		return;
	}
	verdict_init(&verdict);
	for (p = run->key_reads; p && *p;) {
		size_t len = strcspn(p, "\n");

		judge_read(p, len, &declared, &verdict);
		reads++;
		p += len + (p[len] == '\n');
	}
	verdict_note(&verdict, "%zu distinct key(s) read during the checks, %zu declared", reads,
	             declared);
	if ((run->opt->verbose || verdict.failed) && run->key_reads)
		verdict_block(&verdict, "read: ", run->key_reads);
	tap_report(&run->tap, &verdict, TITLE_KEYS);
}
