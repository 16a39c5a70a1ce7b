"""``xpm-train watch``: a live table of a sweep's jobs, read from their folders.

- :mod:`.state`: one job, read incrementally (only the appended bytes);
- :mod:`.sweep`: which jobs are shown (workspace, experiment, study, tags);
- :mod:`.gpus`: the memory and use of a job's GPUs (nvidia-smi);
- :mod:`.view`: the text frame and the terminal loop (keys).
"""
