"""The ``wsdhq`` method: options (every schedule number of spec §3.6 a field with the spec's default), the
model (input centring + embedding head), the training loop and ICM encoding, on TorchMethod.

Encoding: the eval-mode embedding x (features mode: the head on the features; end-to-end mode: the mean
of the head's tanh outputs over WSDHQ's 10 test crops), then ICM codes with the final codebooks in the
training metric G (``metric``: the identity, or the spec's WᵀW). Both sides carry x and the codes: the
database's codes serve AQD, the query's x serves AQD, the query's codes SQD and both x's the
``wsdhq_feats`` reference.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from tagcode.errors import TagcodeError
from tagcode.methods.base import METHODS
from tagcode.methods.torch_method import TorchMethod, TorchOptions, TrainContext
from tagcode.methods.trainset import TrainSet
from tagcode.methods.wsdhq import quantizer
from tagcode.methods.wsdhq.model import EmbeddingHead
from tagcode.methods.wsdhq.train import metric, train
from tagcode.retrieval.codes import QuantizedCodes


class WSDHQOptions(TorchOptions):
    """WSDHQ's options; defaults are the spec's values unless the field says otherwise (``metric``,
    ``codebooks``, ``sphere``: the README's WSDHQ deviations give the measurements)."""

    gamma: float = Field(1.0, gt=0, description="adaptive-margin exponent γ: m = 2^{1−γ}(1 − cos(w̄_p, w̄_n))^γ")
    fixed_margin: float | None = Field(None, ge=0, description="a constant margin instead (the 0.7 ablation)")
    lam: float = Field(1e-4, ge=0, description="λ, weight of the quantization loss (0 until codebooks exist)")
    lr: float = Field(3e-4, gt=0, description="Adam learning rate")
    lr_decay: float = Field(0.5, gt=0, le=1, description="staircase learning-rate factor")
    lr_step: int = Field(300, ge=1, description="iterations between learning-rate decays")
    batch_size: int = Field(256, ge=1, description="images per iteration (trailing partial batch skipped)")
    iterations: int = Field(800, ge=1, description="training iterations (spec: 800 MIRFlickr, 1500 NUS-WIDE)")
    update_period: int | None = Field(None, ge=1, description="iterations between code/codebook updates "
                                                              "(None: 2·ceil(N / batch_size), about 2 epochs)")
    icm_passes: int = Field(3, ge=1, description="ICM passes over the codebooks")
    icm_batch: int = Field(500, ge=1, description="rows per ICM batch in training (one codebook order each)")
    encode_batch: int = Field(700, ge=1, description="rows per ICM batch when encoding")
    metric: Literal["euclidean", "tags"] = Field(
        "euclidean", description="metric of ICM and the quantization loss: euclidean ‖x − x̂‖² (default: AQD "
                                 "ranks by ⟨q, x̂⟩, whose error is Euclidean; see README) or the spec's tag metric "
                                 "‖W(x − x̂)‖²")
    codebooks: Literal["product", "additive"] = Field(
        "product", description="refit each codebook within its k-means block (product quantization, default: "
                               "M·256 full-width codewords overfit a few thousand images; see README) or as "
                               "full-width additive codewords (the spec)")
    ridge: float = Field(1e-3, ge=0, description="ridge of the codebook least squares")
    unused_tol: float = Field(1e-8, ge=0, description="squared norm below which a refitted codeword is unused "
                                                     "and keeps its previous value")
    kmeans_batch_size: int = Field(100, ge=1, description="MiniBatchKMeans batch (sklearn 0.23 default)")
    kmeans_n_init: int = Field(3, ge=1, description="MiniBatchKMeans restarts (sklearn 0.23 default)")
    kmeans_max_iter: int = Field(100, ge=1, description="MiniBatchKMeans epochs (sklearn 0.23 default)")
    init_std: float = Field(0.01, ge=0, description="std of the head's initial weights (fc8: N(0, 0.01²))")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the head's input (features mode)")
    input_norm: Literal["none", "center_l2"] = Field(
        "none", description="features mode: centre the features on the training mean and L2-normalise them "
                            "before the head")
    sphere: bool = Field(True, description="L2-normalise the embedding before the memory bank, the quantization "
                                           "loss, ICM and search; false is the reference code (see README)")


@METHODS.register("wsdhq")
class WSDHQ(TorchMethod):
    """Weakly supervised deep hyperspherical quantization: a tanh embedding trained with the adaptive cosine
    margin loss against the image's tag vectors and the supervised quantization loss, quantized by M
    additive codebooks × 256 full-width codewords (8·M bits) assigned by ICM."""

    name = "wsdhq"
    kind = "quantizer"
    Options = WSDHQOptions

    @classmethod
    def check_bits(cls, bits: int) -> None:
        if bits % 8 or not 8 <= bits <= 64:
            raise TagcodeError(f"method 'wsdhq' cannot make {bits}-bit codes: it supports 8·M bits with M = 1..8 "
                               "codebooks of 256 codewords (8, 16, 24, 32, ..., 64)")

    def describe(self, train: TrainSet, in_dim: int) -> dict[str, Any]:
        return {"dim": int(train.tag_vectors.shape[1]), "tags": int(train.tag_vectors.shape[0])}

    def build(self, meta: dict[str, Any]) -> nn.Module:
        o = self.opts
        return _Net(meta["in_dim"], meta["dim"], dropout=o.dropout, init_std=o.init_std,
                    l2=o.input_norm == "center_l2" and o.mode == "features", sphere=o.sphere)

    def train_loop(self, ctx: TrainContext) -> dict[str, np.ndarray]:
        tr = ctx.train
        if self.opts.input_norm == "center_l2" and self.opts.mode == "features":
            ctx.model.net.mean.copy_(torch.from_numpy(tr.features.mean(axis=0)))
        out = train(ctx, tr.tags, tr.tag_vectors, self.bits // 8, self.seed, self.opts)
        return {"codebooks": out["codebooks"], "metric": metric(tr.tag_vectors, self.opts.metric)}

    def encode(self, x: Any, ids: np.ndarray) -> QuantizedCodes:
        emb = self.embeddings(x)
        icm = quantizer.ICM(self.arrays["codebooks"], self.arrays["metric"], passes=self.opts.icm_passes)
        codes = icm.encode(emb, np.random.default_rng(self.seed), batch=self.opts.encode_batch)
        return QuantizedCodes(ids=ids, codes=codes, codebooks=self.arrays["codebooks"], x=emb)

    def encode_query(self, x: Any, ids: np.ndarray) -> QuantizedCodes:
        return self.encode(x, ids)

    def embeddings(self, x: Any) -> np.ndarray:
        """Eval-mode embeddings of features (features mode) or uint8 images (end-to-end: mean of 10 crops)."""
        if self.opts.mode == "features":
            return self.embed(x, lambda net, inp: net(inp))
        from tagcode.backbones.transforms import ten_crop

        model = self.model.eval()
        dev = next(model.parameters()).device
        out = []
        with torch.no_grad():
            for lo in range(0, len(x), 64):
                crops = ten_crop(np.asarray(x[lo:lo + 64]), model.trunk.backbone.preprocess, device=dev)
                out.append(torch.stack([model.net(model.trunk(c)) for c in crops]).mean(0).float().cpu().numpy())
        return np.concatenate(out)


class _Net(nn.Module):
    """Optional input centring + L2 normalisation (the baselines' preprocessing), the embedding head, and the
    optional L2 normalisation of its output (``sphere``)."""

    def __init__(self, in_dim: int, dim: int, *, dropout: float, init_std: float, l2: bool, sphere: bool) -> None:
        super().__init__()
        self.l2, self.sphere = l2, sphere
        self.register_buffer("mean", torch.zeros(in_dim))
        self.head = EmbeddingHead(in_dim, dim, dropout=dropout, init_std=init_std)

    def forward(self, f: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.l2:
            f = f - self.mean
            f = f / f.norm(dim=1, keepdim=True).clamp(min=1e-12)
        x = self.head(f, generator)
        return F.normalize(x, dim=1) if self.sphere else x
