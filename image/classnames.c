/* Class-name lists and name/id lookups (see classnames.h). */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "image/classnames.h"

#define MAX_NAMES 100000
#define MAX_SHOWN 6   /* candidates named in an error message */

void me_class_names_free(me_class_names *cn)
{
    for (int i = 0; i < cn->count; i++) free(cn->names[i]);
    free(cn->names);
    cn->names = NULL;
    cn->count = 0;
}

static int add_name(me_class_names *cn, const char *s, size_t len, int *cap)
{
    if (cn->count == *cap) {
        int ncap = *cap ? 2 * *cap : 64;
        char **p = realloc(cn->names, (size_t)ncap * sizeof *p);
        if (!p) return me_fail(MOEDIT_EINTERNAL, "class names: out of memory");
        cn->names = p;
        *cap = ncap;
    }
    char *copy = me_alloc(len + 1);
    if (!copy) return MOEDIT_EINTERNAL;
    memcpy(copy, s, len);
    copy[len] = 0;
    cn->names[cn->count++] = copy;
    return MOEDIT_OK;
}

/* A name cairo can draw (it refuses broken UTF-8, failing the figure that
   shows it) and a one-line message or summary can print: NULL, else what is
   wrong with it. */
static const char *name_problem(const char *s, size_t n)
{
    int r = me_utf8_check((const uint8_t *)s, n, ME_UTF8_NO_CONTROL);
    return r == ME_UTF8_CONTROL ? "holds a control character" : r == ME_UTF8_INVALID ? "is not valid UTF-8" : NULL;
}

int me_class_names_read(me_class_names *out, const char *path)
{
    memset(out, 0, sizeof *out);
    me_file f;
    if (me_file_open(path, &f)) return MOEDIT_EINPUT;
    const char *p = (const char *)f.data, *end = p + f.size;
    int cap = 0, rc = MOEDIT_OK, line = 1;
    while (p < end && !rc) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        size_t len = (size_t)(stop - p);
        if (len && p[len - 1] == '\r') len--;
        const char *problem = len ? name_problem(p, len) : NULL;
        if (!len) rc = me_fail(MOEDIT_EINPUT, "%s: line %d is empty (one class name per line)", path, line);
        else if (problem) rc = me_fail(MOEDIT_EINPUT, "%s: line %d %s", path, line, problem);
        else if (out->count == MAX_NAMES) rc = me_fail(MOEDIT_EINPUT, "%s: more than %d names", path, MAX_NAMES);
        else rc = add_name(out, p, len, &cap);
        p = stop + 1;
        line++;
    }
    me_file_close(&f);
    if (!rc && !out->count) rc = me_fail(MOEDIT_EINPUT, "%s: no class names", path);
    if (rc) me_class_names_free(out);
    return rc;
}

int me_class_names_read_json(me_class_names *out, const char *path, int *found)
{
    memset(out, 0, sizeof *out);
    *found = 0;
    me_file f;
    if (me_file_open(path, &f)) return MOEDIT_EINPUT;
    cJSON *j = cJSON_ParseWithLength((const char *)f.data, f.size);
    me_file_close(&f);
    int rc = MOEDIT_OK, cap = 0;
    if (!cJSON_IsObject(j)) rc = me_fail(MOEDIT_EINPUT, "%s: not a JSON object", path);
    cJSON *arr = rc ? NULL : cJSON_GetObjectItemCaseSensitive(j, "class_names");
    if (arr && !cJSON_IsArray(arr)) rc = me_fail(MOEDIT_EINPUT, "%s: class_names is not an array", path);
    for (cJSON *v = cJSON_IsArray(arr) ? arr->child : NULL; v && !rc; v = v->next) {
        const char *problem = cJSON_IsString(v) ? name_problem(v->valuestring, strlen(v->valuestring)) : NULL;
        if (!cJSON_IsString(v) || !v->valuestring[0])
            rc = me_fail(MOEDIT_EINPUT, "%s: class_names[%d] is not a non-empty string", path, out->count);
        else if (problem) rc = me_fail(MOEDIT_EINPUT, "%s: class_names[%d] %s", path, out->count, problem);
        else if (out->count == MAX_NAMES) rc = me_fail(MOEDIT_EINPUT, "%s: more than %d names", path, MAX_NAMES);
        else rc = add_name(out, v->valuestring, strlen(v->valuestring), &cap);
    }
    *found = !rc && arr;
    cJSON_Delete(j);
    if (rc) me_class_names_free(out);
    return rc;
}

const char *me_class_name(const me_class_names *cn, int id)
{
    return cn && id >= 0 && id < cn->count ? cn->names[id] : NULL;
}

void me_class_label(const me_class_names *cn, int id, char *buf, int size)
{
    const char *name = me_class_name(cn, id);
    if (!name) {
        snprintf(buf, (size_t)size, "%d", id);
        return;
    }
    size_t len = strlen(name);
    if (len >= (size_t)size) {
        len = (size_t)size - 1;
        /* cut before a character, not inside one: a label is drawn, and cairo refuses broken UTF-8 */
        while (len && ((unsigned char)name[len] & 0xc0) == 0x80) len--;
    }
    memcpy(buf, name, len);
    buf[len] = 0;
}

/* Folded character: lower case, '_' as ' '. */
static int fold(int ch)
{
    return ch == '_' ? ' ' : tolower((unsigned char)ch);
}

