/* Fuzzes the record a fid-sample shard file carries (moedit_shard.npy,
   moedit_settings.npy; cli/shard.h) as npz-merge and fid-sample --resume
   read it: the npz reader, then cli_shard_read_meta's checks, then the set
   check over the file as a set of its own and beside a second shard made
   to follow it. Members of any dtype and shape, stored or deflated, CRC-32
   checked on even-sized inputs. Seeds: fuzz/corpus/shard/
   (tools/make_shard_fuzz_seeds.py). The CLI's usage lines go to stderr. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "cli/shard.h"
#include "core/core.h"

static cli_shard_meta metas[2], merged;

/* What the set check may hand on: shard 0 of 1 covering every sample. */
static void check_merged(const cli_shard_meta *m, int64_t num)
{
    if (m->k != 0 || m->n != 1 || m->first != 0 || m->count != num) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int was = me_verify_suspend((int)(size & 1));
    me_npz z;
    if (me_npz_open_memory(data, size, "fuzz.npz", &z) == MOEDIT_OK) {
        cli_shard_meta *m = &metas[0];
        if (cli_shard_read_meta(&z, "fuzz.npz", m) == 1) {
            /* what the reader promises its callers */
            if (m->n < 1 || m->k < 0 || m->k >= m->n || m->first < 0 || m->count < 0 || m->first > m->num ||
                m->count > m->num - m->first || strlen(m->settings) >= CLI_SHARD_META_MAX)
                abort();
            char settings[CLI_SHARD_META_MAX];
            cli_shard_settings(m->settings, settings, sizeof settings);

            char *names[2] = {"a.npz", "b.npz"};
            int order[2];
            int64_t images[2] = {m->count, 0};
            if (cli_shard_check_set("npz-merge", metas, images, names, 1, order, &merged) == 0) {
                if (order[0] != 0) abort();
                check_merged(&merged, m->num);
            }
            /* the shard after it, as the second of a set of two */
            if (m->k + 1 < m->n) {
                metas[1] = *m;
                metas[1].k = m->k + 1;
                metas[1].first = m->first + m->count;
                metas[1].count = m->num - metas[1].first;
                images[1] = metas[1].count;
                if (cli_shard_check_set("npz-merge", metas, images, names, 2, order, &merged) == 0) {
                    if (order[0] < 0 || order[1] < 0 || order[0] == order[1]) abort();
                    check_merged(&merged, m->num);
                }
            }
        }
        me_npz_close(&z);
    }
    me_verify_suspend(was);
    return 0;
}
