"""The tagcode DAG: prepare → clean_tags → embed_tags, prepare → features, then train → encode → evaluate → promote
for every (method, bits) cell in parallel. Parameters are the params.yaml sections."""


from kfp import dsl, kubernetes

from components.clean_tags import clean_tags
from components.embed_tags import embed_tags
from components.encode import encode
from components.evaluate import evaluate
from components.features import features
from components.prepare import prepare
from components.promote import promote
from components.train import train

# The same grid as dvc.yaml's train/encode/evaluate matrices (tests/test_pipeline.py checks they agree).
# Keys in sorted order: kfp round-trips defaults through protobuf Structs, which sort them.
DEFAULT_CELLS = (
    [{"bits": b, "method": m} for m in ("lsh", "itq") for b in (16, 32, 64)]
    + [{"bits": b, "method": m} for m in ("pq", "opq", "lsq") for b in (8, 16, 24, 32)]
    + [{"bits": 32, "method": "float"}]
)
S3_SECRET = "tagcode-s3"
MLFLOW_SECRET = "tagcode-mlflow"


def _with_s3(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """Expose the cluster's S3 credentials (Kubernetes secret ``tagcode-s3``) as the standard AWS variables."""
    kubernetes.use_secret_as_env(
        task, secret_name=S3_SECRET,
        secret_key_to_env={"AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY",
                           "AWS_ENDPOINT_URL": "AWS_ENDPOINT_URL"},
        optional=True,
    )
    return task


def _with_mlflow(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """Point a tracked stage at the cluster's MLflow server (Kubernetes secret ``tagcode-mlflow``, key
    ``MLFLOW_TRACKING_URI``); without it the stage needs ``tracking: false``."""
    kubernetes.use_secret_as_env(task, secret_name=MLFLOW_SECRET,
                                 secret_key_to_env={"MLFLOW_TRACKING_URI": "MLFLOW_TRACKING_URI"}, optional=True)
    return task


def build(gpu: bool = False):
    """Return the pipeline function; ``gpu=True`` asks Kubernetes for one NVIDIA GPU per training task."""

    @dsl.pipeline(name="tagcode", description="Weakly supervised image retrieval from noisy tags.")
    def tagcode_pipeline(
        prepare_params: dict,
        clean_tags_params: dict,
        embed_tags_params: dict,
        features_params: dict,
        train_params: dict,
        encode_params: dict,
        evaluate_params: dict,
        promote_params: dict,
        cells: list = DEFAULT_CELLS,
    ) -> None:
        p = _with_s3(prepare(params=prepare_params))
        c = clean_tags(params=clean_tags_params, prepared=p.outputs["prepared"])
        embed_tags(params=embed_tags_params, tags=c.outputs["tags"])
        f = features(params=features_params, prepared=p.outputs["prepared"])
        with dsl.ParallelFor(cells) as cell:
            t = _with_mlflow(train(params=train_params, cell=cell, prepared=p.outputs["prepared"],
                                   feats=f.outputs["feats"]))
            if gpu:
                t.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(1)
                kubernetes.add_toleration(t, key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")
            e = encode(params=encode_params, model=t.outputs["model"], prepared=p.outputs["prepared"],
                       feats=f.outputs["feats"])
            ev = _with_mlflow(evaluate(params=evaluate_params, codes=e.outputs["codes"],
                                       prepared=p.outputs["prepared"]))
            _with_mlflow(promote(params=promote_params, model=t.outputs["model"]).after(ev))

    return tagcode_pipeline


def arguments(params: dict, cells: list | None = None) -> dict:
    """Pipeline arguments from a params.yaml mapping (paths between stages are KFP artifacts, not params)."""
    path_keys = {"out", "prepared", "tags", "features", "model", "codes", "metrics"}
    args = {f"{stage}_params": {k: v for k, v in (params.get(stage) or {}).items() if k not in path_keys}
            for stage in ("prepare", "clean_tags", "embed_tags", "features", "train", "encode", "evaluate", "promote")}
    if cells is not None:
        args["cells"] = cells
    return args
