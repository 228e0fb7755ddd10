"""Shards of an ordered id list for scale-out (features and encode fan out over them, then merge)."""

from __future__ import annotations

from tagcode.errors import TagcodeError


def shard_slice(n: int, num_shards: int, shard: int, align: int = 1) -> slice:
    """Rows ``[start, stop)`` of shard ``shard`` of ``num_shards`` over ``n`` ordered rows: contiguous, in
    order, starting on a multiple of ``align`` (the batch size, so every forward batch holds the same
    images as in an unsharded run); concatenating the shards in order gives all rows back."""
    if num_shards < 1 or not 0 <= shard < num_shards:
        raise TagcodeError(f"shard {shard} of {num_shards}: need 0 <= shard < num_shards")
    if align < 1:
        raise TagcodeError(f"shard alignment must be positive, got {align}")
    blocks = -(-n // align)
    start, stop = shard * blocks // num_shards, (shard + 1) * blocks // num_shards
    return slice(min(start * align, n), min(stop * align, n))
