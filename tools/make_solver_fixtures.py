#!/usr/bin/python3
"""Writes tests/fixtures/solver/: reference runs of the few-step solvers
(tools/solver_reference.py) and of DDPM / DDIM / flow with a guidance
interval (tools/sampler_reference.py) on the tiny dense DiT, DiT-MoE,
Switch-DiT and rectified-flow DiT-MoE checkpoints, for tests/sampler_solvers.c
and tests/cli_solvers.c.

Run with Debian's python (torch 1.13, numpy):
    /usr/bin/python3 tools/make_solver_fixtures.py
"""
import json
import os
import shutil
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import sampler_reference as sr  # noqa: E402
import solver_reference as so  # noqa: E402
from dit_reference import build_model  # noqa: E402

ROOT = os.path.join(HERE, "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "solver")
# frozen copies, so that regenerating tests/fixtures/dit cannot silently
# invalidate these runs (tests/fixtures/sampler/ keeps the other three)
MODELS = {
    "dit": os.path.join(OUT, "model_dit"),
    "moe": os.path.join(ROOT, "tests", "fixtures", "sampler", "model_moe_top2"),
    "switch": os.path.join(ROOT, "tests", "fixtures", "sampler", "model_switch_dmoe"),
    "flow": os.path.join(ROOT, "tests", "fixtures", "sampler", "model_moe_qknorm"),
}
LABELS = [1, 7]

# name, model, solver, steps, cfg, interval, spacing, karras, order, torch-rng seed (None: noise file)
# keep in step with the table in tests/sampler_solvers.c
RUNS = []
for _m in ("dit", "moe", "switch"):
    for _s in ("dpm++2m", "dpm++3m", "unipc"):
        _t = _s.replace("+", "p")
        RUNS += [
            (f"{_m}_{_t}_8", _m, _s, 8, 1.0, None, "linspace", False, None, None),
            (f"{_m}_{_t}_16_cfg4", _m, _s, 16, 4.0, None, "linspace", False, None, None),
            (f"{_m}_{_t}_12_cfg4_iv", _m, _s, 12, 4.0, (200.0, 700.0), "linspace", False, None, None),
        ]
RUNS += [
    ("moe_dpmp2m_10_cfg4_karras", "moe", "dpm++2m", 10, 4.0, None, "linspace", True, None, None),
    ("dit_unipc_8_karras", "dit", "unipc", 8, 1.0, None, "linspace", True, None, None),
    ("moe_dpmp3m_10_cfg15_leading", "moe", "dpm++3m", 10, 1.5, None, "leading", False, None, None),
    ("moe_unipc_10_cfg4_trailing", "moe", "unipc", 10, 4.0, None, "trailing", False, None, None),
    ("switch_dpmp2m_10_cfg4_leading", "switch", "dpm++2m", 10, 4.0, None, "leading", False, None, None),
    ("moe_unipc3_12_cfg4", "moe", "unipc", 12, 4.0, None, "linspace", False, 3, None),
    ("moe_unipc1_10_cfg4", "moe", "unipc", 10, 4.0, None, "linspace", False, 1, None),
    ("dit_unipc3_16_iv", "dit", "unipc", 16, 4.0, (0.0, 500.0), "linspace", False, 3, None),
    ("moe_dpmp2msde_10_cfg4_torch", "moe", "dpm++2m-sde", 10, 4.0, None, "linspace", False, None, 3),
    ("switch_dpmp2msde_12_iv_torch", "switch", "dpm++2m-sde", 12, 4.0, (300.0, 900.0), "leading", False, None, 5),
    ("flow_heun_8_cfg2", "flow", "heun", 8, 2.0, None, None, False, None, None),
    ("flow_midpoint_8_cfg2_iv", "flow", "midpoint", 8, 2.0, (0.3, 0.8), None, False, None, None),
    ("flow_heun_6_torch", "flow", "heun", 6, 3.0, (0.0, 0.6), None, False, None, 9),
]
# the older samplers with an interval (tools/sampler_reference.py)
# name, model, kind, steps, cfg, interval, torch-rng seed (None: noise file)
OLD_RUNS = [
    ("moe_ddim10_cfg4_iv", "moe", "ddim", "10", 4.0, (250.0, 650.0), None),
    ("moe_ddpm12_cfg4_iv_torch", "moe", "ddpm", "12", 4.0, (250.0, 650.0), 1234),
    ("switch_ddpm10_cfg4_iv_torch", "switch", "ddpm", "ddim10", 4.0, (0.0, 450.0), 7),
    ("flow_flow8_cfg2_iv", "flow", "flow", "8", 2.0, (0.3, 0.8), None),
]


def load(key):
    base = MODELS[key]
    with open(base + ".json") as f:
        cfg = json.load(f)
    kw = dict(input_size=cfg["input_size"], patch_size=cfg["patch"], in_channels=cfg["in_channels"],
              hidden_size=cfg["hidden"], depth=cfg["depth"], num_heads=cfg["heads"],
              num_classes=cfg["num_classes"], learn_sigma=cfg["learn_sigma"])
    if cfg["family"] == "dit-moe":
        kw.update(num_experts=cfg["num_experts"], num_experts_per_tok=cfg["top_k"],
                  pretraining_tp=cfg["pretraining_tp"], attention=cfg["attention"])
        kind = "moe"
    elif cfg["family"] == "switch-dit":
        kw.update(routing="DMoE", num_experts=cfg["num_experts"], num_experts_per_tok=cfg["top_k"],
                  taskcount=cfg["taskcount"])
        kind = "switch"
    else:
        kind = "dit"
    model = build_model(kind, **kw).eval()
    model.load_state_dict(torch.load(base + ".pt", map_location="cpu"))
    return model, cfg


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    for ext in (".pt", ".json"):
        shutil.copyfile(os.path.join(ROOT, "tests", "fixtures", "dit", "dit" + ext), MODELS["dit"] + ext)
    models = {k: load(k) for k in MODELS}
    shape = (4, 8, 8)
    noise = torch.from_numpy(np.random.RandomState(21).randn(len(LABELS), *shape).astype(np.float32))
    np.save(os.path.join(OUT, "noise.npy"), noise.numpy())
    for name, key, solver, steps, cfg, iv, spacing, karras, order, seed in RUNS:
        model, mc = models[key]
        switch = mc["family"] == "switch-dit"
        with torch.no_grad():
            z, evals = so.sample(lambda x, t, y: model(x, t, y), solver, steps, LABELS, shape, mc["num_classes"],
                                 cfg=cfg, cfg_channels=0 if switch or key == "flow" else 3, interval=iv,
                                 cosine=switch, spacing=spacing or "linspace", karras=karras, order=order,
                                 seed=seed or 0, noise=None if seed is not None else noise)
        assert evals == steps, (name, evals)
        np.save(os.path.join(OUT, name + ".npy"), z.numpy())
        print(name, "max |z| %.3f" % z.abs().max().item())
    for name, key, kind, steps, cfg, iv, seed in OLD_RUNS:
        model, mc = models[key]
        switch = mc["family"] == "switch-dit"
        with torch.no_grad():
            z = sr.sample(lambda x, t, y: model(x, t, y), kind, steps, LABELS, shape, mc["num_classes"], cfg=cfg,
                          cfg_channels=0 if switch or kind == "flow" else 3, cosine=switch, seed=seed or 0,
                          noise=None if seed is not None else noise, interval=iv)
        np.save(os.path.join(OUT, name + ".npy"), z.numpy())
        print(name, "max |z| %.3f" % z.abs().max().item())


if __name__ == "__main__":
    main()
