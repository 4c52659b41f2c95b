/* `moedit heatmap` end to end, and the tracer on a real model forward
   checked against the routes of the reference PyTorch gate. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "moedit.h"
#include "image/figure.h"
#include "trace/heatmap.h"
#include "weights/npy.h"
#include "tests/testutil.h"

static char dir[64];

static void setup(void) { tu_tmpdir(dir, sizeof dir, "cli_heatmap"); }
static void teardown(void) { cr_assert_eq(tu_rmtree(dir), 0); }

TestSuite(cli_heatmap, .init = setup, .fini = teardown);

/* Runs moedit with args; stdout and stderr go to files in dir. */
static int run(const char *args)
{
    return tu_system("'%s' %s >'%s/stdout' 2>'%s/stderr'", MOEDIT_BIN, args, dir, dir);
}

static char *slurp(const char *name) { return tu_slurp(tu_join(dir, name), NULL); }
static int exists(const char *name) { return tu_exists(tu_join(dir, name)); }

static void expect_one_line_error(const char *needle)
{
    char *err = slurp("stderr");
    cr_assert(err && strstr(err, needle), "stderr '%s' lacks '%s'", err ? err : "", needle);
    cr_assert(tu_one_line(err), "one line: %s", err);
    free(err);
}

Test(cli_heatmap, corrupt_trace_exits_2) {
    char path[600], args[1400];
    snprintf(path, sizeof path, "%s/bad.trace", dir);
    FILE *f = fopen(path, "wb");
    fputs("MOETRACE but not really a trace file, just text long enough to hold a header"
          "................................................................", f);
    fclose(f);
    snprintf(args, sizeof args, "heatmap '%s' --out '%s/out'", path, dir);
    cr_assert_eq(run(args), 2);
    expect_one_line_error("bad.trace");
    cr_assert(!exists("out/step_counts.csv"), "no output for a bad trace");
}

/* A trace with nothing to count (no records, or only null rows with
   --cond-only) is refused rather than drawn as empty figures. */
