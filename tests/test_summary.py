"""The one test of "is this a result" and the summary writer that refuses a
non-finite score."""

from __future__ import annotations

import math

import numpy as np
import pytest

from xpm_train import summary
from xpm_train.errors import UserError


@pytest.mark.parametrize("value, ok", [
    (0.5, True), (0, True), (np.float32(2.0), True), (-1e30, True),
    (float("nan"), False), (math.inf, False), (-math.inf, False), (None, False), (True, False), ("1", False),
])
def test_is_result(value, ok):
    assert summary.is_result(value) is ok


@pytest.mark.parametrize("score", [float("nan"), math.inf, None])
def test_a_non_finite_score_is_never_written(tmp_path, score):
    path = tmp_path / "final.json"
    with pytest.raises(summary.NonFiniteResult, match="val_mse.*not a finite number.*ends failed.*learning rate"):
        summary.write(path, {**summary.score_fields("val_mse", score, "minimize"), "final": {}})
    assert not path.exists() and list(tmp_path.iterdir()) == []
    assert issubclass(summary.NonFiniteResult, UserError)


def test_a_finite_score_is_written(tmp_path):
    summary.write(tmp_path / "final.json", summary.score_fields("val_mse", 0.25, "minimize"))
    assert summary.read(tmp_path)["score"] == 0.25
