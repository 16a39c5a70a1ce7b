"""The warm start's client moved to :mod:`xpm_train.warm.forkclient`; this
name stays importable (it is that very module)."""

import sys

from ..warm import forkclient

sys.modules[__name__] = forkclient
