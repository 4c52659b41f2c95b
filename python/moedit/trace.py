"""Routing decisions as numpy arrays: from Model.sample(..., trace=True), or
read from a `moedit sample --trace` file (format: docs/trace-format.md)."""
import ctypes

import numpy as np

from ._lib import Error

# trace/format.h and trace/trace.h: what the C reader accepts
_HEADER, _MAX_DEPTH, _MAX_EXPERTS, _MAX_TOKENS, _MAX_CLASSES, _MAX_STEPS = 128, 256, 256, 1 << 20, 1 << 24, 65536
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
        """Reads a trace file written by `moedit sample --trace`, checked as
        `moedit heatmap` checks it (docs/trace-format.md, "Validation"): a
        file it would refuse raises moedit.Error (code 2) naming the problem."""
        try:
            data = np.fromfile(path, dtype=np.uint8)
        except OSError as e:
            raise Error(2, "%s: %s" % (path, e.strerror or e)) from None
        except ValueError as e:
            raise Error(2, "%s: %s" % (path, e)) from None

        def bad(what):
            return Error(2, "%s: %s" % (path, what))

        if data.size < _HEADER:
            raise bad("truncated trace header (%d of %d bytes)" % (data.size, _HEADER))
        if bytes(data[:8]) != b"MOETRACE":
            raise bad("not a moedit trace (bad magic)")
        u32 = [int(v) for v in data[:_HEADER].view("<u4")]
        version, header_size, record_size, family, depth, experts, k, tokens, gh, gw, classes, nprobs = u32[2:14]
        steps = u32[16]
        count = int(data[56:64].view("<u8")[0])
        if version != 1:
            raise bad("trace format version %d not supported (this module reads version 1)" % version)
        if header_size < _HEADER or header_size > data.size or header_size % 4:
            raise bad("bad header size %d" % header_size)
        if family not in (1, 2):
            raise bad("unknown model family %d" % family)
        if not 1 <= depth <= _MAX_DEPTH:
            raise bad("bad depth %d" % depth)
        if not 1 <= experts <= _MAX_EXPERTS:
            raise bad("bad number of experts %d" % experts)
        if not 1 <= k <= experts:
            raise bad("bad top-k %d (%d experts)" % (k, experts))
        if not 1 <= tokens <= _MAX_TOKENS or gh < 1 or gw < 1 or gh * gw != tokens:
            raise bad("bad token grid %d x %d for %d tokens" % (gh, gw, tokens))
        if not 1 <= classes <= _MAX_CLASSES:
            raise bad("bad number of classes %d" % classes)
        if nprobs not in (0, experts):
            raise bad("bad number of probabilities %d (%d experts)" % (nprobs, experts))
        if steps > _MAX_STEPS:
            raise bad("bad number of steps %d" % steps)
        pad = (k + 3) & ~3
        want = 24 + pad + 4 * k + 4 * nprobs
        if record_size != want:
            raise bad("record size %d, expected %d for top-%d" % (record_size, want, k))
        name = bytes(data[72:88])
        if b"\0" not in name:
            raise bad("sampler name not terminated")
        sampler = name.split(b"\0")[0]
        if any(c < 0x20 or c > 0x7e for c in sampler):
            raise bad("sampler name is not printable")
        cfg = float(data[68:72].view("<f4")[0])
        if not np.isfinite(cfg):
            raise bad("guidance scale is not finite")
        body = data.size - header_size
        if count * want != body:
            raise bad("truncated or padded trace: header says %d records of %d bytes, file holds %d bytes of records"
                      % (count, want, body))
        rec = np.dtype({"names": ["step", "timestep", "layer", "is_null", "k", "row", "token", "label",
                                  "experts", "weights"] + (["probs"] if nprobs else []),
                        "formats": ["<u4", "<f4", "<u2", "u1", "u1", "<u4", "<i4", "<i4", ("u1", (k,)),
                                    ("<f4", (k,))] + ([("<f4", (nprobs,))] if nprobs else []),
                        "offsets": [0, 4, 8, 10, 11, 12, 16, 20, 24, 24 + pad] + ([24 + pad + 4 * k] if nprobs else []),
                        "itemsize": want})
        r = data[header_size:].view(rec)
        e = r["experts"]

        def check(ok, what):
            if not np.all(ok):
                i = int(np.flatnonzero(~np.asarray(ok).reshape(count, -1).all(axis=1))[0])
                raise bad("record %d: %s" % (i, what))

        check(r["step"] < (steps or _MAX_STEPS), "step out of range (%d steps)" % (steps or _MAX_STEPS))
        check(np.isfinite(r["timestep"]), "timestep is not finite")
        check(r["layer"] < depth, "layer out of range (depth %d)" % depth)
        check(r["is_null"] <= 1, "bad null flag")
        check(r["k"] == k, "experts other than the header's top-%d" % k)
        check(r["row"] <= 2 ** 31 - 1, "bad row")
        check((r["token"] >= -1) & (r["token"] < tokens), "token out of range (%d tokens)" % tokens)
        check((r["label"] >= 0) & (r["label"] <= classes), "label out of range (%d classes + null)" % classes)
        check(e < experts, "expert out of range (%d experts)" % experts)
        if k > 1:
            s = np.sort(e, axis=1)
            check(s[:, 1:] != s[:, :-1], "an expert chosen twice")
        check((r["weights"] >= 0) & (r["weights"] <= 1.001), "weight is not a probability")
        if nprobs:
            check((r["probs"] >= 0) & (r["probs"] <= 1.001), "probability is not a probability")
        columns = {"step": r["step"].astype(np.int32), "layer": r["layer"].astype(np.int32),
                   "row": r["row"].astype(np.int32), "token": r["token"].astype(np.int32),
                   "is_null": r["is_null"].astype(bool), "label": r["label"].astype(np.int64),
                   "timestep": r["timestep"].astype(np.float32), "experts": e.astype(np.int32),
                   "weights": r["weights"].astype(np.float32),
                   "probs": r["probs"].astype(np.float32) if nprobs else None}
        meta = {"family": ("dit", "dit-moe", "switch-dit")[family], "depth": depth, "num_experts": experts, "k": k,
                "tokens": tokens, "grid": (gh, gw), "num_classes": classes, "sampler": sampler.decode(), "cfg": cfg}
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