/* Whether name starts with q[0..len) (folded); *whole when it is all of it. */
static int starts_with(const char *name, const char *q, size_t len, int *whole)
{
    size_t i = 0;
    while (i < len && name[i] && fold(name[i]) == fold(q[i])) i++;
    *whole = i == len && !name[i];
    return i == len;
}

/* "'q' could be: a (1), b (2), … and 3 more" into the error message. */
static int name_candidates(const me_class_names *cn, const char *q, size_t len, const int *ids, int n,
                           const char *why)
{
    char list[512] = "";
    size_t k = 0;
    for (int i = 0; i < n && i < MAX_SHOWN && k < sizeof list; i++) {
        int w = snprintf(list + k, sizeof list - k, "%s'%s' (%d)", i ? ", " : "", cn->names[ids[i]], ids[i]);
        if (w < 0) break;
        k += (size_t)w;
    }
    if (n > MAX_SHOWN && k < sizeof list) snprintf(list + k, sizeof list - k, " and %d more", n - MAX_SHOWN);
    return me_fail(MOEDIT_EINPUT, "'%.*s' %s %s", (int)len, q, why, list);
}

int me_class_lookup(const me_class_names *cn, const char *token, int num_classes, int *id)
{
    while (*token == ' ') token++;
    size_t len = strlen(token);
    while (len && token[len - 1] == ' ') len--;
    if (!len) return me_fail(MOEDIT_EINPUT, "empty class");
    size_t digits = 0;
    while (digits < len && isdigit((unsigned char)token[digits])) digits++;
    if (digits == len) {
        long long v = 0;
        for (size_t i = 0; i < len && v <= num_classes; i++) v = v * 10 + (token[i] - '0');
        if (v > num_classes)
            return me_fail(MOEDIT_EINPUT, "%.*s is outside 0..%d (%d = unconditional)", (int)len, token,
                           num_classes - 1, num_classes);
        *id = (int)v;
        return MOEDIT_OK;
    }
    int count = cn ? cn->count : 0;
    if (count > num_classes) count = num_classes;
    if (!count)
        return me_fail(MOEDIT_EINPUT, "'%.*s' is not a class id, and this model has no class names "
                       "(give --class-names FILE)", (int)len, token);
    int *hits = me_alloc((size_t)count * sizeof *hits);
    if (!hits) return MOEDIT_EINTERNAL;
    int nhit = 0, exact = -1, rc;
    for (int i = 0; i < count; i++) {
        int whole;
        if (!starts_with(cn->names[i], token, len, &whole)) continue;
        /* A whole-name match wins; case-sensitive if two names differ only in case. */
        if (whole && (exact < 0 || !strncmp(cn->names[i], token, len))) exact = i;
        hits[nhit++] = i;
    }
    /* A list may name two classes alike (torchvision's has two "crane" and
       two "maillot"): as labels they do no harm, as a choice they are one. */
    int twins = 0;
    for (int i = 0; exact >= 0 && i < nhit; i++)
        if (!strcmp(cn->names[hits[i]], cn->names[exact])) hits[twins++] = hits[i];
    if (twins > 1) {
        rc = name_candidates(cn, token, len, hits, twins, "names more than one class (give its id):");
    } else if (exact >= 0 || nhit == 1) {
        *id = exact >= 0 ? exact : hits[0];
        rc = MOEDIT_OK;
    } else if (nhit > 1) {
        rc = name_candidates(cn, token, len, hits, nhit, "is ambiguous; it starts");
    } else {
        /* Unknown: offer the names that contain it, else the first few names. */
        for (int i = 0; i < count; i++)
            for (const char *p = cn->names[i]; *p; p++) {
                int whole;
                if (starts_with(p, token, len, &whole)) {
                    hits[nhit++] = i;
                    break;
                }
            }
        if (nhit) rc = name_candidates(cn, token, len, hits, nhit, "is not a class name; names containing it:");
        else {
            for (int i = 0; i < count && i < MAX_SHOWN; i++) hits[nhit++] = i;
            rc = name_candidates(cn, token, len, hits, count, "is not a class name; the names:");
        }
    }
    free(hits);
    return rc;
}

int me_class_parse_list(const me_class_names *cn, const char *list, int num_classes, int64_t *labels,
                        int max, int *n)
{
    *n = 0;
    const char *p = list;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char token[512];
        if (len >= sizeof token) return me_fail(MOEDIT_EINPUT, "'%.40s…' is too long for a class", p);
        memcpy(token, p, len);
        token[len] = 0;
        if (*n == max) return me_fail(MOEDIT_EINPUT, "more than %d classes", max);
        int id, rc = me_class_lookup(cn, token, num_classes, &id);
        if (rc) return rc;
        labels[(*n)++] = id;
        if (!comma) return MOEDIT_OK;
        p = comma + 1;
    }
}

int moedit_class_lookup(const char *const *names, int count, const char *token, int num_classes, int *id)
{
    if (!token || !id || count < 0 || (count && !names)) return me_fail(MOEDIT_EINPUT, "class lookup: missing argument");
    for (int i = 0; i < count; i++)
        if (!names[i]) return me_fail(MOEDIT_EINPUT, "class lookup: name %d is missing", i);
    me_class_names cn = {count, (char **)names};   /* read only: me_class_lookup does not write them */
    return me_class_lookup(&cn, token, num_classes, id);
}
