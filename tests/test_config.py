"""params.yaml validation and the generated CLI: unknown keys and wrong types are one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tagcode.cli import app
from tagcode.config import build_config, check_params_file
from tagcode.errors import TagcodeError
from tagcode.stages import STAGES
from tagcode.stages.clean_tags import Config as CleanConfig

REPO = Path(__file__).resolve().parents[1]


def _sections() -> dict:
    import importlib

    return {s: importlib.import_module(f"tagcode.stages.{s}").Config for s in STAGES}


def test_repository_params_file_is_valid() -> None:
    check_params_file(REPO / "params.yaml", _sections())


def test_precedence_defaults_file_overrides(tmp_path: Path) -> None:
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump({"clean_tags": {"min_freq": 3, "stop_list": ["explore"]}}))
    cfg = build_config(CleanConfig, "clean_tags", p, {"min_freq": "7"})
    assert cfg.min_freq == 7 and cfg.stop_list == ["explore"] and cfg.min_length == 2


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"clean_tags": {"min_frq": 3}}, "params.yaml: clean_tags: unknown key 'min_frq'"),
        ({"clean_tags": {"min_freq": "often"}}, "clean_tags: min_freq: Input should be a valid integer"),
        ({"clean_tag": {}}, "unknown section 'clean_tag'"),
        ({"clean_tags": [1, 2]}, "section 'clean_tags' must be a mapping"),
    ],
)
def test_bad_params_are_one_line_errors(tmp_path: Path, section: dict, message: str) -> None:
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(section))
    with pytest.raises(TagcodeError, match=message) as info:
        check_params_file(p, _sections())
    assert "\n" not in str(info.value)


def test_malformed_yaml(tmp_path: Path) -> None:
    p = tmp_path / "params.yaml"
    p.write_text("clean_tags: {min_freq: [\n")
    with pytest.raises(TagcodeError, match="not valid YAML"):
        check_params_file(p, _sections())


def test_every_stage_has_a_documented_command() -> None:
    runner = CliRunner()
    for stage in STAGES:
        result = runner.invoke(app, [stage.replace("_", "-"), "--help"])
        assert result.exit_code == 0, result.output
        assert "--params" in result.output and "--out" in result.output


def test_cli_reports_errors_in_one_line(tmp_path: Path) -> None:
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump({"clean_tags": {"min_freq": -1}}))
    proc = subprocess.run([sys.executable, "-m", "tagcode", "clean-tags", "--params", str(p)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("tagcode: error:") and "min_freq" in proc.stderr


def test_cell_outputs_default_to_the_cell_name(tmp_path: Path) -> None:
    """Without --out, each cell writes its own directory (a fixed default let two cells overwrite one)."""
    from tagcode.stages import encode, evaluate, promote, train

    (tmp_path / "models" / "lsq-24").mkdir(parents=True)
    (tmp_path / "models" / "lsq-24" / "config.json").write_text("{}")  # a saved model: one decision file

    assert build_config(train.Config, "train", overrides={"method": "wsdhq", "bits": 16}).out == "models/wsdhq-16"
    assert build_config(encode.Config, "encode", overrides={"model": "models/wdht-64/"}).out == "codes/wdht-64"
    assert build_config(evaluate.Config, "evaluate", overrides={"codes": "x/pq-8"}).out == "metrics/pq-8"
    one, grid = (build_config(promote.Config, "promote", overrides={"model": str(m)}).out
                 for m in (tmp_path / "models" / "lsq-24", tmp_path / "models"))
    assert (one, grid) == ("promotions/lsq-24.json", "promotions")  # a directory of models: a folder of files
    assert build_config(train.Config, "train", overrides={"out": "elsewhere"}).out == "elsewhere"
