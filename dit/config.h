/* config.h — detects which transformer family a registry of tensors holds
   and its hyper-parameters, from tensor names and shapes alone. */
#ifndef MOEDIT_DIT_CONFIG_H
#define MOEDIT_DIT_CONFIG_H

#include "moedit.h"
#include "weights/tensors.h"

/* Fills cfg, or fails with MOEDIT_EINPUT naming the first missing or
   mis-shaped tensor. opt may be NULL; safetensors metadata written by
   `moedit convert` (heads, top_k) is honoured when opt leaves them 0. */
int me_detect_config(const me_tensors *ts, const moedit_load_options *opt, moedit_config *cfg);

const char *me_family_name(moedit_family f);   /* "dit", "dit-moe", "switch-dit" */

#endif
