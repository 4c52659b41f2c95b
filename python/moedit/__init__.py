"""moedit from Python: MoE diffusion transformers (DiT, DiT-MoE, Switch-DiT)
over libmoedit.so, with numpy arrays.

    import moedit
    m = moedit.Model("fmnist-moe")
    z, tr = m.sample([0, 7], steps=25, seed=1, trace=True)
    img = moedit.VAE(m.vae_path).decode(z)          # [2, 1, 32, 32], about [-1, 1]
    counts = tr.step_counts()                        # [layer, step, expert]

Arrays are passed to the library without copies when they already are
C-contiguous with the right dtype (float32, int64); outputs are new numpy
arrays the library writes into, and a Trace's columns are views of the
library's route log (freed with the last of them). Every library failure raises moedit.Error
carrying moedit_last_error(), and so do bad arguments (code 2). The library
calls release the GIL; calls on one Model (VAE, Inception) from several
threads run one at a time, so for parallel sampling use one Model per thread.
A closed object raises ValueError.
"""
import ctypes
import json
import os
import warnings

import numpy as np

from ._lib import (FAMILIES, INT_MAX, Error, LoadOptions, Native, SampleOptions, as_int as _int, as_ints as _ints,
                   check as _check, lib)
from .metrics import Inception, evaluate, feature_stats, fid, frechet_distance, inception_score, precision_recall
from .trace import RouteLog, Trace

__all__ = ["Error", "Model", "VAE", "Trace", "Inception", "feature_stats", "fid", "frechet_distance",
           "inception_score", "precision_recall", "evaluate", "set_threads", "model_path", "library_version"]
__version__ = "0.1.0"

SAMPLERS = ("ddpm", "ddim", "flow", "dpm++2m", "dpm++3m", "unipc", "dpm++2m-sde", "heun", "midpoint")
MULTISTEP = ("dpm++2m", "dpm++3m", "unipc", "dpm++2m-sde")
FLOW_SAMPLERS = ("flow", "heun", "midpoint")
SPACINGS = ("linspace", "leading", "trailing")
RNGS = ("torch", "native")


def _arg_error(message):
    return Error(2, message)


def _ptr(a, ctype):
    return a.ctypes.data_as(ctypes.POINTER(ctype))


def _array(a, dtype, shape, name):
    """a as a C-contiguous array of dtype (no copy if it already is one) of the given shape."""
    a = np.ascontiguousarray(a, dtype=dtype)
    if a.shape != tuple(shape):
        raise _arg_error("%s: expected shape %s, got %s" % (name, tuple(shape), a.shape))
    return a


def _float(v, name):
    try:
        return float(v)
    except (TypeError, ValueError):
        raise _arg_error("%s: %r is not a number" % (name, v)) from None


def _finite_rows(a, what, problem):
    """moedit forward's check: Error naming the rows of a [n, ...] that hold NaN or inf."""
    if a.size == 0:
        return
    bad = np.flatnonzero(~np.isfinite(a.reshape(a.shape[0], -1)).all(axis=1))
    if bad.size:
        rows = ", ".join(str(r) for r in bad[:8]) + (", …" if bad.size > 8 else "")
        raise _arg_error("%s: %s in %d of %d rows: %s" % (what, problem, bad.size, a.shape[0], rows))


def library_version():
    """Version of the libmoedit.so actually loaded."""
    return lib.moedit_version().decode()


def set_threads(n):
    """Threads for the library's kernels and BLAS; process-wide.

    0 = all cores the process may run on, within its cgroup's CPU quota."""
    lib.moedit_set_threads(_int(n, "threads", 0, INT_MAX))


def model_path(name):
    """A shipped-model alias (fmnist-moe, fmnist-switch, fmnist-vae) as a path; other names unchanged."""
    buf = ctypes.create_string_buffer(4096)
    _check(lib.moedit_model_path(os.fsencode(name), buf, len(buf)))
    return os.fsdecode(buf.value)


