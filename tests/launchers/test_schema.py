"""launchers.yaml: valid files read right, bad files name file, line and field."""

import textwrap

import pytest

from xpm_train.launchers import LaunchersConfigError, find_launcher, load_file, load_text
from xpm_train.launchers.units import parse_memory

GOOD = textwrap.dedent("""\
    default_spec: "duration=1h & cpu(cores=1)"
    launchers:
      - name: workstation
        type: local
        tags: [local, gpu]
        priority: 10
        cpu: {cores: 16, memory: 64G}
        gpus:
          - {model: RTX4090, memory: 24G}
          - {model: RTX4090, memory: 24G, device: 3}
        max_jobs: 4
      - name: a100
        type: slurm
        partition: gpu
        account: proj
        qos: normal
        features: [a100, ib]
        cpu: {cores: 64, memory: 512G}
        gpus: {count: 8, model: A100, memory: 80G, request: gpus-per-node}
        max_time: 2d
        sbatch: ["--exclusive"]
        signal: B:USR1@120
        poll_interval: 5
        max_submitted: 100
        max_jobs: 20
    """)


def test_good_file_is_read():
    config = load_text(GOOD, "good.yaml")
    local, slurm = config.launchers
    assert config.default_spec == "duration=1h & cpu(cores=1)"
    assert (local.name, local.cores, local.memory, local.max_jobs) == (
        "workstation", 16, parse_memory("64G"), 4)
    assert [g.device for g in local.gpus] == ["0", "3"]
    assert local.tags == ("local", "gpu") and local.priority == 10 and not local.auto
    assert slurm.constraint == "a100&ib" and slurm.account == "proj"
    assert slurm.gpus.count == 8 and slurm.gpus.request == "gpus-per-node"
    assert slurm.max_time == 2 * 86400 and slurm.signal == "B:USR1@120"
    assert slurm.sbatch == ("--exclusive",) and slurm.poll_interval == 5.0
    assert slurm.max_submitted == 100 and slurm.max_jobs == 20 and config.get("workstation") is local
    assert local.where == "good.yaml:3"


def test_defaults_and_auto(monkeypatch):
    monkeypatch.setenv("XPM_TRAIN_FAKE_GPUS", "2x80G")
    config = load_text("launchers:\n  - {name: here, type: local}\n")
    (local,) = config.launchers
    assert local.auto == {"cores", "memory", "gpus"}
    assert len(local.gpus) == 2 and local.gpus[1].memory == parse_memory("80G")
    assert local.cores >= 1 and local.memory > 0 and local.max_jobs is None


def test_repository_example_is_valid(repo_root):
    config = load_file(repo_root / "launchers.yaml")
    assert [(lc.name, lc.type) for lc in config.launchers] == [("local", "local"),
                                                               ("debug", "slurm")]
    assert config.get("debug").partition == "debug"
    assert config.get("local").auto == {"cores", "memory", "gpus"}


