"""A training function whose objective is NaN (for the tests): its module is
loaded by the task process from this file."""

from xpm_train import Result, training_function


@training_function
def diverges(ctx, epochs: int = 1) -> Result:
    """Logs one point, then returns a NaN objective (a training that diverged)."""
    ctx.log.log(epoch=0, step=0, split="val", accuracy=float("nan"))
    return Result(objective=float("nan"))
