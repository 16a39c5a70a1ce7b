"""The tune plan's study written as plain Optuna in one process: the baseline
of the tune row of :mod:`bench.warm`.

Same as ``experiments/tune/params.yaml``: the same space (lr, hidden layers,
dropout when the layers are wide, batch size), sampler (TPE, seed 0, 6
random trials), pruner (median rule after 4 trials and 2 epochs), 12 epochs
of Adam on scikit-learn's digits (the train split of 1438 images, 15% held
out for validation, inputs standardised), MLP with ReLU, objective = best
validation accuracy, 2 trials at once (``n_jobs=2``, one torch thread each,
as a ``cpu(cores=1)`` job has). What it does not have is the point of the
comparison: no job folders, caching, resume, tracking or results by ID.

    python -m bench.plain_optuna [--trials 20] [--jobs 2]

prints one JSON line: wall time (from the interpreter's start, imports
included, as the plan's wall time is), best value, trial states.
"""

from __future__ import annotations

import argparse
import json
import time

STARTED = time.time()


def data(seed: int = 20240601):
    """Digits train split (80%, stratified as xpm_train's Digits) minus 15% for validation."""
    import numpy as np
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    images, labels = load_digits(return_X_y=True)
    train_x, _, train_y, _ = train_test_split(images, labels, test_size=0.2, stratify=labels, random_state=seed)
    fit_x, val_x, fit_y, val_y = train_test_split(train_x, train_y, test_size=0.15, random_state=0)
    mean, std = fit_x.mean(), fit_x.std()
    tensor = lambda x: torch.tensor((x - mean) / std, dtype=torch.float32)  # noqa: E731
    return (tensor(fit_x), torch.tensor(fit_y)), (tensor(val_x), torch.tensor(np.asarray(val_y)))


def objective_of(train, val, epochs: int):
    import optuna
    import torch
    from torch import nn

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("optimizer.lr", 1e-4, 0.3, log=True)
        hidden = trial.suggest_categorical("model.hidden_dims", ["16", "64", "128", "128,64"])
        dropout = (trial.suggest_float("model.dropout", 0.0, 0.4, step=0.1)
                   if hidden in ("128", "128,64") else 0.0)
        batch_size = trial.suggest_categorical("batch_size", [32, 64, 128])
        layers, width = [], 64
        for size in map(int, hidden.split(",")):
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout)]
            width = size
        net = nn.Sequential(*layers, nn.Linear(width, 10))
        optimizer = torch.optim.Adam(net.parameters(), lr=lr)
        generator = torch.Generator().manual_seed(trial.number)
        best = 0.0
        for epoch in range(1, epochs + 1):
            net.train()
            for batch in torch.randperm(len(train[0]), generator=generator).split(batch_size):
                loss = nn.functional.cross_entropy(net(train[0][batch]), train[1][batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            net.eval()
            with torch.no_grad():
                accuracy = (net(val[0]).argmax(1) == val[1]).float().mean().item()
            best = max(best, accuracy)
            trial.report(accuracy, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return best

    return objective


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench.plain_optuna")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args(argv)

    import optuna
    import torch

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    train, val = data()
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=6),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=2))
    study.optimize(objective_of(train, val, args.epochs), n_trials=args.trials, n_jobs=args.jobs)
    states = [t.state.name for t in study.trials]
    return {"wall_s": time.time() - STARTED, "best_value": study.best_value,
            "complete": states.count("COMPLETE"), "pruned": states.count("PRUNED")}


if __name__ == "__main__":
    print(json.dumps(main()))  # noqa: T201
