/* Per-thread error messages (see core.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "core.h"

static _Thread_local char last_error[512];

const char *moedit_last_error(void) { return last_error; }

int me_fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return code;
}

int me_fail_prefix(int code, const char *prefix)
{
    char old[sizeof last_error];
    memcpy(old, last_error, sizeof old);
    int n = snprintf(last_error, sizeof last_error, "%s: ", prefix);
    if (n > 0 && (size_t)n < sizeof last_error)
        snprintf(last_error + n, sizeof last_error - (size_t)n, "%.*s", (int)(sizeof last_error - (size_t)n - 1), old);
    return code;
}
