#!/usr/bin/python3
"""Training-side Gaussian diffusion for the shipped Fashion-MNIST models.

Our own implementation of the maths of DiT's diffusion/ package (IDDPM lineage):
  - beta schedules: "linear" (DiT / DiT-MoE, 1e-4..0.02 scaled for 1000 steps) and
    "cosine" (Switch-DiT, Nichol & Dhariwal, s = 0.008, beta clipped at 0.999)
  - training_losses: epsilon prediction with learned range variance; the loss is
    MSE(eps) + VB, where the VB term sees a stop-gradient copy of the mean output
    (DiT's default RESCALED_MSE with 1000 steps, i.e. vb factor 1)
  - samplers for the sanity checks: ancestral DDPM with learned variance and DDIM
    (eta 0), with timestep respacing ("250", "ddim50") and classifier-free guidance
    on the first `cfg_channels` channels.
All schedule arithmetic is float64 (numpy), as upstream.
"""
import math

import numpy as np
import torch


def get_betas(schedule, steps=1000):
    if schedule == "linear":
        scale = 1000 / steps
        return np.linspace(scale * 1e-4, scale * 0.02, steps, dtype=np.float64)
    if schedule == "cosine":
        def abar(s):
            return math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2
        return np.array([min(1 - abar((i + 1) / steps) / abar(i / steps), 0.999)
                         for i in range(steps)], dtype=np.float64)
    raise ValueError(schedule)


def space_timesteps(num_timesteps, section_counts):
    """Which original timesteps to keep ("250", "10,10,10", "ddim50")."""
    if isinstance(section_counts, str):
        if section_counts.startswith("ddim"):
            want = int(section_counts[4:])
            for stride in range(1, num_timesteps):
                if len(range(0, num_timesteps, stride)) == want:
                    return set(range(0, num_timesteps, stride))
            raise ValueError(f"cannot make {want} evenly spaced steps")
        section_counts = [int(x) for x in section_counts.split(",")]
    per = num_timesteps // len(section_counts)
    extra = num_timesteps % len(section_counts)
    start = 0
    out = []
    for i, count in enumerate(section_counts):
        size = per + (1 if i < extra else 0)
        if size < count:
            raise ValueError(f"cannot divide section of {size} steps into {count}")
        frac = 1 if count <= 1 else (size - 1) / (count - 1)
        cur = 0.0
        for _ in range(count):
            out.append(start + round(cur))
            cur += frac
        start += size
    return set(out)


def _extract(arr, t, ndim):
    v = torch.from_numpy(arr).to(t.device)[t].float()
    return v.view(-1, *([1] * (ndim - 1)))


def normal_kl(m1, lv1, m2, lv2):
    return 0.5 * (-1.0 + lv2 - lv1 + torch.exp(lv1 - lv2) + (m1 - m2) ** 2 * torch.exp(-lv2))


def _approx_cdf(x):
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def discretized_gaussian_loglik(x, means, log_scales):
    cx = x - means
    inv = torch.exp(-log_scales)
    cdf_plus = _approx_cdf(inv * (cx + 1.0 / 255.0))
    cdf_min = _approx_cdf(inv * (cx - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus, delta))


def mean_flat(x):
    return x.mean(dim=list(range(1, x.ndim)))


