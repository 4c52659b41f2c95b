"""Loading libmoedit.so and declaring its C API for ctypes.

The library is looked for in this order: the file (or folder) named by
$MOEDIT_LIB; lib/ or build/ in any folder above this package (an install
prefix holding the pip-installed module, or the source tree with its build/
folder); then the dynamic linker's search path (ldconfig, LD_LIBRARY_PATH).

The struct mirrors below must match include/moedit.h; import fails with a
clear message when the library reports a different size for any of them.
"""
import ctypes
import glob
import operator
import os
import threading
from ctypes import (POINTER, Structure, c_char_p, c_double, c_float, c_int, c_int32, c_int64,
                    c_size_t, c_uint8, c_uint32, c_uint64, c_void_p)

import numpy as np

VERSION = (0, 1)                       # major.minor of the C API this module speaks
SONAME = "libmoedit.so.%d.%d" % VERSION


FAMILIES = ("dit", "dit-moe", "switch-dit")   # moedit_family's values


class Config(Structure):
    _fields_ = [(n, c_int) for n in (
        "family", "depth", "hidden", "heads", "patch", "input_size", "in_channels", "out_channels",
        "num_classes", "learn_sigma", "mlp_hidden", "shared_hidden", "num_experts", "top_k",
        "attention", "routing", "flow")]


class LoadOptions(Structure):
    _fields_ = [("heads", c_int), ("top_k", c_int), ("bf16", c_int),
                ("device_kind", c_int), ("device_index", c_int), ("fp32", c_int),
                ("no_verify", c_int)]


class SampleOptions(Structure):
    _fields_ = [("sampler", c_int), ("steps", c_char_p), ("cfg", c_float), ("cfg_channels", c_int),
                ("eta", c_float), ("cosine_schedule", c_int), ("seed", c_uint64), ("rng", c_int),
                ("noise", POINTER(c_float)), ("row_seeds", POINTER(c_uint64)),
                ("progress", c_void_p), ("progress_user", c_void_p), ("spacing", c_int), ("karras", c_int),
                ("order", c_int), ("cfg_interval", c_int), ("cfg_lo", c_float), ("cfg_hi", c_float)]


class Route(Structure):
    _fields_ = [("layer", c_int), ("step", c_int), ("row", c_int), ("token", c_int),
                ("timestep", c_float), ("label", c_int64), ("is_null", c_int), ("k", c_int),
                ("experts", POINTER(c_int)), ("weights", POINTER(c_float)), ("num_probs", c_int),
                ("probs", POINTER(c_float))]


class RouteTable(Structure):
    _fields_ = [("count", c_size_t), ("k", c_int), ("num_probs", c_int),
                ("step", POINTER(c_int32)), ("layer", POINTER(c_int32)), ("row", POINTER(c_int32)),
                ("token", POINTER(c_int32)), ("is_null", POINTER(c_int32)), ("label", POINTER(c_int64)),
                ("timestep", POINTER(c_float)), ("experts", POINTER(c_int32)),
                ("weights", POINTER(c_float)), ("probs", POINTER(c_float))]


class TraceHeader(Structure):
    _fields_ = [("family", c_int), ("depth", c_int), ("num_experts", c_int), ("top_k", c_int),
                ("grid_h", c_int), ("grid_w", c_int), ("num_classes", c_int), ("steps", c_int),
                ("cfg", c_float), ("sampler", ctypes.c_char * 16)]


_STRUCTS = {"moedit_config": Config, "moedit_load_options": LoadOptions,
            "moedit_sample_options": SampleOptions, "moedit_route": Route,
            "moedit_route_table": RouteTable, "moedit_trace_header": TraceHeader}

