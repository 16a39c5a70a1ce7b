"""Batch augmentation on the device: what each transformation does, and that it
depends only on (seed, epoch, batch) so that resumed runs replay it."""

import pytest
import torch

from xpm_train.augment import Augment, cutout, random_crop, random_flip, batch_generator


def batch(n=16, c=3, h=8, w=8):
    return torch.arange(n * c * h * w, dtype=torch.float32).view(n, c, h, w) + 1  # no zeros


def test_random_crop_takes_a_window_of_the_padded_image():
    images = batch()
    out = random_crop(images, 2, batch_generator(torch.device("cpu"), 0, 0, 0))
    assert out.shape == images.shape
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for i in range(len(images)):
        windows = [padded[i, :, y:y + 8, x:x + 8] for y in range(5) for x in range(5)]
        assert any(torch.equal(out[i], window) for window in windows)
    assert not torch.equal(out, images)  # some offsets are not the centre


def test_flip_probability_bounds():
    images = batch()
    gen = lambda: batch_generator(torch.device("cpu"), 0, 0, 0)  # noqa: E731
    assert torch.equal(random_flip(images, 1.0, gen()), images.flip(3))
    assert torch.equal(random_flip(images, 0.0, gen()), images)


def test_cutout_zeroes_one_square_per_image():
    images = batch()
    out = cutout(images, 4, batch_generator(torch.device("cpu"), 1, 2, 3))
    zeros = (out == 0).all(dim=1).flatten(1).sum(1)  # zeroed pixels per image (all channels)
    assert ((zeros >= 1) & (zeros <= 16)).all()
    assert torch.equal(out[out != 0], images[out != 0])


def test_augmentation_depends_only_on_seed_epoch_batch():
    images = batch()
    augment = Augment.C(crop_padding=2, flip=True, cutout=3).instance()
    first = augment.apply(images, seed=5, epoch=1, batch=7)
    torch.manual_seed(123)  # the global RNG plays no part
    assert torch.equal(augment.apply(images, seed=5, epoch=1, batch=7), first)
    assert not torch.equal(augment.apply(images, seed=5, epoch=1, batch=8), first)


def test_augment_params_are_checked():
    with pytest.raises(Exception, match="crop_padding|must be"):
        Augment.C(crop_padding=-1)
