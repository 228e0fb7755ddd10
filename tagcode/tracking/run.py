"""One MLflow run per dataset × method × bits cell, logged live or after the fact.

Live (train and evaluate with tracking on, the cluster's way): train opens the run and writes its reference
(``tracking.json``: URI, experiment, run id, logged-model URI, cell) into the model directory; encode copies
it to the codes directory, so evaluate logs its metrics on the run that trained the model and promote
registers that run's model.

After the fact (:func:`log_offline`, the demo's way): a model trained and evaluated with tracking off keeps
its record on disk (the model, ``losses.json`` beside it, evaluate's ``metrics.json`` and plot), and one
promote process logs it as the same finished run; MLflow is imported once for the whole grid instead of in
every train and evaluate process (tracking then adds seconds to the demo, not minutes).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tagcode.errors import TagcodeError
from tagcode.io import write_json
from tagcode.tracking.backend import connect, mlflow_errors, probe, project_root, tracking_uri

RUN_FILE = "tracking.json"
LOSSES_FILE = "losses.json"
CURVE_POINTS = 500  # at most this many steps of each loss curve are logged after the fact
MODEL_DIGEST_TAG = "tagcode.model_md5"
LogFn = Callable[[int, dict[str, float]], None]
TRAIN_PREFIX = "train/"  # per-step loss terms are logged as train/<term>


@dataclass(frozen=True)
class RunRef:
    """Where a cell's run lives; travels with the model (``tracking.json``) to encode, evaluate and promote."""

    tracking_uri: str
    experiment_id: str
    run_id: str
    model_uri: str
    dataset: str
    method: str
    bits: int


def write_run_ref(directory: str | Path, ref: RunRef) -> None:
    """Write ``tracking.json`` into ``directory`` (atomically)."""
    write_json(Path(directory) / RUN_FILE, asdict(ref))


def read_run_ref(directory: str | Path) -> RunRef | None:
    """The run reference in ``directory``, or None when the model was trained with tracking off."""
    path = Path(directory) / RUN_FILE
    if not path.is_file():
        return None
    try:
        return RunRef(**json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError) as exc:
        raise TagcodeError(f"{path}: unreadable run reference ({exc})") from None


def copy_run_ref(src: str | Path, dst: str | Path) -> None:
    """Carry ``tracking.json`` from one stage's directory to the next one's (nothing when absent)."""
    if (Path(src) / RUN_FILE).is_file():
        shutil.copyfile(Path(src) / RUN_FILE, Path(dst) / RUN_FILE)


def dataset_name(prepared: str | Path) -> str:
    """The dataset a prepared directory holds (the prepare report's ``source``; the folder name otherwise)."""
    report = Path(prepared) / "report.json"
    if report.is_file():
        return str(json.loads(report.read_text(encoding="utf-8")).get("source") or Path(prepared).name)
    return Path(prepared).resolve().name


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested options as flat ``a.b`` keys with JSON-ish string values (MLflow params are strings)."""
    out: dict[str, str] = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return out


def git_info(root: Path) -> dict[str, str]:
    """The commit checked out in ``root`` (MLflow's standard tag) and whether tracked files differ from it."""
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"tagcode.git": "unavailable"}
    return {"mlflow.source.git.commit": commit, "tagcode.git_dirty": str(bool(dirty)).lower()}


