/* Text drawing with stb_truetype (see text.h). A line is first rendered into
   a coverage bitmap, then blended into the canvas, upright or turned. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include "core/core.h"
#include "image/text.h"

#define STBTT_STATIC
#define STB_TRUETYPE_IMPLEMENTATION
/* Static: only the functions used here, no clash with other users of stb. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include <stb_truetype.h>
#pragma GCC diagnostic pop

const uint8_t ME_BLACK[3] = {0, 0, 0}, ME_WHITE[3] = {255, 255, 255};

struct me_font {
    stbtt_fontinfo info;
    me_file file;
    int ascent, descent;
};

int me_font_load(me_font **out, const char *path)
{
    *out = NULL;
    if (!path) path = getenv("MOEDIT_FONT");
    char shipped[4096];
    if ((!path || !*path) && me_find_shipped(NULL, ME_FONT_SHIPPED, shipped, sizeof shipped)) path = shipped;
    if (!path || !*path) path = ME_FONT_PATH;
    me_font *f = me_calloc(1, sizeof *f);
    if (!f) return MOEDIT_EINTERNAL;
    if (me_file_open(path, &f->file) != MOEDIT_OK) {
        free(f);
        return me_fail(MOEDIT_EINPUT, "%s: cannot read font (install fonts-dejavu-core or set MOEDIT_FONT): %s",
                       path, moedit_last_error());
    }
    int offset = stbtt_GetFontOffsetForIndex(f->file.data, 0);
    if (f->file.size < 12 || offset < 0 || !stbtt_InitFont(&f->info, f->file.data, offset)) {
        me_file_close(&f->file);
        free(f);
        return me_fail(MOEDIT_EINPUT, "%s: not a TrueType font", path);
    }
    int gap;
    stbtt_GetFontVMetrics(&f->info, &f->ascent, &f->descent, &gap);
    *out = f;
    return MOEDIT_OK;
}

void me_font_free(me_font *f)
{
    if (!f) return;
    me_file_close(&f->file);
    free(f);
}

static pthread_once_t default_once = PTHREAD_ONCE_INIT;
static me_font *default_font;
static char default_error[512];

static void load_default(void)
{
    if (me_font_load(&default_font, NULL) != MOEDIT_OK)
        snprintf(default_error, sizeof default_error, "%s", moedit_last_error());
}

const me_font *me_font_default(void)
{
    pthread_once(&default_once, load_default);
    if (!default_font) me_fail(MOEDIT_EINPUT, "%s", default_error);
    return default_font;
}

/* Next code point of a UTF-8 string; malformed sequences give U+FFFD and
   consume one byte, so every input terminates. */
