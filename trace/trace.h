/* trace.h — the expert tracer: streams every routing decision of a sampling
   run to a versioned binary file (format: docs/trace-format.md), and reads it
   back for `moedit heatmap`.

     me_trace *tr;
     if (me_trace_open(&tr, "run.trace", moedit_model_config(m))) ...
     moedit_model_set_tracer(m, me_trace_route, tr);
     ... moedit_sample(...) ...          // the sampler sets the step index
     moedit_model_set_tracer(m, NULL, NULL);
     if (me_trace_close(tr)) ...         // flushes and renames into place

   Writing goes through a bounded buffer; an I/O error is remembered and
   reported by me_trace_close (me_trace_route cannot fail). */
#ifndef MOEDIT_TRACE_H
#define MOEDIT_TRACE_H

#include "moedit.h"

typedef struct me_trace me_trace;

int me_trace_open(me_trace **out, const char *path, const moedit_config *cfg);
void me_trace_route(void *trace, const moedit_route *r);   /* a moedit_route_fn */
int me_trace_close(me_trace *tr);
void me_trace_abort(me_trace *tr);                        /* removes the partial file */

#endif
