"""Choosing a launcher: representative specs, explained launcher by launcher."""

import os

import pytest

from xpm_train.launchers import NoLauncherError, explain, find_launcher, load_text
from xpm_train.launchers.process import LocalLauncher

CLUSTER = """\
launchers:
  - name: laptop
    type: local
    tags: [local]
    priority: 10
    cpu: {cores: 8, memory: 32G}
    gpus:
      - {model: RTX4090, memory: 24G}
      - {model: RTX4090, memory: 24G}
  - name: v100
    type: slurm
    tags: [cluster, gpu]
    partition: gpu-v100
    account: proj
    qos: qos_gpu-t3
    cpu: {cores: 40, memory: 384G}
    gpus: {count: 4, model: V100, memory: 32G, gres_type: v100}
    max_time: 20h
  - name: a100
    type: slurm
    tags: [cluster, gpu]
    partition: gpu-a100
    constraint: a100
    cpu: {cores: 64, memory: 512G}
    gpus: {count: 8, model: A100, memory: 80G, request: gpus-per-node}
    max_time: 2d
    sbatch: ["--exclusive"]
  - name: cpu
    type: slurm
    tags: [cluster]
    partition: cpu
    cpu: {cores: 128, memory: 1T}
    max_time: 4d
"""

FITS = ""


@pytest.fixture(scope="module")
def cluster():
    return load_text(CLUSTER, "cluster.yaml")


# spec, tags, chosen launcher, {launcher: expected verdict on the chosen (or last) alternative}
CASES = [
    pytest.param("duration=2h & cpu(cores=4)", (), "laptop",
                 {"laptop": FITS, "v100": FITS, "a100": FITS, "cpu": FITS},
                 id="cpu-only: highest priority wins"),
    pytest.param("duration=2h & cuda(mem=8G)*1 & cpu(cores=4)", (), "laptop",
                 {"laptop": FITS, "cpu": "needs 1 GPU(s), offers 0"},
                 id="one small GPU: local"),
    pytest.param("duration=2h & cuda(mem=40G)*1", (), "a100",
                 {"laptop": "needs 40G of GPU memory, its GPUs have 24G",
                  "v100": "needs 40G of GPU memory, its GPUs have 32G", "a100": FITS},
                 id="GPU memory too small"),
    pytest.param("duration=30h & cuda(mem=16G)*2", ("cluster",), "a100",
                 {"laptop": "lacks tag(s) cluster",
                  "v100": "needs duration 1d6h, max_time is 20h", "a100": FITS},
                 id="duration over a partition's limit"),
    pytest.param("duration=10h & cuda(mem=16G)*2", ("gpu",), "v100",
                 {"v100": FITS, "a100": FITS, "cpu": "lacks tag(s) gpu"},
                 id="same priority: smallest sufficient"),
    pytest.param("cuda(mem=80G)*16", (), None,
                 {"laptop": "needs 16 GPU(s), offers 2", "a100": "needs 16 GPU(s), offers 8"},
                 id="no match"),
    pytest.param("cuda(mem=80G)*16 | cuda(mem=24G)*2 & cpu(cores=8)", (), "laptop",
                 {"laptop": FITS, "v100": FITS},
                 id="alternatives: second one used"),
    pytest.param("cuda(mem=40G)*1 | cpu(cores=1)", (), "a100",
                 {"laptop": "needs 40G of GPU memory, its GPUs have 24G", "a100": FITS},
                 id="alternatives: tried in order"),
    pytest.param("cpu(cores=1)", ("cluster",), "cpu",
                 {"laptop": "lacks tag(s) cluster", "cpu": FITS},
                 id="tags filter, then the smallest (no GPU)"),
    pytest.param("cpu(cores=96, mem=100G)", (), "cpu",
                 {"laptop": "needs 96 cores, offers 8", "a100": "needs 96 cores, offers 64"},
                 id="too many cores"),
    pytest.param("cpu(mem=2000G)", (), None, {"cpu": "needs 2T of memory, offers 1T"},
                 id="too much memory"),
    pytest.param("mps(mem=8G)", (), None, {"laptop": "needs a mps GPU"},
                 id="wrong accelerator type"),
    pytest.param("cpu(cores=1)", ("nope",), None, {"laptop": "lacks tag(s) nope"},
                 id="unknown tag"),
]


@pytest.mark.parametrize("spec, tags, chosen, verdicts", CASES)
def test_explain(cluster, spec, tags, chosen, verdicts):
    explanation = explain(spec, tags, config=cluster)
    assert explanation.chosen == chosen, explanation.render()
    used = explanation.alternatives[
        explanation.choice.alternative if explanation.choice else -1]
    for launcher, expected in verdicts.items():
        verdict = used.verdict(launcher)
        assert verdict.fits == (expected == FITS), explanation.render()
        assert verdict.reason.startswith(expected), explanation.render()
    rendered = explanation.render()
    assert f"chosen: {chosen or 'none'}" in rendered


