"""Routing decisions as numpy arrays: from Model.sample(..., trace=True), or
read from a `moedit sample --trace` file (format: docs/trace-format.md)."""
import ctypes
import os

import numpy as np

from ._lib import FAMILIES, RouteTable, TraceHeader, check, lib

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
    def _from_log(cls, log, meta):
        """Columns as views of the library's route log (no copies); the log is
        freed once the last array viewing it is gone. meta: the attributes
        but k, which the log gives."""
        tab = RouteTable()
        check(lib.moedit_route_log_table(log.ptr, ctypes.byref(tab)))
        n, k, p = tab.count, tab.k, tab.num_probs

        def col(ptr, ctype, dtype, width=None):
            shape = (n,) if width is None else (n, width)
            if n == 0 or width == 0:
                return np.zeros(shape, dtype)
            buf = (ctype * (n * (width or 1))).from_address(ctypes.addressof(ptr.contents))
            buf.owner = log
            return np.frombuffer(buf, dtype).reshape(shape)

        i32, f32 = ctypes.c_int32, ctypes.c_float
        columns = {"step": col(tab.step, i32, np.int32), "layer": col(tab.layer, i32, np.int32),
                   "row": col(tab.row, i32, np.int32), "token": col(tab.token, i32, np.int32),
                   "is_null": col(tab.is_null, i32, np.int32).astype(bool),
                   "label": col(tab.label, ctypes.c_int64, np.int64), "timestep": col(tab.timestep, f32, np.float32),
                   "experts": col(tab.experts, i32, np.int32, k), "weights": col(tab.weights, f32, np.float32, k),
                   "probs": col(tab.probs, f32, np.float32, p) if p else None}
        return cls(columns, dict(meta, k=k or meta["k"]))

    @classmethod
    def from_file(cls, path):
        """Reads a trace file written by `moedit sample --trace`, checked by the
        library as `moedit heatmap` checks it (docs/trace-format.md,
        "Validation"): a file it would refuse raises moedit.Error (code 2)
        naming the problem."""
        log, h = RouteLog(), TraceHeader()
        check(lib.moedit_route_log_read(log.ptr, os.fsencode(path), ctypes.byref(h)))
        meta = {"family": FAMILIES[h.family], "depth": h.depth, "num_experts": h.num_experts, "k": h.top_k,
                "tokens": h.grid_h * h.grid_w, "grid": (h.grid_h, h.grid_w), "num_classes": h.num_classes,
                "sampler": h.sampler.decode(), "cfg": h.cfg}
        return cls._from_log(log, meta)

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


class RouteLog:
    """A moedit_route_log, freed when the last Trace array viewing it goes."""

    def __init__(self):
        self.ptr = ctypes.c_void_p()
        check(lib.moedit_route_log_new(ctypes.byref(self.ptr)))

    def __del__(self):
        if self.ptr:
            lib.moedit_route_log_free(self.ptr)
            self.ptr = None
