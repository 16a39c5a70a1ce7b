"""GPU pinning with per-GPU flocks: exclusive, chosen at start, released on any death."""

import os
import signal
import subprocess
import sys
import time

import pytest

from gpulocks import is_free
from xpm_train.launchers import gpurun
from xpm_train.launchers.gpus import detect_gpus, parse_fake_gpus
from xpm_train.launchers.units import parse_memory

RECORD = ('a=$(date +%s.%N); sleep {hold}; '
          'echo "$a $(date +%s.%N) $CUDA_VISIBLE_DEVICES" > {out}/$$')


def gpurun_command(count, locks, out, hold=0.3, devices="0,1"):
    shell = RECORD.format(hold=hold, out=out)
    return [sys.executable, "-m", "xpm_train.launchers.gpurun", "--gpus", str(count),
            "--devices", devices, "--lock-dir", str(locks), "--", "sh", "-c", shell]


def records(out):
    result = []
    for path in out.iterdir():
        start, end, *devices = path.read_text().split()
        result.append((float(start), float(end), devices[0] if devices else ""))
    return result


def assert_no_overlap(recs):
    for device in {d for _, _, ds in recs for d in ds.split(",")}:
        spans = sorted((s, e) for s, e, ds in recs if device in ds.split(","))
        for (_, end), (start, _) in zip(spans, spans[1:]):
            assert start >= end, f"GPU {device} used by two commands at once: {spans}"


def test_six_one_gpu_commands_on_two_gpus_never_overlap(tmp_path):
    out, locks = tmp_path / "out", tmp_path / "locks"
    out.mkdir()
    procs = [subprocess.Popen(gpurun_command(1, locks, out)) for _ in range(6)]
    assert [p.wait(timeout=60) for p in procs] == [0] * 6
    recs = records(out)
    assert len(recs) == 6
    assert all(devices in ("0", "1") for _, _, devices in recs)  # exactly one each
    assert_no_overlap(recs)
    assert is_free("0", locks) and is_free("1", locks)


def test_two_gpu_command_waits_for_both(tmp_path):
    out, locks = tmp_path / "out", tmp_path / "locks"
    out.mkdir()
    procs = [subprocess.Popen(gpurun_command(n, locks, out)) for n in (1, 2, 1)]
    assert [p.wait(timeout=60) for p in procs] == [0] * 3
    recs = records(out)
    assert sorted(len(d.split(",")) for _, _, d in recs) == [1, 1, 2]
    assert [d for _, _, d in recs if "," in d] == ["0,1"]
    assert_no_overlap(recs)


def test_sigkill_releases_every_gpu(tmp_path):
    locks = tmp_path / "locks"
    proc = subprocess.Popen([sys.executable, "-m", "xpm_train.launchers.gpurun", "--gpus", "2",
                             "--devices", "0,1", "--lock-dir", str(locks), "--",
                             "sleep", "60"])
    deadline = time.monotonic() + 30
    while is_free("0", locks) or is_free("1", locks):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    # the locks are held by `sleep` itself (exec'd): kill it outright
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert is_free("0", locks) and is_free("1", locks)


def test_pin_in_process(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "x")
    assert gpurun.pin(0, ["0", "1"], tmp_path) == []
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""  # CPU jobs see no GPU
    with pytest.raises(ValueError, match="3 GPU"):
        gpurun.pin(3, ["0", "1"], tmp_path)
    held = subprocess.Popen([sys.executable, "-m", "xpm_train.launchers.gpurun", "--gpus",
                             "2", "--devices", "0,1", "--lock-dir", str(tmp_path), "--",
                             "sleep", "30"])
    try:
        while is_free("1", tmp_path):
            time.sleep(0.05)
        with pytest.raises(TimeoutError):
            gpurun.acquire(1, ["0", "1"], tmp_path, timeout=0.3)
    finally:
        held.kill()
        held.wait()
    assert gpurun.acquire(1, ["0", "1"], tmp_path, timeout=5) == ["0"]
    assert not is_free("0", tmp_path)
    gpurun.release()
    assert is_free("0", tmp_path)


def test_fake_inventory(monkeypatch):
    gpus = parse_fake_gpus("1x80G, 2x24G")
    assert [(g.device, g.memory) for g in gpus] == [
        ("0", parse_memory("80G")), ("1", parse_memory("24G")), ("2", parse_memory("24G"))]
    assert parse_fake_gpus("") == ()
    with pytest.raises(ValueError, match="XPM_TRAIN_FAKE_GPUS"):
        parse_fake_gpus("two GPUs")
    monkeypatch.setenv("XPM_TRAIN_FAKE_GPUS", "4x16G")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,3")
    assert [g.device for g in detect_gpus()] == ["1", "3"]
