"""Finished jobs, read back by ID: :func:`load` one, :func:`results` many.

A job is named by its full ID ``<task>/<hash>``, a unique prefix of its hash
(optionally ``<task>/<prefix>``), or its folder. A job's tags are those of
every experiment run that submitted it (:mod:`xpm_train.tags`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from .errors import CodeNotFound, InvalidArgument, UserError, code_not_found  # noqa: F401 - CodeNotFound: part of this API
from .jobfolder import PARAMS, all_jobs, state, workspace_of
from .summary import flatten, read  # noqa: F401 - flatten: part of this module's API

if TYPE_CHECKING:
    import pandas
    import torch
    from torch import nn



@dataclass
class JobInfo:
    """Where a job lives and what it produced (cheap: no config is loaded)."""

    task: str
    hash: str
    path: Path
    state: str
    tags: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.task}/{self.hash}"

    @property
    def name(self) -> str:
        """Short task name (``learn``, ``evaluate``...) used for file names."""
        return self.task.rsplit(".", 1)[-1]

    @property
    def log_paths(self) -> dict[str, Path]:
        return {kind: self.path / f"{self.name}.{kind}" for kind in ("out", "err")}

    def metrics(self) -> dict[str, Any]:
        """The task's summary (:func:`xpm_train.summary.read`: ``final.json``
        for Learn, ``results.json`` for Evaluate), or ``{}`` when it has none yet."""
        return read(self.path)


def job_info(path: Path, tags: Optional[dict[str, Any]] = None) -> JobInfo:
    """The :class:`JobInfo` of the job folder ``path``."""
    return JobInfo(task=path.parent.name, hash=path.name, path=path, state=state(path), tags=tags or {})


class JobNotFound(UserError, LookupError):
    """No job (or more than one) matches the given ID."""


def check_workspace(workspace: Path | str) -> Path:
    workspace = Path(workspace)
    if not (workspace / "jobs").is_dir():
        raise JobNotFound(
            f"{workspace} is not an experimaestro workspace (no jobs/ folder): "
            "pass the folder given to run-experiment --workdir"
        )
    return workspace


def resolve(job: str | Path, workspace: Path | str) -> JobInfo:
    """The job named by a full ID, a unique hash prefix or a folder."""
    candidate = Path(job)
    if (candidate / PARAMS).exists():
        return job_info(candidate.resolve(), tags_of(candidate.resolve()))
    workspace = check_workspace(workspace)
    text = str(job).strip().rstrip("/")
    if text.startswith("jobs/"):
        text = text[len("jobs/"):]
    task, _, prefix = text.rpartition("/")
    if not prefix:
        raise JobNotFound("empty job ID: give <task>/<hash>, a hash prefix or a job folder")
    matches = [p for p in all_jobs(workspace)
               if p.name.startswith(prefix) and (not task or p.parent.name == task)]
    if not matches:
        raise JobNotFound(
            f"no job matches '{job}' in {workspace}: list the jobs with "
            f"`xpm-train results --workdir {workspace}`"
        )
    if len(matches) > 1:
        names = "\n  ".join(f"{p.parent.name}/{p.name[:12]}" for p in matches[:10])
        raise JobNotFound(
            f"'{job}' is ambiguous: {len(matches)} jobs match:\n  {names}\n"
            "Give more characters of the hash (or <task>/<hash>)."
        )
    return job_info(matches[0], tags_of(matches[0]))


def experiment_tags(workspace: Path, experiment: str | None = None) -> dict[str, dict[str, Any]]:
    """``{job hash: tags}`` of the jobs of one experiment's current run (or of
    every experiment's current run), with the tags of every run that submitted
    them (:mod:`xpm_train.tags`)."""
    from .tags import record

    members = set()
    for name in [experiment] if experiment else sorted(
            p.name for p in (workspace / "experiments").glob("*") if p.is_dir()):
        members |= experiment_jobs(workspace, name)
    jobs = [p for p in all_jobs(workspace) if p.name in members]
    return record(workspace, jobs) if jobs else {}


def experiment_jobs(workspace: Path, experiment: str) -> set[str]:
    """Hashes of the jobs submitted by the current run of ``experiment``, tagged or not."""
    from .tags import run_tags

    return set(run_tags(Path(workspace) / "experiments" / experiment / "current"))


def tags_of(path: Path) -> dict[str, Any]:
    """The tags of the job in ``path``: those of every run that submitted it
    (:mod:`xpm_train.tags`; experimaestro 2.7 keeps tags per run)."""
    from .tags import record_job

    return record_job(path)


@dataclass
class LoadedJob:
    """A finished job read back: its typed config, metrics and, for a
    training job, the trained network."""

    info: JobInfo
    config: Any
    """The task as an instance of its typed config (``Learn``, ``Evaluate``...)"""

    metrics: dict[str, Any]
    """``final.json`` (Learn) or ``results.json`` (Evaluate)"""

    @property
    def network(self) -> "nn.Module":
        """The trained network with its best weights, in eval mode (Learn, and
        training functions that called ``ctx.save_model``). It takes
        *normalised* inputs, as in training: :meth:`predict` normalises raw
        ones. A one-line
        :class:`~xpm_train.trained.NoTrainedModel` error for other jobs."""
        cached = self.__dict__.get("_network")
        if cached is None:
            from .trained import network

            cached = self.__dict__["_network"] = network(self.info.path, self.config)
        return cached

    def predict(self, inputs: "torch.Tensor") -> "torch.Tensor":
        """The network's outputs (no gradient) for raw ``inputs``, as the
        dataset gives them (uint8 images, float features): normalised first
        as the training did (``data.json``; a training function saved without
        data has none: its inputs go to the network as given)."""
        import torch

        from .trained import normalise, read_data

        description = read_data(self.info.path) or {"mean": [], "std": []}
        with torch.no_grad():
            return self.network(normalise(inputs, description["mean"], description["std"]))

    def history(self) -> "pandas.DataFrame":
        """``metrics.jsonl`` as a DataFrame (one row per logged point; the
        points redone after a resume once: :func:`xpm_train.metrics.read_metrics`)."""
        import pandas

        from .jobfolder import METRICS
        from .metrics import read_metrics

        return pandas.DataFrame(read_metrics(self.info.path / METRICS))


def load(job: str | Path, workspace: Path | str = "workspace") -> LoadedJob:
    """Load a job by ID, hash prefix or folder.

    For a training job, ``network`` holds the trained weights (``best.pt``):
    experimaestro's ``from_task_dir(as_instance=True)`` (:func:`~xpm_train.jobfolder.load_config`) skips init tasks, so
    the weights are loaded explicitly (:func:`xpm_train.trained.network`).
    """
    from .jobfolder import load_config

    info = resolve(job, workspace)
    try:
        config = load_config(info.path)
    except ModuleNotFoundError as error:
        raise code_not_found(error, f"cannot load {info.id}") from None
    return LoadedJob(info=info, config=config, metrics=info.metrics())


def parse_where(where: list[str] | tuple[str, ...] | dict[str, Any] | None) -> dict[str, str]:
    """``["tag=value", ...]`` -> ``{tag: value}`` (values compared as text, so
    integer tags match: experimaestro's own job filters mismatch them)."""
    if not where:
        return {}
    if isinstance(where, dict):
        return {k: str(v) for k, v in where.items()}
    parsed = {}
    for item in where:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"--where expects tag=value, got '{item}'")
        parsed[key.strip()] = value.strip()
    return parsed


