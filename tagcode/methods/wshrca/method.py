"""The registered methods ``wshrca`` and ``wdht``: tag-supervised binary hashing on the training contract.

Both train on the tagged training images only (an untagged image has nothing to attend to and would make
the attention NaN; they are counted in ``meta["untagged_skipped"]``), encode b = [h > 0.5] (sign(h − 0.5)
as packed bits) for Hamming search, and select no model: the final one is saved (no query or label is
ever looked at).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Self

import numpy as np
import torch
from pydantic import Field
from torch import nn

from tagcode.errors import TagcodeError
from tagcode.methods.base import METHODS, LogFn, check_byte_bits
from tagcode.methods.torch_method import TorchMethod, TrainContext
from tagcode.methods.trainset import TrainSet
from tagcode.methods.wshrca.loops import run_epochs, sgd
from tagcode.methods.wshrca.losses import WDHTLoss, WSHRCALoss
from tagcode.methods.wshrca.model import PaddedTags, WDHTNet, WSHRCANet, mean_tag_vectors
from tagcode.retrieval.codes import BinaryCodes

MEAN_BATCH = 512  # rows per pass when computing the input mean


def default_heads(dim: int) -> int:
    """Attention heads for word vectors of width ``dim``: 3 as in the reference when 3 divides it (300-d
    word2vec, 384-d MiniLM), else 2 (50-d GloVe: 2 × 25), else 1."""
    return next(h for h in (3, 2, 1) if dim % h == 0)


class _Shared(TorchMethod.Options):
    """Schedule and input options both methods share."""

    epochs: int = Field(80, ge=1, description="training epochs")
    batch_size: int = Field(32, ge=2, description="images per step (the last partial batch of an epoch is dropped)")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum")
    lr_backbone: float = Field(1e-4, ge=0, description="backbone lr (end_to_end mode)")
    warmup_epochs: int = Field(20, ge=0, description="gradual warm-up length in owned epochs (0: none)")
    zero_first_epoch: bool = Field(False, description="the reference's warm-up factor min(k, W)/W, whose first "
                                                      "owned epoch runs at lr 0; default min(k+1, W)/W")
    input_norm: Literal["none", "center", "center_l2"] = Field(
        "center", description="before the head: the input as is, centred on the training mean (default: the "
                              "frozen features are non-negative, so uncentred bits start biased and some die), "
                              "or centred and L2-normalised")


class _TagHashing(TorchMethod):
    """Common ground: binary codes from h, training on the tagged images, the input mean."""

    kind = "binary"

    @classmethod
    def check_bits(cls, bits: int) -> None:
        check_byte_bits(cls.name, bits)

    def __init__(self, bits: int, seed: int = 0, **options: Any) -> None:
        super().__init__(bits, seed, **options)
        self._untagged = 0

    def fit(self, train: TrainSet, *, log: LogFn | None = None, checkpoint_dir: str | Path | None = None) -> Self:
        """Fit on the training images that carry at least one tag; the others are counted and left out."""
        train.require(self.name, "tags")
        tagged = train.tagged()
        if len(tagged) < 2:
            raise TagcodeError(f"{self.name}: needs at least 2 training images with tags, got {len(tagged)}")
        self._untagged = len(train) - len(tagged)
        return super().fit(train.subset(tagged), log=log, checkpoint_dir=checkpoint_dir)

    def describe(self, train: TrainSet, in_dim: int) -> dict[str, Any]:
        counts = np.diff(train.tags.indptr)
        return {"tags": int(train.tags.shape[1]), "dim": int(train.tag_vectors.shape[1]),
                "train_images": len(train), "untagged_skipped": self._untagged,
                "tags_per_image_mean": float(counts.mean()), "tags_per_image_max": int(counts.max())}

    def prepare(self, ctx: TrainContext) -> PaddedTags:
        """Copy the tag vectors and (if asked) the training input mean into the model; the padded tag lists."""
        net = ctx.model.net
        net.tag_vectors.copy_(torch.from_numpy(ctx.train.tag_vectors))
        if self.opts.input_norm != "none":
            ctx.model.eval()
            with torch.no_grad():
                total = sum(ctx.inputs(np.arange(lo, min(lo + MEAN_BATCH, len(ctx.train))), train=False).sum(0)
                            for lo in range(0, len(ctx.train), MEAN_BATCH))
            net.prep.mean.copy_(total / len(ctx.train))
        return PaddedTags(ctx.train.tag_lists())

    def backbone_parameters(self, ctx: TrainContext) -> list[nn.Parameter]:
        """The trunk's trainable parameters (none in features mode)."""
        return [p for p in ctx.model.trunk.parameters() if p.requires_grad]

    def codes(self, x: Any, ids: np.ndarray) -> BinaryCodes:
        """sign(h − 0.5) as packed bits."""
        h = self.embed(x, lambda net, inp: net.codes(inp))
        return BinaryCodes(ids=ids, bits=np.packbits(h > 0.5, axis=1), nbits=self.bits)

    def encode(self, x: Any, ids: np.ndarray) -> BinaryCodes:
        return self.codes(x, ids)

    def encode_query(self, x: Any, ids: np.ndarray) -> BinaryCodes:
        return self.codes(x, ids)


