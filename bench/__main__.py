"""``python -m bench [--quick] [--out FILE]``: see :mod:`bench.run`."""

from bench.run import main

raise SystemExit(main())
