"""Backbones: real ImageNet predictions, the CaffeNet port, weight-file errors, resumable extraction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tagcode.backbones import BACKBONES, create_backbone, ten_crop, to_tensor
from tagcode.backbones.alexnet import AlexNetTV, CaffeNet
from tagcode.backbones.extract import extract_features, load_features
from tagcode.data.cache import ImageCache, write_cache
from tagcode.errors import TagcodeError


def _photo(arr: np.ndarray, size: int = 256) -> np.ndarray:
    return np.asarray(Image.fromarray(arr).resize((size, size), Image.Resampling.BICUBIC))


def test_efficientnet_lite0_classifies_real_photos() -> None:
    from skimage import data

    net = create_backbone("efficientnet_lite0")
    x = to_tensor(np.stack([_photo(data.chelsea()), _photo(data.coffee())]), net.preprocess)
    with torch.inference_mode():
        top = net.classify(x).softmax(1).topk(3).indices.tolist()
    assert top[0][0] in {281, 282, 285}  # tabby / tiger cat / Egyptian cat
    assert top[1][0] == 967  # espresso


def _tf_lrn(x: torch.Tensor) -> torch.Tensor:
    """TF local_response_normalization(depth_radius=2, bias=1, alpha=2e-5, beta=0.75), written out."""
    sq = x.pow(2)
    padded = torch.nn.functional.pad(sq, (0, 0, 0, 0, 2, 2))
    s = sum(padded[:, i:i + x.shape[1]] for i in range(5))
    return x / (1 + 2e-5 * s).pow(0.75)


def test_caffenet_port_matches_tf_layout_computation(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    shapes = {"conv1": (11, 11, 3, 96), "conv2": (5, 5, 48, 256), "conv3": (3, 3, 256, 384),
              "conv4": (3, 3, 192, 384), "conv5": (3, 3, 192, 256), "fc6": (9216, 4096), "fc7": (4096, 4096)}
    weights = {k: [rng.standard_normal(s).astype(np.float32) * 0.01, rng.standard_normal(s[-1]).astype(np.float32)
                   * 0.01] for k, s in shapes.items()}
    np.save(tmp_path / "alexnet.npy", weights, allow_pickle=True)
    net = create_backbone("alexnet_caffe", weights=str(tmp_path / "alexnet.npy"))
    x = torch.from_numpy(rng.standard_normal((2, 3, 227, 227)).astype(np.float32))
    f = torch.nn.functional

    def conv(h, name, stride=1, pad=0, groups=1):
        w = torch.from_numpy(weights[name][0]).permute(3, 2, 0, 1)
        return f.relu(f.conv2d(h, w, torch.from_numpy(weights[name][1]), stride=stride, padding=pad, groups=groups))

    h = _tf_lrn(f.max_pool2d(conv(x, "conv1", stride=4), 3, 2))
    h = _tf_lrn(f.max_pool2d(conv(h, "conv2", pad=2, groups=2), 3, 2))
    h = f.max_pool2d(conv(conv(conv(h, "conv3", pad=1), "conv4", pad=1, groups=2), "conv5", pad=1, groups=2), 3, 2)
    flat_hwc = h.permute(0, 2, 3, 1).reshape(2, -1)  # TF flattens (H, W, C)
    h = f.relu(flat_hwc @ torch.from_numpy(weights["fc6"][0]) + torch.from_numpy(weights["fc6"][1]))
    expected = f.relu(h @ torch.from_numpy(weights["fc7"][0]) + torch.from_numpy(weights["fc7"][1]))
    with torch.inference_mode():
        got = net(x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    lrn = torch.randn(1, 8, 3, 3)
    torch.testing.assert_close(net.features[3](lrn), _tf_lrn(lrn), rtol=1e-5, atol=1e-6)


def test_weight_files_errors(tmp_path: Path) -> None:
    with pytest.raises(TagcodeError, match="no packaged weights"):
        create_backbone("alexnet")
    state = {("features." if k.startswith("features") else "classifier.") + k.split(".", 1)[1]: v
             for k, v in AlexNetTV().state_dict().items()}
    torch.save(state, tmp_path / "ok.pth")
    assert create_backbone("alexnet", weights=str(tmp_path / "ok.pth")).feature_dim == 4096
    state["classifier.4.weight"] = torch.zeros(10, 4096)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(TagcodeError, match=r"bad\.pth: classifier\.4\.weight has shape \(10, 4096\)"):
        create_backbone("alexnet", weights=str(tmp_path / "bad.pth"))
    np.save(tmp_path / "partial.npy", {"conv1": [np.zeros((11, 11, 3, 96), np.float32), np.zeros(96, np.float32)]},
            allow_pickle=True)
    with pytest.raises(TagcodeError, match="no layer 'conv2'"):
        create_backbone("alexnet_caffe", weights=str(tmp_path / "partial.npy"))
    with pytest.raises(TagcodeError, match="unknown backbone 'resnet50'"):
        create_backbone("resnet50")


@pytest.mark.parametrize("name", BACKBONES.names())
def test_every_backbone_forward(name: str) -> None:
    net = create_backbone(name, pretrained=name == "efficientnet_lite0", **({"size": 64} if name in
                                                                           {"efficientnet_lite0", "tiny_cnn"} else {}))
    images = np.random.default_rng(0).integers(0, 256, (2, 48, 48, 3), dtype=np.uint8)
    x = to_tensor(images, net.preprocess)
    assert x.shape == (2, 3, net.preprocess.size, net.preprocess.size)
    with torch.inference_mode():
        assert net.eval()(x).shape == (2, net.feature_dim)
    assert ten_crop(images, net.preprocess).shape == (10, 2, 3, net.preprocess.size, net.preprocess.size)


def test_preprocessing_conventions() -> None:
    caffe = CaffeNet().preprocess
    img = np.zeros((1, 256, 256, 3), np.uint8)
    img[..., 0] = 200  # red
    x = to_tensor(img, caffe)
    assert x.shape == (1, 3, 227, 227)
    assert x[0, 2, 0, 0].item() == pytest.approx(200 - 123.68)  # red lands in channel 2 (BGR)
    assert x[0, 0, 0, 0].item() == pytest.approx(-103.939)


def test_extraction_resumes_after_interruption(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    write_cache(tmp_path / "cache", [(f"im{i}", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)) for i in range(40)],
                16)
    cache = ImageCache(tmp_path / "cache")
    net = create_backbone("tiny_cnn", size=16)
    full = extract_features(cache, net, tmp_path / "full", batch_size=4, batches_per_chunk=2, progress=False)

    def stop(chunk: int) -> None:
        if chunk == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract_features(cache, net, tmp_path / "out", batch_size=4, batches_per_chunk=2, progress=False,
                         on_chunk=stop)
    assert not (tmp_path / "out").exists() and len(list((tmp_path / "out.partial").glob("chunk-*"))) == 2
    resumed = extract_features(cache, net, tmp_path / "out", batch_size=4, batches_per_chunk=2, progress=False)
    assert resumed["resumed_chunks"] == 2 and full["resumed_chunks"] == 0
    ids, x = load_features(tmp_path / "out")
    ids_full, x_full = load_features(tmp_path / "full")
    assert list(ids) == [f"im{i}" for i in range(40)] == list(ids_full)
    np.testing.assert_allclose(x, x_full, rtol=1e-5, atol=1e-6)
    assert not (tmp_path / "out.partial").exists()
