/* Whether archive checksums are verified on read (see core.h): on unless the
   caller turned it off for the process or for one load on this thread. */
#include "core.h"

static int verify_all = 1;
static _Thread_local int suspended;

void moedit_set_verify(int on) { verify_all = on != 0; }

int me_verify_enabled(void) { return verify_all && !suspended; }

int me_verify_suspend(int off)
{
    int was = suspended;
    suspended = off != 0;
    return was;
}
