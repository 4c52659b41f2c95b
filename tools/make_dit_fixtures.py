"""Writes the transformer test fixtures of moedit into tests/fixtures/dit/.

Usage:
    /usr/bin/python3 tools/make_dit_fixtures.py [--out tests/fixtures/dit] [--only dit,moe_top2]

Deterministic (fixed seeds).  For every variant V in
    dit, moe_top2, moe_top1, moe_qknorm, switch_dmoe, switch_dtr, moe_wide
it writes
    V.pt              torch.save(model.state_dict()), upstream key names/shapes
    V.json            config (depth, hidden, heads, patch, input_size, ...)
    V_x.npy  f32 [N,C,H,W]   V_t.npy f32 [N]   V_y.npy i64 [N] (contains the null id)
    V_out.npy f32 [N,out_C,H,W]  = model(x, t, y), eval mode, float32
    V_c.npy   f32 [N,D]          conditioning c = t_emb + y_emb
    V_h.npy   f32 [depth+1,N,T,D] residual stream after x_embedder+pos_embed and after
                                  every block (for debugging a C forward layer by layer)
DiT-MoE variants also write
    V_routes.npy i64 [depth,N,T,k]  chosen expert ids, sorted by descending weight
    V_route_weights.npy f32 [depth,N,T,k]  their raw softmax probabilities
switch_dmoe also writes (routing depends on the row's timestep only)
    V_routes.npy i64 [depth,N,k], V_route_weights.npy f32 [depth,N,k],
    V_gate_probs.npy f32 [depth,N,E]
moe_qknorm_f16.pt / dit_bf16.pt: the same weights stored as F16 / BF16 (int64 buffers
untouched), with moe_qknorm_f16_out.npy / dit_bf16_out.npy = float32 forward of the
rounded weights on the same inputs.
moe_top2 also writes moe_top2_train.pt, a train.py-style checkpoint
    {"model": other weights, "ema": the weights of moe_top2.pt, "opt": AdamW
     state after one real step, "args": argparse.Namespace(...)}
and dit also writes dit_pos_embed_sincos.npy f32 [T,D] (the plain 2-D sin-cos table;
the pos_embed stored in every fixture checkpoint is that table PLUS noise, so a
loader that recomputes instead of reading the stored tensor fails the test).
"""
import argparse
import collections
import copy
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dit_reference import build_model, sincos_pos_embed_2d  # noqa: E402

N = 4

# name -> (kind, constructor kwargs, timesteps)
INT_T = [999.0, 640.0, 37.0, 0.0]
VARIANTS = {
    "dit": ("dit", dict(depth=2, hidden_size=32, num_heads=4, learn_sigma=True), INT_T),
    "moe_top2": ("moe", dict(depth=2, hidden_size=16, num_heads=2, num_experts=6,
                             num_experts_per_tok=2, pretraining_tp=2, learn_sigma=True), INT_T),
    "moe_top1": ("moe", dict(depth=2, hidden_size=16, num_heads=2, num_experts=4,
                             num_experts_per_tok=1, pretraining_tp=2, learn_sigma=False),
                 [500.0, 999.0, 1.0, 250.0]),
    # XL/G style: qk-norm attention, pretraining_tp=1, rectified flow (t in [0,1])
    "moe_qknorm": ("moe", dict(depth=2, hidden_size=16, num_heads=2, num_experts=4,
                               num_experts_per_tok=2, pretraining_tp=1, attention="qknorm",
                               learn_sigma=True), [1.0, 0.75, 0.3, 0.02]),
    "switch_dmoe": ("switch", dict(depth=2, hidden_size=24, num_heads=3, routing="DMoE",
                                   num_experts=3, num_experts_per_tok=2, learn_sigma=True), INT_T),
    "switch_dtr": ("switch", dict(depth=2, hidden_size=16, num_heads=2, routing="DTR",
                                  dtr_alpha=4.0, dtr_beta=0.8, learn_sigma=True),
                   [999.0, 500.0, 120.0, 3.0]),
    # experts of 768 hidden units: wide enough for moedit to run them in chunks (dit/moe.c)
    "moe_wide": ("moe", dict(depth=1, hidden_size=16, num_heads=2, num_experts=4, mlp_ratio=48,
                             num_experts_per_tok=2, pretraining_tp=2, learn_sigma=True), INT_T),
}
# seed of variant V: 1000 + its place here (new variants go last, so the others keep theirs)
SEED_ORDER = ["dit", "moe_qknorm", "moe_top1", "moe_top2", "switch_dmoe", "switch_dtr", "moe_wide"]
# variants also written with half-precision weights (DiT-MoE XL/G run in fp16 upstream)
LOW_PRECISION = {"moe_qknorm": torch.float16, "dit": torch.bfloat16}
COMMON = dict(input_size=8, patch_size=2, in_channels=4, num_classes=10)
Y = [3, 10, 7, 0]   # 10 = num_classes = the null class


