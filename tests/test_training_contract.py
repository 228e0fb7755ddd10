"""The training contract: TrainSet without labels, TorchMethod checkpoints with exact resume after kill -9,
validated method options, and the evaluator choosing the score from the protocol and the code views."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch import nn

from tagcode.errors import TagcodeError
from tagcode.methods import create_method
from tagcode.methods.torch_method import TorchMethod, TrainContext
from tagcode.methods.trainset import TrainSet
from tagcode.retrieval.codes import FloatCodes, QuantizedCodes, load_codes, save_codes, views
from tests.killing import kill_then_resume


class Toy(TorchMethod):
    """A dropout head trained to predict each image's mean tag vector: exercises every piece of the base."""

    name = "toy"
    kind = "float"

    class Options(TorchMethod.Options):
        steps: int = 40
        sleep: float = 0.0  # seconds per step, so a test can kill the process mid-training

    @classmethod
    def check_bits(cls, bits: int) -> None:
        return None

    def describe(self, train: TrainSet, in_dim: int) -> dict[str, Any]:
        return {"dim": int(train.tag_vectors.shape[1])}

    def build(self, meta: dict[str, Any]) -> nn.Module:
        return nn.Sequential(nn.Linear(meta["in_dim"], 16), nn.Dropout(0.3), nn.Linear(16, meta["dim"]))

    def train_loop(self, ctx: TrainContext) -> dict[str, np.ndarray]:
        train = ctx.train
        target = torch.from_numpy(np.asarray(train.tags @ train.tag_vectors, dtype=np.float32))
        opt = torch.optim.Adam(ctx.model.parameters(), lr=1e-2)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
        bank = np.zeros(len(train), dtype=np.float64)
        state = {"opt": opt, "sched": sched, "bank": bank}
        start = 0
        resumed = ctx.resume(state)
        if resumed is not None:
            start, values = resumed
            bank = values["bank"]
        for step in range(start, self.opts.steps):
            rows = ctx.rng.permutation(len(train))[:8]
            pred = ctx.model.net(ctx.inputs(rows))
            loss = ((pred - target[rows]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            bank[rows] += float(loss.detach())
            ctx.log(step, {"loss": loss})
            if ctx.due(step + 1):
                ctx.save(step + 1, {"opt": opt, "sched": sched, "bank": bank})
            time.sleep(self.opts.sleep)
        return {"bank": bank}

    def encode(self, x: np.ndarray, ids: np.ndarray) -> FloatCodes:
        return FloatCodes(ids=ids, x=self.embed(x, lambda net, inp: net(inp)))

    encode_query = encode


def toy_trainset(n: int = 60, seed: int = 0) -> TrainSet:
    """Random features and tags over 5 tags with 4-d vectors."""
    rng = np.random.default_rng(seed)
    tags = sp.csr_matrix((rng.random((n, 5)) < 0.4).astype(np.float32))
    return TrainSet(ids=[f"im{i}" for i in range(n)], features=rng.normal(size=(n, 12)).astype(np.float32),
                    tags=tags, tag_vectors=rng.normal(size=(5, 4)).astype(np.float32), tag_names=tuple("abcde"))


def fit_toy(ckpt: str | None, steps: int = 40, sleep: float = 0.0) -> dict[str, np.ndarray]:
    """Train the toy (entry point of the subprocess in the kill test); returns its arrays."""
    method = Toy(bits=32, seed=3, steps=steps, sleep=sleep, checkpoint_every=5)
    method.fit(toy_trainset(), checkpoint_dir=ckpt)
    return method.arrays


def test_trainset_has_no_labels_and_checks_shapes() -> None:
    ts = toy_trainset()
    assert not hasattr(ts, "labels") and "labels" not in TrainSet.__dataclass_fields__
    with pytest.raises(TagcodeError, match="tag matrix has 3 rows for 60"):
        TrainSet(ids=ts.ids, features=ts.features, tags=ts.tags[:3], tag_vectors=ts.tag_vectors)
    with pytest.raises(TagcodeError, match="needs training tags: give the train stage the embed_tags output"):
        TrainSet.from_features(ts.features).require("wsdhq", "tags")
    lists = ts.tag_lists()
    assert all(np.array_equal(lst, np.flatnonzero(ts.tags[i].toarray())) for i, lst in enumerate(lists))
    assert set(ts.tagged()) == {i for i, lst in enumerate(lists) if len(lst)}


def test_options_are_validated_in_one_line() -> None:
    with pytest.raises(TagcodeError, match=r"method 'itq' options: iterations: .*got \"many\""):
        create_method("itq", bits=16, iterations="many")
    with pytest.raises(TagcodeError, match="no option 'steps'"):
        create_method("itq", bits=16, steps=3)


def test_same_seed_same_model_and_log_terms(tmp_path: Path) -> None:
    seen: list[tuple[int, dict[str, float]]] = []
    method = Toy(bits=32, seed=3, steps=12)
    method.fit(toy_trainset(), log=lambda step, terms: seen.append((step, terms)))
    again = fit_toy(None, steps=12)
    assert [s for s, _ in seen] == list(range(12)) and all(isinstance(t["loss"], float) for _, t in seen)
    assert set(method.arrays) == set(again) and all(np.array_equal(method.arrays[k], again[k]) for k in again)
    method.save(tmp_path / "toy")
    assert json.loads((tmp_path / "toy" / "config.json").read_text())["meta"] == {"in_dim": 12, "dim": 4}


def test_resume_after_a_checkpoint_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    full = fit_toy(None)
    fit_toy(str(tmp_path / "ck"), steps=17)  # stops after step 17; the last checkpoint is after step 15
    assert json.loads((tmp_path / "ck" / "last" / "state.json").read_text())["step"] == 15
    resumed = fit_toy(str(tmp_path / "ck"))
    assert all(np.array_equal(full[k], resumed[k]) for k in full)


def test_kill_9_mid_training_then_resume_gives_the_same_model(tmp_path: Path) -> None:
    ckpt = tmp_path / "ck"
    code = ("import sys, numpy as np; from tests.test_training_contract import fit_toy; "
            f"a = fit_toy({str(ckpt)!r}, sleep=0.05); np.savez(sys.argv[1], **a)")
    step, resumed = kill_then_resume(code, ckpt, tmp_path, slow="sleep=0.05", fast="sleep=0.0", grace=0.3)
    assert 0 < step < 40
    full = fit_toy(None)
    assert all(np.array_equal(full[k], resumed[k]) for k in full)


def test_query_sets_carry_every_view_and_evaluate_scores_from_the_protocol(tmp_path: Path) -> None:
    from tagcode.stages.evaluate import choose_score

    rng = np.random.default_rng(0)
    books = rng.normal(size=(2, 256, 6)).astype(np.float32)
    codes = rng.integers(0, 256, (10, 2)).astype(np.uint8)
    x = rng.normal(size=(10, 6)).astype(np.float32)
    q = QuantizedCodes(ids=[str(i) for i in range(10)], codes=codes, codebooks=books, x=x)
    save_codes(q, tmp_path / "q")
    back = load_codes(tmp_path / "q")
    assert np.array_equal(back.x, x) and np.array_equal(back.codes, codes)
    qv, dbv = views(back), views(QuantizedCodes(ids=q.ids, codes=codes, codebooks=books))
    assert set(qv) == {"codes", "codebooks", "x"}
    assert choose_score("wsdhq", "aqd", qv, dbv) == "aqd"
    assert choose_score("wsdhq_sqd", "sqd", qv, dbv) == "sqd"
    assert choose_score("wsdhq_feats", "float", qv, dbv) is None  # the database has no float view
    assert choose_score("wsdhq_feats", "float", qv, {**dbv, "x": x}) == "float"
    assert choose_score("wshrca", "hamming", qv, dbv) == "aqd"  # a ranking family uses the codes' own search


def test_train_and_embed_variants(tmp_path: Path) -> None:
    """A train variant is a method with its own options and embed_tags variant, saved under its own name."""
    from tagcode.stages import run_stage
    from tagcode.stages.train import Config, resolve_variant
    from tagcode.tags.embedding import read_embedding
    from tests.tiny_dataset import build_tiny_dataset

    ds = build_tiny_dataset(tmp_path / "ds", n_per_class=20)
    prep, tags, emb, feats = (tmp_path / n for n in ("prep", "tags", "emb", "feats"))
    run_stage("prepare", {"source": "folder", "root": str(ds), "n_query": 4, "image_size": 16, "out": str(prep)})
    run_stage("clean_tags", {"prepared": str(prep), "min_freq": 2, "out": str(tags)})
    report = json.loads(run_stage("embed_tags", {"tags": str(tags), "variants": {
        "plain": {"graph": False, "merge": False, "normalize": False}}, "out": str(emb)}))
    main, plain = read_embedding(emb), read_embedding(emb, "plain")
    assert report["variants"]["plain"]["normalize"] is False and report["variants"]["plain"]["graph_edges"] == 0
    np.testing.assert_allclose(np.linalg.norm(main.vectors, axis=1), 1.0, rtol=1e-5)
    assert np.linalg.norm(plain.vectors, axis=1).mean() > 1.5  # GloVe 50-d raw norms are ~3-6
    with pytest.raises(TagcodeError, match=r"no embedding variant 'minilm'.*plain"):
        read_embedding(emb, "minilm")
    with pytest.raises(TagcodeError, match="embed_tags variant 'x': graph"):
        run_stage("embed_tags", {"tags": str(tags), "variants": {"x": {"graph": "maybe"}}, "out": str(tmp_path / "e")})
    run_stage("features", {"prepared": str(prep), "backbone": "tiny_cnn", "progress": False, "out": str(feats)})
    variants = {"itq_short": {"method": "itq", "options": {"iterations": 2}, "embedding": "plain"},
                "loop": {"method": "itq_short"}}
    cfg = Config(method="itq_short", bits=16, variants=variants, prepared=str(prep), features=str(feats),
                 embed=str(emb), tracking=False, out=str(tmp_path / "m"))
    assert resolve_variant(cfg).options == {"iterations": 2} and resolve_variant(cfg).embedding == "plain"
    run_stage("train", cfg.model_dump())
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert (saved["name"], saved["label"], saved["options"]["iterations"]) == ("itq", "itq_short", 2)
    run_stage("encode", {"model": str(tmp_path / "m"), "prepared": str(prep), "features": str(feats),
                         "out": str(tmp_path / "c")})
    assert json.loads((tmp_path / "c" / "meta.json").read_text())["method"] == "itq_short"
    with pytest.raises(TagcodeError, match="variant 'loop' names another variant"):
        run_stage("train", {**cfg.model_dump(), "method": "loop"})
