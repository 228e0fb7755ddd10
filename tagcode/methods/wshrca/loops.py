"""The training loops of WSHRCA (alternating tag/image epochs) and WDHT (one optimizer) on the training
context: seeded shuffles from ``ctx.generator``, per-step loss terms to ``ctx.log``, a checkpoint whenever
``ctx.due`` says so (mid-epoch included: the epoch's permutation and position are saved), exact resume."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from tagcode.methods.torch_method import TrainContext
from tagcode.methods.wshrca.schedule import epoch_kind, owned_before, set_lr, warmup_factor

Step = Callable[[torch.Tensor, str], dict[str, torch.Tensor]]
"""One forward pass for a batch of training rows in an epoch of the given kind → the loss terms."""


def sgd(groups: list[tuple[list[nn.Parameter], float]], momentum: float) -> tuple[torch.optim.SGD, list[float]]:
    """Plain SGD with momentum (no weight decay) over the non-empty (parameters, base lr) groups."""
    groups = [(p, lr) for p, lr in groups if p]
    return torch.optim.SGD([{"params": p, "lr": lr} for p, lr in groups], momentum=momentum), [lr for _, lr in groups]


def epoch_batches(perm: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """The batches of one shuffled epoch; the last partial batch is dropped (the hinges need N ≥ 2 and every
    step sees the same N), unless the whole set is smaller than one batch."""
    size = min(batch_size, len(perm))
    return [perm[i:i + size] for i in range(0, len(perm) - size + 1, size)]


def run_epochs(ctx: TrainContext, n: int, opts: Any, optimizers: dict[str, tuple[torch.optim.Optimizer, list[float]]],
               has_tag_side: bool, step_fn: Step) -> None:
    """Run ``opts.epochs`` epochs over ``n`` rows. Epoch e belongs to ``epoch_kind(e)`` ("tag" or "img"); that
    optimizer alone steps, at base lr × its warm-up factor for its own owned-epoch count."""
    state: dict[str, Any] = {**{k: o for k, (o, _) in optimizers.items()},
                             "epoch": 0, "batch": 0, "perm": np.zeros(0, np.int64)}
    step, epoch, start, perm = 0, 0, 0, None
    resumed = ctx.resume(state)
    if resumed is not None:
        step, values = resumed
        epoch, start = int(values["epoch"]), int(values["batch"])
        perm = torch.from_numpy(np.asarray(values["perm"], dtype=np.int64)) if start else None
    ctx.model.train()
    while epoch < opts.epochs:
        if perm is None:
            perm = torch.randperm(n, generator=ctx.generator)
        kind = epoch_kind(epoch, has_tag_side)
        opt, base = optimizers[kind]
        factor = warmup_factor(owned_before(epoch, kind, has_tag_side), opts.warmup_epochs, opts.zero_first_epoch)
        set_lr(opt, base, factor)
        batches = epoch_batches(perm, opts.batch_size)
        for b in range(start, len(batches)):
            terms = step_fn(batches[b], kind)
            opt.zero_grad(set_to_none=True)
            terms["loss"].backward()
            opt.step()
            ctx.log(step, {**terms, "lr_factor": factor, "tag_epoch": float(kind == "tag")})
            step += 1
            if ctx.due(step):
                more = b + 1 < len(batches)
                ctx.save(step, {**{k: o for k, (o, _) in optimizers.items()}, "epoch": epoch if more else epoch + 1,
                                "batch": b + 1 if more else 0,
                                "perm": perm.numpy() if more else np.zeros(0, np.int64)})
        epoch, start, perm = epoch + 1, 0, None

