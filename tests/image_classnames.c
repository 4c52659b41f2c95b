/* Class-name lists and lookups: the shipped ImageNet list (data/), one-per-
   line files, defaults.json, exact names, prefixes, ids, and the errors for
   ambiguous and unknown names. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "moedit.h"
#include "image/classnames.h"
#include "tests/testutil.h"

static const char *fmnist[] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};

static me_class_names imagenet(void)
{
    me_class_names cn;
    cr_assert_eq(me_class_names_read(&cn, MOEDIT_SOURCE_DIR "/data/imagenet_classes.txt"), MOEDIT_OK, "%s",
                 moedit_last_error());
    return cn;
}

static int lookup(const me_class_names *cn, const char *token, int num_classes)
{
    int id = -1;
    cr_assert_eq(me_class_lookup(cn, token, num_classes, &id), MOEDIT_OK, "%s: %s", token, moedit_last_error());
    return id;
}

static void expect_error(const me_class_names *cn, const char *token, int num_classes, const char *needle)
{
    int id = -1;
    cr_assert_eq(me_class_lookup(cn, token, num_classes, &id), MOEDIT_EINPUT, "%s resolved to %d", token, id);
    cr_assert(strstr(moedit_last_error(), needle), "'%s': message '%s' lacks '%s'", token, moedit_last_error(), needle);
}

Test(classnames, imagenet_list_is_torchvisions)
{
    me_class_names cn = imagenet();
    cr_assert_eq(cn.count, 1000);
    /* Spot checks against torchvision's _IMAGENET_CATEGORIES (and DiT's sample classes). */
    cr_assert_str_eq(me_class_name(&cn, 0), "tench");
    cr_assert_str_eq(me_class_name(&cn, 207), "golden retriever");
    cr_assert_str_eq(me_class_name(&cn, 360), "otter");
    cr_assert_str_eq(me_class_name(&cn, 387), "lesser panda");
    cr_assert_str_eq(me_class_name(&cn, 974), "geyser");
    cr_assert_str_eq(me_class_name(&cn, 999), "toilet tissue");
    cr_assert_null(me_class_name(&cn, 1000));
    cr_assert_null(me_class_name(&cn, -1));
    me_class_names_free(&cn);
}

Test(classnames, imagenet_lookups)
{
    me_class_names cn = imagenet();
    cr_assert_eq(lookup(&cn, "golden retriever", 1000), 207);
    cr_assert_eq(lookup(&cn, "  Golden_Retriever ", 1000), 207, "case, '_' and spaces do not matter");
    cr_assert_eq(lookup(&cn, "golden re", 1000), 207, "unique prefix");
    cr_assert_eq(lookup(&cn, "tiger", 1000), 292, "a whole name beats the longer names it starts");
    cr_assert_eq(lookup(&cn, "tiger sh", 1000), 3);
    cr_assert_eq(lookup(&cn, "crane", 1000), 517);
    cr_assert_eq(lookup(&cn, "207", 1000), 207, "digits are ids");
    cr_assert_eq(lookup(&cn, "1000", 1000), 1000, "the unconditional label");
    me_class_names_free(&cn);
}

/* The public pair the Python module resolves names with: the shipped list
   found as the CLI finds it, and lookups on a caller's own name array. */
Test(classnames, public_lookup_and_data_path)
{
    char path[4096];
    cr_assert_eq(moedit_data_path("imagenet_classes.txt", path, sizeof path), MOEDIT_OK, "%s", moedit_last_error());
    me_class_names cn;
    cr_assert_eq(me_class_names_read(&cn, path), MOEDIT_OK, "%s", moedit_last_error());
    int id = -1;
    cr_assert_eq(moedit_class_lookup((const char *const *)cn.names, cn.count, "Golden_Re", 1000, &id), MOEDIT_OK);
    cr_assert_eq(id, 207);
    me_class_names_free(&cn);
    cr_assert_eq(moedit_data_path("../CMakeLists.txt", path, sizeof path), MOEDIT_EINPUT, "only a file name");
    cr_assert_eq(moedit_data_path("no_such_list.txt", path, sizeof path), MOEDIT_EINPUT);
    cr_assert(strstr(moedit_last_error(), "no_such_list.txt: shipped data file not found"), "%s", moedit_last_error());

    const char *names[] = {"cat", "dog", NULL};
    cr_assert_eq(moedit_class_lookup(names, 2, "DOG", 2, &id), MOEDIT_OK);
    cr_assert_eq(id, 1);
    cr_assert_eq(moedit_class_lookup(NULL, 0, "2", 2, &id), MOEDIT_OK, "ids need no names");
    cr_assert_eq(id, 2);
    cr_assert_eq(moedit_class_lookup(NULL, 0, "cat", 2, &id), MOEDIT_EINPUT);
    cr_assert_eq(moedit_class_lookup(names, 3, "cat", 3, &id), MOEDIT_EINPUT, "a missing name");
    cr_assert_eq(moedit_class_lookup(NULL, 2, "cat", 2, &id), MOEDIT_EINPUT, "names missing");
}