Test(cli_heatmap, nothing_to_count_exits_2) {
    moedit_config c = {.family = MOEDIT_FAMILY_DIT_MOE, .depth = 1, .input_size = 4,
                       .patch = 2, .num_classes = 2, .num_experts = 2, .top_k = 1};
    char path[600], args[1400];
    me_trace *tr;
    snprintf(path, sizeof path, "%s/empty.trace", dir);
    cr_assert_eq(me_trace_open(&tr, path, &c), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_eq(me_trace_close(tr), MOEDIT_OK, "%s", moedit_last_error());
    snprintf(args, sizeof args, "heatmap '%s' --out '%s/out'", path, dir);
    cr_assert_eq(run(args), 2);
    expect_one_line_error("holds no records");
    cr_assert(!exists("out"), "no output folder for an empty trace");

    snprintf(path, sizeof path, "%s/null.trace", dir);
    cr_assert_eq(me_trace_open(&tr, path, &c), MOEDIT_OK, "%s", moedit_last_error());
    int e = 1;
    float w = 0.9f;
    moedit_route r = {.layer = 0, .step = 0, .row = 0, .token = 0, .timestep = 999, .label = 2, .is_null = 1,
                      .k = 1, .experts = &e, .weights = &w};
    me_trace_route(tr, &r);
    cr_assert_eq(me_trace_close(tr), MOEDIT_OK, "%s", moedit_last_error());
    snprintf(args, sizeof args, "heatmap '%s' --out '%s/out' --cond-only", path, dir);
    cr_assert_eq(run(args), 2);
    expect_one_line_error("all 1 are guidance null rows");
    cr_assert(!exists("out"), "no output folder when nothing is counted");
    snprintf(args, sizeof args, "heatmap '%s' --out '%s/out'", path, dir);
    cr_assert_eq(run(args), 0, "%s", slurp("stderr"));
}

Test(cli_heatmap, usage_errors_exit_2) {
    char args[1400];
    snprintf(args, sizeof args, "heatmap '%s/missing.trace' --out '%s/out'", dir, dir);
    cr_assert_eq(run(args), 2);
    expect_one_line_error("missing.trace");
    snprintf(args, sizeof args, "heatmap '%s/missing.trace'", dir);
    cr_assert_eq(run(args), 2);
    expect_one_line_error("--out");
    cr_assert_eq(run("heatmap --out x --bogus"), 2);
    cr_assert_eq(run("heatmap --help"), 0);
}

Test(cli_heatmap, writes_tables_summary_and_figures) {
    moedit_config c = {.family = MOEDIT_FAMILY_DIT_MOE, .depth = 2, .input_size = 8,
                       .patch = 2, .num_classes = 4, .num_experts = 4, .top_k = 2};
    char path[600], args[1400];
    snprintf(path, sizeof path, "%s/run.trace", dir);
    me_trace *tr;
    cr_assert_eq(me_trace_open(&tr, path, &c), MOEDIT_OK);
    me_trace_set_info(tr, "ddpm", 3, 1.5f);
    for (int s = 0; s < 3; s++)
        for (int l = 0; l < 2; l++)
            for (int row = 0; row < 2; row++)
                for (int tok = 0; tok < 16; tok++) {
                    int e[2] = {(tok + s) % 4, (tok + s + 1 + l) % 4};
                    float w[2] = {0.5f, 0.25f};
                    moedit_route r = {.layer = l, .step = s, .row = row, .token = tok, .timestep = 900.0f - 300 * s,
                                      .label = row ? 4 : 2, .is_null = row, .k = 2, .experts = e, .weights = w};
                    me_trace_route(tr, &r);
                }
    cr_assert_eq(me_trace_close(tr), MOEDIT_OK, "%s", moedit_last_error());
    snprintf(args, sizeof args, "heatmap '%s' --out '%s/out' --cond-only", path, dir);
    cr_assert_eq(run(args), 0);
    const char *files[] = {"out/step_counts.csv", "out/position_counts.csv", "out/class_counts.csv",
                           "out/step_entropy.csv", "out/summary.txt", "out/layer_00.png",
                           "out/layer_01.png", "out/overview.png"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) cr_assert(exists(files[i]), "%s missing", files[i]);
    char *out = slurp("stdout");
    cr_assert(out && strstr(out, "early vs late"), "%s", out);
    cr_assert(strstr(out, "conditional rows only"), "%s", out);
    free(out);
    char *csv = slurp("out/class_counts.csv");
    /* Only the conditional row (class 2) counts. Each (step, token) picks experts
       a and a + 1 + layer (mod 4), a = (token + step) mod 4, which runs through
       every expert 4 times per step: 8 picks per expert and step, 24 in all. */
    cr_assert(strstr(csv, "\n0,2,,0,24\n0,2,,1,24\n0,2,,2,24\n0,2,,3,24\n"), "%s", csv);
    cr_assert_null(strstr(csv, "\n0,4,"), "null class skipped");
    cr_assert(!strncmp(csv, "layer,class,class_name,expert,count\n", 36), "%s", csv);
    free(csv);
}

/* me_trace_each_output's list for one trace and run. */
typedef struct {
    char names[64][64];
    int n;
} name_list;

static int collect(void *ctx, const char *name)
{
    name_list *l = ctx;
    cr_assert_lt(l->n, 64);
    snprintf(l->names[l->n++], sizeof l->names[0], "%s", name);
    return 0;
}

/* The names `moedit heatmap` checks against its inputs are the files it
   writes, all of them (with --paper and two formats, on a Switch-DiT trace
   with gate probabilities), so an output added to a writer and not to the
   list fails here. */
Test(cli_heatmap, checked_output_names_are_the_files_written) {
    char args[1400];
    snprintf(args, sizeof args, "heatmap '%s/trace/v1_switch.trace' --out '%s/out' --paper --format png,svg",
             FIXTURES, dir);
    cr_assert_eq(run(args), 0, "%s", slurp("stderr"));
    me_trace_reader *rd;
    cr_assert_eq(me_trace_read_open(&rd, FIXTURES "/trace/v1_switch.trace"), MOEDIT_OK);
    name_list want = {.n = 0};
    cr_assert_eq(me_trace_each_output(me_trace_reader_info(rd), 1, ME_FIG_PNG | ME_FIG_SVG, collect, &want), 0);
    me_trace_read_close(rd);
    char list[600];
    snprintf(list, sizeof list, "cd '%s/out' && find . -type f | sed 's|^./||' | sort > ../written.txt", dir);
    cr_assert_eq(tu_system("%s", list), 0);
    char *written = slurp("written.txt"), all[8192];
    cr_assert_not_null(written);
    snprintf(all, sizeof all, "\n%s", written);   /* every name between two newlines */
    int lines = 0;
    for (const char *p = written; (p = strchr(p, '\n')); p++) lines++;
    for (int i = 0; i < want.n; i++) {
        char line[80];
        snprintf(line, sizeof line, "\n%s\n", want.names[i]);
        cr_assert(strstr(all, line), "%s not written:\n%s", want.names[i], written);
    }
    cr_assert_eq(lines, want.n, "written:\n%s", written);
    free(written);
}

/* dir/name: a one-layer trace of one token per step, at steps 0 and last. */
static void write_trace(const char *name, int last)
{
    moedit_config c = {.family = MOEDIT_FAMILY_DIT_MOE, .depth = 1, .input_size = 4,
                       .patch = 2, .num_classes = 4, .num_experts = 2, .top_k = 1};
    me_trace *tr;
    cr_assert_eq(me_trace_open(&tr, tu_join(dir, name), &c), MOEDIT_OK, "%s", moedit_last_error());
    for (int s = 0; s <= last; s += last ? last : 1) {
        int e = s % 2;
        float w = 0.9f;
        moedit_route r = {.layer = 0, .step = s, .row = 0, .token = 0, .timestep = 999, .label = 1,
                          .k = 1, .experts = &e, .weights = &w};
        me_trace_route(tr, &r);
    }
    cr_assert_eq(me_trace_close(tr), MOEDIT_OK, "%s", moedit_last_error());
}

static void copy(const char *from, const char *to)
{
    size_t n;
    char *b = tu_slurp(tu_join(dir, from), &n);
    cr_assert_not_null(b, "%s", from);
    FILE *f = fopen(tu_join(dir, to), "wb");
    cr_assert_not_null(f, "%s", to);
    cr_assert_eq(fwrite(b, 1, n, f), n);
    cr_assert_eq(fclose(f), 0);
    free(b);
}

/* An input in --out DIR under the name of one of the outputs would be read,
   then replaced: refused before anything is written, the input kept. */
Test(cli_heatmap, input_named_like_an_output_exits_2) {
    char args[1400];
    write_trace("run.trace", 2);
    snprintf(args, sizeof args, "heatmap '%s/run.trace' --out '%s/out' --paper --format svg", dir, dir);
    cr_assert_eq(run(args), 0, "%s", slurp("stderr"));
    size_t len, kept_len;
    char *trace = tu_slurp(tu_join(dir, "run.trace"), &len);
    const char *names[] = {"summary.txt", "step_counts.csv", "layer_00.svg", "overview.svg",
                           "paper/layer_00_class.svg", "paper/paper_all.svg"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char in[200];
        snprintf(in, sizeof in, "out/%s", names[i]);
        copy("run.trace", in);
        snprintf(args, sizeof args, "heatmap '%s/%s' --out '%s/out/' --paper --format png,svg", dir, in, dir);
        cr_assert_eq(run(args), 2, "%s read and overwritten", in);
        expect_one_line_error("TRACE and --out's");
        expect_one_line_error(names[i]);
        char *kept = tu_slurp(tu_join(dir, in), &kept_len);
        cr_assert(kept && kept_len == len && !memcmp(kept, trace, len), "%s was overwritten", in);
        free(kept);
    }
    /* the class names too */
    FILE *f = fopen(tu_join(dir, "out/class_counts.csv"), "w");
    fputs("zero\none\ntwo\nthree\n", f);
    fclose(f);
    snprintf(args, sizeof args, "heatmap '%s/run.trace' --out '%s/out' --class-names '%s/out/class_counts.csv'",
             dir, dir, dir);
    cr_assert_eq(run(args), 2);
    expect_one_line_error("--class-names and --out's class_counts.csv name the same file");
    /* names heatmap does not write here are inputs like any other: the
       paper's views without --paper, a format not asked for, another name */
    snprintf(args, sizeof args, "heatmap '%s/out/paper/paper_all.svg' --out '%s/out' --format png", dir, dir);
    cr_assert_eq(run(args), 0, "%s", slurp("stderr"));
    copy("run.trace", "out/run.trace");
    snprintf(args, sizeof args, "heatmap '%s/out/run.trace' --out '%s/out' --paper", dir, dir);
    cr_assert_eq(run(args), 0, "%s", slurp("stderr"));
    free(trace);
}

/* A heatmap wider than a figure can draw (40001 steps) is refused before
   the tables are written, not after. */
Test(cli_heatmap, too_wide_heatmap_exits_2_before_writing) {
    char args[1400];
    write_trace("long.trace", 40000);
    snprintf(args, sizeof args, "heatmap '%s/long.trace' --out '%s/out'", dir, dir);
    cr_assert_eq(run(args), 2);
    expect_one_line_error("the step view (experts x denoising steps) would be a 2 x 40001 heatmap");
    cr_assert(!exists("out"), "no output folder");
    cr_assert_eq(mkdir(tu_join(dir, "out"), 0777), 0);
    cr_assert_eq(run(args), 2);
    cr_assert(!exists("out/step_counts.csv") && !exists("out/summary.txt"), "no table in an existing folder");
    char *out = slurp("stdout");
    cr_assert(out && !*out, "no summary printed: %s", out);
    free(out);
}

/* ---- integration with the model (fixtures from tools of the dit-ref work) ---- */

static void read_npy(const char *variant, const char *suffix, me_array *a)
{
    char p[600];
    snprintf(p, sizeof p, "%s/dit/%s_%s.npy", FIXTURES, variant, suffix);
    cr_assert_eq(me_npy_read(p, a), MOEDIT_OK, "%s", moedit_last_error());
}

static int64_t *read_i64(const char *variant, const char *suffix, me_array *a)
{
    read_npy(variant, suffix, a);
    int64_t *v = malloc((size_t)a->numel * sizeof *v);
    me_array_to_i64(a, v);
    return v;
}

static float *read_f32(const char *variant, const char *suffix, me_array *a)
{
    read_npy(variant, suffix, a);
    float *v = malloc((size_t)a->numel * sizeof *v);
    me_array_to_f32(a, v);
    return v;
}

/* Runs one forward of fixture `variant` with the tracer on, and checks every
   traced choice (as a set: ties in order do not matter) and the step counts
   against the reference routes: [depth, N, T, k] for DiT-MoE, [depth, N, k]
   for Switch-DiT (whose gate probabilities are checked too). */
static void check_routes(const char *variant, int heads)
{
    char model_path[600];
    snprintf(model_path, sizeof model_path, "%s/dit/%s.pt", FIXTURES, variant);
    if (access(model_path, F_OK) != 0) cr_skip_test("fixture %s not generated yet", model_path);
    moedit_model *m;
    moedit_load_options opt = {.heads = heads, .top_k = 2};   /* as in the fixture's .json */
    cr_assert_eq(moedit_model_load(model_path, &opt, &m), MOEDIT_OK, "%s", moedit_last_error());
    const moedit_config *cfg = moedit_model_config(m);
    int per_row = cfg->family == MOEDIT_FAMILY_SWITCH_DIT;
    me_array ax, at, ay, ar, ap = {0};
    float *x = read_f32(variant, "x", &ax), *t = read_f32(variant, "t", &at);
    float *probs = per_row ? read_f32(variant, "gate_probs", &ap) : NULL;
    int64_t *y = read_i64(variant, "y", &ay), *routes = read_i64(variant, "routes", &ar);
    int n = (int)ax.shape[0], depth = cfg->depth, k = cfg->top_k, E = cfg->num_experts;
    int T = per_row ? 1 : (cfg->input_size / cfg->patch) * (cfg->input_size / cfg->patch);
    cr_assert_eq(ar.ndim, per_row ? 3 : 4);
    cr_assert(ar.shape[0] == depth && ar.shape[1] == n && ar.shape[ar.ndim - 1] == k && (per_row || ar.shape[2] == T),
              "routes shape");

    char path[600];
    snprintf(path, sizeof path, "%s/forward.trace", dir);
    me_trace *tr;
    cr_assert_eq(me_trace_open(&tr, path, cfg), MOEDIT_OK, "%s", moedit_last_error());
    me_trace_set_info(tr, "forward", 1, 1.0f);
    moedit_model_set_step(m, 0, -1);
    moedit_model_set_tracer(m, me_trace_route, tr);
    float *out = malloc((size_t)n * cfg->out_channels * cfg->input_size * cfg->input_size * sizeof *out);
    cr_assert_eq(moedit_model_forward(m, n, x, t, y, out), MOEDIT_OK, "%s", moedit_last_error());
    moedit_model_set_tracer(m, NULL, NULL);
    cr_assert_eq(me_trace_close(tr), MOEDIT_OK, "%s", moedit_last_error());

    me_trace_reader *rd;
    cr_assert_eq(me_trace_read_open(&rd, path), MOEDIT_OK, "%s", moedit_last_error());
    const me_trace_info *in = me_trace_reader_info(rd);
    cr_assert_eq(in->count, (uint64_t)depth * n * T, "one record per layer, row and token");
    cr_assert_eq(in->num_probs, per_row ? E : 0);
    me_trace_record *rec = malloc(sizeof *rec);
    for (uint64_t i = 0; i < in->count; i++) {
        cr_assert_eq(me_trace_read(rd, i, rec), MOEDIT_OK, "%s", moedit_last_error());
        cr_assert_eq(rec->token, per_row ? -1 : rec->token);
        int tok = per_row ? 0 : rec->token;
        const int64_t *ref = routes + (((size_t)rec->layer * n + rec->row) * T + tok) * k;
        cr_assert_eq(rec->label, (int)y[rec->row]);
        cr_assert_eq(rec->timestep, t[rec->row]);
        for (int j = 0; j < k; j++) {
            int found = 0;
            for (int q = 0; q < k; q++) found |= rec->experts[j] == ref[q];
            cr_assert(found, "layer %d row %d token %d: expert %d not among the reference's", rec->layer,
                      rec->row, rec->token, rec->experts[j]);
        }
        for (int e = 0; per_row && e < E; e++)
            cr_assert_float_eq(rec->probs[e], probs[((size_t)rec->layer * n + rec->row) * E + e], 1e-5);
    }
    free(rec);
    me_trace_counts c;
    cr_assert_eq(me_trace_count(&c, rd, 0), MOEDIT_OK, "%s", moedit_last_error());
    for (int l = 0; l < depth; l++)
        for (int e = 0; e < E; e++) {
            uint64_t want = 0;
            for (size_t i = 0; i < (size_t)n * T * k; i++) want += routes[(size_t)l * n * T * k + i] == e;
            cr_assert_eq(c.step_counts[(size_t)l * E + e], want, "layer %d expert %d", l, e);
        }
    me_trace_counts_free(&c);
    me_trace_read_close(rd);
    free(x); free(t); free(y); free(routes); free(out); free(probs);
    me_array_free(&ax); me_array_free(&at); me_array_free(&ay); me_array_free(&ar);
    if (per_row) me_array_free(&ap);
    moedit_model_free(m);
}

Test(cli_heatmap, dit_moe_routes_match_reference_gate) { check_routes("moe_top2", 2); }
Test(cli_heatmap, switch_dit_routes_match_reference_gate) { check_routes("switch_dmoe", 3); }

/* `moedit sample --trace` then `moedit heatmap`: every step, layer, row and
   token of a guided run is recorded, with the null half flagged. */
Test(cli_heatmap, sample_trace_covers_every_step_and_row) {
    char model_path[600], args[2048], path[600];
    snprintf(model_path, sizeof model_path, "%s/dit/moe_top2.pt", FIXTURES);
    if (access(model_path, F_OK) != 0) cr_skip_test("fixture %s not generated yet", model_path);
    snprintf(path, sizeof path, "%s/s.trace", dir);
    snprintf(args, sizeof args, "sample --model '%s' --heads 2 --steps 5 --class 1,2 --cfg 1.5 --no-vae "
             "--latents-out '%s/l.npy' --trace '%s' --threads 1", model_path, dir, path);
    cr_assert_eq(run(args), 0, "%s", slurp("stderr"));
    me_trace_reader *rd;
    cr_assert_eq(me_trace_read_open(&rd, path), MOEDIT_OK, "%s", moedit_last_error());
    const me_trace_info *in = me_trace_reader_info(rd);
    cr_assert_eq(in->count, 5 * 2 * 4 * 16, "steps x layers x (2 cond + 2 null rows) x tokens");
    int seen[5][4] = {{0}};
    me_trace_record rec;
    for (uint64_t i = 0; i < in->count; i++) {
        cr_assert_eq(me_trace_read(rd, i, &rec), MOEDIT_OK, "%s", moedit_last_error());
        cr_assert_lt(rec.step, 5);
        cr_assert_eq(rec.is_null, rec.row >= 2, "row %d", rec.row);
        cr_assert_eq(rec.label, rec.row >= 2 ? 10 : rec.row + 1);
        seen[rec.step][rec.row]++;
    }
    for (int s = 0; s < 5; s++)
        for (int r = 0; r < 4; r++) cr_assert_eq(seen[s][r], 2 * 16, "step %d row %d", s, r);
    me_trace_read_close(rd);
    snprintf(args, sizeof args, "heatmap '%s' --out '%s/hm'", path, dir);
    cr_assert_eq(run(args), 0, "%s", slurp("stderr"));
    cr_assert(exists("hm/layer_01.png") && exists("hm/overview.png"));
}

/* A --model that is not there (it is read for its defaults.json's class names
   only): refused, where the names silently became numbers. */
Test(cli_heatmap, missing_model_refused) {
    char args[1400];
    write_trace("run.trace", 2);
    snprintf(args, sizeof args, "heatmap '%s/run.trace' --out '%s/out' --model '%s/nothing.pt'", dir, dir, dir);
    cr_assert_eq(run(args), 2, "%s", slurp("stderr"));
    expect_one_line_error("--model");
    expect_one_line_error("nothing.pt: no such file or folder");
    cr_assert(!exists("out"));
}
