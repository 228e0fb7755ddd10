"""The two AlexNets of the papers, in plain PyTorch (torchvision is unusable here); weights by path.

- ``alexnet_caffe``: the BVLC CaffeNet WSDHQ fine-tunes (96-256-384-384-256, LRN, grouped convolutions),
  loaded from DeepHash's ``.npy`` (dict layer → [W, b] in TF layout: conv HWIO, fc in×out). fc6's rows are
  permuted from TF's HWC flatten order to PyTorch's CHW. Input: BGR order, minus the constants
  [103.939, 116.779, 123.68] on 0–255 pixels, 227 crops of 256 resizes (WSDHQ spec §1.4–1.5).
- ``alexnet``: the torchvision layout WSHRCA fine-tunes (64-192-384-256-256, no LRN), from a ``.pth``
  state dict with torchvision's key names; ImageNet mean/std, 227 crops.

Both output fc7 (4096-d, after ReLU). No ImageNet AlexNet weights are installable on our machines.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from tagcode.backbones.base import BACKBONES, Backbone, Preprocess, load_state
from tagcode.errors import TagcodeError

CAFFE_LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7")


def _need_weights(name: str, weights: str | None, pretrained: bool) -> None:
    if pretrained and weights is None:
        raise TagcodeError(f"backbone {name!r} has no packaged weights: pass weights=<path> (or pretrained=False)")


class CaffeNet(Backbone):
    """CaffeNet up to fc7: conv1 → pool → LRN, conv2 (2 groups) → pool → LRN, conv3–5, fc6, fc7."""

    feature_dim = 4096

    def __init__(self) -> None:
        super().__init__()
        lrn = dict(size=5, alpha=1e-4, beta=0.75, k=1.0)  # TF depth_radius=2, alpha=2e-5 (torch divides by size)
        self.features = nn.Sequential(
            nn.Conv2d(3, 96, 11, stride=4), nn.ReLU(), nn.MaxPool2d(3, 2), nn.LocalResponseNorm(**lrn),
            nn.Conv2d(96, 256, 5, padding=2, groups=2), nn.ReLU(), nn.MaxPool2d(3, 2), nn.LocalResponseNorm(**lrn),
            nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 384, 3, padding=1, groups=2), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1, groups=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        )
        self.fc6, self.fc7 = nn.Linear(9216, 4096), nn.Linear(4096, 4096)
        self.dropout = nn.Dropout(0.5)
        self.preprocess = Preprocess(size=227, resize=256, mean=(103.939, 116.779, 123.68), std=(1.0, 1.0, 1.0),
                                     channels="BGR")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x).flatten(1)
        h = self.dropout(torch.relu(self.fc6(h)))
        return self.dropout(torch.relu(self.fc7(h)))

    def load_npy(self, path: str) -> None:
        """Port DeepHash/CaffeNet TF-layout weights (``{layer: [W, b]}``) into this module."""
        try:
            data = np.load(path, allow_pickle=True, encoding="latin1").item()
        except (OSError, ValueError, AttributeError) as exc:
            raise TagcodeError(f"{path}: not a CaffeNet .npy weights dict ({exc})") from None
        convs = [m for m in self.features if isinstance(m, nn.Conv2d)]
        state = {}
        for name, conv in zip(CAFFE_LAYERS[:5], convs, strict=True):
            w, b = _layer(data, name, path)
            state[name] = (torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1))), b, conv)
        w6, b6 = _layer(data, "fc6", path)
        if w6.shape[0] == 9216:  # TF flattened pool5 as (H=6, W=6, C=256); PyTorch flattens (C, H, W)
            w6 = w6.reshape(6, 6, 256, -1).transpose(2, 0, 1, 3).reshape(9216, -1)
        w7, b7 = _layer(data, "fc7", path)
        state["fc6"] = (torch.from_numpy(np.ascontiguousarray(w6.T)), b6, self.fc6)
        state["fc7"] = (torch.from_numpy(np.ascontiguousarray(w7.T)), b7, self.fc7)
        with torch.no_grad():
            for name, (w, b, mod) in state.items():
                if tuple(w.shape) != tuple(mod.weight.shape):
                    raise TagcodeError(f"{path}: {name} weights have shape {tuple(w.shape)}, "
                                       f"expected {tuple(mod.weight.shape)}")
                mod.weight.copy_(w)
                mod.bias.copy_(torch.from_numpy(np.asarray(b)))


def _layer(data: dict, name: str, path: str) -> tuple[np.ndarray, np.ndarray]:
    if name not in data:
        raise TagcodeError(f"{path}: no layer {name!r} in the weights file")
    w, b = data[name][0], data[name][1]
    return np.asarray(w, dtype=np.float32), np.asarray(b, dtype=np.float32)


class AlexNetTV(Backbone):
    """AlexNet in torchvision's layout (``features.*``, ``classifier.1/4`` = fc6/fc7), fc7 output."""

    feature_dim = 4096

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
        )
        self.classifier = nn.Sequential(nn.Dropout(0.5), nn.Linear(9216, 4096), nn.ReLU(), nn.Dropout(0.5),
                                        nn.Linear(4096, 4096), nn.ReLU())
        self.preprocess = Preprocess(size=227, resize=227, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                                     scale=1 / 255)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


@BACKBONES.register("alexnet_caffe")
def alexnet_caffe(*, weights: str | None = None, pretrained: bool = True) -> Backbone:
    """CaffeNet (WSDHQ) with weights from a DeepHash-style ``.npy``."""
    _need_weights("alexnet_caffe", weights, pretrained)
    net = CaffeNet()
    if weights is not None:
        net.load_npy(weights)
    return net.eval()


@BACKBONES.register("alexnet")
def alexnet(*, weights: str | None = None, pretrained: bool = True) -> Backbone:
    """torchvision-layout AlexNet (WSHRCA) with weights from a ``.pth`` state dict (fc8 ignored)."""
    _need_weights("alexnet", weights, pretrained)
    net = AlexNetTV()
    if weights is not None:
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, ValueError) as exc:
            raise TagcodeError(f"{weights}: not a readable .pth state dict ({exc})") from None
        load_state(net, state, weights)
    return net.eval()
