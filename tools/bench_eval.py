"""Feature-extraction throughput: `moedit eval` against pytorch-fid's
InceptionV3 (the PyTorch module of inception_reference.py, the same
network and state-dict keys) on the same images, in the same run.

    /usr/bin/python3 tools/bench_eval.py [--n 32] [--size 256] [--rounds 2] [--threads 2]

Writes N random-ish 256x256 RGB images and the random weights (seed 0) as
a torch.save .pth into a temporary folder; then, alternating for --rounds:
`moedit eval --samples imgs.npz --features-out f.npz` (featurising only,
ADM preprocessing; the rate of its last progress line, and that of the
whole process with the weight loading) and the PyTorch forward (TF1 resize in NumPy as the reference
does it, then the network, torch.no_grad, batch --batch). Prints images/s of
each round and the ratio of the best rounds, with the host CPU. PyTorch
runs with OMP_WAIT_POLICY=passive unless the variable is set (its best on a
shared machine, as scripts/bench.sh found), moedit with the default. Weights
are random: speed does not depend on them.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

# PyTorch's OpenMP threads at their best on a shared machine: sleeping waits
# (scripts/bench.sh measured its spinning threads 4x slower here); moedit
# keeps libgomp's default. Set before torch loads its OpenMP runtime.
MOEDIT_ENV = dict(os.environ)
os.environ.setdefault("OMP_WAIT_POLICY", "passive")
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from adm_evaluator_reference import ADMFeatures  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def cpu_name():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--moedit", default=os.path.join(ROOT, "build", "moedit"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (a.n, a.size, a.size, 3), dtype=np.uint8)
    net = ADMFeatures(seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(os.path.join(tmp, "imgs.npz"), imgs)
        torch.save(net.model.state_dict(), os.path.join(tmp, "inception.pth"))
        cmd = [a.moedit, "eval", "--inception", os.path.join(tmp, "inception.pth"), "--samples",
               os.path.join(tmp, "imgs.npz"), "--features-out", os.path.join(tmp, "f.npz"),
               "--batch", str(a.batch), "--threads", str(a.threads)]
        best_c = best_t = 0.0
        for r in range(a.rounds):
            t0 = time.perf_counter()
            err = subprocess.run(cmd, check=True, stderr=subprocess.PIPE, text=True, env=MOEDIT_ENV).stderr
            whole = a.n / (time.perf_counter() - t0)
            # the extraction's own rate: the last progress line
            c = float(re.findall(r"([0-9.]+) img/s", err)[-1])
            os.remove(os.path.join(tmp, "f.npz"))
            t0 = time.perf_counter()
            for i in range(0, a.n, a.batch):
                net(imgs[i:i + a.batch], "adm")
            t = a.n / (time.perf_counter() - t0)
            best_c, best_t = max(best_c, c), max(best_t, t)
            print("round %d: moedit eval %.2f img/s (%.2f with start-up and weight loading), PyTorch %.2f img/s"
                  % (r, c, whole, t), flush=True)
    print("host: %s, %d threads each (PyTorch OMP_WAIT_POLICY=%s); %d images %dx%d, batch %d"
          % (cpu_name(), a.threads, os.environ["OMP_WAIT_POLICY"], a.n, a.size, a.size, a.batch))
    print("best: moedit eval %.2f img/s, PyTorch %.2f img/s, ratio %.2fx" % (best_c, best_t, best_c / best_t))


if __name__ == "__main__":
    main()
