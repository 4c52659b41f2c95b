"""PyTorch reference modules for moedit's transformer tests.

Usage (library, run with Debian's /usr/bin/python3, torch 1.13 CPU, no timm):

    import sys; sys.path.insert(0, "tools")
    from dit_reference import build_model
    m = build_model("moe", depth=2, hidden_size=16, num_heads=2, num_experts=8,
                    num_experts_per_tok=2).eval()
    out = m(x, t, y)                     # x [N,C,H,W], t [N], y [N] int64
    torch.save(m.state_dict(), "m.pt")   # same keys/shapes as upstream

    /usr/bin/python3 tools/dit_reference.py     # self-check: prints key counts

Written from a reading of the upstream repositories (facebookresearch/DiT
models.py, feizc/DiT-MoE models.py, byeongjun-park/Switch-DiT models/DiT/models.py,
models/MoE.py, models/taskrouting.py, models/parallel_linear); nothing is copied.
Module attribute names are chosen so that state_dict() keys, shapes and
ordering equal what the upstream classes produce.  Only eval semantics are
implemented (no label dropout, no aux losses, no JSD prior loss).

Families (build_model(kind, ...)):
  "dit"     dense DiT (timm Attention + timm Mlp with tanh GELU)
  "moe"     DiT-MoE: SparseMoeBlock (softmax gate, top-k, raw probabilities,
            SwiGLU experts, shared expert of width 2*D); attention "timm" or
            "qknorm" (FlashSelfMHAModified: Wqkv, q_norm/k_norm LayerNorm over
            head_dim with affine, out_proj) computed here in float32
  "switch"  Switch-DiT with routing "DMoE" (TaskMoE routers) or "DTR"
            (TaskRouter fixed channel masks)
"""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def modulate(x, shift, scale):
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


# --------------------------------------------------------------------------
# positional embedding (2-D sin-cos, MAE style as used by DiT)
# --------------------------------------------------------------------------

def _sincos_1d(dim, pos):
    # pos: flat float array of positions; returns [M, dim] = [sin | cos]
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    ang = np.outer(pos.reshape(-1).astype(np.float64), omega)
    return np.concatenate([np.sin(ang), np.cos(ang)], axis=1)


def sincos_pos_embed_2d(dim, grid):
    """[grid*grid, dim]; token index = row*grid + col.  Upstream builds its grid
    with meshgrid(w, h), so the FIRST half of the channels encodes the column
    (w) coordinate and the second half the row (h) coordinate."""
    rows, cols = np.meshgrid(np.arange(grid, dtype=np.float32),
                             np.arange(grid, dtype=np.float32), indexing="ij")
    first = _sincos_1d(dim // 2, cols)   # column coordinate
    second = _sincos_1d(dim // 2, rows)  # row coordinate
    return np.concatenate([first, second], axis=1)


# --------------------------------------------------------------------------
# embedders
# --------------------------------------------------------------------------

class PatchEmbed(nn.Module):
    """timm PatchEmbed: conv p x p stride p, flatten to tokens (row-major)."""

    def __init__(self, img_size, patch_size, in_chans, embed_dim):
        super().__init__()
        self.patch_size = (patch_size, patch_size)
        self.num_patches = (img_size // patch_size) ** 2
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, stride=patch_size, bias=True)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class TimestepEmbedder(nn.Module):
    def __init__(self, hidden_size, freq_size=256):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(freq_size, hidden_size), nn.SiLU(),
                                 nn.Linear(hidden_size, hidden_size))
        self.freq_size = freq_size

    @staticmethod
    def sinusoid(t, dim, max_period=10000):
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) *
                          torch.arange(half, dtype=torch.float32) / half)
        a = t[:, None].float() * freqs[None]
        return torch.cat([torch.cos(a), torch.sin(a)], dim=-1)

    def forward(self, t):
        return self.mlp(self.sinusoid(t, self.freq_size))


class LabelEmbedder(nn.Module):
    def __init__(self, num_classes, hidden_size, dropout_prob=0.1):
        super().__init__()
        extra = 1 if dropout_prob > 0 else 0   # the null-class row
        self.embedding_table = nn.Embedding(num_classes + extra, hidden_size)
        self.num_classes = num_classes

    def forward(self, y):
        return self.embedding_table(y)


# --------------------------------------------------------------------------
# attention
# --------------------------------------------------------------------------

class Attention(nn.Module):
    """timm vision_transformer.Attention with qkv_bias=True, no qk norm."""

    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim, bias=True)

    def forward(self, x):
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]                      # [b, h, n, hd]
        att = (q * self.head_dim ** -0.5) @ k.transpose(-2, -1)
        att = att.softmax(dim=-1)
        o = (att @ v).transpose(1, 2).reshape(b, n, d)
        return self.proj(o)


