"""Arguments that used to crash the interpreter, be truncated or wrap on the
way to C, or give silently wrong answers: each is refused now (moedit.Error
code 2, or ValueError for a closed object)."""
import os
import struct
import threading

import numpy as np
import pytest

import moedit

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRACE = os.path.join(SRC, "tests", "fixtures", "trace", "v1_moe.trace")


def bad(match):
    return pytest.raises(moedit.Error, match=match)


# ---- closed objects: a freed pointer used to reach the library (segfault) --------

def test_model_after_close():
    m = moedit.Model("fmnist-moe")
    m.close()
    m.close()                                       # twice: nothing
    for call in (lambda: m.forward(np.zeros((1, 4, 8, 8)), [0], [0]), m.digest, lambda: m.sample([0], steps=2),
                 m.sample_options):
        with pytest.raises(ValueError, match="Model is closed"):
            call()
    with moedit.Model("fmnist-moe") as m2:
        pass
    with pytest.raises(ValueError, match="closed"):
        m2.forward(np.zeros((1, 4, 8, 8)), [0], [0])


def test_vae_after_close():
    with moedit.VAE() as v:
        assert v.decode(np.zeros((1, 4, 8, 8))).shape == (1, 1, 32, 32)
    with pytest.raises(ValueError, match="VAE is closed"):
        v.decode(np.zeros((1, 4, 8, 8)))
    with pytest.raises(ValueError, match="VAE is closed"):
        v.digest()


# ---- one object, several threads: the library calls raced on its buffers ----------

def test_threads_sharing_a_model_run_one_at_a_time(moe):
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((8, 4, 8, 8)).astype(np.float32) for _ in range(2)]
    ts = [np.full(8, 500, np.float32), np.full(8, 100, np.float32)]
    ys = [np.arange(8) % 10, (np.arange(8) + 3) % 10]
    ref = [moe.forward(xs[i], ts[i], ys[i]) for i in range(2)]
    wrong = [0, 0]

    def work(i):
        for _ in range(100):
            wrong[i] += not np.array_equal(moe.forward(xs[i], ts[i], ys[i]), ref[i])
    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == [0, 0]


# ---- integers: floats were truncated, big values wrapped in ctypes ----------------

def test_labels_must_be_integers(moe):
    with bad("classes: ids: expected integers, got float64"):
        moe.sample([1.7], steps=2)                  # was class 1
    with bad("classes: '3x' is not a class name"):
        moe.sample(["3x"], steps=2)                 # text is a name or a decimal id, as for --class
    with bad("classes: ids: expected integers, got bool"):
        moe.sample([True], steps=2)
    with bad("y: expected integers"):
        moe.forward(np.zeros((1, 4, 8, 8)), [0.5], [1.5])
    # numpy ints, int32 arrays, object arrays of ints are fine
    a = moe.sample(np.array([1, 2], np.int32), steps=2, seed=3)
    assert np.array_equal(a, moe.sample([np.int64(1), 2], steps=2, seed=3))
    assert np.array_equal(a, moe.sample(np.array([1, 2], dtype=object), steps=2, seed=3))


def test_scalar_integers_not_truncated_or_wrapped(moe):
    with bad("seed: 1.5 is not an integer"):
        moe.sample([0], steps=2, seed=1.5)
    with bad("seed: .* is outside 0..18446744073709551615"):
        moe.sample([0], steps=2, seed=2 ** 64)      # was seed 0
    assert np.array_equal(moe.sample([0], steps=2, seed=2.0), moe.sample([0], steps=2, seed=2))
    with bad("top_k: .* is outside"):
        moedit.Model("fmnist-moe", top_k=2 ** 33)   # was 0: the default top-k
    with bad("heads: 2.5 is not an integer"):
        moedit.Model("fmnist-moe", heads=2.5)
    with bad("order: 2.5 is not an integer"):
        moe.sample([0], sampler="unipc", steps=2, order=2.5)
    f = np.random.default_rng(1).random((10, 2))
    with bad("k: .* is outside 1..2147483647"):
        moedit.precision_recall(f, f, k=2 ** 32 + 3)   # was k = 3
    with bad("k: 2.5 is not an integer"):
        moedit.precision_recall(f, f, k=2.5)
    with bad("split_size: 2.7 is not an integer"):
        moedit.inception_score(f, split_size=2.7)
    with bad("threads"):
        moedit.set_threads(2 ** 32 + 1)             # was 1 thread


def test_row_seeds(moe):
    with bad("row_seeds need rng='native'"):
        moe.sample([0], steps=2, row_seeds=[5])     # was ignored by the torch generator
    with bad("row_seeds: values must be in 0"):
        moe.sample([0], steps=2, rng="native", row_seeds=[-1])   # was 2**64 - 1
    with bad("row_seeds: expected integers"):
        moe.sample([0], steps=2, rng="native", row_seeds=[1.5])


