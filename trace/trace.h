/* trace.h — the expert tracer: streams every routing decision of a sampling
   run to a versioned binary file (format: docs/trace-format.md), and reads it
   back for `moedit heatmap`.

     me_trace *tr;
     if (me_trace_open(&tr, "run.trace", moedit_model_config(m))) ...
     me_trace_set_info(tr, "ddpm", 250, 1.5f);   // optional, any time before close
     moedit_model_set_tracer(m, me_trace_route, tr);
     ... moedit_sample(...) ...          // the sampler sets the step index
     moedit_model_set_tracer(m, NULL, NULL);
     if (me_trace_close(tr)) ...         // flushes and renames into place

   Writing goes through a bounded buffer; an I/O error or a route that does
   not fit the model config is remembered and reported by me_trace_close
   (me_trace_route cannot fail). Calls to me_trace_route must not overlap
   (the model makes them from one thread). Nothing appears at the final path
   unless me_trace_close succeeds.

   Reading validates the header at open and each record as it is read, so a
   truncated or corrupt file is MOEDIT_EINPUT with a message, never a crash:

     me_trace_reader *rd;
     if (me_trace_read_open(&rd, "run.trace")) ...
     const me_trace_info *info = me_trace_reader_info(rd);
     me_trace_record rec;
     for (uint64_t i = 0; i < info->count; i++)
         if (me_trace_read(rd, i, &rec)) ...     // rec.layer, rec.experts, ...
     me_trace_read_close(rd);

   The heatmap tables and figures built from a trace live in heatmap.h. */
#ifndef MOEDIT_TRACE_H
#define MOEDIT_TRACE_H

#include <stddef.h>
#include <stdint.h>
#include "moedit.h"

#define ME_TRACE_VERSION 1
#define ME_TRACE_MAX_EXPERTS 256   /* expert ids are one byte */
#define ME_TRACE_MAX_STEPS 65536   /* step indices the reader accepts */

typedef struct me_trace me_trace;

int me_trace_open(me_trace **out, const char *path, const moedit_config *cfg);
/* Sampler name (up to 15 bytes kept), number of sampling steps, guidance
   scale; stored in the header. steps also bounds the step indices. */
void me_trace_set_info(me_trace *tr, const char *sampler, int steps, float cfg);
void me_trace_route(void *trace, const moedit_route *r);   /* a moedit_route_fn */
int me_trace_close(me_trace *tr);
void me_trace_abort(me_trace *tr);                        /* removes the partial file */

/* The header of a trace. */
typedef struct {
    uint32_t version;
    moedit_family family;
    int depth, num_experts, top_k;
    int tokens, grid_h, grid_w;   /* tokens per image = grid_h * grid_w */
    int num_classes;              /* the null label is num_classes */
    int num_probs;                /* all-expert probabilities per record (Switch-DiT: E) */
    char sampler[16];             /* "" if not given */
    int steps;                    /* 0 if not given */
    float cfg;                    /* 0 if not given */
    size_t record_size;
    uint64_t count;               /* number of records */
} me_trace_info;

/* One decoded record. */
typedef struct {
    int step, layer, row, token;  /* token -1: the whole row (Switch-DiT) */
    float timestep;
    int label, is_null, k;
    int experts[ME_TRACE_MAX_EXPERTS];
    float weights[ME_TRACE_MAX_EXPERTS];
    float probs[ME_TRACE_MAX_EXPERTS];   /* num_probs of them */
} me_trace_record;

typedef struct me_trace_reader me_trace_reader;

int me_trace_read_open(me_trace_reader **out, const char *path);
/* Reads a trace held in memory (not copied; data must outlive the reader).
   name is used in messages. */
int me_trace_read_mem(me_trace_reader **out, const uint8_t *data, size_t size, const char *name);
const me_trace_info *me_trace_reader_info(const me_trace_reader *rd);
int me_trace_read(const me_trace_reader *rd, uint64_t index, me_trace_record *rec);
void me_trace_read_close(me_trace_reader *rd);

#endif
