"""PyTorch reference for moedit's few-step solvers (sampler/multistep.c,
sampler/dpm_solver.c, sampler/unipc.c, sampler/flow_solvers.c), written from
a reading of huggingface/diffusers src/diffusers/schedulers/
scheduling_dpmsolver_multistep.py (algorithm_type dpmsolver++ and
sde-dpmsolver++, solver_type midpoint, lower_order_final, final_sigmas_type
"zero") and scheduling_unipc_multistep.py (predict_x0, bh2), the DPM-Solver++
and UniPC papers, and feizc/DiT-MoE diffusion/rectified_flow.py
(sample_with_xps's time grid). Nothing is copied; the schedulers below keep
diffusers' structure (set_timesteps, convert_model_output, step) and its
float32 tensors so that the C code can be held to them.

Library use (Debian's /usr/bin/python3, torch 1.13 CPU):

    import sys; sys.path.insert(0, "tools")
    import solver_reference as so
    z = so.sample(model_fn, "dpm++2m", 20, labels=[1, 2], shape=(4, 8, 8),
                  num_classes=10, cfg=4.0, cfg_channels=3, interval=(82, 579),
                  cosine=False, spacing="linspace", karras=False, seed=0)

model_fn(x, t, y) -> raw output [N, OC, H, W]. Guidance as moedit's (and
upstream DiT's forward_with_cfg): rows [x, x], labels [y, null], the first k
channels u + s(c - u); with an interval the null half is only run while
LO <= t <= HI. Noise: torch.manual_seed(seed), torch.randn(n, C, H, W)
initial noise (flow: a second draw, as DiT-MoE's sample.py), the SDE solver
one torch.randn(n, C, H, W) per step.
"""
import math

import numpy as np
import torch

T_TRAIN = 1000


# ---- schedule (diffusers: float32 betas, torch.cumprod, float32 sigmas) ----

def train_betas(cosine):
    if cosine:   # betas_for_alpha_bar("cosine"), max_beta 0.999
        ab = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2
        b = [min(1 - ab((i + 1) / T_TRAIN) / ab(i / T_TRAIN), 0.999) for i in range(T_TRAIN)]
        return torch.tensor(b, dtype=torch.float32)
    return torch.linspace(1e-4, 0.02, T_TRAIN, dtype=torch.float32)


def alpha_sigma(sigma):
    alpha = 1 / ((sigma ** 2 + 1) ** 0.5)
    return alpha, sigma * alpha


def lam(sigma):
    a, s = alpha_sigma(sigma)
    return torch.log(a) - torch.log(s)


class Schedule:
    """set_timesteps of both schedulers (lambda_min_clipped -inf)."""

    def __init__(self, steps, cosine=False, spacing="linspace", karras=False):
        ac = torch.cumprod(1.0 - train_betas(cosine), dim=0)
        sig_all = np.array(((1 - ac) / ac) ** 0.5)
        N, T = steps, T_TRAIN
        if spacing == "linspace":
            ts = np.linspace(0, T - 1, N + 1).round()[::-1][:-1].copy().astype(np.int64)
        elif spacing == "leading":
            r = T // (N + 1)
            ts = (np.arange(0, N + 1) * r).round()[::-1][:-1].copy().astype(np.int64)
        elif spacing == "trailing":
            ts = np.arange(T, 0, -T / N).round().copy().astype(np.int64) - 1
        else:
            raise ValueError(spacing)
        if karras:
            log_sig = np.log(sig_all)
            s = np.flip(sig_all).copy()
            smin, smax = s[-1].item(), s[0].item()
            ramp = np.linspace(0, 1, N)
            sig = (smax ** (1 / 7) + ramp * (smin ** (1 / 7) - smax ** (1 / 7))) ** 7
            ts = np.array([self._sigma_to_t(x, log_sig) for x in sig]).round()
        else:
            sig = np.interp(ts, np.arange(0, len(sig_all)), sig_all)
        self.sigmas = torch.from_numpy(np.concatenate([sig, [0.0]]).astype(np.float32))
        self.timesteps = torch.from_numpy(np.asarray(ts)).to(torch.int64)

    @staticmethod
    def _sigma_to_t(sigma, log_sigmas):
        ls = np.log(np.maximum(sigma, 1e-10))
        d = ls - log_sigmas[:, None]
        lo = np.cumsum(d >= 0, axis=0).argmax(axis=0).clip(max=log_sigmas.shape[0] - 2)
        w = np.clip((log_sigmas[lo] - ls) / (log_sigmas[lo] - log_sigmas[lo + 1]), 0, 1)
        return ((1 - w) * lo + w * (lo + 1)).reshape(np.shape(sigma))


# ---- DPM-Solver++ (multistep, midpoint) --------------------------------------

