"""dvc.yaml never goes stale: each stage declares every project module its command runs.

The dependencies are derived statically: the import graph (every ``import``, also inside functions) from
the stage module plus the CLI that dvc.yaml's ``tagcode <command>`` goes through, including the package
``__init__`` files each import executes. A stage may declare a module file or any folder above it; dvc.yaml
declares the whole package, because the CLI alone imports most of it (see dvc.yaml's header).
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _module_file(name: str) -> Path | None:
    """The source file of project module ``name`` (a package's ``__init__.py``), or None if not ours."""
    base = REPO / Path(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _with_parents(name: str) -> set[str]:
    """``a.b.c`` → {a, a.b, a.b.c}: importing a module runs every package ``__init__`` above it."""
    parts = name.split(".")
    return {".".join(parts[: i + 1]) for i in range(len(parts))}


@cache
def _imports(name: str) -> frozenset[str]:
    """Project modules that module ``name`` imports directly (relative imports resolved)."""
    path = _module_file(name)
    assert path is not None, name
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [base, *(f"{base}.{a.name}" for a in node.names)]
        else:
            continue
        for target in targets:
            if target.split(".")[0] == "tagcode" and _module_file(target) is not None:
                found |= {m for m in _with_parents(target) if _module_file(m) is not None}
    return frozenset(found)


def closure(root: str) -> set[str]:
    """Every project module reachable from ``root`` through imports."""
    seen, todo = set(), [*_with_parents(root)]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(_imports(name))
    return seen


def _stages() -> dict[str, dict]:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def _covered(path: Path, deps: list[str]) -> bool:
    rel = path.relative_to(REPO)
    return any(rel == Path(d) or Path(d) in rel.parents for d in deps)


def test_import_graph_sees_lazy_imports() -> None:
    """The graph must follow imports inside functions (the stages import heavy modules lazily)."""
    assert "tagcode.backbones.extract" in closure("tagcode.stages.features")
    assert "tagcode.methods" in closure("tagcode.stages.encode")
    assert "tagcode.io" in closure("tagcode.cli")


def test_a_narrower_declaration_is_caught() -> None:
    """What the check reports when a stage declares only its own module (today's dvc.yaml declares more)."""
    needed = closure("tagcode.stages.encode") | closure("tagcode.cli")
    lacking = {m for m in needed if not _covered(_module_file(m), ["tagcode/stages/encode.py"])}
    assert "tagcode.methods" in lacking and "tagcode.stages.encode" not in lacking


def test_every_stage_declares_the_modules_it_runs() -> None:
    missing = {}
    for name, stage in _stages().items():
        command = stage["cmd"].split()
        assert command[0] == "tagcode", f"{name}: expected a `tagcode <stage>` command"
        module = f"tagcode.stages.{command[1].replace('-', '_')}"  # a CLI command that is no stage: the CLI alone
        needed = (closure(module) if _module_file(module) else set()) | closure("tagcode.cli")
        deps = [str(d) for d in stage.get("deps", [])]
        lacking = sorted(str(_module_file(m).relative_to(REPO)) for m in needed
                         if not _covered(_module_file(m), deps))
        if lacking:
            missing[name] = lacking
    assert not missing, "dvc.yaml stages miss the project modules they run:\n" + "\n".join(
        f"  {stage}: {', '.join(files)}" for stage, files in missing.items())
