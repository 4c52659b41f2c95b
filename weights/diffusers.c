/* diffusers model folders (a transformer or an AutoencoderKL saved with
   save_pretrained): config.json plus the weights in one of the file names
   diffusers writes. config.json is validated as JSON and kept whole as the
   metadata entry "config.json" for the model code to read. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "weights/formats.h"

#define MAX_CONFIG (16u << 20)   /* config.json is a few hundred bytes; anything huge is not one */

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = me_alloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* A whole small JSON file: its text in *text (NUL-terminated) and the parsed
   object in *json. */
static int read_json(const char *path, char **text, cJSON **json)
{
    *text = NULL;
    *json = NULL;
    me_file f;
    int rc = me_file_open(path, &f);
    if (rc) return rc;
    if (f.size > MAX_CONFIG) {
        me_file_close(&f);
        return me_fail(MOEDIT_EINPUT, "%s: %zu bytes is too large for a JSON config", path, f.size);
    }
    char *s = me_alloc(f.size + 1);
    if (!s) { me_file_close(&f); return MOEDIT_EINTERNAL; }
    memcpy(s, f.data, f.size);
    s[f.size] = 0;
    me_file_close(&f);
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(s, strlen(s) + 1, &end, 1);
    if (!j || !cJSON_IsObject(j)) {
        int rc = j ? me_fail(MOEDIT_EINPUT, "%s: not a JSON object", path)
                   : me_fail(MOEDIT_EINPUT, "%s: invalid JSON (near byte %zu)", path,
                             end && end >= s ? (size_t)(end - s) : 0);
        cJSON_Delete(j);
        free(s);
        return rc;
    }
    *text = s;
    *json = j;
    return MOEDIT_OK;
}

/* A name from a JSON file as it may appear in a one-line message. */
static const char *printable(const char *s)
{
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20) return "(a name with control characters)";
    return s;
}

/* One shard file name from an index: a plain name inside the folder. */
static int shard_name_ok(const char *s)
{
    return *s && !strchr(s, '/') && !strchr(s, '\\') && strcmp(s, ".") && strcmp(s, "..") && printable(s) == s;
}

/* diffusion_pytorch_model.safetensors.index.json: {"weight_map": {tensor:
   shard}}. Every shard is mapped and parsed into one registry; every tensor
   the index names must then be present. */
static int read_sharded(const char *dir, const char *index_path, me_tensors **out)
{
    char *text;
    cJSON *idx;
    int rc = read_json(index_path, &text, &idx);
    if (rc) return rc;
    free(text);
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(idx, "weight_map");
    me_tensors *ts = NULL;
    const char **loaded = NULL;
    int nloaded = 0;
    if (!cJSON_IsObject(map) || !map->child) {
        rc = me_fail(MOEDIT_EINPUT, "%s: no weight_map object", index_path);
        goto done;
    }
    loaded = me_calloc((size_t)cJSON_GetArraySize(map), sizeof *loaded);
    ts = loaded ? me_tensors_new(dir) : NULL;
    if (!ts) { rc = MOEDIT_EINTERNAL; goto done; }
    for (const cJSON *e = map->child; e && !rc; e = e->next) {
        if (!cJSON_IsString(e) || !shard_name_ok(e->valuestring)) {
            rc = me_fail(MOEDIT_EINPUT, "%s: bad shard file name for %.120s", index_path, printable(e->string));
            break;
        }
        int seen = 0;   /* shards repeat across the map; load each once */
        for (int i = 0; i < nloaded && !seen; i++) seen = !strcmp(loaded[i], e->valuestring);
        if (seen) continue;
        loaded[nloaded++] = e->valuestring;
        char *path = join(dir, e->valuestring);
        if (!path) { rc = MOEDIT_EINTERNAL; break; }
        me_file f;
        rc = me_file_open(path, &f);
        if (!rc) {
            rc = me_parse_safetensors(ts, f.data, f.size, path);
            if (!rc) rc = me_tensors_own_file(ts, &f);
            if (rc) me_file_close(&f);
        }
        free(path);
    }
    for (const cJSON *e = map->child; e && !rc; e = e->next)
        if (!me_tensors_find(ts, e->string))
            rc = me_fail(MOEDIT_EINPUT, "%s: tensor %.120s is in weight_map but in no shard", index_path,
                         printable(e->string));
done:
    free(loaded);
    cJSON_Delete(idx);
    if (rc) me_tensors_free(ts);
    else *out = ts;
    return rc;
}

int me_read_diffusers(const char *dir, me_tensors **out)
{
    *out = NULL;
    char *cfg_path = join(dir, "config.json");
    if (!cfg_path) return MOEDIT_EINTERNAL;
    if (!is_file(cfg_path)) {
        free(cfg_path);
        char *vae = join(dir, "vae/config.json"), *tr = join(dir, "transformer/config.json");
        int pipeline = (vae && is_file(vae)) || (tr && is_file(tr));
        free(vae);
        free(tr);
        return me_fail(MOEDIT_EINPUT, "%s: folder has no config.json%s", dir,
                       pipeline ? " (a pipeline folder: give its vae/ or transformer/ subfolder)"
                                : " (expected a diffusers model folder)");
    }
    char *text;
    cJSON *cfg;
    int rc = read_json(cfg_path, &text, &cfg);
    free(cfg_path);
    if (rc) return rc;
    cJSON_Delete(cfg);

    /* In diffusers' own order of preference; fp16 variants last. */
    static const char *names[] = {
        "diffusion_pytorch_model.safetensors",
        "diffusion_pytorch_model.safetensors.index.json",
        "diffusion_pytorch_model.bin",
        "diffusion_pytorch_model.fp16.safetensors",
        "diffusion_pytorch_model.fp16.bin",
    };
    me_tensors *ts = NULL;
    rc = -1;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && rc < 0; i++) {
        char *path = join(dir, names[i]);
        if (!path) { rc = MOEDIT_EINTERNAL; break; }
        if (is_file(path)) {
            if (strstr(names[i], ".index.json")) rc = read_sharded(dir, path, &ts);
            else if (strstr(names[i], ".safetensors")) rc = me_read_safetensors(path, &ts);
            else rc = me_read_torch(path, &ts);
        }
        free(path);
    }
    if (rc < 0)
        rc = me_fail(MOEDIT_EINPUT, "%s: no diffusion_pytorch_model.safetensors or .bin next to config.json", dir);
    if (!rc) rc = me_tensors_set_meta(ts, "config.json", text);
    free(text);
    if (rc) { me_tensors_free(ts); return rc; }
    *out = ts;
    return MOEDIT_OK;
}
