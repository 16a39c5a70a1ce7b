"""processes=/nodes= in specs: parsing, matching, sbatch options, explain, the job script."""

from __future__ import annotations

import pytest

from xpm_train.distributed import RANKS_ENV
from xpm_train.launchers import explain, find_launcher, load_text
from xpm_train.launchers.match import laid_out
from xpm_train.launchers.ranks import Layout, RanksSpecError, split_spec

FILE = """\
launchers:
  - name: box
    type: local
    cpu: {cores: 4, memory: 8G}
    gpus: [{model: A100, memory: 80G, device: "0"}, {model: A100, memory: 80G, device: "1"}]
  - name: cluster
    type: slurm
    partition: gpu
    cpu: {cores: 8, memory: 64G}
    gpus: {count: 4, model: A100, memory: 80G, request: gpus-per-node}
    max_time: 1d
"""


@pytest.fixture
def config():
    return load_text(FILE, "launchers.yaml")


def test_terms_are_taken_out_of_each_alternative():
    assert split_spec("cpu(cores=2) & processes=2 | nodes=3 & processes=4 & duration=1h") == [
        ("cpu(cores=2) ", Layout(processes=2)), (" duration=1h", Layout(nodes=3, processes=4))]
    assert split_spec("cuda(mem=8G)*2") == [("cuda(mem=8G)*2", Layout())]
    assert Layout(nodes=2, processes=4).world_size == 8
    with pytest.raises(RanksSpecError, match="processes must be a whole number >= 1"):
        split_spec("processes=0")
    with pytest.raises(RanksSpecError, match="given twice"):
        split_spec("nodes=2 & nodes=3")


def test_a_rank_needs_a_core_and_a_gpu():
    (requirement, layout), = laid_out("processes=3")
    assert requirement.cpu.cores == 3 and layout.processes == 3
    (requirement, _), = laid_out("cpu(cores=8) & processes=2")
    assert requirement.cpu.cores == 8
    with pytest.raises(RanksSpecError, match="each rank needs its own GPU; ask for cuda"):
        laid_out("cuda(mem=8G)*2 & processes=4")


def test_sbatch_asks_for_nodes_tasks_and_cores_per_task(config):
    launcher = find_launcher("duration=2h & cpu(cores=8) & cuda(mem=40G)*4 & processes=4 & nodes=2",
                             config=config)
    assert launcher.options.args()[:5] == ["--nodes=2", "--partition=gpu", "--ntasks-per-node=4",
                                           "--time=02:00:00", "--cpus-per-task=2"]
    assert "--gpus-per-node=4" in launcher.options.args()
    assert launcher.environ[RANKS_ENV] == "8"
    # one process: the options of before, and no ranks variable
    single = find_launcher("duration=2h & cpu(cores=8) & cuda(mem=40G)*4", config=config)
    assert "--ntasks-per-node" not in " ".join(single.options.args()) and RANKS_ENV not in single.environ


def test_several_nodes_only_on_slurm_and_explain_shows_the_ranks(config):
    text = explain("cpu(cores=2) & nodes=2", config=config).render()
    assert "box      no: is one machine (nodes=2 needs a Slurm launcher)" in text
    assert "then: srun ./<task>.py -> 2 tasks (2 node(s) x 1), XPM_TRAIN_RANKS=2" in text
    assert "master = first host of SLURM_JOB_NODELIST" in text
    local = explain("cuda(mem=8G)*2 & processes=2", config=config).render()
    assert "chosen: box" in local and "each rank: one pinned GPU each (cuda:RANK), nccl" in local


def test_local_job_script_pins_gpus_in_rank_0_only(config):
    launcher = find_launcher("cuda(mem=8G)*2 & processes=2", config=config)
    assert launcher.environ[RANKS_ENV] == "2"
    code = launcher.launcher_info_code()
    assert "if not os.environ.get('RANK'):\n        pin(2, ['0', '1']" in code
    compile("if True:\n" + code, "<job script>", "exec")  # valid Python at the script's indentation
    assert "if not os.environ" not in find_launcher("cuda(mem=8G)*2", config=config).launcher_info_code()
