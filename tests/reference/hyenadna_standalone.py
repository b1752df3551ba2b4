"""Test-only reference of the published HyenaDNA model (pure PyTorch, no dnalm imports).

Adapted from HazyResearch/hyena-dna ``standalone_hyenadna.py`` (and ``src/models/sequence/long_conv_lm.py`` for the
LM head): same module tree and parameter names (``backbone.embeddings.word_embeddings``,
``backbone.layers.{i}.mixer.{in_proj,short_filter,filter_fn.*,out_proj}``, ``.norm1/.norm2/.mlp.fc1/.fc2``,
``backbone.ln_f``, tied ``lm_head``), the same maths written the published way (complex-exponential positional
features, one ``Sin`` module shared by every position of the filter MLP, FFT convolution scaled by 1/fft_size with an
unnormalised inverse, the fused "dropout -> add -> LayerNorm" pre-norm block with a separate residual stream). It is
deliberately independent of ``dnalm.models`` so that the import test compares two implementations.
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn


def fftconv(u, k, D):
    """Convolution through the Fourier domain, as published."""
    seqlen = u.shape[-1]
    fft_size = 2 * seqlen
    k_f = torch.fft.rfft(k, n=fft_size) / fft_size
    u_f = torch.fft.rfft(u.to(dtype=k.dtype), n=fft_size)
    if len(u.shape) > 3:
        k_f = k_f.unsqueeze(1)
    y = torch.fft.irfft(u_f * k_f, n=fft_size, norm="forward")[..., :seqlen]
    out = y + u * D.unsqueeze(-1)
    return out.to(dtype=u.dtype)


class OptimModule(nn.Module):
    """Registers a tensor as a buffer when its lr is 0, else as a parameter."""

    def register(self, name, tensor, lr=None, wd=0.0):
        if lr == 0.0:
            self.register_buffer(name, tensor)
        else:
            self.register_parameter(name, nn.Parameter(tensor))


class Sin(nn.Module):
    """sin(freq * x) with a trainable frequency."""

    def __init__(self, dim, w=10, train_freq=True):
        super().__init__()
        self.freq = nn.Parameter(w * torch.ones(1, dim)) if train_freq else w * torch.ones(1, dim)

    def forward(self, x):
        return torch.sin(self.freq * x)


class PositionalEmbedding(OptimModule):
    """Complex exponential positional embeddings for Hyena filters."""

    def __init__(self, emb_dim, seq_len, lr_pos_emb=1e-5):
        super().__init__()
        self.seq_len = seq_len
        t = torch.linspace(0, 1, self.seq_len)[None, :, None]  # 1, L, 1
        bands = (emb_dim - 1) // 2
        t_rescaled = torch.linspace(0, seq_len - 1, seq_len)[None, :, None]
        w = 2 * math.pi * t_rescaled / seq_len  # 1, L, 1
        f = torch.linspace(1e-4, bands - 1, bands)[None, None]
        z = torch.exp(-1j * f * w)
        z = torch.cat([t, z.real, z.imag], dim=-1)
        self.register("z", z, lr=lr_pos_emb)
        self.register("t", t, lr=0.0)

    def forward(self, L):
        return self.z[:, :L], self.t[:, :L]


class ExponentialModulation(OptimModule):
    """Exponential decay window of the filter."""

    def __init__(self, d_model, fast_decay_pct=0.3, slow_decay_pct=1.5, target=1e-2, modulation_lr=0.0,
                 modulate=True, shift=0.05, **kwargs):
        super().__init__()
        self.modulate = modulate
        self.shift = shift
        max_decay = math.log(target) / fast_decay_pct
        min_decay = math.log(target) / slow_decay_pct
        deltas = torch.linspace(min_decay, max_decay, d_model)[None, None]
        self.register("deltas", deltas, lr=modulation_lr)

    def forward(self, t, x):
        if self.modulate:
            decay = torch.exp(-t * self.deltas.abs())
            x = x * (decay + self.shift)
        return x


class HyenaFilter(OptimModule):
    """Implicit long filter with modulation."""

    def __init__(self, d_model, emb_dim=3, order=16, seq_len=1024, lr=1e-3, lr_pos_emb=1e-5, dropout=0.0, w=1,
                 wd=0, bias=True, num_inner_mlps=2, normalized=False, **kwargs):
        super().__init__()
        self.d_model = d_model
        self.use_bias = bias
        self.bias = nn.Parameter(torch.randn(self.d_model))
        self.dropout = nn.Dropout(dropout)
        act = Sin(dim=order, w=w)  # ONE module shared by every position, as published
        self.emb_dim = emb_dim
        assert emb_dim % 2 != 0 and emb_dim >= 3
        self.seq_len = seq_len
        self.pos_emb = PositionalEmbedding(emb_dim, seq_len, lr_pos_emb)
        self.implicit_filter = nn.Sequential(nn.Linear(emb_dim, order), act)
        for _ in range(num_inner_mlps):
            self.implicit_filter.append(nn.Linear(order, order))
            self.implicit_filter.append(act)
        self.implicit_filter.append(nn.Linear(order, d_model, bias=False))
        self.modulation = ExponentialModulation(d_model, **kwargs)
        self.normalized = normalized

    def filter(self, L, *args, **kwargs):
        z, t = self.pos_emb(L)
        h = self.implicit_filter(z)
        h = self.modulation(t, h)
        return h

    def forward(self, x, L, k=None, bias=None, *args, **kwargs):
        if k is None:
            k = self.filter(L)
        k = k[0] if type(k) is tuple else k
        return fftconv(x, k, bias)


class HyenaOperator(nn.Module):
    """Hyena operator (order 2 gating), as published."""

    def __init__(self, d_model, l_max, order=2, filter_order=64, dropout=0.0, filter_dropout=0.0, **filter_args):
        super().__init__()
        self.d_model = d_model
        self.l_max = l_max
        self.order = order
        inner_width = d_model * (order + 1)
        self.dropout = nn.Dropout(dropout)
        self.in_proj = nn.Linear(d_model, inner_width)
        self.out_proj = nn.Linear(d_model, d_model)
        self.short_filter = nn.Conv1d(inner_width, inner_width, 3, padding=2, groups=inner_width)
        self.filter_fn = HyenaFilter(d_model * (order - 1), order=filter_order, seq_len=l_max, channels=1,
                                     dropout=filter_dropout, **filter_args)

    def forward(self, u, *args, **kwargs):
        l = u.size(-2)
        l_filter = min(l, self.l_max)
        u = self.in_proj(u)
        u = u.transpose(1, 2)  # b l d -> b d l
        uc = self.short_filter(u)[..., :l_filter]
        *x, v = uc.split(self.d_model, dim=1)
        k = self.filter_fn.filter(l_filter)[0]  # (l, (o d))
        k = k.reshape(l_filter, self.order - 1, self.d_model).permute(1, 2, 0)  # l (o d) -> o d l
        bias = self.filter_fn.bias.reshape(self.order - 1, self.d_model)  # (o d) -> o d
        for o, x_i in enumerate(reversed(x[1:])):
            v = self.dropout(v * x_i)
            v = self.filter_fn(v, l_filter, k=k[o], bias=bias[o])
        y = (v * x[0]).transpose(1, 2)  # b d l -> b l d
        return self.out_proj(y)


class Mlp(nn.Module):
    """fc1 -> GELU(tanh) -> fc2."""

    def __init__(self, in_features, hidden_features=None, out_features=None, activation=F.gelu):
        super().__init__()
        out_features = out_features or in_features
        hidden_features = hidden_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.activation = activation
        self.fc2 = nn.Linear(hidden_features, out_features)

    def forward(self, x):
        return self.fc2(self.activation(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm block in the fused form: Dropout -> Add -> LN -> Mixer -> Dropout -> Add -> LN -> MLP."""

    def __init__(self, dim, mixer_cls, mlp_cls, norm_cls=nn.LayerNorm, resid_dropout1=0.0, resid_dropout2=0.0):
        super().__init__()
        self.mixer = mixer_cls()
        self.dropout1 = nn.Dropout(resid_dropout1)
        self.norm1 = norm_cls(dim)
        self.mlp = mlp_cls(dim)
        self.dropout2 = nn.Dropout(resid_dropout2)
        self.norm2 = norm_cls(dim)

    def forward(self, hidden_states, residual=None):
        dropped = self.dropout1(hidden_states)
        residual = (dropped + residual) if residual is not None else dropped
        hidden_states = self.norm1(residual.to(dtype=self.norm1.weight.dtype))
        hidden_states = self.mixer(hidden_states)
        dropped = self.dropout2(hidden_states)
        residual = (dropped + residual) if residual is not None else dropped
        hidden_states = self.norm2(residual.to(dtype=self.norm2.weight.dtype))
        hidden_states = self.mlp(hidden_states)
        return hidden_states, residual


