/* formats.h — the checkpoint readers behind me_tensors_open(). Each fills a
   fresh registry or fails with MOEDIT_EINPUT and a message naming the file. */
#ifndef MOEDIT_FORMATS_H
#define MOEDIT_FORMATS_H

#include "weights/tensors.h"

/* torch.save zip archives (.pt/.pth/.bin): train.py dicts yield "ema". */
int me_read_torch(const char *path, me_tensors **out);
/* .safetensors; "__metadata__" entries become registry metadata. */
int me_read_safetensors(const char *path, me_tensors **out);
/* diffusers folder: config.json (kept whole as metadata "config.json") plus
   diffusion_pytorch_model.safetensors or .bin. */
int me_read_diffusers(const char *dir, me_tensors **out);

/* Writes every tensor of ts (converted to dtype when it is a float type) and
   its metadata as a safetensors file, atomically. */
int me_write_safetensors(const me_tensors *ts, const char *path, me_dtype dtype);

#endif
