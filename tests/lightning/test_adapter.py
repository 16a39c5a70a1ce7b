"""The adapter's pure parts: metric names into metrics.jsonl, final.json,
the typed wrapper's checks and IDs."""

from __future__ import annotations

import sys

import pytest
from experimaestro import Param, field

from helpers import REPO
from xpm_train.lightning import ModuleConfig

sys.path.insert(0, str(REPO / "experiments" / "lightning"))


def test_metric_names_become_splits_and_keep_their_name():
    pytest.importorskip("lightning.pytorch")
    from xpm_train.lightning.logger import points
    from xpm_train.tracking.runs import metric_key

    rows = points({"val_loss": 0.5, "val_accuracy": 0.9, "train_loss_epoch": 0.4, "lr-Adam": 1e-3, "epoch": 2}, 77)
    assert rows == [
        {"epoch": 2, "step": 77, "split": "val", "loss": 0.5, "accuracy": 0.9},
        {"epoch": 2, "step": 77, "split": "train", "loss_epoch": 0.4},
        {"epoch": 2, "step": 77, "split": "", "lr-Adam": 1e-3},
    ]
    # MLflow gets the names the module logged
    keys = {metric_key(row["split"], name) for row in rows for name in row if name not in ("epoch", "step", "split")}
    assert keys == {"val_loss", "val_accuracy", "train_loss_epoch", "lr-Adam"}


def test_summary_has_learns_keys_and_the_monitors_split_as_best():
    from xpm_train.runstate import RunState, summary as learn_summary
    from xpm_train.lightning.fit import summary

    last = {"train_loss": 0.3, "train_loss_step": 0.2, "val_loss": 0.4, "val_accuracy": 0.8}
    best = {"train_loss": 0.5, "train_loss_step": 0.6, "val_loss": 0.35, "val_accuracy": 0.85}
    final = summary({"last": last, "best": best, "best_epoch": 1}, "val_accuracy", 3, 30, 2.0, False)
    assert final["final"] == {"train_loss": 0.3, "val_loss": 0.4, "val_accuracy": 0.8}
    assert final["best"] == {"val_loss": 0.35, "val_accuracy": 0.85} and final["best_epoch"] == 1
    learn_keys = set(learn_summary(RunState(), True, 1.0))
    assert learn_keys - {"samples_per_s"} <= set(final)


def test_params_make_the_id_meta_does_not():
    from digits_configs import DigitsClassifier, DigitsData

    from xpm_train.lightning import LightningFit

    def fit(**kwargs):
        return LightningFit.C(module=DigitsClassifier.C(hidden=32), datamodule=DigitsData.C(), **kwargs)

    base = fit().__xpm__.identifier.all
    assert fit(accelerator="cpu", devices=1, log_every_n_steps=3, num_sanity_val_steps=2).__xpm__.identifier.all == base
    assert fit(max_epochs=10, precision="32-true", accumulate_grad_batches=1).__xpm__.identifier.all == base  # defaults
    for changed in (dict(max_epochs=3), dict(precision="bf16-mixed"), dict(gradient_clip_val=1.0),
                    dict(accumulate_grad_batches=2), dict(seed=1), dict(monitor="val_loss"), dict(test=True)):
        assert fit(**changed).__xpm__.identifier.all != base, changed
    other = LightningFit.C(module=DigitsClassifier.C(hidden=32, lr=0.01), datamodule=DigitsData.C())
    assert other.__xpm__.identifier.all != base


@pytest.mark.parametrize("bad", [dict(precision="fp8"), dict(mode="maximum"), dict(gradient_clip_algorithm="l2"),
                                 dict(max_epochs=0), dict(devices=0), dict(devices=2)])
def test_bad_trainer_options_fail_when_the_config_is_built(bad):
    from digits_configs import DigitsClassifier, DigitsData

    from xpm_train.checks import InvalidValue
    from xpm_train.lightning import LightningFit

    with pytest.raises(InvalidValue):
        LightningFit.C(module=DigitsClassifier.C(), datamodule=DigitsData.C(), **bad)


class Net:
    def __init__(self, hidden: int = 8, lr: float = 0.1, *, weight_decay: float = 0.0, **rest):
        pass


class NetConfig(ModuleConfig):
    hidden: Param[int] = field(default=8, ignore_default=True)
    """Width"""


class Wide(ModuleConfig):
    width: Param[int] = field(default=4, ignore_default=True)
    """Half the hidden width: the config computes Net's ``hidden`` and ``lr``"""

    def module(self):
        return Net(hidden=2 * self.width, lr=0.1 / self.width)


class Plain(ModuleConfig):
    hidden: Param[int] = field(default=8, ignore_default=True)
    """Width"""

    def module(self):
        return Net(hidden=self.hidden)


def test_constructor_arguments_missing_from_the_config_are_named():
    from xpm_train.lightning.configs import uncovered_arguments

    assert uncovered_arguments(NetConfig.C(), Net()) == ["lr", "weight_decay"]


def test_the_warning_names_only_the_arguments_left_to_their_defaults(caplog):
    """Arguments the config computes from its Params are passed: no warning
    for them; those left to their defaults are named."""
    from xpm_train.lightning.configs import build_checked

    with caplog.at_level("WARNING", logger="xpm_train.lightning"):
        wide = Wide.C(width=3)
        assert isinstance(build_checked(wide, wide.module), Net)
    assert [r.getMessage() for r in caplog.records if "lr" in r.getMessage()] == []
    assert [r.getMessage() for r in caplog.records] == [
        "Net.__init__ arguments weight_decay are not Params of Wide and take their defaults: they are not part "
        "of the job ID (declare them as Params to vary them)"]
    caplog.clear()
    with caplog.at_level("WARNING", logger="xpm_train.lightning"):
        plain = Plain.C()
        build_checked(plain, plain.module)
    assert len(caplog.records) == 1 and "arguments lr, weight_decay are not Params of Plain" in caplog.text


def test_a_study_reads_lightning_jobs_that_log_no_accuracy(tmp_path):
    """Tune fills a trial's history from metrics.jsonl: validation rows without
    ``accuracy`` (a module monitoring ``val_loss``) are skipped, not a crash."""
    import json

    from xpm_train.tune.loop import epoch_values

    rows = [{"epoch": 0, "step": 9, "split": "val", "loss": 0.9}, {"epoch": 1, "step": 19, "split": "val", "loss": 0.5},
            {"epoch": 1, "step": 19, "split": "val", "accuracy": 0.7}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert epoch_values(tmp_path / "metrics.jsonl") == {2: 0.7}
