"""Host-wide counters (xpm_train.launchers.tokens) across experiments that
start at the same moment."""

from __future__ import annotations

import json
import threading
import time

from xpm_train.launchers.tokens import HostCounter


def test_a_counter_file_being_rewritten_is_read_once_written(tmp_path):
    """experimaestro rewrites a counter's informations.json in place whenever
    an experiment creates the counter: one starting at the same moment read it
    empty (seen in CI: two plans of one study, JSONDecodeError at submission)."""
    counter = HostCounter("xpm-train.box.cores", tmp_path / "box.cores.counter", 4)
    informations = tmp_path / "box.cores.counter" / "informations.json"
    informations.write_text("")  # the other experiment has truncated it...

    def finish_writing():
        time.sleep(0.1)
        informations.write_text(json.dumps({"total": 4}))  # ... and then writes it

    writer = threading.Thread(target=finish_writing)
    writer.start()
    try:
        assert counter._read_informations() == 4
    finally:
        writer.join()
