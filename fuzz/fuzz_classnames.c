/* Fuzzes the class-name readers and lookups (image/classnames.c): the
   input's first byte picks the reader (even: one name per line, odd: the
   "class_names" array of a JSON object), the bytes up to the first NUL
   after it are the file, the rest a --class list resolved against what was
   read (or against no names when the file was refused). Every label must be
   NUL-terminated UTF-8 within its buffer, every resolved id within
   0..num_classes. Seeds: fuzz/corpus/classnames/. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/core.h"
#include "image/classnames.h"

static char path[64];

static void remove_file(void) { unlink(path); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    if (!path[0]) {
        snprintf(path, sizeof path, "/tmp/moedit-fuzz-classnames-XXXXXX");
        int fd = mkstemp(path);
        if (fd < 0) abort();
        close(fd);
        atexit(remove_file);
    }
    int json = data[0] & 1;
    const uint8_t *text = data + 1, *nul = memchr(text, 0, size - 1);
    size_t len = nul ? (size_t)(nul - text) : size - 1;
    FILE *f = fopen(path, "wb");
    if (!f || (len && fwrite(text, 1, len, f) != len)) abort();
    fclose(f);
    size_t rest = nul ? size - 1 - len - 1 : 0;
    char *list = malloc(rest + 1);
    if (!list) abort();
    if (rest) memcpy(list, nul + 1, rest);
    list[rest] = 0;

    me_class_names cn;
    int found = 0;
    if (json ? me_class_names_read_json(&cn, path, &found) : me_class_names_read(&cn, path)) memset(&cn, 0, sizeof cn);
    for (int id = -1; id <= cn.count; id++) {
        char label[16];
        int cap = 1 + (id + 1) % (int)sizeof label;
        me_class_label(&cn, id, label, cap);
        size_t n = strnlen(label, (size_t)cap);
        if (n == (size_t)cap || me_utf8_check((const uint8_t *)label, n, ME_UTF8_NO_CONTROL) != ME_UTF8_OK) abort();
    }
    int num_classes = cn.count ? cn.count : 1000;
    int64_t labels[8];
    int n = -1;
    if (me_class_parse_list(&cn, list, num_classes, labels, 8, &n) == MOEDIT_OK) {
        if (n < 1 || n > 8) abort();
        for (int i = 0; i < n; i++)
            if (labels[i] < 0 || labels[i] > num_classes) abort();
    }
    me_class_names_free(&cn);
    free(list);
    return 0;
}
