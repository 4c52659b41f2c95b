#!/usr/bin/python3
"""Small Fashion-MNIST CNN used to judge generated samples (tools/eval_samples.py).

Input [N, 1, 28, 28] in [-1, 1]; 3 conv blocks (16/32/64 channels, BatchNorm, ReLU,
2x2 max pool) -> fc 576->128 (ReLU; the "penultimate" features used for the
feature-space FID) -> fc 128->10.  Saved as torch.save({"state_dict", "arch"}).

  nice -n 10 /usr/bin/python3 tools/train_classifier.py --out models/fmnist-classifier.pt
"""
import argparse
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fmnist  # noqa: E402


class Classifier(nn.Module):
    def __init__(self, chans=(16, 32, 64), feat=128):
        super().__init__()
        layers = []
        cin = 1
        for c in chans:
            layers += [nn.Conv2d(cin, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2)]
            cin = c
        self.conv = nn.Sequential(*layers)
        self.fc1 = nn.Linear(cin * 3 * 3, feat)
        self.fc2 = nn.Linear(feat, 10)

    def features(self, x):
        return F.relu(self.fc1(self.conv(x).flatten(1)))

    def forward(self, x):
        return self.fc2(F.dropout(self.features(x), 0.2, self.training))


def load_classifier(path):
    ck = torch.load(path, map_location="cpu")
    m = Classifier(**ck.get("arch", {}))
    m.load_state_dict(ck["state_dict"])
    return m.eval()


def evaluate(model, x, y, bs=1000):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), bs):
            correct += (model(x[i:i + bs]).argmax(1) == y[i:i + bs]).sum().item()
    return correct / len(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="models/fmnist-classifier.pt")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    x, y = fmnist.load("train", pad_to=28)
    xt, yt = fmnist.load("test", pad_to=28)
    model = Classifier()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps = args.epochs * (len(x) // args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=0.1)
    g = torch.Generator().manual_seed(args.seed)
    t0 = time.time()
    step = 0
    for ep in range(args.epochs):
        model.train()
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x) - args.batch + 1, args.batch):
            idx = perm[i:i + args.batch]
            xb = x[idx]
            # light augmentation: random horizontal flip (the classes are flip-invariant)
            flip = torch.rand(len(idx), generator=g) < 0.5
            xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
            loss = F.cross_entropy(model(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 100 == 0:
                print(f"epoch {ep} step {step}/{steps} loss {loss.item():.4f} time {time.time() - t0:.0f}s",
                      flush=True)
        acc = evaluate(model, xt, yt)
        print(f"epoch {ep} test accuracy {acc * 100:.2f}%", flush=True)
    torch.save({"state_dict": model.state_dict(), "arch": {"chans": (16, 32, 64), "feat": 128},
                "test_accuracy": acc}, args.out)
    print("saved", args.out, flush=True)


if __name__ == "__main__":
    main()
