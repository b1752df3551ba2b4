"""Test-only reference of mamba_ssm's language model (pure PyTorch, no CUDA, no dnalm imports).

Re-expressed from state-spaces/mamba (v2.2): ``models/config_mamba.py`` (MambaConfig), ``models/mixer_seq_simple.py``
(create_block, MixerModel, MambaLMHeadModel), ``modules/block.py`` (Block: Add -> Norm -> Mixer with a separate
residual stream), ``modules/mamba_simple.py`` (Mamba with ``selective_scan_ref``), ``modules/mamba2.py`` (Mamba2
with ``ssd_minimal_discrete`` from ``modules/ssd_minimal.py`` and ``ops/triton/layernorm_gated.rms_norm_ref``),
``modules/mha.py`` (MHA with flash_attn's non-interleaved rotary embedding), ``modules/mlp.py`` (GatedMLP with
``multiple_of=128``) and ``ops/triton/layer_norm.RMSNorm``. Module tree and parameter names are the published ones,
so a ``MambaLMHeadModel`` state dict loads here with ``strict=True``. The fused CUDA paths are replaced by their
published reference functions; ``einops.rearrange`` calls by the equivalent reshapes.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class MambaConfig:
    d_model: int = 2560
    d_intermediate: int = 0
    n_layer: int = 64
    vocab_size: int = 50277
    ssm_cfg: dict = field(default_factory=dict)
    attn_layer_idx: list = field(default_factory=list)
    attn_cfg: dict = field(default_factory=dict)
    rms_norm: bool = True
    residual_in_fp32: bool = True
    fused_add_norm: bool = True
    pad_vocab_size_multiple: int = 8
    tie_embeddings: bool = True


# ------------------------------------------------------------------------------------------------ norms


class RMSNorm(nn.Module):
    """mamba_ssm.ops.triton.layer_norm.RMSNorm (reference semantics: rms_norm_ref)."""

    def __init__(self, hidden_size, eps=1e-5, device=None, dtype=None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(hidden_size, device=device, dtype=dtype))
        self.register_parameter("bias", None)

    def forward(self, x):
        dtype = x.dtype
        xf = x.float() if x.dtype != torch.float64 else x  # (float64 kept for float64 tests)
        rstd = 1 / torch.sqrt(xf.square().mean(dim=-1, keepdim=True) + self.eps)
        return (xf * rstd * self.weight.to(xf.dtype)).to(dtype)


def rms_norm_gated_ref(x, weight, z=None, eps=1e-6, group_size=None, norm_before_gate=True):
    """ops/triton/layernorm_gated.rms_norm_ref."""
    dtype = x.dtype
    if x.dtype != torch.float64:  # (float64 kept for float64 tests)
        x, weight = x.float(), weight.float()
    if z is not None and not norm_before_gate:
        x = x * F.silu(z.to(x.dtype))
    if group_size is None:
        rstd = 1 / torch.sqrt(x.square().mean(dim=-1, keepdim=True) + eps)
        out = x * rstd * weight
    else:
        xg = x.reshape(*x.shape[:-1], -1, group_size)
        rstd = 1 / torch.sqrt(xg.square().mean(dim=-1, keepdim=True) + eps)
        out = (xg * rstd).reshape(x.shape) * weight
    if z is not None and norm_before_gate:
        out = out * F.silu(z.to(out.dtype))
    return out.to(dtype)


class RMSNormGated(nn.Module):
    def __init__(self, hidden_size, eps=1e-5, group_size=None, norm_before_gate=True, device=None, dtype=None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(hidden_size, device=device, dtype=dtype))
        self.register_parameter("bias", None)
        self.group_size = group_size
        self.norm_before_gate = norm_before_gate

    def forward(self, x, z=None):
        return rms_norm_gated_ref(x, self.weight, z=z, eps=self.eps, group_size=self.group_size,
                                  norm_before_gate=self.norm_before_gate)


# ------------------------------------------------------------------------------------------------ Mamba (v1)


def selective_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                       return_last_state=False):
    """ops/selective_scan_interface.selective_scan_ref: u, delta, z (B, D, L); A (D, N); B, C (B, N, L)."""
    dtype_in = u.dtype
    u, delta = u.float() if u.dtype != torch.float64 else u, delta.float() if delta.dtype != torch.float64 else delta
    if delta_bias is not None:
        delta = delta + delta_bias[..., None].to(delta.dtype)
    if delta_softplus:
        delta = F.softplus(delta)
    batch, dim, dstate = u.shape[0], A.shape[0], A.shape[1]
    B, C = B.to(delta.dtype), C.to(delta.dtype)
    x = A.new_zeros((batch, dim, dstate), dtype=delta.dtype)
    ys = []
    deltaA = torch.exp(torch.einsum("bdl,dn->bdln", delta, A.to(delta.dtype)))
    deltaB_u = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)
    last_state = None
    for i in range(u.shape[2]):
        x = deltaA[:, :, i] * x + deltaB_u[:, :, i]
        y = torch.einsum("bdn,bn->bd", x, C[:, :, i])
        if i == u.shape[2] - 1:
            last_state = x
        ys.append(y)
    y = torch.stack(ys, dim=2)  # (batch dim L)
    out = y if D is None else y + u * D.to(y.dtype)[:, None]
    if z is not None:
        out = out * F.silu(z.to(out.dtype))
    out = out.to(dtype=dtype_in)
    return out if not return_last_state else (out, last_state)


class Mamba(nn.Module):
    """modules/mamba_simple.Mamba (no fused path)."""

    def __init__(self, d_model, d_state=16, d_conv=4, expand=2, dt_rank="auto", dt_min=0.001, dt_max=0.1,
                 dt_init="random", dt_scale=1.0, dt_init_floor=1e-4, conv_bias=True, bias=False,
                 use_fast_path=True, layer_idx=None, device=None, dtype=None):
        factory_kwargs = {"device": device, "dtype": dtype}
        super().__init__()
        self.d_model, self.d_state, self.d_conv, self.expand = d_model, d_state, d_conv, expand
        self.d_inner = int(self.expand * self.d_model)
        self.dt_rank = math.ceil(self.d_model / 16) if dt_rank == "auto" else dt_rank
        self.layer_idx = layer_idx
        self.in_proj = nn.Linear(self.d_model, self.d_inner * 2, bias=bias, **factory_kwargs)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, bias=conv_bias, kernel_size=d_conv,
                                groups=self.d_inner, padding=d_conv - 1, **factory_kwargs)
        self.act = nn.SiLU()
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + self.d_state * 2, bias=False, **factory_kwargs)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True, **factory_kwargs)
        A = torch.arange(1, self.d_state + 1, dtype=torch.float32, device=device).repeat(self.d_inner, 1)
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(self.d_inner, device=device))
        self.out_proj = nn.Linear(self.d_inner, self.d_model, bias=bias, **factory_kwargs)

    def forward(self, hidden_states, inference_params=None):
        batch, seqlen, dim = hidden_states.shape
        xz = (self.in_proj.weight @ hidden_states.reshape(-1, dim).t()).reshape(-1, batch, seqlen).permute(1, 0, 2)
        if self.in_proj.bias is not None:
            xz = xz + self.in_proj.bias.to(dtype=xz.dtype)[:, None]
        A = -torch.exp(self.A_log.float())
        x, z = xz.chunk(2, dim=1)
        x = self.act(self.conv1d(x)[..., :seqlen])
        x_dbl = self.x_proj(x.permute(0, 2, 1).reshape(batch * seqlen, -1))  # (bl d)
        dt, B, C = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = self.dt_proj.weight @ dt.t()
        dt = dt.reshape(-1, batch, seqlen).permute(1, 0, 2)  # d (b l) -> b d l
        B = B.reshape(batch, seqlen, -1).permute(0, 2, 1).contiguous()
        C = C.reshape(batch, seqlen, -1).permute(0, 2, 1).contiguous()
        y = selective_scan_ref(x, dt, A.to(x.dtype) if x.dtype == torch.float64 else A, B, C,
                               self.D.float() if x.dtype != torch.float64 else self.D, z=z,
                               delta_bias=self.dt_proj.bias.float() if x.dtype != torch.float64 else self.dt_proj.bias,
                               delta_softplus=True)
        return self.out_proj(y.permute(0, 2, 1))


# ------------------------------------------------------------------------------------------------ Mamba2


def segsum(x):
    T = x.size(-1)
    x = x[..., None].expand(*x.shape, T)
    mask = torch.tril(torch.ones(T, T, device=x.device, dtype=bool), diagonal=-1)
    x = x.masked_fill(~mask, 0)
    x_segsum = torch.cumsum(x, dim=-2)
    mask = torch.tril(torch.ones(T, T, device=x.device, dtype=bool), diagonal=0)
    return x_segsum.masked_fill(~mask, -torch.inf)


def ssd_minimal_discrete(X, A, B, C, block_len, initial_states=None):
    """modules/ssd_minimal.ssd_minimal_discrete. X (b, L, h, p); A (b, L, h); B, C (b, L, h, n)."""
    b, L = X.shape[:2]
    c = L // block_len
    X, A, B, C = (t.reshape(b, c, block_len, *t.shape[2:]) for t in (X, A, B, C))
    A = A.permute(0, 3, 1, 2)  # b c l h -> b h c l
    A_cumsum = torch.cumsum(A, dim=-1)
    Lm = torch.exp(segsum(A))
    Y_diag = torch.einsum("bclhn,bcshn,bhcls,bcshp->bclhp", C, B, Lm, X)
    decay_states = torch.exp(A_cumsum[:, :, :, -1:] - A_cumsum)
    states = torch.einsum("bclhn,bhcl,bclhp->bchpn", B, decay_states, X)
    if initial_states is None:
        initial_states = torch.zeros_like(states[:, :1])
    states = torch.cat([initial_states, states], dim=1)
    decay_chunk = torch.exp(segsum(F.pad(A_cumsum[:, :, :, -1], (1, 0))))
    new_states = torch.einsum("bhzc,bchpn->bzhpn", decay_chunk, states)
    states, final_state = new_states[:, :-1], new_states[:, -1]
    state_decay_out = torch.exp(A_cumsum)
    Y_off = torch.einsum("bclhn,bchpn,bhcl->bclhp", C, states, state_decay_out)
    return (Y_diag + Y_off).reshape(b, c * block_len, *Y_diag.shape[3:]), final_state


class Mamba2(nn.Module):
    """modules/mamba2.Mamba2 (d_ssm = d_inner, no tensor parallelism), scan by ssd_minimal_discrete."""

    def __init__(self, d_model, d_state=128, d_conv=4, conv_init=None, expand=2, headdim=64, d_ssm=None,
                 ngroups=1, A_init_range=(1, 16), D_has_hdim=False, rmsnorm=True, norm_before_gate=False,
                 dt_min=0.001, dt_max=0.1, dt_init_floor=1e-4, dt_limit=(0.0, float("inf")), bias=False,
                 conv_bias=True, chunk_size=256, use_mem_eff_path=True, layer_idx=None, device=None, dtype=None):
        factory_kwargs = {"device": device, "dtype": dtype}
        super().__init__()
        self.d_model, self.d_state, self.d_conv, self.expand = d_model, d_state, d_conv, expand
        self.d_inner = self.expand * self.d_model
        self.headdim, self.ngroups = headdim, ngroups
        self.d_ssm = self.d_inner if d_ssm is None else d_ssm
        self.nheads = self.d_ssm // self.headdim
        self.D_has_hdim, self.rmsnorm, self.norm_before_gate = D_has_hdim, rmsnorm, norm_before_gate
        self.dt_limit, self.chunk_size, self.layer_idx = dt_limit, chunk_size, layer_idx
        d_in_proj = 2 * self.d_inner + 2 * self.ngroups * self.d_state + self.nheads
        self.in_proj = nn.Linear(self.d_model, d_in_proj, bias=bias, **factory_kwargs)
        conv_dim = self.d_ssm + 2 * self.ngroups * self.d_state
        self.conv1d = nn.Conv1d(conv_dim, conv_dim, bias=conv_bias, kernel_size=d_conv, groups=conv_dim,
                                padding=d_conv - 1, **factory_kwargs)
        self.act = nn.SiLU()
        self.dt_bias = nn.Parameter(torch.zeros(self.nheads, **factory_kwargs))
        self.A_log = nn.Parameter(torch.log(torch.empty(self.nheads, dtype=torch.float32).uniform_(*A_init_range)))
        self.D = nn.Parameter(torch.ones(self.d_ssm if self.D_has_hdim else self.nheads, device=device))
        if self.rmsnorm:
            self.norm = RMSNormGated(self.d_ssm, eps=1e-5, norm_before_gate=self.norm_before_gate,
                                     group_size=self.d_ssm // ngroups, **factory_kwargs)
        self.out_proj = nn.Linear(self.d_inner, self.d_model, bias=bias, **factory_kwargs)

    def forward(self, u, inference_params=None):
        batch, seqlen, _ = u.shape
        zxbcdt = self.in_proj(u)
        A = -torch.exp(self.A_log.float())
        d_mlp = (zxbcdt.shape[-1] - 2 * self.d_ssm - 2 * self.ngroups * self.d_state - self.nheads) // 2
        _z0, _x0, z, xBC, dt = torch.split(
            zxbcdt, [d_mlp, d_mlp, self.d_ssm, self.d_ssm + 2 * self.ngroups * self.d_state, self.nheads], dim=-1)
        xBC = self.act(self.conv1d(xBC.transpose(1, 2)).transpose(1, 2)[:, :seqlen])
        x, B, C = torch.split(xBC, [self.d_ssm, self.ngroups * self.d_state, self.ngroups * self.d_state], dim=-1)
        # mamba_chunk_scan_combined(x, dt, A, B, C, chunk_size, D, z, dt_bias, dt_softplus=True, dt_limit)
        cdt = torch.promote_types(x.dtype, torch.float32)
        dtf = F.softplus(dt.to(cdt) + self.dt_bias.to(cdt))
        if self.dt_limit != (0.0, float("inf")):
            dtf = dtf.clamp(*self.dt_limit)
        xh = x.to(cdt).reshape(batch, seqlen, self.nheads, self.headdim)
        Bh = B.to(cdt).reshape(batch, seqlen, self.ngroups, self.d_state).repeat_interleave(
            self.nheads // self.ngroups, dim=2)
        Ch = C.to(cdt).reshape(batch, seqlen, self.ngroups, self.d_state).repeat_interleave(
            self.nheads // self.ngroups, dim=2)
        pad = (-seqlen) % self.chunk_size
        padt = lambda t: F.pad(t, (0, 0) * (t.dim() - 2) + (0, pad))
        y, _ = ssd_minimal_discrete(padt(xh * dtf[..., None]), padt(A.to(cdt) * dtf), padt(Bh), padt(Ch),
                                    self.chunk_size)
        y = y[:, :seqlen]
        Dv = self.D.to(cdt)
        y = y + xh * (Dv.reshape(self.nheads, self.headdim) if self.D_has_hdim else Dv[:, None])
        if not self.rmsnorm:
            y = y * F.silu(z.to(cdt).reshape(batch, seqlen, self.nheads, self.headdim))
        y = y.reshape(batch, seqlen, -1).to(u.dtype)
        if self.rmsnorm:
            y = self.norm(y, z)
        return self.out_proj(y)


# ------------------------------------------------------------------------------------------------ MHA


def apply_rotary_emb_torch(x, cos, sin):
    """flash_attn.layers.rotary.apply_rotary_emb_torch, non-interleaved. x (b, s, h, d); cos, sin (s, rd / 2)."""
    ro_dim = cos.shape[-1] * 2
    cos = torch.cat([cos, cos], dim=-1)[:, None, :]  # (s, 1, rd)
    sin = torch.cat([sin, sin], dim=-1)[:, None, :]
    x1, x2 = x[..., : ro_dim // 2], x[..., ro_dim // 2 : ro_dim]
    rotated = torch.cat((-x2, x1), dim=-1)
    return torch.cat([x[..., :ro_dim] * cos + rotated * sin, x[..., ro_dim:]], dim=-1)


class RotaryEmbedding(nn.Module):
    """flash_attn.layers.rotary.RotaryEmbedding (scale_base None, interleaved False), cos/sin in float32."""

    def __init__(self, dim, base=10000.0, interleaved=False, device=None):
        super().__init__()
        self.dim, self.base = dim, float(base)
        inv_freq = 1.0 / (self.base ** (torch.arange(0, dim, 2, device=device, dtype=torch.float32) / dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, q, kv, seqlen_offset=0, max_seqlen=None):
        seqlen = q.shape[1]
        t = torch.arange(seqlen_offset, seqlen_offset + seqlen, dtype=torch.float32, device=q.device)
        freqs = torch.outer(t, self.inv_freq.float())
        cos, sin = torch.cos(freqs).to(q.dtype), torch.sin(freqs).to(q.dtype)
        q = apply_rotary_emb_torch(q, cos, sin)
        k = apply_rotary_emb_torch(kv[:, :, 0], cos, sin)
        return q, torch.stack([k, kv[:, :, 1]], dim=2)


class MHA(nn.Module):
    """modules/mha.MHA, no inference cache."""

    def __init__(self, embed_dim, num_heads, num_heads_kv=None, head_dim=None, mlp_dim=0, qkv_proj_bias=True,
                 out_proj_bias=True, softmax_scale=None, causal=False, layer_idx=None, d_conv=0, rotary_emb_dim=0,
                 rotary_emb_base=10000.0, rotary_emb_interleaved=False, device=None, dtype=None):
        factory_kwargs = {"device": device, "dtype": dtype}
        super().__init__()
        self.embed_dim, self.layer_idx, self.d_conv = embed_dim, layer_idx, d_conv
        self.rotary_emb_dim, self.softmax_scale, self.causal = rotary_emb_dim, softmax_scale, causal
        self.num_heads = num_heads
        self.num_heads_kv = num_heads_kv if num_heads_kv is not None else num_heads
        self.head_dim = head_dim if head_dim is not None else self.embed_dim // num_heads
        self.mlp_dim = math.ceil(mlp_dim / 256) * 256
        qkv_dim = self.head_dim * (self.num_heads + 2 * self.num_heads_kv)
        out_dim = self.head_dim * self.num_heads
        if self.rotary_emb_dim > 0:
            self.rotary_emb = RotaryEmbedding(self.rotary_emb_dim, base=rotary_emb_base,
                                              interleaved=rotary_emb_interleaved, device=device)
        self.in_proj = nn.Linear(embed_dim, qkv_dim + self.mlp_dim, bias=qkv_proj_bias, **factory_kwargs)
        if self.d_conv > 0:
            self.conv1d = nn.Conv1d(qkv_dim, qkv_dim, kernel_size=self.d_conv, padding=self.d_conv - 1,
                                    groups=qkv_dim, **factory_kwargs)
        self.out_proj = nn.Linear(out_dim + self.mlp_dim // 2, embed_dim, bias=out_proj_bias, **factory_kwargs)

    def forward(self, x, inference_params=None):
        qkv = self.in_proj(x)
        if self.mlp_dim > 0:
            qkv, x_mlp = qkv.split([qkv.shape[-1] - self.mlp_dim, self.mlp_dim], dim=-1)
            x_mlp_up, x_mlp_gate = x_mlp.chunk(2, dim=-1)
            x_mlp = x_mlp_up * F.silu(x_mlp_gate)
        if self.d_conv > 0:
            qkv = self.conv1d(qkv.transpose(1, 2))[..., : -(self.d_conv - 1)].transpose(1, 2).contiguous()
        q, kv = qkv.split([self.num_heads * self.head_dim, self.num_heads_kv * 2 * self.head_dim], dim=-1)
        q = q.reshape(*q.shape[:-1], -1, self.head_dim)
        kv = kv.reshape(*kv.shape[:-1], 2, -1, self.head_dim)
        if self.rotary_emb_dim > 0:
            q, kv = self.rotary_emb(q, kv, seqlen_offset=0, max_seqlen=None)
        k, v = kv.unbind(dim=-3)
        k = torch.repeat_interleave(k, dim=2, repeats=self.num_heads // self.num_heads_kv)
        v = torch.repeat_interleave(v, dim=2, repeats=self.num_heads // self.num_heads_kv)
        context = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                                 is_causal=self.causal, scale=self.softmax_scale).transpose(1, 2)
        context = context.reshape(*context.shape[:-2], -1)
        if self.mlp_dim > 0:
            context = torch.cat([context, x_mlp], dim=-1)
        return self.out_proj(context)


# ------------------------------------------------------------------------------------------------ MLP, Block


class GatedMLP(nn.Module):
    def __init__(self, in_features, hidden_features=None, out_features=None, activation=F.silu, bias=False,
                 multiple_of=128, device=None, dtype=None):
        factory_kwargs = {"device": device, "dtype": dtype}
        super().__init__()
        out_features = out_features if out_features is not None else in_features
        hidden_features = hidden_features if hidden_features is not None else int(8 * in_features / 3)
        hidden_features = (hidden_features + multiple_of - 1) // multiple_of * multiple_of
        self.fc1 = nn.Linear(in_features, 2 * hidden_features, bias=bias, **factory_kwargs)
        self.activation = activation
        self.fc2 = nn.Linear(hidden_features, out_features, bias=bias, **factory_kwargs)

    def forward(self, x):
        y, gate = self.fc1(x).chunk(2, dim=-1)
        return self.fc2(y * self.activation(gate))


class Block(nn.Module):
    """modules/block.Block, unfused path: Add -> Norm -> Mixer (-> Add -> Norm2 -> MLP)."""

    def __init__(self, dim, mixer_cls, mlp_cls, norm_cls=nn.LayerNorm, fused_add_norm=False,
                 residual_in_fp32=False):
        super().__init__()
        self.residual_in_fp32 = residual_in_fp32
        self.norm = norm_cls(dim)
        self.mixer = mixer_cls(dim)
        if mlp_cls is not nn.Identity:
            self.norm2 = norm_cls(dim)
            self.mlp = mlp_cls(dim)
        else:
            self.mlp = None

    def forward(self, hidden_states, residual=None, inference_params=None):
        residual = (hidden_states + residual) if residual is not None else hidden_states
        hidden_states = self.norm(residual.to(dtype=self.norm.weight.dtype))
        if self.residual_in_fp32:
            residual = residual.to(torch.float32)
        hidden_states = self.mixer(hidden_states, inference_params=inference_params)
        if self.mlp is not None:
            residual = hidden_states + residual
            hidden_states = self.norm2(residual.to(dtype=self.norm2.weight.dtype))
            if self.residual_in_fp32:
                residual = residual.to(torch.float32)
            hidden_states = self.mlp(hidden_states)
        return hidden_states, residual


def create_block(d_model, d_intermediate, ssm_cfg=None, attn_layer_idx=None, attn_cfg=None, norm_epsilon=1e-5,
                 rms_norm=False, residual_in_fp32=False, fused_add_norm=False, layer_idx=None, device=None,
                 dtype=None):
    if ssm_cfg is None:
        ssm_cfg = {}
    if attn_layer_idx is None:
        attn_layer_idx = []
    if attn_cfg is None:
        attn_cfg = {}
    factory_kwargs = {"device": device, "dtype": dtype}
    if layer_idx not in attn_layer_idx:
        ssm_cfg = copy.deepcopy(ssm_cfg) if ssm_cfg is not None else {}
        ssm_layer = ssm_cfg.pop("layer", "Mamba1")
        if ssm_layer not in ["Mamba1", "Mamba2"]:
            raise ValueError(f"Invalid ssm_layer: {ssm_layer}, only support Mamba1 and Mamba2")
        mixer_cls = partial(Mamba2 if ssm_layer == "Mamba2" else Mamba, layer_idx=layer_idx, **ssm_cfg,
                            **factory_kwargs)
    else:
        mixer_cls = partial(MHA, layer_idx=layer_idx, **attn_cfg, **factory_kwargs)
    norm_cls = partial(nn.LayerNorm if not rms_norm else RMSNorm, eps=norm_epsilon, **factory_kwargs)
    if d_intermediate == 0:
        mlp_cls = nn.Identity
    else:
        mlp_cls = partial(GatedMLP, hidden_features=d_intermediate, out_features=d_model, **factory_kwargs)
    block = Block(d_model, mixer_cls, mlp_cls, norm_cls=norm_cls, fused_add_norm=fused_add_norm,
                  residual_in_fp32=residual_in_fp32)
    block.layer_idx = layer_idx
    return block


class MixerModel(nn.Module):
    def __init__(self, d_model, n_layer, d_intermediate, vocab_size, ssm_cfg=None, attn_layer_idx=None,
                 attn_cfg=None, norm_epsilon=1e-5, rms_norm=False, initializer_cfg=None, fused_add_norm=False,
                 residual_in_fp32=False, device=None, dtype=None):
        factory_kwargs = {"device": device, "dtype": dtype}
        super().__init__()
        self.residual_in_fp32 = residual_in_fp32
        self.embedding = nn.Embedding(vocab_size, d_model, **factory_kwargs)
        self.layers = nn.ModuleList([
            create_block(d_model, d_intermediate=d_intermediate, ssm_cfg=ssm_cfg, attn_layer_idx=attn_layer_idx,
                         attn_cfg=attn_cfg, norm_epsilon=norm_epsilon, rms_norm=rms_norm,
                         residual_in_fp32=residual_in_fp32, fused_add_norm=fused_add_norm, layer_idx=i,
                         **factory_kwargs)
            for i in range(n_layer)
        ])
        self.norm_f = (nn.LayerNorm if not rms_norm else RMSNorm)(d_model, eps=norm_epsilon, **factory_kwargs)

    def forward(self, input_ids, inference_params=None):
        hidden_states = self.embedding(input_ids)
        residual = None
        for layer in self.layers:
            hidden_states, residual = layer(hidden_states, residual, inference_params=inference_params)
        residual = (hidden_states + residual) if residual is not None else hidden_states
        return self.norm_f(residual.to(dtype=self.norm_f.weight.dtype))


class MambaLMHeadModel(nn.Module):
    def __init__(self, config: MambaConfig, initializer_cfg=None, device=None, dtype=None):
        self.config = config
        vocab_size = config.vocab_size
        if vocab_size % config.pad_vocab_size_multiple != 0:
            vocab_size += config.pad_vocab_size_multiple - (vocab_size % config.pad_vocab_size_multiple)
        factory_kwargs = {"device": device, "dtype": dtype}
        super().__init__()
        self.backbone = MixerModel(
            d_model=config.d_model, n_layer=config.n_layer, d_intermediate=config.d_intermediate,
            vocab_size=vocab_size, ssm_cfg=config.ssm_cfg, attn_layer_idx=config.attn_layer_idx,
            attn_cfg=config.attn_cfg, rms_norm=config.rms_norm, initializer_cfg=initializer_cfg,
            fused_add_norm=config.fused_add_norm, residual_in_fp32=config.residual_in_fp32, **factory_kwargs)
        self.lm_head = nn.Linear(config.d_model, vocab_size, bias=False, **factory_kwargs)
        if config.tie_embeddings:
            self.lm_head.weight = self.backbone.embedding.weight

    def forward(self, input_ids, position_ids=None, inference_params=None, num_last_tokens=0):
        hidden_states = self.backbone(input_ids, inference_params=inference_params)
        if num_last_tokens > 0:
            hidden_states = hidden_states[:, -num_last_tokens:]
        return self.lm_head(hidden_states), hidden_states