_F = POINTER(c_float)
_D = POINTER(c_double)
_PROTOTYPES = {
    "moedit_version": (c_char_p, []),
    "moedit_last_error": (c_char_p, []),
    "moedit_sizeof": (c_size_t, [c_char_p]),
    "moedit_set_threads": (None, [c_int]),
    "moedit_cpu_bf16": (c_int, []),
    "moedit_model_path": (c_int, [c_char_p, c_char_p, c_size_t]),
    "moedit_data_path": (c_int, [c_char_p, c_char_p, c_size_t]),
    "moedit_class_lookup": (c_int, [POINTER(c_char_p), c_int, c_char_p, c_int, POINTER(c_int)]),
    "moedit_model_load": (c_int, [c_char_p, POINTER(LoadOptions), POINTER(c_void_p)]),
    "moedit_model_free": (None, [c_void_p]),
    "moedit_model_config": (POINTER(Config), [c_void_p]),
    "moedit_model_forward": (c_int, [c_void_p, c_int, _F, _F, POINTER(c_int64), _F]),
    "moedit_model_set_tracer": (None, [c_void_p, c_void_p, c_void_p]),
    "moedit_model_digest": (c_int, [c_void_p, POINTER(c_uint32)]),
    "moedit_sample_defaults": (None, [c_void_p, POINTER(SampleOptions)]),
    "moedit_sample": (c_int, [c_void_p, POINTER(SampleOptions), c_int, POINTER(c_int64), _F]),
    "moedit_vae_load": (c_int, [c_char_p, POINTER(c_void_p)]),
    "moedit_vae_free": (None, [c_void_p]),
    "moedit_vae_scaling_factor": (c_float, [c_void_p]),
    "moedit_vae_latent_channels": (c_int, [c_void_p]),
    "moedit_vae_out_channels": (c_int, [c_void_p]),
    "moedit_vae_upscale": (c_int, [c_void_p]),
    "moedit_vae_decode": (c_int, [c_void_p, c_int, c_int, c_int, _F, _F]),
    "moedit_vae_set_bf16": (c_int, [c_void_p, c_int]),
    "moedit_vae_digest": (c_int, [c_void_p, POINTER(c_uint32)]),
    "moedit_route_log_new": (c_int, [POINTER(c_void_p)]),
    "moedit_route_log_free": (None, [c_void_p]),
    "moedit_route_log_table": (c_int, [c_void_p, POINTER(RouteTable)]),
    "moedit_route_log_read": (c_int, [c_void_p, c_char_p, POINTER(TraceHeader)]),
    "moedit_feature_stats": (c_int, [c_int64, c_int, _F, _D, _D]),
    "moedit_frechet_distance": (c_int, [c_int, _D, _D, _D, _D, _D]),
    "moedit_inception_score": (c_int, [c_int64, c_int, _F, c_int64, _D]),
    "moedit_inception_load": (c_int, [c_char_p, POINTER(c_void_p)]),
    "moedit_inception_free": (None, [c_void_p]),
    "moedit_inception_digest": (c_int, [c_void_p, POINTER(c_uint32)]),
    "moedit_inception_features": (c_int, [c_void_p, c_int, c_int, c_int, c_int, POINTER(c_uint8), _F, _F]),
    "moedit_inception_adm_features": (c_int, [c_void_p, c_char_p, c_int, c_int, c_int, c_int, POINTER(c_uint8), _F,
                                              _F, _F]),
    "moedit_precision_recall": (c_int, [c_int64, _F, c_int64, _F, c_int, c_int, _D, _D]),
}


def _candidates():
    env = os.environ.get("MOEDIT_LIB")
    if env:
        yield os.path.join(env, SONAME) if os.path.isdir(env) else env
        return
    here = os.path.dirname(os.path.abspath(__file__))
    parent = os.path.dirname(here)
    while True:
        for sub in ("lib", os.path.join("lib", "*-linux-gnu"), "lib64", "build"):
            yield from sorted(glob.glob(os.path.join(parent, sub, SONAME)))
        up = os.path.dirname(parent)
        if up == parent:
            break
        parent = up
    yield SONAME