def test_other_argument_types_raise_error(moe):
    with bad("eta: 'x' is not a number"):
        moe.sample([0], sampler="ddim", steps=2, eta="x")
    with bad("cfg_interval"):
        moe.sample([0], steps=2, cfg_interval=5)
    with bad("out: expected a writeable"):
        moe.forward(np.zeros((1, 4, 8, 8)), [1], [1], out=[0.0])


# ---- forward: as `moedit forward` --------------------------------------------------

@pytest.mark.filterwarnings("ignore:overflow encountered in cast")
def test_forward_refuses_non_finite_x(moe):
    x = np.zeros((2, 4, 8, 8), np.float32)
    x[1, 0, 0, 0] = np.inf
    with bad(r"x: NaN or inf \(as float32\) in 1 of 2 rows: 1"):
        moe.forward(x, [1, 1], [1, 1])              # was NaN rows returned
    with bad("x: NaN or inf"):
        moe.forward(np.full((1, 4, 8, 8), 1e39), [1], [1])   # float64 beyond float32


def test_forward_names_the_shape_it_needs(moe):
    with bad(r"x: expected shape \(n,\) \+ \(4, 8, 8\), got \(1, 1\)"):
        moe.forward([[0.0]], [1], [1])              # said "expected shape (0, 4, 8, 8)"


# ---- decode: as `moedit decode` ----------------------------------------------------

@pytest.mark.parametrize("sf", [0, -1, float("nan"), "x"])
def test_decode_refuses_bad_scaling_factor(sf):
    with moedit.VAE() as vae:
        with bad("scaling_factor"):
            vae.decode(np.zeros((1, 4, 8, 8), np.float32), scaling_factor=sf)   # was NaN images, then an error


def test_decode_refuses_non_finite_latents():
    z = np.zeros((2, 4, 8, 8), np.float32)
    z[1, 2, 3, 4] = np.nan
    with moedit.VAE() as vae:
        with bad(r"z: NaN or inf \(as float32\) in 1 of 2 rows: 1"):
            vae.decode(z)


def test_forward_refuses_read_only_out(moe):
    out = np.zeros((1, 8, 8, 8), np.float32)
    out.flags.writeable = False
    with bad("out: expected a writeable"):
        moe.forward(np.zeros((1, 4, 8, 8)), [1], [1], out=out)   # was written into
    assert not out.any()


# ---- metrics: NaN rows gave numbers (library checks them now) ----------------------

@pytest.mark.filterwarnings("ignore:overflow encountered in cast")
def test_metrics_refuse_non_finite_rows():
    f = np.random.default_rng(2).random((10, 2))
    g = f.copy()
    g[3, 1] = np.nan
    with bad("precision/recall: the reference features hold NaN or inf in rows 3"):
        moedit.precision_recall(g, f)               # was (1.0, 1.0)
    with bad("the sample features hold NaN or inf"):
        moedit.precision_recall(f, g)
    with bad("inception score: the logits hold NaN or inf in rows 3"):
        moedit.inception_score(g)                   # was 1.0
    with bad("feature stats: the features hold NaN or inf in rows 3"):
        moedit.feature_stats(g)                     # was NaN mu and sigma
    with bad("NaN or inf in rows 0, 1"):
        moedit.feature_stats([[1e39, 1], [-1e39, 2]])


def test_npz_problems_raise_error(tmp_path):
    f = np.random.default_rng(3).random((10, 3))
    np.savez(tmp_path / "a.npz", a=1)
    with bad("a.npz: no mu or sigma"):
        moedit.fid(str(tmp_path / "a.npz"), f)      # was KeyError
    (tmp_path / "b.npz").write_bytes(b"garbage")
    with bad("b.npz"):
        moedit.fid(str(tmp_path / "b.npz"), f)      # was ValueError about pickles
    with bad("none.npz"):
        moedit.fid(str(tmp_path / "none.npz"), f)   # was FileNotFoundError
    np.savez(tmp_path / "c.npz", mu=np.zeros(3))
    with bad("mu without sigma"):
        moedit.evaluate((f, f, f), (f, f), ref_stats=str(tmp_path / "c.npz"))
    with bad("evaluate: samples"):
        moedit.evaluate((f, f), (f, f))


# ---- Inception: float images were cast to uint8 (0.5 → 0, 300 → 44, -1 → 255) -----

