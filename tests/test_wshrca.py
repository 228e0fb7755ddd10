"""WSHRCA: the attention over an image's own tags, the losses against their loop forms and ranges."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tagcode.methods.wshrca.losses import CrossModalHinge, PairwiseL1, Quantization, WSHRCALoss
from tagcode.methods.wshrca.model import PaddedTags, TagRefinement, WSHRCANet
from tagcode.methods.wshrca.schedule import epoch_kind, owned_before, warmup_factor

V, D, HEADS = 12, 30, 3
TAG_LISTS = [np.array([3]), np.array([0, 5, 5, 7]), np.array([1, 2, 4, 6, 8, 11]), np.array([9, 10])]


def _refinement(seed: int = 0) -> tuple[TagRefinement, torch.Tensor]:
    torch.manual_seed(seed)
    return TagRefinement(D, HEADS).eval(), torch.randn(V, D)


def test_padded_tags_deduplicate_trim_and_refuse_empty_rows() -> None:
    padded = PaddedTags(TAG_LISTS)
    index, pad = padded.batch(torch.tensor([0, 1]))
    assert index.shape == (2, 3)  # [0, 5, 5, 7] de-duplicates to 3 tags, the batch's longest
    assert index[1].tolist() == [0, 5, 7] and pad.tolist() == [[False, True, True], [False, False, False]]
    with pytest.raises(ValueError, match="1 images have no tags"):
        PaddedTags([np.array([1]), np.array([], dtype=np.int64)])


def test_attention_weights_sum_to_one_over_own_tags_and_zero_elsewhere() -> None:
    tr, e = _refinement()
    idx = torch.arange(len(TAG_LISTS))
    index, pad = PaddedTags(TAG_LISTS).batch(idx)
    query = torch.randn(len(TAG_LISTS), D)
    with torch.no_grad():
        _, alpha = tr.attend(query, e, index, pad)
    full = torch.zeros(len(TAG_LISTS), V).scatter_add_(1, index, alpha.masked_fill(pad, 0))
    torch.testing.assert_close(full.sum(1), torch.ones(len(TAG_LISTS)))
    assert (alpha[pad] == 0).all()
    for row, tags in enumerate(TAG_LISTS):
        outside = np.setdiff1d(np.arange(V), tags)
        assert (full[row, outside] == 0).all() and (full[row, np.unique(tags)] > 0).all()


def test_gathered_attention_equals_masked_full_vocabulary_attention_in_eval_mode() -> None:
    tr, e = _refinement(1)
    n = len(TAG_LISTS)
    index, pad = PaddedTags(TAG_LISTS).batch(torch.arange(n))
    query = torch.randn(n, D)
    multi_hot = torch.zeros(n, V, dtype=torch.bool)
    for row, tags in enumerate(TAG_LISTS):
        multi_hot[row, tags] = True
    with torch.no_grad():
        u, alpha = tr.attend(query, e, index, pad)
        ref_u, ref_alpha = tr.attn(query[:, None, :], e.expand(n, V, D), e.expand(n, V, D),
                                   key_padding_mask=~multi_hot)
    torch.testing.assert_close(u, ref_u[:, 0], rtol=1e-5, atol=1e-6)
    gathered = torch.zeros(n, V).scatter_add_(1, index, alpha.masked_fill(pad, 0))
    torch.testing.assert_close(gathered, ref_alpha[:, 0], rtol=1e-5, atol=1e-6)


def test_single_tag_image_w_does_not_depend_on_the_image() -> None:
    torch.manual_seed(2)
    net = WSHRCANet(20, 16, torch.randn(V, D).numpy(), heads=HEADS).eval()
    index, pad = PaddedTags([np.array([4])] * 3).batch(torch.arange(3))
    with torch.no_grad():
        _, r = net.image_branch(torch.randn(3, 20) * 5)
        w = net.tag_branch(r, index, pad)
    assert not torch.allclose(r[0], r[1])
    torch.testing.assert_close(w[0], w[1])
    torch.testing.assert_close(w[0], w[2])


def test_no_attention_ablation_is_the_mean_tag_vector() -> None:
    e = torch.randn(V, D)
    net = WSHRCANet(20, 16, e.numpy(), heads=HEADS, attention=False)
    index, pad = PaddedTags(TAG_LISTS).batch(torch.arange(len(TAG_LISTS)))
    w = net.tag_branch(torch.randn(len(TAG_LISTS), D), index, pad)
    for row, tags in enumerate(TAG_LISTS):
        torch.testing.assert_close(w[row], e[np.unique(tags)].mean(0))
    assert net.tag_parameters() == []


def test_heads_must_divide_the_word_vector_width() -> None:
    with pytest.raises(ValueError, match="not divisible by 3"):
        TagRefinement(50, 3)


def test_vectorised_hinge_equals_its_loop_form() -> None:
    torch.manual_seed(3)
    n, m = 9, 0.8
    r, w = torch.randn(n, D), torch.randn(n, D)
    cos = torch.nn.functional.cosine_similarity
    loop = sum(max(0.0, m + float(cos(w[i], r[j], dim=0)) - float(cos(w[j], r[j], dim=0)))
               for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    assert CrossModalHinge(m)(r, w)["hinge"].item() == pytest.approx(loop, rel=1e-5)


def test_pairwise_l1_equals_its_loop_form() -> None:
    torch.manual_seed(4)
    n, k = 6, 16
    h, w = torch.rand(n, k), torch.randn(n, D)
    cos = torch.nn.functional.cosine_similarity
    loop = sum(abs(float((h[i] - h[j]).pow(2).sum()) / k - (1 - float(cos(w[i], w[j], dim=0))) / 2)
               for i in range(n) for j in range(n)) / n**2
    assert PairwiseL1()(h, w)["pairwise"].item() == pytest.approx(loop, rel=1e-5)


def test_loss_ranges_at_initialisation() -> None:
    """Spec §6.4: L1 ∈ [0, 1]; L2 ≈ m when the cosines are uninformative; L3 ∈ [−0.25, 0]."""
    torch.manual_seed(5)
    n, m = 32, 0.8
    net = WSHRCANet(64, 32, torch.randn(V, 300).numpy(), heads=3)
    index, pad = PaddedTags([np.array([t % V, (3 * t + 1) % V]) for t in range(n)]).batch(torch.arange(n))
    h, r = net.image_branch(torch.randn(n, 64))
    terms = WSHRCALoss(m)(h, r, net.tag_branch(r, index, pad))
    assert 0 <= terms["pairwise"].item() <= 1
    assert -0.25 <= terms["quantization"].item() <= 0
    assert terms["hinge"].item() == pytest.approx(m, abs=0.1)
    # random directions in a high-dimensional space: cosines ≈ 0, so each hinge term is ≈ m
    assert CrossModalHinge(m)(torch.randn(n, 2000), torch.randn(n, 2000))["hinge"].item() == pytest.approx(m, abs=0.02)
    assert Quantization()(torch.tensor([[0.0, 1.0]]))["quantization"].item() == pytest.approx(-0.25)
    assert PairwiseL1()(torch.tensor([[0.0, 0.0], [1.0, 1.0]]), torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))[
        "pairwise"].item() == pytest.approx(0.0)
    assert terms["loss"].item() == pytest.approx(
        terms["pairwise"].item() + 10 * terms["hinge"].item() + terms["quantization"].item(), rel=1e-6)


def test_warmup_lr_sequence_is_the_reference_sequence() -> None:
    """Spec Appendix A: factors 0, 0.05, …, 0.95, 1.0, 1.0 for the k-th owned epoch (zero-lr first epoch)."""
    factors = [warmup_factor(k, 20, zero_first=True) for k in range(23)]
    assert factors == pytest.approx([k / 20 for k in range(21)] + [1.0, 1.0])
    assert [warmup_factor(k, 20, zero_first=False) for k in (0, 18, 19, 30)] == pytest.approx([0.05, 0.95, 1, 1])
    # stepped only in owned epochs: the tag optimizer owns epochs 0,1,4,5,…; the image optimizer 2,3,6,7,…
    kinds = [epoch_kind(e) for e in range(8)]
    assert kinds == ["tag", "tag", "img", "img"] * 2
    assert [owned_before(e, kinds[e]) for e in range(8)] == [0, 1, 0, 1, 2, 3, 2, 3]
    assert {epoch_kind(e, has_tag_side=False) for e in range(8)} == {"img"}
    # full lr reached at global epoch 40 (tag) and 42 (image), as the spec says
    first_full = {kind: next(e for e in range(100) if epoch_kind(e) == kind
                             and warmup_factor(owned_before(e, kind), 20, True) == 1.0) for kind in ("tag", "img")}
    assert first_full == {"tag": 40, "img": 42}
