/* Checking text read from files (tensor names, metadata, class names) before
   it reaches JSON writers, cairo or a one-line message (see core.h). */
#include "core.h"

int me_utf8_check(const uint8_t *s, size_t n, int controls)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            int is_ctrl = c < 0x20 || c == 0x7f;
            int ws = c == '\t' || c == '\n' || c == '\r' || c == 0x7f;
            if (is_ctrl && !(controls == ME_UTF8_ANY_CONTROL || (controls == ME_UTF8_WHITESPACE && ws)))
                return ME_UTF8_CONTROL;
            i++;
            continue;
        }
        int len;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) len = 2, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef) len = 3, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4) len = 4, cp = c & 0x07;
        else return ME_UTF8_INVALID;
        if (n - i < (size_t)len) return ME_UTF8_INVALID;
        for (int k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return ME_UTF8_INVALID;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        /* overlong forms, code points past U+10FFFF, surrogates */
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff))) return ME_UTF8_INVALID;
        if (cp >= 0xd800 && cp <= 0xdfff) return ME_UTF8_INVALID;
        i += (size_t)len;
    }
    return ME_UTF8_OK;
}
