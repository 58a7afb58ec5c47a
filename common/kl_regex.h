/*
 * kl_regex.h — the one PCRE2 step every stage that matches regexes shares.
 */
#ifndef KL_REGEX_H
#define KL_REGEX_H

#include <pcre2.h>
#include <stdbool.h>
#include <stddef.h>

/*
 * JIT-compile code for complete matches. Returns true when the JIT took it;
 * otherwise false, with the reason in why (PCRE2's message, or "disabled by
 * the regex" for (*NO_JIT)): the caller then uses the interpreter and says so.
 */
bool kl_regex_jit(pcre2_code *code, char *why, size_t whylen);

#endif
