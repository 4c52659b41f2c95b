/* text.h — anti-aliased text on uint8 canvases (captions, axis labels), with
   stb_truetype and the DejaVu Sans font of Debian's fonts-dejavu-core.

     const me_font *f = me_font_default();          // loaded once per process
     if (!f) fprintf(stderr, "%s\n", moedit_last_error());
     int w = me_text_width(f, 16, "class 207");
     me_draw_text(f, rgb, width, height, 3, (width - w) / 2, 4, 16, "class 207", ME_BLACK);

   Canvases are row-major, interleaved, channels 1 (gray), 3 (RGB) or 4 (RGBA,
   alpha untouched). (x, y) is the top-left corner of the text's line box,
   which is pixel_height tall (ascender to descender) and me_text_width wide;
   anything outside the canvas is clipped. Text is UTF-8 (invalid bytes draw
   as U+FFFD). Colours are RGB; on a gray canvas their luma is used. */
#ifndef MOEDIT_IMAGE_TEXT_H
#define MOEDIT_IMAGE_TEXT_H

#include <stdint.h>

#define ME_FONT_PATH "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
/* The copy `cmake --install` puts under share/moedit/. */
#define ME_FONT_SHIPPED "fonts/DejaVuSans.ttf"

typedef struct me_font me_font;

/* path NULL = $MOEDIT_FONT if set, else the installed share/moedit/
   ME_FONT_SHIPPED if found, else ME_FONT_PATH. A missing or unreadable
   font is MOEDIT_EINPUT with a message naming the file and the package. */
int me_font_load(me_font **out, const char *path);
void me_font_free(me_font *f);

/* The default font, loaded on first use and kept for the process (thread-safe).
   NULL on failure, with moedit_last_error() set. */
const me_font *me_font_default(void);

/* Width in pixels of text drawn at pixel_height. */
int me_text_width(const me_font *f, float pixel_height, const char *utf8);

/* Draws text; returns MOEDIT_OK or MOEDIT_EINTERNAL (out of memory). */
int me_draw_text(const me_font *f, uint8_t *canvas, int width, int height, int channels,
                 int x, int y, float pixel_height, const char *utf8, const uint8_t rgb[3]);

/* Draws text turned 90° counter-clockwise (reading bottom to top, as a y-axis
   label). Its box has top-left (x, y), is pixel_height wide and
   me_text_width tall. */
int me_draw_text_vertical(const me_font *f, uint8_t *canvas, int width, int height, int channels,
                          int x, int y, float pixel_height, const char *utf8, const uint8_t rgb[3]);

extern const uint8_t ME_BLACK[3], ME_WHITE[3];

#endif
