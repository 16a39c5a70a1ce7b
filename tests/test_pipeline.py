"""The device-resident pipeline samples like a shuffled DataLoader."""

import torch

from xpm_train.data.base import ImageArrays
from xpm_train.pipeline import DeviceData, epoch_order, split_indices


def arrays(n=50):
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()
    return ImageArrays(images=images, labels=torch.arange(n) % 3, num_classes=3, mean=(0.5,), std=(0.25,))


def test_every_sample_once_per_epoch():
    data = DeviceData(arrays(), torch.device("cpu"))
    order = epoch_order(len(data), seed=1, epoch=0)
    seen = torch.cat([images[:, 0, 0, 0] for images, _ in data.batches(8, order)])
    raw = seen * (0.25 * 255) + 0.5 * 255
    assert sorted(raw.round().long().tolist()) == list(range(50))


def test_order_depends_on_seed_and_epoch_only():
    assert torch.equal(epoch_order(100, 3, 2), epoch_order(100, 3, 2))
    assert not torch.equal(epoch_order(100, 3, 2), epoch_order(100, 3, 3))
    assert not torch.equal(epoch_order(100, 3, 2), epoch_order(100, 4, 2))


def test_resume_mid_epoch_gives_same_batches():
    data = DeviceData(arrays(), torch.device("cpu"))
    order = epoch_order(len(data), seed=0, epoch=5)
    full = [labels for _, labels in data.batches(8, order)]
    resumed = [labels for _, labels in data.batches(8, order, start=3)]
    assert all(torch.equal(a, b) for a, b in zip(full[3:], resumed)) and len(resumed) == len(full) - 3


def test_split_is_disjoint_and_seeded():
    train, val = split_indices(100, 0.2, seed=7)
    assert len(val) == 20 and len(train) == 80
    assert set(train.tolist()).isdisjoint(val.tolist())
    assert torch.equal(val, split_indices(100, 0.2, seed=7)[1])


def test_normalization():
    data = DeviceData(arrays(), torch.device("cpu"))
    images, _ = next(data.batches(50))
    expected = (torch.arange(50.0) - 0.5 * 255) / (0.25 * 255)
    assert torch.allclose(images[:, 0, 0, 0], expected)


def test_host_staged_batches_equal_device_resident_ones():
    """A split that does not fit on the device is staged from host memory: same batches."""
    import torch

    from xpm_train import Synthetic
    from xpm_train.pipeline import DeviceData, epoch_order

    arrays = Synthetic.C(split="train", num_samples=100).instance().arrays()
    resident = DeviceData(arrays, torch.device("cpu"), resident=True)
    staged = DeviceData(arrays, torch.device("cpu"), resident=False)
    order = epoch_order(100, 0, 1)
    for (a, la), (b, lb) in zip(resident.batches(32, order, start=1), staged.batches(32, order, start=1)):
        assert torch.equal(a, b) and torch.equal(la, lb)


def test_channels_last_batches_hold_the_same_values():
    """Convolutional models get NHWC batches (faster with oneDNN and cuDNN): same values."""
    from xpm_train import CNN, MLP, ResNet, Synthetic

    arrays = Synthetic.C(split="train", num_samples=40, channels=3, height=6, width=6).instance().arrays()
    plain = DeviceData(arrays, torch.device("cpu"))
    nhwc = DeviceData(arrays, torch.device("cpu"), channels_last=True)
    order = epoch_order(40, 0, 0)
    for (a, la), (b, lb) in zip(plain.batches(16, order), nhwc.batches(16, order)):
        assert b.is_contiguous(memory_format=torch.channels_last) and not a.is_contiguous(
            memory_format=torch.channels_last)
        assert torch.equal(a, b) and torch.equal(la, lb)
    assert CNN.C().channels_last() and ResNet.C().channels_last() and not MLP.C().channels_last()


def test_batches_are_bit_identical_to_the_textbook_formula():
    """The in-place, index_select batches hold exactly ``(images[index].float() - mean) / std``:
    the speed-up changes no result (and so no job needs another ID)."""
    from xpm_train import Synthetic

    source = Synthetic.C(split="train", num_samples=100, channels=3).instance().arrays()
    data = DeviceData(source, torch.device("cpu"))
    order = epoch_order(100, 0, 0)
    mean = torch.tensor(source.mean).view(1, -1, 1, 1) * 255
    std = torch.tensor(source.std).view(1, -1, 1, 1) * 255
    for number, (images, labels) in enumerate(data.batches(32, order)):
        index = order[number * 32:(number + 1) * 32]
        assert torch.equal(images, (source.images[index].float() - mean) / std)
        assert torch.equal(labels, source.labels[index])


def test_subset_of_everything_in_order_is_the_split_itself():
    """``val_fraction=0`` trains on the whole split: no 47 MB copy of MNIST at start-up."""
    source = arrays()
    assert source.subset(torch.arange(50)) is source
    shuffled = source.subset(torch.arange(50).flip(0))
    assert shuffled is not source and torch.equal(shuffled.images, source.images.flip(0))
    part = source.subset(torch.arange(10))
    assert len(part) == 10 and torch.equal(part.labels, source.labels[:10])
    assert len(source.subset(source.labels == 0)) == int((source.labels == 0).sum())
