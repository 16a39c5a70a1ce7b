"""Which way each metric of xpm-train's own measures is better, by name.

The one table that the objectives (``Classification.directions``...),
distillation (``Distillation.directions``) and training functions (the
default ``direction`` of their ``objective``) declare their metrics from, and
that :func:`xpm_train.summary.known_direction` reads for what declares none
(a summary written before directions were recorded, a metric given to
``report()`` without one, a log line read before the job's summary exists).

It imports nothing and sits below them all: whatever process reads a summary
or a log (a job, ``xpm-train watch``, results) knows the same directions as
the plan that declared them, without importing the objectives, experimaestro
or torch. Values are the strings of :class:`xpm_train.summary.Direction`.
"""

from __future__ import annotations

CLASSIFICATION = {"loss": "minimize", "accuracy": "maximize",
                  "top5_accuracy": "maximize"}  # top-5: Evaluate's
"""The metrics of :class:`xpm_train.objectives.Classification`"""

REGRESSION = {"loss": "minimize", "mse": "minimize", "mae": "minimize", "r2": "maximize"}
"""The metrics of :class:`xpm_train.objectives.Regression`"""

RECONSTRUCTION = {"loss": "minimize", "mse": "minimize"}
"""The metrics of :class:`xpm_train.objectives.Reconstruction`"""

DISTILLATION = {"ce": "minimize", "kl": "minimize"}
"""The parts of the loss :class:`xpm_train.distill.Distillation` logs"""

FUNCTION_OBJECTIVE = "maximize"
"""The direction of a training function's ``objective`` unless
``@training_function(direction=...)`` says otherwise"""

DECLARED = {"objective": FUNCTION_OBJECTIVE, **CLASSIFICATION, **REGRESSION, **RECONSTRUCTION, **DISTILLATION}
"""Every metric name above with its direction (what ``known_direction`` knows)"""
