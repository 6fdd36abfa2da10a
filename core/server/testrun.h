/* testrun.h - `moonwire test`: Lua test files run against the server in this process
 * with simulated clients (docs/testing.md). The runner is testrun.c; the hooks below
 * are module moonwire.testing's (lua_testing.c), which the runner drives. */
#ifndef MW_TESTRUN_H
#define MW_TESTRUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mw_app;

/* `moonwire test [-c FILE] [-t SECONDS] PATH...` with argv after "test". Returns the
 * exit code: 0 when every test passed, 1 on failures (a file that does not load, a
 * file that timed out), 2 on a usage error. */
int mw_testrun_main(int argc, char **argv);

/* Totals over the whole run; a test's number is passed + failed after it counted. */
struct mw_test_counts {
    uint32_t passed, failed;
};

/* Makes a the running file and starts require("moonwire.test").run_all() in a new
 * coroutine of it. Returns once the coroutine finished or first waits: 0, or -1 with
 * the reason in err when run_all cannot be found. Each test counts in *counts as it
 * ends; *done is set when run_all says it finished. */
int mw_lua_testing_run(struct mw_app *a, struct mw_test_counts *counts, bool *done,
                       char *err, size_t errlen);
/* The name of the test of the running file that has begun and not ended ("" if none). */
const char *mw_lua_testing_current(void);
/* Ends the running file (done or timed out): later results of its state do not count
 * and its calls into moonwire.testing raise; a next() still waiting returns
 * nil, "abandoned"; its clients still open are closed as by the client. */
void mw_lua_testing_end_file(void);
/* Closes every client still open, frees the collected ones and releases the module's
 * loop handle (run the loop afterwards so that it finishes closing). */
void mw_lua_testing_shutdown(void);

#endif
