"""The kill -9 harness of the resume tests: train in a child process, SIGKILL it mid-training, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def checkpoint_step(ckpt: Path) -> int:
    """The step of the last checkpoint in ``ckpt`` (0 while there is none, or while it is being written)."""
    try:
        return int(json.loads((ckpt / "last" / "state.json").read_text())["step"])
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


def kill_then_resume(code: str, ckpt: Path, tmp_path: Path, *, slow: str, fast: str, min_step: int = 1,
                     grace: float = 0.2, timeout: float = 600.0) -> tuple[int, dict[str, np.ndarray]]:
    """Run ``python -c code OUT`` (training slowed by the text ``slow`` in ``code``, checkpointing into
    ``ckpt``, saving its arrays to OUT with np.savez) until a checkpoint reaches ``min_step``, wait ``grace``
    seconds, SIGKILL it and check it died unfinished; then run it again with ``slow`` replaced by ``fast`` to
    the end. Returns the step of the checkpoint it was killed after and the resumed run's arrays."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    never = tmp_path / "never.npz"
    proc = subprocess.Popen([sys.executable, "-c", code, str(never)], cwd=REPO, env=env)
    deadline = time.monotonic() + timeout  # generous: the machine may be shared
    while checkpoint_step(ckpt) < min_step and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(grace)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and not never.exists()
    step = checkpoint_step(ckpt)
    out = tmp_path / "resumed.npz"
    subprocess.run([sys.executable, "-c", code.replace(slow, fast), str(out)], cwd=REPO, env=env, check=True)
    with np.load(out) as z:
        return step, {k: z[k] for k in z.files}
