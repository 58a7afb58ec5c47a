/*
 * test_alert_board.c — unit tests for src/alert_board.c: one alert as
 * /alerts prints it, and what the board keeps of the replicas' published
 * entries (its own skipped, damaged values ignored, the freshest per
 * replica, the stale forgotten, everything gone when Redis is lost).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "src/alert_board.h"

#define NOW_US 1800000000000000LL /* 2027-01-15T08:00:00Z */
#define NOW_MS (NOW_US / 1000)

static const struct rules_label labels[] = { { "source", "nginx" }, { "path", "/a\"b" } };

static void test_alert_json(void **state)
{
	(void)state;
	struct rules_alert_state a = { "Errors5xx", labels, 2, true, NOW_US, 0.07, false };
	struct kl_buf b = { 0 };
	assert_int_equal(alert_json(&b, &a, "web-1"), 0);
	assert_string_equal(b.p, "{\"alert\":\"Errors5xx\",\"labels\":{\"source\":\"nginx\","
				 "\"path\":\"/a\\\"b\"},\"state\":\"firing\",\"since\":"
				 "\"2027-01-15T08:00:00Z\",\"value\":0.07,\"replica\":\"web-1\"}");
	kl_buf_reset(&b);
	a.firing = false;
	a.value = NAN;
	assert_int_equal(alert_json(&b, &a, NULL), 0);
	json_t *j = json_loads(b.p, 0, NULL);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "state")), "pending");
	assert_null(json_object_get(j, "replica"));
	json_decref(j);
	kl_buf_free(&b);
}

static struct sink_redis_field field(const char *name, const char *val)
{
	return (struct sink_redis_field){ name, strlen(name), val, strlen(val) };
}

/* The board's entries as /alerts would list them: a parsed JSON array. */
static json_t *listed(const struct alert_board *ab, int64_t now_us)
{
	struct kl_buf b = { 0 };
	size_t n = 0;
	assert_int_equal(kl_buf_append_str(&b, "["), 0);
	assert_int_equal(alert_board_append(ab, &b, &n, now_us), 0);
	assert_int_equal(kl_buf_append_str(&b, "]"), 0);
	json_error_t err;
	json_t *j = json_loads(b.p, 0, &err);
	if (!j)
		fail_msg("not JSON (%s): %s", err.text, b.p);
	kl_buf_free(&b);
	return j;
}

static char *entry(int64_t at_ms, const char *replica, const char *alert)
{
	static char buf[4][256];
	static int k;
	char *s = buf[k++ % 4];
	snprintf(s, 256,
		 "{\"at\":%lld,\"alerts\":[{\"alert\":\"%s\",\"labels\":{},\"state\":\"pending\","
		 "\"since\":\"2027-01-15T08:00:00Z\",\"value\":1,\"replica\":\"%s\"}]}",
		 (long long)at_ms, alert, replica);
	return s;
}

static void test_board_keeps_others_fresh(void **state)
{
	(void)state;
	struct alert_board *ab = alert_board_new("r1");
	assert_non_null(ab);
	struct sink_redis_field f[] = {
		field("r1", entry(NOW_MS, "r1", "Mine")),	       /* our own: skipped */
		field("r2", entry(NOW_MS - 1000, "r2", "Theirs")),
		field("r3", "{\"at\":1,\"alerts\":[1]}"),	       /* not objects */
		field("r4", "not json"),
		field("r5", "{\"alerts\":[]}"),			       /* no at */
		field("r6", entry(NOW_MS - 60000, "r6", "Stale")),     /* a minute old */
		field("r7", "{\"at\":1800000000000,\"alerts\":[]}"), /* fresh, nothing firing */
	};
	alert_board_answer(ab, f, sizeof f / sizeof f[0], NOW_US);
	json_t *j = listed(ab, NOW_US);
	assert_int_equal(json_array_size(j), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(j, 0), "alert")),
			    "Theirs");
	json_decref(j);

	/* An older entry of r2 (the other key's) does not replace the newer. */
	struct sink_redis_field older = field("r2", entry(NOW_MS - 3000, "r2", "Older"));
	alert_board_answer(ab, &older, 1, NOW_US);
	struct sink_redis_field newer = field("r2", entry(NOW_MS, "r2", "Newer"));
	alert_board_answer(ab, &newer, 1, NOW_US);
	j = listed(ab, NOW_US);
	assert_int_equal(json_array_size(j), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(j, 0), "alert")),
			    "Newer");
	json_decref(j);

	/* r2 goes quiet: past ALERT_BOARD_STALE_S it is not listed. */
	int64_t later = NOW_US + (ALERT_BOARD_STALE_S + 1) * 1000000LL;
	j = listed(ab, later);
	assert_int_equal(json_array_size(j), 0);
	json_decref(j);

	/* Redis lost: nothing of the others. */
	alert_board_answer(ab, &newer, 1, NOW_US);
	alert_board_clear(ab);
	j = listed(ab, NOW_US);
	assert_int_equal(json_array_size(j), 0);
	json_decref(j);
	alert_board_free(ab);
	alert_board_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alert_json),
		cmocka_unit_test(test_board_keeps_others_fresh),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