class QKNormAttention(nn.Module):
    """DiT-MoE FlashSelfMHAModified(qk_norm=True): Wqkv -> view [b,s,3,h,hd],
    LayerNorm(hd, affine, eps 1e-6) on q and k (weights shared by all heads),
    softmax(q k^T / sqrt(hd)) v, out_proj.  Upstream casts q,k to fp16 for
    flash-attn; here everything stays float32."""

    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.Wqkv = nn.Linear(dim, 3 * dim, bias=True)
        self.q_norm = nn.LayerNorm(self.head_dim, elementwise_affine=True, eps=1e-6)
        self.k_norm = nn.LayerNorm(self.head_dim, elementwise_affine=True, eps=1e-6)
        self.out_proj = nn.Linear(dim, dim, bias=True)

    def forward(self, x):
        b, s, d = x.shape
        qkv = self.Wqkv(x).view(b, s, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.unbind(dim=2)                            # [b, s, h, hd]
        q = self.q_norm(q).transpose(1, 2)
        k = self.k_norm(k).transpose(1, 2)
        v = v.transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * self.head_dim ** -0.5
        o = (att.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, s, d)
        return self.out_proj(o)


# --------------------------------------------------------------------------
# feed-forwards
# --------------------------------------------------------------------------

class Mlp(nn.Module):
    """timm Mlp: fc1, GELU(tanh), fc2 (dropout 0)."""

    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class MoeMLP(nn.Module):
    """SwiGLU expert, no biases: down(silu(gate(x)) * up(x)).  pretraining_tp
    only splits the matmuls along the intermediate dimension (same maths)."""

    def __init__(self, dim, inter, pretraining_tp=2):
        super().__init__()
        self.gate_proj = nn.Linear(dim, inter, bias=False)
        self.up_proj = nn.Linear(dim, inter, bias=False)
        self.down_proj = nn.Linear(inter, dim, bias=False)
        self.tp = pretraining_tp
        self.inter = inter

    def forward(self, x):
        if self.tp > 1:
            sl = self.inter // self.tp
            gs = self.gate_proj.weight.split(sl, dim=0)
            us = self.up_proj.weight.split(sl, dim=0)
            ds = self.down_proj.weight.split(sl, dim=1)
            g = torch.cat([F.linear(x, w) for w in gs], dim=-1)
            u = torch.cat([F.linear(x, w) for w in us], dim=-1)
            h = (F.silu(g) * u).split(sl, dim=-1)
            return sum(F.linear(h[i], ds[i]) for i in range(self.tp))
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class MoEGate(nn.Module):
    """weight [E, D], no bias.  scores = softmax(x W^T); top-k; the chosen
    weights are the raw probabilities (upstream norm_topk_prob = False)."""

    def __init__(self, dim, num_experts, top_k):
        super().__init__()
        self.top_k = top_k
        self.weight = nn.Parameter(torch.empty(num_experts, dim))

    def forward(self, h):
        scores = F.linear(h.reshape(-1, h.shape[-1]), self.weight).softmax(dim=-1)
        self.last_scores = scores.detach().clone()
        # upstream uses sorted=False (order unspecified); we sort descending
        w, idx = torch.topk(scores, k=self.top_k, dim=-1, sorted=True)
        return idx, w


class SparseMoeBlock(nn.Module):
    def __init__(self, dim, mlp_ratio=4, num_experts=8, top_k=2, pretraining_tp=2,
                 n_shared_experts=2):
        super().__init__()
        self.top_k = top_k
        self.experts = nn.ModuleList([MoeMLP(dim, mlp_ratio * dim, pretraining_tp)
                                      for _ in range(num_experts)])
        self.gate = MoEGate(dim, num_experts, top_k)
        self.shared_experts = MoeMLP(dim, n_shared_experts * dim, pretraining_tp)
        self.last_routes = None   # (idx [N*T, k], weights [N*T, k]) of the last call

    def forward(self, h):
        shape = h.shape
        idx, w = self.gate(h)
        self.last_routes = (idx.reshape(shape[0], shape[1], -1).clone(),
                            w.reshape(shape[0], shape[1], -1).clone())
        self.last_scores = self.gate.last_scores.reshape(shape[0], shape[1], -1)
        flat = h.reshape(-1, shape[-1])
        out = torch.zeros_like(flat)
        for e, expert in enumerate(self.experts):
            tok, slot = (idx == e).nonzero(as_tuple=True)
            if tok.numel() == 0:
                continue
            out.index_add_(0, tok, expert(flat[tok]) * w[tok, slot].unsqueeze(-1))
        return out.reshape(shape) + self.shared_experts(h)


# --------------------------------------------------------------------------
# blocks
# --------------------------------------------------------------------------

class DiTBlock(nn.Module):
    """adaLN-Zero block.  ffn: "mlp" (dense) or "moe"; attn: "timm"/"qknorm".
    With a mask m (Switch-DiT): y = block(x*m); x = y + (1-m)*x."""

    def __init__(self, dim, heads, mlp_ratio=4, ffn="mlp", attn="timm",
                 num_experts=8, top_k=2, pretraining_tp=2):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = QKNormAttention(dim, heads) if attn == "qknorm" else Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ffn = ffn
        if ffn == "moe":
            self.moe = SparseMoeBlock(dim, mlp_ratio, num_experts, top_k, pretraining_tp)
        else:
            self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def forward(self, x, c, mask=None):
        sh1, sc1, g1, sh2, sc2, g2 = self.adaLN_modulation(c).chunk(6, dim=1)
        ff = self.moe if self.ffn == "moe" else self.mlp
        h = x if mask is None else x * mask
        h = h + g1.unsqueeze(1) * self.attn(modulate(self.norm1(h), sh1, sc1))
        h = h + g2.unsqueeze(1) * ff(modulate(self.norm2(h), sh2, sc2))
        return h if mask is None else h + (1 - mask) * x


class FinalLayer(nn.Module):
    def __init__(self, dim, patch, out_ch):
        super().__init__()
        self.norm_final = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(dim, patch * patch * out_ch)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))

    def forward(self, x, c):
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


