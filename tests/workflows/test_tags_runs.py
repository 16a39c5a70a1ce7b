"""Tags of jobs that the latest run did not submit, and of a failed run that
experimaestro removed, with the real scheduler."""

import pytest

pytestmark = pytest.mark.integration


def test_a_job_keeps_the_tags_of_a_removed_failed_run(tmp_path):
    from experimaestro import experiment
    from nomodel import fit_nothing

    from xpm_train import results

    ws = tmp_path / "ws"
    with pytest.raises(RuntimeError, match="the plan failed"):
        with experiment(ws, "grid", port=None) as xp:  # run 1 submits hidden_dim=48, then fails
            fit_nothing.C(offset=0.48, device="cpu").tag("hidden_dim", 48).submit()
            xp.wait()
            raise RuntimeError("the plan failed")
    with experiment(ws, "grid", port=None):  # run 2: another grid point; experimaestro removes run 1
        fit_nothing.C(offset=0.32, device="cpu").tag("hidden_dim", 32).submit()
    assert len(list((ws / "experiments" / "grid").glob("2*"))) == 1  # run 1 is gone

    found = results(ws, where=["hidden_dim=48"])
    assert len(found) == 1 and found.iloc[0]["final.val_loss"] == pytest.approx(1.48)
    assert set(results(ws)["hidden_dim"]) == {48, 32}
    assert len(results(ws, experiment="grid", where=["hidden_dim=32"])) == 1