class Diffusion:
    def __init__(self, betas, timestep_map=None):
        self.betas = np.asarray(betas, dtype=np.float64)
        self.T = len(self.betas)
        self.timestep_map = np.arange(self.T) if timestep_map is None else np.asarray(timestep_map)
        a = 1.0 - self.betas
        self.abar = np.cumprod(a)
        self.abar_prev = np.append(1.0, self.abar[:-1])
        self.sqrt_abar = np.sqrt(self.abar)
        self.sqrt_1m_abar = np.sqrt(1.0 - self.abar)
        self.sqrt_recip_abar = np.sqrt(1.0 / self.abar)
        self.sqrt_recipm1_abar = np.sqrt(1.0 / self.abar - 1)
        self.post_var = self.betas * (1.0 - self.abar_prev) / (1.0 - self.abar)
        self.post_logvar_clipped = np.log(np.append(self.post_var[1], self.post_var[1:])) \
            if self.T > 1 else np.array([])
        self.post_c1 = self.betas * np.sqrt(self.abar_prev) / (1.0 - self.abar)
        self.post_c2 = (1.0 - self.abar_prev) * np.sqrt(a) / (1.0 - self.abar)

    @classmethod
    def create(cls, schedule="linear", respacing=None, steps=1000):
        base = get_betas(schedule, steps)
        if not respacing:
            return cls(base)
        keep = sorted(space_timesteps(steps, respacing))
        abar = np.cumprod(1.0 - base)
        last, nb = 1.0, []
        for i in keep:
            nb.append(1 - abar[i] / last)
            last = abar[i]
        return cls(np.array(nb), keep)

    # ---- forward process -------------------------------------------------
    def q_sample(self, x0, t, noise):
        return _extract(self.sqrt_abar, t, x0.ndim) * x0 + _extract(self.sqrt_1m_abar, t, x0.ndim) * noise

    def q_posterior(self, x0, xt, t):
        mean = _extract(self.post_c1, t, xt.ndim) * x0 + _extract(self.post_c2, t, xt.ndim) * xt
        return mean, _extract(self.post_var, t, xt.ndim), _extract(self.post_logvar_clipped, t, xt.ndim)

    def p_mean_variance(self, out, xt, t):
        """out: model output [N, 2C, ...] (eps, v) in the learned-range parameterisation."""
        C = xt.shape[1]
        eps, v = out[:, :C], out[:, C:]
        min_log = _extract(self.post_logvar_clipped, t, xt.ndim)
        max_log = _extract(np.log(self.betas), t, xt.ndim)
        frac = (v + 1) / 2
        logvar = frac * max_log + (1 - frac) * min_log
        x0 = _extract(self.sqrt_recip_abar, t, xt.ndim) * xt - _extract(self.sqrt_recipm1_abar, t, xt.ndim) * eps
        mean, _, _ = self.q_posterior(x0, xt, t)
        return mean, logvar, x0, eps

    # ---- training ----------------------------------------------------------
    def training_losses(self, out, x0, xt, t, noise):
        """Per-sample mse and vb terms given the model output for xt (hybrid loss)."""
        C = x0.shape[1]
        eps = out[:, :C]
        frozen = torch.cat([eps.detach(), out[:, C:]], dim=1)
        mean, logvar, _, _ = self.p_mean_variance(frozen, xt, t)
        tmean, _, tlogvar = self.q_posterior(x0, xt, t)
        kl = mean_flat(normal_kl(tmean, tlogvar, mean, logvar)) / math.log(2.0)
        nll = -mean_flat(discretized_gaussian_loglik(x0, mean, 0.5 * logvar)) / math.log(2.0)
        vb = torch.where(t == 0, nll, kl)
        mse = mean_flat((noise - eps) ** 2)
        return mse, vb

    # ---- sampling (sanity checks) --------------------------------------------
    def _guided(self, model, x, t, y, cfg, cfg_channels, null_class):
        tt = torch.from_numpy(self.timestep_map[t]).long()
        if cfg <= 1:
            return model(x, tt, y)
        n = x.shape[0]
        out = model(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([y, torch.full_like(y, null_class)]))
        cond, unc = out[:n], out[n:]
        k = cond.shape[1] if cfg_channels == "all" else int(cfg_channels)
        g = unc[:, :k] + cfg * (cond[:, :k] - unc[:, :k])
        return torch.cat([g, cond[:, k:]], dim=1)

    @torch.no_grad()
    def sample(self, model, noise, y, cfg=1.0, cfg_channels=3, null_class=10, method="ddpm",
               generator=None):
        x = noise
        n = x.shape[0]
        for i in reversed(range(self.T)):
            t = np.full(n, i, dtype=np.int64)
            tl = torch.from_numpy(t)
            out = self._guided(model, x, t, y, cfg, cfg_channels, null_class)
            mean, logvar, x0, eps = self.p_mean_variance(out, x, tl)
            if method == "ddpm":
                if i > 0:
                    z = torch.randn(x.shape, generator=generator)
                    x = mean + torch.exp(0.5 * logvar) * z
                else:
                    x = mean
            else:  # ddim, eta 0
                ab_prev = float(self.abar_prev[i])
                x = x0 * math.sqrt(ab_prev) + math.sqrt(1 - ab_prev) * eps
        return x
