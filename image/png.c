/* PNG output: stb_image_write encodes into memory, then the bytes go out
   through a temporary file renamed into place, so a failed or interrupted
   run never leaves a truncated PNG. This is moedit's one copy of
   stb_image_write (every PNG goes through me_png_write); STB_IMAGE_WRITE_STATIC
   keeps its symbols private so programs embedding libmoedit may link their own. */
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "image/image.h"

#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#endif
#include "stb_image_write.h"
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

typedef struct {
    uint8_t *data;
    size_t size, cap;
    int failed;
} membuf;

static void append(void *ctx, void *data, int n)
{
    membuf *m = ctx;
    if (m->failed || n <= 0) return;
    if (m->size + (size_t)n > m->cap) {
        size_t cap = m->cap ? m->cap : 1 << 16;
        while (cap < m->size + (size_t)n) cap *= 2;
        uint8_t *p = realloc(m->data, cap);
        if (!p) {
            m->failed = 1;
            return;
        }
        m->data = p;
        m->cap = cap;
    }
    memcpy(m->data + m->size, data, (size_t)n);
    m->size += (size_t)n;
}

int me_png_write(const char *path, const uint8_t *pixels, int w, int h, int channels)
{
    if (channels < 1 || channels > 4 || w <= 0 || h <= 0)
        return me_fail(MOEDIT_EINPUT, "%s: cannot write a %dx%d image with %d channels", path, w, h,
                       channels);
    membuf m = {0};
    int ok = stbi_write_png_to_func(append, &m, w, h, channels, pixels, w * channels);
    if (!ok || m.failed) {
        free(m.data);
        return me_fail(MOEDIT_EINTERNAL, "%s: PNG encoding failed (out of memory?)", path);
    }
    me_atomic_file af;
    int rc = me_atomic_open(&af, path);
    if (rc == MOEDIT_OK) rc = me_atomic_write(&af, m.data, m.size);
    if (rc == MOEDIT_OK) rc = me_atomic_commit(&af);
    else if (af.fp) me_atomic_abort(&af);
    free(m.data);
    return rc;
}
