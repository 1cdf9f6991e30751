#ifndef MMCHECK_ACTIONS_H
#define MMCHECK_ACTIONS_H

#include <stddef.h>

/* Non-zero, with why, when json (plan_actions' answer) is not a plan as
 * plugin.h describes it or says other lines than plan (plan()'s answer
 * for the same operation); why must start empty. */
int plan_actions_problem(const char *json, const char *plan, char *why, size_t len);

#endif
