/* fuzz_config.c - the configuration loader (core/base/config.c): any YAML loads or gives a
 * "source:line: message" error, and frees cleanly either way. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mw_config cfg;
    char err[512];
    if (mw_config_parse((const char *)data, size, "fuzz.yaml", "/nonexistent", NULL, &cfg, err,
                        sizeof err) == 0)
        mw_config_free(&cfg);
    else if (strncmp(err, "fuzz.yaml:", 10) != 0)
        abort(); /* every error names the file and a line */
    return 0;
}
