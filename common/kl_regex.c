/*
 * kl_regex.c — see kl_regex.h.
 */
#include <stdio.h>

#include "common/kl_regex.h"

bool kl_regex_jit(pcre2_code *code, char *why, size_t whylen)
{
	int rc = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
	size_t size = 0;
	if (rc == 0)
		pcre2_pattern_info(code, PCRE2_INFO_JITSIZE, &size);
	if (rc == 0 && size > 0)
		return true;
	/* A regex with (*NO_JIT) compiles "successfully" to no machine code. */
	snprintf(why, whylen, "disabled by the regex");
	if (rc < 0)
		pcre2_get_error_message(rc, (PCRE2_UCHAR *)why, whylen);
	return false;
}
