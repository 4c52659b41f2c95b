"""The ADM evaluator from Python against the answers of the independent
reference (tools/adm_evaluator_reference.py, stored by
tools/make_eval_fixtures.py in tests/fixtures/eval/), on the counter-based
Inception weights (seed 0) of tools/inception_counter_weights.py."""
import os

import numpy as np
import pytest

import moedit

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(SRC, "tests", "fixtures")
EVAL = os.path.join(FIXTURES, "eval")


def images(name):
    return np.load(os.path.join(EVAL, name + ".npz"))["arr_0"]


def rel_error(got, want):
    return float(np.abs(got - want).max() / np.abs(want).max())


def test_adm_features_match_pytorch(inception):
    pool, spatial, logits = inception.adm_features(images("samples"))
    want = np.load(os.path.join(EVAL, "features_adm.npz"))
    assert rel_error(pool, want["pool"]) < 1e-3
    assert rel_error(spatial, want["spatial"]) < 1e-3
    assert rel_error(logits, want["logits"]) < 1e-3
    # the preprocessing matters: pytorch-fid's resize gives other features
    assert rel_error(inception.adm_features(images("samples"), "pytorch-fid")[0], want["pool"]) > 1e-3
    with pytest.raises(moedit.Error):
        inception.adm_features(images("samples"), "tf2")


def test_digest_is_the_feature_files(inception, inception_path, tmp_path, cli):
    """Inception.digest() is what eval's feature files record as `inception`,
    and names the weights, not the file."""
    cli("eval", "--inception", inception_path, "--samples", os.path.join(EVAL, "samples.npz"),
        "--features-out", tmp_path / "f.npz")
    with np.load(tmp_path / "f.npz") as f:
        assert "%08x" % int(f["inception"][0]) == inception.digest()
    copy = tmp_path / "copy.safetensors"
    copy.write_bytes(open(inception_path, "rb").read())
    with moedit.Inception(str(copy)) as again:
        assert again.digest() == inception.digest() and len(inception.digest()) == 8


def check_row(got, row):
    """The tolerances of tests/cli_eval.c: 1e-3 relative, Precision/Recall to 0.01."""
    want = np.load(os.path.join(EVAL, "expected.npy"))[row]
    for i, key in enumerate(("inception_score", "fid", "sfid")):
        assert got[key] == pytest.approx(want[i], rel=1e-3), key
    assert got["precision"] == pytest.approx(want[3], abs=0.01)
    assert got["recall"] == pytest.approx(want[4], abs=0.01)


def test_evaluate_matches_the_evaluator(inception, tmp_path):
    s = inception.adm_features(images("samples"))
    r = inception.adm_features(images("ref"))
    check_row(moedit.evaluate(s, r[:2]), 0)
    check_row(moedit.evaluate(s, r[:2], split_size=3), 4)
    check_row(moedit.evaluate(r, s[:2]), 5)
    # stored statistics (an ADM reference batch) win for FID and sFID, not for Precision/Recall
    o = inception.adm_features(images("other"))
    (mu, sigma), (mu_s, sigma_s) = moedit.feature_stats(o[0]), moedit.feature_stats(o[1])
    np.savez(tmp_path / "both.npz", mu=mu, sigma=sigma, mu_s=mu_s, sigma_s=sigma_s)
    np.savez(tmp_path / "pool_only.npz", mu=mu, sigma=sigma)
    check_row(moedit.evaluate(s, r[:2], ref_stats=tmp_path / "both.npz"), 2)
    check_row(moedit.evaluate(s, r[:2], ref_stats=tmp_path / "pool_only.npz"), 3)
    with pytest.raises(moedit.Error):
        moedit.evaluate(s, (r[0], None))


def reference_precision_recall(ref, samples, k):
    """ManifoldEstimator by its definition: radius = k-th neighbour's squared distance (self at 0 excluded)."""
    def d2(a, b):
        return ((a[:, None, :].astype(np.float64) - b[None, :, :]) ** 2).sum(-1)
    r_radii = np.sort(d2(ref, ref), 1)[:, k]
    s_radii = np.sort(d2(samples, samples), 1)[:, k]
    cross = d2(ref, samples)
    precision = (cross <= r_radii[:, None]).any(0).mean()
    recall = (cross <= s_radii[None, :]).any(1).mean()
    return precision, recall


def test_precision_recall_by_definition():
    rng = np.random.default_rng(11)
    ref = rng.standard_normal((300, 24)).astype(np.float32)
    samples = (rng.standard_normal((250, 24)) * 1.4 + 0.3).astype(np.float32)
    for k in (1, 3, 5):
        p, r = moedit.precision_recall(ref, samples, k)
        want_p, want_r = reference_precision_recall(ref, samples, k)
        assert 0 < want_p < 1 and 0 < want_r < 1
        # float32 distances against float64 may move one point across a radius
        assert (p, r) == pytest.approx((want_p, want_r), abs=1.5 / 250)
    with pytest.raises(moedit.Error):
        moedit.precision_recall(ref[:3], samples, 3)     # needs more than k rows
    with pytest.raises(moedit.Error):
        moedit.precision_recall(ref, samples[:, :10])