def randomise(model, gen):
    """Overwrite every parameter with non-zero random values of a sensible
    scale (upstream init zeroes adaLN / final layer, which would hide bugs).
    Buffers (full_time, _unit_mapping) keep their upstream values."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            def rn(std, shape=p.shape):
                return torch.randn(shape, generator=gen) * std
            if name == "pos_embed":
                p.add_(rn(0.1))
            elif name.endswith("embedding_table.weight"):
                p.copy_(rn(1.0))
            elif name.endswith("q_norm.weight") or name.endswith("k_norm.weight"):
                p.copy_(1.0 + rn(0.3))
            elif name.endswith("moe.gate.weight"):
                p.copy_(rn(1.5 / p.shape[1] ** 0.5))          # varied, not too peaked
            elif name.endswith("f_gate.1.weight"):
                p.copy_(rn(3.0 / p.shape[1] ** 0.5))
            elif name.endswith("experts.w"):
                p.copy_(rn(0.5 / p.shape[1] ** 0.5))
            elif name.endswith("adaLN_modulation.1.weight"):
                p.copy_(rn(0.5 / p.shape[1] ** 0.5))
            elif p.dim() == 1 or name.endswith("experts.b"):
                p.copy_(rn(0.1))                               # biases, norm biases
            elif p.dim() == 4:                                 # patch conv
                p.copy_(rn(1.0 / (p[0].numel()) ** 0.5))
            elif p.dim() == 2:
                p.copy_(rn(1.0 / p.shape[1] ** 0.5))
            else:
                raise RuntimeError("unhandled parameter " + name)
            assert (p != 0).all() or name == "pos_embed", name


def trace_forward(model, x, t, y):
    """Forward pass that also records c and the residual stream."""
    hs = []
    hooks = [b.register_forward_hook(lambda m, i, o: hs.append(o.detach().clone()))
             for b in model.blocks]
    first = model.x_embedder.register_forward_hook(
        lambda m, i, o: hs.append((o + model.pos_embed).detach().clone()))
    cs = []
    fl = model.final_layer.register_forward_pre_hook(lambda m, i: cs.append(i[1].detach().clone()))
    out = model(x, t, y)
    for h in hooks + [first, fl]:
        h.remove()
    return out, cs[0], torch.stack(hs)


def routing_ok(idx, num_experts):
    """Routing must be non-trivial: every expert used somewhere (at least 3),
    several different expert sets per layer."""
    for li in idx:
        used = np.unique(li)
        flat = li.reshape(-1, li.shape[-1])
        distinct_sets = len({tuple(sorted(r)) for r in flat.tolist()})
        if len(used) < min(num_experts, 3) or distinct_sets < 2:
            return False
    return True


def routing_margin(scores, k):
    """Smallest gap between the k-th and (k+1)-th gate probability."""
    s = np.sort(np.concatenate([a.reshape(-1, a.shape[-1]) for a in scores]), axis=1)[:, ::-1]
    return float((s[:, k - 1] - s[:, k]).min()) if s.shape[1] > k else 1.0


def make(name, outdir):
    kind, kw, tvals = VARIANTS[name]
    kw = dict(COMMON, **kw)
    base = 1000 + SEED_ORDER.index(name)
    for attempt in range(50):
        # reseed until routing is non-trivial and no top-k decision is a near
        # tie (so float rounding in another implementation cannot flip it)
        seed = base + 100 * attempt
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        model = build_model(kind, **kw)
        randomise(model, gen)
        model.eval()

        C, H = kw["in_channels"], kw["input_size"]
        x = torch.randn(N, C, H, H, generator=gen)
        t = torch.tensor(tvals, dtype=torch.float32)
        y = torch.tensor(Y, dtype=torch.int64)
        with torch.no_grad():
            out, c, hs = trace_forward(model, x, t, y)
            routes = model.routes()
            scores = model.gate_scores()
        assert torch.isfinite(out).all()
        if scores is None:
            break
        margin = routing_margin([a.numpy() for a in scores], kw["num_experts_per_tok"])
        idx = np.stack([r[0].numpy() for r in routes])
        if kind == "switch":
            idx = idx[:, :, None, :].transpose(0, 2, 1, 3)
        if margin >= 2e-3 and routing_ok(idx, kw["num_experts"]):
            break
    else:
        raise SystemExit(name + ": no seed gives clean routing")

    sd = model.state_dict()
    torch.save(sd, os.path.join(outdir, name + ".pt"))
    save = lambda suffix, a: np.save(os.path.join(outdir, "%s_%s.npy" % (name, suffix)), a)
    save("x", x.numpy().astype(np.float32))
    save("t", t.numpy().astype(np.float32))
    save("y", y.numpy().astype(np.int64))
    save("out", out.numpy().astype(np.float32))
    save("c", c.numpy().astype(np.float32))
    save("h", hs.numpy().astype(np.float32))

    E = kw.get("num_experts", 0) if kind != "dit" else 0
    k = kw.get("num_experts_per_tok", 0) if kind != "dit" else 0
    if kind == "moe" or (kind == "switch" and kw["routing"] == "DMoE"):
        idx = np.stack([r[0].numpy() for r in routes]).astype(np.int64)
        w = np.stack([r[1].numpy() for r in routes]).astype(np.float32)
        save("routes", idx)
        save("route_weights", w)
        if kind == "switch":
            save("gate_probs", np.stack([a.numpy() for a in scores]).astype(np.float32))

    if name == "dit":
        T = (H // kw["patch_size"]) ** 2
        save("pos_embed_sincos", sincos_pos_embed_2d(kw["hidden_size"], int(T ** 0.5)).astype(np.float32))

    cfg = {
        "variant": name,
        "family": {"dit": "dit", "moe": "dit-moe", "switch": "switch-dit"}[kind],
        "depth": kw["depth"], "hidden": kw["hidden_size"], "heads": kw["num_heads"],
        "patch": kw["patch_size"], "input_size": H, "in_channels": C,
        "out_channels": model.out_channels, "num_classes": kw["num_classes"],
        "learn_sigma": bool(kw["learn_sigma"]),
        "num_experts": E, "top_k": k,
        "mlp_hidden": kw.get("mlp_ratio", 4) * kw["hidden_size"],
        "shared_hidden": 2 * kw["hidden_size"] if kind == "moe" else 0,
        "attention": kw.get("attention", "timm") if kind == "moe" else "timm",
        "routing": kw["routing"].lower() if kind == "switch" else None,
        "pretraining_tp": kw.get("pretraining_tp") if kind == "moe" else None,
        "timesteps": "flow, t in [0,1]" if name == "moe_qknorm" else "integer-valued, [0,999]",
        "params": sum(p.numel() for p in model.parameters()),
        "tensors": len(sd),
        "state_dict_values": sum(v.numel() for v in sd.values()),
        "seed": seed,
        "max_abs_out": float(out.abs().max()),
        "routing_margin": margin if scores is not None else None,
    }
    if kind == "switch" and kw["routing"] == "DTR":
        cfg.update(dtr_alpha=kw["dtr_alpha"], dtr_beta=kw["dtr_beta"], taskcount=1000)
    if kind == "switch" and kw["routing"] == "DMoE":
        cfg.update(taskcount=1000)
    with open(os.path.join(outdir, name + ".json"), "w") as f:
        json.dump(cfg, f, indent=1)
        f.write("\n")

    if name in LOW_PRECISION:
        make_low_precision(name, model, x, t, y, kw, outdir)
    if name == "moe_top2":
        make_train_ckpt(model, x, t, y, gen, kw, os.path.join(outdir, "moe_top2_train.pt"))
    print("%-12s params %7d  tensors %3d  |out|max %.3f" % (name, cfg["params"], cfg["tensors"],
                                                           cfg["max_abs_out"]))


def make_low_precision(name, model, x, t, y, kw, outdir):
    """V_f16.pt / V_bf16.pt: the same state dict with floating tensors stored in
    half precision (int64 buffers unchanged), and V_<dt>_out.npy = the float32
    forward of the rounded weights."""
    dt = LOW_PRECISION[name]
    tag = {torch.float16: "f16", torch.bfloat16: "bf16"}[dt]
    sd = {k: (v.to(dt) if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    m = copy.deepcopy(model)
    m.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()})
    m.eval()
    with torch.no_grad():
        out = m(x, t, y)
        scores = m.gate_scores()
    if scores is not None:
        margin = routing_margin([a.numpy() for a in scores], kw["num_experts_per_tok"])
        assert margin >= 1e-3, (name, tag, margin)
    torch.save(collections.OrderedDict(sd), os.path.join(outdir, "%s_%s.pt" % (name, tag)))
    np.save(os.path.join(outdir, "%s_%s_out.npy" % (name, tag)), out.numpy().astype(np.float32))


def make_train_ckpt(model, x, t, y, gen, kw, path):
    """{"model","ema","opt","args"} as DiT-MoE train.py saves it; "ema" is the
    fixture's weights, "model" differs (perturbed and one AdamW step)."""
    ema_sd = copy.deepcopy(model.state_dict())
    other = copy.deepcopy(model)
    with torch.no_grad():
        for p in other.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    other.train()
    opt = torch.optim.AdamW(other.parameters(), lr=1e-4, weight_decay=0)
    loss = other(x, t, y).pow(2).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    other.eval()
    args = argparse.Namespace(
        data_path="/data/imagenet/train", results_dir="results", resume=None, model="DiT-S/2",
        vae_path="sd-vae-ft-mse", image_size=64, num_classes=kw["num_classes"], epochs=1400,
        global_batch_size=64, global_seed=2024, num_workers=4, log_every=100, accum_iter=1,
        num_experts=kw["num_experts"], num_experts_per_tok=kw["num_experts_per_tok"],
        pretraining_tp=kw["pretraining_tp"], ckpt_every=50000, rf=False)
    torch.save({"model": other.state_dict(), "ema": ema_sd, "opt": opt.state_dict(), "args": args}, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--out", default=os.path.join(here, "tests", "fixtures", "dit"))
    ap.add_argument("--only", default="", help="comma-separated variant names")
    a = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(a.out, exist_ok=True)
    names = [n for n in VARIANTS if not a.only or n in a.only.split(",")]
    for n in names:
        make(n, a.out)


if __name__ == "__main__":
    main()
