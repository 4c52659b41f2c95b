"""The counter-based InceptionV3 test weights in NumPy alone (no torch), so
that tools/inception_reference.py and the Python module's tests
(python/tests/test_evaluate.py) build the same values; tests/fid_weights.h
computes them identically in C:

  stream = fnv1a64(tensor name) ^ (seed * 0x9E3779B97F4A7C15)
  u_j    = (splitmix64(stream + (j + 1) * 0x9E3779B97F4A7C15) >> 40) / 2^24
  value  = float32(lo + (hi - lo) * u_j)      (computed in double)

with [lo, hi] chosen per kind of tensor so that activations neither vanish
nor explode through 94 conv layers (He-uniform convs, BN stats near 1/0).
"""
import numpy as np

M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def fnv1a64(s):
    h = 0xCBF29CE484222325
    for b in s.encode():
        h = ((h ^ b) * 0x100000001B3) & M64
    return h


def uniform_stream(name, seed, n):
    """u_j in [0, 1), j = 0..n-1, as float64 (exact 24-bit values)."""
    stream = np.uint64(fnv1a64(name) ^ ((seed * GOLDEN) & M64))
    with np.errstate(over="ignore"):
        j = np.arange(1, n + 1, dtype=np.uint64)
        z = stream + j * np.uint64(GOLDEN)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(40)).astype(np.float64) / float(1 << 24)


def value_range(name, shape):
    """[lo, hi] of the uniform values of a tensor, from its key name."""
    if name.endswith("conv.weight"):
        fan_in = int(np.prod(shape[1:]))
        b = float(np.sqrt(6.0 / fan_in))
        return -b, b
    if name == "fc.weight":
        b = float(np.sqrt(3.0 / shape[1]))
        return -b, b
    if name.endswith("bn.weight") or name.endswith("running_var"):
        return 0.8, 1.2
    return -0.1, 0.1   # bn.bias, running_mean, fc.bias


def counter_values(name, shape, seed):
    """The float32 values of one tensor."""
    lo, hi = value_range(name, tuple(shape))
    u = uniform_stream(name, seed, int(np.prod(shape)))
    return (lo + (hi - lo) * u).astype(np.float32).reshape(shape)
