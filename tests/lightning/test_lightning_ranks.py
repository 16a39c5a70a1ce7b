"""What Lightning is told about the ranks xpm-train's launcher started
(xpm_train.lightning.ddp), local and under Slurm (2 nodes x 2 tasks, from
Slurm's variables), checked against Lightning's own environments; and the
refusal of ``devices>1`` in the Meta, saying how to ask for devices."""

from __future__ import annotations

import pytest

from xpm_train.distributed import rank_info

pytest.importorskip("lightning.pytorch", reason="the Lightning extra is not installed: pip install -e '.[test]'")

SLURM = {"XPM_TRAIN_RANKS": "4", "SLURM_PROCID": "3", "SLURM_LOCALID": "1", "SLURM_NODEID": "1",
         "SLURM_NTASKS": "4", "SLURM_NTASKS_PER_NODE": "2", "SLURM_TASKS_PER_NODE": "2(x2)", "SLURM_NNODES": "2",
         "SLURM_JOB_NODELIST": "node[07-08]", "SLURM_NODELIST": "node[07-08]", "SLURM_JOB_ID": "4242",
         "SLURM_JOB_NAME": "lightningfit"}


def test_a_local_rank_is_an_external_process_for_lightning(monkeypatch):
    from lightning.fabric.plugins.environments import LightningEnvironment

    from xpm_train.lightning import ddp

    info = rank_info({"XPM_TRAIN_RANKS": "2", "RANK": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29400"})
    assert ddp.layout(info) == {"devices": 2, "num_nodes": 1}
    for name, value in ddp.environ(info).items():
        monkeypatch.setenv(name, value)
    environment = LightningEnvironment()
    environment.set_world_size(2)
    assert environment.creates_processes_externally  # Lightning starts no process
    assert (environment.local_rank(), environment.node_rank(), environment.main_port) == (1, 0, 29400)


def test_slurm_ranks_are_read_by_lightning_from_slurm_and_meet_at_xpm_trains_address(monkeypatch):
    from lightning.fabric.plugins.environments import SLURMEnvironment

    from xpm_train.launchers.slurmjob import slurm_port
    from xpm_train.lightning import ddp

    for name, value in SLURM.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    info = rank_info(SLURM)
    arguments = ddp.layout(info)
    assert arguments == {"devices": 2, "num_nodes": 2}
    for name, value in ddp.environ(info).items():
        monkeypatch.setenv(name, value)
    environment = SLURMEnvironment(auto_requeue=False)
    environment.validate_settings(num_devices=arguments["devices"], num_nodes=arguments["num_nodes"])
    assert (environment.global_rank(), environment.local_rank(), environment.node_rank(),
            environment.world_size()) == (3, 1, 1, 4)
    # the rendezvous of a Learn on the same allocation, not Lightning's own port rule
    assert (environment.main_address, environment.main_port) == ("node07", slurm_port("4242"))
    with pytest.raises(ValueError, match="ntasks-per-node"):  # Lightning refuses a layout that does not match
        environment.validate_settings(num_devices=1, num_nodes=2)


def test_devices_in_the_meta_are_refused_with_how_to_ask_the_launcher():
    import sys

    from helpers import REPO

    sys.path.insert(0, str(REPO / "experiments" / "lightning"))
    try:
        from digits_configs import DigitsClassifier, DigitsData
    finally:
        sys.path.pop(0)
    from xpm_train.checks import InvalidValue
    from xpm_train.lightning import LightningFit

    with pytest.raises(InvalidValue, match=r"processes=2.*Trainer\(strategy='ddp', devices=2\)"):
        LightningFit.C(module=DigitsClassifier.C(), datamodule=DigitsData.C(), devices=2)
