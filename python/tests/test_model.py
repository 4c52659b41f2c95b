"""The module against the CLI: the same library underneath, so forward
outputs, sampled latents, decoded images and traces must be identical."""
import warnings

import numpy as np
import pytest

import moedit

TRACE_COLUMNS = ("step", "layer", "row", "token", "is_null", "label", "timestep", "experts", "weights")


def test_config_from_defaults_json(moe, switch):
    assert moe.config["family"] == "dit-moe" and switch.config["family"] == "switch-dit"
    assert moe.config["heads"] == 2 == moe.defaults["heads"]   # weights cannot tell; defaults.json does
    assert moe.config["num_experts"] == 8 and moe.config["top_k"] == 2
    assert moe.vae_path.endswith("fmnist-vae")


@pytest.mark.parametrize("model", ["fmnist-moe", "fmnist-switch"])
def test_forward_equals_cli(tmp_path, cli, model):
    m = moedit.Model(model)
    rng = np.random.default_rng(7)
    n = 3
    x = rng.standard_normal((n, 4, 8, 8), dtype=np.float32)
    t = np.array([0, 500, 999], np.float32)
    y = np.array([1, 9, 10], np.int64)           # 10: the guidance null class
    for name, a in (("x", x), ("t", t), ("y", y)):
        np.save(tmp_path / (name + ".npy"), a)
    cli("forward", "--model", model, "--heads", m.config["heads"], "--threads", 1, "--x", tmp_path / "x.npy",
        "--t", tmp_path / "t.npy", "--y", tmp_path / "y.npy", "--out", tmp_path / "out.npy")
    want = np.load(tmp_path / "out.npy")
    got = m.forward(x, t, y)
    assert got.shape == want.shape == (n, 8, 8, 8)
    assert np.array_equal(got, want)
    out = np.empty_like(got)
    assert m.forward(x, t, y, out=out) is out and np.array_equal(out, want)


def check_trace(tr, path):
    ref = moedit.Trace.from_file(path)
    assert len(tr) == len(ref) > 0
    for name in TRACE_COLUMNS:
        assert np.array_equal(getattr(tr, name), getattr(ref, name)), name
    if ref.probs is None:
        assert tr.probs is None
    else:
        assert np.array_equal(tr.probs, ref.probs)
    for name in ("family", "depth", "num_experts", "k", "tokens", "grid", "num_classes", "sampler", "cfg"):
        assert getattr(tr, name) == getattr(ref, name), name


@pytest.mark.parametrize("model,kwargs,flags", [
    ("fmnist-moe", dict(steps=6, seed=3), ["--steps", "6", "--seed", "3"]),
    ("fmnist-switch", dict(sampler="ddim", steps="ddim5", cfg=2, eta=0.5, seed=11, rng="native"),
     ["--sampler", "ddim", "--steps", "ddim5", "--cfg", "2", "--eta", "0.5", "--seed", "11", "--rng", "native"]),
])
def test_sample_and_trace_equal_cli(tmp_path, cli, model, kwargs, flags):
    m = moedit.Model(model)
    cli("sample", "--model", model, "--class", "0,7,9", "--threads", 1, "--no-vae",
        "--latents-out", tmp_path / "z.npy", "--trace", tmp_path / "t.trace", *flags)
    z, tr = m.sample([0, 7, 9], trace=True, **kwargs)
    assert z.dtype == np.float32 and z.shape == (3, 4, 8, 8)
    assert np.array_equal(z, np.load(tmp_path / "z.npy"))
    check_trace(tr, tmp_path / "t.trace")
    assert np.array_equal(m.sample([0, 7, 9], **kwargs), z)    # untraced: the same latents


def test_null_class_samples_unconditionally(cli, tmp_path, moe):
    # 10, the null class, as `--class 10` (it was refused here alone): both
    # halves of a guided pair are then the null row, so guidance changes nothing
    cli("sample", "--model", "fmnist-moe", "--class", "10,3", "--steps", 4, "--threads", 1, "--no-vae",
        "--latents-out", tmp_path / "z.npy")
    z = moe.sample([10, 3], steps=4)
    assert np.array_equal(z, np.load(tmp_path / "z.npy"))
    alone = moe.sample([10], steps=4)
    assert np.array_equal(moe.sample([10], steps=4, cfg=1), alone)
    assert not np.array_equal(moe.sample([3], steps=4, cfg=1), alone)


def test_class_names_as_the_cli_takes_them(cli, tmp_path, moe, switch):
    assert moe.class_names[1] == "Trouser" and len(switch.class_names) == 10
    ids = moe.class_ids(["trouser", "ankle_boot", "Sh", 3, "10"])
    assert ids.tolist() == [1, 9, 6, 3, 10]     # any case, '_' as ' ', a unique start, ids, the null class
    assert moe.class_ids("Bag").tolist() == [8]
    with pytest.raises(moedit.Error, match="classes: 'S' is ambiguous"):
        moe.class_ids(["S"])
    with pytest.raises(moedit.Error, match="classes: 'Trousers' is not a class name"):
        moe.class_ids(["Trousers"])
    with pytest.raises(moedit.Error, match="classes: 11 is outside 0..9"):
        moe.class_ids(["11"])
    out = tmp_path / "l.npy"
    cli("sample", "--class", "Bag,trouser", "--steps", "2", "--no-vae", "--latents-out", str(out))
    assert np.array_equal(moe.sample(["Bag", "trouser"], steps=2), np.load(out))


