"""Backbones: real ImageNet predictions, the CaffeNet port, weight-file errors, preprocessing conventions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from tagcode.backbones import BACKBONES, Preprocess, create_backbone, ten_crop, to_tensor
from tagcode.backbones.alexnet import AlexNet, CaffeNet
from tagcode.errors import TagcodeError

CAFFE_SHAPES = {"conv1": (11, 11, 3, 96), "conv2": (5, 5, 48, 256), "conv3": (3, 3, 256, 384),
                "conv4": (3, 3, 192, 384), "conv5": (3, 3, 192, 256), "fc6": (9216, 4096), "fc7": (4096, 4096)}
TORCHVISION_KEYS = {f"{m}.{i}.{p}" for m, idx in (("features", (0, 3, 6, 8, 10)), ("classifier", (1, 4)))
                    for i in idx for p in ("weight", "bias")}


def test_efficientnet_lite0_classifies_real_photos() -> None:
    from skimage import data

    net = create_backbone("efficientnet_lite0")
    with torch.inference_mode():  # raw uint8 photos of different shapes through the backbone's own preprocessing
        probs = [net.classify(to_tensor(img[None], net.preprocess)).softmax(1)[0]
                 for img in (data.chelsea(), data.coffee())]
    cat, coffee = (p.topk(3).indices.tolist() for p in probs)
    assert cat[0] in {281, 282, 285} and 285 in cat  # tabby / tiger cat / Egyptian cat
    assert coffee[0] == 967 and probs[1][967] > 0.5  # espresso


def _tf_lrn(x: np.ndarray) -> np.ndarray:
    """TF local_response_normalization(depth_radius=2, bias=1, alpha=2e-5, beta=0.75) on NHWC, as documented."""
    out = np.empty_like(x)
    depth = x.shape[-1]
    for d in range(depth):
        sqr_sum = (x[..., max(0, d - 2):min(depth, d + 3)] ** 2).sum(-1)
        out[..., d] = x[..., d] / (1.0 + 2e-5 * sqr_sum) ** 0.75
    return out


def _tf_caffenet(x_nhwc: np.ndarray, w: dict[str, list[np.ndarray]]) -> np.ndarray:
    """The WSDHQ graph on NHWC input with TF-layout weights: split-group convs, HWC flatten, fc6/fc7."""

    def conv(h: np.ndarray, name: str, stride: int = 1, pad: int = 0, groups: int = 1) -> np.ndarray:
        kernel, bias = w[name]
        ins, ks = np.split(h, groups, axis=-1), np.split(kernel, groups, axis=-1)  # tf.split on channels
        outs = [F.conv2d(torch.from_numpy(i).permute(0, 3, 1, 2), torch.from_numpy(k).permute(3, 2, 0, 1),
                         stride=stride, padding=pad).permute(0, 2, 3, 1).numpy() for i, k in zip(ins, ks, strict=True)]
        return np.maximum(np.concatenate(outs, axis=-1) + bias, 0)

    def pool(h: np.ndarray) -> np.ndarray:
        return F.max_pool2d(torch.from_numpy(h).permute(0, 3, 1, 2), 3, 2).permute(0, 2, 3, 1).numpy()

    h = _tf_lrn(pool(conv(x_nhwc, "conv1", stride=4)))
    h = _tf_lrn(pool(conv(h, "conv2", pad=2, groups=2)))
    h = pool(conv(conv(conv(h, "conv3", pad=1), "conv4", pad=1, groups=2), "conv5", pad=1, groups=2))
    flat = h.reshape(len(h), -1)  # NHWC rows → TF's (H, W, C) flatten order
    h = np.maximum(flat @ w["fc6"][0] + w["fc6"][1], 0)
    return np.maximum(h @ w["fc7"][0] + w["fc7"][1], 0)


def _fake_caffe_weights(rng: np.random.Generator) -> dict[str, list[np.ndarray]]:
    """Random TF-layout CaffeNet weights, He-scaled so that activations neither vanish nor explode."""
    return {k: [(rng.standard_normal(s) * np.sqrt(2 / np.prod(s[:-1]))).astype(np.float32),
                (rng.standard_normal(s[-1]) * 0.1).astype(np.float32)] for k, s in CAFFE_SHAPES.items()}


def test_caffenet_port_matches_tf_layout_computation(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    weights = _fake_caffe_weights(rng)
    weights["fc8"] = [np.zeros((4096, 300), np.float32), np.zeros(300, np.float32)]  # WSDHQ checkpoints carry fc8
    np.save(tmp_path / "alexnet.npy", np.array(weights, dtype=object), allow_pickle=True)
    with pytest.raises(TagcodeError, match=r"alexnet\.npy: CaffeNet \.npy weights are a pickled dict, and "
                                           r"unpickling can run arbitrary code; set allow_pickle: true"):
        create_backbone("alexnet_caffe", weights=str(tmp_path / "alexnet.npy"))
    net = create_backbone("alexnet_caffe", weights=str(tmp_path / "alexnet.npy"), allow_pickle=True)
    x = (rng.standard_normal((2, 227, 227, 3)) * 60).astype(np.float32)
    with torch.inference_mode():
        got = net(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    expected = _tf_caffenet(x, weights)
    assert got.shape == (2, 4096) and (expected > 0).mean() > 0.2
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-3 * np.abs(expected).max())
    # without the fc6 row permutation the port would be wrong: PyTorch's (C, H, W) flatten gives other numbers
    chw = {**weights, "fc6": [weights["fc6"][0].reshape(256, 6, 6, 4096).transpose(1, 2, 0, 3).reshape(9216, 4096),
                              weights["fc6"][1]]}
    assert not np.allclose(got, _tf_caffenet(x, chw), rtol=1e-2, atol=1e-2 * np.abs(expected).max())


def test_lrn_matches_tf_formula() -> None:
    x = (np.random.default_rng(1).standard_normal((2, 5, 5, 7)) * 150).astype(np.float32)  # alpha·Σx² ≈ 1
    ours = CaffeNet().features.norm1(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(ours, _tf_lrn(x), rtol=1e-5, atol=1e-3)
    assert not np.allclose(x, ours, rtol=0.1)  # the normalisation is far from the identity at this scale


def test_alexnet_loads_torchvision_state_dict(tmp_path: Path) -> None:
    src = AlexNet()
    state = src.state_dict()
    assert set(state) == TORCHVISION_KEYS
    torch.save({**state, "classifier.6.weight": torch.zeros(1000, 4096), "classifier.6.bias": torch.zeros(1000)},
               tmp_path / "alexnet.pth")  # torchvision's file also has fc8, which is ignored
    net = create_backbone("alexnet", weights=str(tmp_path / "alexnet.pth"))
    for key, value in state.items():
        assert torch.equal(net.state_dict()[key], value)
    x = to_tensor(np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8), net.preprocess)
    with torch.inference_mode():
        torch.testing.assert_close(net(x), src.eval()(x))


@pytest.mark.parametrize(("edit", "match"), [
    (lambda s: s.update({"classifier.4.weight": torch.zeros(10, 4096)}),
     r"bad\.pth: 'classifier\.4\.weight' has shape \(10, 4096\), expected \(4096, 4096\)$"),
    (lambda s: s.pop("features.6.bias"), r"bad\.pth: weights file lacks 'features\.6\.bias'$"),
], ids=["wrong-shape", "missing-key"])
def test_alexnet_bad_state_dict_is_one_line(tmp_path: Path, edit, match: str) -> None:
    state = AlexNet().state_dict()
    edit(state)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(TagcodeError, match=match) as err:
        create_backbone("alexnet", weights=str(tmp_path / "bad.pth"))
    assert "\n" not in str(err.value)


def test_weight_file_errors_are_one_line(tmp_path: Path) -> None:
    for name in ("alexnet", "alexnet_caffe"):
        with pytest.raises(TagcodeError, match="no installable weights: give the weights file by path"):
            create_backbone(name)
        with pytest.raises(TagcodeError, match=r"nope: weights file not found$"):
            create_backbone(name, weights=str(tmp_path / "nope"))
    (tmp_path / "junk.bin").write_bytes(b"not a weights file\n" * 10)
    for name in ("alexnet", "alexnet_caffe", "efficientnet_lite0"):
        with pytest.raises(TagcodeError, match=r"junk\.bin: not a") as err:
            create_backbone(name, weights=str(tmp_path / "junk.bin"))
        assert "\n" not in str(err.value)
    weights = {"conv1": [np.zeros((11, 11, 3, 96), np.float32), np.zeros(96, np.float32)]}
    np.save(tmp_path / "partial.npy", np.array(weights, dtype=object), allow_pickle=True)
    with pytest.raises(TagcodeError, match=r"partial\.npy: no layer 'conv2'"):
        create_backbone("alexnet_caffe", weights=str(tmp_path / "partial.npy"), allow_pickle=True)
    weights["conv2"] = [np.zeros((5, 5, 96, 256), np.float32), np.zeros(256, np.float32)]  # ungrouped by mistake
    np.save(tmp_path / "wrong.npy", np.array(weights, dtype=object), allow_pickle=True)
    with pytest.raises(TagcodeError, match=r"wrong\.npy: layer 'conv2' has weights \(5, 5, 96, 256\)"):
        create_backbone("alexnet_caffe", weights=str(tmp_path / "wrong.npy"), allow_pickle=True)
    with pytest.raises(TagcodeError, match=r"unknown backbone 'alexnet_cafe' \(did you mean 'alexnet_caffe'\?\)"):
        create_backbone("alexnet_cafe")
    with pytest.raises(TagcodeError, match="tiny_cnn takes no weights file"):
        create_backbone("tiny_cnn", weights=str(tmp_path / "junk.bin"))


@pytest.mark.parametrize("name", BACKBONES.names())
def test_every_backbone_forward(name: str) -> None:
    net = create_backbone(name, pretrained=False)
    assert net.name == name and not net.training
    images = np.random.default_rng(0).integers(0, 256, (2, 48, 48, 3), dtype=np.uint8)
    x = to_tensor(images, net.preprocess)
    assert x.shape == (2, 3, net.preprocess.size, net.preprocess.size) and x.dtype == torch.float32
    with torch.inference_mode():
        out = net(x)
    assert out.shape == (2, net.feature_dim) and torch.isfinite(out).all()


def test_tiny_cnn_is_seeded_and_takes_small_inputs() -> None:
    a, b, c = (create_backbone("tiny_cnn", size=16, seed=s) for s in (0, 0, 1))
    x = to_tensor(np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8), a.preprocess)
    with torch.inference_mode():
        torch.testing.assert_close(a(x), b(x))
        assert not torch.allclose(a(x), c(x))
        assert (a(x).std(0) > 0).float().mean() > 0.8  # features vary across images
    with pytest.raises(TagcodeError, match="at least 16 px"):
        create_backbone("tiny_cnn", size=8)


def test_caffe_and_torchvision_value_conventions() -> None:
    img = np.zeros((1, 256, 256, 3), np.uint8)
    img[..., 0] = 200  # pure red
    wsdhq = to_tensor(img, create_backbone("alexnet_caffe", pretrained=False).preprocess)
    assert wsdhq.shape == (1, 3, 227, 227)
    # WSDHQ: RGB order, minus the BGR means in B, G, R order (DeepHash quirk)
    np.testing.assert_allclose(wsdhq[0, :, 0, 0], [200 - 103.939, -116.779, -123.68], rtol=1e-6)
    caffe = to_tensor(img, create_backbone("alexnet_caffe", pretrained=False, channels="BGR").preprocess)
    np.testing.assert_allclose(caffe[0, :, 0, 0], [-103.939, -116.779, 200 - 123.68], rtol=1e-6)  # true Caffe
    tv = to_tensor(img, AlexNet().preprocess)
    np.testing.assert_allclose(tv[0, :, 0, 0], [(200 / 255 - 0.485) / 0.229, -0.456 / 0.224, -0.406 / 0.225],
                               rtol=1e-5)
    lite = to_tensor(img, create_backbone("efficientnet_lite0", pretrained=False).preprocess)
    np.testing.assert_allclose(lite[0, :, 0, 0], [(200 - 127) / 128, -127 / 128, -127 / 128], rtol=1e-6)


def test_geometry_resize_crop_and_train_augmentation() -> None:
    ramp = np.broadcast_to(np.arange(40, dtype=np.uint8)[None, :, None], (20, 40, 3))  # value = column
    pre = Preprocess(size=10, resize=20, mean=(0.0,) * 3, std=(1.0,) * 3)
    x = to_tensor(ramp[None], pre)  # shorter side 20 → 20×40 (no resampling), centre 10×10 crop at columns 15..24
    np.testing.assert_array_equal(x[0, 0, 0].numpy(), np.arange(15, 25))
    squash = to_tensor(ramp[None], Preprocess(size=10, resize=None, mean=(0.0,) * 3, std=(1.0,) * 3))
    assert squash.shape == (1, 3, 10, 10) and squash[0, 0, 0, 0] < 3 and squash[0, 0, 0, -1] > 36  # whole image

    batch = np.stack([ramp] * 64)
    gen = torch.Generator().manual_seed(0)
    train = to_tensor(batch, pre, train=True, generator=gen)
    again = to_tensor(batch, pre, train=True, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(train, again)  # reproducible from the generator
    rows = train[:, 0, 0].numpy()
    steps = np.diff(rows, axis=1)
    assert set(np.unique(steps)) == {-1.0, 1.0}  # each image is a crop of the ramp, some flipped
    assert 10 < (steps[:, 0] < 0).sum() < 54  # flips are per image (p = 0.5)
    assert len(np.unique(rows.min(1))) > 10  # so are crop offsets, within 0..30
    assert rows.min() >= 0 and rows.max() <= 39
    wide = Preprocess(size=10, resize=10, train_resize=20, mean=(0.0,) * 3, std=(1.0,) * 3)
    assert to_tensor(batch[:2], wide, train=True, generator=gen).shape == (2, 3, 10, 10)
    with pytest.raises(ValueError, match="uint8"):
        to_tensor(batch.astype(np.float32), pre)


def test_ten_crop_reproduces_wsdhq_offsets() -> None:
    pre = create_backbone("alexnet_caffe", pretrained=False).preprocess
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 256, 256, 3), dtype=np.uint8)
    crops = ten_crop(images, pre)
    assert crops.shape == (10, 2, 3, 227, 227)
    mean = np.array(pre.mean, np.float32)
    flipped = images[:, :, ::-1]
    for k, (top, left) in enumerate([(0, 0), (28, 28), (28, 0), (0, 28), (14, 14)]):
        for j, src in ((k, flipped), (k + 5, images)):  # net_val.py: flipped image first, then the original
            want = src[:, top:top + 227, left:left + 227].astype(np.float32) - mean
            np.testing.assert_allclose(crops[j].permute(0, 2, 3, 1).numpy(), want)
    torch.testing.assert_close(crops[9], to_tensor(images, pre))  # the centre crop is the eval crop
