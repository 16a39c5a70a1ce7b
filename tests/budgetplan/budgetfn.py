"""A training function with a budget (tests of xpm_train.budget): a small MLP
with dropout and momentum on fixed random data, a cosine learning rate over
``ctx.horizon`` epochs, stopped after ``epochs``; it resumes exactly from its
checkpoint (weights, optimizer, epoch, score and torch's random state), as a
function must to be continued bit for bit."""

import math

from xpm_train import Result, training_function


@training_function(budget="epochs")
def budgeted(ctx, lr: float = 0.1, epochs: int = 2) -> Result:
    import torch
    from torch import nn

    data = torch.Generator().manual_seed(7)
    x = torch.randn(96, 6, generator=data)
    y = (x[:, 0] + x[:, 1] > 0).long()
    net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 2))
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    steps_per_epoch, total = 3, 3 * ctx.horizon

    start, accuracy, state = 0, None, ctx.load_checkpoint()
    if state is not None:
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        start, accuracy = state["epoch"] + 1, state["accuracy"]
    for epoch in range(start, epochs):
        net.train()
        order = torch.randperm(96, generator=torch.Generator().manual_seed(ctx.seed * 1000 + epoch))
        for index, batch in enumerate(order.split(32)):
            step = epoch * steps_per_epoch + index
            for group in optimizer.param_groups:
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / total))
            loss = nn.functional.cross_entropy(net(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        net.eval()
        with torch.no_grad():
            accuracy = (net(x).argmax(1) == y).float().mean().item()
        ctx.log.log(epoch=epoch, step=epoch, split="val", loss=loss.item(), accuracy=accuracy)
        ctx.save_checkpoint({"model": net.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                             "accuracy": accuracy, "rng": torch.get_rng_state()})
    return Result(objective=accuracy, metrics={"val_accuracy": accuracy})


@training_function(budget="epochs")
def forgetful(ctx, epochs: int = 1) -> Result:
    """Declares a budget but never resumes from its checkpoint: continuing it is refused."""
    for epoch in range(epochs):
        ctx.log.log(epoch=epoch, step=epoch, split="val", accuracy=0.5)
        ctx.save_checkpoint({"epoch": epoch})
    return Result(objective=0.5)
