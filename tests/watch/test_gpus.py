"""The GPU columns of ``xpm-train watch``, with a fake nvidia-smi on the PATH."""

import os
import socket
import stat

from bench.watch import make_job
from xpm_train.watch import gpus
from xpm_train.watch.state import JobWatch
from xpm_train.watch.view import frame

FAKE = """#!/bin/sh
echo "$@" >> "$(dirname "$0")/calls"
echo "0, GPU-aaaa, 1024, 81920, 10"
echo "1, GPU-bbbb, 40960, 81920, 97"
"""


def fake_nvidia_smi(tmp_path, monkeypatch):
    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "nvidia-smi"
    script.write_text(FAKE)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return folder / "calls"


def test_a_job_shows_the_memory_and_use_of_its_own_gpus(tmp_path, monkeypatch):
    calls = fake_nvidia_smi(tmp_path, monkeypatch)
    folder = make_job(tmp_path / "ws", 1, "running", epochs_done=1)
    with (folder / "events.jsonl").open("a") as fp:  # a resume on GPU 1 (CUDA_VISIBLE_DEVICES=1)
        fp.write(f'{{"event": "resume", "time": 1.0, "gpus": "1", "host": "{socket.gethostname()}"}}\n')
    job = JobWatch(folder)
    job.refresh()
    table = gpus.query()
    assert calls.read_text().count("--query-gpu") == 1
    assert gpus.usage(gpus.job_gpus(job.gpus, job.host, job.device), table) == (40960.0, 81920.0, 97.0)
    line = next(line for line in frame([job], width=300, gpus=table) if " running " in line)
    assert line.split()[-2:] == ["40.0/80G", "97%"]
    assert gpus.job_gpus("GPU-aaaa", None, None) == ["GPU-aaaa"] and "GPU-aaaa" in table
    assert gpus.job_gpus(None, None, "cuda:0") == ["0"] and gpus.job_gpus(None, None, "cpu") == []
    assert gpus.job_gpus("0", "another-host", "cuda:0") == []  # on another machine: not this one's GPUs


def test_without_nvidia_smi_the_gpu_columns_show_a_dash(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert gpus.query() == {}
    job = JobWatch(make_job(tmp_path / "ws", 1, "running", epochs_done=1))
    job.refresh()
    job.device = "cuda:0"
    assert next(line for line in frame([job], width=300, gpus=gpus.query()) if " running " in line).split()[-2:] == ["-", "-"]