def _md5_file(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _lock_outs(root: Path) -> dict[str, str]:
    """Every stage output's md5 as recorded in ``dvc.lock`` (path relative to the project → md5)."""
    import yaml

    lock = root / "dvc.lock"
    if not lock.is_file():
        return {}
    data = yaml.safe_load(lock.read_text(encoding="utf-8")) or {}
    return {o["path"]: o["md5"] for stage in (data.get("stages") or {}).values()
            for o in stage.get("outs", []) if "md5" in o}


def input_hashes(inputs: dict[str, str | Path]) -> dict[str, str]:
    """Tags identifying each input: ``dvc.<name>`` = the md5 DVC recorded in ``dvc.lock`` for that output when
    the lock lists it (DVC's ``.dir`` hash for directories), else ``md5.<name>`` computed here (a file's md5,
    or for a directory the md5 of its sorted ``relpath md5`` lines)."""
    root = project_root()
    outs = _lock_outs(root)
    tags: dict[str, str] = {}
    for name, path in inputs.items():
        p = Path(path).resolve()
        with contextlib.suppress(ValueError):
            rel = p.relative_to(root).as_posix()
            if rel in outs:
                tags[f"dvc.{name}"] = outs[rel]
                continue
        if p.is_file():
            tags[f"md5.{name}"] = _md5_file(p)
        elif p.is_dir():
            lines = [f"{f.relative_to(p).as_posix()} {_md5_file(f)}" for f in sorted(p.rglob("*")) if f.is_file()]
            tags[f"md5.{name}"] = hashlib.md5("\n".join(lines).encode()).hexdigest() + ".dir"
    return tags


def machine_info() -> dict[str, str]:
    """The device the method used (CUDA when torch is loaded and sees one), and library versions."""
    device = "cpu"
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        device = f"cuda ({torch.cuda.get_device_name(0)})"
    info = {"machine.device": device, "machine.python": platform.python_version(),
            "machine.platform": platform.platform(terse=True)}
    for dist in ("torch", "faiss-cpu", "numpy", "mlflow"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            info[f"machine.{dist.split('-')[0]}"] = importlib.metadata.version(dist)
    return info


class StepLogger:
    """The training ``log(step, terms)`` callback: buffers named loss terms as ``train/<term>`` metrics and
    sends them in batches (MLflow takes at most 1000 per request), every ``flush_s`` seconds and at the end."""

    def __init__(self, client: Any, run_id: str, flush_s: float = 5.0, max_batch: int = 1000) -> None:
        self.client, self.run_id, self.flush_s, self.max_batch = client, run_id, flush_s, max_batch
        self.uri = client.tracking_uri
        self.buffer: list[Any] = []
        self.last = time.monotonic()
        self.steps = 0

    def __call__(self, step: int, terms: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.buffer.extend(Metric(f"{TRAIN_PREFIX}{k}", float(v), now, int(step)) for k, v in terms.items())
        self.steps += 1
        if len(self.buffer) >= self.max_batch or time.monotonic() - self.last >= self.flush_s:
            self.flush()

    def flush(self) -> None:
        """Send what is buffered."""
        while self.buffer:
            batch, self.buffer = self.buffer[: self.max_batch], self.buffer[self.max_batch :]
            with mlflow_errors(self.uri):
                self.client.log_batch(self.run_id, metrics=batch)
        self.last = time.monotonic()


def tee(*fns: LogFn | None) -> LogFn:
    """One ``log(step, terms)`` callback that calls each of ``fns`` (None entries skipped)."""
    targets = [f for f in fns if f is not None]

    def log(step: int, terms: dict[str, float]) -> None:
        for f in targets:
            f(step, terms)

    return log


class LossHistory:
    """The training ``log(step, terms)`` callback that keeps every step's loss terms, for ``losses.json``
    beside the model (so a model trained with tracking off can be logged later with its curves)."""

    def __init__(self) -> None:
        self.steps: list[tuple[int, dict[str, float]]] = []

    def __call__(self, step: int, terms: dict[str, float]) -> None:
        self.steps.append((int(step), {k: float(v) for k, v in terms.items()}))

    def write(self, directory: str | Path) -> None:
        """Write ``losses.json`` into ``directory`` when any step was logged (torch-trained methods)."""
        if self.steps:
            write_json(Path(directory) / LOSSES_FILE, {"steps": [[s, t] for s, t in self.steps]})


def read_losses(directory: str | Path) -> list[tuple[int, dict[str, float]]]:
    """The per-step loss terms saved by :class:`LossHistory` in ``directory`` (empty when there are none;
    after a resumed training, the steps since the last start)."""
    path = Path(directory) / LOSSES_FILE
    if not path.is_file():
        return []
    try:
        return [(int(s), {k: float(v) for k, v in t.items()}) for s, t in
                json.loads(path.read_text(encoding="utf-8"))["steps"]]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise TagcodeError(f"{path}: unreadable loss history ({exc})") from None


def input_example(train: Any, n: int = 2) -> np.ndarray:
    """The first ``n`` training inputs the model's ``predict`` takes: feature rows, or images for end-to-end
    methods (logged as the model's input example)."""
    if train.features is not None:
        return np.asarray(train.features[:n], dtype=np.float32)
    return np.asarray(train.images_of(np.arange(min(n, len(train)))))


class TrainRun:
    """The run a train stage opens: params and provenance at start, loss terms while fitting, the model at
    the end (:meth:`log_model`), which also writes the run reference into the model directory."""

    def __init__(self, client: Any, uri: str, experiment_id: str, run_id: str, cell: dict[str, Any]) -> None:
        self.client, self.uri, self.experiment_id, self.run_id, self.cell = client, uri, experiment_id, run_id, cell
        self.log = StepLogger(client, run_id)

    def log_model(self, model_dir: str | Path, example: np.ndarray) -> RunRef:
        """Log the saved method directory as the run's pyfunc model; returns the run's reference."""
        from tagcode.tracking.pyfunc import log_codes_model

        self.log.flush()
        with mlflow_errors(self.uri):
            model_uri = log_codes_model(self.run_id, model_dir, example)
        return RunRef(tracking_uri=self.uri, experiment_id=self.experiment_id, run_id=self.run_id,
                      model_uri=model_uri, **self.cell)


@contextlib.contextmanager
def train_run(experiment: str, cell: dict[str, Any], params: dict[str, Any],
              inputs: dict[str, str | Path]) -> Iterator[TrainRun]:
    """Probe the tracking store, open the cell's run with its params and provenance, yield it, and close it
    FINISHED (or FAILED when the block raises)."""
    from mlflow.entities import Param

    uri = tracking_uri()
    probe(uri)
    client, experiment_id = connect(uri, experiment)
    tags = {"tagcode.dataset": cell["dataset"], "tagcode.method": cell["method"], "tagcode.bits": str(cell["bits"]),
            **git_info(project_root()), **input_hashes(inputs), **machine_info()}
    name = f"{cell['dataset']}-{cell['method']}-{cell['bits']}"
    with mlflow_errors(uri):
        run_id = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
        client.log_batch(run_id, params=[Param(k, v) for k, v in flatten(params).items()])
    tracked = TrainRun(client, uri, experiment_id, run_id, cell)
    try:
        yield tracked
    except BaseException:
        with contextlib.suppress(Exception):  # report the training error, not a second one from the store
            tracked.log.flush()
            client.set_terminated(run_id, "FAILED")
        raise
    tracked.log.flush()
    with mlflow_errors(uri):
        client.set_terminated(run_id, "FINISHED")


def eval_fingerprint(metrics: dict[str, Any]) -> str:
    """sha256 of what evaluate says the metrics were measured on (dataset, query and database id digests:
    ``metrics.json``'s ``fingerprint``): two figures are comparable only when these match."""
    canonical = json.dumps(metrics["fingerprint"], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def evaluation_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Every protocol's figures as MLflow-safe metric names: ``<family>_map_at_<k>`` and ``<family>_p_at_<n>``,
    plus the counts of evaluated and empty queries."""
    from tagcode.evaluation.protocols import metric_key

    out = {k: float(v) for k, v in metrics["scalars"].items()}
    for family, res in metrics["protocols"].items():
        for n, p in (res.get("precision_at") or {}).items():
            out[metric_key(f"{family}_p@{n}")] = float(p)
        out[f"{family}_n_averaged"] = float(res["n_averaged"])
        out[f"{family}_n_empty"] = float(res["n_empty"])
    return out


def log_evaluation(ref: RunRef, metrics: dict[str, Any], fingerprint: str, config: dict[str, Any],
                   artifacts: Sequence[str | Path]) -> None:
    """Log an evaluation on the cell's run: every protocol's metrics, the query/database fingerprint and the
    evaluate config (as tags, so a re-evaluation with other settings can overwrite them), and the plots."""
    from mlflow.entities import Metric, RunTag

    probe(ref.tracking_uri)
    client, _ = connect(ref.tracking_uri)
    now = int(time.time() * 1000)
    tags = {"tagcode.eval_fingerprint": fingerprint, "tagcode.eval_queries": str(metrics["queries"]),
            "tagcode.eval_database": str(metrics["database"]),
            **{f"eval.{k}": v for k, v in flatten(config).items()}}
    with mlflow_errors(ref.tracking_uri):
        client.log_batch(ref.run_id, metrics=[Metric(k, v, now, 0) for k, v in evaluation_metrics(metrics).items()],
                         tags=[RunTag(k, v) for k, v in tags.items()])
        for path in artifacts:
            client.log_artifact(ref.run_id, str(path), artifact_path="evaluation")


def model_digest(model_dir: str | Path) -> str:
    """md5 over a saved model's files (not the run reference): identifies the model a run logged."""
    d = Path(model_dir)
    lines = [f"{f.relative_to(d).as_posix()} {_md5_file(f)}" for f in sorted(d.rglob("*"))
             if f.is_file() and f.name != RUN_FILE]
    return hashlib.md5("\n".join(lines).encode()).hexdigest()


def log_offline(experiment: str, cell: dict[str, Any], params: dict[str, Any], inputs: dict[str, str | Path],
                model_dir: str | Path, example: np.ndarray, metrics_dir: str | Path) -> RunRef:
    """Log a cell trained and evaluated with tracking off as one finished run, the same as a live one: params
    and provenance, the loss curves of ``losses.json`` (at most ``CURVE_POINTS`` steps of each), the model,
    and evaluate's ``metrics.json`` and PR curve from ``metrics_dir``. A run already logged for the same model
    files is reused, so promoting again registers nothing twice."""
    from mlflow.entities import RunStatus

    metrics_path = Path(metrics_dir) / "metrics.json"
    if not metrics_path.is_file():
        raise TagcodeError(f"{metrics_path}: no metrics for model {model_dir} (run `tagcode evaluate` first)")
    metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    if "fingerprint" not in metrics:
        raise TagcodeError(f"{metrics_path}: written by an older tagcode (no fingerprint); evaluate again")
    uri = tracking_uri()
    probe(uri)  # before connect: MLflow's client retries a down server for minutes
    client, experiment_id = connect(uri, experiment)
    digest = model_digest(model_dir)
    with mlflow_errors(uri):
        done = client.search_runs([experiment_id], f"tags.`{MODEL_DIGEST_TAG}` = '{digest}' and "
                                  f"attributes.status = '{RunStatus.to_string(RunStatus.FINISHED)}'", max_results=1)
    if done and "tagcode.model_uri" in done[0].data.tags:
        run = done[0]
        return RunRef(tracking_uri=uri, experiment_id=experiment_id, run_id=run.info.run_id,
                      model_uri=run.data.tags["tagcode.model_uri"], **cell)
    with train_run(experiment, cell, params, inputs) as tracked:
        steps = read_losses(model_dir)
        for step, terms in steps[:: max(1, -(-len(steps) // CURVE_POINTS))]:
            tracked.log(step, terms)
        ref = tracked.log_model(model_dir, example)
    curve = Path(metrics_dir) / "pr_curve.png"
    log_evaluation(ref, metrics, eval_fingerprint(metrics), {"protocols": sorted(metrics["protocols"])},
                   [curve] if curve.is_file() else [])
    with mlflow_errors(uri):  # last: a run interrupted before this point is not reused
        client.set_tag(ref.run_id, "tagcode.model_uri", ref.model_uri)
        client.set_tag(ref.run_id, MODEL_DIGEST_TAG, digest)
    return ref


def log_report(experiment: str, artifacts: Sequence[str | Path]) -> str:
    """Log the cross-cell report (mAP-vs-bits plot, table) as a run named ``report``; returns its id."""
    uri = tracking_uri()
    probe(uri)
    client, experiment_id = connect(uri, experiment)
    with mlflow_errors(uri):
        run_id = client.create_run(experiment_id, run_name="report", tags={"tagcode.kind": "report",
                                                                           **git_info(project_root())}).info.run_id
        for path in artifacts:
            client.log_artifact(run_id, str(path))
        client.set_terminated(run_id, "FINISHED")
    return run_id
