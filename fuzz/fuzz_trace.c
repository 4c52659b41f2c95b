/* Fuzzes the trace reader and the heatmap counting on bytes in memory.
   Seeds: fuzz/corpus/trace/. */
#include <stdint.h>
#include "trace/heatmap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    me_trace_reader *rd;
    if (me_trace_read_mem(&rd, data, size, "fuzz.trace") != MOEDIT_OK) return 0;
    me_trace_counts c;
    if (me_trace_count(&c, rd, 0) == MOEDIT_OK) {
        double h, mx;
        for (int l = 0; l < c.info.depth; l++)
            me_trace_concentration(c.step_counts + (size_t)l * c.steps * c.info.num_experts, c.info.num_experts, &h, &mx);
        me_trace_counts_free(&c);
    }
    me_trace_read_close(rd);
    return 0;
}
