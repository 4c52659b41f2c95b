/* heatmap.h — expert-specialization tables, statistics and figures from a
   trace (`moedit heatmap`).

     me_trace_counts c;
     if (me_trace_count(&c, rd, cond_only)) ...      // validates every record
     c.names = &names;                   // optional: class names instead of ids
     me_trace_write_tables(&c, "out");   // step/position/class counts, step_entropy.csv
     me_trace_write_summary(&c, "out", stdout);      // summary.txt (and a copy to stdout)
     me_trace_write_figures(&c, "out", ME_FIG_PNG);  // layer_XX.png, overview.png
     me_trace_write_paper(&c, "out/paper", ME_FIG_PDF | ME_FIG_SVG);   // the paper's views
     me_trace_counts_free(&c);

   What is counted: every record adds one to each of its k chosen experts, at
   its layer, step, class label and token position. A DiT-MoE record is one
   token. A Switch-DiT record is one batch row (its gate depends only on the
   timestep), so it counts once per row in the step and class tables, and
   once at every position in the position table (all tokens of the row use
   those experts). Null-class rows (label == num_classes) are included unless
   cond_only. All outputs are written atomically. */
#ifndef MOEDIT_TRACE_HEATMAP_H
#define MOEDIT_TRACE_HEATMAP_H

#include <stdio.h>
#include "image/classnames.h"
#include "image/figure.h"
#include "trace/trace.h"

typedef struct {
    me_trace_info info;
    int steps;                  /* step rows: 1 + the largest step index seen */
    int classes;                /* class rows: num_classes + 1 (the null class last) */
    uint64_t *step_counts;      /* [depth][steps][num_experts] */
    uint64_t *position_counts;  /* [depth][tokens][num_experts] */
    uint64_t *class_counts;     /* [depth][classes][num_experts] */
    float *timestep;            /* [steps] timestep of the first record at each step */
    double *gate_sums;          /* [depth][steps][num_probs] summed gate probabilities; NULL without them */
    uint64_t *gate_rows;        /* [depth][steps] records summed into gate_sums */
    const me_class_names *names;   /* set by the caller; NULL: classes show as ids */
    uint64_t records;           /* records counted */
    int cond_only;              /* null-class rows were skipped */
} me_trace_counts;

int me_trace_count(me_trace_counts *c, const me_trace_reader *rd, int cond_only);
void me_trace_counts_free(me_trace_counts *c);

/* step_counts.csv, position_counts.csv, class_counts.csv (with a class_name
   column), step_entropy.csv, and gate_probs.csv when the trace has gate
   probabilities (Switch-DiT). */
int me_trace_write_tables(const me_trace_counts *c, const char *dir);
/* summary.txt: per-layer expert load, routing entropy by step, early vs late
   concentration; also printed to out if not NULL. */
int me_trace_write_summary(const me_trace_counts *c, const char *dir, FILE *out);
/* layer_XX and overview figures (ME_FIG_* formats): per layer the expert
   share by step, class, token position and a spatial map per expert; the
   step view of every layer side by side. */
int me_trace_write_figures(const me_trace_counts *c, const char *dir, unsigned formats);
/* The views the DiT-MoE paper analyses, per MoE layer — layer_XX_step,
   layer_XX_class (beyond 50 classes the traced ones, if at most 50, else
   every k-th class),
   layer_XX_position, and for traces with gate probabilities layer_XX_gate
   (mean probability per expert and step) — and all of them as one
   multi-panel figure, paper_all (a page holds 96 layers: deeper traces get
   me_trace_paper_pages of them, paper_all_1, paper_all_2, …). dir must
   exist. */
int me_trace_write_paper(const me_trace_counts *c, const char *dir, unsigned formats);
int me_trace_paper_pages(const me_trace_counts *c);
/* Whether every panel the figures (paper: and the paper's views) would draw
   fits a figure (me_plot_fits): 0, or MOEDIT_EINPUT naming the view, so a
   trace too long or too large to draw is refused before any table is
   written rather than after. */
int me_trace_check_figures(const me_trace_counts *c, int paper);
/* Calls fn(ctx, name) for every file the writers above put in DIR for a
   trace with this header (names relative to DIR; paper: also the paper's
   views as "paper/NAME"), so a caller can refuse an input that one of them
   would overwrite before any work. Returns the first nonzero fn result. */
int me_trace_each_output(const me_trace_info *in, int paper, unsigned formats,
                         int (*fn)(void *ctx, const char *name), void *ctx);

/* Normalised entropy (0: one expert takes all, 1: uniform) and largest share
   of the expert distribution counts[num_experts]; both 0 when it is empty. */
void me_trace_concentration(const uint64_t *counts, int num_experts, double *entropy, double *max_share);

#endif
