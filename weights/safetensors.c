/* Placeholder until the reader lands. */
#include "weights/formats.h"

int me_read_safetensors(const char *path, me_tensors **out)
{
    *out = NULL;
    return me_fail(MOEDIT_EINPUT, "%s: reader not implemented yet", path);
}

int me_write_safetensors(const me_tensors *ts, const char *path, me_dtype dtype)
{
    return me_fail(MOEDIT_EINTERNAL, "%s: writer not implemented yet", path);
}
