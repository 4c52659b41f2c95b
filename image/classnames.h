/* classnames.h — human-readable class names for captions, figure axes and
   tables, and --class lists that mix names and ids.

     me_class_names cn;
     if (me_class_names_read(&cn, "data/imagenet_classes.txt")) ...   // one per line
     int64_t labels[16];
     int n;
     if (me_class_parse_list(&cn, "golden retriever,360,tiger sh", 1000, labels, 16, &n))
         fprintf(stderr, "%s\n", moedit_last_error());   // names the candidates
     printf("%s\n", me_class_name(&cn, 207));           // "golden retriever"
     me_class_names_free(&cn);

   Matching ignores case and treats '_' as a space. A token that is a whole
   name matches it even when it also starts other names ("tiger" is not
   "tiger shark"); otherwise it must start exactly one name. Decimal tokens
   are ids, 0..num_classes (num_classes being the unconditional label). */
#ifndef MOEDIT_IMAGE_CLASSNAMES_H
#define MOEDIT_IMAGE_CLASSNAMES_H

#include <stdint.h>

typedef struct {
    int count;     /* 0: no names known; lookups take ids only */
    char **names;  /* count strings */
} me_class_names;

/* One name per line (a trailing '\r' dropped). Empty lines are an error:
   they would shift every later id. Both readers refuse names that are not
   UTF-8 or hold control characters. A name two classes share is read (the
   torchvision ImageNet list has two "crane"); me_class_lookup refuses it as
   a choice, naming both ids. Names differing only in case are distinct
   (ImageNet has "Cardigan" and "cardigan"). */
int me_class_names_read(me_class_names *out, const char *path);
/* The "class_names" array of a JSON object file (defaults.json). *found is 0
   and out empty when the file has no such key. */
int me_class_names_read_json(me_class_names *out, const char *path, int *found);
void me_class_names_free(me_class_names *cn);

/* The name of class id, or NULL when unknown. */
const char *me_class_name(const me_class_names *cn, int id);
/* Writes the name of id, or its decimal id when no name is known, to buf
   (size > 0); a longer name is cut before a character, never inside one. */
void me_class_label(const me_class_names *cn, int id, char *buf, int size);

/* Resolves one token (surrounding spaces ignored) to an id. Unknown or
   ambiguous names are MOEDIT_EINPUT with a message naming the candidates. */
int me_class_lookup(const me_class_names *cn, const char *token, int num_classes, int *id);
/* A comma-separated list of tokens into labels[0..*n), at most max of them. */
int me_class_parse_list(const me_class_names *cn, const char *list, int num_classes, int64_t *labels,
                        int max, int *n);

#endif
