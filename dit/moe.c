/* Routing: DiT-MoE's sparse feed-forward (feizc/DiT-MoE SparseMoeBlock in
   eval mode) and Switch-DiT's per-block channel masks (TaskMoE for DMoE,
   TaskRouter for DTR), each reporting its decisions to the tracer. */
#include <math.h>
#include <omp.h>
#include <sched.h>
#include <string.h>
#include "core/core.h"
#include "dit/model.h"
#include "ops/ops.h"

#define PAR_MIN 32768
#define ROUTE_PAR_MIN_TOKENS 64   /* routing (softmax, top-k) on all threads from this many tokens */

/* Softmax over a row of width e, in place. libm expf: the routing
   decisions hang on these values, so they get full precision. */
static void softmax_row(int e, float *p)
{
    float mx = p[0], sum = 0.0f;
    for (int i = 1; i < e; i++) mx = p[i] > mx ? p[i] : mx;
    for (int i = 0; i < e; i++) sum += (p[i] = expf(p[i] - mx));
    for (int i = 0; i < e; i++) p[i] /= sum;
}

/* The k largest of p[e], largest first, the lower index first among equals;
   the weights are the raw probabilities (upstream norm_topk_prob = False). */
static void top_k(const float *p, int e, int k, int *idx, float *w)
{
    for (int j = 0; j < k; j++) {
        int best = -1;
        for (int i = 0; i < e; i++) {
            int taken = 0;
            for (int q = 0; q < j; q++) taken |= idx[q] == i;
            if (!taken && (best < 0 || p[i] > p[best])) best = i;
        }
        idx[j] = best;
        w[j] = p[best];
    }
}

static void trace_route(moedit_model *m, int l, int row, int token, int k, const int *idx, const float *w,
                        int num_probs, const float *probs)
{
    moedit_route r = {
        .layer = l, .step = m->step, .row = row, .token = token, .timestep = m->cur_t[row],
        .label = m->cur_y[row], .is_null = m->null_from >= 0 && row >= m->null_from,
        .k = k, .experts = idx, .weights = w, .num_probs = num_probs, .probs = probs,
    };
    m->trace(m->trace_user, &r);
}

/* An expert's SwiGLU on the rows of x that pick lists (NULL: the first
   `rows`), on the calling thread, chunk by chunk of its hidden units: per
   chunk SiLU(gate(x)) ⊙ up(x) into [rows, 2·chunk] (the up half is the
   product's scratch), which the down product then adds into out.
   EXPERT_WHOLE runs both halves per chunk through the front of mid, where
   the chunk is still in L2 for the down product; EXPERT_UP leaves every
   chunk in its own columns of mid[rows, 2H] for a later EXPERT_DOWN. The
   chunks end on the down product's K blocks, so its sums are those of one
   product over all of H (dit_swiglu.chunk). The rows of x are packed for
   the first chunk's gate·up product and kept in ap for the others. */
enum { EXPERT_WHOLE, EXPERT_UP, EXPERT_DOWN };

/* Chunk c's gate·up columns and down rows. */
static void chunk_views(const dit_swiglu *ex, int c, me_gemm_b *gate_up, me_gemm_b *down)
{
    me_gemm_b_view(&ex->gate_up, 2 * c * ex->chunk, 2 * ex->chunk, 0, ex->gate_up.k, gate_up);
    me_gemm_b_view(&ex->down, 0, ex->down.n, c * ex->chunk, ex->chunk, down);
}

static void expert_ffn(int part, int rows, const float *x, size_t ldx, const int *pick, const dit_swiglu *ex,
                       float *mid, float *out, me_gemm_apack *ap)
{
    int h = ex->chunk, chunks = ex->hid / h, whole = part == EXPERT_WHOLE;
    size_t ldm = whole ? (size_t)2 * h : (size_t)2 * ex->hid;
    ap->valid = 0;
    for (int c = 0; c < chunks; c++) {
        float *act = whole ? mid : mid + (size_t)2 * c * h;
        me_gemm_b gate_up, down, next_gate_up, next_down;
        int more = c + 1 < chunks;
        chunk_views(ex, c, &gate_up, &down);
        if (more) chunk_views(ex, c + 1, &next_gate_up, &next_down);
        /* Each product prefetches the next one's first B panel as it ends.
           Float32 S/2 CFG pair, Zen 2 host, alternate processes: 0.5–0.7 %
           faster (a product's first panel had come from memory). */
        me_gemm_b_then(&gate_up, whole ? &down : more ? &next_gate_up : NULL);
        me_gemm_b_then(&down, !more ? NULL : whole ? &next_gate_up : &next_down);
        if (part != EXPERT_DOWN) me_gemm_swiglu(rows, x, ldx, pick, &gate_up, act, ldm, ap);
        if (part != EXPERT_UP) me_gemm(rows, act, ldm, &down, 1.0f, NULL, c ? 1.0f : 0.0f, out, (size_t)ex->down.n);
    }
}

