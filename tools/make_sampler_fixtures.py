#!/usr/bin/python3
"""Writes tests/fixtures/sampler/: torch.randn values, schedule tables and
reference sampling runs (toy denoiser and the tiny DiT-MoE fixtures of
tests/fixtures/dit/) for tests/sampler_*.c and tests/cli_sample.c.

Run with Debian's python (torch 1.13, numpy):
    /usr/bin/python3 tools/make_sampler_fixtures.py
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

ROOT = os.path.join(HERE, "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "sampler")
DIT = os.path.join(ROOT, "tests", "fixtures", "dit")

RNG_SEEDS = [0, 1234, 2024]
RNG_SIZES = [1, 7, 15, 16, 17, 31, 1000]

# schedule tables: (file name, spec, cosine)
SPACINGS = [("lin_250", "250", False), ("lin_10_10_10", "10,10,10", False),
            ("lin_ddim25", "ddim25", False), ("lin_1", "1", False),
            ("lin_3_5", "3,5", False), ("cos_12", "12", True),
            ("cos_ddim10", "ddim10", True), ("lin_6_3", "6,3,4,4", False)]

# toy runs; keep in step with the table in tests/sampler_loop.c
TOY = [
    # name, kind, steps, cfg, cfg_channels, eta, cosine, learn_sigma, seed, noise?
    ("ddpm_learned_cfg", "ddpm", "12", 1.5, 3, 0.0, False, True, 1234, False),
    ("ddpm_fixed_nocfg", "ddpm", "10,5", 1.0, 3, 0.0, False, False, 7, False),
    ("ddpm_cosine_all", "ddpm", "25", 1.5, 0, 0.0, True, True, 99, False),
    ("ddim_eta0_cfg4", "ddim", "ddim10", 4.0, 3, 0.0, False, True, 0, True),
    ("ddim_eta05_cos", "ddim", "8", 2.0, 0, 0.5, True, True, 5, False),
    ("flow_cfg2_noise", "flow", "8", 2.0, 0, 0.0, False, True, 0, True),
    ("flow_cfg3_torch", "flow", "6", 3.0, 0, 0.0, False, False, 3, False),
]
TOY_LABELS = [3, 0, 9]
TOY_SHAPE = (2, 3, 3)   # C, H, W: 18 values a row, so torch.randn redraws a tail block
TOY_CLASSES = 10


def save(name, arr):
    np.save(os.path.join(OUT, name + ".npy"), arr)


def make_rng():
    for seed in RNG_SEEDS:
        vals = []
        for size in RNG_SIZES:
            torch.manual_seed(seed)
            vals.append(torch.randn(size))
        save(f"rng_s{seed}", torch.cat(vals).numpy())
    # the cached second Box-Muller value carries across calls
    torch.manual_seed(42)
    seq = [torch.randn(3), torch.randn(1), torch.randn(20), torch.randn(5), torch.randn(2, 3)]
    save("rng_seq", torch.cat([s.reshape(-1) for s in seq]).numpy())


def make_schedules():
    save("betas_linear", sr.betas_linear())
    save("betas_cosine", sr.betas_cosine())
    for name, spec, cosine in SPACINGS:
        save("sched_" + name, sr.Respaced(spec, cosine).table())


def make_toy():
    C = TOY_SHAPE[0]
    noise = torch.from_numpy(np.random.RandomState(11).randn(len(TOY_LABELS), *TOY_SHAPE).astype(np.float32))
    save("toy_noise", noise.numpy())
    for name, kind, steps, cfg, k, eta, cosine, learn_sigma, seed, use_noise in TOY:
        fn = sr.toy_model(2 * C if learn_sigma else C, TOY_CLASSES)
        z = sr.sample(fn, kind, steps, TOY_LABELS, TOY_SHAPE, TOY_CLASSES, cfg=cfg,
                      cfg_channels=k, eta=eta, cosine=cosine, seed=seed,
                      noise=noise if use_noise else None)
        save("toy_" + name, z.numpy())


def load_model(variant):
    """The reference model of a tests/fixtures/dit/ checkpoint, copied into
    tests/fixtures/sampler/ so that regenerating those fixtures cannot
    silently invalidate these runs."""
    from dit_reference import build_model
    for ext in (".pt", ".json"):
        shutil.copyfile(os.path.join(DIT, variant + ext), os.path.join(OUT, "model_" + variant + ext))
    with open(os.path.join(OUT, "model_" + variant + ".json")) as f:
        cfg = json.load(f)
    kw = dict(input_size=cfg["input_size"], patch_size=cfg["patch"], in_channels=cfg["in_channels"],
              hidden_size=cfg["hidden"], depth=cfg["depth"], num_heads=cfg["heads"],
              num_classes=cfg["num_classes"], learn_sigma=cfg["learn_sigma"])
    if cfg["family"] == "dit-moe":
        kw.update(num_experts=cfg["num_experts"], num_experts_per_tok=cfg["top_k"],
                  pretraining_tp=cfg["pretraining_tp"], attention=cfg["attention"])
        kind = "moe"
    elif cfg["routing"] == "dmoe":
        kw.update(routing="DMoE", num_experts=cfg["num_experts"], num_experts_per_tok=cfg["top_k"],
                  taskcount=cfg["taskcount"])
        kind = "switch"
    else:
        raise ValueError(variant)
    model = build_model(kind, **kw).eval()
    sd = torch.load(os.path.join(OUT, "model_" + variant + ".pt"), map_location="cpu")
    model.load_state_dict(sd)
    return model, cfg


# real-model runs; keep in step with tests/cli_sample.c
MODEL_RUNS = [
    # name, fixture, kind, steps, cfg, seed, noise?  (Switch-DiT: cosine, all channels)
    ("moe_ddim10_cfg4", "moe_top2", "ddim", "10", 4.0, 0, True),
    ("moe_ddpm12_cfg15", "moe_top2", "ddpm", "12", 1.5, 1234, False),
    ("qknorm_flow8_cfg2", "moe_qknorm", "flow", "8", 2.0, 0, True),
    ("switch_ddpm10_cfg15", "switch_dmoe", "ddpm", "10", 1.5, 7, False),
]
MODEL_LABELS = [1, 7]


def make_model_runs():
    for name, variant, kind, steps, cfg, seed, use_noise in MODEL_RUNS:
        model, mc = load_model(variant)
        shape = (mc["in_channels"], mc["input_size"], mc["input_size"])
        noise = None
        if use_noise:
            noise = torch.from_numpy(np.random.RandomState(5).randn(len(MODEL_LABELS), *shape).astype(np.float32))
            save(name + "_noise", noise.numpy())
        switch = mc["family"] == "switch-dit"
        with torch.no_grad():
            z = sr.sample(lambda x, t, y: model(x, t, y), kind, steps, MODEL_LABELS, shape,
                          mc["num_classes"], cfg=cfg, cfg_channels=0 if switch or kind == "flow" else 3,
                          cosine=switch, seed=seed, noise=noise)
        save(name, z.numpy())
        print(name, "max |z| %.3f" % z.abs().max().item())


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    make_rng()
    make_schedules()
    make_toy()
    make_model_runs()


if __name__ == "__main__":
    main()
