"""Jobs ready together go out as one Slurm job array: batching, splitting and
refusals in-process (a fake ``sbatch``), then a grid of 200 jobs on the real
Slurm (``XPM_TRAIN_SLURM=1``), run once by one module fixture."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xpm_train import jobfolder
from xpm_train.launchers.kinds.slurm import SbatchOptions
from xpm_train.launchers.slurmarray import ArraySlurmLauncher
from xpm_train.launchers.slurmqueue import array_indices, sacct_states

SPEC = "duration=10m & cpu(cores=1, mem=100M)"
TASK = "xpm_train.launchers.testing.square"


def test_sacct_rows_of_array_tasks():
    """A task's own row, and a row of tasks not started, tell each task's state."""
    assert array_indices("0,2-4,7") == [0, 2, 3, 4, 7]
    out = "12_1|COMPLETED|0:0\n12_[0,2-3%2]|CANCELLED by 0|0:0\n13|RUNNING|0:0\n"
    assert sacct_states(out) == {"12_1": "COMPLETED", "12_0": "CANCELLED by 0",
                                 "12_2": "CANCELLED by 0", "12_3": "CANCELLED by 0",
                                 "13": "RUNNING"}


def test_the_queue_check_follows_array_tasks(tmp_path):
    """``squeue`` shows pending tasks as one line unless ``-r``; ``sacct`` is asked
    about whole arrays: a pending task stays watched, a task of an array cancelled
    whole ends with sacct's state, one removed alone while pending ends at the
    second check, saying so, whether sacct has no record of it or still lists it
    in the array's pending row (slurmdbd late: seen on the real Slurm)."""
    from xpm_train.launchers.slurmstate import SACCT_TRIES, SlurmWatcher, Watched

    binpath = tmp_path / "bin"
    binpath.mkdir()
    (binpath / "squeue").write_text('#!/bin/sh\ncase "$*" in *-r*) echo 7_1; echo 7_2 ;; '
                                    '*) echo "7_[1-2]" ;; esac\n')
    (binpath / "sacct").write_text("#!/bin/sh\necho '7_0|COMPLETED|0:0'\necho '7_[1-2,4]|PENDING|0:0'\n"
                                   "echo '8_[0-1]|CANCELLED by 0|0:0'\n")
    for name in ("squeue", "sacct"):
        (binpath / name).chmod(0o755)
    watcher = SlurmWatcher(str(binpath))
    jobs = {}
    for jobid in ("7_1", "7_3", "7_4", "8_0"):
        folder = tmp_path / "ws" / "jobs" / TASK / jobid
        folder.mkdir(parents=True)
        jobs[jobid] = Watched(jobid, folder, None)
    ended = watcher.check_queue(list(jobs.values()))
    assert set(ended) == {"8_0"} and ended["8_0"].slurm_state == "CANCELLED by 0"
    ended = watcher.check_queue([jobs["7_1"], jobs["7_3"], jobs["7_4"]])
    assert set(ended) == {"7_3", "7_4"}, ended
    assert all("removed from array 7 while pending" in e.slurm_state for e in ended.values()), ended
    for _ in range(SACCT_TRIES):
        assert watcher.check_queue([jobs["7_1"]]) == {}
    failed = json.loads(jobfolder.marker(jobs["8_0"].folder, "failed").read_text())
    assert failed == {"code": 1, "reason": "cancelled", "message": "Slurm job 8_0: CANCELLED by 0 (sacct)"}


def fake_slurm(folder: Path, max_array_size: int = 3, refuse: str = "") -> Path:
    """A binpath whose ``sbatch`` records each call (and the script's ``--array``
    line) and prints job IDs 100, 101, ...; ``scontrol`` tells ``max_array_size``."""
    folder.mkdir(parents=True)
    sbatch = folder / "sbatch"
    if refuse:
        sbatch.write_text(f"#!/bin/sh\necho 'sbatch: error: {refuse}' >&2\nexit 1\n")
    else:
        sbatch.write_text('#!/bin/sh\nn=$(cat "$0.count" 2>/dev/null || echo 100)\n'
                          'echo $((n + 1)) > "$0.count"\n'
                          'echo "$(grep "^#SBATCH --array" "$2" || echo "$2")" >> "$0.calls"\n'
                          'echo "$n"\n')
    (folder / "scontrol").write_text(f"#!/bin/sh\necho 'MaxArraySize            = {max_array_size}'\n")
    for name in ("sbatch", "scontrol"):
        (folder / name).chmod(0o755)
    return folder