@METHODS.register("wshrca")
class WSHRCA(_TagHashing):
    """WSHRCA (Du et al., ACM TOMM 2023): codes supervised by tag vectors refined by a cross-modal attention
    whose query is reconstructed from the code; alternating tag/image epochs (``specs/wshrca.md``)."""

    name = "wshrca"

    class Options(_Shared):
        """WSHRCA's options; defaults are the reference's unless documented otherwise. The schedule (epochs,
        warm-up, learning rates) departs from it for a linear head on frozen features: the reference's
        1e-3 / 2e-4 over 80 epochs with a 20-epoch warm-up leaves the head undertrained on a few thousand
        images (64-bit mAP 0.269 against 0.335 on the demo; README, WSHRCA deviations)."""

        epochs: int = Field(40, ge=1, description="training epochs (the reference: 80)")
        warmup_epochs: int = Field(5, ge=0, description="gradual warm-up length in owned epochs (the reference: 20)")
        margin: float = Field(0.8, ge=0, description="margin m of the cross-modal hinge (the reference's NUS "
                                                     "32-bit value)")
        loss_weights: tuple[float, float, float] = Field((1.0, 10.0, 1.0), description="λ1, λ2, λ3 of "
                                                                                      "L1, L2, L3")
        values: Literal["tags", "projected"] = Field(
            "tags", description="values of the tag attention: the image's own fixed tag vectors, so w stays a "
                                "weighted mean of its tags (default), or the reference's projected values with "
                                "output projection and FFN, which training bends toward the codes (README, "
                                "WSHRCA deviations)")
        heads: int | None = Field(None, ge=1, description="attention heads (None: 3 if they divide the word-vector "
                                                          "width, else 2, else 1)")
        ffn: int = Field(512, ge=1, description="FFN hidden width (values: projected)")
        dropout: float = Field(0.1, ge=0, lt=1, description="attention and FFN dropout")
        lr_head: float = Field(3e-2, ge=0, description="lr of the hash layer and reconstruction block (the "
                                                       "reference: 1e-3, for new layers on a fine-tuned AlexNet)")
        lr_tag: float = Field(6e-3, ge=0, description="lr of the tag-refinement module (the reference: 2e-4; "
                                                      "the default keeps its 1:5 ratio to lr_head)")
        attention: bool = Field(True, description="False: ablation, w = mean of the image's tag vectors")
        reconstruction: bool = Field(True, description="False: ablation, query and hinge anchor from the image "
                                                       "input instead of the code")

    def describe(self, train: TrainSet, in_dim: int) -> dict[str, Any]:
        meta = super().describe(train, in_dim)
        heads = self.opts.heads or default_heads(meta["dim"])
        if meta["dim"] % heads:
            raise TagcodeError(f"{self.name}: {heads} attention heads do not divide the {meta['dim']}-d tag vectors "
                               "(set heads to a divisor)")
        return {**meta, "heads": heads}

    def build(self, meta: dict[str, Any]) -> nn.Module:
        o = self.opts
        return WSHRCANet(meta["in_dim"], self.bits, np.zeros((meta["tags"], meta["dim"]), np.float32),
                         heads=meta["heads"], ffn=o.ffn, dropout=o.dropout, attention=o.attention,
                         values=o.values, reconstruction=o.reconstruction, l2_input=o.input_norm == "center_l2")

    def train_loop(self, ctx: TrainContext) -> dict[str, np.ndarray]:
        o, net = self.opts, ctx.model.net
        padded = self.prepare(ctx)
        loss_fn = WSHRCALoss(o.margin, o.loss_weights)
        has_tag_side = bool(net.tag_parameters())
        optimizers = {"img": sgd([(self.backbone_parameters(ctx), o.lr_backbone), (net.image_parameters(), o.lr_head)],
                                 o.momentum)}
        if has_tag_side:
            optimizers["tag"] = sgd([(net.tag_parameters(), o.lr_tag)], o.momentum)

        def step(rows: torch.Tensor, kind: str) -> dict[str, torch.Tensor]:
            tag_index, pad = padded.batch(rows, ctx.device)
            with torch.set_grad_enabled(kind == "img"):  # tag epochs: image branch in train mode, no grad,
                h, r = net.image_branch(ctx.inputs(rows.numpy(), train=kind == "img"))  # centre-crop view
            return loss_fn(h, r, net.tag_branch(r, tag_index, pad))

        run_epochs(ctx, len(ctx.train), o, optimizers, has_tag_side, step)
        return {}


