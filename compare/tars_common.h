/* tars_common.h - what backend_tars.c and backend_tars_key.c share: the
 * version string with the options in force, and tars' own counters. */
#ifndef COMPARE_TARS_COMMON_H
#define COMPARE_TARS_COMMON_H

#include "compare.h"

#include <tars.h>

void compare_tars_version(char *out, size_t len);
void compare_tars_counters(const struct measure_key *k);

#endif