def _load():
    tried = []
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            tried.append(str(e))
            continue
        for name, (res, args) in _PROTOTYPES.items():
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = res, args
        for name, cls in _STRUCTS.items():
            if lib.moedit_sizeof(name.encode()) != ctypes.sizeof(cls):
                raise ImportError("%s: %s is %d bytes in the library, %d in moedit/_lib.py (update the mirror)"
                                  % (path, name, lib.moedit_sizeof(name.encode()), ctypes.sizeof(cls)))
        lib.path = path
        return lib
    raise ImportError("libmoedit not found (set MOEDIT_LIB to libmoedit.so): " + "; ".join(tried[-3:]))


lib = _load()


class Error(RuntimeError):
    """A libmoedit failure: code 2 (bad input) or 1 (internal), and its message."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def check(rc):
    """Raises Error with moedit_last_error() for a failed call's return code."""
    if rc:
        raise Error(rc, lib.moedit_last_error().decode("utf-8", "replace"))


INT_MAX = 2 ** 31 - 1


def as_int(value, name, lo=-2 ** 63, hi=2 ** 63 - 1):
    """value as a Python int in lo..hi: an int, or a float holding an integer
    (2.0 from a JSON file); 2.5 or "2" is refused rather than truncated or
    parsed, a value beyond what the C parameter holds rather than wrapped."""
    try:
        v = operator.index(value)
    except TypeError:
        if not isinstance(value, (float, np.floating)) or not np.isfinite(value) or value != int(value):
            raise Error(2, "%s: %r is not an integer" % (name, value)) from None
        v = int(value)
    if not lo <= v <= hi:
        raise Error(2, "%s: %d is outside %d..%d" % (name, v, lo, hi))
    return v


def as_ints(values, dtype, name, lo=None, hi=None):
    """values as a C-contiguous array of the integer dtype, no copy where it
    already is one: integers only (an integer array, or a list or object
    array of ints), each in lo..hi (default: dtype's range), so that nothing
    is truncated (1.7 → 1) or wraps (-1 → 2**64 - 1) on the way to C."""
    info = np.iinfo(dtype)
    lo = info.min if lo is None else lo
    hi = info.max if hi is None else hi
    a = np.asarray(values)
    if a.dtype == object:
        try:
            items = [operator.index(v) for v in a.ravel()]
        except TypeError:
            raise Error(2, "%s: expected integers" % name) from None
        if items and (min(items) < lo or max(items) > hi):
            raise Error(2, "%s: values must be in %d..%d (got %d..%d)" % (name, lo, hi, min(items), max(items)))
        return np.array(items, dtype=dtype).reshape(a.shape)
    if a.size == 0:
        return np.ascontiguousarray(a, dtype=dtype)
    if a.dtype.kind not in "iu":
        raise Error(2, "%s: expected integers, got %s" % (name, a.dtype))
    if int(a.min()) < lo or int(a.max()) > hi:
        raise Error(2, "%s: values must be in %d..%d (got %d..%d)" % (name, lo, hi, int(a.min()), int(a.max())))
    return np.ascontiguousarray(a, dtype=dtype)


class Native:
    """A library object (model, VAE, Inception network) behind a lock.

    The library lets one thread at a time use an object (it owns its working
    buffers), and its calls release the GIL: calls from several Python
    threads on one object run one after another here instead of racing, and
    close() waits for a running call. Using the object after close() (or
    after its with block) raises ValueError instead of passing the library
    a freed pointer."""
    _what = "object"

    def _native_init(self):
        self._handle = None
        self._lock = threading.RLock()

    def _use(self):
        """The handle, for a call made while holding self._lock."""
        if not self._handle:
            raise ValueError("%s is closed" % self._what)
        return self._handle

    def _free(self, handle):
        raise NotImplementedError

    def close(self):
        """Frees the library's object (again: nothing); later calls raise ValueError."""
        lock = getattr(self, "_lock", None)
        if lock is None:
            return
        with lock:
            if self._handle:
                h, self._handle = self._handle, None
                self._free(h)

    @property
    def closed(self):
        return not getattr(self, "_handle", None)

    def __del__(self):
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
