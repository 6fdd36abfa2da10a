/* selftest.h - `mwbench selftest`: the in-place event reader against the JSON walk. */
#ifndef MWB_SELFTEST_H
#define MWB_SELFTEST_H

/* Returns 0 when every check passed, 1 otherwise (the failures go to stderr). */
int selftest_run(void);

#endif
