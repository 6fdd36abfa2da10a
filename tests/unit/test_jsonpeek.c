/* test_jsonpeek.c - the envelope's id without decoding (jsonpeek.c): what a
 * rate-limited message's error carries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "base/jsonpeek.h"

/* The id's JSON text in s, or "" when there is none. */
static const char *peek(const char *s)
{
    static char out[128];
    const char *id = NULL;
    size_t n = mw_json_peek_id(s, strlen(s), &id);
    memcpy(out, id ? id : "", n);
    out[n] = '\0';
    return out;
}

static void test_ids(void **state)
{
    (void)state;
    assert_string_equal(peek("{\"type\":\"ping\",\"id\":7}"), "7");
    assert_string_equal(peek("{\"id\":-12,\"type\":\"x\"}"), "-12");
    assert_string_equal(peek(" { \"id\" : \"a\\\"b\\u00e9\" , \"data\":1}"), "\"a\\\"b\\u00e9\"");
    assert_string_equal(peek("{\"type\":\"chat:message\",\"data\":{\"id\":1,\"x\":[1,{\"id\":2}]},\"id\":\"r-3\"}"),
                        "\"r-3\"");
    assert_string_equal(peek("{\"room\":\"r\",\"data\":\"}{\\\"id\\\":9\",\"id\":10}"), "10");
    assert_string_equal(peek("{\"a\":true,\"b\":null,\"c\":-1.5e3,\"id\":0}"), "0");
}

static void test_no_id(void **state)
{
    (void)state;
    assert_string_equal(peek("{\"type\":\"ping\"}"), "");
    assert_string_equal(peek("{}"), "");
    assert_string_equal(peek("[{\"id\":1}]"), "");          /* not an object */
    assert_string_equal(peek("{\"id\":1.5}"), "");          /* not an integer */
    assert_string_equal(peek("{\"id\":true}"), "");
    assert_string_equal(peek("{\"id\":{\"a\":1}}"), "");
    assert_string_equal(peek("{\"id\":123456789012345678901}"), ""); /* 21 digits */
    assert_string_equal(peek("{\"data\":{\"id\":1}}"), "");  /* not at the top level */
    assert_string_equal(peek("{\"id\":\"a\x01\"}"), "");     /* a raw control character */
    assert_string_equal(peek("{\"id\":\"\\x\"}"), "");       /* a bad escape */
    assert_string_equal(peek("{\"id\":\"\\u12\"}"), "");
    assert_string_equal(peek("{\"id\":\"open"), "");
    assert_string_equal(peek("{\"x\":[1,2,\"id\":3}"), "");
    assert_string_equal(peek("{\"x\" 1,\"id\":3}"), "");
    assert_string_equal(peek("not json"), "");
    assert_string_equal(peek(""), "");
}

/* Deep nesting before the id: bounded, never a stack overflow. */
static void test_deep(void **state)
{
    (void)state;
    static char s[20000];
    size_t n = 0;
    n += (size_t)sprintf(s + n, "{\"x\":");
    for (int i = 0; i < 5000; i++)
        s[n++] = '[';
    for (int i = 0; i < 5000; i++)
        s[n++] = ']';
    n += (size_t)sprintf(s + n, ",\"id\":1}");
    assert_string_equal(peek(s), "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_no_id),
        cmocka_unit_test(test_deep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
