"""Shared helpers of the tune tests: the tiny plan, its parameters, and what a
workspace holds (studies, Learn jobs and how often each trained)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

PLAN = Path(__file__).resolve().parent / "plan" / "experiment"

# Tried first, in this order, by the pruning tests: a good and a hopeless
# learning rate (the second is pruned after its first epoch).
GOOD_THEN_BAD = [
    {"optimizer.lr": 0.05, "model.hidden_dims": [32]},
    {"optimizer.lr": 0.00001, "model.hidden_dims": [8]},
]


def write_params(folder: Path, name: str = "params", **values) -> Path:
    """A params.yaml for the tiny plan (``values`` override its defaults)."""
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"id": "tune-test", "file": str(PLAN), **values}))
    return path


def learn_jobs(workdir: Path) -> dict[str, int]:
    """``{Learn job hash: number of "start" events}`` (a resume is not a start)."""
    starts = {}
    for folder in (workdir / "jobs" / "xpm_train.learn.learn").glob("*"):
        events = folder / "events.jsonl"
        lines = events.read_text().splitlines() if events.exists() else []
        starts[folder.name] = sum(json.loads(line)["event"] == "start" for line in lines if line.strip())
    return starts


def trials(workdir: Path) -> list[dict]:
    """Every trial of the only study of ``workdir``."""
    from xpm_train.tune.report import load_trials
    from xpm_train.tune.storage import journal_path, list_studies

    (name,) = list_studies(workdir)
    return load_trials(journal_path(workdir, name), name)


def our_tracebacks(output: str) -> list[str]:
    """Tracebacks that involve the study (optuna, its journal, xpm_train).
    Left out: experimaestro's own file watcher, which sometimes logs a
    JSONDecodeError reading its tokens' informations.json while another
    process rewrites it (harmless: it reads it again on the next event)."""
    blocks = [block[:3000] for block in output.split("Traceback (most recent call last)")[1:]]
    return [b for b in blocks if "tokens.py" not in b and any(w in b for w in ("optuna", "journal", "xpm_train"))]
