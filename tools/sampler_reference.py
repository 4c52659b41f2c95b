"""PyTorch reference for moedit's sampler (sampler/*.c), written from a reading
of facebookresearch/DiT diffusion/ (gaussian_diffusion.py, respace.py,
__init__.py), DiT sample.py / sample_ddp.py, models.py forward_with_cfg,
byeongjun-park/Switch-DiT forward_with_cfg, and feizc/DiT-MoE
diffusion/rectified_flow.py + sample.py. Nothing is copied.

Library use (Debian's /usr/bin/python3, torch 1.13 CPU):

    import sys; sys.path.insert(0, "tools")
    import sampler_reference as sr
    z = sr.sample(model_fn, kind="ddpm", steps="250", labels=[1, 2],
                  shape=(4, 8, 8), num_classes=10, cfg=1.5, cfg_channels=3,
                  seed=0)                      # torch.manual_seed + upstream draws

model_fn(x, t, y) -> raw output [N, OC, H, W] (t float32: integer-valued
timesteps for DDPM/DDIM, i/N for flow).

Semantics (what the C code must reproduce):
- schedules float64; the update in float32 with float32 coefficients
  (upstream's _extract_into_tensor casts with .float()).
- guidance only when cfg > 1: rows [x, x], labels [y, null]; the first k raw
  output channels get u + s(c - u) (k = 3 for DiT/DiT-MoE, C for
  Switch-DiT = "all", cfg_channels=0 here), the rest stay each row's own.
- torch RNG: the initial randn(n, C, H, W) (flow: a second one, which is the
  noise used, as DiT-MoE's sample.py rf path), then for DDPM/DDIM one
  randn_like of the (doubled) batch every step, the last step included.
"""
import math

import numpy as np
import torch

T_DIFFUSION = 1000


# ---- schedules ------------------------------------------------------------

def betas_linear(T=T_DIFFUSION):
    s = 1000.0 / T
    return np.linspace(s * 1e-4, s * 0.02, T, dtype=np.float64)


def betas_cosine(T=T_DIFFUSION, max_beta=0.999):
    ab = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2
    return np.array([min(1 - ab((i + 1) / T) / ab(i / T), max_beta) for i in range(T)])


def kept_timesteps(T, spec):
    """Sorted kept timesteps for a respacing string ("250", "10,10", "ddim25")."""
    if spec.startswith("ddim"):
        want = int(spec[4:])
        for stride in range(1, T):
            if len(range(0, T, stride)) == want:
                return list(range(0, T, stride))
        raise ValueError(spec)
    counts = [int(c) for c in spec.split(",")]
    per, extra = divmod(T, len(counts))
    kept, start = set(), 0
    for i, count in enumerate(counts):
        size = per + (1 if i < extra else 0)
        if size < count:
            raise ValueError(spec)
        stride = 1 if count <= 1 else (size - 1) / (count - 1)
        pos = 0.0
        for _ in range(count):
            kept.add(start + round(pos))     # Python rounds halves to even
            pos += stride
        start += size
    return sorted(kept)


class Respaced:
    """The respaced diffusion process; arrays indexed by k (k = K-1 first)."""

    def __init__(self, spec, cosine=False):
        base = betas_cosine() if cosine else betas_linear()
        ac_base = np.cumprod(1.0 - base)
        self.timestep = np.array(kept_timesteps(T_DIFFUSION, spec), dtype=np.int64)
        prev, betas = 1.0, []
        for t in self.timestep:
            betas.append(1 - ac_base[t] / prev)
            prev = ac_base[t]
        b = np.array(betas, dtype=np.float64)
        self.betas = b
        self.ac = np.cumprod(1.0 - b)
        self.acp = np.append(1.0, self.ac[:-1])
        pv = b * (1.0 - self.acp) / (1.0 - self.ac)
        self.plvc = np.log(np.append(pv[1], pv[1:])) if len(b) > 1 else np.log(b)
        self.log_betas = np.log(b)
        self.fixed_large = np.log(np.append(pv[1], b[1:])) if len(b) > 1 else np.log(b)
        self.coef1 = b * np.sqrt(self.acp) / (1.0 - self.ac)
        self.coef2 = (1.0 - self.acp) * np.sqrt(1.0 - b) / (1.0 - self.ac)
        self.sra = np.sqrt(1.0 / self.ac)
        self.srm1 = np.sqrt(1.0 / self.ac - 1)

    def table(self):
        """[11, K] float64: timestep, betas, ac, acp, plvc, log_betas,
        fixed_large, coef1, coef2, sra, srm1."""
        return np.stack([self.timestep.astype(np.float64), self.betas, self.ac, self.acp,
                         self.plvc, self.log_betas, self.fixed_large, self.coef1,
                         self.coef2, self.sra, self.srm1])

    def f(self, name, k):
        return torch.tensor(float(getattr(self, name)[k]), dtype=torch.float32)


# ---- guidance -------------------------------------------------------------

