"""Task IDs are a contract: an accidental change would silently retrain
everything. The IDs of representative configs are kept in reference_ids.json.

Every Config and Task class that ``xpm_train`` exports has at least one entry
(``test_every_exported_config_is_pinned``). ``python tests/test_ids.py --update``
adds the entries of new configs and never changes an existing one; if a change
of ID is intended (a bumped ``version`` Constant), ``--update --accept-changes``
rewrites them: say why in the commit.
"""

import json
import sys
from pathlib import Path

REFERENCE = Path(__file__).with_name("reference_ids.json")


def configs():
    from xpm_train import CNN, MLP, SGD, Adam, Augment, Cosine, Digits, Distillation, Evaluate, Learn, ResNet

    train, test = Digits.C(split="train"), Digits.C(split="test")
    mlp = MLP.C(hidden_dims=[64])
    learn = Learn.C(model=mlp, data=train, optimizer=Adam.C(lr=3e-3), epochs=10, batch_size=32)
    cnn_learn = Learn.C(
        model=CNN.C(n_layers=2, hidden_dim=32, kernel_size=5),
        data=train,
        optimizer=SGD.C(lr=0.05, momentum=0.9),
        schedule=Cosine.C(warmup_epochs=1),
        epochs=5,
        grad_clip=1.0,
        seed=3,
    )
    # Meta values (device, intervals) must not change the ID
    learn_meta = Learn.C(model=mlp, data=train, optimizer=Adam.C(lr=3e-3), epochs=10, batch_size=32,
                         device="cpu", log_interval=7, checkpoint_interval=3)
    return {
        "digits-train": train,
        "digits-test": test,
        "mlp": mlp,
        "resnet": ResNet.C(),
        "learn-mlp": learn,
        "learn-mlp-meta": learn_meta,
        "learn-cnn-sgd-cosine": cnn_learn,
        "evaluate-mlp": Evaluate.C(model=mlp, data=test),
        "learn-mlp-distilled": Learn.C(model=MLP.C(hidden_dims=[8]), data=train, optimizer=Adam.C(lr=3e-3),
                                       distill=Distillation.C(teacher=mlp, temperature=2.0)),
        "learn-mlp-adam-loop": Learn.C(model=mlp, data=train, optimizer=Adam.C(lr=3e-3, fused=False), epochs=10,
                                       batch_size=32),
        "learn-resnet-augment": Learn.C(model=ResNet.C(), data=train, optimizer=SGD.C(lr=0.1),
                                        augment=Augment.C(crop_padding=1, cutout=2)),
        **more_configs(mlp, train),
        **lightning_configs(),
        **new_configs(mlp),
    }


def new_configs(mlp):
    """Configs of the objectives, tabular data and image folders (issue 12)."""
    from xpm_train import (Adam, Classification, Diabetes, Digits, Evaluate, ImageFolder, Learn, Reconstruction, Regression,
                           SavedModel)

    diabetes = Diabetes.C(split="train")
    images = ImageFolder.C(split="train", fingerprint="0" * 64, folder="/nowhere", size=[16, 16])
    return {
        "diabetes-train": diabetes,
        "imagefolder-train": images,
        "learn-regression": Learn.C(model=mlp, data=diabetes, objective=Regression.C(), optimizer=Adam.C(lr=1e-2)),
        "learn-regression-l1": Learn.C(model=mlp, data=diabetes, objective=Regression.C(criterion="l1"),
                                       optimizer=Adam.C(lr=1e-2)),
        "evaluate-regression": Evaluate.C(model=mlp, data=Diabetes.C(split="test"), objective=Regression.C()),
        "learn-reconstruction-bce": Learn.C(model=mlp, data=images, objective=Reconstruction.C(criterion="bce"),
                                            optimizer=Adam.C(lr=1e-3)),
        "learn-classification-explicit": Learn.C(model=mlp, data=Digits.C(split="train"), objective=Classification.C(),
                                                 optimizer=Adam.C(lr=1e-2)),
        "evaluate-saved-model": Evaluate.C(model=SavedModel.C(), data=Diabetes.C(split="test"),
                                           objective=Regression.C()),
        "objective-classification": Classification.C(),
        "objective-regression": Regression.C(),
        "objective-reconstruction": Reconstruction.C(),
        "saved-model": SavedModel.C(),
    }