def job_script(workspace: Path, index: int) -> Path:
    folder = workspace / "jobs" / TASK / f"{index:064x}"
    folder.mkdir(parents=True)
    script = folder / "square.sh"
    script.write_text("#!/bin/sh\nsrun ./square.py\n")
    return script


def start(launcher, script: Path):
    builder = launcher.processbuilder()
    builder.command = [str(script)]
    return builder.start(True)


def test_jobs_ready_together_go_out_as_arrays_of_the_sites_size(tmp_path, caplog):
    """7 jobs within the window: arrays of 3, 3 and 1 (the site's MaxArraySize is 3),
    said in one log line, ``%2`` from max_jobs; a job ready later goes out alone."""
    binpath = fake_slurm(tmp_path / "bin")
    launcher = ArraySlurmLauncher("grid", max_jobs=2, binpath=str(binpath),
                                  options=SbatchOptions(("--partition=p", "--time=10:00")))
    scripts = [job_script(tmp_path / "ws", index) for index in range(8)]

    async def main():
        together = [start(launcher, script) for script in scripts[:7]]
        ids = await asyncio.gather(*(process.submitted for process in together))
        alone = start(launcher, scripts[7])
        return ids, await alone.submitted

    with caplog.at_level(logging.INFO, "xpm_train.launchers"):
        ids, alone = asyncio.run(main())
    assert ids == ["100_0", "100_1", "100_2", "101_0", "101_1", "101_2", "102_0"] and alone == "103"
    assert (binpath / "sbatch.calls").read_text().splitlines() == [
        "#SBATCH --array=0-2%2", "#SBATCH --array=0-2%2", "#SBATCH --array=0-0", str(scripts[7])]
    split = [r.getMessage() for r in caplog.records if "go out as" in r.getMessage()]
    assert split == ["Slurm launcher 'grid': 7 jobs ready together go out as 3 arrays "
                     "(the site's MaxArraySize is 3)"]
    # each job's .pid names its task; the array's task i runs job i's own script in its folder
    assert json.loads(jobfolder.marker(scripts[4].parent, "pid").read_text())["pid"] == "101_1"
    # the first array of this workspace (folders end in a counter of this process's arrays)
    first = min((tmp_path / "ws" / "slurm-arrays").iterdir(), key=lambda f: int(f.name.rsplit("-", 1)[1]))
    text = (first / "array.sh").read_text()
    assert f"1) cd {scripts[1].parent} && exec /bin/sh ./square.sh ;;" in text
    assert "#SBATCH --partition=p" in text and f"#SBATCH --error={first}/%a.err" in text
    assert (first / "2.err").readlink() == scripts[2].parent / "square.err"


def test_a_refused_array_fails_each_job_with_the_reason(tmp_path):
    """sbatch's refusal of an array: each job fails, its ``.failed`` marker says why."""
    binpath = fake_slurm(tmp_path / "bin", refuse="QOSMaxSubmitJobPerUserLimit")
    launcher = ArraySlurmLauncher("grid", max_submitted=10, binpath=str(binpath))
    scripts = [job_script(tmp_path / "ws", index) for index in range(2)]

    async def main():
        processes = [start(launcher, script) for script in scripts]
        return [await process.aio_wait() for process in processes]

    assert asyncio.run(main()) == [1, 1]
    for script in scripts:
        failed = json.loads(jobfolder.marker(script.parent, "failed").read_text())
        assert "QOSMaxSubmitJobPerUserLimit was hit" in failed["message"]
        assert "set max_submitted (now 10)" in failed["message"]


# --- on the real Slurm: one grid of 200 trivial jobs, run once for the tests below

