"""docs/reproduce.md stays runnable: every params file it gives passes `tagcode check-params`, every grid cell
builds its method with the resolved variant options at its code length, and the evaluate protocols, the
promote metric and the dataset presets exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tagcode.data.presets import PRESETS
from tagcode.methods import create_method
from tagcode.stages import load_params
from tagcode.stages.evaluate import FAMILIES
from tagcode.stages.train import Config as TrainConfig
from tagcode.stages.train import resolve_variant

DOC = Path(__file__).resolve().parents[1] / "docs" / "reproduce.md"
BLOCKS = re.findall(r"^### [^\n]*\(`(params-[\w-]+\.yaml)`\)\n.*?```yaml\n(.*?)```", DOC.read_text(), re.M | re.S)


def test_the_guide_has_the_four_protocols() -> None:
    assert [name for name, _ in BLOCKS] == ["params-wsdhq-mirflickr.yaml", "params-wsdhq-nuswide.yaml",
                                            "params-wshrca-mirflickr.yaml", "params-wshrca-nuswide.yaml"]


@pytest.mark.parametrize(("name", "text"), BLOCKS, ids=[n for n, _ in BLOCKS])
def test_params_file_is_valid_and_every_cell_builds(name: str, text: str, tmp_path: Path) -> None:
    (tmp_path / name).write_text(text)
    params = load_params(tmp_path / name)  # check-params: sections, keys, types, grid
    assert params["dataset"] in PRESETS
    train = TrainConfig.model_validate(params["train"])
    for family in params["grid"].values():
        for method in family["method"]:
            for bits in family["bits"]:
                variant = resolve_variant(train.model_copy(update={"method": method, "bits": bits}))
                create_method(variant.method, bits=bits, **variant.options)  # options and bits accepted
    assert set(params["evaluate"]["protocols"]) <= set(FAMILIES)
    assert params["promote"]["metric"].split("_map_at_")[0] in params["evaluate"]["protocols"]
