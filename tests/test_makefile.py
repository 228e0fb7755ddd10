"""`make clean` removes exactly the generated, git-ignored outputs and never a tracked file; `make setup`
says what it does."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
       "GIT_COMMITTER_EMAIL": "t@t"}


def _write(path: Path, text: str = "x") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_make_clean_removes_only_ignored_outputs(tmp_path: Path) -> None:
    work = tmp_path / "proj"
    for rel in ("Makefile", ".gitignore", ".dvc/.gitignore", "pyproject.toml", "requirements/constraints.txt"):
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / rel, work / rel)
    tracked = ["metrics/itq-32/metrics.json", "metrics/itq-32/pr_curve.png", "reports/table.md", "dvc.lock"]
    for rel in tracked:
        _write(work / rel)
    subprocess.run(["git", "init", "-q"], cwd=work, check=True, env=ENV)
    subprocess.run(["git", "add", "-A"], cwd=work, check=True, env=ENV)
    subprocess.run(["git", "commit", "-qm", "init"], cwd=work, check=True, env=ENV)
    generated = ["data/prepared/manifest.parquet", "data/features/.partial/chunk-000000.npy", "models/pq-8/config.json",
                 "codes/pq-8/index.faiss", ".dvc/site_cache/x"]
    for rel in generated:
        _write(work / rel)
    _write(work / "notes.txt")  # the user's own untracked file, not a generated output
    proc = subprocess.run(["make", "clean"], cwd=work, capture_output=True, text=True, env=ENV, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert all(not (work / rel).exists() for rel in generated), proc.stdout
    assert all((work / rel).is_file() for rel in [*tracked, "notes.txt"])
    status = subprocess.run(["git", "status", "--porcelain"], cwd=work, capture_output=True, text=True, env=ENV)
    assert status.stdout.strip() == "?? notes.txt"


def test_make_setup_announces_each_step() -> None:
    # --no-print-directory: under `make test` this is a sub-make, which would print Entering/Leaving lines
    proc = subprocess.run(["make", "--no-print-directory", "-n", "-B", ".venv/.installed-x",
                           "STAMP=.venv/.installed-x"], cwd=REPO, capture_output=True, text=True, timeout=60)
    lines = proc.stdout.splitlines()
    steps = [i for i, ln in enumerate(lines) if " -m venv " in ln or "pip install" in ln]
    assert len(steps) >= 4, proc.stdout
    assert all(lines[i - 1].startswith('echo "setup: ') for i in steps), proc.stdout  # each step announced
    assert lines[-1].startswith('echo "setup: done'), proc.stdout
