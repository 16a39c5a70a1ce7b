"""Task IDs are a contract: an accidental change would silently retrain
everything. The IDs of representative configs are kept in reference_ids.json.

If a change of ID is intended (a bumped ``version`` Constant), regenerate the
file with ``python tests/test_ids.py --update`` and say why in the commit.
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
    }


def current_ids():
    return {name: config.__xpm__.identifier.all.hex() for name, config in configs().items()}


def test_ids_match_reference():
    reference = json.loads(REFERENCE.read_text())
    current = current_ids()
    changed = {k: (reference.get(k), v) for k, v in current.items() if reference.get(k) != v}
    assert not changed, (
        f"task IDs changed for {sorted(changed)}: every existing job of these would be retrained. "
        "If intended, run `python tests/test_ids.py --update`."
    )


def test_meta_does_not_change_id():
    ids = current_ids()
    assert ids["learn-mlp"] == ids["learn-mlp-meta"]


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
    REFERENCE.write_text(json.dumps(current_ids(), indent=2) + "\n")
    print(f"wrote {REFERENCE}")