Test(classnames, ambiguous_prefix_names_the_candidates)
{
    me_class_names cn = imagenet();
    expect_error(&cn, "gold", 1000, "ambiguous");
    expect_error(&cn, "gold", 1000, "'golden retriever' (207)");
    expect_error(&cn, "gold", 1000, "'goldfish' (1)");
    me_class_names_free(&cn);
}

Test(classnames, unknown_names_and_ids)
{
    me_class_names cn = {.count = 10, .names = (char **)fmnist};
    expect_error(&cn, "S", 10, "'Sandal' (5), 'Shirt' (6), 'Sneaker' (7)");
    expect_error(&cn, "boot", 10, "names containing it: 'Ankle boot' (9)");
    expect_error(&cn, "xyz", 10, "the names: 'T-shirt/top' (0)");
    expect_error(&cn, "xyz", 10, "and 4 more");
    expect_error(&cn, "11", 10, "outside 0..9");
    expect_error(&cn, "99999999999999999999", 10, "outside 0..9");
    expect_error(&cn, "", 10, "empty");
    cr_assert_eq(lookup(&cn, "ankle", 10), 9);
    cr_assert_eq(lookup(&cn, "t-shirt", 10), 0);
    expect_error(NULL, "Sandal", 10, "no class names");
    cr_assert_eq(lookup(NULL, "5", 10), 5);
}

Test(classnames, parse_list_mixes_names_and_ids)
{
    me_class_names cn = {.count = 10, .names = (char **)fmnist};
    int64_t labels[4];
    int n;
    cr_assert_eq(me_class_parse_list(&cn, "sneaker,3, bag ,Ankle boot", 10, labels, 4, &n), MOEDIT_OK, "%s",
                 moedit_last_error());
    cr_assert_eq(n, 4);
    cr_assert(labels[0] == 7 && labels[1] == 3 && labels[2] == 8 && labels[3] == 9);
    cr_assert_eq(me_class_parse_list(&cn, "1,2,3,4,5", 10, labels, 4, &n), MOEDIT_EINPUT, "too many");
    cr_assert_eq(me_class_parse_list(&cn, "1,", 10, labels, 4, &n), MOEDIT_EINPUT, "trailing comma");
    cr_assert_eq(me_class_parse_list(&cn, "1,,2", 10, labels, 4, &n), MOEDIT_EINPUT);
    char label[32];
    me_class_label(&cn, 7, label, sizeof label);
    cr_assert_str_eq(label, "Sneaker");
    me_class_label(NULL, 7, label, sizeof label);
    cr_assert_str_eq(label, "7");
}

static char dir[64];
static void make_dir(void) { tu_tmpdir(dir, sizeof dir, "classnames"); }
static void remove_dir(void) { cr_assert_eq(tu_rmtree(dir), 0); }