def lightning_configs():
    """The Lightning task with the example's configs (no Lightning import needed)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "experiments" / "lightning"))
    from digits_configs import DigitsClassifier, DigitsData

    from xpm_train.lightning import LightningFit

    module, data = DigitsClassifier.C(hidden=32), DigitsData.C()
    return {
        "lightning-module": module,
        "lightning-data": data,
        "lightning-fit": LightningFit.C(module=module, datamodule=data, max_epochs=5),
        "lightning-fit-meta": LightningFit.C(module=module, datamodule=data, max_epochs=5, accelerator="cpu",
                                             log_every_n_steps=7, enable_progress_bar=True),
        "lightning-fit-limits": LightningFit.C(module=module, datamodule=data, max_epochs=5, max_steps=100,
                                               limit_train_batches=0.5, limit_val_batches=3),
    }


def more_configs(mlp, train):
    """One entry for each exported class not pinned above (added 2026-12-01)."""
    from xpm_train import (CIFAR10, CNN, MNIST, SGD, Adam, AdamW, Augment, ConstantRate, Cosine, Distillation,
                           ExportBest, FashionMNIST, HeldOut, Hyperband, Learn, LoadWeights, MedianPruner,
                           MLflowTracking, NoPruner, StepDecay, Streaming, SuccessiveHalving, Synthetic, TPE, Tune)

    mnist = MNIST.C(split="train", folder=Path("/data/mnist"))
    weights = LoadWeights.C(model=mlp, path=Path("/jobs/learn/best.pt"))
    return {
        "adam": Adam.C(lr=3e-3),
        "adamw": AdamW.C(lr=1e-3, weight_decay=0.01),
        "sgd": SGD.C(lr=0.1, momentum=0.9, nesterov=True),
        "constant": ConstantRate.C(warmup_epochs=2),
        "step-decay": StepDecay.C(milestones=[0.5, 0.8], gamma=0.1),
        "cosine": Cosine.C(min_factor=0.01),
        "cnn": CNN.C(n_layers=2, hidden_dim=32, kernel_size=5),
        "augment": Augment.C(crop_padding=1, cutout=2),
        "distillation": Distillation.C(teacher=mlp, temperature=2.0, alpha=0.5),
        "mnist-train": mnist,
        "fashion-mnist-test": FashionMNIST.C(split="test", folder=Path("/data/fashion")),
        "cifar10-train": CIFAR10.C(split="train", folder=Path("/data/cifar10")),
        "synthetic": Synthetic.C(split="train", num_samples=64, num_classes=3, seed=1),
        "held-out": HeldOut.C(data=train, fraction=0.1, seed=0),
        "load-weights": weights,
        "learn-mnist-adamw-step": Learn.C(model=mlp, data=mnist, optimizer=AdamW.C(lr=1e-3),
                                          schedule=StepDecay.C(milestones=[0.6]), epochs=3),
        "tune": Tune.C(study="digits-mlp-0123abcd", n_trials=20, best=weights),
        "tpe": TPE.C(seed=1, n_startup_trials=5),
        "median-pruner": MedianPruner.C(n_startup_trials=3),
        "successive-halving": SuccessiveHalving.C(min_resource=2),
        "hyperband": Hyperband.C(max_resource=10),
        "mlflow-tracking": MLflowTracking.C(tracking_uri="file:///tmp/mlflow", experiment_id="1"),
        "streaming": Streaming.C(mode="always", workers=4, memory_budget=1 << 30),
        "no-pruner": NoPruner.C(),
        "export-best": ExportBest.C(trainings=[Learn.C(model=mlp, data=train, optimizer=Adam.C(lr=3e-3))]),
    }


INTERFACES = {"Dataset", "ImageDataset", "Model", "Objective", "ModuleConfig", "DataModuleConfig", "CallbackConfig",
              "LoggerConfig"}
"""Exported abstract bases: their subclasses are pinned instead"""


def current_ids():
    return {name: config.__xpm__.identifier.all.hex() for name, config in configs().items()}


def test_ids_match_reference():
    reference = json.loads(REFERENCE.read_text())
    current = current_ids()
    missing = sorted(current.keys() - reference.keys())
    assert not missing, f"no reference ID for {missing}: run `python tests/test_ids.py --update`"
    changed = sorted(k for k, v in current.items() if reference[k] != v)
    assert not changed, (
        f"task IDs changed for {changed}: every existing job of these would be retrained. "
        "If intended, run `python tests/test_ids.py --update --accept-changes` and say why in the commit."
    )


def test_every_exported_config_is_pinned():
    import inspect

    import xpm_train
    from experimaestro import Config

    exported = {name for name in xpm_train.__all__
                if inspect.isclass(getattr(xpm_train, name)) and issubclass(getattr(xpm_train, name), Config)}
    pinned = {config.__xpm__.xpmtype.value_type.__name__ for config in configs().values()}
    reference = json.loads(REFERENCE.read_text())
    assert exported - INTERFACES <= pinned, f"exported but with no reference ID: {sorted(exported - INTERFACES - pinned)}"
    assert set(configs()) <= set(reference), f"not in reference_ids.json: {sorted(set(configs()) - set(reference))}"


def test_meta_does_not_change_id():
    ids = current_ids()
    assert ids["learn-mlp"] == ids["learn-mlp-meta"]
    assert ids["lightning-fit"] == ids["lightning-fit-meta"]


def identifier(config) -> str:
    return config.__xpm__.identifier.all.hex()


def test_no_meta_field_changes_an_id():
    """Every Meta of Learn and Evaluate (device, intervals, tracking, the Optuna
    trial, precision, ...) and of a dataset's folder leaves the ID unchanged."""
    from xpm_train import MNIST, MLP, Adam, Digits, Evaluate, Learn, MedianPruner, MLflowTracking, Streaming
    from xpm_train.tune.trial import OptunaTrial

    model, train, test = MLP.C(hidden_dims=[64]), Digits.C(split="train"), Digits.C(split="test")
    tracking = MLflowTracking.C(tracking_uri="file:///elsewhere/mlflow", experiment_id="7",
                                experiment_name="x", git_commit="abc", git_dirty=True, log_checkpoints=True)
    trial = OptunaTrial.C(journal="/ws/tune/s/journal.log", study_name="s", number=3, pruner=MedianPruner.C())

    def learn(**meta):
        return Learn.C(model=model, data=train, optimizer=Adam.C(lr=3e-3), epochs=10, batch_size=32, **meta)

    base = identifier(learn())
    streaming = Streaming.C(mode="always", workers=4, memory_budget=1 << 30)
    metas = dict(device="cpu", gpu_memory_fraction=0.5, tracking=tracking, trial=trial, amp="off",
                 compile=True, deterministic=True, log_interval=7, checkpoint_interval=3, streaming=streaming)
    for name, value in metas.items():
        assert identifier(learn(**{name: value})) == base, f"Learn.{name} changed the ID"
    assert identifier(learn(**metas)) == base
    assert identifier(learn(seed=1)) != base, "a Param must change the ID (else this test proves nothing)"

    evaluate = identifier(Evaluate.C(model=model, data=test))
    assert identifier(Evaluate.C(model=model, data=test, device="cpu", batch_size=7, tracking=tracking,
                                 streaming=streaming)) == evaluate
    assert identifier(MNIST.C(split="train", folder=Path("/a"))) == identifier(MNIST.C(split="train", folder=Path("/b")))


