"""``xpm-train launchers list`` and ``xpm-train launchers explain``."""

import pytest
from click.testing import CliRunner

from xpm_train.cli import main

CLUSTER = """\
launchers:
  - name: laptop
    type: local
    priority: 10
    cpu: {cores: 8, memory: 32G}
    gpus: [{model: RTX4090, memory: 24G}]
    max_jobs: 2
  - name: a100
    type: slurm
    tags: [gpu]
    partition: gpu-a100
    cpu: {cores: 64, memory: 512G}
    gpus: {count: 8, model: A100, memory: 80G}
    max_time: 2d
"""


@pytest.fixture
def cluster(write_yaml):
    return write_yaml(CLUSTER)


def invoke(*args):
    return CliRunner().invoke(main, ["launchers", *args])


def test_list(cluster):
    result = invoke("list", "--file", str(cluster))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"launchers: {cluster}"
    assert lines[1].split() == ["NAME", "TYPE", "PRIO", "TAGS", "CORES", "MEMORY", "GPUS",
                                "MAX", "TIME", "WHERE"]
    assert lines[2].split()[:6] == ["laptop", "local", "10", "-", "8", "32G"]
    assert "0:RTX4090 24G" in lines[2] and "max 2 jobs" in lines[2]
    assert lines[3].split()[:6] == ["a100", "slurm", "0", "gpu", "64", "512G"]
    assert "8x A100 80G" in lines[3] and "2d" in lines[3] and "partition gpu-a100" in lines[3]


def test_explain_chosen_with_sbatch_line(cluster):
    result = invoke("explain", "duration=3h & cuda(mem=40G)*2", "--file", str(cluster))
    assert result.exit_code == 0, result.output
    assert "  laptop  no: needs 2 GPU(s), offers 1" in result.output
    assert "  a100    yes" in result.output
    assert "chosen: a100 (alternative 1, slurm, priority 0)" in result.output
    assert "sbatch --parsable --nodes=1 --partition=gpu-a100 --time=03:00:00" in result.output
    assert "--gres=gpu:2" in result.output


def test_explain_local_environment_and_tags(cluster):
    result = invoke("explain", "cuda(mem=8G)*1", "--file", str(cluster))
    assert "chosen: laptop" in result.output and "CUDA_VISIBLE_DEVICES=<1 free of 0" in result.output
    tagged = invoke("explain", "cuda(mem=8G)*1", "--tag", "gpu", "--file", str(cluster))
    assert "laptop  no: lacks tag(s) gpu" in tagged.output and "chosen: a100" in tagged.output


def test_explain_no_match_exits_1(cluster):
    result = invoke("explain", "duration=3d & cuda(mem=40G)*1", "--file", str(cluster))
    assert result.exit_code == 1
    assert "a100    no: needs duration 3d, max_time is 2d" in result.output
    assert "chosen: none" in result.output


def test_bad_spec_exits_2_and_bad_file_1(cluster, write_yaml):
    result = invoke("explain", "cuda(mem=8G) &", "--file", str(cluster))
    assert result.exit_code == 2 and "syntax error" in result.output
    bad = write_yaml("launchers:\n  - name: a\n    type: local\n    max_jobs: many\n", "bad.yaml")
    result = invoke("list", "--file", str(bad))
    assert result.exit_code == 1  # a user error, as a bad params.yaml
    assert f"{bad}:4: launchers[0].max_jobs: must be an integer" in result.output
