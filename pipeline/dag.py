"""The tagcode DAG, every stage of the design:

prepare → clean_tags → embed_tags ─────────────────────────────┐
prepare → features (ParallelFor over shards) → merge_features ─┴→ per (method, bits) cell:
train → encode (ParallelFor over database shards) → merge_codes → evaluate → promote; then report over all cells.

The cells come from params.yaml's ``grid`` (the same section dvc.yaml's matrices read): families with
``gpu: true`` (torch-trained) run in a second loop whose train task requests a GPU. Each cell's model is
promoted in the MLflow registry (stage ``promote``) once it is evaluated; train, evaluate and promote read
the tracking server's URI from the Kubernetes secret ``tagcode-mlflow`` (key ``MLFLOW_TRACKING_URI``).
Kubernetes settings and their defaults: :mod:`pipeline.settings`.
"""

from __future__ import annotations

import inspect
from typing import Any

from kfp import dsl, kubernetes

from components.clean_tags import clean_tags
from components.embed_tags import embed_tags
from components.encode import encode, merge_codes
from components.evaluate import evaluate
from components.features import features, merge_features
from components.prepare import prepare
from components.promote import promote
from components.report import report
from components.shards import shard_indices
from components.train import train
from pipeline.settings import (
    CACHE_MOUNT,
    GPU_DEFAULTS,
    MLFLOW_SECRET,
    NUM_SHARDS,
    RESOURCE_FIELDS,
    S3_SECRET,
    ClusterOptions,
    resource_parameters,
)
from tagcode.config import grid_cells, read_grid

STAGE_PARAMS = ("prepare", "clean_tags", "embed_tags", "features", "train", "encode", "evaluate", "promote",
                "report")
# Keys the DAG sets itself: paths between stages are KFP artifacts; the grid and the shards are the DAG's.
DAG_KEYS = {"out", "prepared", "tags", "embed", "features", "model", "codes", "metrics", "method", "bits",
            "shard", "num_shards"}


def _signature(cells: list[dict[str, Any]], gpu_cells: list[dict[str, Any]]) -> inspect.Signature:
    """The pipeline's parameters: the params.yaml sections, the grid cells, shards, GPU and resources."""
    P = inspect.Parameter
    params = [P(f"{s}_params", P.POSITIONAL_OR_KEYWORD, annotation=dict) for s in STAGE_PARAMS]
    params += [P("cells", P.POSITIONAL_OR_KEYWORD, annotation=list, default=cells),
               P("gpu_cells", P.POSITIONAL_OR_KEYWORD, annotation=list, default=gpu_cells),
               P("num_shards", P.POSITIONAL_OR_KEYWORD, annotation=int, default=NUM_SHARDS)]
    for name, value in GPU_DEFAULTS.items():
        params.append(P(name, P.POSITIONAL_OR_KEYWORD, annotation=type(value), default=value))
    params += [P(name, P.POSITIONAL_OR_KEYWORD, annotation=str, default=value)
               for name, value in resource_parameters().items()]
    return inspect.Signature(params)