@METHODS.register("wdht")
class WDHT(_TagHashing):
    """WDHT (Gattupalli et al., WACV 2019): codes whose distances follow the cosine distances of mean tag
    vectors, with a word-vector head held to its own mean tag vector by a dot-product hinge."""

    name = "wdht"

    class Options(_Shared):
        """WDHT's options; defaults are the reference's (Vijetha1/WDHT ``12bits_NUS.py``) unless documented."""

        epochs: int = Field(50, ge=1, description="training epochs")
        batch_size: int = Field(50, ge=2, description="images per step (the last partial batch is dropped)")
        warmup_epochs: int = Field(0, ge=0, description="gradual warm-up length in epochs (the reference has none)")
        margin: float = Field(0.2, ge=0, description="margin of the vector hinge")
        loss_weights: tuple[float, float, float] = Field((1.0, 10.0, 1.0), description="weights of the MSE, the "
                                                                                      "vector hinge, quantization")
        hidden: int = Field(256, ge=1, description="width of the shared ReLU layer before both heads")
        lr_head: float = Field(1e-3, ge=0, description="lr of the head")

    def build(self, meta: dict[str, Any]) -> nn.Module:
        return WDHTNet(meta["in_dim"], self.bits, np.zeros((meta["tags"], meta["dim"]), np.float32),
                       hidden=self.opts.hidden, l2_input=self.opts.input_norm == "center_l2")

    def train_loop(self, ctx: TrainContext) -> dict[str, np.ndarray]:
        o, net = self.opts, ctx.model.net
        padded = self.prepare(ctx)
        loss_fn = WDHTLoss(o.margin, o.loss_weights)
        optimizers = {"img": sgd([(self.backbone_parameters(ctx), o.lr_backbone), (list(net.parameters()), o.lr_head)],
                                 o.momentum)}

        def step(rows: torch.Tensor, kind: str) -> dict[str, torch.Tensor]:
            tag_index, pad = padded.batch(rows, ctx.device)
            h, p = net(ctx.inputs(rows.numpy(), train=True))
            return loss_fn(h, p, mean_tag_vectors(net.tag_vectors, tag_index, pad))

        run_epochs(ctx, len(ctx.train), o, optimizers, False, step)
        return {}
