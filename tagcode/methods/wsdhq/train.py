"""WSDHQ's training loop (spec §3.6), independent of where the inputs come from.

Each iteration: a batch of ``batch_size`` images from the epoch's permutation (the trailing partial batch
is skipped and the data reshuffled), train-mode embeddings x written into the memory bank, loss =
L_emb + λ·L_q (λ·L_q = 0 until the codebooks exist), one Adam step at lr·decay^⌊it/lr_step⌋. After the
step of 0-based iteration ``it`` with it > 0 and it % period == 0: block-wise k-means on the bank (first
update only), ICM codes for the whole bank, ridge refit of the codebooks. The whole state (Adam, bank,
codes, codebooks, epoch permutation and position; the context adds the model and every generator) is
checkpointed through the context.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np
import scipy.sparse
import torch

from tagcode.errors import TagcodeError
from tagcode.methods.wsdhq import quantizer
from tagcode.methods.wsdhq.losses import AdaptiveMarginLoss, QuantizationLoss


class Schedule(Protocol):
    """The schedule numbers the loop reads (WSDHQ's options)."""

    gamma: float
    fixed_margin: float | None
    lam: float
    lr: float
    lr_decay: float
    lr_step: int
    batch_size: int
    iterations: int
    update_period: int | None
    icm_passes: int
    icm_batch: int
    metric: str
    codebooks: str
    ridge: float
    unused_tol: float
    kmeans_batch_size: int
    kmeans_n_init: int
    kmeans_max_iter: int


class Context(Protocol):
    """What the loop needs from its runner (``tagcode.methods.torch_method.TrainContext``)."""

    model: torch.nn.Module  # .net: the embedding head; .trunk: identity or the fine-tuned backbone
    device: torch.device
    generator: torch.Generator

    def inputs(self, rows: np.ndarray, *, train: bool = True) -> torch.Tensor: ...
    def log(self, step: int, terms: dict[str, Any]) -> None: ...
    def due(self, step: int) -> bool: ...
    def save(self, step: int, state: dict[str, Any]) -> None: ...
    def resume(self, state: dict[str, Any]) -> tuple[int, dict[str, Any]] | None: ...


def update_period(n: int, opts: Schedule) -> int:
    """Iterations between code/codebook updates: ``update_period`` or 2·ceil(N / batch) (about 2 epochs)."""
    return int(opts.update_period or 2 * math.ceil(n / opts.batch_size))


def metric_factor(tag_vectors: np.ndarray, kind: str) -> np.ndarray:
    """F (·, D) float64 with G = FᵀF, the metric of the quantization loss and ICM: the tag vectors W
    (``tags``, the spec's tag metric) or the D×D identity (``euclidean``)."""
    w = np.asarray(tag_vectors, dtype=np.float64)
    return w if kind == "tags" else np.eye(w.shape[1])


def metric(tag_vectors: np.ndarray, kind: str = "tags") -> np.ndarray:
    """G = FᵀF (D, D) in float64 (:func:`metric_factor`)."""
    f = metric_factor(tag_vectors, kind)
    return f.T @ f


def update_codes(bank: np.ndarray, codebooks: np.ndarray | None, g: np.ndarray, m: int, seed: int, it: int,
                 opts: Schedule) -> tuple[np.ndarray, np.ndarray]:
    """One code + codebook update on the memory bank: k-means init when there are no codebooks yet,
    ICM codes (order drawn from a generator seeded by (seed, it)), then the ridge refit (full-width codewords
    for ``additive`` codebooks, each within its k-means block for ``product``)."""
    if codebooks is None:
        codebooks = quantizer.kmeans_init(bank, m, seed, batch_size=opts.kmeans_batch_size,
                                          n_init=opts.kmeans_n_init, max_iter=opts.kmeans_max_iter)
    icm = quantizer.ICM(codebooks, g, passes=opts.icm_passes)
    codes = icm.encode(bank, np.random.default_rng([seed, it]), batch=opts.icm_batch)
    blocks = quantizer.split_blocks(bank.shape[1], m) if opts.codebooks == "product" else None
    return codes, quantizer.refit(codes, bank, codebooks, ridge=opts.ridge, unused_tol=opts.unused_tol,
                                  blocks=blocks)


def train(ctx: Context, tags: scipy.sparse.csr_matrix, tag_vectors: np.ndarray, m: int, seed: int,
          opts: Schedule) -> dict[str, np.ndarray]:
    """Train ``ctx.model`` (every parameter, by Adam) on images with multi-hot ``tags`` (N, T) and tag vectors
    (T, D); x = ``ctx.model.net`` of ``ctx.inputs``. Resumes from the context's last checkpoint when there is
    one. Returns the final ``codebooks`` (M, 256, D) and the training ``codes`` (N, M)."""
    n, dim = tags.shape[0], tag_vectors.shape[1]
    if n < opts.batch_size:
        raise TagcodeError(f"wsdhq: {n} training images, fewer than one batch of {opts.batch_size}")
    device, model = ctx.device, ctx.model
    w = torch.as_tensor(tag_vectors, dtype=torch.float32, device=device)
    margin_loss = AdaptiveMarginLoss(w, gamma=opts.gamma, fixed_margin=opts.fixed_margin).to(device)
    factor = metric_factor(tag_vectors, opts.metric)
    quant_loss = QuantizationLoss(torch.as_tensor(factor, dtype=torch.float32, device=device), lam=opts.lam)
    g = factor.T @ factor
    tags = scipy.sparse.csr_matrix(tags, dtype=bool)
    optimizer = torch.optim.Adam(model.parameters(), lr=opts.lr, betas=(0.9, 0.999), eps=1e-8)
    period = update_period(n, opts)

    state: dict[str, Any] = {"bank": np.zeros((n, dim), np.float32), "codes": None, "codebooks": None,
                             "perm": None, "pos": 0}
    start = 0
    resumed = ctx.resume({"optimizer": optimizer, "wsdhq": state})
    if resumed is not None:
        start, saved = resumed
        state = {k: np.array(v) if isinstance(v, np.ndarray) else v for k, v in saved["wsdhq"].items()}

    for it in range(start, opts.iterations):
        if state["perm"] is None or state["pos"] + opts.batch_size > n:
            state["perm"], state["pos"] = torch.randperm(n, generator=ctx.generator).numpy(), 0
        idx = np.sort(state["perm"][state["pos"]:state["pos"] + opts.batch_size])
        state["pos"] += opts.batch_size
        lr = opts.lr * opts.lr_decay ** (it // opts.lr_step)
        for group in optimizer.param_groups:
            group["lr"] = lr

        model.train()
        x = model.net(ctx.inputs(idx, train=True), ctx.generator)
        state["bank"][idx] = x.detach().float().cpu().numpy()
        batch_tags = torch.as_tensor(tags[idx].toarray(), device=device)
        xhat = None
        if state["codebooks"] is not None:
            xhat = torch.as_tensor(quantizer.reconstruct(state["codes"][idx], state["codebooks"]), device=device)
        terms = {**margin_loss(x, batch_tags), **quant_loss(x, xhat)}
        total = terms["embedding"] + terms["quantization"]
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()

        if it > 0 and it % period == 0:
            state["codes"], state["codebooks"] = update_codes(state["bank"], state["codebooks"], g, m, seed, it,
                                                              opts)
        ctx.log(it + 1, {**terms, "total": total, "lr": lr})
        if ctx.due(it + 1):
            ctx.save(it + 1, {"optimizer": optimizer, "wsdhq": state})

    if state["codebooks"] is None:
        raise TagcodeError(f"wsdhq: {opts.iterations} iterations end before the first codebook update "
                           f"(iteration {period}); raise iterations or lower update_period")
    return {"codebooks": state["codebooks"], "codes": state["codes"]}