def _class_names(defaults, num_classes):
    """The names class ids go by, as `moedit sample` finds them: defaults.json's
    class_names, else for a 1000-class model the shipped ImageNet list; None
    when neither applies."""
    names, source = defaults.get("class_names"), "defaults.json class_names"
    if names is None and num_classes == 1000:
        buf = ctypes.create_string_buffer(4096)
        if lib.moedit_data_path(b"imagenet_classes.txt", buf, len(buf)) == 0:
            source = os.fsdecode(buf.value)
            with open(source, encoding="utf-8") as f:
                names = [line.rstrip("\r") for line in f.read().split("\n")]
            if names and names[-1] == "":
                names.pop()
    if names is None:
        return None
    if not isinstance(names, list) or not all(isinstance(v, str) and v for v in names):
        raise _arg_error("%s: not a list of non-empty names" % source)
    if len(names) != num_classes:
        raise _arg_error("%s: %d class names for a model with %d classes" % (source, len(names), num_classes))
    return tuple(names)


def _has_names(classes):
    """Whether a classes argument holds strings (names, or ids as text)."""
    if isinstance(classes, (str, bytes)):
        return True
    if isinstance(classes, np.ndarray):
        return classes.dtype.kind in "USO"
    return isinstance(classes, (list, tuple)) and any(isinstance(v, str) for v in classes)


def _defaults_file(path):
    """Where defaults.json lies for a checkpoint: beside it, or inside a model folder."""
    return os.path.join(path if os.path.isdir(path) else (os.path.dirname(path) or "."), "defaults.json")


def _read_defaults(path):
    """defaults.json beside a checkpoint (or inside a model folder), as the CLI reads it."""
    file = _defaults_file(path)
    folder = os.path.dirname(file)
    if not os.path.exists(file):
        return {}
    with open(file) as f:
        d = json.load(f)
    if not isinstance(d, dict):
        raise _arg_error("%s: not a JSON object" % file)
    for key in ("sampler", "steps", "cfg_channels", "schedule", "spacing", "cfg_interval"):
        v = d.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            d[key] = "%.17g" % v
    if isinstance(d.get("vae"), str):
        d["vae"] = d["vae"] if d["vae"].startswith("/") else folder + "/" + d["vae"]
    return d


def _default_steps(sampler, cosine):
    """The library's default steps for a sampler (me_default_steps)."""
    if sampler in FLOW_SAMPLERS:
        return "50"
    if sampler in MULTISTEP:
        return "20"
    return "ddim250" if cosine else "250"


def _solver_options(r, d, spacing, karras, order, cfg_interval):
    """spacing, karras, order and the guidance interval, settled as `moedit
    sample` settles them: defaults.json's apply only to samplers they fit."""
    multistep = r["sampler"] in MULTISTEP
    out = {"spacing": "linspace", "karras": False, "order": 0, "cfg_interval": None}
    if spacing is not None and not multistep:
        raise _arg_error("spacing applies to the dpm++ and unipc samplers")
    spacing = d.get("spacing") if spacing is None and multistep else spacing
    if spacing is not None:
        if spacing not in SPACINGS:
            raise _arg_error("spacing: '%s' is not linspace, leading or trailing" % spacing)
        out["spacing"] = spacing
    if karras and not multistep:
        raise _arg_error("karras applies to the dpm++ and unipc samplers")
    out["karras"] = multistep and bool(karras if karras is not None else d.get("karras", False))
    if order is not None and r["sampler"] != "unipc":
        raise _arg_error("order applies to sampler unipc")
    order = d.get("order") if order is None and r["sampler"] == "unipc" else order
    if order is not None:
        out["order"] = _int(order, "order", 1, 3)
    interval = d.get("cfg_interval") if cfg_interval is None else cfg_interval
    if interval is not None:
        try:
            interval = tuple(float(v) for v in (interval.split(",") if isinstance(interval, str) else interval))
        except (TypeError, ValueError):
            interval = ()
        if len(interval) != 2 or not all(np.isfinite(interval)) or not interval[0] < interval[1]:
            raise _arg_error("cfg_interval: %r is not LO,HI with LO < HI" % (cfg_interval,))
        if not r["cfg"] > 1:
            raise _arg_error("cfg_interval needs guidance (cfg > 1)")
        out["cfg_interval"] = (float(interval[0]), float(interval[1]))
    return out


