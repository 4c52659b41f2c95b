/* class_names.h — where the CLI finds class names: --class-names FILE, else
   "class_names" in the defaults.json beside the checkpoint, else for
   1000-class models the shipped ImageNet list (share/moedit/ beside the
   installed binary, or data/ in the source tree). */
#ifndef MOEDIT_CLI_CLASS_NAMES_H
#define MOEDIT_CLI_CLASS_NAMES_H

#include "image/classnames.h"

/* Fills cn (empty when no source applies; then ids are shown). model_path
   may be NULL. Returns 0, or 2 after a one-line message (unreadable file,
   or a list whose length is not num_classes). */
int cli_class_names(const char *cmd, const char *file, const char *model_path, int num_classes,
                    me_class_names *cn);

#endif
