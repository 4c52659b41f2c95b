"""The library's metrics against NumPy/SciPy written from their definitions."""
import numpy as np
import pytest
import scipy.linalg

import moedit


def reference_fid(a, b):
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


@pytest.fixture
def features():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((200, 16)).astype(np.float32)
    b = (rng.standard_normal((150, 16)) * 1.3 + 0.2).astype(np.float32)
    return a, b


def test_feature_stats(features):
    a, _ = features
    mu, sigma = moedit.feature_stats(a)
    assert np.allclose(mu, a.astype(np.float64).mean(0), rtol=0, atol=1e-12)
    assert np.allclose(sigma, np.cov(a.astype(np.float64), rowvar=False), rtol=1e-12, atol=1e-12)


def test_fid(features, tmp_path):
    a, b = features
    want = reference_fid(a.astype(np.float64), b.astype(np.float64))
    assert moedit.fid(a, b) == pytest.approx(want, rel=1e-8)
    assert moedit.fid(a, a) == pytest.approx(0, abs=1e-9)
    mu, sigma = moedit.feature_stats(b)
    np.savez(tmp_path / "ref.npz", mu=mu, sigma=sigma)
    assert moedit.fid(a, str(tmp_path / "ref.npz")) == pytest.approx(want, rel=1e-8)
    assert moedit.fid(moedit.feature_stats(a), (mu, sigma)) == pytest.approx(want, rel=1e-8)


def test_inception_score():
    rng = np.random.default_rng(5)
    logits = rng.standard_normal((90, 7)).astype(np.float32) * 3

    def reference(lg):
        p = np.exp(lg - lg.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        py = p.mean(0)
        return np.exp((p * (np.log(p) - np.log(py))).sum(1).mean())

    lg = logits.astype(np.float64)
    assert moedit.inception_score(logits) == pytest.approx(reference(lg), rel=1e-6)
    split = np.mean([reference(lg[i:i + 40]) for i in range(0, 90, 40)])
    assert moedit.inception_score(logits, split_size=40) == pytest.approx(split, rel=1e-6)


def test_metric_errors():
    with pytest.raises(moedit.Error):
        moedit.feature_stats(np.zeros((1, 4), np.float32))     # needs two rows
    with pytest.raises(moedit.Error, match="statistics of dimension 3 and 4"):
        moedit.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(moedit.Error, match="statistics of dimension 8 and 9"):
        moedit.fid(np.random.RandomState(0).randn(5, 8), np.random.RandomState(1).randn(5, 9))
    with pytest.raises(moedit.Error, match="mu \\[d\\] and sigma \\[d, d\\]"):
        moedit.frechet_distance(np.zeros(3), np.eye(4), np.zeros(3), np.eye(3))
