"""The warm start: local (and Slurm pool) jobs forked from a per-user server
that has imported torch, experimaestro and xpm_train once.

:mod:`.forkclient` (the process the launcher starts for a job: stdlib only,
run under ``python -S``), :mod:`.forkserver` (the server that forks the
jobs), :mod:`.child` (the forked job's side: a process equal to a cold
interpreter's), :mod:`.freshness` (what the server preloads, and whether it
is still today's code and safe to fork) and :mod:`.messages` (what client
and server say to each other, one class per message). Nothing is imported
here: the client must start in milliseconds. See docs/performance.md.
"""