def test_inception_images_must_be_bytes(inception):
    ref = inception.features(np.zeros((1, 8, 8, 3), np.uint8))
    assert np.array_equal(inception.features(np.zeros((1, 8, 8, 3), np.int64)), ref)   # integer 0..255: fine
    for images, match in ((np.full((1, 8, 8, 3), 0.5), "expected integers, got float64"),
                          (np.full((1, 8, 8, 3), 300), r"values must be in 0..255"),
                          (np.full((1, 8, 8, 3), -1), r"values must be in 0..255")):
        with bad(match):
            inception.features(images)
        with bad(match):
            inception.adm_features(images)
    with bad("preprocess: None"):
        inception.adm_features(np.zeros((1, 8, 8, 3), np.uint8), preprocess=None)


def test_inception_after_close(inception_path):
    with moedit.Inception(inception_path) as net:
        assert net.features(np.zeros((1, 8, 8, 3), np.uint8)).shape == (1, 2048)
    with pytest.raises(ValueError, match="Inception is closed"):
        net.features(np.zeros((1, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="Inception is closed"):
        net.adm_features(np.zeros((1, 8, 8, 3), np.uint8))


# ---- trace files: read by the library, with the checks `moedit heatmap` makes -------

def _mutated(tmp_path, edits):
    d = bytearray(open(TRACE, "rb").read())
    for off, fmt, v in edits:
        struct.pack_into(fmt, d, off, v)
    p = tmp_path / "m.trace"
    p.write_bytes(bytes(d))
    return str(p)


@pytest.mark.parametrize("edits, match", [
    ([(20, "<I", 7)], "unknown model family 7"),                       # was IndexError
    ([(32, "<I", 0)], "bad top-k 0"),                                  # was read, k = 0
    ([(32, "<I", 3)], "record size 36, expected 40"),                  # was numpy ValueError
    ([(12, "<I", 92), (56, "<Q", 5)], "bad header size 92"),           # was the header read as a record
    ([(24, "<I", 0)], "bad depth 0"),
    ([(128 + 24, "<B", 200)], "record 0: expert 200 out of range"),        # was IndexError in step_counts
    ([(128 + 25, "<B", 3), (128 + 24, "<B", 3)], "record 0: expert 3 chosen twice"),
    ([(128 + 8, "<H", 50)], "record 0: layer 50 out of range"),
    ([(128 + 0, "<I", 2 ** 31 + 5)], "record 0: step 2147483653 out of range"),   # was a negative step
    ([(128 + 20, "<i", -4)], "record 0: label -4 out of range"),
    ([(72, "16s", b"\xff" * 16)], "sampler name not terminated"),      # was UnicodeDecodeError
    ([(68, "<f", float("nan"))], "guidance scale is not finite"),
])
def test_trace_file_checked(tmp_path, edits, match):
    with bad(match):
        moedit.Trace.from_file(_mutated(tmp_path, edits))


def test_trace_file_missing(tmp_path):
    with bad("none.trace"):
        moedit.Trace.from_file(str(tmp_path / "none.trace"))
    t = moedit.Trace.from_file(TRACE)
    assert len(t) == 4 and t.family == "dit-moe"


# ---- row counts beyond the C API's int: refused before anything is copied -------
# (zero-strided views: 2**31 rows of nothing, as numpy's broadcast_to makes them)

def test_row_counts_beyond_int_refused(moe, inception):
    rows = 2 ** 31
    with bad("x: 2147483648 rows, at most 2147483647 in one forward"):
        moe.forward(np.broadcast_to(np.float32(0), (rows, 4, 8, 8)), np.zeros(1), [0])
    with bad("classes: 2147483648 rows, at most 2147483647 in one call"):
        moe.sample(np.broadcast_to(np.int64(0), (rows,)), steps=2)
    vae = moedit.VAE("fmnist-vae")
    with bad(r"z: \(2147483648, 4, 8, 8\) is beyond the decoder's int sizes"):
        vae.decode(np.broadcast_to(np.float32(0), (rows, 4, 8, 8)))
    for call in (inception.features, inception.adm_features):
        with bad(r"images: expected uint8 \[n, h, w, 1 or 3\], got \(2147483648, 8, 8, 3\)"):
            call(np.broadcast_to(np.uint8(0), (rows, 8, 8, 3)))


def test_guidance_interval_beside_the_timesteps_refused(moe):
    # as `moedit sample --cfg-interval 2000,3000`: it guided nothing, silently
    with bad(r"guidance interval \[2000, 3000\] holds none of the timesteps 0..999"):
        moe.sample([0], sampler="dpm++2m", steps=2, cfg_interval=(2000, 3000))
    assert moe.sample([0], sampler="dpm++2m", steps=2, cfg_interval=(-5, 3000)).shape == (1, 4, 8, 8)
    # within 0..999 but between the run's integer timesteps: it too guided nothing
    with bad(r"guidance interval \[0.2, 0.8\] holds none of the 2 model evaluations' times \(999 down to 0\)"):
        moe.sample([0], sampler="ddim", steps=2, cfg_interval=(0.2, 0.8))
