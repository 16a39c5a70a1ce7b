"""A training function slowed down by its model's pause (``SlowMLP``: a Meta,
the same job ID at any pause): SGD on 128 synthetic samples, 2 steps per
epoch (a run between two time limits makes progress), a checkpoint after
each epoch (with torch's random state: the resumed run draws what the
straight run would)."""

from xpm_train import Model, Result, training_function


@training_function
def slow_fit(ctx, model: Model, epochs: int = 20) -> Result:
    """``epochs`` passes of batches of 64 over 128 samples of ``Synthetic(seed=3)``."""
    import torch
    from torch import nn

    from xpm_train import Synthetic
    from xpm_train.extend import build
    from xpm_train.objectives import Classification

    data = Synthetic.C(split="train", num_samples=128, seed=3).instance().arrays()
    net = build(model, Classification.C().describe(data))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    inputs, targets = data.inputs.float() / 255, data.targets
    start, loss, state = 0, None, ctx.load_checkpoint()
    if state is not None:
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        start, loss = state["epoch"] + 1, state["loss"]
    for epoch in range(start, epochs):
        net.train()
        for batch in torch.randperm(len(inputs)).split(64):
            step_loss = nn.functional.cross_entropy(net(inputs[batch]), targets[batch])
            optimizer.zero_grad()
            step_loss.backward()
            optimizer.step()
            loss = float(step_loss.detach())
            ctx.log.log(epoch=epoch, step=epoch, split="train_step", loss=loss)
        ctx.save_checkpoint({"model": net.state_dict(), "optimizer": optimizer.state_dict(),
                             "rng": torch.get_rng_state(), "epoch": epoch, "loss": loss})
    return Result(objective=-loss, metrics={"loss": loss})