def test_trace_shape_and_counts(moe):
    z, tr = moe.sample([2], steps=4, seed=1, trace=True)
    # cfg 3 doubles the batch: 4 steps x 4 layers x 2 rows x 16 tokens
    assert len(tr) == 4 * 4 * 2 * 16 and tr.experts.shape == (len(tr), 2)
    assert set(np.unique(tr.label)) == {2, 10} and tr.is_null.sum() == len(tr) // 2
    assert np.all(tr.weights[:, 0] >= tr.weights[:, 1])
    c = tr.step_counts()
    assert c.shape == (4, 4, 8) and np.all(c.sum(axis=2) == 2 * 2 * 16)
    assert np.all(tr.step_counts(cond_only=True).sum(axis=2) == 2 * 16)
    assert np.allclose(tr.step_shares().sum(axis=2), 1)


def test_noise_and_row_seeds(moe):
    noise = np.random.default_rng(0).standard_normal((2, 4, 8, 8), dtype=np.float32)
    a = moe.sample([1, 1], steps=3, noise=noise)
    assert np.array_equal(a, moe.sample([1, 1], steps=3, noise=noise))
    assert not np.array_equal(a[0], moe.sample([1, 1], steps=3)[0])
    b = moe.sample([1, 1], steps=3, rng="native", row_seeds=[5, 6])
    c = moe.sample([1], steps=3, rng="native", row_seeds=[6])
    # a row depends on its own seed only: the same noise stream, so equal up to
    # the rounding a different batch size brings into the forward (~1e-5 seen);
    # the other seed is far away
    assert np.allclose(b[1], c[0], rtol=0, atol=1e-3)
    assert not np.allclose(b[0], c[0], rtol=0, atol=0.1)


def test_decode_equals_cli(tmp_path, cli, moe):
    z = moe.sample([4, 5], steps=3, seed=2)
    np.save(tmp_path / "z.npy", z)
    cli("decode", "--vae", "fmnist-vae", "--threads", 1, "--latent", tmp_path / "z.npy", "--out", tmp_path / "img.npy")
    vae = moedit.VAE(moe.vae_path)
    img = vae.decode(z)
    assert img.shape == (2, 1, 32, 32)
    assert np.array_equal(img, np.load(tmp_path / "img.npy"))


def test_vae_bf16_equals_cli(tmp_path, cli, moe):
    z = moe.sample([4, 5], steps=3, seed=2)
    np.save(tmp_path / "z.npy", z)
    cli("decode", "--vae", "fmnist-vae", "--threads", 1, "--latent", tmp_path / "z.npy", "--out", tmp_path / "b.npy",
        "--vae-bf16")
    f32 = moedit.VAE(moe.vae_path).decode(z)
    b16 = moedit.VAE(moe.vae_path, bf16=True).decode(z)
    assert np.array_equal(b16, np.load(tmp_path / "b.npy"))
    assert not np.array_equal(b16, f32)
    # fmnist-vae in bf16: 0.031 here; max 10 of 255 levels (0.078) over fmnist-moe's
    # 1000-sample FID set (docs/performance.md)
    assert np.abs(b16 - f32).max() <= 0.1


def test_digest_is_the_resume_states(tmp_path, cli, moe):
    """Model.digest() / VAE.digest() are what fid-sample's state records, and
    name the weights, not the file or the precision they run in."""
    run = ("fid-sample", "--model", "fmnist-moe", "--num", 2, "--batch", 2, "--steps", 2, "--threads", 1, "--npz")
    cli(*run, tmp_path / "ref.npz")
    # every batch done, the final write failed: files held a byte below the finished file's size
    cli(*run, tmp_path / "run.npz", expect=2, files_below=(tmp_path / "ref.npz").stat().st_size - 1)
    settings = (tmp_path / "run.npz.state").read_text().splitlines()[1].split()
    vae = moedit.VAE(moe.vae_path)
    assert "weights=" + moe.digest() in settings and "vae_weights=" + vae.digest() in settings
    copy = tmp_path / "copy.pt"
    copy.write_bytes(open(moe.path, "rb").read())
    with warnings.catch_warnings():   # bf16 on a CPU without it warns (test_bf16_says_what_runs)
        warnings.simplefilter("ignore")
        b16 = moedit.Model("fmnist-moe", bf16=True)
    assert moedit.Model(str(copy)).digest() == moe.digest() == b16.digest()
    assert moe.digest() != vae.digest() and len(moe.digest()) == 8


def test_blown_up_latents_warn(switch):
    # as `moedit sample` warns: the shipped Switch-DiT's cosine schedule under
    # DDIM's plain "10" starts at t=999 and blows up; "ddim10" does not
    with pytest.warns(RuntimeWarning, match=r"latents reach .*cosine schedule's step at t=999"):
        z = switch.sample([1], sampler="ddim", steps="10")
    assert np.abs(z).max() > moedit.LATENT_PEAK
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.abs(switch.sample([1], sampler="ddim", steps="ddim10")).max() < moedit.LATENT_PEAK


def test_decode_of_blown_up_latents_warns():
    # as `moedit decode` warns of latents from a file
    vae = moedit.VAE("fmnist-vae")
    z = np.zeros((1, 4, 8, 8), np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vae.decode(z)
    z[0, 1, 2, 3] = 150
    with pytest.warns(RuntimeWarning, match=r"latents reach 150 .*likely noise"):
        vae.decode(z)


def test_bf16_says_what_runs():
    # the library ignores bf16 on a CPU without AVX512-BF16: the module warns and says float32 runs
    native = bool(moedit._lib.lib.moedit_cpu_bf16())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = moedit.Model("fmnist-moe", bf16=True)
    said = [w for w in caught if "bf16=True runs float32 here: this CPU has no AVX512-BF16" in str(w.message)]
    assert m.bf16 == native and len(said) == (0 if native else 1)
    assert not moedit.Model("fmnist-moe").bf16