# --------------------------------------------------------------------------
# Switch-DiT routers
# --------------------------------------------------------------------------

def switch_unit_mapping(unit_count, task_count, alpha, beta):
    """[task_count, unit_count] 0/1: each task (timestep) enables a contiguous
    window of int(unit_count*beta) channels starting at
    round((t/(task_count-1))**alpha * (unit_count - width))."""
    width = int(unit_count * beta)
    start = np.round((np.linspace(0, 1, task_count) ** alpha) * (unit_count - width)).astype(np.int64)
    m = torch.zeros(task_count, unit_count)
    for t in range(task_count):
        m[t, start[t]:start[t] + width] = 1.0
    return m


class ParallelExperts(nn.Module):
    """w [E, D_in, D_out] used as x @ w[e]; b [E, D_out]."""

    def __init__(self, num_experts, d_in, d_out):
        super().__init__()
        self.w = nn.Parameter(torch.empty(num_experts, d_in, d_out))
        self.b = nn.Parameter(torch.zeros(num_experts, d_out))


class TaskMoE(nn.Module):
    """DMoE router: gate probs from f_gate(SiLU(t_embedder(all task ids))),
    picked at row t; mask = 1 + sum_k g_k (x @ w_k + b_k) per token."""

    def __init__(self, dim, num_experts, k):
        super().__init__()
        self.k = k
        self.f_gate = nn.Sequential(nn.SiLU(), nn.Linear(dim, num_experts, bias=True))
        self.experts = ParallelExperts(num_experts, dim, dim)
        self.last_probs = None
        self.last_routes = None

    def forward(self, x, full_time_emb, t_idx):
        probs_all = torch.softmax(self.f_gate(full_time_emb), dim=1)   # [tasks, E]
        g, idx = probs_all.topk(self.k, dim=1)                          # sorted desc
        probs, g, idx = probs_all[t_idx], g[t_idx], idx[t_idx]         # [N, E], [N, k]
        self.last_probs = probs.clone()
        self.last_routes = (idx.clone(), g.clone())
        out = torch.zeros_like(x)
        for j in range(self.k):
            w = self.experts.w[idx[:, j]]                   # [N, D, D]
            b = self.experts.b[idx[:, j]]                   # [N, D]
            out = out + g[:, j, None, None] * (torch.bmm(x, w) + b[:, None, :])
        return 1 + out


class TaskRouter(nn.Module):
    """DTR router: fixed 0/1 channel mask per timestep, buffer _unit_mapping."""

    def __init__(self, dim, taskcount=1000, alpha=4.0, beta=0.8):
        super().__init__()
        self.register_buffer("_unit_mapping", switch_unit_mapping(dim, taskcount, alpha, beta))

    def mask(self, t_idx):
        return self._unit_mapping[t_idx].unsqueeze(1)      # [N, 1, D]


class DiffusionPrior(nn.Module):
    """Training-only (JSD prior); kept for its buffer prior._unit_mapping
    [taskcount, depth*E] (upstream: alpha 4, beta k/E)."""

    def __init__(self, taskcount, depth, k, num_experts):
        super().__init__()
        self.register_buffer("_unit_mapping",
                             switch_unit_mapping(depth * num_experts, taskcount, 4.0, k / num_experts))


# --------------------------------------------------------------------------
# the models
# --------------------------------------------------------------------------

