"""The two AlexNets of the papers in plain PyTorch, weights by path (none are installable on our machines).

``alexnet_caffe`` — the BVLC CaffeNet WSDHQ fine-tunes (specs/wsdhq.md §1.4–1.5): conv1 96×11×11/4 → ReLU →
maxpool 3/2 → LRN, conv2 256×5×5 (2 groups) → ReLU → maxpool → LRN, conv3 384, conv4 384 (2 groups), conv5
256 (2 groups) → maxpool → 6×6×256, fc6, fc7 (ReLU, dropout 0.5 in training); output fc7 (4096). LRN: TF's
depth_radius=2, alpha=2e-5 is torch's size=5, alpha=1e-4 (torch divides alpha by size). Weights: DeepHash's
``.npy`` dict layer → [W, b] in TF layout (conv HWIO, fc in×out); fc6's rows are permuted from TF's (H, W, C)
flatten order to PyTorch's (C, H, W). Input, as WSDHQ feeds it: 227 crops of the image resized to 256, RGB
order (OpenCV's BGR reversed by the graph) minus [103.939, 116.779, 123.68] — the BGR ImageNet means applied
to R, G, B, a quirk inherited from DeepHash — no std. ``channels="BGR"`` gives the true Caffe convention
(B, G, R minus the same constants) for a converted BVLC model that expects it.

``alexnet`` — the torchvision layout WSHRCA fine-tunes (specs/wshrca.md §1.5): 64-192-384-256-256, no LRN, no
groups; state-dict keys as torchvision's (``features.0.weight`` … ``classifier.4.weight``; ``classifier.6``,
fc8, is ignored); output fc7 (4096). Input: ImageNet mean/std on 0–1 RGB; evaluation Resize(227) →
CenterCrop(227), training Resize(256) → RandomCrop(227) + flip.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Literal

import numpy as np
import torch
from torch import nn

from tagcode.backbones.base import (
    BACKBONES,
    Backbone,
    Preprocess,
    load_state,
    load_torch_state,
    require_weights,
)
from tagcode.errors import TagcodeError, one_line

CAFFE_MEAN = (103.939, 116.779, 123.68)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _lrn() -> nn.LocalResponseNorm:
    """TF ``local_response_normalization(depth_radius=2, alpha=2e-5, beta=0.75, bias=1)``."""
    return nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=1.0)


class CaffeNet(Backbone):
    """CaffeNet up to fc7 (ReLU; dropout in training) with layers named as in the ``.npy`` file."""

    feature_dim = 4096

    def __init__(self, channels: Literal["RGB", "BGR"] = "RGB") -> None:
        super().__init__()
        self.features = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(3, 96, 11, stride=4)), ("relu1", nn.ReLU()), ("pool1", nn.MaxPool2d(3, 2)),
            ("norm1", _lrn()),
            ("conv2", nn.Conv2d(96, 256, 5, padding=2, groups=2)), ("relu2", nn.ReLU()),
            ("pool2", nn.MaxPool2d(3, 2)), ("norm2", _lrn()),
            ("conv3", nn.Conv2d(256, 384, 3, padding=1)), ("relu3", nn.ReLU()),
            ("conv4", nn.Conv2d(384, 384, 3, padding=1, groups=2)), ("relu4", nn.ReLU()),
            ("conv5", nn.Conv2d(384, 256, 3, padding=1, groups=2)), ("relu5", nn.ReLU()),
            ("pool5", nn.MaxPool2d(3, 2)),
        ]))
        self.fc6, self.fc7 = nn.Linear(9216, 4096), nn.Linear(4096, 4096)
        self.dropout = nn.Dropout(0.5)
        self.preprocess = Preprocess(size=227, resize=256, mean=CAFFE_MEAN, std=(1.0, 1.0, 1.0), channels=channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dropout(torch.relu(self.fc6(self.features(x).flatten(1))))
        return self.dropout(torch.relu(self.fc7(h)))

    def load_npy(self, path: str, allow_pickle: bool = False) -> None:
        """Port TF-layout ``{layer: [W, b]}`` weights (conv1–fc7; other layers such as fc8 are ignored).

        DeepHash's ``.npy`` is a pickled dict, and unpickling runs whatever code the file holds: it is
        refused unless ``allow_pickle`` (the features stage's ``allow_pickle`` option) says the file is trusted.
        """
        try:
            data = np.load(path, allow_pickle=allow_pickle, encoding="latin1").item()
        except ValueError as exc:
            if not allow_pickle and "allow_pickle" in str(exc) and _is_npy(path):
                raise TagcodeError(f"{path}: CaffeNet .npy weights are a pickled dict, and unpickling can run "
                                   f"arbitrary code; set allow_pickle: true only for a file you trust") from None
            raise TagcodeError(f"{path}: not a CaffeNet .npy weights dict ({one_line(exc)})") from None
        except FileNotFoundError:
            raise TagcodeError(f"{path}: weights file not found") from None
        except Exception as exc:  # np.load/.item raise many types for files that are not a pickled dict
            raise TagcodeError(f"{path}: not a CaffeNet .npy weights dict ({one_line(exc)})") from None
        if not isinstance(data, dict):
            raise TagcodeError(f"{path}: expected a dict of layers, got {type(data).__name__}")
        state: dict[str, torch.Tensor] = {}
        for name in ("conv1", "conv2", "conv3", "conv4", "conv5"):
            conv = self.features.get_submodule(name)
            w, b = _layer(data, name, path, tuple(conv.weight.permute(2, 3, 1, 0).shape))
            state[f"features.{name}.weight"] = torch.from_numpy(w.transpose(3, 2, 0, 1).copy())  # HWIO → OIHW
            state[f"features.{name}.bias"] = torch.from_numpy(b)
        w6, b6 = _layer(data, "fc6", path, (9216, 4096))
        w6 = w6.reshape(6, 6, 256, 4096).transpose(2, 0, 1, 3).reshape(9216, 4096)  # rows (H, W, C) → (C, H, W)
        w7, b7 = _layer(data, "fc7", path, (4096, 4096))
        state |= {"fc6.weight": torch.from_numpy(w6.T.copy()), "fc6.bias": torch.from_numpy(b6),
                  "fc7.weight": torch.from_numpy(w7.T.copy()), "fc7.bias": torch.from_numpy(b7)}
        load_state(self, state, path)


def _is_npy(path: str) -> bool:
    """True when the file starts with the .npy magic (an object array inside is then a pickle)."""
    with open(path, "rb") as fh:
        return fh.read(6) == b"\x93NUMPY"


def _layer(data: dict, name: str, path: str, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Layer ``name``'s (W, b) as float32, checked against the expected TF-layout ``shape``."""
    if name not in data:
        raise TagcodeError(f"{path}: no layer {name!r} in the weights file")
    try:
        w, b = (np.asarray(a, dtype=np.float32) for a in data[name][:2])
    except (TypeError, ValueError, KeyError, IndexError):
        raise TagcodeError(f"{path}: layer {name!r} is not a [weights, biases] pair") from None
    if w.shape != shape or b.shape != shape[-1:]:
        raise TagcodeError(f"{path}: layer {name!r} has weights {w.shape} and biases {b.shape}, expected "
                           f"{shape} and {shape[-1:]} (TF layout)")
    return w, b


class AlexNet(Backbone):
    """AlexNet in torchvision's module layout (``features.*``, ``classifier.1``/``.4`` = fc6/fc7), fc7 output."""

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
        self.preprocess = Preprocess(size=227, resize=227, train_resize=256, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                                     scale=1 / 255)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


@BACKBONES.register("alexnet_caffe")
def alexnet_caffe(*, weights: str | None = None, pretrained: bool = True,
                  channels: Literal["RGB", "BGR"] = "RGB", allow_pickle: bool = False) -> Backbone:
    """CaffeNet (WSDHQ) with weights from a DeepHash-style TF-layout ``.npy`` (a pickle: loaded only with
    ``allow_pickle=True``); ``channels`` as in the module doc."""
    require_weights("alexnet_caffe", weights, pretrained)
    net = CaffeNet(channels=channels)
    if weights is not None:
        net.load_npy(weights, allow_pickle=allow_pickle)
    return net


@BACKBONES.register("alexnet")
def alexnet(*, weights: str | None = None, pretrained: bool = True) -> Backbone:
    """torchvision-layout AlexNet (WSHRCA) with weights from a ``.pth`` state dict with torchvision's key names."""
    require_weights("alexnet", weights, pretrained)
    net = AlexNet()
    if weights is not None:
        load_state(net, load_torch_state(weights), weights)
    return net
