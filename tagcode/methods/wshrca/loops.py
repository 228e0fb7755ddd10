"""The training loops of WSHRCA (alternating tag/image epochs) and WDHT (one optimizer), written against
the training context (inputs, log, checkpoint/resume, device, seeded generator)."""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn

from tagcode.methods.wshrca.losses import WDHTLoss, WSHRCALoss
from tagcode.methods.wshrca.model import PaddedTags, WDHTNet, WSHRCANet, mean_tag_vectors
from tagcode.methods.wshrca.schedule import batches, epoch_kind, owned_before, set_lr, warmup_factor


class Context(Protocol):
    """What the loops use of the training context."""

    device: torch.device
    generator: torch.Generator

    def inputs(self, idx: torch.Tensor, train: bool = True) -> torch.Tensor: ...
    def log(self, step: int, terms: dict[str, float]) -> None: ...
    def checkpoint(self, step: int, extra_state: dict[str, Any]) -> None: ...
    def resume(self) -> tuple[int, dict[str, Any]] | None: ...


def _sgd(groups: list[tuple[list[nn.Parameter], float]], momentum: float) -> tuple[torch.optim.SGD, list[float]]:
    groups = [(p, lr) for p, lr in groups if p]
    return torch.optim.SGD([{"params": p, "lr": lr} for p, lr in groups], momentum=momentum), [lr for _, lr in groups]


def _terms(terms: dict[str, torch.Tensor], **extra: float) -> dict[str, float]:
    return {**{k: float(v.detach()) for k, v in terms.items()}, **extra}


def train_wshrca(model: WSHRCANet, padded: PaddedTags, ctx: Context, opts: Any,
                 backbone_params: list[nn.Parameter] | None = None) -> None:
    """Alternate [tag, tag, img, img] epochs for ``opts.epochs`` epochs (spec §2.6).

    Tag epochs step the TR module's SGD with the image branch under ``no_grad`` (train mode, dropout on);
    image epochs step the image SGD (backbone at ``lr_backbone`` when end-to-end, hash + reconstruction at
    ``lr_head``), with gradients flowing through the frozen TR module into r̂ and h. Each optimizer's lr
    is base × warm-up factor of its own owned-epoch count. A checkpoint is written after every epoch.
    """
    loss_fn = WSHRCALoss(opts.margin, tuple(opts.loss_weights))
    has_tag_side = bool(model.tag_parameters())
    img_opt, img_lrs = _sgd([(backbone_params or [], opts.lr_backbone), (model.image_parameters(), opts.lr_head)],
                            opts.momentum)
    tag_opt, tag_lrs = (_sgd([(model.tag_parameters(), opts.lr_tag)], opts.momentum) if has_tag_side
                        else (None, []))
    n = len(padded.counts)
    start, step = 0, 0
    resumed = ctx.resume()
    if resumed is not None:
        step, extra = resumed
        start = extra["epoch"]
        img_opt.load_state_dict(extra["img_opt"])
        if tag_opt is not None:
            tag_opt.load_state_dict(extra["tag_opt"])
    model.train()
    for epoch in range(start, opts.epochs):
        kind = epoch_kind(epoch, has_tag_side)
        opt, lrs = (tag_opt, tag_lrs) if kind == "tag" else (img_opt, img_lrs)
        factor = warmup_factor(owned_before(epoch, kind, has_tag_side), opts.warmup_epochs, opts.zero_first_epoch)
        set_lr(opt, lrs, factor)
        for idx in batches(n, opts.batch_size, ctx.generator):
            tag_index, pad = padded.batch(idx, ctx.device)
            with torch.set_grad_enabled(kind == "img"):
                h, r = model.image_branch(ctx.inputs(idx, train=True))
            terms = loss_fn(h, r, model.tag_branch(r, tag_index, pad))
            opt.zero_grad(set_to_none=True)
            terms["loss"].backward()
            opt.step()
            step += 1
            ctx.log(step, _terms(terms, lr_factor=factor, tag_epoch=float(kind == "tag")))
        extra = {"epoch": epoch + 1, "img_opt": img_opt.state_dict()}
        if tag_opt is not None:
            extra["tag_opt"] = tag_opt.state_dict()
        ctx.checkpoint(step, extra)


def train_wdht(model: WDHTNet, padded: PaddedTags, tag_vectors: torch.Tensor, ctx: Context, opts: Any,
               backbone_params: list[nn.Parameter] | None = None) -> None:
    """WDHT: one SGD (momentum 0.9) over the backbone (``lr_backbone``, the reference's 0.1 multiplier) and
    the head (``lr_head``), for ``opts.epochs`` epochs with the same per-epoch warm-up option."""
    loss_fn = WDHTLoss(opts.margin, tuple(opts.loss_weights))
    opt, lrs = _sgd([(backbone_params or [], opts.lr_backbone), (list(model.parameters()), opts.lr_head)],
                    opts.momentum)
    n = len(padded.counts)
    start, step = 0, 0
    resumed = ctx.resume()
    if resumed is not None:
        step, extra = resumed
        start = extra["epoch"]
        opt.load_state_dict(extra["opt"])
    model.train()
    for epoch in range(start, opts.epochs):
        factor = warmup_factor(epoch, opts.warmup_epochs, opts.zero_first_epoch)
        set_lr(opt, lrs, factor)
        for idx in batches(n, opts.batch_size, ctx.generator):
            tag_index, pad = padded.batch(idx, ctx.device)
            h, p = model(ctx.inputs(idx, train=True))
            terms = loss_fn(h, p, mean_tag_vectors(tag_vectors, tag_index, pad))
            opt.zero_grad(set_to_none=True)
            terms["loss"].backward()
            opt.step()
            step += 1
            ctx.log(step, _terms(terms, lr_factor=factor))
        ctx.checkpoint(step, {"epoch": epoch + 1, "opt": opt.state_dict()})
