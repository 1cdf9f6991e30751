#include "domain.h"
#include "tap.h"

#include <string.h>

struct bad_case {
	const char *input;
	const char *reason;
};

int main(void)
{
	static const char *const good[][2] = {
		{ "contoso.com", "contoso.com" },
		{ "Contoso.COM.", "contoso.com" },
		{ "mail.example.test", "mail.example.test" },
		{ "xn--bcher-kva.example", "xn--bcher-kva.example" },
		{ "a-b.c0", "a-b.c0" },
	};
	static const struct bad_case bad[] = {
		{ "", "empty name" },
		{ ".", "empty name" },
		{ "contoso", "at least two labels" },
		{ "a..b", "empty label" },
		{ "a.b..", "empty label" },
		{ "a.b...", "empty label" },
		{ "..", "empty label" },
		{ ".a.b", "empty label" },
		{ "-a.b", "starts with '-'" },
		{ "a-.b", "ends with '-'" },
		{ "a.b-", "ends with '-'" },
		{ "under_score.test", "character '_'" },
		{ "sp ace.test", "character ' '" },
		{ "b\xc3\xbc" "cher.example", "non-ASCII" },
	};
	struct tap t = { 0 };
	char out[MM_DOMAIN_MAX + 1], err[256], label64[80], name254[300], name253[300];
	size_t i;

	tap_plan((int)(sizeof(good) / sizeof(good[0]) + sizeof(bad) / sizeof(bad[0])) * 2 + 4);
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		tap_is_int(&t, mm_domain_normalize(good[i][0], out, err, sizeof(err)), 0, good[i][0]);
		tap_is_str(&t, out, good[i][1], "canonical form");
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		tap_is_int(&t, mm_domain_normalize(bad[i].input, out, err, sizeof(err)), -1,
		           "refused");
		tap_contains(&t, err, bad[i].reason, bad[i].reason);
	}
	memset(label64, 'a', 64);
	strcpy(label64 + 64, ".test");
	tap_is_int(&t, mm_domain_normalize(label64, out, err, sizeof(err)), -1, "64-char label refused");
	tap_contains(&t, err, "longer than 63", "label limit named");
	/* 253 characters is the limit: four 63-char labels minus one. */
	memset(name253, 'a', 253);
	name253[63] = name253[127] = name253[191] = '.';
	name253[253] = '\0';
	tap_is_int(&t, mm_domain_normalize(name253, out, err, sizeof(err)), 0, "253 characters accepted");
	memcpy(name254, name253, 253);
	strcpy(name254 + 253, "a");
	tap_is_int(&t, mm_domain_normalize(name254, out, err, sizeof(err)), -1,
	           "254 characters refused");
	return tap_done(&t);
}
