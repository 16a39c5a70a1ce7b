"""Hyper-parameter search: Optuna studies whose trials are content-addressed
Learn tasks (see ``docs/tune.md``).

- :mod:`.space`: what varies (:class:`Space`, :class:`Float`, :class:`Int`,
  :class:`Categorical`), bound to Param paths such as ``optimizer.lr``;
- :mod:`.study`: :class:`Study`, whose content names it;
- :mod:`.samplers`, :mod:`.pruners`: typed Optuna samplers and pruners;
- :mod:`.storage`: the journal file of a study in the workspace;
- :mod:`.trial`: :class:`OptunaTrial`, the Meta reference a Learn reports to;
- :mod:`.asha`: :class:`ASHA`, trials trained rung by rung, paused and promoted;
- :mod:`.driver`: :func:`optimize`, the ask/tell loop run by a plan, and its :class:`TuneResult`;
- :mod:`.loop`: the trials of one driver: asked, submitted, followed, told to Optuna;
- :mod:`.task`: :class:`Tune`, the record of a finished study.

Nothing here imports optuna until a study is run.
"""

from .asha import ASHA
from .driver import TuneResult, optimize
from .pruners import Hyperband, MedianPruner, NoPruner, Pruner, SuccessiveHalving
from .samplers import TPE, Random, Sampler
from .space import Categorical, Float, Int, Space, SpaceError
from .study import Study
from .task import Tune
from .trial import OptunaTrial

__all__ = [
    "ASHA", "Categorical", "Float", "Hyperband", "Int", "MedianPruner", "NoPruner", "OptunaTrial", "Pruner",
    "Random", "Sampler", "Space", "SpaceError", "Study", "SuccessiveHalving", "TPE", "Tune", "TuneResult",
    "optimize",
]
