"""WSHRCA: the attention over an image's own tags, the losses against their loop forms and ranges."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from tagcode.errors import TagcodeError
from tagcode.methods import Method, create_method, load_method
from tagcode.methods.trainset import TrainSet
from tagcode.methods.wshrca.losses import CrossModalHinge, PairwiseL1, Quantization, WSHRCALoss
from tagcode.methods.wshrca.model import PaddedTags, TagRefinement, TagSelection, WSHRCANet
from tagcode.methods.wshrca.schedule import epoch_kind, owned_before, warmup_factor
from tagcode.stages import run_stage
from tests.killing import kill_then_resume
from tests.tiny_dataset import build_tiny_dataset

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


def test_selection_equals_masked_attention_with_identity_value_and_output_projections() -> None:
    """The default tag module is nn.MultiheadAttention over the full vocabulary, masked to the image's own
    tags, with W_v = W_o = I and zero biases: w is a per-head convex combination of its own tag vectors."""
    torch.manual_seed(6)
    sel, e = TagSelection(D, HEADS).eval(), torch.randn(V, D)
    n = len(TAG_LISTS)
    index, pad = PaddedTags(TAG_LISTS).batch(torch.arange(n))
    query = torch.randn(n, D) * 3
    mha = torch.nn.MultiheadAttention(D, HEADS, batch_first=True).eval()
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([sel.query.weight, sel.key.weight, torch.eye(D)]))
        mha.in_proj_bias.copy_(torch.cat([sel.query.bias, sel.key.bias, torch.zeros(D)]))
        mha.out_proj.weight.copy_(torch.eye(D))
        mha.out_proj.bias.zero_()
        multi_hot = torch.zeros(n, V, dtype=torch.bool)
        for row, tags in enumerate(TAG_LISTS):
            multi_hot[row, tags] = True
        ref, _ = mha(query[:, None, :], e.expand(n, V, D), e.expand(n, V, D), key_padding_mask=~multi_hot)
        w, alpha = sel.attend(query, e, index, pad)
    torch.testing.assert_close(w, ref[:, 0], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(alpha[2, :6], torch.full((6,), 1 / 6))  # the query does pick among the tags
    for row, tags in enumerate(TAG_LISTS):  # every coordinate lies within its own tags' range
        own = e[np.unique(tags)]
        assert (w[row] >= own.min(0).values - 1e-6).all() and (w[row] <= own.max(0).values + 1e-6).all()


def test_selection_with_a_blind_query_is_the_mean_tag_vector() -> None:
    e = torch.randn(V, D)
    sel = TagSelection(D, HEADS).eval()
    with torch.no_grad():
        sel.query.weight.zero_()
        index, pad = PaddedTags(TAG_LISTS).batch(torch.arange(len(TAG_LISTS)))
        w = sel(torch.randn(len(TAG_LISTS), D), e, index, pad)
    for row, tags in enumerate(TAG_LISTS):
        torch.testing.assert_close(w[row], e[np.unique(tags)].mean(0))


@pytest.mark.parametrize("values", ["tags", "projected"])
def test_single_tag_image_w_does_not_depend_on_the_image(values: str) -> None:
    torch.manual_seed(2)
    e = torch.randn(V, D)
    net = WSHRCANet(20, 16, e.numpy(), heads=HEADS, values=values).eval()
    index, pad = PaddedTags([np.array([4])] * 3).batch(torch.arange(3))
    with torch.no_grad():
        _, r = net.image_branch(torch.randn(3, 20) * 5)
        w = net.tag_branch(r, index, pad)
    assert not torch.allclose(r[0], r[1])
    torch.testing.assert_close(w[0], w[1])
    torch.testing.assert_close(w[0], w[2])
    if values == "tags":
        torch.testing.assert_close(w[0], e[4])


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


# --- the registered method on the training contract -------------------------------------------------------

def clustered_trainset(n: int = 48, n_untagged: int = 0, seed: int = 0) -> TrainSet:
    """Four clusters of 16-d features; each image carries 1–3 tags of its cluster's 3 (12 tags, 30-d raw
    vectors); the first ``n_untagged`` images carry none."""
    rng = np.random.default_rng(seed)
    cluster = np.arange(n) % 4
    x = (rng.normal(size=(4, 16)) * 3)[cluster] + rng.normal(size=(n, 16))
    rows = [rng.choice(3 * c + np.arange(3), size=rng.integers(1, 4), replace=False) for c in cluster]
    dense = np.zeros((n, 12), np.float32)
    for i, r in enumerate(rows):
        dense[i, r] = 0 if i < n_untagged else 1
    return TrainSet(ids=[f"im{i}" for i in range(n)], features=x.astype(np.float32), tags=sp.csr_matrix(dense),
                    tag_vectors=(rng.normal(size=(12, 30)) * 2).astype(np.float32), tag_names=tuple("abcdefghijkl"))


def fit_small(method: str = "wshrca", ckpt: str | None = None, log: Any = None, **options: Any) -> Method:
    """A few epochs on the clustered set (entry point of the kill test's subprocess too)."""
    opts = {"epochs": 6, "batch_size": 8, "warmup_epochs": 2, "checkpoint_every": 3, **options}
    return create_method(method, bits=16, seed=7, **opts).fit(clustered_trainset(n_untagged=5), log=log,
                                                             checkpoint_dir=ckpt)


def test_untagged_images_are_left_out_and_nothing_is_nan() -> None:
    seen: list[dict[str, float]] = []
    method = fit_small(log=lambda step, terms: seen.append(terms))
    assert method.meta["untagged_skipped"] == 5 and method.meta["train_images"] == 43
    assert method.meta["heads"] == 3  # 30-d vectors: the reference's 3 heads
    assert len(seen) == 6 * (43 // 8) and all(np.isfinite(list(t.values())).all() for t in seen)
    assert {"pairwise", "hinge", "quantization", "loss", "lr_factor", "tag_epoch"} <= set(seen[0])
    assert [t["tag_epoch"] for t in seen[::5]] == [1, 1, 0, 0, 1, 1]
    assert all(np.isfinite(v).all() for v in method.arrays.values())


def test_same_seed_same_model_and_codes_rank_as_the_evaluator(tmp_path: Path) -> None:
    import faiss

    from tagcode.retrieval.index import to_faiss_index
    from tagcode.retrieval.search import hamming_knn

    a, b = fit_small(), fit_small()
    assert set(a.arrays) == set(b.arrays) and all(np.array_equal(a.arrays[k], b.arrays[k]) for k in a.arrays)
    ts = clustered_trainset(n=80, seed=1)
    db = a.encode(ts.features, ts.ids)
    q = a.encode_query(ts.features[:10], ts.ids[:10])
    assert db.nbits == 16 and len(np.unique(db.bits, axis=0)) > 1
    a.save(tmp_path / "m")
    again = Method.load(tmp_path / "m").encode(ts.features, ts.ids)
    assert np.array_equal(again.bits, db.bits)
    index = to_faiss_index(db)
    assert isinstance(index, faiss.IndexBinaryFlat)
    d_faiss, _ = index.search(q.bits, len(ts.ids))
    d_eval, i_eval = hamming_knn(q.bits, db.bits, len(ts.ids))
    brute = (np.unpackbits(q.bits, axis=1)[:, None] != np.unpackbits(db.bits, axis=1)[None]).sum(-1)
    np.testing.assert_array_equal(d_faiss, d_eval)
    np.testing.assert_array_equal(i_eval, np.argsort(brute, axis=1, kind="stable"))


def test_resume_from_a_checkpoint_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    full = fit_small(checkpoint_every=4)
    fit_small(ckpt=str(tmp_path / "ck"), epochs=3, checkpoint_every=4)  # 15 steps, 5 per epoch
    assert json.loads((tmp_path / "ck" / "last" / "state.json").read_text())["step"] == 12  # mid-epoch
    resumed = fit_small(ckpt=str(tmp_path / "ck"), checkpoint_every=4)
    assert all(np.array_equal(full.arrays[k], resumed.arrays[k]) for k in full.arrays)


def test_kill_9_mid_training_then_resume_gives_the_same_model(tmp_path: Path) -> None:
    ckpt, method = tmp_path / "ck", "wshrca"
    code = ("import sys, time, numpy as np; from tests.test_wshrca import fit_small; "
            f"m = fit_small({method!r}, {str(ckpt)!r}, log=lambda s, t: time.sleep(0.05)); "
            "np.savez(sys.argv[1], **m.arrays)")
    step, resumed = kill_then_resume(code, ckpt, tmp_path, slow="time.sleep(0.05)", fast="None")
    assert 0 < step < 30
    full = fit_small(method).arrays
    assert set(full) == set(resumed) and all(np.array_equal(full[k], resumed[k]) for k in full)


def test_frozen_feature_schedule_is_wshrcas_own_and_the_reference_stays_selectable() -> None:
    """WSHRCA's defaults are the frozen-feature schedule (40 epochs, 5-epoch warm-up, lr 3e-2 / 6e-3) and the
    fixed tag vectors as attention values; WDHT, which shares the schedule options, keeps its reference's;
    the reference values are accepted as options."""
    o = create_method("wshrca", bits=8).opts
    assert (o.epochs, o.warmup_epochs, o.lr_head, o.lr_tag, o.values) == (40, 5, 3e-2, 6e-3, "tags")
    d = create_method("wdht", bits=8).opts
    assert (d.epochs, d.warmup_epochs, d.lr_head) == (50, 0, 1e-3)
    ref = create_method("wshrca", bits=8, epochs=80, warmup_epochs=20, lr_head=1e-3, lr_tag=2e-4,
                        values="projected").opts
    assert (ref.epochs, ref.warmup_epochs, ref.lr_head, ref.lr_tag, ref.values) == (80, 20, 1e-3, 2e-4, "projected")


def test_ablations_and_options() -> None:
    no_attention = fit_small(attention=False, epochs=2)
    assert not any(k.startswith("model.net.refine") for k in no_attention.arrays)
    selection = {k for k in fit_small(epochs=2).arrays if k.startswith("model.net.refine")}
    assert selection == {f"model.net.refine.{p}.{t}" for p in ("query", "key") for t in ("weight", "bias")}
    projected = fit_small(values="projected", epochs=2).arrays
    assert "model.net.refine.attn.in_proj_weight" in projected and "model.net.refine.ffn.3.weight" in projected
    no_reconstruction = fit_small(reconstruction=False, epochs=2, heads=2, input_norm="center")
    assert no_reconstruction.arrays["model.net.reconstruction.fc.weight"].shape == (30, 16)  # from x, not h
    assert no_reconstruction.meta["heads"] == 2 and np.abs(no_reconstruction.arrays["model.net.prep.mean"]).sum() > 0
    with pytest.raises(TagcodeError, match="4 attention heads do not divide the 30-d tag vectors"):
        fit_small(heads=4, epochs=1)
    with pytest.raises(TagcodeError, match="multiples of 8"):
        create_method("wshrca", bits=12)
    with pytest.raises(TagcodeError, match="at least 2 training images with tags"):
        create_method("wshrca", bits=8).fit(clustered_trainset(n=8, n_untagged=7))


def test_a_model_whose_options_build_another_network_is_a_one_line_error(tmp_path: Path) -> None:
    """A model saved with the reference's tag module, read with a config that lacks ``values`` (as one saved
    before the option existed): the tensors do not fit the default module, and the error names the first."""
    fit_small(values="projected", epochs=1).save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    del config["options"]["values"]
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(TagcodeError, match=r"do not fit the network its options build: net\.refine\.attn\.in_proj_bias "
                                           r"\(saved \(90,\), built none\);.* and 8 more; .*retrain it") as err:
        load_method(tmp_path / "m")
    assert "\n" not in str(err.value)


def test_end_to_end_mode_fine_tunes_the_backbone_on_images(tmp_path: Path) -> None:
    from tagcode.data.cache import ImageCache
    from tagcode.data.manifest import read_manifest

    ds = build_tiny_dataset(tmp_path / "ds", n_per_class=6)
    run_stage("prepare", {"source": "folder", "root": str(ds), "n_query": 4, "image_size": 16,
                          "out": str(tmp_path / "prep")})
    ids = read_manifest(tmp_path / "prep" / "manifest.parquet").ids_of("train")
    tags = clustered_trainset(n=len(ids))
    cache = ImageCache(tmp_path / "prep" / "images")
    train = TrainSet(ids=ids, images=cache, tags=tags.tags, tag_vectors=tags.tag_vectors)
    method = create_method("wshrca", bits=8, mode="end_to_end", backbone="tiny_cnn", input_size=16, epochs=4,
                           batch_size=4, warmup_epochs=0, lr_backbone=0.1, device="cpu").fit(train)
    assert method.input == "images"
    before = create_method("wshrca", bits=8, mode="end_to_end", backbone="tiny_cnn")._backbone(pretrained=True)
    trunk = {k[len("model.trunk.backbone."):]: v for k, v in method.arrays.items()
             if k.startswith("model.trunk.backbone.")}
    changed = [k for k, v in before.state_dict().items() if v.is_floating_point()
               and not np.array_equal(v.numpy(), trunk[k])]
    assert changed  # image epochs step the backbone with the image optimizer
    codes = method.encode(cache.get(slice(None)), cache.ids)
    assert codes.bits.shape == (len(cache), 1)


def test_train_stage_on_the_tiny_pipeline_never_reads_labels(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.test_stages import _no_label_column

    ds = build_tiny_dataset(tmp_path / "ds", n_per_class=12)
    prep, tags, embed, feats = (str(tmp_path / d) for d in ("prep", "tags", "embed", "feats"))
    run_stage("prepare", {"source": "folder", "root": str(ds), "n_query": 8, "image_size": 16, "out": prep})
    run_stage("clean_tags", {"prepared": prep, "min_freq": 2, "out": tags})
    run_stage("embed_tags", {"tags": tags, "eps": 0.05, "out": embed})
    run_stage("features", {"prepared": prep, "backbone": "tiny_cnn", "progress": False, "out": feats})

    def forbidden(*_a: Any, **_k: Any) -> None:
        raise AssertionError("training read the ground-truth labels")

    monkeypatch.setattr("tagcode.data.manifest.read_labels", forbidden)
    monkeypatch.setattr("pyarrow.parquet.ParquetFile.read", _no_label_column(monkeypatch))
    summary = json.loads(run_stage("train", {"method": "wshrca", "bits": 16, "prepared": prep, "features": feats,
                                             "embed": embed, "options": {"epochs": 8, "batch_size": 8},
                                             "out": str(tmp_path / "m")}))
    run_stage("encode", {"model": str(tmp_path / "m"), "prepared": prep, "features": feats,
                         "out": str(tmp_path / "codes")})
    monkeypatch.undo()
    assert summary["method"] == "wshrca" and not (tmp_path / "m.ckpt").exists()
    metrics = json.loads(run_stage("evaluate", {"codes": str(tmp_path / "codes"), "prepared": prep,
                                                "out": str(tmp_path / "metrics")}))
    assert metrics["kind"] == "binary" and 0 < metrics["protocols"]["wshrca"]["map"] <= 1
