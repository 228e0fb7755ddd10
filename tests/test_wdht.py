"""WDHT: its loss terms against their loop forms, and its head's shapes and ranges."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tagcode.methods.wshrca.losses import PairwiseMSE, VectorHinge, WDHTLoss
from tagcode.methods.wshrca.model import PaddedTags, WDHTNet, mean_tag_vectors


def test_pairwise_mse_equals_its_loop_form() -> None:
    torch.manual_seed(0)
    n, k = 7, 12
    h, v = torch.rand(n, k), torch.randn(n, 50)
    cos = torch.nn.functional.cosine_similarity
    loop = sum((float((h[i] - h[j]).pow(2).sum()) / k - (1 - float(cos(v[i], v[j], dim=0)))) ** 2
               for i in range(n) for j in range(n)) / n**2
    assert PairwiseMSE()(h, v)["pairwise"].item() == pytest.approx(loop, rel=1e-5)


def test_vector_hinge_equals_its_loop_form() -> None:
    torch.manual_seed(1)
    n, m = 8, 0.2
    p, v = torch.tanh(torch.randn(n, 50)), torch.randn(n, 50) * 0.3
    loop = sum(max(0.0, m - float(p[a] @ (v[a] - v[b]))) for a in range(n) for b in range(n) if a != b) / (n * (n - 1))
    assert VectorHinge(m)(p, v)["hinge"].item() == pytest.approx(loop, rel=1e-5)
    # identical mean tag vectors: every pair sits at the margin
    same = torch.ones(n, 50)
    assert VectorHinge(m)(p, same)["hinge"].item() == pytest.approx(m)


def test_wdht_head_ranges_and_weighted_total() -> None:
    torch.manual_seed(2)
    n = 16
    net = WDHTNet(40, 24, np.zeros((8, 50), np.float32))
    h, p = net(torch.randn(n, 40))
    assert h.shape == (n, 24) and p.shape == (n, 50) and p.abs().max() < 1 and ((h > 0) & (h < 1)).all()
    index, pad = PaddedTags([np.array([i % 5, 5 + i % 3]) for i in range(n)]).batch(torch.arange(n))
    v = mean_tag_vectors(torch.randn(8, 50), index, pad)
    terms = WDHTLoss()(h, p, v)
    assert -0.25 <= terms["quantization"].item() <= 0 and terms["hinge"].item() >= 0
    assert terms["loss"].item() == pytest.approx(
        terms["pairwise"].item() + 10 * terms["hinge"].item() + terms["quantization"].item(), rel=1e-6)


def test_wdht_trains_resumes_exactly_and_encodes(tmp_path: Path) -> None:
    from tests.test_wshrca import clustered_trainset, fit_small

    seen: list[dict[str, float]] = []
    full = fit_small("wdht", log=lambda step, terms: seen.append(terms), checkpoint_every=4)
    assert full.meta["untagged_skipped"] == 5 and len(seen) == 30
    assert all(np.isfinite(list(t.values())).all() for t in seen) and {t["tag_epoch"] for t in seen} == {0.0}
    fit_small("wdht", ckpt=str(tmp_path / "ck"), epochs=3, checkpoint_every=4)
    resumed = fit_small("wdht", ckpt=str(tmp_path / "ck"), checkpoint_every=4)
    assert all(np.array_equal(full.arrays[k], resumed.arrays[k]) for k in full.arrays)
    ts = clustered_trainset(n=40, seed=3)
    codes = full.encode(ts.features, ts.ids)
    assert codes.nbits == 16 and codes.bits.shape == (40, 2)
