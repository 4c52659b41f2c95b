/* formats.h — the checkpoint readers behind me_tensors_open(). Each fills a
   fresh registry or fails with MOEDIT_EINPUT and a message naming the file. */
#ifndef MOEDIT_FORMATS_H
#define MOEDIT_FORMATS_H

#include "weights/tensors.h"

/* torch.save zip archives (.pt/.pth/.bin): train.py dicts yield "ema". */
int me_read_torch(const char *path, me_tensors **out);
/* The same over a torch.save archive in memory: adds its state dict's
   tensors (pointing into data, which must outlive ts) to ts. */
int me_parse_torch(me_tensors *ts, const uint8_t *data, size_t size, const char *label);
/* .safetensors; "__metadata__" entries become registry metadata. */
int me_read_safetensors(const char *path, me_tensors **out);
/* The same over a safetensors image in memory: adds its tensors (pointing
   into data, which must outlive ts) and metadata to ts; label names it in
   messages. For shards, fuzzing and embedded data. */
int me_parse_safetensors(me_tensors *ts, const uint8_t *data, size_t size, const char *label);
/* diffusers folder: config.json (kept whole as metadata "config.json") plus
   diffusion_pytorch_model.safetensors or .bin. */
int me_read_diffusers(const char *dir, me_tensors **out);

/* Writes every tensor of ts (converted to dtype when it is a float type) and
   its metadata as a safetensors file, atomically. */
int me_write_safetensors(const me_tensors *ts, const char *path, me_dtype dtype);

#endif
