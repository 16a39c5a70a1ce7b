"""ImageFolder: read with torchvision, decoded once, IDs independent of the folder's
place, changed files detected, bad folders refused in one line."""

import shutil

import numpy as np
import pytest
from PIL import Image

from xpm_train.data import ImageFolderError, prepare_image_folder


def write_folder(root, per_class=5, classes=("cat", "dog"), size=6, seed=0):
    """PNG files in the torchvision layout; class k's images are k-dependent."""
    rng = np.random.default_rng(seed)
    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 64, size=(3, size, size)) + 128 * k
            Image.fromarray(pixels.astype(np.uint8).transpose(1, 2, 0)).save(root / name / f"{i}.png")
    return root


def test_decoded_like_torchvision(tmp_path):
    from torchvision.datasets import ImageFolder as TorchvisionImageFolder
    from torchvision.transforms.functional import pil_to_tensor

    folder = write_folder(tmp_path / "pets")
    splits = prepare_image_folder(folder, test_fraction=0.2)
    train, test = splits.train.instance().arrays(), splits.test.instance().arrays()
    assert (len(train), len(test)) == (8, 2) and sorted(test.labels.tolist()) == [0, 1]  # stratified
    assert train.classes == ("cat", "dog") and train.shape == (3, 6, 6) and train.num_classes == 2
    reference = TorchvisionImageFolder(str(folder))
    images = {tuple(pil_to_tensor(image).flatten().tolist()): label for image, label in reference}
    for image, label in zip(train.images, train.labels):
        assert images[tuple(image.flatten().tolist())] == int(label)
    assert list(tmp_path.glob("pets.*.xpm-cache.npz")), "decoded once into the cache beside the folder"


def test_ids_follow_the_content_not_the_place(tmp_path):
    folder = write_folder(tmp_path / "a" / "pets")
    before = prepare_image_folder(folder).train
    moved = tmp_path / "b" / "pets"
    shutil.move(str(folder), str(moved))
    after = prepare_image_folder(moved).train
    assert before.__identifier__().all == after.__identifier__().all
    assert after.instance().arrays().num_classes == 2  # the moved folder reads (the cache is rebuilt)

    write_folder(moved, per_class=1, seed=1)  # overwrite one image per class: new content
    changed = prepare_image_folder(moved).train
    assert changed.__identifier__().all != after.__identifier__().all
    with pytest.raises(ImageFolderError, match=r"its files changed since the plan was made.*run the plan again"):
        after.instance().arrays()


def test_bad_folders_are_refused_in_one_line(tmp_path):
    with pytest.raises(ImageFolderError, match="no such folder"):
        prepare_image_folder(tmp_path / "missing")
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    with pytest.raises(ImageFolderError, match="no image files"):
        prepare_image_folder(tmp_path / "empty")
    one = write_folder(tmp_path / "one", classes=("cat",))
    with pytest.raises(ImageFolderError, match="only one class .'cat'. has images"):
        prepare_image_folder(one)
    broken = write_folder(tmp_path / "broken")
    (broken / "dog" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ImageFolderError, match=r"cannot decode .*bad.png.*remove or replace"):
        prepare_image_folder(broken)
    mixed = write_folder(tmp_path / "mixed")
    write_folder(mixed, per_class=1, size=8, seed=2)
    with pytest.raises(ImageFolderError, match=r"different sizes.*size=\(height, width\)"):
        prepare_image_folder(mixed)
    assert prepare_image_folder(mixed, size=(4, 4)).train.instance().arrays().shape == (3, 4, 4)


def write_gray_folder(root, per_class=5, classes=("cat", "dog"), size=6, pil_mode="L"):
    """Greyscale PNGs (PIL mode ``pil_mode``) in the torchvision layout."""
    rng = np.random.default_rng(3)
    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = (rng.integers(0, 64, size=(size, size)) + 128 * k).astype(np.uint8)
            Image.fromarray(pixels).convert(pil_mode).save(root / name / f"{i}.png")
    return root


def test_channels_follow_the_images(tmp_path):
    gray = write_gray_folder(tmp_path / "gray")
    splits = prepare_image_folder(gray)
    arrays = splits.train.instance().arrays()
    assert splits.train.mode == "gray" and arrays.shape == (1, 6, 6)
    reference = {tuple(np.asarray(Image.open(path)).flatten().tolist()) for path in sorted(gray.glob("*/*.png"))}
    assert all(tuple(image.flatten().tolist()) in reference for image in arrays.images)  # the very pixels
    assert len(splits.train.instance().arrays().mean) == 1
    assert write_gray_folder(tmp_path / "bits", pil_mode="1") and prepare_image_folder(tmp_path / "bits").train.mode == "gray"
    # an explicit mode still wins
    assert prepare_image_folder(gray, mode="rgb").train.instance().arrays().shape == (3, 6, 6)

    colour = write_folder(tmp_path / "colour")
    detected = prepare_image_folder(colour).train
    assert detected.mode == "rgb" and detected.instance().arrays().shape == (3, 6, 6)
    # an RGB folder keeps the ID it had when "rgb" was the default
    assert detected.__identifier__().all == prepare_image_folder(colour, mode="rgb").train.__identifier__().all
    assert prepare_image_folder(colour, mode="gray").train.instance().arrays().shape == (1, 6, 6)

    # a mixed folder: one colour image makes it RGB (its grey images repeated on 3 channels)
    mixed = write_gray_folder(tmp_path / "mixed")
    Image.fromarray(np.full((6, 6, 3), 9, np.uint8)).save(mixed / "dog" / "colour.png")
    assert prepare_image_folder(mixed).train.instance().arrays().shape == (3, 6, 6)
    # streaming (decode=False) detects the same way
    assert prepare_image_folder(gray, decode=False).train.mode == "gray"


def test_logs_stay_short_for_a_large_folder(tmp_path, caplog):
    """Preparing a 500-file folder logs a count and a few names, not every file."""
    import logging

    from xpm_train.data.preparation import prepare

    folder = write_folder(tmp_path / "many", per_class=250, size=2)
    with caplog.at_level(logging.DEBUG):
        splits = prepare_image_folder(folder)
        splits.train.instance().arrays()
        prepare(splits.train.instance().records(), root=tmp_path / "prepared", workers=1, chunk_records=256)
    lines = [record.getMessage() for record in caplog.records]
    assert any("Decoding 501 files" in line for line in lines), lines  # the folder and its 500 images
    assert max(len(line) for line in lines) < 500, max(lines, key=len)[:300]