def results(workspace: Path | str = "workspace", experiment: str | None = None,
            where=None) -> "pandas.DataFrame":
    """One row per job: ``job`` ID, ``task``, ``state``, tags, final metrics.

    ``experiment`` keeps the jobs of that experiment's current run;
    ``where`` (``{"tag": value}`` or ``["tag=value"]``) keeps the jobs whose
    tag, or column (``model``, ``state``, a metric...), has that value.
    Columns and tags of the same name: :func:`job_row`.
    """
    import pandas

    from .tags import record

    workspace = check_workspace(workspace)
    tags = record(workspace)
    members = experiment_jobs(workspace, experiment) if experiment else set()
    if experiment and not members:
        known = sorted(p.name for p in (workspace / "experiments").glob("*"))
        raise JobNotFound(f"no experiment '{experiment}' in {workspace} (known: {', '.join(known) or 'none'})")
    filters = parse_where(where)
    rows, directions = [], {}
    for path in all_jobs(workspace):
        if experiment and path.name not in members:
            continue
        info = job_info(path, tags.get(path.name, {}))
        summary = info.metrics()
        row = job_row(info, summary)
        if all(matches(info.tags, row, k, v) for k, v in filters.items()):
            rows.append(row)
            directions[row["job"]] = summary.directions
    frame = integers_as_integers(pandas.DataFrame(rows), rows)
    frame.attrs[DIRECTIONS] = directions
    return frame


