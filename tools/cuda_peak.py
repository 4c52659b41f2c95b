"""The GPU's attainable bfloat16 rate, measured in the run that quotes it
(scripts/gpu_check.sh): the median time of one large square bf16 product
(cuBLAS through PyTorch, float32 accumulation), the same yardstick as the
CPU benchmark's register-loop peak. Prints one line:
    bf16 peak: 812.3 TFLOP/s (8192^3 product, median of 20)
"""
import argparse
import statistics

import torch


def main():
    ap = argparse.ArgumentParser(description="measure the GPU's dense bf16 GEMM rate")
    ap.add_argument("--size", type=int, default=8192)
    ap.add_argument("--iters", type=int, default=20)
    a = ap.parse_args()
    n = a.size
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(n, n, device="cuda", dtype=torch.bfloat16, generator=g)
    w = torch.randn(n, n, device="cuda", dtype=torch.bfloat16, generator=g)
    out = torch.empty(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(5):   # clocks up, cuBLAS heuristics cached
        torch.matmul(x, w, out=out)
    times = []
    for _ in range(a.iters):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        torch.matmul(x, w, out=out)
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) / 1e3)
    print("bf16 peak: %.1f TFLOP/s (%d^3 product, median of %d)" % (2.0 * n ** 3 / statistics.median(times) / 1e12, n, a.iters))


if __name__ == "__main__":
    main()