/* Work items: row ranges of one expert (E: the shared one) of at most about
   DIT_ITEM_ROWS rows, so every thread stays busy whatever the routing. An
   expert's rows are cut into equal parts in whole tiles: cut at the bound
   (then 112), 123 rows made an item of 112 and one of 11, whose products
   ran at half the rate of the full one (the same weights streamed for a
   tenth of the rows). The bound lets a CFG pair's ~128 rows per expert
   be one item, its weights streamed once. Per item: expert, first row,
   rows, and a flag set when its up half is done. */
static int add_items(int *items, int n, int expert, int r0, int rows)
{
    int parts = (rows + DIT_ITEM_ROWS - 1) / DIT_ITEM_ROWS, mr = me_gemm_tile_rows();
    int per = parts ? ((rows + parts - 1) / parts + mr - 1) / mr * mr : 0;
    for (int r = r0; r < r0 + rows; r += per, n++) {
        int *it = items + DIT_ITEM_INTS * n;
        it[0] = expert, it[1] = r, it[2] = r0 + rows - r < per ? r0 + rows - r : per, it[3] = 0;
    }
    return n;
}

/* Largest work (rows × hidden width) first, ties in expert order: handed
   out dynamically in this order, the short remainders of the experts fill
   in at the end instead of one thread finishing a full item alone while
   the other waits (longest-processing-time-first). Insertion sort: a few
   dozen items, and stable, so the order never depends on anything but the
   routing. */
static void sort_items(int *items, int n, const dit_block *b, int E)
{
    for (int i = 1; i < n; i++) {
        int it[DIT_ITEM_INTS];
        memcpy(it, items + DIT_ITEM_INTS * i, sizeof it);
        long w = (long)it[2] * (it[0] < E ? b->experts[it[0]].hid : b->shared.hid);
        int j = i;
        for (; j > 0; j--) {
            const int *p = items + DIT_ITEM_INTS * (j - 1);
            if ((long)p[2] * (p[0] < E ? b->experts[p[0]].hid : b->shared.hid) >= w) break;
            memcpy(items + DIT_ITEM_INTS * j, p, sizeof it);
        }
        memcpy(items + DIT_ITEM_INTS * j, it, sizeof it);
    }
}

/* A tail item's down product runs as this many pieces of its rows (whole
   tiles), each claimable as soon as the item's up half is done: what is
   left at the end is then a sixth of one of the smallest items, not a
   third. Rows cut the product without changing any sum. Float32 S/2 CFG
   pair, Zen 2 host, alternate processes: the threads' wait at the FFN's
   barrier 0.50 → 0.2 ms a layer, the forward 0.7 % faster. */
#define DOWN_PIECES 2

/* A piece of a tail down product: of the first of the `tail` items whose
   up half is done (flag 1) and whose pieces are not all taken yet (the
   flag counts them: 1 + taken), the next piece. When none is ready it
   waits for one, yielding after a while, as the threads running the up
   halves may not be on a core. Taking whichever is ready rather than a
   fixed one: a thread that finished its up half early would otherwise
   wait for another's. */
static int *claim_down(int *items, int tail, int *piece)
{
    for (int spins = 0;; spins++) {
        for (int j = 0; j < tail; j++) {
            int *it = items + DIT_ITEM_INTS * j, flag = __atomic_load_n(&it[3], __ATOMIC_ACQUIRE);
            while (flag >= 1 && flag <= DOWN_PIECES)
                if (__atomic_compare_exchange_n(&it[3], &flag, flag + 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE)) {
                    *piece = flag - 1;
                    return it;
                }
        }
        if (spins >= 4096) sched_yield();
    }
}

/* Piece `piece` of an item's `rows` rows: its first row within the item
   and its row count (0 when the item has too few tiles for every piece). */
static void piece_rows(int rows, int piece, int *first, int *count)
{
    int mr = me_gemm_tile_rows(), per = ((rows + DOWN_PIECES - 1) / DOWN_PIECES + mr - 1) / mr * mr;
    *first = piece * per < rows ? piece * per : rows;
    *count = rows - *first < per ? rows - *first : per;
}

/* Rows of one hidden-activation buffer: an item's, at most DIT_ITEM_ROWS
   and at most the tokens (an expert takes a token once). */
