"""The warm start's fork server moved to :mod:`xpm_train.warm.forkserver`;
this name stays importable (it is that very module) and runnable
(``python -m xpm_train.launchers.forkserver KEY``)."""

import sys

from ..warm import forkserver

if __name__ == "__main__":
    forkserver.main(sys.argv[1:])
else:
    sys.modules[__name__] = forkserver
