"""A training function that saves no model (for the tests): its module is
loaded by the task process from this file."""

from xpm_train import Result, training_function


@training_function(direction="minimize")
def fit_nothing(ctx, offset: float = 0.0) -> Result:
    """Logs a loss; saves no network."""
    ctx.log.log(epoch=0, step=0, split="val", loss=1.0 + offset)
    return Result(objective=1.0 + offset, metrics={"val_loss": 1.0 + offset})