def problems_of(text: str, file: str = "launchers.yaml") -> list[str]:
    with pytest.raises(LaunchersConfigError) as info:
        load_text(textwrap.dedent(text), file)
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize("text, expected", [
    pytest.param("""\
        launchers:
          - name: a
            type: local
            cpu:
              coress: 4
        """, "launchers.yaml:5: launchers[0].cpu.coress: unknown key 'coress' "
             "(fix: did you mean 'cores'?", id="unknown-key"),
    pytest.param("""\
        launchers:
          - name: a
            type: local
          - name: b
            type: local
            cpu: {cores: -4}
        """, "launchers.yaml:6: launchers[1].cpu.cores: must be a positive integer, got -4",
        id="negative-cores"),
    pytest.param("""\
        launchers:
          - name: a
            type: local
            priority: high
        """, "launchers.yaml:4: launchers[0].priority: must be an integer, got 'high' (str)",
        id="wrong-type"),
    pytest.param("""\
        default_spec: "cuda(mem=8G) && cpu()"
        launchers:
          - {name: a, type: local}
        """, "launchers.yaml:1: default_spec: cannot parse spec 'cuda(mem=8G) && cpu()'",
        id="unparsable-spec"),
    pytest.param("""\
        default_spec: "cuda(mem=8)"
        launchers:
          - {name: a, type: local}
        """, "launchers.yaml:1: default_spec: cannot parse spec 'cuda(mem=8)': Memory size",
        id="spec-without-unit"),
    pytest.param("""\
        launchers:
          - name: a
            type: pbs
        """, "launchers.yaml:3: launchers[0].type: must be one of local, slurm, got 'pbs'",
        id="unknown-type"),
    pytest.param("""\
        launchers:
          - name: s
            type: slurm
            cpu: {cores: 4, memory: 8G}
        """, "launchers.yaml:2: launchers[0].partition: is required", id="missing-partition"),
    pytest.param("""\
        launchers:
          - name: s
            type: slurm
            partition: p
            cpu: {cores: 4, memory: 8}
        """, "launchers.yaml:5: launchers[0].cpu.memory: must be a memory size", id="no-unit"),
    pytest.param("""\
        launchers:
          - name: s
            type: slurm
            partition: p
            cpu: {cores: 4, memory: 8G}
            max_time: forever
        """, "launchers.yaml:6: launchers[0].max_time: must be a duration", id="bad-duration"),
    pytest.param("""\
        launchers:
          - name: s
            type: slurm
            partition: p
            cpu: {cores: 4, memory: 8G}
            max_submitted: 0
        """, "launchers.yaml:6: launchers[0].max_submitted: must be a positive integer, got 0",
        id="max-submitted-zero"),
    pytest.param("""\
        launchers:
          - name: s
            type: slurm
            partition: p
            cpu: {cores: 4, memory: 8G}
            max_submitted: lots
        """, "launchers.yaml:6: launchers[0].max_submitted: must be an integer, got 'lots'",
        id="max-submitted-text"),
    pytest.param("""\
        launchers:
          - name: s
            type: slurm
            partition: p
            cpu: {cores: 4, memory: 8G}
            max_jobs: -2
        """, "launchers.yaml:6: launchers[0].max_jobs: must be a positive integer, got -2",
        id="max-jobs-negative"),
    pytest.param("""\
        launchers:
          - {name: a, type: local}
          - {name: a, type: local}
        """, "launchers.yaml:3: launchers[1].name: launcher name 'a' is used twice",
        id="duplicate-name"),
    pytest.param("""\
        launchers:
          - name: a
            type: local
            name: b
        """, "launchers.yaml:4: launchers[0].name: appears twice", id="duplicate-key"),
    pytest.param("""\
        launchers:
          - name: a
            type: local
            gpus: [{model: X}]
        """, "launchers.yaml:4: launchers[0].gpus[0].memory: is required", id="gpu-memory"),
    pytest.param("""\
        launchers:
          - name: a
            type: local
            tags: [ok, {bad: 1}]
        """, "launchers.yaml:4: launchers[0].tags[1]: tags must be words", id="bad-tag"),
    pytest.param("""\
        launchers:
          - name: a
            type: local
           cpu: 3
        """, "launchers.yaml:4: <yaml>: not valid YAML", id="yaml-syntax"),
    pytest.param("launchers: []\n", "launchers.yaml:1: launchers: must be a non-empty list",
                 id="empty-list"),
    pytest.param("launcher:\n  - {name: a, type: local}\n",
                 "launchers.yaml:1: launcher: unknown key 'launcher' (fix: did you mean "
                 "'launchers'?", id="top-level-typo"),
])
def test_bad_file_names_file_line_and_field(text, expected):
    problems = problems_of(text)
    assert any(p.startswith(expected) for p in problems), problems


def test_every_problem_is_reported_at_once():
    problems = problems_of("""\
        launchers:
          - name: a
            type: local
            cpu: {cores: 0, memory: lots}
            max_jobs: -1
        """)
    fields = [p.split(": ")[1] for p in problems]
    assert fields == ["launchers[0].cpu.cores", "launchers[0].cpu.memory",
                      "launchers[0].max_jobs"], problems
    assert "(fix:" in problems[0]


def test_bad_file_stops_find_launcher_before_any_submission(write_yaml, monkeypatch):
    path = write_yaml("launchers:\n  - name: a\n    type: local\n    cpu: {cores: -4}\n")
    monkeypatch.setenv("XPM_TRAIN_LAUNCHERS", str(path))
    with pytest.raises(LaunchersConfigError) as info:
        find_launcher("cpu(cores=1)")
    assert f"{path}:4: launchers[0].cpu.cores: must be a positive integer" in str(info.value)
