"""Ranks from the environment: local jobs, Slurm's variables and host lists."""

from __future__ import annotations

import pytest

from xpm_train.distributed import RANKS_ENV, RankInfo, RanksError, rank_info
from xpm_train.launchers.slurmjob import expand_hostlist, slurm_port


@pytest.mark.parametrize("text, hosts", [
    ("n1", ["n1"]),
    ("n1,n2", ["n1", "n2"]),
    ("node[01-03,07]", ["node01", "node02", "node03", "node07"]),
    ("gpu[8-10],cpu3", ["gpu8", "gpu9", "gpu10", "cpu3"]),
    ("r[1-2]-n[1,3]", ["r1-n1", "r1-n3", "r2-n1", "r2-n3"]),
    ("jean-zay-iam[01-02],jean-zay-a1", ["jean-zay-iam01", "jean-zay-iam02", "jean-zay-a1"]),
    ("node[009-011]", ["node009", "node010", "node011"]),
])
def test_slurm_host_lists(text, hosts):
    assert expand_hostlist(text) == hosts


def test_one_process_without_the_launcher_variable():
    assert rank_info({}) == RankInfo()
    assert rank_info({RANKS_ENV: "1", "SLURM_PROCID": "0"}) == RankInfo()


def test_slurm_ranks_master_and_port():
    env = {RANKS_ENV: "4", "SLURM_PROCID": "3", "SLURM_LOCALID": "1", "SLURM_NTASKS": "4",
           "SLURM_TASKS_PER_NODE": "2(x2)", "SLURM_JOB_NODELIST": "node[07-08]", "SLURM_JOB_ID": "123456"}
    info = rank_info(env)
    assert (info.rank, info.local_rank, info.world_size, info.local_world_size) == (3, 1, 4, 2)
    assert info.master_addr == "node07" and info.source == "slurm" and not info.is_main
    assert info.master_port == slurm_port("123456") == 15000 + 123456 % 20000
    assert rank_info({**env, "MASTER_PORT": "29500"}).master_port == 29500
    with pytest.raises(RanksError, match="SLURM_NTASKS"):
        rank_info({**env, "SLURM_NTASKS": "2"})


def test_local_followers_read_torch_variables():
    assert rank_info({RANKS_ENV: "2"}) == RankInfo(0, 0, 2, 2, "127.0.0.1", 0, "local")
    info = rank_info({RANKS_ENV: "2", "RANK": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "4242"})
    assert (info.rank, info.master_port, info.is_main) == (1, 4242, False)
