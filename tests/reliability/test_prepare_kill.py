"""SIGKILL of a preparation for streaming at random moments (inside decoding,
chunk commits and the final renames): no half-written preparation is ever
opened, the next preparation goes on from the committed chunks, and the
records end byte-identical to a preparation never interrupted."""

from __future__ import annotations

import os
import random
import signal
import time

import numpy as np
from PIL import Image

from xpm_train.data import prepare_image_folder
from xpm_train.data.imagefolder import FolderRecords
from xpm_train.data.preparation import prepare
from xpm_train.data.prepared import PreparedDataError, open_prepared

KILLS = 8


def write_pngs(folder, n=600):
    rng = np.random.default_rng(0)
    for i in range(n):
        (folder / f"c{i % 3}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(folder / f"c{i % 3}" / f"{i}.png")
    return folder


def slowly(decode):
    def slow(self, start, stop):
        time.sleep(0.03)  # so that the kills land all along the preparation
        return decode(self, start, stop)
    return slow


def prepare_in_child(source, root) -> int:
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            FolderRecords.decode = slowly(FolderRecords.decode)
            prepare(source, root=root, workers=2, chunk_records=20)
        except BaseException:  # noqa: BLE001
            code = 1
        os._exit(code)
    return pid


def test_killed_preparations_resume_to_identical_records(tmp_path):
    folder = write_pngs(tmp_path / "pics")
    source = prepare_image_folder(folder, decode=False).train.instance().records()
    rng, root = random.Random(7), tmp_path / "prepared"
    committed = []
    for _ in range(KILLS):
        pid = prepare_in_child(source, root)
        time.sleep(rng.uniform(0.05, 0.6))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        (prepared,) = root.iterdir()
        if (prepared / "header.json").exists():
            open_prepared(prepared)  # complete: it opens
            break
        try:
            open_prepared(prepared)
            raise AssertionError("a preparation without its header was opened")
        except PreparedDataError:
            pass
        committed.append(len(list((prepared / "chunks").glob("*.json"))) if (prepared / "chunks").exists() else 0)
    assert any(committed), f"no kill landed after a commit: {committed}"
    result, report = prepare(source, root=root, workers=2, chunk_records=20)
    assert report["reused"] or report["skipped"], report
    clean, _ = prepare(source, root=tmp_path / "clean", workers=1, chunk_records=20)
    for name in ("inputs.npy", "targets.npy"):
        assert (result.folder / name).read_bytes() == (clean.folder / name).read_bytes(), name
    assert result.header["chunks"] == clean.header["chunks"]
