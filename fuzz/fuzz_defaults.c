/* Fuzzes defaults.json, the sampling defaults a checkpoint folder carries:
   the text is parsed as `moedit sample` parses it, then resolved against a
   real (tiny) model into sampling options, which must come out valid or be
   refused with a usage error. The CLI is not part of libmoedit, so its
   source files are compiled into this harness. Seeds: fuzz/corpus/defaults/. */
#define MOEDIT_SOURCE_DIR "."
#include "../cli/args.c"
#include "../cli/sampling.c"
#include "../cli/device.c"
#include "../cli/sampling_solvers.c"

static moedit_model *tiny_model(void)
{
    static moedit_model *m;
    if (m) return m;
    char path[4096];
    snprintf(path, sizeof path, "%s", __FILE__);
    char *slash = strrchr(path, '/');
    snprintf(slash ? slash + 1 : path, sizeof path - (size_t)(slash ? slash + 1 - path : 0),
             "../tests/fixtures/dit/moe_top2.pt");
    if (moedit_model_load(path, &(moedit_load_options){.heads = 2}, &m) != MOEDIT_OK) abort();
    return m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    moedit_model *m = tiny_model();
    cli_sampling s;
    cli_sampling_init(&s);
    moedit_load_options lo;
    moedit_sample_options o;
    if (cli_sampling_defaults_json("fuzz", &s, "/models", "/models/defaults.json", (const char *)data, size) == 0 &&
        cli_model_options("fuzz", &s.load, &lo) == 0 && cli_sampling_resolve("fuzz", &s, m, &o) == 0) {
        if (!(o.cfg >= 1) || !isfinite(o.cfg) || o.cfg_channels < 0 || !o.steps) abort();
        if (lo.heads < 0 || lo.top_k < 0) abort();
    }
    cli_sampling_free(&s);
    return 0;
}
