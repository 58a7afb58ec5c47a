/*
 * builtin.c — the built-in formats. Their names and field names are part of
 * the user's contract (DESIGN.md, "Built-in parsers and their fields", and
 * the formats' issue). Three shapes:
 * - a fixed regex, fixed types, a fixed time field: nginx_combined,
 *   nginx_timed, gunicorn_access;
 * - a regex derived once from an option, plus a post hook: django (from the
 *   Python logging format, django.c), postgres (from log_line_prefix,
 *   postgres.c);
 * - no regex: json and postgres_json (json.c's scanner).
 *
 * gunicorn_access is gunicorn's default access_log_format,
 *   %(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"
 * which writes what nginx's combined format writes ('l' is always "-", 't' is
 * "[14/Nov/2023:22:13:20 +0000]"), except that gunicorn escapes only '"' (as
 * \"), not backslashes or control bytes: the nginx regex reads that too.
 *
 * nginx writes its access log with escape=default: '"', '\' and bytes below
 * 0x20 or above 0x7e become "\xHH", so a quoted field never holds a bare '"'.
 * We also accept "\"" (escape=json, other writers). Every line nginx writes
 * must match, including the requests it rejected: a TLS handshake sent to the
 * HTTP port ("\x16\x03\x01..."), a bare word, an empty request ("" or "-"), an
 * HTTP/0.9 request ("GET /path"), a truncated request line. The request is
 * split into method, path and protocol only when it is well formed (METHOD SP
 * target [SP HTTP/x.y], nothing else); otherwise only `request` is set.
 *
 * The second field is the literal "-" the combined format writes (it was
 * ident); requiring it keeps a line with junk in front from parsing as shifted
 * fields.
 *
 * The regexes are written for PCRE2's JIT: every loop is possessive or
 * bounded, so a line that does not match fails in linear time. The one lazy
 * loop is remote_user, which nginx does not escape for spaces or '[' (it is
 * whatever the client put in its Authorization header): it ends at the first
 * " [" followed by a complete $time_local and '] "', which cannot occur inside
 * it because nginx escapes its '"'.
 */
#include <string.h>

#include "parsers/parsers_int.h"

#define Q_FIELD "(?:[^\"\\\\]++|\\\\.)*+" /* inside "...": plain bytes or \-escapes */

#define NGINX_COMBINED                                                                      \
	"(?<remote_addr>[^ ]++) - (?<remote_user>.*?) "                                 \
	"\\[(?<time>[0-9]{2}/[A-Za-z]{3}/[0-9]{4}:[0-9]{2}:[0-9]{2}:[0-9]{2} [+-][0-9]{4})\\] " \
	"\"(?<request>"                                                                     \
	"(?:(?<method>[A-Z_-]++) (?<path>(?:[^ \"\\\\]++|\\\\.)++)"                          \
	"(?: (?<protocol>HTTP/[0-9]++(?:\\.[0-9]++)?+))?+(?=\"))?+"                          \
	Q_FIELD ")\" "                                                                      \
	"(?<status>[0-9]++) (?<bytes>[0-9]++|-) "                                           \
	"\"(?<referer>" Q_FIELD ")\" \"(?<agent>" Q_FIELD ")\""

/* nginx_timed: combined plus ` rt=$request_time urt="$upstream_response_time"`.
 * The suffix is optional so that lines written before a log_format change (or
 * by another server block) still count; their durations are then absent. */
#define NGINX_TIMED                                                                         \
	NGINX_COMBINED "(?: rt=(?<request_time>[^ ]*+) "                                    \
		       "urt=\"(?<upstream_response_time>" Q_FIELD ")\")?+"

static const struct parser_field_spec nginx_combined_types[] = {
	{ "status", PARSER_T_INT },
	{ "bytes", PARSER_T_INT },
};

static const struct parser_field_spec nginx_timed_types[] = {
	{ "status", PARSER_T_INT },
	{ "bytes", PARSER_T_INT },
	{ "request_time", PARSER_T_SECONDS },
	{ "upstream_response_time", PARSER_T_SECONDS },
};

static const char *const nginx_dash_absent[] = { "remote_user", NULL };

static const struct parser_builtin builtins[] = {
	{
		.name = "gunicorn_access",
		.regex = NGINX_COMBINED,
		.types = nginx_combined_types,
		.ntypes = KL_ARRAY_LEN(nginx_combined_types),
		.time_field = "time",
		.time_format = "%d/%b/%Y:%H:%M:%S %z",
		.dash_absent = nginx_dash_absent,
	},
	{
		.name = "django",
		.derive = django_derive,
		.setup = django_setup,
		.post = django_post,
		.options_format = true,
		.options_time_format = true,
	},
	{
		.name = "postgres",
		.derive = pg_derive,
		.setup = pg_setup,
		.post = pg_post,
		.destroy = pg_free,
		.options_log_line_prefix = true,
	},
	{
		.name = "json",
		.kind = PK_JSON,
	},
	{
		.name = "postgres_json",
		.kind = PK_JSON,
	},
	{
		.name = "nginx_combined",
		.regex = NGINX_COMBINED,
		.types = nginx_combined_types,
		.ntypes = KL_ARRAY_LEN(nginx_combined_types),
		.time_field = "time",
		.time_format = "%d/%b/%Y:%H:%M:%S %z",
		.dash_absent = nginx_dash_absent,
	},
	{
		.name = "nginx_timed",
		.regex = NGINX_TIMED,
		.types = nginx_timed_types,
		.ntypes = KL_ARRAY_LEN(nginx_timed_types),
		.time_field = "time",
		.time_format = "%d/%b/%Y:%H:%M:%S %z",
		.dash_absent = nginx_dash_absent,
	},
};

static const char *const builtin_names[] = { "nginx_combined", "nginx_timed", "gunicorn_access",
					      "django", "postgres", "json", "postgres_json",
					      NULL };

const struct parser_builtin *parser_builtin_find(const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; i < KL_ARRAY_LEN(builtins); i++)
		if (strcmp(builtins[i].name, name) == 0)
			return &builtins[i];
	return NULL;
}

bool parser_builtin_exists(const char *name)
{
	return parser_builtin_find(name) != NULL;
}

const char *const *parser_builtin_names(void)
{
	return builtin_names;
}