Test(classnames, files_and_json, .init = make_dir, .fini = remove_dir)
{
    char path[128];
    me_class_names cn;
    snprintf(path, sizeof path, "%s/names.txt", dir);
    tu_write_file(path, "cat\r\ndog\nbird\n", 14);
    cr_assert_eq(me_class_names_read(&cn, path), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_eq(cn.count, 3, "CRLF endings and the final newline");
    cr_assert_str_eq(cn.names[0], "cat");
    cr_assert_str_eq(cn.names[2], "bird");
    me_class_names_free(&cn);
    tu_write_file(path, "cat\n\ndog\n", 9);
    cr_assert_eq(me_class_names_read(&cn, path), MOEDIT_EINPUT, "an empty line would shift the ids");
    cr_assert(strstr(moedit_last_error(), "line 2"), "%s", moedit_last_error());

    int found;
    cr_assert_eq(me_class_names_read_json(&cn, MOEDIT_SOURCE_DIR "/models/fmnist-moe/defaults.json", &found),
                 MOEDIT_OK, "%s", moedit_last_error());
    cr_assert(found);
    cr_assert_eq(cn.count, 10);
    for (int i = 0; i < 10; i++) cr_assert_str_eq(cn.names[i], fmnist[i]);
    me_class_names_free(&cn);
    snprintf(path, sizeof path, "%s/d.json", dir);
    tu_write_file(path, "{\"cfg\": 4}", 10);
    cr_assert_eq(me_class_names_read_json(&cn, path, &found), MOEDIT_OK);
    cr_assert(!found && cn.count == 0);
    tu_write_file(path, "{\"class_names\": [\"a\", 3]}", 25);
    cr_assert_eq(me_class_names_read_json(&cn, path, &found), MOEDIT_EINPUT);
    cr_assert(strstr(moedit_last_error(), "class_names[1]"), "%s", moedit_last_error());
}

/* Names a figure or summary cannot show are refused when read, naming the
   line (or array index); a name two classes share is read (torchvision's
   list has two "crane") but picks neither. */
Test(classnames, unusable_names_refused_and_shared_names_pick_none, .init = make_dir, .fini = remove_dir)
{
    static const struct {
        const char *text, *needle;
    } bad[] = {
        {"cat\nd\xff" "g\n", "line 2 is not valid UTF-8"},
        {"cat\ndog\n\xc3", "line 3 is not valid UTF-8"},               /* a character cut short */
        {"\xc0\xaf\n", "line 1 is not valid UTF-8"},                   /* overlong '/' */
        {"\xed\xa0\x80\n", "line 1 is not valid UTF-8"},               /* a surrogate */
        {"cat\nd\tg\n", "line 2 holds a control character"},
        {"cat\ndog\x1b[31m\n", "line 2 holds a control character"},
    };
    char path[128];
    me_class_names cn;
    snprintf(path, sizeof path, "%s/names.txt", dir);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tu_write_file(path, bad[i].text, strlen(bad[i].text));
        cr_assert_eq(me_class_names_read(&cn, path), MOEDIT_EINPUT, "case %zu read", i);
        cr_assert(strstr(moedit_last_error(), bad[i].needle), "case %zu: %s", i, moedit_last_error());
        cr_assert_eq(cn.count, 0);
    }
    /* names differing only in case stay distinct, and any valid UTF-8 is kept */
    const char *ok = "Cardigan\ncardigan\n\xd0\xba\xd0\xbe\xd1\x82 \xf0\x9f\x90\x88\n";
    tu_write_file(path, ok, strlen(ok));
    cr_assert_eq(me_class_names_read(&cn, path), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_eq(cn.count, 3);
    me_class_names_free(&cn);

    const char *shared = "cat\ncrane\nbird\ncrane\ncranefly\n";
    tu_write_file(path, shared, strlen(shared));
    cr_assert_eq(me_class_names_read(&cn, path), MOEDIT_OK, "%s", moedit_last_error());
    int id = -1;
    cr_assert_eq(me_class_lookup(&cn, "crane", 5, &id), MOEDIT_EINPUT, "picked %d", id);
    cr_assert(strstr(moedit_last_error(), "'crane' names more than one class (give its id): 'crane' (1), 'crane' (3)"),
              "%s", moedit_last_error());
    cr_assert_eq(me_class_lookup(&cn, "cranef", 5, &id), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_eq(id, 4);
    cr_assert_eq(me_class_lookup(&cn, "3", 5, &id), MOEDIT_OK);
    cr_assert_eq(id, 3);
    me_class_names_free(&cn);

    int found = 1;
    snprintf(path, sizeof path, "%s/d.json", dir);
    const char *newline = "{\"class_names\": [\"a\", \"b\\nc\"]}";
    tu_write_file(path, newline, strlen(newline));
    cr_assert_eq(me_class_names_read_json(&cn, path, &found), MOEDIT_EINPUT);
    cr_assert(strstr(moedit_last_error(), "class_names[1] holds a control character"), "%s", moedit_last_error());
    const char *raw = "{\"class_names\": [\"a\", \"b\xfe\"]}";
    tu_write_file(path, raw, strlen(raw));
    cr_assert_eq(me_class_names_read_json(&cn, path, &found), MOEDIT_EINPUT);
    cr_assert(strstr(moedit_last_error(), "class_names[1] is not valid UTF-8"), "%s", moedit_last_error());
}

/* A label cut to its buffer ends before a character, never inside one. */
Test(classnames, label_cut_keeps_whole_characters)
{
    /* "xx" and then two-byte characters: a 6-byte buffer holds "xx", one
       character (2 bytes) and would cut the next one in half at byte 5 */
    char *names[1] = {"xx\xd0\xb4\xd0\xb4\xd0\xb4"};
    const me_class_names cn = {.count = 1, .names = names};
    char buf[6];
    me_class_label(&cn, 0, buf, sizeof buf);
    cr_assert_str_eq(buf, "xx\xd0\xb4");
    char whole[16];
    me_class_label(&cn, 0, whole, sizeof whole);
    cr_assert_str_eq(whole, names[0]);
    me_class_label(&cn, 3, buf, sizeof buf);
    cr_assert_str_eq(buf, "3", "ids without a name");
}
