/* An .npz image batch (cli/images.h). */
#include <limits.h>
#include <string.h>
#include "cli/images.h"
#include "core/core.h"
#include "weights/tensors.h"

int cli_images_layout(const char *path, const me_array *a, int *channels)
{
    char shape[96];
    if (a->dtype != ME_U8)
        return me_fail(MOEDIT_EINPUT, "%s: arr_0 is %s, not uint8 images [N, H, W, 3] (or 1 channel)", path,
                       me_dtype_name(a->dtype));
    int c = a->ndim == 4 ? (int)a->shape[3] : 1;
    if ((a->ndim != 3 && a->ndim != 4) || (c != 1 && c != 3))
        return me_fail(MOEDIT_EINPUT, "%s: arr_0 is %s, not images [N, H, W, 3] (or 1 channel)", path,
                       me_shape_str(a->ndim, a->shape, shape, sizeof shape));
    if (a->shape[1] < 1 || a->shape[1] > 8192 || a->shape[2] < 1 || a->shape[2] > 8192)
        return me_fail(MOEDIT_EINPUT, "%s: arr_0 holds images of %lldx%lld (sides 1 to 8192)", path,
                       (long long)a->shape[1], (long long)a->shape[2]);
    if (channels) *channels = c;
    return MOEDIT_OK;
}

int cli_images_open(const char *path, cli_images *b)
{
    memset(b, 0, sizeof *b);
    int rc = me_npz_open(path, &b->z);
    if (!rc) rc = me_npz_get(&b->z, "arr_0", &b->img);
    if (rc) return rc;
    const me_array *a = &b->img;
    int c;
    if ((rc = cli_images_layout(path, a, &c))) return rc;
    if (a->shape[0] < 2)
        return me_fail(MOEDIT_EINPUT, "%s: arr_0 holds %lld image%s (need at least 2)", path, (long long)a->shape[0],
                       a->shape[0] == 1 ? "" : "s");
    if (a->shape[0] > INT_MAX)
        return me_fail(MOEDIT_EINPUT, "%s: arr_0 holds %lld images (at most %d)", path, (long long)a->shape[0], INT_MAX);
    b->n = (int)a->shape[0];
    b->h = (int)a->shape[1];
    b->w = (int)a->shape[2];
    b->c = c;
    return MOEDIT_OK;
}

void cli_images_close(cli_images *b)
{
    me_array_free(&b->img);
    me_npz_close(&b->z);
}