def guided_output(model_fn, x, t, y, n, cfg, k, C):
    """forward_with_cfg on the doubled batch x [2n] (rows n.. are replaced by
    rows ..n, as upstream does); k = 0 means all C prediction channels."""
    half = x[:n]
    out = model_fn(torch.cat([half, half]), t, y)
    k = C if k == 0 else min(k, out.shape[1])
    g, rest = out[:, :k], out[:, k:]
    c, u = g[:n], g[n:]
    h = u + cfg * (c - u)
    return torch.cat([torch.cat([h, h]), rest], dim=1)


# ---- samplers -------------------------------------------------------------

def _ddpm_step(d, k, x, out, C, noise):
    eps = out[:, :C]
    x0 = d.f("sra", k) * x - d.f("srm1", k) * eps
    mean = d.f("coef1", k) * x0 + d.f("coef2", k) * x
    if out.shape[1] == 2 * C:
        frac = (out[:, C:] + 1) / 2
        log_var = frac * d.f("log_betas", k) + (1 - frac) * d.f("plvc", k)
    else:
        log_var = d.f("fixed_large", k).expand_as(x)
    if k == 0:
        return mean
    return mean + torch.exp(0.5 * log_var) * noise


def _ddim_step(d, k, x, out, C, noise, eta):
    eps = out[:, :C]
    sra, srm1 = d.f("sra", k), d.f("srm1", k)
    x0 = sra * x - srm1 * eps
    eps = (sra * x - x0) / srm1
    ab, abp = d.f("ac", k), d.f("acp", k)
    sigma = eta * torch.sqrt((1 - abp) / (1 - ab)) * torch.sqrt(1 - ab / abp)
    v = x0 * torch.sqrt(abp) + torch.sqrt(1 - abp - sigma ** 2) * eps
    if k == 0:
        return v
    return v + sigma * noise


def sample(model_fn, kind, steps, labels, shape, num_classes, cfg=1.0, cfg_channels=3,
           eta=0.0, cosine=False, seed=0, noise=None, interval=None):
    """Final latents [n, C, H, W] (float32) as upstream sampling produces them.
    interval (LO, HI): guidance only while LO <= t <= HI; elsewhere only the
    conditional rows are evaluated (the RNG draws are unchanged)."""
    def on(tv):
        return guided and (interval is None or interval[0] <= tv <= interval[1])

    torch.manual_seed(seed)
    n = len(labels)
    C = shape[0]
    guided = cfg > 1
    y = torch.tensor(list(labels) + ([num_classes] * n if guided else []), dtype=torch.int64)
    if kind == "flow":
        first = torch.randn(n, *shape)         # sample.py's z, unused by the rf path
        z = torch.randn(n, *shape) if noise is None else torch.as_tensor(noise).clone()
        del first
        N = int(steps)
        dt = torch.tensor([1.0 / N] * n).view(n, 1, 1, 1)
        for i in range(N, 0, -1):
            t = torch.tensor([i / N] * n)
            # as sample_with_xps: cond and null are separate evaluations
            v = model_fn(z, t, y[:n])[:, :C]
            if on(t[0].item()):
                u = model_fn(z, t, y[n:])[:, :C]
                v = u + cfg * (v - u)
            z = z - dt * v
        return z
    d = Respaced(steps, cosine)
    x = torch.randn(n, *shape) if noise is None else torch.as_tensor(noise).clone()
    if guided:
        x = torch.cat([x, x])
    K = len(d.timestep)
    for k in range(K - 1, -1, -1):
        t = torch.full((x.shape[0],), float(d.timestep[k]))
        if on(float(d.timestep[k])):
            out = guided_output(model_fn, x, t, y, n, cfg, cfg_channels, C)
        elif guided:
            half = model_fn(x[:n], t[:n], y[:n])
            out = torch.cat([half, half])
        else:
            out = model_fn(x, t, y)
        nz = torch.randn_like(x)
        if kind == "ddim":
            x = _ddim_step(d, k, x, out, C, nz, eta)
        else:
            x = _ddpm_step(d, k, x, out, C, nz)
    return x[:n]


# ---- the toy denoiser shared with tests/sampler_loop.c --------------------

def toy_model(out_channels, num_classes):
    """out[r, c, i] = tanh(0.5 x[r, c mod C, i] + 0.3 cos(0.01 t_r + c)
    + 0.05 y_r (c + 1) / OC + 0.001 i), all in float32."""
    def fn(x, t, y):
        N, C, H, W = x.shape
        OC = out_channels
        idx = (torch.arange(H * W, dtype=torch.float32) * 0.001).view(1, H, W)
        chans = []
        for c in range(OC):
            xc = x[:, c % C]
            a = 0.3 * torch.cos(0.01 * t.float() + float(c))
            b = 0.05 * y.float() * float(c + 1) / float(OC)
            chans.append(torch.tanh(0.5 * xc + (a + b).view(N, 1, 1) + idx))
        return torch.stack(chans, dim=1)
    return fn