class GPT2Embeddings(nn.Module):
    """Word embeddings (no position embeddings for Hyena)."""

    def __init__(self, embed_dim, vocab_size):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, embed_dim)

    def forward(self, input_ids):
        return self.word_embeddings(input_ids)


class LMBackbone(nn.Module):
    """Embeddings, blocks, final LayerNorm."""

    def __init__(self, d_model, n_layer, d_inner, vocab_size, layer=None, resid_dropout=0.0, embed_dropout=0.1,
                 layer_norm_epsilon=1e-5):
        super().__init__()
        self.embeddings = GPT2Embeddings(d_model, vocab_size)
        mlp_cls = partial(Mlp, hidden_features=d_inner, activation=partial(F.gelu, approximate="tanh"))
        norm_cls = partial(nn.LayerNorm, eps=layer_norm_epsilon)
        self.layers = nn.ModuleList(
            Block(d_model, partial(HyenaOperator, **layer), mlp_cls, norm_cls=norm_cls,
                  resid_dropout1=embed_dropout if i == 0 else resid_dropout, resid_dropout2=resid_dropout)
            for i in range(n_layer)
        )
        self.drop_f = nn.Dropout(resid_dropout)
        self.ln_f = nn.LayerNorm(d_model, eps=layer_norm_epsilon)

    def forward(self, input_ids):
        hidden_states = self.embeddings(input_ids)
        residual = None
        for layer in self.layers:
            hidden_states, residual = layer(hidden_states, residual)
        dropped = self.drop_f(hidden_states)
        residual = (dropped + residual) if residual is not None else dropped
        return self.ln_f(residual.to(dtype=self.ln_f.weight.dtype))


