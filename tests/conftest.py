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


@pytest.fixture(autouse=True, scope="session")
def private_warm_servers(tmp_path_factory):
    """Local jobs start warm (forked by a fork server, see
    xpm_train/warm/forkserver.py) from servers of this test session,
    which exit 2 minutes after its last job."""
    saved = {name: os.environ.get(name) for name in ("XPM_TRAIN_WARM_DIR", "XPM_TRAIN_WARM_IDLE_S")}
    os.environ["XPM_TRAIN_WARM_DIR"] = str(tmp_path_factory.mktemp("warm") / "s")
    os.environ.setdefault("XPM_TRAIN_WARM_IDLE_S", "120")
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(autouse=True, scope="session")
def no_carbon_pause():
    """The experiments the tests open in this process (``with experiment(...)``)
    run with carbon tracking off, as xpm_train.preflight turns it off for the
    plans: experimaestro 2.7 otherwise pauses 3 s with a warning in each one
    when CodeCarbon is missing."""
    from experimaestro.settings import get_settings

    carbon = get_settings().carbon
    saved = carbon.enabled
    carbon.enabled = False
    yield
    carbon.enabled = saved


@pytest.fixture(autouse=True)
def no_leaked_tracking_uri():
    """A test that sets MLFLOW_TRACKING_URI in this process must not send the
    plans of later tests to its (stopped) server."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    if os.environ.get("MLFLOW_TRACKING_URI") != before:
        if before is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = before


@pytest.fixture(scope="session")
def provenance_plan(tmp_path_factory):
    """The tiny plan of tests/provhelpers.py, run once: ``(plan folder, workspace)``
    (tests/test_provenance.py, tests/test_reproduce.py)."""
    from provhelpers import run_plan

    return run_plan(tmp_path_factory.mktemp("provenance"))