class Model(Native):
    """A DiT / DiT-MoE / Switch-DiT checkpoint (path or shipped alias).

    heads and top_k default to the defaults.json beside the checkpoint, then
    to the library's defaults; bf16 keeps the block matrices as bfloat16
    (attention on bf16 operands too) on CPUs with AVX512-BF16 — elsewhere it
    warns and runs float32; the bf16 attribute says which runs.
    """
    _what = "Model"

    def __init__(self, path_or_alias="fmnist-moe", bf16=False, heads=None, top_k=None):
        self._native_init()
        self.path = model_path(path_or_alias)
        self.defaults = _read_defaults(self.path)
        heads = self.defaults.get("heads") if heads is None else heads
        top_k = self.defaults.get("top_k") if top_k is None else top_k
        heads = 0 if heads is None else _int(heads, "heads", 1, INT_MAX)
        top_k = 0 if top_k is None else _int(top_k, "top_k", 1, INT_MAX)
        if bf16 and not lib.moedit_cpu_bf16():   # the library would ignore it, silently
            warnings.warn("bf16=True runs float32 here: this CPU has no AVX512-BF16", RuntimeWarning, stacklevel=2)
        self.bf16 = bool(bf16) and bool(lib.moedit_cpu_bf16())
        opt = LoadOptions(heads=heads, top_k=top_k, bf16=int(self.bf16))
        m = ctypes.c_void_p()
        _check(lib.moedit_model_load(os.fsencode(self.path), ctypes.byref(opt), ctypes.byref(m)))
        self._handle = m
        c = lib.moedit_model_config(m).contents
        self.config = {name: getattr(c, name) for name, _ in c._fields_}
        self.config["family"] = FAMILIES[c.family]
        self.config["attention"] = ("timm", "qknorm")[c.attention]
        self.config["routing"] = ("none", "dmoe", "dtr")[c.routing]
        self.vae_path = self.defaults.get("vae")
        self.class_names = _class_names(self.defaults, c.num_classes)

    def class_ids(self, classes):
        """Class ids [n] int64 for ids and names, as `moedit sample --class`
        takes them: a name of self.class_names (case ignored, '_' read as a
        space, a whole name or the start of exactly one) or an id
        0..num_classes (num_classes: the null class)."""
        classes = np.atleast_1d(np.asarray(classes, dtype=object if _has_names(classes) else None))
        if classes.ndim != 1 or classes.shape[0] < 1:
            raise _arg_error("classes: expected a non-empty list of class ids or names")
        if classes.shape[0] > INT_MAX:
            raise _arg_error("classes: %d rows, at most %d in one call" % (classes.shape[0], INT_MAX))
        k = self.config["num_classes"]
        if classes.dtype != object:
            return _ints(classes, np.int64, "classes: ids", 0, k)
        names = self.class_names or ()
        table = (ctypes.c_char_p * max(len(names), 1))(*[v.encode() for v in names])
        ids = np.empty(classes.shape[0], np.int64)
        for i, v in enumerate(classes):
            if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
                ids[i] = _int(v, "classes: ids", 0, k)
                continue
            if not isinstance(v, str):
                raise _arg_error("classes: %r is neither a class id nor a name" % (v,))
            if not names and not v.strip().isdigit():
                raise _arg_error("classes: '%s' is not a class id, and %s has no class names" % (v, self.path))
            out = ctypes.c_int()
            if lib.moedit_class_lookup(table, len(names), v.encode(), k, ctypes.byref(out)):
                raise _arg_error("classes: " + lib.moedit_last_error().decode("utf-8", "replace"))
            ids[i] = out.value
        return ids

    def _free(self, handle):
        lib.moedit_model_free(handle)

    def digest(self):
        """The weights' identity as fid-sample's resume state records it: a
        CRC-32 (8 hex digits) over the checkpoint's tensors as stored, the same
        for any copy of the file or precision it is run in."""
        crc = ctypes.c_uint32()
        with self._lock:
            _check(lib.moedit_model_digest(self._use(), ctypes.byref(crc)))
        return "%08x" % crc.value

    def _latent_shape(self, n):
        c = self.config
        return (n, c["in_channels"], c["input_size"], c["input_size"])

    def forward(self, x, t, y, out=None):
        """One evaluation: x [n, C, H, W] float32, t [n] timesteps as the model
        receives them, y [n] labels (num_classes = the guidance null class)
        → [n, out_channels, H, W]. out may be a preallocated float32 array.
        As `moedit forward`, NaN or inf in x (as float32), or in the output
        (finite inputs that overflow), raise moedit.Error."""
        x = np.asarray(x)
        if x.ndim != 4:
            raise _arg_error("x: expected shape (n,) + %s, got %s" % (self._latent_shape(0)[1:], x.shape))
        n = x.shape[0]
        if n > INT_MAX:
            raise _arg_error("x: %d rows, at most %d in one forward" % (n, INT_MAX))
        x = _array(x, np.float32, self._latent_shape(n), "x")
        t = _array(t, np.float32, (n,), "t")
        y = _ints(y, np.int64, "y")
        if y.shape != (n,):
            raise _arg_error("y: expected shape %s, got %s" % ((n,), y.shape))
        c = self.config
        shape = (n, c["out_channels"], c["input_size"], c["input_size"])
        if out is None:
            out = np.empty(shape, np.float32)
        elif (not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.shape != shape
              or not out.flags.c_contiguous or not out.flags.writeable):
            raise _arg_error("out: expected a writeable C-contiguous float32 array of shape %s" % (shape,))
        _finite_rows(x, "x", "NaN or inf (as float32)")
        with self._lock:
            _check(lib.moedit_model_forward(self._use(), n, _ptr(x, ctypes.c_float), _ptr(t, ctypes.c_float),
                                            _ptr(y, ctypes.c_int64), _ptr(out, ctypes.c_float)))
        _finite_rows(out, "forward", "the output overflows to NaN or inf")
        return out

    def sample_options(self, sampler=None, steps=None, cfg=None, cfg_channels=None, eta=None,
                       schedule=None, seed=None, rng=None, spacing=None, karras=None, order=None,
                       cfg_interval=None):
        """The options a sample() call runs with, settled as `moedit sample`
        settles its flags: argument, then defaults.json, then the library's
        defaults for the model. Returns a dict (what sample() reports)."""
        d = self.defaults
        o = SampleOptions()
        with self._lock:
            lib.moedit_sample_defaults(self._use(), ctypes.byref(o))
        r = {"sampler": SAMPLERS[o.sampler], "steps": o.steps.decode(), "cfg": o.cfg, "eta": o.eta,
             "seed": o.seed, "rng": RNGS[o.rng], "cfg_channels": o.cfg_channels,
             "cosine_schedule": o.cosine_schedule}
        switch = self.config["family"] == "switch-dit"
        # the file's steps belong to the file's sampler (as `moedit sample`)
        if steps is None and (sampler is None or sampler == d.get("sampler")):
            steps = d.get("steps")
        sampler = d.get("sampler") if sampler is None else sampler
        if sampler is not None:
            if sampler not in SAMPLERS:
                raise _arg_error("sampler: '%s' is not one of %s" % (sampler, ", ".join(SAMPLERS)))
            r["sampler"] = sampler
            if steps is None:
                r["steps"] = _default_steps(sampler, switch)
        if steps is not None:
            r["steps"] = str(steps)
        cfg = d.get("cfg") if cfg is None else cfg
        if cfg is not None:
            r["cfg"] = float(np.float32(cfg))
        if not (r["cfg"] >= 1 and np.isfinite(r["cfg"])):
            raise _arg_error("cfg: %g must be >= 1 (1 = no guidance)" % r["cfg"])
        cfg_channels = d.get("cfg_channels") if cfg_channels is None else cfg_channels
        if cfg_channels is not None:
            if str(cfg_channels) == "all":
                r["cfg_channels"] = 0
            elif str(cfg_channels).isdigit() and 1 <= int(cfg_channels) <= 64:
                r["cfg_channels"] = int(cfg_channels)
            else:
                raise _arg_error("cfg_channels: '%s' is not 3 or all" % cfg_channels)
        if eta is not None:
            eta = _float(eta, "eta")
            if not (0 <= eta <= 1):
                raise _arg_error("eta: %g is not in [0, 1]" % eta)
            if r["sampler"] != "ddim":
                raise _arg_error("eta applies to sampler ddim only")
            r["eta"] = float(np.float32(eta))
        schedule = d.get("schedule") if schedule is None else schedule
        if schedule is not None:
            if schedule not in ("linear", "cosine"):
                raise _arg_error("schedule: '%s' is not linear or cosine" % schedule)
            r["cosine_schedule"] = int(schedule == "cosine")
        if seed is not None:
            r["seed"] = _int(seed, "seed", 0, 2 ** 64 - 1)
        if rng is not None:
            if rng not in RNGS:
                raise _arg_error("rng: '%s' is not torch or native" % rng)
            r["rng"] = rng
        if steps is None and schedule is not None and r["sampler"] in ("ddpm", "ddim"):
            r["steps"] = _default_steps(r["sampler"], r["cosine_schedule"] > 0)
        if r["sampler"] not in ("ddpm", "ddim", "flow") and (r["sampler"] in FLOW_SAMPLERS) != bool(self.config["flow"]):
            raise _arg_error("sampler: %s does not fit this %s model" % (
                r["sampler"], "rectified-flow" if self.config["flow"] else "DDPM-trained"))
        r.update(_solver_options(r, d, spacing, karras, order, cfg_interval))
        if r["cfg_channels"] < 0:
            r["cfg_channels"] = 0 if switch or r["sampler"] in FLOW_SAMPLERS else 3
        if r["cosine_schedule"] < 0:
            r["cosine_schedule"] = int(switch)
        return r

    @staticmethod
    def _run_sample(m, o, n, labels, latents, hint):
        """moedit_sample into latents; hint is added to a refusal of the steps."""
        try:
            _check(lib.moedit_sample(m, ctypes.byref(o), n, _ptr(labels, ctypes.c_int64), _ptr(latents, ctypes.c_float)))
        except Error as e:
            if hint and str(e).startswith("steps:"):
                raise Error(e.code, "%s %s" % (e, hint)) from None
            raise

    def sample(self, classes, sampler=None, steps=None, cfg=None, cfg_channels=None, eta=None,
               schedule=None, seed=None, rng=None, noise=None, row_seeds=None, trace=False,
               spacing=None, karras=None, order=None, cfg_interval=None):
        """Latents [n, C, H, W] for the classes, ids or names as class_ids
        takes them (num_classes: the null class, an unconditional sample, as
        `moedit sample --class`); with
        trace=True also the routing decisions as a moedit.Trace: (latents, trace). Defaults as
        `moedit sample` (see sample_options); noise [n, C, H, W] replaces the
        drawn initial noise; row_seeds [n] (rng='native') one stream per row."""
        r = self.sample_options(sampler, steps, cfg, cfg_channels, eta, schedule, seed, rng,
                                spacing, karras, order, cfg_interval)
        labels = self.class_ids(classes)
        n = labels.shape[0]
        steps_bytes = r["steps"].encode()
        o = SampleOptions(sampler=SAMPLERS.index(r["sampler"]), steps=steps_bytes, cfg=r["cfg"],
                          cfg_channels=r["cfg_channels"], eta=r["eta"], cosine_schedule=r["cosine_schedule"],
                          seed=r["seed"], rng=RNGS.index(r["rng"]), spacing=SPACINGS.index(r["spacing"]),
                          karras=int(r["karras"]), order=r["order"], cfg_interval=int(r["cfg_interval"] is not None),
                          cfg_lo=r["cfg_interval"][0] if r["cfg_interval"] else 0,
                          cfg_hi=r["cfg_interval"][1] if r["cfg_interval"] else 0)
        if noise is not None:
            noise = _array(noise, np.float32, self._latent_shape(n), "noise")
            o.noise = _ptr(noise, ctypes.c_float)
        if row_seeds is not None:
            # the torch generator draws one stream for the batch: row seeds would be ignored
            if r["rng"] != "native":
                raise _arg_error("row_seeds need rng='native'")
            row_seeds = _ints(row_seeds, np.uint64, "row_seeds")
            if row_seeds.shape != (n,):
                raise _arg_error("row_seeds: expected shape %s, got %s" % ((n,), row_seeds.shape))
            o.row_seeds = _ptr(row_seeds, ctypes.c_uint64)
        latents = np.empty(self._latent_shape(n), np.float32)
        # steps that a sampler the caller did not name refuses: say where it came from
        hint = None
        if steps is not None and sampler is None and self.defaults.get("sampler") is not None:
            hint = '(the sampler from %s "sampler"; sampler= picks another)' % _defaults_file(self.path)
        if not trace:
            with self._lock:
                self._run_sample(self._use(), o, n, labels, latents, hint)
            _warn_blown_up(latents, r)
            return latents
        if self.config["num_experts"] <= 0:
            raise _arg_error("%s: a dense DiT has no experts to trace" % self.path)
        log = RouteLog()
        with self._lock:
            m = self._use()
            lib.moedit_model_set_tracer(m, ctypes.cast(lib.moedit_route_log_add, ctypes.c_void_p), log.ptr)
            try:
                self._run_sample(m, o, n, labels, latents, hint)
            finally:
                lib.moedit_model_set_tracer(m, None, None)
        c, grid = self.config, self.config["input_size"] // self.config["patch"]
        meta = {"family": c["family"], "depth": c["depth"], "num_experts": c["num_experts"], "k": c["top_k"],
                "tokens": grid * grid, "grid": (grid, grid), "num_classes": c["num_classes"],
                "sampler": r["sampler"], "cfg": r["cfg"]}
        _warn_blown_up(latents, r)
        return latents, Trace._from_log(log, meta)


