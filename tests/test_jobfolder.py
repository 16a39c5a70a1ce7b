"""The job folder: IDs from configs, state from experimaestro's marker files, paths."""

from pathlib import Path

from xpm_train import Adam, Digits, Learn, MLP, jobfolder


def test_job_id_is_the_folder_experimaestro_uses():
    learn = Learn.C(model=MLP.C(), data=Digits.C(split="train"), optimizer=Adam.C())
    job = jobfolder.job_id(learn)
    assert job == f"xpm_train.learn.learn/{learn.__xpm__.identifier.all.hex()}"
    folder = jobfolder.job_path(Path("ws"), job)
    assert folder == Path("ws/jobs") / job and jobfolder.id_of(folder) == job
    assert jobfolder.workspace_of(folder) == Path("ws")
    learn.device = "cpu"  # Meta: the same job
    assert jobfolder.job_id(learn) == job


def test_state_reads_the_task_named_markers(tmp_path):
    folder = tmp_path / "jobs" / "mypackage.mytrain.train" / "ab12"
    folder.mkdir(parents=True)
    assert jobfolder.state(folder) == "unknown" and jobfolder.finished_state(folder) is None
    (folder / "params.json").write_text("{}")
    assert jobfolder.state(folder) == "waiting"
    (folder / "train.pid").write_text("1")
    assert jobfolder.state(folder) == "running"
    (folder / "train.failed").write_text("")
    assert jobfolder.state(folder) == jobfolder.finished_state(folder) == "failed"
    assert not jobfolder.is_done(folder)
    (folder / "other.done").write_text("")  # another task's marker name: not this job's
    assert not jobfolder.is_done(folder)
    (folder / "train.failed").unlink()
    (folder / "train.done").write_text("")
    assert jobfolder.is_done(folder) and jobfolder.state(folder) == "done"
    info = jobfolder.job_info(folder)
    assert (info.id, info.name, info.state) == ("mypackage.mytrain.train/ab12", "train", "done")
    assert jobfolder.all_jobs(tmp_path) == [folder]
