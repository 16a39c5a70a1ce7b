"""The sampler: shards of the (seed, epoch) order never overlap and make up each global batch."""

from __future__ import annotations

import pytest
import torch

from xpm_train.sampler import batch_length, check_shards, epoch_order, shard_batches


@pytest.mark.parametrize("world", [1, 2, 3, 4])
@pytest.mark.parametrize("n, batch_size", [(101, 12), (96, 8), (5, 12)])
def test_shards_never_overlap_and_cover_each_global_batch(n, batch_size, world):
    order = epoch_order(n, seed=3, epoch=1)
    shards = [list(shard_batches(order, batch_size, rank=r, world=world)) for r in range(world)]
    globals_ = list(shard_batches(order, batch_size))
    assert all(len(s) == len(globals_) for s in shards)
    for b, batch in enumerate(globals_):
        parts = [shards[r][b] for r in range(world)]
        seen = torch.cat(parts)
        assert len(set(seen.tolist())) == len(seen)  # no sample in two shards
        assert sorted(seen.tolist()) == sorted(batch.tolist())  # together: the global batch
        assert len(batch) == batch_length(n, batch_size, b)
        assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_shards_resume_at_a_batch_and_depend_on_seed_and_epoch_only():
    order = epoch_order(50, seed=1, epoch=2)
    full = list(shard_batches(order, 8, rank=1, world=2))
    assert [t.tolist() for t in shard_batches(order, 8, start=3, rank=1, world=2)] == \
        [t.tolist() for t in full[3:]]
    assert torch.equal(order, epoch_order(50, seed=1, epoch=2))
    with pytest.raises(ValueError):
        next(shard_batches(order, 8, rank=2, world=2))


def test_a_last_batch_smaller_than_the_ranks_is_refused():
    check_shards(101, 10, 1)
    check_shards(102, 10, 2)
    with pytest.raises(ValueError, match="fewer than the 2 ranks: change batch_size"):
        check_shards(101, 10, 2)
