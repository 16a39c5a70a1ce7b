"""A checkpoint write that fails for lack of space (ENOSPC) during a real
Learn job fails the job with a message saying so, and leaves the previous
checkpoint intact.

The job's process gets a ``sitecustomize`` (through ``PYTHONPATH``) whose
``os.fsync`` raises ENOSPC for the second write of ``last.pt``, as a full
disk does (the data is written, the flush to the device fails).
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from helpers import run_experiment

pytestmark = pytest.mark.integration
PARAMS = Path(__file__).resolve().parent / "plans" / "rerun" / "params.yaml"

FULL_DISK = textwrap.dedent("""\
    import errno, os
    if os.environ.get("XPM_TEST_ENOSPC_AT"):
        _fsync, _writes = os.fsync, []

        def fsync(fd):
            name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
            if name.startswith(".last.pt.tmp-"):
                _writes.append(name)
                if len(_writes) == int(os.environ["XPM_TEST_ENOSPC_AT"]):
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return _fsync(fd)

        os.fsync = fsync
    """)


def test_disk_full_during_a_job_fails_it_with_the_message(tmp_path):
    from xpm_train import checkpoint
    from xpm_train.data import write_idx_dataset

    data, workdir, inject = tmp_path / "mnist", tmp_path / "ws", tmp_path / "inject"
    write_idx_dataset(data, n_train=200, n_test=50)
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(FULL_DISK)
    env = {"XPM_TEST_ENOSPC_AT": "2",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(inject), os.environ.get("PYTHONPATH")]))}
    result = run_experiment(PARAMS, workdir, f"data_folder={data}", "epochs=3", env=env)

    assert result.returncode != 0
    assert "1 job(s) failed" in result.stderr + result.stdout, result.stderr[-3000:]
    (job,) = (workdir / "jobs" / "xpm_train.learn.learn").iterdir()
    assert (job / "learn.failed").exists()
    message = "No space left on device. The previous file is intact"
    assert message in (job / "learn.err").read_text()
    events = [json.loads(line) for line in (job / "events.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "error" and message in events[-1]["error"]
    assert checkpoint.load(job / "checkpoints" / "last.pt")["run"]["epoch"] == 1  # after epoch 1, intact
    assert not list((job / "checkpoints").glob(".*.tmp-*"))
