"""A study under random kills (issue 28 item 4): a 30-trial study (tests/tune/plan:
tiny MLPs on synthetic data, 2 epochs, 2 trials at a time, MLflow tracking in
the workspace store) runs while a seeded harness (study_chaos.py) SIGKILLs,
at random moments, the plan's process group (then starts the plan again),
trial jobs (the training process or the client experimaestro waits on), the
MLflow forwarder and the fork server; then the plan is run once more, clean.

Checked in each seed's workspace: Optuna's own client sees exactly 30
finished trials of 30 distinct configurations, each its own job; no job
trained twice from scratch (its events and metrics.jsonl); every ended job's
metrics are in MLflow (MLflow's own client) with the values of its
metrics.jsonl; every checkpoint loads; no process of the study is left once
the forwarder and the fork server have been idle for their delay.

The three seeds run side by side (each its own workspace, servers folder and
MLflow store) in one module-scoped fixture. A failure names its seed:
``XPM_TRAIN_CHAOS_SEEDS=<seed> pytest tests/reliability/test_study_chaos.py``
replays its kills.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import signal
from pathlib import Path

import pytest
from study_chaos import (EXTRA_JOB_KILLS, KINDS, LEARN, N_TRIALS, Chaos, optuna_trials, ours, read_lines,
                         run_seed, store_template)

pytestmark = pytest.mark.integration
SEEDS = [int(seed) for seed in os.environ.get("XPM_TRAIN_CHAOS_SEEDS", "1,2,3").split(",")]


@pytest.fixture(scope="module")
def studies(tmp_path_factory) -> list[Chaos]:
    template = store_template(tmp_path_factory.mktemp("store"))
    folders = [tmp_path_factory.mktemp(f"chaos{seed}") for seed in SEEDS]
    try:
        with concurrent.futures.ThreadPoolExecutor(len(SEEDS)) as pool:
            runs = [pool.submit(run_seed, seed, folder, template) for seed, folder in zip(SEEDS, folders)]
            yield [run.result() for run in runs]
    finally:  # whatever failed, no process of these studies outlives the module
        for folder in folders:
            for pid in ours(folder / "servers"):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def job_folders(chaos: Chaos, task: str = "*") -> list[Path]:
    return sorted(path for path in (chaos.workdir / "jobs").glob(f"{task}/*") if path.is_dir())


def test_every_kind_of_kill_happened_and_the_clean_run_trains_nothing(studies):
    for chaos in studies:
        killed = {line.split()[1] for line in chaos.kills}
        assert killed == set(KINDS), f"not every kind was killed: {chaos.where()}"
        final = chaos.final
        assert final.returncode == 0, f"{chaos.where()}\n{final.stdout[-2000:]}{final.stderr[-3000:]}"
        assert "LAUNCHED 0" in final.stdout, f"the clean run launched trials: {chaos.where()}\n{final.stdout[-2000:]}"


def test_optuna_sees_30_finished_trials_of_30_distinct_configurations(studies):
    for chaos in studies:
        trials = optuna_trials(chaos.workdir)
        states = sorted(t.state.name for t in trials)
        assert len(trials) == N_TRIALS and all(t.state.is_finished() for t in trials), \
            f"{states}: {chaos.where()}"
        configurations = {json.dumps(t.params, sort_keys=True) for t in trials}
        assert len(configurations) == N_TRIALS, f"{len(configurations)} distinct configurations: {chaos.where()}"
        jobs = {t.user_attrs.get("job") for t in trials}
        assert len(jobs) == N_TRIALS and None not in jobs, f"trials share jobs: {chaos.where()}"


def test_no_job_trained_twice_from_scratch(studies):
    for chaos in studies:
        for folder in job_folders(chaos, LEARN):
            events = read_lines(folder / "events.jsonl")
            starts = [e for e in events if e.get("event") == "start"]
            assert len(starts) <= 1, f"{folder.name} started {len(starts)} times: {chaos.where()}"
            for resume in (e for e in events if e.get("event") == "resume"):
                assert resume.get("step", 0) > 0, f"{folder.name} resumed from nothing: {resume}, {chaos.where()}"
            # the first epoch's validation is logged once, or again only by a run resumed inside that epoch
            first = [r for r in read_lines(folder / "metrics.jsonl") if r.get("split") == "val" and r["epoch"] == 0]
            redone = [e for e in events if e.get("event") == "resume" and e.get("epoch") == 0]
            assert len(first) <= 1 + len(redone), f"{folder.name} trained epoch 0 twice: {chaos.where()}"


def test_every_tracked_jobs_metrics_are_in_mlflow(studies):
    """Every job that tracks to MLflow (its ``tracking`` event; the plan's
    Evaluate does not), done or killed: its run holds each point of its
    metrics.jsonl, with the value that file keeps; a done job's run is FINISHED."""
    from mlflow import MlflowClient

    from xpm_train.jobfolder import finished_state, id_of
    from xpm_train.metrics import read_metrics
    from xpm_train.tracking import store
    from xpm_train.tracking.runs import metric_records

    for chaos in studies:
        client = MlflowClient(tracking_uri=store.workspace_uri(chaos.workdir))
        experiment = client.get_experiment_by_name("tune-test").experiment_id
        checked = 0
        for folder in job_folders(chaos):
            if not any(e.get("event") == "tracking" for e in read_lines(folder / "events.jsonl")):
                assert folder.parent.name != LEARN or not (folder / "metrics.jsonl").exists(), \
                    f"{folder} trained untracked: {chaos.where()}"
                continue
            job, state = id_of(folder), finished_state(folder)
            runs = client.search_runs([experiment], filter_string=f"tags.`xpm.job_id` = '{job}'")
            assert len(runs) == 1, f"{len(runs)} MLflow runs for {job} ({state}): {chaos.where()}"
            (run,) = runs
            points = read_metrics(folder / "metrics.jsonl") if (folder / "metrics.jsonl").exists() else []
            expected = {(key, step): value for key, value, step, _ in metric_records(points)}
            logged = {(m.key, m.step): m.value for key in {key for key, _ in expected}
                      for m in client.get_metric_history(run.info.run_id, key)}
            missing = sorted(set(expected) - set(logged))
            assert not missing, f"{job} ({state}): {len(missing)} points not in MLflow, e.g. {missing[:3]}: {chaos.where()}"
            differ = sorted(k for k in expected if logged[k] != pytest.approx(expected[k]))
            assert not differ, f"{job} ({state}): MLflow has other values at {differ[:3]}: {chaos.where()}"
            if state == "done":
                assert run.info.status == "FINISHED", f"{job} done, its run {run.info.status}: {chaos.where()}"
            checked += 1
        assert checked >= N_TRIALS - EXTRA_JOB_KILLS - 1, f"{checked} jobs checked: {chaos.where()}"


def test_no_checkpoint_is_corrupt(studies):
    from xpm_train import checkpoint

    for chaos in studies:
        files = [path for folder in job_folders(chaos) for path in (folder / "checkpoints").glob("*")
                 if path.name.endswith((".pt", ".pt.prev"))]
        assert files, chaos.where()
        for path in files:
            try:
                checkpoint.load(path)
            except checkpoint.CorruptCheckpoint as error:
                pytest.fail(f"{error}: {chaos.where()}")


def test_no_process_of_the_study_is_left_over(studies):
    for chaos in studies:
        assert not chaos.leftovers, f"left over: {chaos.leftovers}: {chaos.where()}"
