/* format.h — byte layout of trace files shared by the writer and the reader
   (private to trace/; the format is documented in docs/trace-format.md).
   Everything is little-endian, whatever the host. */
#ifndef MOEDIT_TRACE_FORMAT_H
#define MOEDIT_TRACE_FORMAT_H

#include <stdint.h>
#include <string.h>

#define TRACE_MAGIC "MOETRACE"
#define TRACE_HEADER_SIZE 128

/* Limits both sides enforce; they keep every table the reader derives small. */
enum { TRACE_MAX_DEPTH = 256, TRACE_MAX_TOKENS = 1 << 20, TRACE_MAX_CLASSES = 1 << 24 };

/* Header field offsets. */
enum {
    H_MAGIC = 0, H_VERSION = 8, H_HEADER_SIZE = 12, H_RECORD_SIZE = 16, H_FAMILY = 20,
    H_DEPTH = 24, H_EXPERTS = 28, H_TOP_K = 32, H_TOKENS = 36, H_GRID_H = 40, H_GRID_W = 44,
    H_CLASSES = 48, H_PROBS = 52, H_COUNT = 56, H_STEPS = 64, H_CFG = 68, H_SAMPLER = 72,
    H_SAMPLER_LEN = 16
};

/* Record field offsets; experts (one byte each, zero-padded to 4) follow at
   R_EXPERTS, then k f32 weights, then num_probs f32 probabilities. */
enum {
    R_STEP = 0, R_TIMESTEP = 4, R_LAYER = 8, R_IS_NULL = 10, R_K = 11, R_ROW = 12,
    R_TOKEN = 16, R_LABEL = 20, R_EXPERTS = 24
};

static inline size_t trace_pad4(size_t n) { return (n + 3) & ~(size_t)3; }

static inline size_t trace_record_size(int k, int num_probs)
{
    return R_EXPERTS + trace_pad4((size_t)k) + 4 * (size_t)k + 4 * (size_t)num_probs;
}

static inline void put_u16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline void put_u64(uint8_t *p, uint64_t v) { put_u32(p, (uint32_t)v); put_u32(p + 4, (uint32_t)(v >> 32)); }
static inline void put_f32(uint8_t *p, float f) { uint32_t v; memcpy(&v, &f, 4); put_u32(p, v); }

static inline uint16_t get_u16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t get_u64(const uint8_t *p) { return get_u32(p) | (uint64_t)get_u32(p + 4) << 32; }
static inline float get_f32(const uint8_t *p) { uint32_t v = get_u32(p); float f; memcpy(&f, &v, 4); return f; }

#endif
