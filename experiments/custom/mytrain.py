"""A training function written by a user, outside xpm_train: a plain PyTorch
loop on the digits, turned into a cached task by ``@training_function``.

This file is a top-level module (imported as ``mytrain``; params.yaml puts
this folder on the plan's path with ``pythonpath: [.]``): experimaestro
records its file, so each task process loads it from there. In a project,
put such functions in your installed package instead.
"""

from __future__ import annotations

from typing import Annotated

from xpm_train import Result, training_function, Positive


@training_function
def train(ctx, lr: Annotated[float, Positive()], hidden: int = 32, epochs: int = 5,
          batch_size: int = 32) -> Result:
    """An MLP on 8x8 digits; the objective is the validation accuracy.

    Args:
        lr: Adam learning rate
        hidden: width of the hidden layer
        epochs: passes over the training data
        batch_size: training batch size
    """
    import torch
    from torch import nn

    from xpm_train import Digits

    # Data: 10% of the training split held out for validation, normalised
    data = Digits.C(split="train").instance().arrays()
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))
    n_val = len(data) // 10
    images = ((data.images.float() / 255 - data.mean[0]) / data.std[0]).to(ctx.device)
    labels = data.labels.to(ctx.device)
    val_x, val_y = images[order[:n_val]], labels[order[:n_val]]
    train_x, train_y = images[order[n_val:]], labels[order[n_val:]]

    # Flatten inside the network: it takes the normalised N x 1 x 8 x 8 images,
    # as an export's predict() gives them
    net = nn.Sequential(nn.Flatten(), nn.Linear(images[0].numel(), hidden), nn.ReLU(),
                        nn.Linear(hidden, data.num_classes)).to(ctx.device)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)

    # Resume where a stopped run left off (ctx.save_checkpoint below). The
    # checkpoint keeps the last epoch's accuracy: a run stopped after its last
    # checkpoint has no epoch left and returns that score (a placeholder such
    # as 0.0 or NaN would be cached as the job's result, or fail it)
    start, accuracy, state = 0, None, ctx.load_checkpoint()
    if state is not None:
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start, accuracy = state["epoch"] + 1, state["accuracy"]

    for epoch in range(start, epochs):
        net.train()
        for batch in torch.randperm(len(train_x)).split(batch_size):
            loss = nn.functional.cross_entropy(net(train_x[batch]), train_y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        net.eval()
        with torch.no_grad():
            logits = net(val_x)
            accuracy = (logits.argmax(1) == val_y).float().mean().item()
            val_loss = nn.functional.cross_entropy(logits, val_y).item()
        ctx.log.log(epoch=epoch, step=epoch, split="val", loss=val_loss, accuracy=accuracy)
        ctx.save_checkpoint({"model": net.state_dict(), "optimizer": optimizer.state_dict(),
                             "epoch": epoch, "accuracy": accuracy})
        if ctx.should_prune(epoch, accuracy):
            break
    ctx.save_model(net, data)  # Evaluate (SavedModel), load(...).network and export use it
    return Result(objective=accuracy, metrics={"val_accuracy": accuracy})
