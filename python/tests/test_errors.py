"""Library failures become moedit.Error carrying moedit_last_error()."""
import os

import numpy as np
import pytest

import moedit


def test_missing_checkpoint(tmp_path):
    with pytest.raises(moedit.Error) as e:
        moedit.Model(str(tmp_path / "none.pt"))
    assert e.value.code == 2 and "none.pt" in str(e.value)


def test_corrupt_checkpoint_message_from_library(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"PK\x03\x04 this is not a zip archive")
    with pytest.raises(moedit.Error) as e:
        moedit.Model(str(bad))
    assert e.value.code == 2 and str(bad) in str(e.value)
    assert str(e.value) == moedit._lib.lib.moedit_last_error().decode()


def test_missing_vae(tmp_path):
    with pytest.raises(moedit.Error, match="nowhere"):
        moedit.VAE(str(tmp_path / "nowhere"))


def test_moedit_models_searched_first(monkeypatch, tmp_path):
    # MOEDIT_MODELS is searched first; an empty folder there falls through to the others
    monkeypatch.setenv("MOEDIT_MODELS", str(tmp_path))
    assert moedit.model_path("fmnist-moe").endswith("fmnist-moe/model.pt")
    os.makedirs(tmp_path / "fmnist-moe")
    (tmp_path / "fmnist-moe" / "model.pt").write_bytes(b"x")
    assert moedit.model_path("fmnist-moe") == str(tmp_path / "fmnist-moe" / "model.pt")
    assert moedit.model_path("my.pt") == "my.pt"


def test_bad_arguments(moe):
    with pytest.raises(moedit.Error, match=r"classes: ids: values must be in 0..10 \(got 11..11\)"):
        moe.sample([11])
    with pytest.raises(moedit.Error, match="x: expected shape"):
        moe.forward(np.zeros((1, 3, 8, 8)), [0], [0])
    with pytest.raises(moedit.Error, match="sampler"):
        moe.sample([0], sampler="euler")
    with pytest.raises(moedit.Error, match="eta"):
        moe.sample([0], eta=0.5)        # DDPM takes no eta
    with pytest.raises(moedit.Error, match=r"eta: 1.5 is not in \[0, 1\]"):
        moe.sample([0], sampler="ddim", eta=1.5)
    with pytest.raises(moedit.Error, match="cfg"):
        moe.sample([0], cfg=0.5)


def test_bad_steps_from_library(moe):
    # the respacing is parsed by the library: its message comes through
    with pytest.raises(moedit.Error) as e:
        moe.sample([0], steps="ddimx")
    assert e.value.code == 2 and "ddimx" in str(e.value)


def test_steps_refused_by_the_files_sampler_name_it(moe):
    # fmnist-moe's defaults.json picks dpm++2m-sde, which takes no respacing
    with pytest.raises(moedit.Error) as e:
        moe.sample([0], steps="ddim5")
    want = '(the sampler from %s "sampler"; sampler= picks another)' % os.path.join(
        os.path.dirname(moe.path), "defaults.json")
    assert e.value.code == 2 and str(e.value).startswith("steps: dpm++2m-sde takes a plain step count")
    assert str(e.value).endswith(want)
    with pytest.raises(moedit.Error) as e:   # a sampler named by the caller is its own
        moe.sample([0], sampler="dpm++2m", steps="ddim5")
    assert "sampler from" not in str(e.value)


def test_model_still_usable_after_error(moe):
    with pytest.raises(moedit.Error):
        moe.sample([0], steps="0")
    assert moe.sample([0], steps=2).shape == (1, 4, 8, 8)