def test_explicit_defaults_do_not_change_id():
    """Params added with ``field(default=..., ignore_default=True)``: spelling the
    default out gives the ID of a config written before the param existed."""
    from xpm_train import MLP, Adam, Digits, Learn

    model, data = MLP.C(hidden_dims=[64]), Digits.C(split="train")
    implicit = Learn.C(model=model, data=data, optimizer=Adam.C(lr=3e-3))
    explicit = Learn.C(model=model, data=data, optimizer=Adam.C(lr=3e-3), schedule=None, epochs=10,
                       batch_size=64, val_fraction=0.1, split_seed=0, grad_clip=0.0, seed=0)
    other = Learn.C(model=model, data=data, optimizer=Adam.C(lr=3e-3), seed=1)
    ids = [c.__xpm__.identifier.all.hex() for c in (implicit, explicit, other)]
    assert ids[0] == ids[1] != ids[2]


if __name__ == "__main__" and "--update" in sys.argv:
    reference, current = json.loads(REFERENCE.read_text()), current_ids()
    changed = sorted(k for k in reference.keys() & current.keys() if reference[k] != current[k])
    if changed and "--accept-changes" not in sys.argv:
        sys.exit(f"IDs changed for {changed}: existing jobs would be retrained. Not written; if "
                 "intended, run again with --update --accept-changes and say why in the commit.")
    added = sorted(current.keys() - reference.keys())
    REFERENCE.write_text(json.dumps({**reference, **current}, indent=2) + "\n")
    print(f"wrote {REFERENCE}: added {added}, changed {changed}")
