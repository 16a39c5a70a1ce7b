"""The sample order of training: one sampler for every reader of a split.

The order of epoch ``e`` is a permutation of the split that depends only on
``(seed, e)``; global batch ``b`` is the slice ``[b * batch_size, (b + 1) *
batch_size)`` of it, and with several ranks, rank ``r`` of ``W`` reads the
samples ``r, r + W, r + 2W...`` of each global batch. So

* a run resumed at batch ``b`` reads the very batches an uninterrupted run would;
* the shards of the ranks never overlap and together are the global batch,
  whatever the number of ranks: ``W`` ranks see, step by step, the samples of
  one process with the same global batch size.

Everything that walks a split in training order (the in-memory pipeline of
:mod:`xpm_train.pipeline`, and any streaming reader) uses these functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    import torch


def epoch_order(n: int, seed: int, epoch: int) -> "torch.Tensor":
    """The sample order of ``epoch``: a permutation of ``range(n)`` that depends
    only on ``(seed, epoch)``."""
    import torch

    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator)


def batch_length(n: int, batch_size: int, batch: int) -> int:
    """Number of samples of global batch ``batch`` of an epoch of ``n`` samples
    (the last one may be short)."""
    return max(0, min(batch_size, n - batch * batch_size))


def shard_batches(order: "torch.Tensor", batch_size: int, start: int = 0, rank: int = 0,
                  world: int = 1) -> Iterator["torch.Tensor"]:
    """This rank's indices of each global batch of ``order``, from batch ``start``.

    With ``world == 1`` these are the global batches themselves.
    """
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} is not in [0, {world})")
    for begin in range(start * batch_size, len(order), batch_size):
        batch = order[begin : begin + batch_size]
        yield batch if world == 1 else batch[rank::world]


def check_shards(n: int, batch_size: int, world: int) -> None:
    """Every rank must get a sample of every global batch: refuse an epoch whose
    last batch has fewer samples than there are ranks."""
    last = n % batch_size
    if world > 1 and 0 < last < world:
        raise ValueError(
            f"the last batch of each epoch ({n} samples, batch_size={batch_size}) has {last} sample(s), "
            f"fewer than the {world} ranks: change batch_size (e.g. {batch_size + world}) so that every "
            "rank gets a share of every batch")
