"""Session-wide test settings."""

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def private_host_counters(tmp_path_factory):
    """The local launcher's host-wide counters (cores, memory, GPUs) live in a
    folder of this test session, so that the jobs of the tests never wait for
    other jobs running on the same host (and leave no reservation behind)."""
    previous = os.environ.get("XPM_TRAIN_TOKENS_DIR")
    os.environ["XPM_TRAIN_TOKENS_DIR"] = str(tmp_path_factory.mktemp("host-counters"))
    yield
    if previous is None:
        del os.environ["XPM_TRAIN_TOKENS_DIR"]
    else:
        os.environ["XPM_TRAIN_TOKENS_DIR"] = previous
