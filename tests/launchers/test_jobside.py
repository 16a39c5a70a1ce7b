"""What a job sees of its launcher (ranks, tracking label, Lightning's
cluster environment) is read by the launcher type's own job side
(xpm_train/launchers/kinds/<type>.py, ``job``): nowhere else names a
launcher's variables, and a new multi-rank launcher type is one module."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import xpm_train
from xpm_train.distributed import RANKS_ENV, RankInfo, rank_info
from xpm_train.launchers import kinds
from xpm_train.launchers.kinds.local import LocalLauncherConfig

PACKAGE = Path(xpm_train.__file__).parent
LAUNCHER_VARIABLES = re.compile(r"""["'](SLURM_\w*|slurm)["']""")


def test_no_module_outside_the_launchers_reads_slurms_variables():
    """distributed.py, lightning/, tracking/... ask the job sides."""
    found = [f"{path.relative_to(PACKAGE)}: {match.group()}"
             for path in sorted(PACKAGE.rglob("*.py")) if "launchers" not in path.relative_to(PACKAGE).parts
             for match in LAUNCHER_VARIABLES.finditer(path.read_text())]
    assert not found, found


class PbsJob:
    """The job side of a made-up PBS launcher type: all it takes is this class."""

    @staticmethod
    def ranks(environ, world):
        if "PBS_TASKNUM" not in environ:
            return None
        rank = int(environ["PBS_TASKNUM"])
        return RankInfo(rank=rank, local_rank=rank % 2, world_size=world, local_world_size=2,
                        master_addr=environ["PBS_MOM"], master_port=4000, source="pbs")

    @staticmethod
    def label(environ):
        return f"pbs:{environ['PBS_JOBID']}" if environ.get("PBS_JOBID") else None

    @staticmethod
    def lightning_variables(info):
        return {"MASTER_ADDR": info.master_addr, "PBS_RANK": str(info.rank)}

    @staticmethod
    def lightning_environment():
        return "pbs environment"

    @staticmethod
    def lightning_plugins():
        return ["pbs plugin"]


class PbsLauncherConfig(LocalLauncherConfig):
    type = "pbs"
    job = PbsJob


@pytest.fixture
def pbs_type(monkeypatch):
    monkeypatch.setitem(kinds.TYPES, "pbs", PbsLauncherConfig)


def test_a_new_multi_rank_launcher_type_is_one_module(pbs_type, monkeypatch):
    env = {RANKS_ENV: "4", "PBS_TASKNUM": "3", "PBS_MOM": "node9", "PBS_JOBID": "77"}
    info = rank_info(env)
    assert (info.rank, info.local_rank, info.world_size, info.master_addr, info.source) == (3, 1, 4, "node9", "pbs")
    assert rank_info({RANKS_ENV: "2", "RANK": "1"}).source == "local"  # what no other type claims

    from xpm_train.lightning.fit import one_process_plugins
    from xpm_train.tracking.identity import launcher_name

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert launcher_name() == "pbs:77"
    assert "pbs plugin" in one_process_plugins()
    monkeypatch.delenv("PBS_JOBID")
    assert launcher_name() == "local"


def test_lightning_is_told_what_the_launcher_type_says(pbs_type):
    pytest.importorskip("lightning.pytorch")
    from xpm_train.lightning import ddp

    info = rank_info({RANKS_ENV: "4", "PBS_TASKNUM": "2", "PBS_MOM": "node9"})
    assert ddp.environ(info) == {"MASTER_ADDR": "node9", "PBS_RANK": "2"}
    assert ddp.layout(info) == {"devices": 2, "num_nodes": 2}