@pytest.mark.parametrize("spec, tags, chosen, verdicts", CASES)
def test_find_launcher_agrees_with_explain(cluster, spec, tags, chosen, verdicts):
    if chosen is None:
        with pytest.raises(NoLauncherError, match="chosen: none"):
            find_launcher(spec, tags, config=cluster)
        return
    launcher = find_launcher(spec, tags, config=cluster)
    kind = cluster.get(chosen).type
    if kind == "local":
        assert isinstance(launcher, LocalLauncher) and launcher.config.name == chosen
    else:
        assert f"--partition={cluster.get(chosen).partition}" in launcher.options.args()


def test_sbatch_options_from_spec_and_partition(cluster):
    explanation = explain("duration=90m & cuda(mem=16G)*2 & cpu(cores=6, mem=32G)",
                          ("cluster",), config=cluster)
    assert explanation.chosen == "v100"
    (line,) = explanation.plan
    assert line.split()[1:-1] == [
        "--parsable", "--nodes=1", "--partition=gpu-v100", "--time=01:30:00",
        "--cpus-per-task=6", "--mem=30518M", "--gres=gpu:v100:2", "--account=proj",
        "--qos=qos_gpu-t3", "--signal=USR1@60",
    ]

    launcher = find_launcher("duration=2d & cuda(mem=40G)*3", config=cluster)
    assert launcher.options.args() == [
        "--nodes=1", "--partition=gpu-a100", "--time=2-00:00:00", "--cpus-per-task=1",
        "--gpus-per-node=3", "--constraint=a100", "--signal=USR1@60", "--exclusive",
    ]
    assert launcher.interval == 60.0


def test_local_plan_and_job_script_hook(cluster, tmp_path):
    explanation = explain("cuda(mem=8G)*1 & cpu(cores=2, mem=4G)", config=cluster)
    assert explanation.plan[0].startswith("CUDA_VISIBLE_DEVICES=<1 free of 0,1, chosen at start>")
    assert explanation.plan[1].startswith("OMP_NUM_THREADS=2")
    assert "reserves cores 2 of 8" in explanation.plan[2]
    assert "reserves memory" in explanation.plan[3] and "gpus 1 of 2" in explanation.plan[4]

    launcher = find_launcher("cuda(mem=8G)*1", config=cluster)
    code = launcher.launcher_info_code()
    assert f"pin(1, ['0', '1'], '{tmp_path / 'gpu-locks'}')" in code
    cpu_only = find_launcher("cpu(cores=1)", config=cluster)
    assert "pin(0, ['0', '1']" in cpu_only.launcher_info_code()  # hides the GPUs
    assert "'1')" in cpu_only.launcher_info_code()  # one thread per core


@pytest.mark.parametrize("environment, expected", [
    ({}, ("2", "2")),                                             # one thread per reserved core
    ({"OMP_NUM_THREADS": "1"}, ("1", "1")),                       # the user's size, for both pools
    ({"MKL_NUM_THREADS": "3"}, ("3", "3")),
    ({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "4"}, ("1", "4")),  # both set: left alone
])
def test_job_script_sizes_both_thread_pools(cluster, monkeypatch, environment, expected):
    """torch uses the larger of OMP_NUM_THREADS and MKL_NUM_THREADS: setting only one
    of them must not leave the other at the reserved cores."""
    import textwrap

    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        # set, then delete: monkeypatch restores a variable only once it has
        # recorded it, and the job-script code below writes os.environ
        monkeypatch.setenv(name, "recorded")
        monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    code = find_launcher("cpu(cores=2)", config=cluster).launcher_info_code()
    exec(textwrap.dedent(code).replace("from xpm_train.launchers.gpurun import pin\n", "")
         .replace("pin(", "(lambda *args: None)("), {})
    assert (os.environ["OMP_NUM_THREADS"], os.environ["MKL_NUM_THREADS"]) == expected


THREADS_AT_COLLECTION = {name: os.environ.get(name) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}


def test_thread_variables_did_not_leak_from_the_test_above():
    """The job-script test writes os.environ; later tests' jobs must not inherit it
    (a 2-thread job is not bitwise identical to the 1-thread reference runs)."""
    assert {name: os.environ.get(name) for name in THREADS_AT_COLLECTION} == THREADS_AT_COLLECTION


def test_empty_spec_uses_default_spec():
    config = load_text(CLUSTER.replace("launchers:", 'default_spec: "cuda(mem=40G)*1"\n'
                                                     "launchers:", 1))
    assert explain("", config=config).chosen == "a100"
    assert explain(None, config=load_text(CLUSTER)).chosen == "laptop"


def test_bad_spec_is_a_value_error(cluster):
    with pytest.raises(ValueError, match="syntax error"):
        explain("cuda(mem=8G) &", config=cluster)
