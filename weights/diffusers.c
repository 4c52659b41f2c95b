/* Placeholder until the reader lands. */
#include "weights/formats.h"

int me_read_diffusers(const char *path, me_tensors **out)
{
    *out = NULL;
    return me_fail(MOEDIT_EINPUT, "%s: reader not implemented yet", path);
}