def build(params: dict[str, Any], options: ClusterOptions | None = None) -> Any:
    """Return the pipeline function for the grid of ``params`` (a params.yaml mapping; its cells are the
    defaults of ``cells``/``gpu_cells``, and a loop exists for each kind present) with the compile-time
    ``options`` (retries, parallelism, caching, PVC)."""
    opts = options or ClusterOptions()
    grid = read_grid(params)
    has = {False: bool(grid_cells(grid, gpu=False)), True: bool(grid_cells(grid, gpu=True))}
    signature = _signature(grid_cells(grid, gpu=False), grid_cells(grid, gpu=True))
    names = list(signature.parameters)

    def configure(task: dsl.PipelineTask, kind: str, p: dict[str, Any], cache: bool = False) -> dsl.PipelineTask:
        """Resources from the run's parameters, S3 credentials, retries, caching and the optional PVC."""
        for field in RESOURCE_FIELDS:
            getattr(task, f"set_{field}")(p[f"{kind}_{field}"])
        # Resource placeholders are not task arguments: register them so a loop's sub-DAG receives them.
        task.register_pipeline_channels([p[f"{kind}_{field}"] for field in RESOURCE_FIELDS])
        kubernetes.use_secret_as_env(task, secret_name=S3_SECRET, optional=True, secret_key_to_env={
            k: k for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL")})
        task.set_retry(num_retries=opts.retries, backoff_duration=opts.backoff, backoff_factor=2.0)
        task.set_caching_options(opts.caching)
        if cache and opts.image_cache_pvc:
            kubernetes.mount_pvc(task, pvc_name=opts.image_cache_pvc, mount_path=CACHE_MOUNT)
            task.set_env_variable("TAGCODE_S3_CACHE", f"{CACHE_MOUNT}/s3")
        return task

    def tracked(task: dsl.PipelineTask) -> dsl.PipelineTask:
        """The MLflow server of the cluster for a tracked stage (without the secret: set ``tracking: false``)."""
        kubernetes.use_secret_as_env(task, secret_name=MLFLOW_SECRET, optional=True,
                                     secret_key_to_env={"MLFLOW_TRACKING_URI": "MLFLOW_TRACKING_URI"})
        return task

    def gpu(task: dsl.PipelineTask, p: dict[str, Any]) -> dsl.PipelineTask:
        """The GPU request (type, count, tolerations, node selector), all run parameters."""
        task.set_accelerator_type(p["gpu_type"]).set_accelerator_limit(p["gpu_count"])
        task.register_pipeline_channels([p["gpu_type"], p["gpu_count"]])
        kubernetes.add_toleration_json(task, p["gpu_tolerations"])
        kubernetes.add_node_selector_json(task, p["gpu_node_selector"])
        return task

    def cell_loop(cells: Any, p: dict[str, Any], prepared: Any, feats: Any, embed: Any, shards: Any,
                  torch: bool) -> Any:
        """train → encode shards → merge → evaluate for every cell; returns the evaluate and merge tasks."""
        with dsl.ParallelFor(cells, parallelism=opts.parallelism) as cell:
            t = tracked(configure(train(params=p["train_params"], cell=cell, prepared=prepared, feats=feats,
                                        embed=embed), "train", p))
            if torch:
                gpu(t, p)
            with dsl.ParallelFor(shards.output) as shard:
                e = configure(encode(params=p["encode_params"], shard=shard, num_shards=p["num_shards"],
                                     model=t.outputs["model"], prepared=prepared, feats=feats), "encode", p)
            m = configure(merge_codes(parts=dsl.Collected(e.outputs["codes"])), "merge_shards", p)
            ev = tracked(configure(evaluate(params=p["evaluate_params"], codes=m.outputs["codes"],
                                            prepared=prepared), "evaluate", p))
            tracked(configure(promote(params=p["promote_params"], model=t.outputs["model"],
                                      results=ev.outputs["results"], prepared=prepared, feats=feats), "promote", p))
        return ev, m

    def tagcode_pipeline(*args: Any) -> None:
        p = dict(zip(names, args, strict=True))
        pre = configure(prepare(params=p["prepare_params"]), "prepare", p, cache=True)
        prepared = pre.outputs["prepared"]
        c = configure(clean_tags(params=p["clean_tags_params"], prepared=prepared), "clean_tags", p)
        emb = configure(embed_tags(params=p["embed_tags_params"], tags=c.outputs["tags"]), "embed_tags", p)
        shards = configure(shard_indices(num_shards=p["num_shards"]), "report", p)
        with dsl.ParallelFor(shards.output) as shard:
            f = configure(features(params=p["features_params"], shard=shard, num_shards=p["num_shards"],
                                   prepared=prepared), "features", p, cache=True)
            gpu(f, p)
        mf = configure(merge_features(parts=dsl.Collected(f.outputs["feats"])), "merge_shards", p, cache=True)
        feats = mf.outputs["feats"]
        loops = {torch: cell_loop(p["gpu_cells" if torch else "cells"], p, prepared, feats, emb.outputs["embed"],
                                  shards, torch=torch)
                 for torch in (False, True) if has[torch]}
        # With one kind only, both report inputs collect the same loop; report lays out each output once.
        ev, mc = ([loops[k if k in loops else not k][i] for k in (False, True)] for i in (0, 1))
        configure(report(params=p["report_params"], prepared=prepared,
                         results=dsl.Collected(ev[0].outputs["results"]),
                         gpu_results=dsl.Collected(ev[1].outputs["results"]),
                         codes=dsl.Collected(mc[0].outputs["codes"]),
                         gpu_codes=dsl.Collected(mc[1].outputs["codes"])), "report", p)

    tagcode_pipeline.__signature__ = signature  # type: ignore[attr-defined]
    return dsl.pipeline(name="tagcode", description="Weakly supervised image retrieval from noisy tags.")(
        tagcode_pipeline)


def arguments(params: dict, num_shards: int | None = None, **settings: Any) -> dict:
    """Pipeline arguments from a params.yaml mapping: each stage's section without the keys the DAG sets,
    the grid's baseline and GPU cells, and any Kubernetes setting given (defaults otherwise)."""
    args: dict[str, Any] = {f"{stage}_params": {k: v for k, v in (params.get(stage) or {}).items() if k not in DAG_KEYS}
                            for stage in STAGE_PARAMS}
    grid = read_grid(params)
    args["cells"], args["gpu_cells"] = grid_cells(grid, gpu=False), grid_cells(grid, gpu=True)
    if num_shards is not None:
        args["num_shards"] = num_shards
    unknown = set(settings) - set(_signature([], []).parameters)
    if unknown:
        raise ValueError(f"unknown pipeline settings: {sorted(unknown)}")
    return {**args, **settings}