class DPMSolverPP:
    def __init__(self, sched, order, sde=False):
        self.s, self.order, self.sde = sched, order, sde
        self.outputs = [None] * order
        self.lower = 0
        self.i = 0

    def convert(self, eps, x):
        a, s = alpha_sigma(self.s.sigmas[self.i])
        return (x - s * eps) / a

    def step(self, eps, x, noise=None):
        N, i, sg = len(self.s.timesteps), self.i, self.s.sigmas
        final = i == N - 1                       # final_sigmas_type "zero"
        second = i == N - 2 and N < 15           # lower_order_final
        m = self.convert(eps, x)
        self.outputs = self.outputs[1:] + [m]
        x = x.to(torch.float32)
        lt, l0 = lam(sg[i + 1]), lam(sg[i])
        at, st = alpha_sigma(sg[i + 1])
        _, s0 = alpha_sigma(sg[i])
        h = lt - l0
        if self.order == 1 or self.lower < 1 or final:
            if self.sde:
                x = (st / s0 * torch.exp(-h)) * x + (at * (1 - torch.exp(-2.0 * h))) * m \
                    + st * torch.sqrt(1.0 - torch.exp(-2 * h)) * noise
            else:
                x = (st / s0) * x - (at * (torch.exp(-h) - 1.0)) * m
        elif self.order == 2 or self.lower < 2 or second:
            m0, m1 = self.outputs[-1], self.outputs[-2]
            r0 = (l0 - lam(sg[i - 1])) / h
            D0, D1 = m0, (1.0 / r0) * (m0 - m1)
            if self.sde:
                x = (st / s0 * torch.exp(-h)) * x + (at * (1 - torch.exp(-2.0 * h))) * D0 \
                    + 0.5 * (at * (1 - torch.exp(-2.0 * h))) * D1 \
                    + st * torch.sqrt(1.0 - torch.exp(-2 * h)) * noise
            else:
                x = (st / s0) * x - (at * (torch.exp(-h) - 1.0)) * D0 - 0.5 * (at * (torch.exp(-h) - 1.0)) * D1
        else:
            m0, m1, m2 = self.outputs[-1], self.outputs[-2], self.outputs[-3]
            l1, l2 = lam(sg[i - 1]), lam(sg[i - 2])
            r0, r1 = (l0 - l1) / h, (l1 - l2) / h
            D1_0, D1_1 = (1.0 / r0) * (m0 - m1), (1.0 / r1) * (m1 - m2)
            D1 = D1_0 + (r0 / (r0 + r1)) * (D1_0 - D1_1)
            D2 = (1.0 / (r0 + r1)) * (D1_0 - D1_1)
            x = (st / s0) * x - (at * (torch.exp(-h) - 1.0)) * m0 \
                + (at * ((torch.exp(-h) - 1.0) / h + 1.0)) * D1 \
                - (at * ((torch.exp(-h) - 1.0 + h) / h ** 2 - 0.5)) * D2
        if self.lower < self.order:
            self.lower += 1
        self.i += 1
        return x


# ---- UniPC (bh2, data prediction) --------------------------------------------

