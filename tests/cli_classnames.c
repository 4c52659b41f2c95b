/* Class names from the command line: `moedit sample --class "golden
   retriever"` on a 1000-class checkpoint (tests/fixtures/classnames/, from
   tools/make_classnames_fixture.py) with the shipped ImageNet list, the
   readable grid it writes, --class-names files, the usage errors for
   ambiguous and unknown names (exit 2, one line naming the candidates, no
   output), and `moedit heatmap --paper --format` with names on its axes. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "moedit.h"

#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#pragma GCC diagnostic ignored "-Wunused-function"
#include "stb_image.h"
#include "tests/testutil.h"

#define M1000 FIXTURES "/classnames/moe_1000.pt"
#define M10 FIXTURES "/sampler/model_moe_top2.pt"
#define VAE FIXTURES "/vae/small"

static char dir[64], err_text[8192];

static void setup(void) { tu_tmpdir(dir, sizeof dir, "cli_classnames"); }
static void teardown(void) { cr_assert_eq(tu_rmtree(dir), 0); }

TestSuite(cli_classnames, .init = setup, .fini = teardown);

static int run(const char *const *args)
{
    char err_path[128];
    snprintf(err_path, sizeof err_path, "%s/stderr", dir);
    int rc = tu_run(args, NULL, err_path);
    tu_read_text(err_path, err_text, sizeof err_text);
    return rc;
}

static const char *at(const char *name)
{
    static char path[4][192];
    static int k;
    k = (k + 1) % 4;
    snprintf(path[k], sizeof path[k], "%s/%s", dir, name);
    return path[k];
}

static void expect_usage_error(const char *const *args, const char *needle)
{
    cr_assert_eq(run(args), 2, "exit 2 for %s: %s", needle, err_text);
    cr_assert(strstr(err_text, needle), "stderr '%s' lacks '%s'", err_text, needle);
    cr_assert(tu_one_line(err_text), "one line: %s", err_text);
    cr_assert(!tu_exists(at("out.npy")) && !tu_exists(at("grid.png")), "no output after a usage error");
}

Test(cli_classnames, imagenet_names_pick_classes_and_caption_the_grid)
{
    const char *args[] = {"sample", "--model", M1000, "--heads", "2", "--vae", VAE, "--steps", "2",
                          "--class", "golden retriever,tiger sh,207", "--out", at("grid.png"),
                          "--outdir", at("imgs"), "--trace", at("run.trace"), NULL};
    cr_assert_eq(run(args), 0, "%s", err_text);
    cr_assert(strstr(err_text, "--class 207,3,207"), "the repeat line gives ids: %s", err_text);
    int w, h, c;
    unsigned char *pix = stbi_load(at("grid.png"), &w, &h, &c, 0);
    cr_assert_not_null(pix);
    stbi_image_free(pix);
    /* 2 distinct classes: 2 columns, 2 rows of tiles magnified to >= 128 pixels, with caption strips */
    cr_assert(w >= 2 * 128 + 6 && w < 2 * 256, "width %d", w);
    cr_assert(h > 2 * 128 + 6 + 2 * 10, "height %d", h);
    cr_assert(tu_exists(at("imgs/0000_class207.png")) && tu_exists(at("imgs/0001_class3.png")),
              "--outdir keeps one PNG per sample");

    const char *scale1[] = {"sample", "--model", M1000, "--heads", "2", "--vae", VAE, "--steps", "2",
                            "--class", "golden retriever", "--scale", "1", "--out", at("small.png"), NULL};
    cr_assert_eq(run(scale1), 0, "%s", err_text);
    pix = stbi_load(at("small.png"), &w, &h, &c, 0);
    cr_assert_not_null(pix);
    stbi_image_free(pix);
    cr_assert_lt(w, 128, "--scale 1 keeps the decoded size");

    const char *hm[] = {"heatmap", at("run.trace"), "--out", at("hm"), "--paper", "--format", "svg,pdf", NULL};
    cr_assert_eq(run(hm), 0, "%s", err_text);
    char *csv = tu_slurp(at("hm/class_counts.csv"), NULL);
    cr_assert(csv && strstr(csv, ",207,golden retriever,") && strstr(csv, ",3,tiger shark,"), "%s", csv);
    free(csv);
    cr_assert(tu_exists(at("hm/layer_01.svg")) && tu_exists(at("hm/overview.pdf")));
    cr_assert(!tu_exists(at("hm/layer_00.png")), "only the asked formats");
    cr_assert_eq(tu_system("pdftotext -raw '%s' '%s'", at("hm/paper/layer_00_class.pdf"), at("class.txt")), 0);
    char *text = tu_slurp(at("class.txt"), NULL);
    /* the two traced classes by name; pdftotext puts rotated words on lines of their own */
    cr_assert(text && strstr(text, "tiger") && strstr(text, "retriever") && strstr(text, "the 2 traced of 1000"),
              "%s", text);
    free(text);
}

