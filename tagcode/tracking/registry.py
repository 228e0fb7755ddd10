"""The model registry: one registered model per dataset × method × bits, and a gated ``champion`` alias.

Names: ``tagcode-<dataset>-<method>-<bits>`` (e.g. ``tagcode-openclipart-itq-32``). A promotion registers the
cell's logged model (once per run) and moves ``champion`` to it only when its primary metric beats the
current champion's by more than ``margin`` on the same query/database set (the runs' id fingerprints
match). The decision and both figures are tags on the candidate version; a failed gate touches nothing else.

Racing promotions are serialised by a mutex that every backend provides atomically: creating a registered
model whose name is taken fails (a unique key in the SQL store, the same through the REST server), so the
lock is the registered model ``<name>.lock``, created to acquire and deleted to release; a holder that died
is broken after ``LOCK_TTL_S``. Under the lock the champion is re-read, so the second of two racing
promotions compares against the first one's result and the better candidate ends as champion.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tagcode.errors import TagcodeError
from tagcode.tracking.run import TRAIN_PREFIX, RunRef

ALIAS = "champion"
PREFIX = "tagcode-"
LOCK_SUFFIX = ".lock"
LOCK_TTL_S = 120.0
LOCK_WAIT_S = 300.0


def model_name(dataset: str, method: str, bits: int) -> str:
    """The registered model of a cell: ``tagcode-<dataset>-<method>-<bits>`` (characters outside
    ``[A-Za-z0-9_.-]`` become ``_``)."""
    return PREFIX + re.sub(r"[^A-Za-z0-9_.-]", "_", f"{dataset}-{method}-{bits}")


@contextlib.contextmanager
def registry_lock(client: Any, name: str, ttl_s: float = LOCK_TTL_S, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """Hold the mutex of registered model ``name`` (see the module docstring) for the block."""
    from mlflow.exceptions import MlflowException

    lock, owner = name + LOCK_SUFFIX, f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    deadline = time.monotonic() + wait_s
    while True:
        try:
            client.create_registered_model(lock, tags={"owner": owner, "since": f"{time.time():.3f}"},
                                           description="tagcode promotion lock (deleted when the promotion ends)")
            break
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        with contextlib.suppress(MlflowException):  # the holder may release it meanwhile
            held = client.get_registered_model(lock)
            if time.time() - float(held.tags.get("since", "0")) > ttl_s:
                client.delete_registered_model(lock)  # its holder died: break it
                continue
        if time.monotonic() > deadline:
            raise TagcodeError(f"registered model {name}: promotion lock {lock!r} still held after {wait_s:.0f} s; "
                               "delete it if no promotion is running")
        time.sleep(0.1 + random.random() * 0.2)
    try:
        yield
    finally:
        with contextlib.suppress(MlflowException):
            if client.get_registered_model(lock).tags.get("owner") == owner:
                client.delete_registered_model(lock)


@dataclass(frozen=True)
class Decision:
    """What a promotion did: the version, whether it is now champion, why, and both figures."""

    name: str
    version: str
    promoted: bool
    reason: str
    metric: str
    candidate: float
    champion: float | None
    champion_version: str | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return dict(self.__dict__)


def _run_figures(client: Any, run_id: str, metric: str) -> tuple[float, str]:
    """A run's ``metric`` and evaluation fingerprint; one-line error when it was not evaluated."""
    run = client.get_run(run_id)
    if metric not in run.data.metrics:
        known = ", ".join(sorted(k for k in run.data.metrics if not k.startswith(TRAIN_PREFIX))) or "none"
        raise TagcodeError(f"run {run_id} has no metric {metric!r} (run evaluate first; logged: {known})")
    fingerprint = run.data.tags.get("tagcode.eval_fingerprint")
    if not fingerprint:
        raise TagcodeError(f"run {run_id} has no evaluation fingerprint (run evaluate with tracking on)")
    return float(run.data.metrics[metric]), fingerprint


def _version_of(client: Any, name: str, ref: RunRef) -> Any:
    """The version registered from this run's model, registering it on first promotion."""
    import mlflow

    for mv in client.search_model_versions(f"name = '{name}' and run_id = '{ref.run_id}'"):
        return mv
    return mlflow.register_model(ref.model_uri, name, await_registration_for=0)


def decide(candidate: float, fingerprint: str, champion: tuple[float, str] | None, margin: float) -> tuple[bool, str]:
    """The gate: promote when there is no champion, or when measured on the same ids the candidate beats the
    champion by more than ``margin``."""
    if champion is None:
        return True, "no champion yet"
    value, champion_fingerprint = champion
    if champion_fingerprint != fingerprint:
        return False, "champion was measured on another query/database set"
    if candidate > value + margin:
        return True, f"beats the champion by {candidate - value:.6g} > margin {margin:g}"
    return False, f"does not beat the champion by more than margin {margin:g} ({candidate - value:+.6g})"


def promote(client: Any, ref: RunRef, metric: str, margin: float) -> Decision:
    """Register ``ref``'s model and move ``champion`` to it when it passes the gate (under the lock)."""
    from mlflow.exceptions import MlflowException

    name = model_name(ref.dataset, ref.method, ref.bits)
    value, fingerprint = _run_figures(client, ref.run_id, metric)
    try:
        client.create_registered_model(name, tags={"tagcode.dataset": ref.dataset, "tagcode.method": ref.method,
                                                   "tagcode.bits": str(ref.bits), "tagcode.metric": metric})
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    with registry_lock(client, name):
        version = str(_version_of(client, name, ref).version)
        try:
            current = client.get_model_version_by_alias(name, ALIAS)
        except MlflowException:
            current = None
        current_version = str(current.version) if current is not None else None
        if current_version == version:
            return Decision(name, version, True, "already champion", metric, value, value, version)
        champion = _run_figures(client, current.run_id, metric) if current is not None else None
        promoted, reason = decide(value, fingerprint, champion, margin)
        tags = {"tagcode.decision": "promoted" if promoted else "rejected", "tagcode.reason": reason,
                "tagcode.metric": metric, "tagcode.margin": repr(margin), "tagcode.candidate_value": repr(value),
                "tagcode.champion_value": repr(champion[0]) if champion else "none",
                "tagcode.champion_version": current_version or "none",
                "tagcode.eval_fingerprint": fingerprint}
        for key, val in tags.items():
            client.set_model_version_tag(name, version, key, val)
        if promoted:
            client.set_registered_model_alias(name, ALIAS, version)
    return Decision(name, version, promoted, reason, metric, value, champion[0] if champion else None,
                    current_version)


def champions(client: Any) -> list[dict[str, Any]]:
    """Every tagcode registered model's champion: name, version, run, primary metric and its value."""
    from mlflow.exceptions import MlflowException

    rows = []
    for rm in client.search_registered_models(f"name LIKE '{PREFIX}%'", max_results=1000):
        if rm.name.endswith(LOCK_SUFFIX) or ALIAS not in rm.aliases:
            continue
        try:
            mv = client.get_model_version_by_alias(rm.name, ALIAS)
        except MlflowException:
            continue
        metric = mv.tags.get("tagcode.metric", "")
        run = client.get_run(mv.run_id)
        evaluation = {k: v for k, v in run.data.metrics.items() if not k.startswith(TRAIN_PREFIX)}
        rows.append({"name": rm.name, "version": str(mv.version), "run_id": mv.run_id, "metric": metric,
                     "value": evaluation.get(metric), "metrics": evaluation})
    return sorted(rows, key=lambda r: r["name"])