GRID = 200
SITE_LIMIT = 101
"""The site's MaxArraySize of the cluster started for the module: 200 jobs, 2 arrays"""
KEPT = 50
"""Tasks of the first array not cancelled while pending (the CI's budget: the others never run)"""
EARLIER = 1000
"""``x`` of the first of the 2 jobs of the earlier plan (their array is held pending)"""


class Recorder(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


def slurm_ids(jobs, seen: dict, old: set = frozenset()) -> dict:
    """``seen`` updated with job -> its Slurm ID (not in ``old``) from the ``.pid``
    files that name one (a job's ``.pid`` goes when it ends: keep every one seen)."""
    for job in jobs:
        try:
            jobid = json.loads(job.pidpath.read_text())["pid"]
        except (OSError, ValueError, KeyError):
            continue
        if jobid and jobid not in old:
            seen[job] = jobid
    return seen


def wait_until(condition, what: str, timeout: float = 90):
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return result


def submit_grid(launcher):
    from xpm_train.launchers.testing import RecordDevices, Square

    hold = RecordDevices.C(index=0, hold=60).submit(launcher=launcher)  # cancelled while it runs
    return [hold] + [Square.C(x=x).submit(launcher=launcher) for x in range(GRID - 1)]


def earlier_plan(workdir: str) -> None:
    """A plan (its own process) that submits 2 jobs as an array held pending
    (launcher ``held``: ``sbatch --hold``), prints their Slurm IDs and dies
    (``os._exit``) as a killed plan would, its array still pending."""
    from experimaestro import experiment
    from xpm_train.launchers import find_launcher
    from xpm_train.launchers.testing import Square

    with experiment(Path(workdir), "earlier", no_environmental_impact=True):
        held = find_launcher(SPEC, tags=["held"])
        jobs = [Square.C(x=EARLIER + i).submit(launcher=held).__xpm__.job for i in range(2)]
        ids = wait_until(lambda: seen if len(seen := slurm_ids(jobs, {})) == 2 else None,
                         "the earlier plan's submission")
        print(json.dumps({str(job.path): jobid for job, jobid in ids.items()}), flush=True)
        os._exit(0)


def start_earlier_plan(workdir: Path) -> subprocess.Popen:
    tests = Path(__file__).resolve().parent
    code = (f"import sys; sys.path[:0] = [{str(tests)!r}, {str(tests.parent)!r}, {str(tests.parent.parent)!r}]; "
            f"import test_slurmarray; test_slurmarray.earlier_plan({str(workdir)!r})")
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """Run 1: 200 jobs (arrays A of 101 and B of 99); B is cancelled whole while
    pending, A's tasks from KEPT on one by one while pending, and A's first task
    (a 60 s job) while running. Run 2 (a new
    scheduler, as a new process): the same plan, whose arrays are cancelled once
    submitted, and a chain of 2 jobs on a launcher polling Slurm every 60 s
    (its own ``binpath``, a link: its own watcher), and the 2 jobs of an
    earlier plan (:func:`earlier_plan`, started once run 1 was read) whose array
    is still pending when run 2 starts, released once run 2 submitted its own."""
    from experimaestro import experiment
    from helpers import reset_scheduler
    from slurmhelpers import Shape, cluster_shape
    from xpm_train.launchers import find_launcher, tokens
    from xpm_train.launchers.testing import RecordDevices, Square

    root = tmp_path_factory.mktemp("grid").resolve()
    recorder, logger = Recorder(), logging.getLogger("xpm_train.launchers")
    level = logger.level
    logger.addHandler(recorder)
    logger.setLevel(logging.INFO)  # the sbatch lines
    started = time.monotonic()
    with cluster_shape(Shape(cpus=12, extra=f"MaxArraySize={SITE_LIMIT}")) as cluster, \
            pytest.MonkeyPatch.context() as patch:
        (root / "bin").symlink_to(cluster.binpath)  # the chain's launcher: its own watcher
        chain = cluster.launcher_yaml("chain", poll_interval=60, tags=("chain",)).replace(
            f"binpath: {cluster.binpath}", f"binpath: {root / 'bin'}")
        held = cluster.launcher_yaml("held", poll_interval=1, tags=("held",), extra="sbatch: [--hold]")
        (root / "launchers.yaml").write_text("launchers:\n" + cluster.launcher_yaml("slurm", poll_interval=1)
                                             + chain + held)
        patch.setenv("XPM_TRAIN_LAUNCHERS", str(root / "launchers.yaml"))
        patch.setenv("XPM_TRAIN_TOKENS_DIR", str(root / "tokens"))
        tokens._tokens.clear()
        workdir = root / "xp"
        shaped = time.monotonic()

        reset_scheduler()
        with experiment(workdir, "grid", no_environmental_impact=True) as xp:
            tasks = submit_grid(find_launcher(SPEC, tags=["slurm"]))
            jobs = [task.__xpm__.job for task in tasks]
            first_ids = {}
            wait_until(lambda: len(slurm_ids(jobs, first_ids)) == GRID, "the grid's submission")
            masters = sorted({jobid.split("_")[0] for jobid in first_ids.values()}, key=int)
            subprocess.run(["scancel", masters[-1]], check=True, timeout=30)  # B, pending
            subprocess.run(["scancel", f"{masters[0]}_[{KEPT}-{SITE_LIMIT - 1}]"], check=True, timeout=30)
            hold = jobs[0]
            wait_until(lambda: (hold.path / "pid").exists(), "the 60 s job's start")
            subprocess.run(["scancel", first_ids[hold]], check=True, timeout=30)
            xp.wait()
        first_states = {job: jobfolder.state(job.path) for job in jobs}
        first_failed = {job: json.loads(job.failedpath.read_text()) for job in jobs
                        if first_states[job] == "failed"}
        # A's tasks that ran, B; slurmdbd records B (cancelled pending) late on a loaded host
        # A's row of the tasks removed while pending can make up the count before
        # slurmdbd recorded B (cancelled whole while pending): wait for both arrays
        deadline = time.monotonic() + 30  # or never: see test_a_grid_of_200_jobs_goes_out_in_two_sbatch_calls
        while True:
            first_sacct = cluster.sacct_jobs(workdir, count=KEPT + 1, settle=120)
            if {r["id"].split("_")[0] for r in first_sacct} >= set(masters) or time.monotonic() > deadline:
                break
            time.sleep(1)
        earlier_plan = start_earlier_plan(workdir)  # after: sacct_jobs counts every job of workdir
        out, _ = earlier_plan.communicate(timeout=120)
        assert earlier_plan.returncode == 0, out
        earlier_ids = json.loads(out.strip().splitlines()[-1])
        earlier_master = {jobid.split("_")[0] for jobid in earlier_ids.values()}.pop()
        done_before = {job: job.donepath.stat().st_mtime_ns for job in jobs if job.donepath.exists()}
        first_done = time.monotonic()

        reset_scheduler()
        with experiment(workdir, "grid", no_environmental_impact=True) as xp:
            learn = RecordDevices.C(index=1, hold=1).submit(launcher=find_launcher(SPEC, tags=["chain"]))
            evaluate = RecordDevices.C(index=2, hold=0)
            evaluate.add_dependencies(learn.__xpm__.dependency())
            evaluate.submit(launcher=find_launcher(SPEC, tags=["chain"]))
            again = [task.__xpm__.job for task in submit_grid(find_launcher(SPEC, tags=["slurm"]))]
            earlier = [Square.C(x=EARLIER + i).submit(launcher=find_launcher(SPEC, tags=["slurm"])).__xpm__.job
                       for i in range(2)]
            missing = [job for job in again if not job.donepath.exists()]
            old = set(first_ids.values())
            earlier_again = {}  # an earlier job submitted again by run 2 (it must wait for it)

            second_ids = {}
            wait_until(lambda: all(job in slurm_ids(again, second_ids, old) for job in missing),
                       "the re-run's submission")
            deadline = time.monotonic() + 1.5  # a job resubmitted by mistake: in the same batch
            while time.monotonic() < deadline:
                slurm_ids(again, second_ids, old)
                slurm_ids(earlier, earlier_again, set(earlier_ids.values()))
                time.sleep(0.05)
            for master in sorted({jobid.split("_")[0] for jobid in second_ids.values()}):
                subprocess.run(["scancel", master], check=True, timeout=30)
            subprocess.run(["scontrol", "release", earlier_master], check=True, timeout=30)
            xp.wait()
            slurm_ids(earlier, earlier_again, set(earlier_ids.values()))
        done_after = {job: job.donepath.stat().st_mtime_ns for job in again if job.donepath.exists()}
        second_done = time.monotonic()
        chain = (learn.__xpm__.job, evaluate.__xpm__.job)
        earlier_states = {str(job.path): jobfolder.state(job.path) for job in earlier}
    logger.removeHandler(recorder)
    logger.setLevel(level)
    print("sacct of run 1 (JobID|JobName|State):", *(f"{r['id']}|{r['name']}|{r['state']}" for r in
                                                     first_sacct[:3] + first_sacct[-3:]), sep="\n  ")
    print(f"grid fixture: shape {shaped - started:.0f}s, run 1 {first_done - shaped:.0f}s, "
          f"run 2 and chain {second_done - first_done:.0f}s, back {time.monotonic() - second_done:.0f}s")
    return {"jobs": jobs, "first_ids": first_ids, "masters": masters, "first_states": first_states,
            "first_failed": first_failed,
            "first_sacct": first_sacct, "done_before": done_before, "second_ids": second_ids,
            "done_after": done_after, "chain": chain, "logs": recorder.records, "workdir": workdir,
            "earlier_ids": earlier_ids, "earlier_again": earlier_again, "earlier_states": earlier_states}


@pytest.mark.slurm
@pytest.mark.integration
@pytest.mark.timeout(400)
def test_a_grid_of_200_jobs_goes_out_in_two_sbatch_calls(grid):
    """The site allows arrays of 101: 2 arrays (sacct lists 2 job IDs), said in one log line."""
    submitted = {jobid.split("_")[0] for jobid in grid["first_ids"].values()}
    assert submitted == set(grid["masters"]) and len(submitted) == 2
    # sacct counts the submissions: array A always; array B, cancelled whole a moment
    # after its submission while pending, only when slurmdbd recorded its end (seen
    # in the fresh-clone CI: Slurm 22.05 kept B's row PENDING and left it out of the
    # listing); never a job ID the plan did not submit
    masters = {row["id"].split("_")[0] for row in grid["first_sacct"]}
    assert grid["masters"][0] in masters and masters <= submitted, grid["first_sacct"][:5]
    sizes = sorted(sum(1 for jobid in grid["first_ids"].values() if jobid.startswith(f"{m}_"))
                   for m in submitted)
    assert sizes == [GRID - SITE_LIMIT, SITE_LIMIT]
    split = [r.getMessage() for r in grid["logs"] if "go out as" in r.getMessage()]
    assert split[0] == (f"Slurm launcher 'slurm': {GRID} jobs ready together go out as 2 arrays "
                        f"(the site's MaxArraySize is {SITE_LIMIT})"), split


@pytest.mark.slurm
@pytest.mark.integration
@pytest.mark.timeout(400)
def test_each_task_ran_its_own_job_in_its_folder(grid):
    """Array A's tasks not cancelled are done; each wrote its result, and its
    task's log is in its folder."""
    first, second = grid["masters"]
    done = [job for job, state in grid["first_states"].items() if state == "done"]
    assert sorted(grid["first_ids"][job] for job in done) == sorted(
        f"{first}_{index}" for index in range(1, KEPT))
    for job in done[:5]:
        result = json.loads((job.path / "result.json").read_text())
        assert result["square"] == result["x"] ** 2
        assert "Task ended successfully" in job.stderr.read_text()


@pytest.mark.slurm
@pytest.mark.integration
@pytest.mark.timeout(400)
def test_cancelled_array_tasks_fail_with_slurms_state(grid):
    """Each cancelled job fails, cancelled: a pending array cancelled whole
    (``scancel 123``) with sacct's state; pending tasks cancelled one by one
    (``scancel 122_[50-100]``: Slurm keeps no record of them) saying so; a
    running task (``scancel 122_0``), stopped by the SIGTERM, with Slurm's
    state, sacct listing it CANCELLED."""
    hold, *_ = grid["jobs"]
    first, second = grid["masters"]
    ids, markers = grid["first_ids"], grid["first_failed"]
    assert {ids[job] for job in markers} == {f"{first}_{index}" for index in (0, *range(KEPT, SITE_LIMIT))} | {
        f"{second}_{index}" for index in range(GRID - SITE_LIMIT)}
    assert all(marker["reason"] == "cancelled" for marker in markers.values()), markers
    for job, marker in markers.items():
        if ids[job].startswith(f"{second}_"):
            # sacct's word; or, when slurmdbd kept B's row PENDING (cancelled whole a
            # moment after its submission: seen in the fresh-clone CI), the watcher's
            # own, as for a task removed while pending
            assert (marker["message"] == f"Slurm job {ids[job]}: CANCELLED by 0 (sacct)"
                    or marker["message"].startswith(f"Slurm job {ids[job]}: CANCELLED (removed from "
                                                    f"array {second} while pending")), marker
        elif job is not hold:
            assert marker["message"].startswith(f"Slurm job {ids[job]}: CANCELLED (removed from "
                                                f"array {first} while pending")
    # it stopped at scancel's SIGTERM; the watcher asked Slurm why (issue 28: a job
    # stopped at a signal is settled with Slurm, not resubmitted)
    assert markers[hold]["message"].startswith(f"Slurm job {ids[hold]}: CANCELLED by 0 on "), markers[hold]
    assert f"{first}_0" in {row["id"] for row in grid["first_sacct"] if row["state"].startswith("CANCELLED")}


@pytest.mark.slurm
@pytest.mark.integration
@pytest.mark.timeout(400)
def test_a_rerun_submits_exactly_the_missing_jobs(grid):
    """Run again, the plan submits the 151 jobs not done, as arrays (2, or 3 when the
    scheduler of a loaded host starts one of them more than 0.5 s apart from the
    others); the done ones are not run again."""
    resubmitted = {job.path for job in grid["second_ids"]}
    missing = {job.path for job, state in grid["first_states"].items() if state != "done"}
    assert resubmitted == missing and len(missing) == GRID - KEPT + 1
    assert len({jobid.split("_")[0] for jobid in grid["second_ids"].values()}) in (2, 3)
    before = {job.path: mtime for job, mtime in grid["done_before"].items()}
    after = {job.path: mtime for job, mtime in grid["done_after"].items()}
    assert {path: after.get(path) for path in before} == before


@pytest.mark.slurm
@pytest.mark.integration
@pytest.mark.timeout(400)
def test_a_dependent_is_submitted_within_2s_of_its_dependencys_end(grid):
    """``poll_interval: 60``: the dependent's sbatch comes from the marker, not from sacct."""
    learn, evaluate = grid["chain"]
    ended = learn.donepath.stat().st_mtime
    submitted = [r.created for r in grid["logs"]
                 if "sbatch command" in r.getMessage() and str(evaluate.path) in r.getMessage()]
    assert len(submitted) == 1 and evaluate.donepath.exists()
    assert 0 < submitted[0] - ended < 2, f"submitted {submitted[0] - ended:.2f}s after the end"


@pytest.mark.slurm
@pytest.mark.integration
@pytest.mark.timeout(400)
def test_a_later_plan_waits_for_a_pending_array_task_of_an_earlier_plan(grid):
    """An earlier plan submitted 2 jobs as an array and died while it was pending
    (``sbatch --hold``): run 2 of the same workspace follows its tasks (experimaestro
    alone cannot: ``sacct`` lists them as one row ``123_[0-1]``) instead of
    submitting them again, and they end done once released."""
    ids = grid["earlier_ids"]
    assert len(ids) == 2 and all("_" in jobid for jobid in ids.values()), ids
    assert grid["earlier_again"] == {}, f"submitted again: {grid['earlier_again']}"
    assert grid["earlier_states"] == {path: "done" for path in ids}, grid["earlier_states"]
    for path in ids:
        assert json.loads((Path(path) / "result.json").read_text())["square"] >= EARLIER ** 2
