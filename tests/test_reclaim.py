"""``xpm-train gc`` (:mod:`xpm_train.reclaim`) on a real workspace: a study
(one complete, one pruned trial), a grid of two Learns (one streaming its
records), a failed Learn, an orphan job and an unused prepared folder."""

from __future__ import annotations

import fcntl
import json
import re
import shutil
from pathlib import Path

import pytest

from helpers import REPO, run_experiment, what_ran, xpm_train
from xpm_train import jobfolder
from xpm_train.reclaim.plan import LATEST, NOT_BEST, ORPHAN, PREPARED, RESUME, RUNNING, TRIAL, plan, size_of

pytestmark = pytest.mark.integration
PARAMS = REPO / "tests" / "gcplan" / "params.yaml"


def trials(workdir: Path) -> list[dict]:
    from xpm_train.tune.report import load_trials
    from xpm_train.tune.storage import journal_path, list_studies

    (name,) = list_studies(workdir)
    return load_trials(journal_path(workdir, name), name)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The workspace, its prepared root (the folders a grid Learn and its
    Evaluate stream from, one that no job uses) and the jobs by role."""
    root = tmp_path_factory.mktemp("gc")
    workdir, empty, prepared = root / "ws", root / "empty", root / "prepared"
    empty.mkdir()
    overrides = (f"empty_folder={empty}", f"prepared_root={prepared}")
    first = run_experiment(PARAMS, workdir, *overrides)
    assert "1 job(s) failed" in first.stdout + first.stderr, first.stderr[-3000:]
    extra = run_experiment(PARAMS, workdir, *overrides, "id=gc-extra", "extra=true")
    assert extra.returncode == 0, extra.stderr[-3000:]
    shutil.rmtree(workdir / "experiments" / "gc-extra")  # as experimaestro drops an old run: an orphan
    streamed = sorted(p.resolve() for p in prepared.iterdir())  # the Learn's and the Evaluate's
    assert len(streamed) == 2
    unused = prepared / "0123abcd"
    unused.mkdir()
    (unused / "header.json").write_text("{}")
    (unused / "inputs.npy").write_bytes(b"x" * 5000)
    complete, pruned = sorted(trials(workdir), key=lambda r: r["number"])
    assert (complete["state"], pruned["state"]) == ("COMPLETE", "PRUNED")
    learns = {p.name: p for p in (workdir / "jobs" / "xpm_train.learn.learn").iterdir()}
    tags = {h: json.loads((p / "tags.json").read_text()) for h, p in learns.items()}
    grid = {next(iter(t.values())).get("grid"): learns[h] for h, t in tags.items() if any("grid" in v for v in t.values())}
    (grid["failing"] / "checkpoints").mkdir()  # as a Learn failing after its first checkpoint leaves it
    (grid["failing"] / "checkpoints" / "last.pt").write_bytes(b"x" * 3000)
    return {"workdir": workdir, "prepared": prepared, "streamed": streamed, "unused": unused.resolve(),
            "complete": workdir / "jobs" / complete["job"], "pruned": workdir / "jobs" / pruned["job"],
            "grid": [grid[0.02], grid[0.04]], "failed": grid["failing"], "orphan": grid["extra"]}


def by_reason(reclaim) -> dict[str, set[Path]]:
    found: dict[str, set[Path]] = {}
    for item in reclaim.removals:
        assert item.bytes == size_of(item.path) > 0
        found.setdefault(item.reason, set()).add(item.path)
    return found


def test_the_dry_run_says_what_would_go_and_removes_nothing(built):
    workdir = built["workdir"]
    before, size = what_ran(workdir), size_of(workdir)
    result = xpm_train("gc", "--workdir", str(workdir), "-v")
    assert result.returncode == 0, result.stderr
    assert re.search(r"^orphan +1 +\d+", result.stdout, re.M) and "kept (latest run): " in result.stdout
    assert str(built["orphan"]) in result.stdout and "--apply" in result.stdout
    assert what_ran(workdir) == before and size_of(workdir) == size and built["unused"].exists()

    # By default a latest run's jobs stay: only the orphan and the unused prepared data
    default = by_reason(plan(workdir))
    assert default == {ORPHAN: {built["orphan"].resolve()}, PREPARED: {built["unused"]}}

    everything = by_reason(plan(workdir, include_latest=True))
    checkpoints = [f.resolve() / jobfolder.CHECKPOINTS for f in (built["complete"], *built["grid"])]
    assert everything[RESUME] == {c / name for c in checkpoints for name in ("last.pt", "last.pt.prev")
                                  if (c / name).exists()}
    assert everything[TRIAL] == {f.resolve() / jobfolder.CHECKPOINTS for f in (built["pruned"], built["failed"])}
    assert everything[PREPARED] == {built["unused"]}  # kept jobs stream from the others, and say so:
    evaluate = next((built["workdir"] / "jobs" / "xpm_train.evaluate.evaluate").iterdir())
    recorded = [Path(e["prepared"]).resolve() for job in (built["grid"][1], evaluate)
                for e in map(json.loads, (job / "events.jsonl").read_text().splitlines())
                if e["event"] in ("start", "data") and "prepared" in e]
    assert sorted(recorded) == built["streamed"]
    grid = built["grid"][0].resolve() / jobfolder.CHECKPOINTS  # JOB arguments: only their files
    assert by_reason(plan(workdir, include_latest=True, jobs=[built["grid"][0].name[:12]])) == {
        RESUME: {grid / "last.pt", grid / "last.pt.prev"}}
    best = by_reason(plan(workdir, keep_best=1, include_latest=True))
    assert best[NOT_BEST] == {built["pruned"].resolve()}  # the whole job, not its checkpoints too
    assert best[TRIAL] == {built["failed"].resolve() / jobfolder.CHECKPOINTS}


def test_a_running_job_and_a_running_plan_are_never_touched(built):
    workdir, grid = built["workdir"], built["grid"][0]
    with open(jobfolder.marker(grid, "lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as experimaestro while the job runs
        reclaim = plan(workdir, include_latest=True)
        assert not [r for r in reclaim.removals if grid.resolve() in r.path.parents]
        assert any(job.startswith(jobfolder.id_of(grid)) for job in reclaim.kept[RUNNING])
    with open(workdir / "experiments" / "gc-test" / "lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as experimaestro while the plan runs
        result = xpm_train("gc", "--workdir", str(workdir), "--include-latest")
        reclaim = plan(workdir, include_latest=True)
    assert "experiment 'gc-test' is running" in result.stdout, result.stdout
    plan_jobs = {f.resolve() for f in (built["complete"], built["pruned"], built["failed"], *built["grid"])}
    assert not [r for r in reclaim.removals if plan_jobs & {r.path, *r.path.parents}]  # its jobs stay
    assert ORPHAN not in {r.reason for r in reclaim.removals}  # and the orphans (a done one loses last.pt only)


def test_apply_frees_what_it_said_and_the_kept_jobs_still_work(built, tmp_path):
    from xpm_train import load, results

    workdir = tmp_path / "ws"
    shutil.copytree(built["workdir"], workdir, symlinks=True)
    prepared_size = size_of(built["prepared"])
    size = size_of(workdir) + prepared_size
    result = xpm_train("gc", "--workdir", str(workdir), "--include-latest", "--keep-best", "1", "--apply")
    assert result.returncode == 0, result.stderr
    freed = int(re.search(r"Removed \d+ item\(s\): (\d+) bytes", result.stdout).group(1))
    shown = int(re.search(r"^total +\d+ +(\d+)", result.stdout, re.M).group(1))
    assert freed == shown == size - size_of(workdir) - size_of(built["prepared"]) > 0
    jobs = workdir / "jobs" / "xpm_train.learn.learn"
    assert not (jobs / built["orphan"].name).exists() and not (jobs / built["pruned"].name).exists()
    assert sorted(p.resolve() for p in built["prepared"].iterdir()) == built["streamed"]  # nothing left aside
    assert not (workdir / ".gc-trash").exists()
    kept = jobs / built["grid"][0].name
    assert (kept / "checkpoints" / "best.pt").exists() and not (kept / "checkpoints" / "last.pt").exists()
    assert not (jobs / built["failed"].name / "checkpoints").exists()

    frame = results(workdir)
    assert set(frame["state"]) == {"done", "failed"} and len(frame) == 5  # complete trial, grid, evaluate, failed
    shown = xpm_train("show", kept.name[:12], "--workdir", str(workdir))
    assert shown.returncode == 0 and "state:  done" in shown.stdout, shown.stderr
    assert sum(p.numel() for p in load(kept.name, workdir).network.parameters()) > 0  # best.pt read
    exported = xpm_train("export", kept.name[:12], "--to", str(tmp_path / "out"), "--workdir", str(workdir))
    assert exported.returncode == 0, exported.stderr

    # Submitted again, a removed job runs again; the kept ones do not
    before = what_ran(workdir)
    again = run_experiment(PARAMS, workdir, f"prepared_root={built['prepared']}", "id=gc-extra", "extra=true")
    assert again.returncode == 0, again.stderr[-3000:]
    after = what_ran(workdir)
    assert {k: v for k, v in after.items() if k in before} == before
    assert set(after) - set(before) == {jobfolder.id_of(built["orphan"])}


def test_bad_input_is_one_line(built, tmp_path):
    for args, message in [(("--workdir", str(tmp_path)), "is not an experimaestro workspace"),
                          (("nosuchjob", "--workdir", str(built["workdir"])), "no job matches 'nosuchjob'"),
                          (("--keep-best", "0", "--workdir", str(built["workdir"])), "k >= 1")]:
        result = xpm_train("gc", *args)
        assert result.returncode == 1 and message in result.stderr.splitlines()[0], result.stderr


def test_the_mlflow_runs_of_removed_jobs_are_marked_deleted(tmp_path):
    from xpm_train.reclaim.apply import delete_runs
    from xpm_train.reclaim.plan import Removal
    from xpm_train.tracking import store
    from xpm_train.tracking.identity import JOB_ID_TAG

    workspace = tmp_path / "ws"
    (workspace / "jobs").mkdir(parents=True)
    uri = store.workspace_uri(workspace)
    client = store.client(uri)
    experiment = store.ensure_experiment(uri, "gc")
    gone = client.create_run(experiment, tags={JOB_ID_TAG: "t.learn/aaa"}).info.run_id
    stays = client.create_run(experiment, tags={JOB_ID_TAG: "t.learn/bbb"}).info.run_id
    removed = Removal(workspace / "jobs" / "t.learn" / "aaa", 1, ORPHAN, "t.learn/aaa", "http://127.0.0.1:9")
    notes = delete_runs(workspace, [removed])
    assert client.get_run(gone).info.lifecycle_stage == "deleted"
    assert client.get_run(stays).info.lifecycle_stage == "active"
    assert any(note.endswith("1 run(s) of removed jobs marked deleted") for note in notes), notes
    assert any("http://127.0.0.1:9 could not be reached" in note for note in notes), notes


def test_a_folder_on_another_file_system_is_deleted_in_place(tmp_path, monkeypatch):
    from xpm_train.reclaim import apply

    folder = tmp_path / "prepared" / "abc"
    folder.mkdir(parents=True)
    (folder / "inputs.npy").write_bytes(b"x" * 10)

    def cross_device(source, target):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(apply.os, "rename", cross_device)
    apply.discard(folder, tmp_path / "elsewhere")
    assert not folder.exists() and not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize("epochs, horizon, removed", [(2, 6, False), (6, 6, True), (2, None, True)])
def test_a_learn_short_of_its_horizon_keeps_what_a_longer_budget_continues_from(tmp_path, epochs, horizon, removed):
    from xpm_train.reclaim.plan import heavy_files

    folder = tmp_path / "jobs" / "xpm_train.learn.learn" / "abc"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "learn.done").write_text("")
    (folder / "checkpoints" / "last.pt").write_bytes(b"x")
    (folder / "checkpoints" / "best.pt").write_bytes(b"x")
    summary = {"score": 1.0, "epochs": epochs, "pruned": False, **({"horizon": horizon} if horizon else {})}
    (folder / "final.json").write_text(json.dumps(summary))
    assert heavy_files(folder) == (([folder / "checkpoints" / "last.pt"], RESUME) if removed else ([], ""))
