"""Routing decisions as numpy arrays: from Model.sample(..., trace=True), or
read from a `moedit sample --trace` file (format: docs/trace-format.md)."""
import ctypes

import numpy as np

from ._lib import Error

_COLUMNS = ("step", "layer", "row", "token", "is_null", "label", "timestep", "experts", "weights", "probs")


class Trace:
    """One routing decision per entry i (per token for DiT-MoE; per row,
    token -1, for Switch-DiT): step[i], layer[i], row[i] (within the model
    evaluation, guidance null rows included), token[i], is_null[i], label[i],
    timestep[i], experts[i, :k] in the gate's order, weights[i, :k] their gate
    probabilities, probs[i, :E] (Switch-DiT; else None).
    Metadata: family, depth, num_experts, k, tokens, grid (h, w), num_classes."""

    def __init__(self, columns, meta):
        for name in _COLUMNS:
            setattr(self, name, columns[name])
        for name, value in meta.items():
            setattr(self, name, value)

    def __len__(self):
        return len(self.step)

    @classmethod
    def _from_table(cls, tab, owner, config, options):
        """Columns as views of the library's route log (no copies); owner frees
        the log once the last array viewing it is gone."""
        n, k, p = tab.count, tab.k, tab.num_probs

        def col(ptr, ctype, dtype, width=None):
            shape = (n,) if width is None else (n, width)
            if n == 0 or width == 0:
                return np.zeros(shape, dtype)
            buf = (ctype * (n * (width or 1))).from_address(ctypes.addressof(ptr.contents))
            buf.owner = owner
            return np.frombuffer(buf, dtype).reshape(shape)

        i32, f32 = ctypes.c_int32, ctypes.c_float
        columns = {"step": col(tab.step, i32, np.int32), "layer": col(tab.layer, i32, np.int32),
                   "row": col(tab.row, i32, np.int32), "token": col(tab.token, i32, np.int32),
                   "is_null": col(tab.is_null, i32, np.int32).astype(bool),
                   "label": col(tab.label, ctypes.c_int64, np.int64), "timestep": col(tab.timestep, f32, np.float32),
                   "experts": col(tab.experts, i32, np.int32, k), "weights": col(tab.weights, f32, np.float32, k),
                   "probs": col(tab.probs, f32, np.float32, p) if p else None}
        grid = config["input_size"] // config["patch"]
        meta = {"family": config["family"], "depth": config["depth"], "num_experts": config["num_experts"],
                "k": k or config["top_k"], "tokens": grid * grid, "grid": (grid, grid),
                "num_classes": config["num_classes"], "sampler": options["sampler"], "cfg": options["cfg"]}
        return cls(columns, meta)

    @classmethod
    def from_file(cls, path):
        """Reads a trace file written by `moedit sample --trace`."""
        data = np.fromfile(path, dtype=np.uint8)
        if data.size < 128 or bytes(data[:8]) != b"MOETRACE":
            raise Error(2, "%s: not a moedit trace" % path)
        u32 = data[:64].view("<u4")
        version, header_size, record_size, family, depth, experts, k, tokens, gh, gw, classes, nprobs = u32[2:14]
        count = int(data[56:64].view("<u8")[0])
        if version != 1 or data.size != header_size + count * record_size:
            raise Error(2, "%s: unsupported version or truncated" % path)
        pad = (k + 3) & ~3
        rec = np.dtype({"names": ["step", "timestep", "layer", "is_null", "k", "row", "token", "label",
                                  "experts", "weights"] + (["probs"] if nprobs else []),
                        "formats": ["<u4", "<f4", "<u2", "u1", "u1", "<u4", "<i4", "<i4", ("u1", (int(k),)),
                                    ("<f4", (int(k),))] + ([("<f4", (int(nprobs),))] if nprobs else []),
                        "offsets": [0, 4, 8, 10, 11, 12, 16, 20, 24, 24 + pad] +
                                   ([24 + pad + 4 * k] if nprobs else []),
                        "itemsize": int(record_size)})
        r = data[header_size:].view(rec)
        columns = {"step": r["step"].astype(np.int32), "layer": r["layer"].astype(np.int32),
                   "row": r["row"].astype(np.int32), "token": r["token"].astype(np.int32),
                   "is_null": r["is_null"].astype(bool), "label": r["label"].astype(np.int64),
                   "timestep": r["timestep"].astype(np.float32), "experts": r["experts"].astype(np.int32),
                   "weights": r["weights"].astype(np.float32),
                   "probs": r["probs"].astype(np.float32) if nprobs else None}
        sampler = bytes(data[72:88]).split(b"\0")[0].decode()
        meta = {"family": ("dit", "dit-moe", "switch-dit")[family], "depth": int(depth),
                "num_experts": int(experts), "k": int(k), "tokens": int(tokens), "grid": (int(gh), int(gw)),
                "num_classes": int(classes), "sampler": sampler, "cfg": float(data[68:72].view("<f4")[0])}
        return cls(columns, meta)

    def step_counts(self, cond_only=False):
        """Expert assignments per [layer, step, expert] (each decision adds one
        to each of its k experts, as `moedit heatmap`'s step table); null-class
        rows are skipped with cond_only."""
        keep = ~self.is_null if cond_only else np.ones(len(self), bool)
        steps = int(self.step.max()) + 1 if len(self) else 0
        counts = np.zeros((self.depth, steps, self.num_experts), np.int64)
        for j in range(self.experts.shape[1]):
            np.add.at(counts, (self.layer[keep], self.step[keep], self.experts[keep, j]), 1)
        return counts

    def step_shares(self, cond_only=False):
        """step_counts normalised per step: the colour of `moedit heatmap`'s step figures."""
        c = self.step_counts(cond_only).astype(np.float64)
        return c / np.maximum(c.sum(axis=2, keepdims=True), 1)
