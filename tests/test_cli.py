"""The command line through its real entry point: usage mistakes are one line and exit 2, never a traceback;
list and None values can be given as options; --help shows every default and every protocol."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tagcode.cli import _parse_value, app
from tagcode.config import build_config, check_params_file
from tagcode.data.splits import SPLIT_PROTOCOLS
from tagcode.errors import TagcodeError
from tagcode.stages import STAGES
from tagcode.stages.embed_tags import Config as EmbedConfig
from tagcode.stages.evaluate import Config as EvaluateConfig

REPO = Path(__file__).resolve().parents[1]


def _tagcode(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``python -m tagcode`` (the console script's ``main``) in a subprocess."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "tagcode", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=120)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        ((), "Missing command. Commands: prepare, clean-tags"),
        (("nosuch",), "No such command 'nosuch'"),
        (("prepare", "--nosuch", "1"), "No such option: --nosuch"),
        (("prepare", "--seed"), "'--seed' requires an argument"),
        (("check-params", "a.yaml", "b.yaml"), "unexpected extra argument"),
        (("evaluate", "--p-at", "x"), "command-line option --p-at"),
    ],
)
def test_usage_mistakes_are_one_line_exit_2(tmp_path: Path, argv: tuple[str, ...], needle: str) -> None:
    proc = _tagcode(*argv, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("tagcode: error:") and needle in proc.stderr


def test_missing_value_names_the_subcommand(tmp_path: Path) -> None:
    assert "see 'tagcode prepare --help'" in _tagcode("prepare", "--seed", cwd=tmp_path).stderr


def test_a_bad_command_line_value_is_not_blamed_on_params_yaml(tmp_path: Path) -> None:
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump({"evaluate": {"p_at": [5]}}))
    with pytest.raises(TagcodeError) as info:
        build_config(EvaluateConfig, "evaluate", p, {"p_at": ["x"]})
    assert str(info.value).startswith("evaluate: command-line option --p-at:")
    p.write_text(yaml.safe_dump({"evaluate": {"p_at": ["y"]}}))
    with pytest.raises(TagcodeError, match=r"params.yaml: evaluate: p_at"):
        build_config(EvaluateConfig, "evaluate", p, {"protocols": ["wsdhq"]})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("wsdhq,wshrca", ["wsdhq", "wshrca"]), ('["wsdhq"]', ["wsdhq"]), ("at100", ["at100"])],
)
def test_list_options_parse_from_the_command_line(raw: str, expected: list[str]) -> None:
    annotation = EvaluateConfig.model_fields["protocols"].annotation
    assert _parse_value(raw, annotation) == expected
    cfg = build_config(EvaluateConfig, "evaluate", None, {"protocols": _parse_value(raw, annotation),
                                                          "p_at": _parse_value("5,50", list[int])})
    assert cfg.protocols == expected and cfg.p_at == [5, 50]


def test_a_named_value_of_a_list_field_stays_a_name() -> None:
    from tagcode.stages.clean_tags import Config as CleanConfig

    annotation = CleanConfig.model_fields["stop_list"].annotation
    assert _parse_value("mirflickr", annotation) == "mirflickr"
    assert _parse_value("explore,nikon", annotation) == ["explore", "nikon"]


def test_none_override_sets_none(tmp_path: Path) -> None:
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump({"embed_tags": {"eps": 0.05}}))
    value = _parse_value("none", EmbedConfig.model_fields["eps"].annotation)
    assert value is None
    assert build_config(EmbedConfig, "embed_tags", p, {"eps": value}).eps is None
    assert build_config(EmbedConfig, "embed_tags", p, {}).eps == 0.05


def test_help_shows_every_default_and_every_protocol() -> None:
    runner = CliRunner()
    for stage in STAGES:
        config = importlib.import_module(f"tagcode.stages.{stage}").Config
        text = " ".join(runner.invoke(app, [stage.replace("_", "-"), "--help"], terminal_width=400).output.split())
        shown = text.count("[default:")
        assert shown >= len(config.model_fields), (stage, shown)
    text = " ".join(runner.invoke(app, ["prepare", "--help"], terminal_width=400).output.split())
    assert "[default: random]" in text and "[default: none]" in text
    for name in SPLIT_PROTOCOLS.names():
        assert name in text


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [("prepare", "n_query", -5), ("prepare", "n_train", 0), ("prepare", "n_database", -1), ("prepare", "seed", -1),
     ("evaluate", "p_at", [10, -5]), ("train", "seed", -3), ("embed_tags", "seed", -1)],
)
def test_check_params_rejects_negative_counts(tmp_path: Path, section: str, key: str, value: object) -> None:
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump({section: {key: value}}))
    sections = {s: importlib.import_module(f"tagcode.stages.{s}").Config for s in STAGES}
    with pytest.raises(TagcodeError, match=rf"{section}: {key}"):
        check_params_file(p, sections)


def test_an_internal_error_is_not_taken_for_a_usage_mistake() -> None:
    """A stage's own exception is no usage error (and checking it must not raise: typer's vendored click
    has no Abort class)."""
    from tagcode.cli import usage_error

    assert usage_error(StopIteration()) is None and usage_error(RuntimeError("x")) is None