class DiTFamily(nn.Module):
    """kind: "dit", "moe", "switch".  Attribute registration order matches
    upstream so state_dict() ordering is the same."""

    def __init__(self, kind="dit", input_size=8, patch_size=2, in_channels=4,
                 hidden_size=32, depth=2, num_heads=4, mlp_ratio=4, num_classes=10,
                 learn_sigma=True, class_dropout_prob=0.1,
                 num_experts=8, num_experts_per_tok=2, pretraining_tp=2, attention="timm",
                 routing="DMoE", taskcount=1000, dtr_alpha=4.0, dtr_beta=0.8):
        super().__init__()
        self.kind = kind
        self.in_channels = in_channels
        self.out_channels = in_channels * 2 if learn_sigma else in_channels
        self.patch_size = patch_size
        self.routing = routing if kind == "switch" else None
        self.x_embedder = PatchEmbed(input_size, patch_size, in_channels, hidden_size)
        self.t_embedder = TimestepEmbedder(hidden_size)
        if kind == "switch" and num_classes == 1:
            class_dropout_prob = 0.0       # Switch-DiT: unconditional => no null row
        self.y_embedder = LabelEmbedder(num_classes, hidden_size, class_dropout_prob)
        T = self.x_embedder.num_patches
        pe = sincos_pos_embed_2d(hidden_size, int(round(T ** 0.5)))
        self.pos_embed = nn.Parameter(torch.from_numpy(pe).float().unsqueeze(0), requires_grad=False)

        if kind == "switch":
            if routing == "DMoE":
                self.register_buffer("full_time", torch.arange(0, taskcount))
                self.prior = DiffusionPrior(taskcount, depth, num_experts_per_tok, num_experts)
                self.routers = nn.ModuleList([TaskMoE(hidden_size, num_experts, num_experts_per_tok)
                                              for _ in range(depth)])
            elif routing == "DTR":
                self.routers = nn.ModuleList([TaskRouter(hidden_size, taskcount, dtr_alpha, dtr_beta)
                                              for _ in range(depth)])
            else:
                raise ValueError(routing)
        ffn = "moe" if kind == "moe" else "mlp"
        attn = attention if kind == "moe" else "timm"
        self.blocks = nn.ModuleList([
            DiTBlock(hidden_size, num_heads, mlp_ratio, ffn, attn, num_experts,
                     num_experts_per_tok, pretraining_tp) for _ in range(depth)])
        self.final_layer = FinalLayer(hidden_size, patch_size, self.out_channels)

    def unpatchify(self, x):
        c, p = self.out_channels, self.patch_size
        h = w = int(round(x.shape[1] ** 0.5))
        x = x.reshape(x.shape[0], h, w, p, p, c)
        return torch.einsum("nhwpqc->nchpwq", x).reshape(x.shape[0], c, h * p, w * p)

    def forward(self, x, t, y):
        x = self.x_embedder(x) + self.pos_embed
        full = None
        if self.routing == "DMoE":
            # upstream embeds all task ids once and indexes with t (integer)
            t_idx = t.long()
            full = self.t_embedder(self.full_time)
            temb = full[t_idx]
        else:
            t_idx = t.long()
            temb = self.t_embedder(t)
        c = temb + self.y_embedder(y)
        for i, blk in enumerate(self.blocks):
            mask = None
            if self.routing == "DMoE":
                mask = self.routers[i](x, full, t_idx)
            elif self.routing == "DTR":
                mask = self.routers[i].mask(t_idx)
            x = blk(x, c, mask)
        return self.unpatchify(self.final_layer(x, c))

    def gate_scores(self):
        """Per layer all E gate probabilities of the last forward:
        DiT-MoE [N, T, E]; Switch-DiT DMoE [N, E]."""
        if self.kind == "moe":
            return [b.moe.last_scores for b in self.blocks]
        if self.routing == "DMoE":
            return [r.last_probs for r in self.routers]
        return None

    def routes(self):
        """Per layer (idx [N,T,k] or [N,k], weights) of the last forward."""
        if self.kind == "moe":
            return [b.moe.last_routes for b in self.blocks]
        if self.routing == "DMoE":
            return [r.last_routes for r in self.routers]
        return None


def build_model(kind, **kw):
    return DiTFamily(kind=kind, **kw)


if __name__ == "__main__":
    for kind, kw in [("dit", {}), ("moe", {}), ("moe", {"attention": "qknorm"}),
                     ("switch", {"routing": "DMoE", "num_experts": 3}),
                     ("switch", {"routing": "DTR"})]:
        m = build_model(kind, **kw)
        sd = m.state_dict()
        print(kind, kw, len(sd), "tensors", sum(v.numel() for v in sd.values()), "values")