class ConvLMHeadModel(nn.Module):
    """HyenaDNA's LM: backbone + lm_head tied to the word embeddings (vocab padded to a multiple)."""

    def __init__(self, d_model, n_layer, d_inner, vocab_size, layer=None, pad_vocab_size_multiple=1,
                 layer_norm_epsilon=1e-5, embed_dropout=0.1, resid_dropout=0.0):
        super().__init__()
        if vocab_size % pad_vocab_size_multiple != 0:
            vocab_size += pad_vocab_size_multiple - (vocab_size % pad_vocab_size_multiple)
        layer = dict(layer)
        layer.setdefault("d_model", d_model)
        self.backbone = LMBackbone(d_model, n_layer, d_inner, vocab_size, layer=layer, resid_dropout=resid_dropout,
                                   embed_dropout=embed_dropout, layer_norm_epsilon=layer_norm_epsilon)
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)
        self.lm_head.weight = self.backbone.embeddings.word_embeddings.weight

    def forward(self, input_ids):
        return self.lm_head(self.backbone(input_ids))


def build_reference(d_model=32, n_layer=2, d_inner=64, vocab_size=12, l_max=130, filter_order=16, emb_dim=5,
                    shift=0.0, w=10, pad_vocab_size_multiple=8, seed=0) -> ConvLMHeadModel:
    """A randomly initialised reference model in eval mode; every weight is drawn at a scale that makes the
    filter, gating and MLP paths matter (not the tiny published init)."""
    torch.manual_seed(seed)
    layer = {"emb_dim": emb_dim, "filter_order": filter_order, "l_max": l_max, "modulate": True, "w": w,
             "lr": 6e-4, "wd": 0.0, "lr_pos_emb": 0.0, "shift": shift}
    model = ConvLMHeadModel(d_model, n_layer, d_inner, vocab_size, layer=layer,
                            pad_vocab_size_multiple=pad_vocab_size_multiple)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("freq"):
                p.uniform_(0.5, 2.0)
            elif "norm" in name or "ln_f" in name:
                if name.endswith("weight"):
                    p.copy_(1.0 + 0.1 * torch.randn_like(p))
                else:
                    p.normal_(0, 0.1)
            else:
                p.normal_(0, 0.3)
    return model.eval()
