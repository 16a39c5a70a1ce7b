"""Streaming: the in-memory path's batches, read from the prepared records; the
decision and its reason; a resumed epoch reads only the batches still to do."""

import pytest
import torch

from xpm_train.data import Synthetic, prepare_image_folder
from xpm_train.data.stream import BatchReader, Streaming, decide, open_split
from xpm_train.measure import split_metrics
from xpm_train.objectives import Classification
from xpm_train.pipeline import DeviceData
from xpm_train.sampler import epoch_order

from test_imagefolder import write_folder

CPU = torch.device("cpu")


def pairs(left, right):
    left, right = list(left), list(right)
    assert len(left) == len(right) > 0
    return zip(left, right)


@pytest.mark.parametrize("workers", [0, 2])
def test_streamed_batches_are_the_in_memory_ones(tmp_path, workers):
    """Same order (seed, epoch), same start, same shard of every rank, same values."""
    config = prepare_image_folder(write_folder(tmp_path / "pets", per_class=60, size=8)).train
    arrays = config.instance().arrays()
    streamed, why = open_split(config.instance(), Streaming.C(memory_budget=1, workers=workers, root=tmp_path / "p"))
    assert streamed is not None and "> 0.000 GB (Streaming.memory_budget)" in why and len(streamed) == len(arrays)
    positions = torch.arange(10, len(arrays))  # a subset, as Learn's train split
    memory, stream = DeviceData(arrays.subset(positions), CPU), streamed.data(positions, CPU)
    order = epoch_order(len(positions), seed=5, epoch=2)
    for rank in range(2):
        for (x, y), (u, v) in pairs(memory.batches(16, order, start=1, rank=rank, world=2),
                                    stream.batches(16, order, start=1, rank=rank, world=2)):
            assert torch.equal(x, u) and torch.equal(y, v)
    for (x, y), (u, v) in pairs(memory.batches(30), stream.batches(30)):  # in stored order (evaluation)
        assert torch.equal(x, u) and torch.equal(y, v)
    objective = Classification.C().instance()
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2))
    assert split_metrics(net, memory, objective, 17) == split_metrics(net, stream, objective, 17)
    assert (split_metrics(net, memory, objective, 17, details=True)
            == split_metrics(net, stream, objective, 17, details=True))  # Evaluate's
    assert stream.unnormalize(next(stream.batches(4))[0]).max() <= 1.0


def test_a_resumed_epoch_reads_only_the_batches_left(tmp_path, monkeypatch):
    read = []
    getitem = BatchReader.__getitem__
    monkeypatch.setattr(BatchReader, "__getitem__", lambda self, idx: read.append(list(idx)) or getitem(self, idx))
    config = Synthetic.C(split="train", num_samples=200).instance()
    streamed, _ = open_split(config, Streaming.C(mode="always", workers=0, root=tmp_path))
    data = streamed.data(None, CPU)
    order = epoch_order(200, seed=1, epoch=0)
    batches = list(data.batches(32, order, start=4))
    assert len(batches) == 3 and len(read) == 3  # batches 4, 5, 6 (the last one short): nothing before
    assert [i for batch in read for i in batch] == order[4 * 32:].tolist()


def test_the_decision_and_its_reason(tmp_path):
    folder = prepare_image_folder(write_folder(tmp_path / "pets", per_class=10, size=8)).test.instance()
    size = 4 * 3 * 8 * 8  # the test split: 2 images per class
    assert decide(folder.records(), Streaming.C(memory_budget=size)) == (
        False, f"{size / 1e9:.3f} GB <= {size / 1e9:.3f} GB (Streaming.memory_budget)")
    assert decide(folder.records(), Streaming.C(memory_budget=size - 1))[0]
    stream, why = decide(folder.records(), Streaming.C())
    assert not stream and "of the available memory" in why  # tiny: in memory, the default
    synthetic = Synthetic.C(split="train").instance()
    assert decide(synthetic.records(), Streaming.C()) == (
        False, "its size is not known before loading it (Streaming.mode='always' streams it)")
    assert open_split(synthetic, Streaming.C(mode="never")) == (None, "Streaming.mode='never'")
    assert decide(synthetic.records(), Streaming.C(mode="always")) == (True, "Streaming.mode='always'")
    with pytest.raises(ValueError, match="Streaming.mode='sometimes': use one of"):
        Streaming.C(mode="sometimes").instance()