/* More than 50 classes traced of 1000: the class view shows every 20th. */
Test(cli_classnames, many_classes_every_kth)
{
    char list[400] = "";
    for (int i = 0; i < 60; i++) snprintf(list + strlen(list), sizeof list - strlen(list), "%s%d", i ? "," : "", i * 7);
    const char *args[] = {"sample", "--model", M1000, "--heads", "2", "--no-vae", "--latents-out", at("z.npy"),
                          "--steps", "1", "--class", list, "--trace", at("run.trace"), NULL};
    cr_assert_eq(run(args), 0, "%s", err_text);
    const char *hm[] = {"heatmap", at("run.trace"), "--out", at("hm"), "--paper", "--format", "pdf", NULL};
    cr_assert_eq(run(hm), 0, "%s", err_text);
    cr_assert_eq(tu_system("pdftotext -raw '%s' '%s'", at("hm/paper/layer_01_class.pdf"), at("class.txt")), 0);
    char *text = tu_slurp(at("class.txt"), NULL);
    /* every 20th class, of which every 3rd named on this narrow panel: tench (0),
       night snake (60), fiddler crab (120) */
    cr_assert(text && strstr(text, "tench") && strstr(text, "night") && strstr(text, "fiddler") &&
              strstr(text, "every 20th of 1000"), "%s", text);
    free(text);
}

Test(cli_classnames, ambiguous_and_unknown_names_exit_2)
{
#define BASE "sample", "--model", M1000, "--heads", "2", "--no-vae", "--latents-out", at("out.npy"), "--steps", "2"
    expect_usage_error((const char *[]){BASE, "--class", "gold", NULL}, "'goldfish' (1)");
    expect_usage_error((const char *[]){BASE, "--class", "207,gold", NULL}, "ambiguous");
    expect_usage_error((const char *[]){BASE, "--class", "retriever dog", NULL}, "not a class name");
    expect_usage_error((const char *[]){BASE, "--class", "1001", NULL}, "outside 0..999");
#undef BASE
#define BASE "sample", "--model", M10, "--heads", "2", "--no-vae", "--latents-out", at("out.npy"), "--steps", "2"
    expect_usage_error((const char *[]){BASE, "--class", "Sandal", NULL}, "no class names");
    tu_write_file(at("names.txt"), "a\nb\n", 4);
    expect_usage_error((const char *[]){BASE, "--class-names", at("names.txt"), NULL}, "2 class names for a model with 10");
    expect_usage_error((const char *[]){BASE, "--class-names", at("missing.txt"), NULL}, "missing.txt");
    expect_usage_error((const char *[]){"sample", "--model", M10, "--heads", "2", "--vae", VAE, "--scale", "0",
                                        "--out", at("grid.png"), NULL}, "--scale");
    const char *ten = "T-shirt/top\nTrouser\nPullover\nDress\nCoat\nSandal\nShirt\nSneaker\nBag\nAnkle boot\n";
    tu_write_file(at("names.txt"), ten, strlen(ten));
    expect_usage_error((const char *[]){BASE, "--class-names", at("names.txt"), "--class", "s", NULL},
                       "'Sandal' (5), 'Shirt' (6), 'Sneaker' (7)");
    const char *ok[] = {BASE, "--class-names", at("names.txt"), "--class", "ankle,sandal", NULL};
    cr_assert_eq(run(ok), 0, "%s", err_text);
    cr_assert(strstr(err_text, "--class 9,5"), "%s", err_text);
    unlink(at("out.npy"));
#undef BASE
    expect_usage_error((const char *[]){"heatmap", at("x.trace"), "--out", at("hm"), "--format", "png,gif", NULL}, "'gif'");
}
