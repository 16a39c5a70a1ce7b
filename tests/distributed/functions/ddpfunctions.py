"""Training functions of the distributed tests: one DDP-aware, one not."""

from xpm_train import Result, training_function


@training_function(distributed=True)
def ranked(ctx, scale: float = 1.0) -> Result:
    """Each rank contributes ``scale * (rank + 1)``; the sum is the same on every rank."""
    import torch

    value = torch.tensor([scale * (ctx.ranks.rank + 1)])
    ctx.ranks.sum_(value)
    ctx.log.log(epoch=0, step=0, split="train", total=float(value), rank=ctx.ranks.rank)
    return Result(objective=float(value), metrics={"world": ctx.ranks.world_size})


@training_function
def plain(ctx, scale: float = 1.0) -> Result:
    """Not declared distributed."""
    return Result(objective=scale)
