"""Times the PyTorch reference transformer forward (the baseline for `moedit bench`).

Usage:
    /usr/bin/python3 tools/bench_torch.py                      # DiT-MoE-S/2-8E2A, batch 2, 10 iters
    /usr/bin/python3 tools/bench_torch.py --shape B --iters 5  # DiT-MoE-B/2-8E2A
    /usr/bin/python3 tools/bench_torch.py --iters 2 --save /tmp/moe_s.pt --save-io /tmp/moe_s
        --save     writes the random state dict (upstream key names) for
                   `moedit bench --model /tmp/moe_s.pt --batch 2`
        --save-io  writes PREFIX_x.npy, _t.npy, _y.npy and _out.npy (torch output)
                   for `moedit forward --model ... --x PREFIX_x.npy ...`
    options: --shape S|B|XL|G (depth/hidden/heads/patch presets), --depth/--hidden/--heads
    overrides, --experts E --top-k K, --attention timm|qknorm, --family moe|dit,
    --batch B (default 2 = one CFG pair: a class row and its null row), --input-size 32,
    --threads 2, --warmup 1, --seed 0, --bf16 (weights in bfloat16 under CPU autocast:
    PyTorch's own bf16 inference, oneDNN's kernels, AMX tiles where the CPU has them).

Prints `forward_ms: <median>` and `gflops: <achieved>` (same format as moedit bench;
FLOPs count multiply-adds as 2 and only the experts that run), plus the min/max.
Weights are random (1/sqrt(fan_in) scale, adaLN non-zero) so all paths do real work.
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dit_reference import build_model  # noqa: E402

SHAPES = {  # upstream DiT_* configs: depth, hidden, heads
    "S": (12, 384, 6), "B": (12, 768, 12), "L": (24, 1024, 16), "XL": (28, 1152, 16), "G": (40, 1408, 16),
}


def randomise(model, gen):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "pos_embed":
                continue
            if name.endswith("embedding_table.weight"):
                p.copy_(torch.randn(p.shape, generator=gen))
            elif name.endswith("adaLN_modulation.1.weight"):
                p.copy_(torch.randn(p.shape, generator=gen) * (0.3 / p.shape[1] ** 0.5))
            elif name.endswith("q_norm.weight") or name.endswith("k_norm.weight"):
                p.fill_(1.0)
            elif p.dim() == 1:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) * (1.0 / fan_in ** 0.5))


def flops(a, T, n):
    """Forward FLOPs of n rows (2 per multiply-add), activated experts only."""
    D, L = a.hidden, a.depth
    tok = n * T
    f = 2 * tok * a.in_channels * a.patch * a.patch * D                 # patch embed
    f += 2 * n * (256 * D + D * D) + 2 * n * L * 6 * D * D + 2 * n * 2 * D * D  # t-mlp, adaLN
    per_tok = 2 * (3 * D * D + D * D) + 2 * 2 * T * D                     # qkv, proj, QK^T, AV
    if a.family == "moe":
        per_tok += 2 * D * a.experts + a.top_k * 3 * 2 * D * 4 * D + 3 * 2 * D * 2 * D
    else:
        per_tok += 2 * 2 * D * 4 * D
    f += L * tok * per_tok
    f += 2 * tok * D * a.patch * a.patch * (2 * a.in_channels)           # final linear
    return f


def main():
    ap = argparse.ArgumentParser(description="time the PyTorch DiT/DiT-MoE reference forward")
    ap.add_argument("--shape", default="S", choices=sorted(SHAPES))
    ap.add_argument("--depth", type=int)
    ap.add_argument("--hidden", type=int)
    ap.add_argument("--heads", type=int)
    ap.add_argument("--patch", type=int, default=2)
    ap.add_argument("--family", default="moe", choices=["moe", "dit"])
    ap.add_argument("--experts", type=int, default=8)
    ap.add_argument("--top-k", type=int, default=2)
    ap.add_argument("--attention", default="timm", choices=["timm", "qknorm"])
    ap.add_argument("--input-size", type=int, default=32)
    ap.add_argument("--in-channels", type=int, default=4)
    ap.add_argument("--num-classes", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bf16", action="store_true", help="bfloat16 weights under CPU autocast")
    ap.add_argument("--save", help="write the random state dict here (.pt)")
    ap.add_argument("--save-io", metavar="PREFIX", help="write PREFIX_{x,t,y,out}.npy")
    a = ap.parse_args()
    d, h, nh = SHAPES[a.shape]
    a.depth = a.depth or d
    a.hidden = a.hidden or h
    a.heads = a.heads or nh
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)

    kw = dict(input_size=a.input_size, patch_size=a.patch, in_channels=a.in_channels,
              hidden_size=a.hidden, depth=a.depth, num_heads=a.heads, num_classes=a.num_classes,
              learn_sigma=True)
    if a.family == "moe":
        kw.update(num_experts=a.experts, num_experts_per_tok=a.top_k, attention=a.attention,
                  pretraining_tp=1 if a.attention == "qknorm" else 2)
    model = build_model(a.family, **kw)
    randomise(model, gen)
    model.eval()
    nparams = sum(p.numel() for p in model.parameters())
    print("model: %s depth %d hidden %d heads %d patch %d experts %s top-k %s attention %s; %.1fM params"
          % (a.family, a.depth, a.hidden, a.heads, a.patch, a.experts if a.family == "moe" else "-",
             a.top_k if a.family == "moe" else "-", a.attention, nparams / 1e6), file=sys.stderr)
    if a.save:
        torch.save(model.state_dict(), a.save)
        print("saved", a.save, file=sys.stderr)

    n = a.batch
    x = torch.randn(n, a.in_channels, a.input_size, a.input_size, generator=gen)
    t = torch.full((n,), 500.0)
    y = torch.tensor([(207 + i) % a.num_classes if i < (n + 1) // 2 else a.num_classes for i in range(n)])
    if a.bf16:
        model = model.to(torch.bfloat16)
    times = []
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
        for i in range(a.warmup + a.iters):
            t0 = time.perf_counter()
            out = model(x, t, y)
            dt = (time.perf_counter() - t0) * 1e3
            if i >= a.warmup:
                times.append(dt)
    if a.save_io:
        for suffix, arr in (("x", x.numpy()), ("t", t.numpy()), ("y", y.numpy().astype(np.int64)),
                            ("out", out.float().numpy())):
            np.save("%s_%s.npy" % (a.save_io, suffix), arr)
    T = (a.input_size // a.patch) ** 2
    med = statistics.median(times)
    print("forward_ms: %.2f" % med)
    print("gflops: %.2f" % (flops(a, T, n) / (med * 1e-3) / 1e9))
    print("min_ms: %.2f max_ms: %.2f iters: %d threads: %d batch: %d"
          % (min(times), max(times), len(times), a.threads, n))


if __name__ == "__main__":
    main()
