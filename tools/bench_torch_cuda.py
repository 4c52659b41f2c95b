"""The PyTorch side of scripts/gpu_check.sh: times the reference transformer
(tools/dit_reference.py, the upstream module definitions: DiT-MoE's experts
run one after another over the tokens each picked) on a CUDA GPU, and writes
the same random weights for `moedit bench --device cuda`.

Usage (on the GPU machine, with its own python and PyTorch):
    python3 tools/bench_torch_cuda.py --shape S --batch 2 64 --dtype bf16 \
        --save /tmp/moe_S.pt [--save-io /tmp/moe_S] [--iters 20]

    --shape S|B|XL|G   upstream DiT sizes (tools/bench_torch.py SHAPES), 8 experts top-2
    --batch N ...      rows per forward; 2 = one CFG pair (a class row and its null row)
    --dtype bf16|fp32  bf16: weights in bfloat16 under autocast; fp32: TF32 off
    --save PATH        the random state dict (float32, upstream names) for moedit
    --save-io PREFIX   PREFIX_{x,t,y,out}.npy of the first batch size, torch float32 output
                       (only with --dtype fp32), for a `moedit forward` parity check

Prints one line per batch size:
    torch bf16 S batch 64: forward_ms 12.345 tflops 67.8
(the median of --iters forwards after --warmup, CUDA-event timed; FLOPs as
tools/bench_torch.py counts them: 2 per multiply-add, activated experts only).
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_torch import SHAPES, flops, randomise  # noqa: E402
from dit_reference import build_model  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description="time the PyTorch DiT-MoE reference forward on a GPU")
    ap.add_argument("--shape", default="S", choices=sorted(SHAPES))
    ap.add_argument("--batch", type=int, nargs="+", default=[2, 64])
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"])
    ap.add_argument("--experts", type=int, default=8)
    ap.add_argument("--top-k", type=int, default=2)
    ap.add_argument("--attention", default="timm", choices=["timm", "qknorm"])
    ap.add_argument("--input-size", type=int, default=32)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save")
    ap.add_argument("--save-io", metavar="PREFIX")
    ap.add_argument("--device", default="cuda", help="cuda (default), or cpu to try the script anywhere")
    a = ap.parse_args()
    if a.save_io and a.dtype != "fp32":
        ap.error("--save-io needs --dtype fp32 (the parity reference)")
    a.depth, a.hidden, a.heads = SHAPES[a.shape]
    a.family, a.patch, a.in_channels = "moe", 2, 4
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.device(a.device)
    if hasattr(torch, "set_default_device"):
        torch.set_default_device(dev)   # weights made on the GPU: an XL model in seconds
    gen = torch.Generator(device=dev).manual_seed(a.seed)
    model = build_model("moe", input_size=a.input_size, patch_size=a.patch, in_channels=a.in_channels,
                        hidden_size=a.hidden, depth=a.depth, num_heads=a.heads, num_classes=1000,
                        learn_sigma=True, num_experts=a.experts, num_experts_per_tok=a.top_k,
                        attention=a.attention, pretraining_tp=1 if a.attention == "qknorm" else 2)
    model.to(dev)
    randomise(model, gen)
    model.eval()
    if a.save:
        torch.save({k: v.detach().float().cpu() for k, v in model.state_dict().items()}, a.save)
        print("saved %s (%.2fB parameters)" % (a.save, sum(p.numel() for p in model.parameters()) / 1e9),
              file=sys.stderr)
    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    model.to(dtype)
    T = (a.input_size // a.patch) ** 2
    for bi, n in enumerate(a.batch):
        x = torch.randn(n, a.in_channels, a.input_size, a.input_size, generator=gen, device=dev)
        t = torch.full((n,), 500.0, device=dev)
        y = torch.tensor([(207 + i) % 1000 if i < (n + 1) // 2 else 1000 for i in range(n)], device=dev)
        times = []
        with torch.inference_mode(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.dtype == "bf16"):
            for i in range(a.warmup + a.iters):
                if dev.type == "cuda":
                    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    start.record()
                    out = model(x.to(dtype), t, y)
                    end.record()
                    torch.cuda.synchronize()
                    ms = start.elapsed_time(end)
                else:
                    t0 = time.perf_counter()
                    out = model(x.to(dtype), t, y)
                    ms = (time.perf_counter() - t0) * 1e3
                if i >= a.warmup:
                    times.append(ms)
        if a.save_io and bi == 0:
            for suffix, arr in (("x", x), ("t", t), ("y", y.long()), ("out", out.float())):
                np.save("%s_%s.npy" % (a.save_io, suffix), arr.cpu().numpy())
        med = statistics.median(times)
        print("torch %s %s batch %d: forward_ms %.3f tflops %.2f"
              % (a.dtype, a.shape, n, med, flops(a, T, n) / (med * 1e-3) / 1e12))


if __name__ == "__main__":
    main()
