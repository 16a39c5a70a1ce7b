"""Objectives: what a training minimises and how runs are compared.

An :class:`Objective` is a typed ``Param`` of ``Learn`` and ``Evaluate`` that
owns the loss, the metrics and the *score*: the one metric (and its
direction) by which the best checkpoint is kept, trials are pruned, Tune
optimises and ``xpm-train results --sort score`` ranks jobs, best first.

===================  ====================  =========================  ==========
objective            targets               metrics                    score
===================  ====================  =========================  ==========
``Classification``   int64 labels ``N``    loss, accuracy             accuracy, max
``Regression``       float ``N x ...``     loss, mse, mae, r2         mse, min
``Reconstruction``   the input itself      loss, mse                  mse, min
===================  ====================  =========================  ==========

The contract (see docs/extending.md): :meth:`Objective.describe` turns the
data into the :class:`~xpm_train.data.base.DataInfo` a model is built for
(the network's output size), :meth:`Objective.sums` returns per-batch sums
kept on the device (no host synchronisation per step) and
:meth:`Objective.metrics` turns summed values into metrics. Learn calls
:meth:`Objective.loss` on every batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Optional

from experimaestro import Config, Param, field

from .checks import OneOf
from .directions import CLASSIFICATION, RECONSTRUCTION, REGRESSION
from .errors import UserError, config_name
from .summary import MINIMIZE, Direction

if TYPE_CHECKING:
    import torch

    from .data.base import Arrays, DataInfo


class ObjectiveError(UserError, ValueError):
    """An objective that does not fit the data or the model (the message says which config to change)."""


class Objective(Config):
    """Loss, metrics and score of a training (interface)."""

    score: ClassVar[str] = "loss"
    """Name of the metric runs are compared by"""

    directions: ClassVar[dict[str, Direction]] = {"loss": MINIMIZE}
    """Which way each metric :meth:`metrics` (and Evaluate) gives is better:
    the summaries of Learn and Evaluate carry them (:mod:`xpm_train.summary`),
    so that results, Tune and export rank every metric the right way"""

    direction: ClassVar[Direction] = MINIMIZE
    """Which way the score is better (set from :attr:`directions`)"""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not {"score", "directions", "direction"} & set(cls.__dict__):
            return  # declares nothing (e.g. experimaestro's XPMConfig class of an objective): inherits
        directions = dict(cls.directions)
        if "directions" not in cls.__dict__ and "direction" in cls.__dict__:  # its score's direction only
            directions[cls.score] = cls.direction
        if cls.score not in directions:
            raise TypeError(f"{cls.__qualname__}.directions ({directions}) lacks its score {cls.score!r}: declare "
                            f"which way each metric it gives is better, e.g. directions = {{{cls.score!r}: "
                            "'minimize', ...}")
        cls.directions = {name: Direction.of(way, f"{cls.__qualname__}.directions[{name!r}]")
                          for name, way in directions.items()}
        cls.direction = cls.directions[cls.score]

    targets: ClassVar[str] = "values"
    """What the targets of the data must be: ``"classes"`` or ``"values"``
    (``"any"``: the objective ignores them)"""

    def better(self, value: float, than: Optional[float]) -> bool:
        """Whether score ``value`` beats ``than`` (None: anything does); a
        non-finite score (NaN, inf) never does, and any finite one beats it."""
        return self.direction.better(value, than)

    def check_data(self, kind: Optional[str], where: str) -> None:
        """Refuse data whose targets (``Dataset.targets()``) this objective cannot use."""
        if kind is None or self.targets == "any" or kind == self.targets:
            return
        fix = "Regression.C()" if kind == "values" else "Classification.C()"
        raise ObjectiveError(f"{where}: {config_name(self)} needs {self.targets} as targets but the data gives "
                             f"{kind}: use objective={fix} (or other data)")

    def describe(self, arrays: "Arrays") -> "DataInfo":
        """What a model must be built for, from the decoded data."""
        raise NotImplementedError(f"{config_name(self)} does not implement describe()")

    def target(self, inputs: "torch.Tensor", targets: "torch.Tensor", data) -> "torch.Tensor":
        """The tensor the outputs are compared with (``data``: the DeviceData
        the batch comes from). Default: the targets."""
        return targets

    def loss(self, outputs: "torch.Tensor", target: "torch.Tensor") -> "torch.Tensor":
        """The mean loss of a batch (what is back-propagated)."""
        raise NotImplementedError(f"{config_name(self)} does not implement loss()")

    parts: ClassVar[tuple[str, ...]] = ()
    """Parts of the training loss summed over an epoch and logged in its
    ``train`` record (:meth:`training_loss`); none for the objectives themselves"""

    def training_loss(self, outputs: "torch.Tensor", target: "torch.Tensor", inputs: "torch.Tensor",
                      parts: dict[str, "torch.Tensor"]) -> "torch.Tensor":
        """The loss Learn back-propagates for a batch of ``inputs`` (a wrapper
        such as distillation's adds its :attr:`parts` to ``parts``): :meth:`loss`."""
        return self.loss(outputs, target)

    def sums(self, outputs: "torch.Tensor", target: "torch.Tensor",
             loss: "Optional[torch.Tensor]" = None) -> dict[str, "torch.Tensor"]:
        """Per-batch sums (device tensors, summed over batches) :meth:`metrics`
        needs, ``n`` included; ``loss``: the batch's mean loss when already
        computed (training), so that it is not computed twice."""
        raise NotImplementedError(f"{config_name(self)} does not implement sums()")

    def metrics(self, sums: dict[str, "torch.Tensor"]) -> dict[str, float]:
        """Metrics of a split from the sums of its batches (score included)."""
        raise NotImplementedError(f"{config_name(self)} does not implement metrics()")

    def detail_sums(self, outputs: "torch.Tensor", target: "torch.Tensor") -> dict[str, "torch.Tensor"]:
        """Per-batch sums of what only Evaluate reports (:meth:`details`); default: none."""
        return {}

    def details(self, sums: dict[str, "torch.Tensor"]) -> dict[str, Any]:
        """What Evaluate reports besides :meth:`metrics`, from the sums of
        :meth:`sums` and :meth:`detail_sums`; default: nothing."""
        return {}

    def check_outputs(self, outputs: "torch.Tensor", info: "DataInfo", model) -> None:
        """Refuse a network whose output does not have ``info.outputs`` values per sample."""
        got = outputs[0].numel() if outputs.dim() else 0
        if got != info.outputs:
            raise ObjectiveError(
                f"{config_name(model)}: the network outputs {got} values per sample (shape "
                f"{tuple(outputs.shape[1:])}) but {config_name(self)} needs {info.outputs} "
                f"({self.output_description(info)}): make module(data) end with data.outputs units")

    def output_description(self, info: "DataInfo") -> str:
        return "one per target value"

    def summary(self) -> dict:
        """What ``final.json`` records of the objective."""
        return {"name": config_name(self), "score": self.score, "direction": str(self.direction)}


def flat(x: "torch.Tensor") -> "torch.Tensor":
    """``N x ...`` -> ``N x D`` float (a 1-D target is one value per sample)."""
    return x.reshape(x.shape[0], -1).float()


class Classification(Objective):
    """Cross-entropy over ``num_classes`` logits; score: accuracy (higher is better)."""

    score: ClassVar[str] = "accuracy"
    directions: ClassVar[dict[str, Direction]] = CLASSIFICATION
    targets: ClassVar[str] = "classes"

    def describe(self, arrays):
        from .data.base import DataInfo

        if arrays.num_classes is None:
            raise ObjectiveError(
                f"Classification: the data has {arrays.targets.dtype} values as targets, not class labels: "
                "use objective=Regression.C() (or a dataset giving labels and num_classes)")
        return DataInfo(shape=arrays.shape, outputs=arrays.num_classes, num_classes=arrays.num_classes,
                        target_shape=arrays.target_shape, classes=arrays.classes)

    def loss(self, outputs, target):
        import torch

        return torch.nn.functional.cross_entropy(outputs, target)

    def sums(self, outputs, target, loss=None):
        import torch

        total = (torch.nn.functional.cross_entropy(outputs.float(), target, reduction="sum") if loss is None
                 else loss.float() * len(target))
        return {"loss": total,
                "correct": (outputs.argmax(1) == target).sum(), "n": torch.tensor(len(target), device=target.device)}

    def metrics(self, sums):
        n = max(int(sums["n"]), 1)
        return {"loss": float(sums["loss"]) / n, "accuracy": int(sums["correct"]) / n}

    def detail_sums(self, outputs, target):
        import torch

        classes = outputs.shape[1]
        sums = {"confusion": torch.bincount(target * classes + outputs.argmax(1),
                                            minlength=classes**2).view(classes, classes)}
        if classes > 5:
            sums["top5"] = (outputs.topk(5, dim=1).indices == target[:, None]).any(dim=1).sum()
        return sums

    def details(self, sums):
        """Per-class accuracy and the confusion matrix (rows: true class,
        columns: predicted class); top-5 accuracy with more than 5 classes."""
        confusion = sums["confusion"].cpu()
        details = {"per_class_accuracy": (confusion.diagonal() / confusion.sum(dim=1).clamp(min=1)).tolist(),
                   "confusion_matrix": confusion.tolist()}
        if "top5" in sums:
            details["top5_accuracy"] = float(sums["top5"]) / max(int(sums["n"]), 1)
        return details

    def output_description(self, info):
        return f"one logit per class, {info.num_classes} classes"


class Regression(Objective):
    """MSE or L1 loss on float targets of any shape; metrics mse, mae and r2
    (averaged over target values, as scikit-learn's ``r2_score``); score: mse."""

    score: ClassVar[str] = "mse"
    directions: ClassVar[dict[str, Direction]] = REGRESSION
    targets: ClassVar[str] = "values"

    criterion: Annotated[Param[str], OneOf("mse", "l1")] = field(default="mse", ignore_default=True)
    """``mse`` (squared error) or ``l1`` (absolute error)"""

    def describe(self, arrays):
        import math

        from .data.base import DataInfo

        if arrays.num_classes is not None or not arrays.targets.is_floating_point():
            raise ObjectiveError("Regression: the data has class labels as targets: use "
                                 "objective=Classification.C() (or a dataset giving float values)")
        return DataInfo(shape=arrays.shape, outputs=math.prod(arrays.target_shape),
                        target_shape=arrays.target_shape)

    def loss(self, outputs, target):
        import torch.nn.functional as F

        outputs, target = flat(outputs), flat(target)
        return F.mse_loss(outputs, target) if self.criterion == "mse" else F.l1_loss(outputs, target)

    def sums(self, outputs, target, loss=None):
        import torch

        outputs, target = flat(outputs).double(), flat(target).double()
        error = outputs - target
        if loss is None:
            loss = (error**2).mean() if self.criterion == "mse" else error.abs().mean()
        return {"loss": loss.double() * target.numel(), "sse": (error**2).sum(0), "sae": error.abs().sum(0), "sy": target.sum(0),
                "syy": (target**2).sum(0), "n": torch.tensor(len(target), device=target.device)}

    def metrics(self, sums):
        n = max(int(sums["n"]), 1)
        sse, sae = sums["sse"].cpu(), sums["sae"].cpu()
        variance = (sums["syy"].cpu() - sums["sy"].cpu() ** 2 / n).clamp(min=1e-12)
        values = sse.numel()
        return {"loss": float(sums["loss"]) / (n * values), "mse": float(sse.sum()) / (n * values),
                "mae": float(sae.sum()) / (n * values), "r2": float((1 - sse / variance).mean())}


class Reconstruction(Objective):
    """An autoencoder: the target is the input (uint8 images in [0, 1] units),
    the loss ``mse`` or ``bce`` (binary cross-entropy on logits, for inputs in
    [0, 1]); metrics loss and mse (of the reconstruction); score: mse."""

    score: ClassVar[str] = "mse"
    directions: ClassVar[dict[str, Direction]] = RECONSTRUCTION
    targets: ClassVar[str] = "any"

    criterion: Annotated[Param[str], OneOf("mse", "bce")] = field(default="mse", ignore_default=True)
    """``mse`` on the outputs, or ``bce``: the outputs are logits of [0, 1] inputs"""

    def describe(self, arrays):
        import math

        from .data.base import DataInfo

        return DataInfo(shape=arrays.shape, outputs=math.prod(arrays.shape), num_classes=arrays.num_classes,
                        target_shape=arrays.shape, classes=arrays.classes)

    def target(self, inputs, targets, data):
        # The input before normalisation: [0, 1] for uint8 images, as given for floats
        return data.unnormalize(inputs)

    def reconstruction(self, outputs):
        """The reconstructed input (the outputs, or their sigmoid for ``bce``)."""
        return outputs.sigmoid() if self.criterion == "bce" else outputs

    def loss(self, outputs, target):
        import torch.nn.functional as F

        outputs, target = flat(outputs), flat(target)
        if self.criterion == "bce":
            return F.binary_cross_entropy_with_logits(outputs, target)
        return F.mse_loss(outputs, target)

    def sums(self, outputs, target, loss=None):
        import torch

        outputs, target = flat(outputs), flat(target)
        loss = self.loss(outputs, target) if loss is None else loss
        return {"loss": loss.double() * target.numel(),
                "sse": ((flat(self.reconstruction(outputs)) - target).double() ** 2).sum(),
                "values": torch.tensor(target.numel(), device=target.device),
                "n": torch.tensor(len(target), device=target.device)}

    def metrics(self, sums):
        values = max(int(sums["values"]), 1)
        return {"loss": float(sums["loss"]) / values, "mse": float(sums["sse"]) / values}

    def output_description(self, info):
        return f"one per input value, input shape {info.shape}"


def objective_of(config) -> Objective:
    """The objective of a Learn or Evaluate (Classification when not set)."""
    objective = getattr(config, "objective", None)
    return objective if objective is not None else Classification.C()

