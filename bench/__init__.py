"""xpm-train's benchmark suite (issue 6, Speed): ``python -m bench [--quick]``.

One module per benchmark (:mod:`bench.throughput`, :mod:`bench.startup`,
:mod:`bench.scheduler`, :mod:`bench.time_to_accuracy`), the experimaestro
demo's training loop as the baseline (:mod:`bench.demo_loop`), the plans the
benchmarks run for real (``bench/plans/``) and the driver (:mod:`bench.run`)
that prints one markdown table and writes the JSON. Not part of the tests.
"""
