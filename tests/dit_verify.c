/* moedit_load_options.no_verify: the CRC-32 check of a torch checkpoint's
   entries is on by default and skipped for this one load when asked, while
   the finiteness check of the weights still runs. */
#include <criterion/criterion.h>
#include <string.h>
#include "tests/testutil.h"
#include "weights/zip.h"

Test(dit_verify, load_option_skips_the_crc_check)
{
    char tmp[64];
    tu_tmpdir(tmp, sizeof tmp, "verify");
    size_t n;
    uint8_t *buf = (uint8_t *)tu_slurp(FIXTURES "/dit/moe_top1.pt", &n);
    me_zip z;
    cr_assert_eq(me_zip_open_memory(&z, buf, n, "moe_top1.pt"), MOEDIT_OK);
    const uint8_t *p;
    uint64_t size;
    cr_assert_eq(me_zip_data(&z, me_zip_find_suffix(&z, "data/3"), &p, &size), MOEDIT_OK);
    buf[(p - buf) + 4] ^= 0x01;   /* lowest mantissa bit of a float32: still finite */
    me_zip_close(&z);
    const char *path = tu_join(tmp, "flipped.pt");
    tu_write_file(path, buf, n);
    free(buf);
    moedit_model *m;
    cr_assert_eq(moedit_model_load(path, &(moedit_load_options){.heads = 2}, &m), MOEDIT_EINPUT);
    cr_assert(strstr(moedit_last_error(), "data/3: CRC-32 mismatch"), "%s", moedit_last_error());
    cr_assert_eq(moedit_model_load(path, &(moedit_load_options){.heads = 2, .no_verify = 1}, &m), MOEDIT_OK,
                 "%s", moedit_last_error());
    moedit_model_free(m);
    /* the option held for that load only */
    cr_assert_eq(moedit_model_load(path, &(moedit_load_options){.heads = 2}, &m), MOEDIT_EINPUT);
    cr_assert_eq(tu_rmtree(tmp), 0);
}
