/* moedit heatmap TRACE --out DIR [--cond-only]: expert-specialization tables,
   statistics and figures from a trace written by `moedit sample --trace`. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include "cli/cli.h"
#include "core/core.h"
#include "trace/heatmap.h"

int cmd_heatmap(int argc, char **argv)
{
    const char *out = NULL;
    int cond_only = 0, help = 0;
    const cli_flag flags[] = {
        {"--out", CLI_STR, &out, "output folder (created if missing)"},
        {"--cond-only", CLI_BOOL, &cond_only, "skip the guidance null-class rows"},
        {"--help", CLI_BOOL, &help, "show this help"},
        {0},
    };
    char *pos[1];
    int npos;
    if (cli_parse("heatmap", argc, argv, flags, pos, 1, &npos)) return 2;
    if (help) {
        cli_usage("heatmap", "TRACE --out DIR [--cond-only]", flags);
        return 0;
    }
    if (npos != 1) return cli_usage_error("heatmap", "needs one trace file (moedit heatmap TRACE --out DIR)");
    if (!out) return cli_usage_error("heatmap", "--out DIR is required");

    me_trace_reader *rd;
    int rc = me_trace_read_open(&rd, pos[0]);
    if (rc) return cli_fail(rc);
    me_trace_counts c;
    rc = me_trace_count(&c, rd, cond_only);
    me_trace_read_close(rd);
    if (rc) return cli_fail(rc);
    /* the folder appears only once every table and figure is in it */
    me_atomic_dir dir;
    if (!(rc = me_atomic_dir_open(&dir, out)) && !(rc = me_trace_write_tables(&c, dir.work)) &&
        !(rc = me_trace_write_summary(&c, dir.work, stdout)))
        rc = me_trace_write_figures(&c, dir.work);
    if (!rc) rc = me_atomic_dir_commit(&dir);
    else if (dir.path) me_atomic_dir_abort(&dir);
    int figures = c.info.depth + 1;
    me_trace_counts_free(&c);
    if (rc) return cli_fail(rc);
    fprintf(stderr, "moedit heatmap: wrote tables, summary.txt and %d figures to %s\n", figures, out);
    return 0;
}