class UniPC:
    def __init__(self, sched, order):
        self.s, self.order = sched, order
        self.outputs = [None] * order
        self.lower = 0
        self.i = 0
        self.last = None
        self.this_order = None

    def convert(self, eps, x):
        a, s = alpha_sigma(self.s.sigmas[self.i])
        return (x - s * eps) / a

    @staticmethod
    def _phi(order, h, rks):
        """R (order x order), b, h·φ1 and B(h) of the bh2 variant."""
        hh = -h
        h_phi_1 = torch.expm1(hh)
        h_phi_k = h_phi_1 / hh - 1
        fact = 1
        B_h = torch.expm1(hh)
        R, b = [], []
        for k in range(1, order + 1):
            R.append(torch.pow(rks, k - 1))
            b.append(h_phi_k * fact / B_h)
            fact *= k + 1
            h_phi_k = h_phi_k / hh - 1 / fact
        return torch.stack(R), torch.tensor(b), h_phi_1, B_h

    def _predict(self, x, order):
        sg, i = self.s.sigmas, self.i
        at, st = alpha_sigma(sg[i + 1])
        _, s0 = alpha_sigma(sg[i])
        l0 = lam(sg[i])
        h = lam(sg[i + 1]) - l0
        m0 = self.outputs[-1]
        rks, D1s = [], []
        for k in range(1, order):
            rk = (lam(sg[i - k]) - l0) / h
            rks.append(rk)
            D1s.append((self.outputs[-(k + 1)] - m0) / rk)
        rks.append(1.0)
        R, b, h_phi_1, B_h = self._phi(order, h, torch.tensor(rks))
        x_t = st / s0 * x - at * h_phi_1 * m0
        if D1s:
            rhos = torch.tensor([0.5]) if order == 2 else torch.linalg.solve(R[:-1, :-1], b[:-1])
            x_t = x_t - at * B_h * torch.einsum("k,bkc...->bc...", rhos, torch.stack(D1s, dim=1))
        return x_t

    def _correct(self, m_t, order):
        sg, i = self.s.sigmas, self.i
        at, st = alpha_sigma(sg[i])
        _, s0 = alpha_sigma(sg[i - 1])
        l0 = lam(sg[i - 1])
        h = lam(sg[i]) - l0
        m0 = self.outputs[-1]
        rks, D1s = [], []
        for k in range(1, order):
            rk = (lam(sg[i - (k + 1)]) - l0) / h
            rks.append(rk)
            D1s.append((self.outputs[-(k + 1)] - m0) / rk)
        rks.append(1.0)
        R, b, h_phi_1, B_h = self._phi(order, h, torch.tensor(rks))
        rhos = torch.tensor([0.5]) if order == 1 else torch.linalg.solve(R, b)
        x_t = st / s0 * self.last - at * h_phi_1 * m0
        corr = torch.einsum("k,bkc...->bc...", rhos[:-1], torch.stack(D1s, dim=1)) if D1s else 0
        return x_t - at * B_h * (corr + rhos[-1] * (m_t - m0))

    def step(self, eps, x):
        N, i = len(self.s.timesteps), self.i
        m_t = self.convert(eps, x)
        if i > 0 and self.last is not None:
            x = self._correct(m_t, self.this_order)
        self.outputs = self.outputs[1:] + [m_t]
        this = min(self.order, N - i)            # lower_order_final
        self.this_order = min(this, self.lower + 1)
        self.last = x
        x = self._predict(x, self.this_order)
        if self.lower < self.order:
            self.lower += 1
        self.i += 1
        return x


# ---- the sampling loops ------------------------------------------------------

def guided_eps(model_fn, x, t, y, n, cfg, k, C, interval):
    """The first C channels of the (guided) model output at x [n] and time t."""
    on = cfg > 1 and (interval is None or interval[0] <= t <= interval[1])
    tt = torch.full((2 * n if on else n,), float(t), dtype=torch.float32)
    if not on:
        return model_fn(x, tt, y[:n])[:, :C]
    out = model_fn(torch.cat([x, x]), tt, y)
    k = C if k == 0 else min(k, C)
    c, u = out[:n, :C].clone(), out[n:, :C]
    c[:, :k] = u[:, :k] + cfg * (c[:, :k] - u[:, :k])
    return c


def sample(model_fn, solver, steps, labels, shape, num_classes, cfg=1.0, cfg_channels=3, interval=None,
           cosine=False, spacing="linspace", karras=False, order=None, seed=0, noise=None):
    """Final latents [n, C, H, W] float32; counts model evaluations in .evals."""
    torch.manual_seed(seed)
    n, C = len(labels), shape[0]
    y = torch.tensor(list(labels) + [num_classes] * n, dtype=torch.int64)
    evals = [0]

    def eps_at(x, t):
        evals[0] += 1
        return guided_eps(model_fn, x, t, y, n, cfg, cfg_channels, C, interval)

    if solver in ("heun", "midpoint"):
        first = torch.randn(n, *shape)     # sample.py's unused draw
        del first
        z = torch.randn(n, *shape) if noise is None else torch.as_tensor(noise).clone()
        M = steps // 2
        dt = torch.tensor([1.0 / M] * n).view(n, 1, 1, 1)
        for i in range(M, 0, -1):
            v1 = eps_at(z, torch.tensor(i / M, dtype=torch.float32).item())
            if solver == "heun":
                v2 = eps_at(z - dt * v1, torch.tensor((i - 1) / M, dtype=torch.float32).item())
                z = z - dt * (v1 + v2) / 2
            else:
                v2 = eps_at(z - dt / 2 * v1, torch.tensor((i - 0.5) / M, dtype=torch.float32).item())
                z = z - dt * v2
        return z, evals[0]

    sched = Schedule(steps, cosine, spacing, karras)
    x = torch.randn(n, *shape) if noise is None else torch.as_tensor(noise).clone()
    if solver == "unipc":
        sv = UniPC(sched, order or 2)
    else:
        sv = DPMSolverPP(sched, {"dpm++2m": 2, "dpm++3m": 3, "dpm++2m-sde": 2}[solver], sde=solver == "dpm++2m-sde")
    for t in sched.timesteps:
        eps = eps_at(x, float(t))
        if solver == "unipc":
            x = sv.step(eps, x)
        elif solver == "dpm++2m-sde":
            x = sv.step(eps, x, torch.randn(n, *shape))
        else:
            x = sv.step(eps, x)
    return x, evals[0]