static int next_codepoint(const char **s)
{
    const unsigned char *p = (const unsigned char *)*s;
    int c = p[0], n, cp;
    if (c < 0x80) { *s += 1; return c; }
    if ((c & 0xe0) == 0xc0) { n = 1; cp = c & 0x1f; }
    else if ((c & 0xf0) == 0xe0) { n = 2; cp = c & 0x0f; }
    else if ((c & 0xf8) == 0xf0) { n = 3; cp = c & 0x07; }
    else { *s += 1; return 0xfffd; }
    for (int i = 1; i <= n; i++) {
        if ((p[i] & 0xc0) != 0x80) { *s += 1; return 0xfffd; }
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    *s += n + 1;
    return cp;
}

/* Walks the glyphs of a line: calls emit for each with its pen position, and
   returns the advance width in pixels (fractional). */
typedef void (*glyph_fn)(void *ctx, int cp, float pen_x);
static float layout(const me_font *f, float scale, const char *text, glyph_fn emit, void *ctx)
{
    float pen = 0;
    const char *s = text;
    int cp = *s ? next_codepoint(&s) : 0;
    while (cp) {
        int next = *s ? next_codepoint(&s) : 0;
        int advance, lsb;
        stbtt_GetCodepointHMetrics(&f->info, cp, &advance, &lsb);
        if (emit) emit(ctx, cp, pen);
        pen += advance * scale;
        if (next) pen += scale * stbtt_GetCodepointKernAdvance(&f->info, cp, next);
        cp = next;
    }
    return pen;
}

int me_text_width(const me_font *f, float pixel_height, const char *utf8)
{
    float scale = stbtt_ScaleForPixelHeight(&f->info, pixel_height);
    return (int)ceilf(layout(f, scale, utf8, NULL, NULL));
}

/* A rendered line: coverage 0..255, w × h. */
typedef struct {
    const me_font *font;
    float scale;
    int baseline, w, h;
    uint8_t *cov;
    uint8_t *glyph;
    size_t glyph_cap;
    int oom;
} line;

static void render_glyph(void *ctx, int cp, float pen)
{
    line *l = ctx;
    float shift = pen - floorf(pen);
    int x0, y0, x1, y1;
    stbtt_GetCodepointBitmapBoxSubpixel(&l->font->info, cp, l->scale, l->scale, shift, 0, &x0, &y0, &x1, &y1);
    int gw = x1 - x0, gh = y1 - y0;
    if (gw <= 0 || gh <= 0 || l->oom) return;
    size_t need = (size_t)gw * (size_t)gh;
    if (need > l->glyph_cap) {
        uint8_t *g = realloc(l->glyph, need);
        if (!g) { l->oom = 1; return; }
        l->glyph = g;
        l->glyph_cap = need;
    }
    stbtt_MakeCodepointBitmapSubpixel(&l->font->info, l->glyph, gw, gh, gw, l->scale, l->scale, shift, 0, cp);
    /* Max-combine, since kerned neighbours may overlap. */
    int ox = (int)floorf(pen) + x0, oy = l->baseline + y0;
    for (int j = 0; j < gh; j++) {
        int y = oy + j;
        if (y < 0 || y >= l->h) continue;
        for (int i = 0; i < gw; i++) {
            int x = ox + i;
            if (x < 0 || x >= l->w) continue;
            uint8_t v = l->glyph[(size_t)j * gw + i];
            uint8_t *d = &l->cov[(size_t)y * l->w + x];
            if (v > *d) *d = v;
        }
    }
}

static int render_line(const me_font *f, float px, const char *text, line *l)
{
    memset(l, 0, sizeof *l);
    l->font = f;
    l->scale = stbtt_ScaleForPixelHeight(&f->info, px);
    l->baseline = (int)lroundf(f->ascent * l->scale);
    l->h = (int)ceilf(px);
    l->w = (int)ceilf(layout(f, l->scale, text, NULL, NULL)) + 1;
    if (l->h <= 0 || l->w <= 1) return MOEDIT_OK;
    l->cov = me_calloc((size_t)l->w * (size_t)l->h, 1);
    if (!l->cov) return MOEDIT_EINTERNAL;
    layout(f, l->scale, text, render_glyph, l);
    free(l->glyph);
    l->glyph = NULL;
    if (l->oom) {
        free(l->cov);
        return me_fail(MOEDIT_EINTERNAL, "out of memory rendering text");
    }
    return MOEDIT_OK;
}

static void blend(uint8_t *canvas, int width, int height, int channels, int x, int y,
                  uint8_t a, const uint8_t rgb[3])
{
    if (!a || x < 0 || y < 0 || x >= width || y >= height) return;
    uint8_t *p = canvas + ((size_t)y * width + x) * channels;
    if (channels == 1) {
        int luma = (299 * rgb[0] + 587 * rgb[1] + 114 * rgb[2] + 500) / 1000;
        p[0] = (uint8_t)((p[0] * (255 - a) + luma * a + 127) / 255);
        return;
    }
    for (int c = 0; c < 3; c++) p[c] = (uint8_t)((p[c] * (255 - a) + rgb[c] * a + 127) / 255);
}

int me_draw_text(const me_font *f, uint8_t *canvas, int width, int height, int channels,
                 int x, int y, float pixel_height, const char *utf8, const uint8_t rgb[3])
{
    line l;
    if (render_line(f, pixel_height, utf8, &l)) return MOEDIT_EINTERNAL;
    for (int j = 0; l.cov && j < l.h; j++)
        for (int i = 0; i < l.w; i++)
            blend(canvas, width, height, channels, x + i, y + j, l.cov[(size_t)j * l.w + i], rgb);
    free(l.cov);
    return MOEDIT_OK;
}

int me_draw_text_vertical(const me_font *f, uint8_t *canvas, int width, int height, int channels,
                          int x, int y, float pixel_height, const char *utf8, const uint8_t rgb[3])
{
    line l;
    if (render_line(f, pixel_height, utf8, &l)) return MOEDIT_EINTERNAL;
    int tall = l.w - 1;   /* the text width, without render_line's spare column */
    /* Line pixel (i, j) lands at (x + j, y + tall - 1 - i): bottom to top. */
    for (int j = 0; l.cov && j < l.h; j++)
        for (int i = 0; i < l.w; i++)
            blend(canvas, width, height, channels, x + j, y + tall - 1 - i, l.cov[(size_t)j * l.w + i], rgb);
    free(l.cov);
    return MOEDIT_OK;
}
