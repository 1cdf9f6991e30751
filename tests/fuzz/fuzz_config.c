/* libFuzzer target: the configuration reader and the key check, with the
 * gateway's and mailflow's declared keys. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

const struct mailmode_config_key *gw_config_keys(void);
const struct mailmode_config_key *mf_config_keys(void);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mm_config_keyset sets[3] = {
		{ "gateway", NULL }, { "mailflow", NULL }, { "legacy", NULL }
	};
	FILE *f = fmemopen((void *)data, size, "r");
	struct mm_config *cfg;
	char err[1024], section[320];
	int unchecked;

	if (!f)
		return 0;
	cfg = mm_config_read(f, "/fuzz/mailmode.conf", err, sizeof(err));
	fclose(f);
	if (!cfg)
		return 0;
	sets[0].keys = gw_config_keys();
	sets[1].keys = mf_config_keys();
	mm_config_check(cfg, sets, 2, &unchecked, err, sizeof(err));
	mm_config_check(cfg, sets, 3, &unchecked, err, sizeof(err));
	mm_config_profile(cfg, NULL, section, sizeof(section), err, sizeof(err));
	mm_config_free(cfg);
	return 0;
}
