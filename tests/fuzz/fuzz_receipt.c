/* libFuzzer target: receipts as the core hands them back, read by the
 * gateway (gw_receipt_parse, rendered again when valid) and by mailflow
 * (its field readers, as for the receipt's names and set_up_at_ms). */
#include "fakehost.h"
#include "gateway.h"
#include "mailflow.h"

#include <cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void mailflow_receipt(const char *text)
{
	static const char *const keys[] = { "rule", "outbound_connector", "inbound_connector" };
	cJSON *receipt = cJSON_Parse(text);
	const char **list;
	size_t i, n = 0;

	for (i = 0; i < 3; i++)
		ms_field_str(cJSON_GetObjectItem(receipt, keys[i]), "name");
	ms_field_long(receipt, "set_up_at_ms", 0);
	ms_field_long(receipt, "Priority", -1);
	ms_field_bool(receipt, "Enabled");
	list = ms_field_strs(receipt, "SmartHosts", &n);
	free(list);
	cJSON_Delete(receipt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gw_ctx ctx = { .host = &fake_host };
	struct gw_receipt receipt;
	char *text = malloc(size + 1), *again;
	char err[256];

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (gw_receipt_parse(text, &receipt, err, sizeof(err)) == MAILMODE_OK) {
		again = gw_receipt_render(&ctx, "example.test", &receipt);
		free(again);
	}
	mailflow_receipt(text);
	free(text);
	return 0;
}
