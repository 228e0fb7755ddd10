"""WSHRCA's and WDHT's networks on image inputs (frozen features, or backbone outputs end-to-end).

WSHRCA (spec ``wshrca.md`` §2): sigmoid hash layer h; reconstruction block r̂ = LeakyReLU_0.01(W_r h + b)
mapping the relaxed code back into word-vector space; the tag-refinement (TR) module, a multi-head
cross-modal attention whose query is r̂ and whose keys/values are the image's own tag vectors, giving the
refined tag supervision w: by default the values are the fixed tag vectors (:class:`TagSelection`); the
reference's projected values, output projection and FFN with residual are :class:`TagRefinement`. No query
residual, no LayerNorm. WDHT (§2.5 Lineage): a hidden ReLU layer, a sigmoid hash head and a tanh word-vector head.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class PaddedTags:
    """Every image's de-duplicated tag indices as one zero-padded (n, L) matrix plus per-row counts.

    ``batch(idx)`` gathers rows for a batch, trimmed to that batch's longest list, with a key padding mask
    (True = padding). Rows must be non-empty: an image without tags would make the attention NaN.
    """

    def __init__(self, tag_lists: Sequence[np.ndarray]) -> None:
        lists = [np.unique(np.asarray(t, dtype=np.int64)) for t in tag_lists]
        counts = np.array([len(t) for t in lists], dtype=np.int64)
        if len(counts) and counts.min() == 0:
            raise ValueError(f"{int((counts == 0).sum())} images have no tags; filter them out before training")
        width = int(counts.max()) if len(counts) else 1
        index = np.zeros((len(lists), width), dtype=np.int64)
        for row, t in enumerate(lists):
            index[row, : len(t)] = t
        self.index, self.counts = torch.from_numpy(index), torch.from_numpy(counts)

    def batch(self, idx: torch.Tensor, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """(tag index (b, L), padding mask (b, L)) for rows ``idx``, L = the batch's longest tag list."""
        idx = idx.cpu()
        counts = self.counts[idx]
        width = int(counts.max())
        pad = torch.arange(width)[None, :] >= counts[:, None]
        return self.index[idx, :width].to(device), pad.to(device)


class InputPrep(nn.Module):
    """Image inputs centred on a fixed mean (a buffer: zero, or the training mean the method sets) and
    optionally L2-normalised."""

    def __init__(self, in_dim: int, l2: bool = False) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_dim))
        self.l2 = l2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x - self.mean
        return F.normalize(x, dim=1) if self.l2 else x


class HashLayer(nn.Module):
    """h = sigmoid(W x + b) ∈ (0, 1)^K: the relaxed code; default PyTorch Linear init (spec §2.2)."""

    def __init__(self, in_dim: int, bits: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_dim, bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc(x))


class Reconstruction(nn.Module):
    """r̂ = LeakyReLU_0.01(W h + b): a code (or, in the ablation, a feature) mapped into word-vector space;
    Xavier-normal weight, default bias (spec §2.3)."""

    def __init__(self, in_dim: int, dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_dim, dim)
        nn.init.xavier_normal_(self.fc.weight)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.fc(h), 0.01)


def masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pad: torch.Tensor, heads: int,
                     dropout: float, training: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-head attention of one query per image (N, d) over its own keys/values (N, L, d), padding masked:
    (concatenated head outputs (N, d), head-averaged weights (N, L) after dropout), as ``nn.MultiheadAttention``
    computes them before its output projection."""
    n, dim = q.shape
    head_dim = dim // heads
    q = q.view(n, heads, 1, head_dim)
    k = k.view(n, -1, heads, head_dim).transpose(1, 2)  # (N, H, L, hd)
    v = v.reshape(n, -1, heads, head_dim).transpose(1, 2)
    scores = (q @ k.transpose(-1, -2)).squeeze(2) / math.sqrt(head_dim)  # (N, H, L)
    alpha = torch.softmax(scores.masked_fill(pad[:, None, :], float("-inf")), dim=-1)
    alpha = F.dropout(alpha, dropout, training)
    return (alpha.unsqueeze(2) @ v).squeeze(2).reshape(n, dim), alpha.mean(dim=1)


class TagRefinement(nn.Module):
    """The reference's TR module (``values: projected``): cross-modal attention (query r̂; keys/values the
    image's own tag vectors, both projected) + output projection + FFN with residual → w.

    The parameters are an ``nn.MultiheadAttention`` (PyTorch's default init), but the forward pass is the
    gathered-and-padded form of spec §2.4: the vocabulary is projected to keys and values once per call,
    each image's tag rows are gathered and padded to the batch maximum and masked. In eval mode this
    equals the full-vocabulary masked ``nn.MultiheadAttention`` exactly; in training the attention
    dropout acts on the same weights, so it matches in distribution.
    """

    def __init__(self, dim: int, heads: int, ffn: int = 512, dropout: float = 0.1) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"word-vector width {dim} is not divisible by {heads} attention heads")
        self.heads, self.dropout = heads, dropout
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ffn, dim),
                                 nn.Dropout(dropout))

    def attend(self, query: torch.Tensor, tag_vectors: torch.Tensor, tag_index: torch.Tensor,
               pad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(u (N, d), head-averaged attention weights (N, L) after dropout) for queries over their own tags."""
        w_q, w_k, w_v = self.attn.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.attn.in_proj_bias.chunk(3)
        keys = F.linear(tag_vectors, w_k, b_k)[tag_index]          # project once, gather (N, L, d)
        values = F.linear(tag_vectors, w_v, b_v)[tag_index]
        out, alpha = masked_attention(F.linear(query, w_q, b_q), keys, values, pad, self.heads, self.dropout,
                                      self.training)
        return self.attn.out_proj(out), alpha

    def forward(self, query: torch.Tensor, tag_vectors: torch.Tensor, tag_index: torch.Tensor,
                pad: torch.Tensor) -> torch.Tensor:
        u, _ = self.attend(query, tag_vectors, tag_index, pad)
        return u + self.ffn(u)


class TagSelection(nn.Module):
    """The default tag module (``values: tags``): the same masked multi-head attention of r̂ over the image's
    own tags, but its values are the fixed tag vectors themselves (head h weighs the h-th slice of each),
    with no output projection and no FFN, so w stays a per-head convex combination of the image's own
    word vectors: the image chooses among its tags, and cannot move the supervision off their meaning.

    Measured on the demo (README, WSHRCA deviations): the reference's trained value path (projections +
    FFN) bends the tag geometry toward the codes; WSHRCA-64 scored 0.351 / 0.335 (MiniLM / GloVe, seed 0)
    with it and 0.389 / 0.352 (mean of 3 seeds) with this module. Query and key projections start as
    ``nn.MultiheadAttention``'s (Xavier-uniform over the stacked q/k/v matrix, zero bias).
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.1) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"word-vector width {dim} is not divisible by {heads} attention heads")
        self.heads, self.dropout = heads, dropout
        self.query, self.key = nn.Linear(dim, dim), nn.Linear(dim, dim)
        bound = math.sqrt(6 / (4 * dim))  # xavier_uniform_ of the (3d, d) in_proj_weight
        for layer in (self.query, self.key):
            nn.init.uniform_(layer.weight, -bound, bound)
            nn.init.zeros_(layer.bias)

    def attend(self, query: torch.Tensor, tag_vectors: torch.Tensor, tag_index: torch.Tensor,
               pad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(w (N, d), head-averaged attention weights (N, L) after dropout) for queries over their own tags."""
        return masked_attention(self.query(query), self.key(tag_vectors)[tag_index], tag_vectors[tag_index], pad,
                                self.heads, self.dropout, self.training)

    def forward(self, query: torch.Tensor, tag_vectors: torch.Tensor, tag_index: torch.Tensor,
                pad: torch.Tensor) -> torch.Tensor:
        return self.attend(query, tag_vectors, tag_index, pad)[0]


def mean_tag_vectors(tag_vectors: torch.Tensor, tag_index: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
    """The mean of each image's own tag vectors (N, d): WDHT's target and the no-attention ablation."""
    keep = (~pad).to(tag_vectors.dtype)
    return (tag_vectors[tag_index] * keep[..., None]).sum(1) / keep.sum(1, keepdim=True)


class WSHRCANet(nn.Module):
    """Image branch (hash layer, reconstruction) and tag branch (TR module over fixed tag vectors E).

    ``values`` picks the tag module: ``"tags"`` (:class:`TagSelection`, the default) or ``"projected"``
    (:class:`TagRefinement`, the reference). Ablations: ``attention=False`` replaces it by the plain mean of
    the image's tag vectors (nothing to train on the tag side); ``reconstruction=False`` takes the attention
    query and the hinge anchor from the image input (same LeakyReLU block on x) instead of from the code h.
    """

    def __init__(self, in_dim: int, bits: int, tag_vectors: np.ndarray, *, heads: int, ffn: int = 512,
                 dropout: float = 0.1, attention: bool = True, values: str = "tags", reconstruction: bool = True,
                 l2_input: bool = False) -> None:
        super().__init__()
        dim = tag_vectors.shape[1]
        self.register_buffer("tag_vectors", torch.as_tensor(tag_vectors, dtype=torch.float32))
        self.prep = InputPrep(in_dim, l2_input)
        self.hash = HashLayer(in_dim, bits)
        self.reconstruction = Reconstruction(bits if reconstruction else in_dim, dim)
        self.from_code = reconstruction
        self.refine: nn.Module | None = None
        if attention:
            self.refine = (TagSelection(dim, heads, dropout) if values == "tags"
                           else TagRefinement(dim, heads, ffn, dropout))

    def image_branch(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(h, r̂) for image inputs x."""
        x = self.prep(x)
        h = self.hash(x)
        return h, self.reconstruction(h if self.from_code else x)

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """The relaxed codes h (encoding: b = sign(h − 0.5))."""
        return self.hash(self.prep(x))

    def tag_branch(self, r: torch.Tensor, tag_index: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        """The refined tag supervision w for queries r̂ over each image's own tags."""
        if self.refine is None:
            return mean_tag_vectors(self.tag_vectors, tag_index, pad)
        return self.refine(r, self.tag_vectors, tag_index, pad)

    def image_parameters(self) -> list[nn.Parameter]:
        """Hash layer and reconstruction block: the image optimizer's head group."""
        return [*self.hash.parameters(), *self.reconstruction.parameters()]

    def tag_parameters(self) -> list[nn.Parameter]:
        """The tag module (q/k projections, or MHA + FFN): the tag optimizer's group (empty without attention)."""
        return [] if self.refine is None else list(self.refine.parameters())


class WDHTNet(nn.Module):
    """WDHT's head (Vijetha1/WDHT ``12bits_NUS.py``): x → ReLU(Linear 256) → sigmoid code h and tanh
    word-vector prediction p; the fixed tag vectors ride along as a buffer."""

    def __init__(self, in_dim: int, bits: int, tag_vectors: np.ndarray, *, hidden: int = 256,
                 l2_input: bool = False) -> None:
        super().__init__()
        self.register_buffer("tag_vectors", torch.as_tensor(tag_vectors, dtype=torch.float32))
        self.prep = InputPrep(in_dim, l2_input)
        self.hidden = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU())
        self.hash = HashLayer(hidden, bits)
        self.vector = nn.Linear(hidden, tag_vectors.shape[1])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(h, p) for image inputs x."""
        z = self.hidden(self.prep(x))
        return self.hash(z), torch.tanh(self.vector(z))

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """The relaxed codes h."""
        return self.hash(self.hidden(self.prep(x)))