static size_t buffer_floats(const moedit_config *cf, size_t nt)
{
    size_t wide = (size_t)(cf->mlp_hidden > cf->shared_hidden ? cf->mlp_hidden : cf->shared_hidden);
    return (nt < DIT_ITEM_ROWS ? nt : DIT_ITEM_ROWS) * 2 * wide;
}

/* Each thread's own buffer, one per tail item, then each thread's packed A
   (me_gemm_apack), 64-byte aligned. */
static size_t apack_at(const moedit_config *cf, size_t nt)
{
    return (2 * (size_t)me_threads_max() * buffer_floats(cf, nt) + 15) & ~(size_t)15;
}

size_t dit_moe_mid_floats(const moedit_config *cf, size_t nt)
{
    return apack_at(cf, nt) + (size_t)me_threads_max() * me_gemm_apack_floats();
}

void dit_moe_ffn(moedit_model *m, int l, int n)
{
    const moedit_config *cf = &m->cfg;
    const dit_block *b = &m->blocks[l];
    dit_acts *a = &m->a;
    int T = m->tokens, D = cf->hidden, E = cf->num_experts, k = cf->top_k;
    long NT = (long)n * T;

    dit_linear((int)NT, a->xm, &b->gate, NULL, a->probs);
    /* ~130 ns a token (E exponentials and divisions, the top-k scans): an
       S/2 pair's 512 tokens once ran on one thread, 67 µs a layer with the
       other thread waiting. */
    #pragma omp parallel for num_threads(me_threads()) if (NT >= ROUTE_PAR_MIN_TOKENS)
    for (long tok = 0; tok < NT; tok++) {
        softmax_row(E, a->probs + tok * E);
        top_k(a->probs + tok * E, E, k, a->top_idx + tok * k, a->top_w + tok * k);
    }

    /* Counting sort of the (token, choice) slots by expert: expert e's
       tokens are sorted positions [start[e], start[e+1]), one product per
       expert and row range, gathered from a.xm while A is packed. */
    int *start = a->count;
    memset(start, 0, (size_t)(E + 1) * sizeof *start);
    for (long s = 0; s < NT * k; s++) start[a->top_idx[s] + 1]++;
    for (int e = 0; e < E; e++) start[e + 1] += start[e];
    for (long s = 0; s < NT * k; s++) {
        int pos = start[a->top_idx[s]]++;
        a->slot_pos[s] = pos;
        a->slot_token[pos] = (int)(s / k);
    }
    for (int e = E; e > 0; e--) start[e] = start[e - 1];   /* the fill shifted the starts */
    start[0] = 0;

    int items = 0;
    if (b->shared.hid) items = add_items(a->items, items, E, 0, (int)NT);
    for (int e = 0; e < E; e++) items = add_items(a->items, items, e, start[e], start[e + 1] - start[e]);
    sort_items(a->items, items, b, E);

    /* Handed out in this order: the items but the last `tail` whole (the
       gate·up product, SiLU and the down product back to back, through the
       thread's own buffer, reused item after item — on AMX written past
       the caches, which measured faster than through them: docs/
       performance.md "AMX tiles"), then the tail items' up
       halves (two thirds of an item's work), then the pieces of their
       down products as the up halves finish (claim_down), each tail item in
       a buffer of its own. The largest items go first, so what fills in at
       the end is a sixth of one of the smallest items. Hidden activations
       no longer scale with the batch: at batch 16 (S/2) every item's up
       half once ran before any down product, through 100 MB of buffers,
       written and read back from memory. */
    int threads = me_threads(), tail = items < threads ? items : threads, whole = items - tail, next = 0;
    size_t buf = buffer_floats(cf, (size_t)NT);
    float *tail_mid = a->mid + (size_t)me_threads_max() * buf;
    int *tail_items = a->items + DIT_ITEM_INTS * whole;
    #pragma omp parallel num_threads(threads)
    {
        float *own_mid = a->mid + (size_t)omp_get_thread_num() * buf;
        float *own_apack = a->mid + apack_at(cf, (size_t)NT) + (size_t)omp_get_thread_num() * me_gemm_apack_floats();
        me_gemm_apack ap = {own_apack, 0};
        for (int w; (w = __atomic_fetch_add(&next, 1, __ATOMIC_RELAXED)) < whole + (1 + DOWN_PIECES) * tail;) {
            int piece = 0, skip = 0;
            int *it = w < whole + tail ? a->items + DIT_ITEM_INTS * w : claim_down(tail_items, tail, &piece);
            int i = (int)(it - a->items) / DIT_ITEM_INTS, e = it[0], r0 = it[1], rows = it[2];
            int part = i < whole ? EXPERT_WHOLE : w < whole + tail ? EXPERT_UP : EXPERT_DOWN;
            const dit_swiglu *ex = e < E ? &b->experts[e] : &b->shared;
            if (part == EXPERT_DOWN) {
                piece_rows(rows, piece, &skip, &rows);
                r0 += skip;
            }
            float *mid = i < whole ? own_mid : tail_mid + (size_t)(i - whole) * buf + (size_t)skip * 2 * ex->hid;
            float *out = (e < E ? a->eout : a->shared_out) + (size_t)r0 * D;
            if (e < E) expert_ffn(part, rows, a->xm, (size_t)D, a->slot_token + r0, ex, mid, out, &ap);
            else expert_ffn(part, rows, a->xm + (size_t)r0 * D, (size_t)D, NULL, ex, mid, out, &ap);
            if (part == EXPERT_UP) __atomic_store_n(&it[3], 1, __ATOMIC_RELEASE);
        }
        #pragma omp barrier
        /* ff = Σ w·expert in ascending expert order (upstream's scatter-add
           order), then + shared. A token picks an expert at most once. */
        #pragma omp for schedule(static)
        for (long tok = 0; tok < NT; tok++) {
            const int *idx = a->top_idx + tok * k;
            float *dst = a->ff + tok * D;
            for (int c = 0, prev = -1; c < k; c++) {
                int j = -1;
                for (int q = 0; q < k; q++)
                    if (idx[q] > prev && (j < 0 || idx[q] < idx[j])) j = q;
                prev = idx[j];
                float w = a->top_w[tok * k + j];
                const float *src = a->eout + (size_t)a->slot_pos[tok * k + j] * D;
                for (int d = 0; d < D; d++) dst[d] = c == 0 ? w * src[d] : dst[d] + w * src[d];
            }
            if (b->shared.hid)
                for (int d = 0; d < D; d++) dst[d] += a->shared_out[tok * D + d];
        }
    }

    if (m->trace)
        for (long tok = 0; tok < NT; tok++)
            trace_route(m, l, (int)(tok / T), (int)(tok % T), k, a->top_idx + tok * k, a->top_w + tok * k, 0, NULL);
}

