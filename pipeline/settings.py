"""Kubernetes settings of the DAG, with their documented defaults.

Runtime pipeline parameters (set per run, e.g. ``submit --set features_memory_limit=32Gi``):

- ``<stage>_cpu_request``, ``<stage>_cpu_limit``, ``<stage>_memory_request``, ``<stage>_memory_limit``
  for every task kind in :data:`RESOURCES`;
- ``gpu_type`` / ``gpu_count`` / ``gpu_tolerations`` / ``gpu_node_selector``: the GPU request of the
  ``features`` shards and of the torch-trained ``train`` cells (``gpu: true`` grid families), never of the
  baseline cells; ``gpu_count=0`` runs them on CPU nodes;
- ``num_shards``: how many shards ``features`` and ``encode`` fan out over (NUS-WIDE: e.g. 8).

Compile-time settings (:class:`ClusterOptions`; Kubeflow fixes them in the pipeline spec): retries with
exponential backoff, the parallelism limit of the method × bits fan-out, caching, and an optional PVC.
"""

from __future__ import annotations

from dataclasses import dataclass

# task kind → (cpu request, cpu limit, memory request, memory limit); Kubernetes quantities.
RESOURCES: dict[str, tuple[str, str, str, str]] = {
    "prepare": ("2", "4", "4Gi", "8Gi"),         # decodes images on `workers` threads
    "clean_tags": ("1", "2", "2Gi", "4Gi"),
    "embed_tags": ("1", "2", "4Gi", "8Gi"),      # gensim word vectors in memory
    "features": ("4", "8", "8Gi", "16Gi"),       # one shard: a torch backbone over the memory-mapped cache
    "train": ("4", "8", "8Gi", "16Gi"),
    "encode": ("2", "4", "4Gi", "8Gi"),          # one database shard
    "merge_shards": ("1", "2", "4Gi", "16Gi"),   # holds the merged array (NUS-WIDE 270k × 1280 float32 ≈ 1.4 GB)
    "evaluate": ("2", "4", "4Gi", "8Gi"),
    "promote": ("1", "1", "1Gi", "2Gi"),         # registry calls only
    "report": ("1", "1", "1Gi", "2Gi"),
}
RESOURCE_FIELDS = ("cpu_request", "cpu_limit", "memory_request", "memory_limit")

GPU_DEFAULTS: dict[str, object] = {
    "gpu_type": "nvidia.com/gpu",
    "gpu_count": 1,
    "gpu_tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "gpu_node_selector": {},
}
NUM_SHARDS = 3
S3_SECRET = "tagcode-s3"  # optional Kubernetes secret: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL
MLFLOW_SECRET = "tagcode-mlflow"  # optional Kubernetes secret: MLFLOW_TRACKING_URI of the cluster's MLflow server
CACHE_MOUNT = "/mnt/tagcode-cache"


@dataclass(frozen=True)
class ClusterOptions:
    """Settings Kubeflow takes at compile time only."""

    retries: int = 2                # re-run a failed pod (node loss, OOM-kill, S3 hiccup) this many times
    backoff: str = "60s"            # first retry delay, doubled each time
    parallelism: int = 8            # at most this many method × bits cells at once (per family loop)
    caching: bool = True            # reuse a task's outputs when its inputs and spec are unchanged
    image_cache_pvc: str | None = None  # mount this PVC at /mnt/tagcode-cache in prepare/features/merge tasks


def resource_parameters() -> dict[str, str]:
    """Every ``<kind>_<field>`` resource parameter with its default."""
    return {f"{kind}_{field}": value for kind, values in RESOURCES.items()
            for field, value in zip(RESOURCE_FIELDS, values, strict=True)}
