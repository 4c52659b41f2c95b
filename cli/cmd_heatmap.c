/* moedit heatmap TRACE --out DIR [--cond-only] [--format png,svg,pdf]
   [--paper] [--model CKPT | --class-names FILE]: expert-specialization
   tables, statistics and figures from a trace written by `moedit sample
   --trace`; --paper adds the DiT-MoE paper's views under DIR/paper/. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include "cli/class_names.h"
#include "cli/cli.h"
#include "core/core.h"
#include "trace/heatmap.h"

/* The inputs, and the output folder that exists already (new files go in
   it one by one, me_atomic_dir_open), for check_output. */
typedef struct {
    const cli_file *in;
    int n;
    const char *out;
    int out_len;     /* out without trailing slashes */
    int paper_dir;   /* DIR/paper is a folder: only then can a paper output be an input */
} output_check;

/* Refuses an input that output `name` (me_trace_each_output) would
   overwrite once it was read: 0, or 2 after one line naming both. */
static int check_output(void *ctx, const char *name)
{
    const output_check *k = ctx;
    if (!strncmp(name, "paper/", 6) && !k->paper_dir) return 0;
    char path[4200], flag[128];
    cli_file f[4];
    snprintf(path, sizeof path, "%.*s/%s", k->out_len, k->out, name);
    snprintf(flag, sizeof flag, "--out's %s", name);
    memcpy(f, k->in, (size_t)k->n * sizeof *f);
    f[k->n] = (cli_file){flag, path, CLI_OUT};
    return cli_check_files("heatmap", f, k->n + 1);
}

int cmd_heatmap(int argc, char **argv)
{
    const char *out = NULL, *format = "png", *model = NULL, *names_file = NULL;
    int cond_only = 0, help = 0, paper = 0;
    const cli_flag flags[] = {
        {"--out", CLI_STR, &out, "DIR", "output folder (created if missing)"},
        {"--cond-only", CLI_BOOL, &cond_only, NULL, "skip the guidance null-class rows"},
        {"--format", CLI_STR, &format, "LIST", "figure formats, any of png,svg,pdf (default png)"},
        {"--paper", CLI_BOOL, &paper, NULL, "also the paper's views per layer and paper_all, in DIR/paper/"},
        {"--model", CLI_STR, &model, "CKPT", "the traced checkpoint, for the class names in its defaults.json"},
        {"--class-names", CLI_STR, &names_file, "FILE", "class names, one per line (line n: class n)"},
        {"--help", CLI_BOOL, &help, NULL, "this help"},
        {0},
    };
    char *pos[1];
    int npos;
    if (cli_parse("heatmap", argc, argv, flags, pos, 1, &npos)) return 2;
    if (help) {
        cli_usage("heatmap", "TRACE --out DIR [--cond-only] [--format png,svg,pdf] [--paper] "
                             "[--model CKPT | --class-names FILE]", flags);
        return 0;
    }
    if (npos != 1) return cli_usage_error("heatmap", "needs one trace file (moedit heatmap TRACE --out DIR)");
    if (!out) return cli_usage_error("heatmap", "--out DIR is required");
    unsigned formats;
    if (me_figure_formats(format, &formats)) return cli_usage_error("heatmap", "--format: %s", moedit_last_error());
    const cli_file files[] = {{"TRACE", pos[0], CLI_IN},
                              {"--model", model ? cli_model_path(model) : NULL, CLI_IN},
                              {"--class-names", names_file, CLI_IN},
                              {"--out", out, CLI_OUT_DIR}};
    if (cli_check_files("heatmap", files, 4)) return 2;
    /* only its folder's defaults.json is read: a missing one gave numbers for names, silently */
    if (model && cli_model_exists("heatmap", cli_model_path(model))) return 2;

    me_trace_reader *rd;
    int rc = me_trace_read_open(&rd, pos[0]);
    if (rc) return cli_fail(rc);
    /* an input in an existing DIR under one of the names written there would
       be replaced by that output; only the header says which names those are */
    struct stat st;
    if (!stat(out, &st) && S_ISDIR(st.st_mode)) {
        char paper_path[4200];
        output_check k = {files, 3, out, (int)strlen(out), 0};
        while (k.out_len > 1 && out[k.out_len - 1] == '/') k.out_len--;
        snprintf(paper_path, sizeof paper_path, "%.*s/paper", k.out_len, out);
        k.paper_dir = paper && !stat(paper_path, &st) && S_ISDIR(st.st_mode);
        if (me_trace_each_output(me_trace_reader_info(rd), paper, formats, check_output, &k)) {
            me_trace_read_close(rd);
            return 2;
        }
    }
    me_trace_counts c;
    rc = me_trace_count(&c, rd, cond_only);
    me_trace_read_close(rd);
    if (rc) return cli_fail(rc);
    /* figures and statistics of nothing would look like a result */
    if (!c.records) {
        unsigned long long count = (unsigned long long)c.info.count;
        me_trace_counts_free(&c);
        if (!count) return cli_usage_error("heatmap", "%s: the trace holds no records", pos[0]);
        return cli_usage_error("heatmap", "%s: --cond-only leaves no records (all %llu are guidance null rows)",
                               pos[0], count);
    }
    /* a figure that cannot be drawn fails before the tables are written */
    if (me_trace_check_figures(&c, paper)) {
        me_trace_counts_free(&c);
        return cli_usage_error("heatmap", "%s: %s", pos[0], moedit_last_error());
    }
    me_class_names names;
    if ((rc = cli_class_names("heatmap", names_file, model ? cli_model_path(model) : NULL, c.info.num_classes,
                              &names))) {
        me_trace_counts_free(&c);
        return rc;
    }
    c.names = &names;
    /* the folder appears only once every table and figure is in it */
    me_atomic_dir dir;
    char paper_dir[4200];
    if (!(rc = me_atomic_dir_open(&dir, out)) && !(rc = me_trace_write_tables(&c, dir.work)) &&
        !(rc = me_trace_write_summary(&c, dir.work, stdout)))
        rc = me_trace_write_figures(&c, dir.work, formats);
    if (!rc && paper) {
        snprintf(paper_dir, sizeof paper_dir, "%s/paper", dir.work);
        if (mkdir(paper_dir, 0777) != 0 && errno != EEXIST)
            rc = me_fail(MOEDIT_EINPUT, "%s: cannot create folder: %s", paper_dir, strerror(errno));
        if (!rc) rc = me_trace_write_paper(&c, paper_dir, formats);
    }
    if (!rc) rc = me_atomic_dir_commit(&dir);
    else if (dir.path) me_atomic_dir_abort(&dir);
    int figures = c.info.depth + 1;
    int views = paper ? c.info.depth * (c.gate_sums ? 4 : 3) + me_trace_paper_pages(&c) : 0;
    me_trace_counts_free(&c);
    me_class_names_free(&names);
    if (rc) return cli_fail(rc);
    fprintf(stderr, "moedit heatmap: wrote tables, summary.txt and %d figures to %s", figures, out);
    if (paper) fprintf(stderr, ", %d paper figures to %s/paper", views, out);
    fprintf(stderr, " (%s)\n", format);
    return 0;
}