TAG_PREFIX = "tag:"
"""Column name prefix of a tag named like one of the job's own columns, with another value"""


DIRECTIONS = "directions"
"""``frame.attrs`` key of :func:`results`: each row's job -> the directions its summary declares"""


def job_row(info: JobInfo, summary: "Summary | None" = None) -> dict[str, Any]:
    """A job's row: its own columns (``job``, ``task``, ``state``, ``model``:
    the class of its model config, and its summary's metrics), then its tags.
    A tag named like an own column keeps that column (a fact of the job): it
    shows as ``tag:<name>`` when its value differs, and fills the column when
    the job has none (a task without a model config)."""
    own = {"job": f"{info.task}/{info.hash[:12]}", "task": info.task, "state": info.state,
           "model": model_class(info), **flatten(summary if summary is not None else info.metrics())}
    row = {key: own[key] for key in ("job", "task", "state", "model")}
    for key, value in info.tags.items():
        mine = own.get(key)
        row[key if mine is None or str(mine) == str(value) else TAG_PREFIX + key] = value
    row.update({key: value for key, value in own.items() if value is not None or key not in row})
    return row


def matches(tags: dict[str, Any], row: dict[str, Any], key: str, value: str) -> bool:
    """``--where key=value``: the job's tag ``key`` or its column ``key`` has
    that value (compared as text)."""
    return any(key in found and str(found[key]) == value for found in (tags, row))


def model_class(info: JobInfo) -> str | None:
    """Class name of the job's ``model`` Param (``MLP``, ``CNN``...), read from
    its ``params.json``; None for a task without one."""
    try:
        objects = json.loads((info.path / PARAMS).read_text())["objects"]
    except (OSError, ValueError, KeyError):
        return None
    by_id = {o.get("id"): o for o in objects}
    task = next((o for o in objects if o.get("identifier") == info.hash), None)
    model = (task or {}).get("fields", {}).get("model")
    if not (isinstance(model, dict) and model.get("type") == "python" and model.get("value") in by_id):
        return None
    return by_id[model["value"]]["typename"].rsplit(".", 1)[-1]


def integers_as_integers(frame: "pandas.DataFrame", rows: list[dict[str, Any]]) -> "pandas.DataFrame":
    """Columns whose values are all integers (tags, counts) as pandas' nullable
    ``Int64``: a missing value would otherwise turn them into floats (32.0)."""
    for column in frame.columns:
        values = [row[column] for row in rows if row.get(column) is not None]
        if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            frame[column] = frame[column].astype("Int64")
    return frame


def sort_best(frame: "pandas.DataFrame", column: str) -> "pandas.DataFrame":
    """``frame`` sorted by ``column``, best first: ascending for a metric
    that is better low, descending otherwise, in the direction each job's
    summary declares for it (:meth:`xpm_train.summary.Summary.direction`: its
    objective's metrics, its score, a training function's ``objective``...),
    else that of a metric of xpm-train's objectives (``mse``, ``loss``...);
    jobs without a value last (:func:`xpm_train.summary.direction_among`)."""
    from .summary import MINIMIZE, Summary, direction_among

    declared = frame.attrs.get(DIRECTIONS, {})
    rows = frame[frame[column].notna()].to_dict("records") if column in frame else []
    way = direction_among((Summary(row, declared.get(row.get("job"), {})) for row in rows), column)
    return frame.sort_values(column, ascending=way is MINIMIZE, na_position="last")


COUNT_COLUMNS = ("samples", "epochs", "steps", "best_epoch")
"""Metrics that are counts (shown without decimals)"""

SUMMARY_COLUMNS = ("confusion_matrix", "per_class_accuracy")


def format_table(frame: "pandas.DataFrame") -> str:
    """A readable text table (long list-valued columns left out, ``-`` where a
    job has no value)."""
    import pandas

    columns = [c for c in frame.columns if c not in SUMMARY_COLUMNS]
    frame = frame[columns].dropna(axis=1, how="all").copy()
    for column in frame.columns:  # counts read next to NaN come back as floats
        values = frame[column]
        if values.dtype.kind == "f" and values.dropna().apply(float.is_integer).all() and column in COUNT_COLUMNS:
            frame[column] = values.astype("Int64")
        if str(frame[column].dtype) == "Int64":  # pandas prints their missing values <NA>
            frame[column] = frame[column].map(lambda v: "-" if v is pandas.NA else str(v))
    return frame.to_string(index=False, float_format=lambda v: f"{v:.4f}", na_rep="-")
