"""Dataset presets: one key selects a dataset's settings for every stage; the subset presets scale to the
data; the paper-size protocol on too little data names the preset that fits; progress and size warnings."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
import yaml

from tagcode.backbones import BACKBONES
from tagcode.config import build_config, check_params_file, read_params
from tagcode.data.presets import PRESETS, SECTIONS
from tagcode.errors import TagcodeError
from tagcode.progress import progress_enabled
from tagcode.stages import STAGES, run_stage
from tagcode.stages.prepare import Config as PrepareConfig
from tagcode.stages.prepare import run as prepare
from tests.tiny_dataset import build_tiny_dataset

REPO = Path(__file__).resolve().parents[1]


def _config(section: str):
    return importlib.import_module(f"tagcode.stages.{section}").Config


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_validates_for_every_stage_it_sets(name: str) -> None:
    assert set(PRESETS[name]) <= set(SECTIONS)
    for section in SECTIONS:
        cfg = build_config(_config(section), section, dataset=name)
        for key, value in PRESETS[name].get(section, {}).items():
            assert getattr(cfg, key) == value


def test_the_repository_params_select_the_demo_settings_through_the_preset() -> None:
    data = read_params(REPO / "params.yaml", raw=True)
    assert data["dataset"] == "openclipart" and set(data["prepare"]) == {"out"}
    prep = build_config(PrepareConfig, "prepare", REPO / "params.yaml")
    assert (prep.source, prep.root, prep.options, prep.protocol, prep.image_size) == (
        "openclipart", "/usr/share/openclipart", {"subset": "content"}, "random", 146)
    assert build_config(_config("features"), "features", REPO / "params.yaml").input_size == 128
    resolved = read_params(REPO / "params.yaml")  # what the Kubeflow pipeline reads: the preset applied
    assert resolved["prepare"]["source"] == "openclipart" and resolved["features"]["input_size"] == 128


def test_flag_overrides_the_file_preset_and_sections_override_the_preset(tmp_path: Path) -> None:
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump({"dataset": "openclipart", "prepare": {"root": "/data/mir", "out": "o"}}))
    cfg = build_config(PrepareConfig, "prepare", p, {}, dataset="mirflickr_subset")
    assert (cfg.source, cfg.root, cfg.protocol, cfg.image_size, cfg.options) == (
        "mirflickr", "/data/mir", "wshrca_scaled", 256, {})
    clean = build_config(_config("clean_tags"), "clean_tags", p, {}, dataset="mirflickr_subset")
    assert (clean.vocabulary, clean.stop_list) == ("source", "mirflickr")
    p.write_text(yaml.safe_dump({"dataset": "mirflikr"}))
    sections = {s: _config(s) for s in STAGES}
    with pytest.raises(TagcodeError, match=r"dataset: unknown dataset preset 'mirflikr' \(did you mean 'mirflickr'"):
        check_params_file(p, sections)


def test_mirflickr_subset_runs_and_the_paper_preset_names_it(tmp_path: Path, mirflickr_mini: Path) -> None:
    paper = build_config(PrepareConfig, "prepare", None, {"root": str(mirflickr_mini), "out": str(tmp_path / "p")},
                         dataset="mirflickr")
    with pytest.raises(TagcodeError, match=r"needs 18000 images but only \d+ are available; for a subset use "
                                           r"protocol 'wshrca_scaled' \(dataset preset 'mirflickr_subset'\)"):
        prepare(paper)
    cfg = build_config(PrepareConfig, "prepare", None, {"root": str(mirflickr_mini), "image_size": 32,
                                                        "out": str(tmp_path / "p")}, dataset="mirflickr_subset")
    report = prepare(cfg)
    pool = report["split_report"]["pool"]
    assert report["split"]["query"] == pool * 2000 // 18000 and report["train"] == pool * 16000 // 18000


def test_features_warn_when_the_input_exceeds_the_cached_images(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    ds = build_tiny_dataset(tmp_path / "ds", n_per_class=2)
    run_stage("prepare", {"source": "folder", "root": str(ds), "n_query": 2, "image_size": 16,
                          "out": str(tmp_path / "prep")})
    capsys.readouterr()
    run_stage("features", {"prepared": str(tmp_path / "prep"), "backbone": "tiny_cnn", "input_size": 32,
                           "out": str(tmp_path / "f")})
    err = capsys.readouterr().err
    assert "tagcode: warning: features: tiny_cnn at input size 32" in err and "holds 16 px thumbnails" in err
    run_stage("features", {"prepared": str(tmp_path / "prep"), "backbone": "tiny_cnn", "input_size": 16,
                           "out": str(tmp_path / "g")})
    assert "warning" not in capsys.readouterr().err
    assert json.loads((tmp_path / "g" / "meta.json").read_text())["preprocess"]["size"] == 16


def test_progress_is_on_for_a_terminal_and_off_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    monkeypatch.delenv("CI", raising=False)
    assert progress_enabled(None) is True and progress_enabled(False) is False
    monkeypatch.setenv("CI", "true")
    assert progress_enabled(None) is False and progress_enabled(True) is True
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    monkeypatch.delenv("CI", raising=False)
    assert progress_enabled(None) is False


@pytest.mark.parametrize("backbone", BACKBONES.names())
def test_every_backbone_takes_the_shipped_params_or_says_why_in_one_line(tmp_path: Path, backbone: str) -> None:
    """`tagcode features --params params.yaml --backbone NAME` for every registered backbone: it either
    builds or stops with one line (the AlexNets: fixed input size, then no installable weights)."""
    from tagcode.backbones import create_backbone

    cfg = build_config(_config("features"), "features", REPO / "params.yaml", {"backbone": backbone})
    kwargs = {"size": cfg.input_size} if cfg.input_size else {}
    try:
        create_backbone(cfg.backbone, weights=cfg.weights, **kwargs)
    except TagcodeError as exc:
        assert "\n" not in str(exc) and backbone.startswith("alexnet")
        assert "input size is fixed" in str(exc) and "--input-size none" in str(exc)
        with pytest.raises(TagcodeError, match="no installable weights"):
            create_backbone(cfg.backbone, weights=cfg.weights)  # with input_size none: the next one-line error


def test_training_hook_counts_steps_and_shows_the_loss_terms(capsys: pytest.CaptureFixture[str]) -> None:
    from tagcode.progress import step_progress

    with step_progress("train wsdhq 32 bits", enabled=True) as log:
        for step in (1, 2, 5):
            log(step, {"margin": 0.25 * step, "quantization": 0.1})
    err = capsys.readouterr().err
    assert "train wsdhq 32 bits" in err and "5step" in err.replace(" ", "") and "margin=1.25" in err
    with step_progress("quiet", enabled=False) as log:
        log(1, {"margin": 1.0})
    with step_progress("no steps", enabled=True):
        pass
    assert capsys.readouterr().err == ""
