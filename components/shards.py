"""KFP component listing shard indices, the items of the features/encode fan-out."""

from kfp import dsl

from components.images import image_for


@dsl.component(base_image=image_for("merge_shards"), install_kfp_package=False)
def shard_indices(num_shards: int) -> list:
    """``[0, 1, ..., num_shards - 1]``; at least one shard."""
    return list(range(max(int(num_shards), 1)))
