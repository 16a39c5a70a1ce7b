"""``xpm-train reproduce``: a done job's exact config run again in another
workspace, compared bit for bit (the tiny plan of tests/provhelpers.py, run once
per session; the reproduction of a Tune trial is in tests/tune/test_tune_plan.py)."""

from __future__ import annotations

import json

import pytest

from helpers import what_ran, xpm_train
from provhelpers import learn_folders

pytestmark = pytest.mark.integration


def test_a_learn_reproduces_bit_identically_on_the_cpu(provenance_plan, tmp_path):
    folder, workdir = provenance_plan
    job = learn_folders(workdir)[0]
    before = what_ran(workdir)
    result = xpm_train("reproduce", job.name[:12], "--workdir", str(workdir), "--into", str(tmp_path / "copy"),
                       timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0] == "reproduced: bit-identical weights (4 tensors) and metrics", result.stdout
    copy = tmp_path / "copy" / "jobs" / job.parent.name / job.name  # the same job ID
    assert f"copy:     {copy}" in lines
    assert "environment differs" not in result.stdout  # same code, packages, git commit (clean)
    recorded = json.loads((copy / "provenance.json").read_text())
    assert recorded["plan"] == str(folder) and recorded["code"] == json.loads((job / "provenance.json").read_text())["code"]
    assert what_ran(workdir) == before  # the original is untouched


def test_differences_are_reported(tmp_path):
    """Two runs of one job that differ: the verdict names the weights' and the metrics' differences
    and the environment's (compare() on folders written here)."""
    import torch

    from xpm_train import checkpoint, provenance, summary
    from xpm_train.reproduce import compare

    folders = []
    for name, value, accuracy, torch_version in (("a", 1.0, 0.5, "2.1"), ("b", 1.5, 0.75, "2.2")):
        folder = tmp_path / name / "1234"  # one job (its hash), two runs
        checkpoint.save(folder / "checkpoints" / "best.pt", {"model": {"w": torch.tensor([value, 2.0])}})
        summary.write(folder / "final.json", {**summary.score_fields("val_accuracy", accuracy, "maximize"),
                                              "wall_time": value})
        provenance.write(folder, provenance.Provenance(torch=torch_version))
        folders.append(folder)
    result = compare(*folders)
    assert not result.identical and result.weights == 1 and result.max_weight_difference == 0.5
    assert result.metric_differences == {"score": (0.5, 0.75)}  # wall_time is no result
    assert result.lines()[:3] == ["differs from the original:", "  weights: max |difference| = 0.5 over 1 tensors",
                                  "  score: 0.5 -> 0.75"]
    assert result.lines()[-2:] == ["environment differs from the recorded one:", "  torch: 2.1 -> 2.2"]


def test_the_command_exits_1_when_the_copy_differs(tmp_path, monkeypatch):
    """A script can tell a reproduction that differs: exit status 1, the
    differences printed; 0 when identical."""
    from click.testing import CliRunner

    from xpm_train import reproduce as module
    from xpm_train.cli.jobs import reproduce_command

    for differences, status in (({"score": (0.5, 0.75)}, 1), ({}, 0)):
        found = module.Reproduction(tmp_path / "a", tmp_path / "b", weights=1, metric_differences=differences)
        monkeypatch.setattr(module, "reproduce", lambda job, workdir, into, found=found: found)
        result = CliRunner().invoke(reproduce_command, ["1234", "--workdir", str(tmp_path)])
        assert result.exit_code == status, result.output
        assert result.output.splitlines()[0] == ("differs from the original:" if differences
                                                 else "reproduced: bit-identical weights (1 tensors) and metrics")
