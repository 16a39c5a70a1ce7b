"""Reading studies back: the trials table shown by ``xpm-train tune show``
and printed by plans."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import NotFound
from .storage import journal_path, list_studies, read_description


def load_trials(journal: Path | str, name: str) -> list[dict[str, Any]]:
    """Every trial of study ``name`` (see :func:`xpm_train.tune.task.trial_rows`)."""
    import optuna

    from .storage import open_storage
    from .task import trial_rows

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if not Path(journal).exists():
        raise NotFound(f"no journal {journal}: the study has not started")
    try:
        study = optuna.load_study(study_name=name, storage=open_storage(journal))
    except KeyError:  # Optuna's "Record does not exist.": the journal is there, the study's line is not yet
        raise NotFound(f"study {name!r} is not in {journal} yet: it has not started") from None
    return trial_rows(study)


def best_row(rows: list[dict[str, Any]], direction: str) -> dict[str, Any] | None:
    from ..summary import Direction

    complete = [r for r in rows if r["state"] == "COMPLETE"]
    return Direction.of(direction).best(complete, lambda r: r["value"])


def format_trials(rows: list[dict[str, Any]]) -> str:
    """A text table: number, state, value, epochs, params, job (short)."""
    params = sorted({k for r in rows for k in r["params"]})
    header = ["trial", "state", "value", "epochs", *params, "job"]
    lines = [header]
    for r in rows:
        value = "" if r["value"] is None else f"{r['value']:.4f}"
        cells = [str(r["number"]), r["state"], value, "" if r["epochs"] is None else str(r["epochs"])]
        cells += [format_param(r["params"].get(p)) for p in params]
        job = r["job"] or ""
        cells.append(job.rsplit(".", 1)[-1][:18] if job else "")
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines)


def format_param(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def study_summary(workspace: Path | str, name: str) -> dict[str, Any]:
    """Description, trials and best trial of a study of ``workspace``."""
    description = read_description(workspace, name)
    rows = load_trials(journal_path(workspace, name), name)
    return {"name": name, "description": description, "trials": rows,
            "best": best_row(rows, description["direction"])}


def studies_table(workspace: Path | str) -> list[dict[str, Any]]:
    """One row per study: name, trial counts per state, best value."""
    table = []
    for name in list_studies(workspace):
        summary = study_summary(workspace, name)
        counts: dict[str, int] = {}
        for r in summary["trials"]:
            counts[r["state"]] = counts.get(r["state"], 0) + 1
        table.append({"study": name, "trials": len(summary["trials"]),
                      **{k.lower(): v for k, v in sorted(counts.items())},
                      "best": summary["best"]["value"] if summary["best"] else None,
                      "metric": summary["description"]["metric"]})
    return table


def to_json(value) -> str:
    return json.dumps(value, indent=2, default=str)