void dit_switch_mask(moedit_model *m, int l, int n, const float *t)
{
    const moedit_config *cf = &m->cfg;
    const dit_block *b = &m->blocks[l];
    dit_acts *a = &m->a;
    int T = m->tokens, D = cf->hidden, E = cf->num_experts, k = cf->top_k;
    size_t row_len = (size_t)T * D;

    if (cf->routing == MOEDIT_ROUTING_DTR) {
        /* A fixed 0/1 channel row per timestep, the same for every token. */
        for (int r = 0; r < n; r++) {
            const float *u = b->unit_map + (size_t)t[r] * D;
            for (int tok = 0; tok < T; tok++) memcpy(a->mask + r * row_len + (size_t)tok * D, u, (size_t)D * sizeof *u);
        }
        return;
    }

    /* DMoE: the gate sees only SiLU(t_emb); per row, the chosen experts'
       affine maps of the tokens, weighted by their probabilities, plus 1. */
    dit_linear(n, a->st, &b->rg, b->rg_b, a->rprobs);
    for (int r = 0; r < n; r++) softmax_row(E, a->rprobs + (size_t)r * E);
    memset(a->mask, 0, (size_t)n * row_len * sizeof *a->mask);
    for (int r = 0; r < n; r++) {
        int *idx = a->top_idx + (size_t)r * k;
        float *w = a->top_w + (size_t)r * k;
        top_k(a->rprobs + (size_t)r * E, E, k, idx, w);
        float *mr = a->mask + r * row_len, *xw = a->att;   /* a.att is free until the block runs */
        for (int j = 0; j < k; j++) {
            if (w[j] == 0.0f) continue;   /* upstream routes only nonzero gates */
            dit_linear(T, a->x + r * row_len, &b->re[idx[j]], b->re_b + (size_t)idx[j] * D, xw);
            #pragma omp parallel for simd num_threads(me_threads()) if (row_len >= PAR_MIN)
            for (size_t i = 0; i < row_len; i++) mr[i] += w[j] * xw[i];
        }
        if (m->trace) trace_route(m, l, r, -1, k, idx, w, E, a->rprobs + (size_t)r * E);
    }
    size_t len = (size_t)n * row_len;
    float *mask = a->mask;   /* through a-> the loop stayed scalar (routed_block) */
    #pragma omp parallel for simd num_threads(me_threads()) if (len >= PAR_MIN)
    for (size_t i = 0; i < len; i++) mask[i] += 1.0f;
}