# Latents past this only when the sampling blew up (a model's stay within a few
# units), as `moedit sample` warns (cli/cli.h CLI_LATENT_PEAK, docs/sampling.md).
LATENT_PEAK = 100.0


def _warn_blown_up(latents, r):
    """r: the sampling settings, or None for latents from elsewhere."""
    peak = float(np.max(np.abs(latents))) if latents.size else 0.0
    if peak <= LATENT_PEAK:   # NaN goes on
        return
    if r and r["cosine_schedule"] > 0 and r["sampler"] not in FLOW_SAMPLERS:
        why = ("the cosine schedule's step at t=999 (alpha_bar 2.4e-9) multiplies the model's noise error by 2e4 "
               "- take steps='ddimN' with ddpm/ddim, or spacing='leading' (docs/sampling.md)")
    else:
        why = "the samples are likely noise"
    warnings.warn("the latents reach %g (a model's stay within a few units): %s" % (peak, why), RuntimeWarning,
                  stacklevel=3)


class VAE(Native):
    """A diffusers AutoencoderKL decoder (folder, weights file, or fmnist-vae)."""
    _what = "VAE"

    def __init__(self, path_or_alias="fmnist-vae", bf16=False):
        """bf16=True: convolutions in bfloat16, as `--vae-bf16` (direct: on Zen 4 and Zen 5
        slower than float32's Winograd)."""
        self._native_init()
        self.path = model_path(path_or_alias)
        v = ctypes.c_void_p()
        _check(lib.moedit_vae_load(os.fsencode(self.path), ctypes.byref(v)))
        self._handle = v
        if bf16:
            _check(lib.moedit_vae_set_bf16(v, 1))
        self.scaling_factor = lib.moedit_vae_scaling_factor(v)
        self.latent_channels = lib.moedit_vae_latent_channels(v)
        self.out_channels = lib.moedit_vae_out_channels(v)
        self.upscale = lib.moedit_vae_upscale(v)

    def _free(self, handle):
        lib.moedit_vae_free(handle)

    def digest(self):
        """Model.digest() of the VAE's weights."""
        crc = ctypes.c_uint32()
        with self._lock:
            _check(lib.moedit_vae_digest(self._use(), ctypes.byref(crc)))
        return "%08x" % crc.value

    def decode(self, z, scaling_factor=None):
        """Latents as a model samples them [n, latent_c, h, w] → images
        [n, out_channels, h*up, w*up] in about [-1, 1] (unclamped). z is
        divided by scaling_factor (default: the VAE's) first, as `moedit sample` does."""
        z = np.asarray(z, dtype=np.float32)
        if z.ndim != 4 or z.shape[1] != self.latent_channels:
            raise _arg_error("z: expected [n, %d, h, w], got %s" % (self.latent_channels, z.shape))
        n, _, h, w = z.shape
        if max(n, h, w) > INT_MAX:
            raise _arg_error("z: %s is beyond the decoder's int sizes" % (z.shape,))
        sf = self.scaling_factor if scaling_factor is None else _float(scaling_factor, "scaling_factor")
        if not (np.isfinite(sf) and sf > 0):
            raise _arg_error("scaling_factor: %r must be a positive number" % (scaling_factor,))
        _finite_rows(z, "z", "NaN or inf (as float32)")   # as `moedit decode`: they only fail after the work
        zs = np.ascontiguousarray(z / np.float32(sf), dtype=np.float32)
        img = np.empty((n, self.out_channels, h * self.upscale, w * self.upscale), np.float32)
        with self._lock:
            _check(lib.moedit_vae_decode(self._use(), n, h, w, _ptr(zs, ctypes.c_float), _ptr(img, ctypes.c_float)))
        _warn_blown_up(z, None)   # latents from elsewhere, as `moedit decode` warns
        return img
