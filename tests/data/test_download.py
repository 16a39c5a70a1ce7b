"""The downloader and prepare_*: HTTP and file:// mirrors, checksums, no re-download."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from xpm_train.data import (
    ChecksumError,
    DatasetSource,
    DownloadError,
    RemoteFile,
    prepare_cifar10,
    prepare_mnist,
    write_cifar10_dataset,
    write_idx_dataset,
)
from xpm_train.data.download import download, ensure_file
from xpm_train.data.files import file_digest


def _visible_files(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_prepare_over_http_then_nothing_is_requested_again(tmp_path, http_mirror):
    source = write_idx_dataset(http_mirror.folder, 60, 20, base_url=http_mirror.url)
    mnist = prepare_mnist(root=tmp_path / "data", source=source)
    assert len(http_mirror.requests) == 4
    folder = tmp_path / "data" / "mnist"
    for remote in source.files:  # same bytes as served, no temporary file left
        assert (folder / remote.name).read_bytes() == (http_mirror.folder / remote.name).read_bytes()
    assert _visible_files(folder) == sorted(remote.name for remote in source.files)
    assert mnist.train.folder == folder and mnist.train.split == "train" and mnist.test.split == "test"

    again = prepare_mnist(root=tmp_path / "data", source=source)
    assert len(http_mirror.requests) == 4, "a second prepare must not download anything"
    assert again.train.__xpm__.identifier.all == mnist.train.__xpm__.identifier.all


def test_prepare_from_file_urls(tmp_path):
    source = write_cifar10_dataset(tmp_path / "mirror", 50, 10)
    assert source.files[0].urls[0].startswith("file://")
    cifar = prepare_cifar10(root=tmp_path / "data", source=source)
    arrays = cifar.test.instance().arrays()
    assert arrays.shape == (3, 32, 32) and len(arrays) == 10 and arrays.num_classes == 10


def test_checksum_mismatch_is_clear_and_leaves_nothing(tmp_path, http_mirror):
    source = write_idx_dataset(http_mirror.folder, 10, 10, base_url=http_mirror.url)
    wrong = dataclasses.replace(source.files[0], md5="0" * 32)
    destination = tmp_path / "data"
    with pytest.raises(ChecksumError) as error:
        ensure_file(wrong, destination)
    message = str(error.value)
    assert wrong.urls[0] in message and "0" * 32 in message
    assert file_digest(http_mirror.folder / wrong.name) in message
    assert "Retry" in message and str(destination / wrong.name) in message
    assert _visible_files(destination) == [], "no partial or temporary file may remain"


def test_mismatch_through_prepare_keeps_the_valid_files(tmp_path, http_mirror):
    source = write_idx_dataset(http_mirror.folder, 10, 10, base_url=http_mirror.url)
    files = list(source.files)
    files[2] = dataclasses.replace(files[2], md5="f" * 32)
    with pytest.raises(ChecksumError):
        prepare_mnist(root=tmp_path, source=dataclasses.replace(source, files=tuple(files)))
    assert _visible_files(tmp_path / "mnist") == sorted(f.name for f in files[:2])


def test_next_mirror_is_tried_when_one_fails(tmp_path, http_mirror):
    source = write_idx_dataset(http_mirror.folder, 10, 10, base_url=http_mirror.url)
    remote = source.files[1]
    remote = dataclasses.replace(remote, urls=(f"{http_mirror.url}/missing/{remote.name}", *remote.urls))
    assert ensure_file(remote, tmp_path) is True
    assert file_digest(tmp_path / remote.name) == remote.md5
    assert len(http_mirror.requests) == 2


def test_all_mirrors_failing_names_them(tmp_path, http_mirror):
    remote = RemoteFile("x.gz", (f"{http_mirror.url}/nope.gz", (tmp_path / "absent").as_uri()), "0" * 32)
    with pytest.raises(DownloadError) as error:
        ensure_file(remote, tmp_path / "data")
    assert all(url in str(error.value) for url in remote.urls)
    assert "place it at" in str(error.value)
    assert _visible_files(tmp_path / "data") == []


def test_corrupted_local_file_is_fetched_again(tmp_path, http_mirror):
    source = write_idx_dataset(http_mirror.folder, 10, 10, base_url=http_mirror.url)
    remote = source.files[0]
    (tmp_path / remote.name).write_bytes(b"garbage")
    assert ensure_file(remote, tmp_path) is True
    assert file_digest(tmp_path / remote.name) == remote.md5


def test_progress_is_logged(tmp_path, caplog):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "blob").write_bytes(bytes(3 << 20))
    md5 = file_digest(mirror / "blob")
    with caplog.at_level(logging.INFO, logger="xpm_train.data.download"):
        download((mirror / "blob").as_uri(), tmp_path / "out" / "blob", md5, progress_every=1 << 20)
    progress = [r.getMessage() for r in caplog.records if "%)" in r.getMessage()]
    assert len(progress) >= 3 and "3.0 of 3.0 MiB (100%)" in progress[-1]


def test_official_sources_are_well_formed():
    """Every published file and md5 is the one torchvision (an independent
    copy of the official lists) checks downloads against."""
    import torchvision.datasets as tv

    from xpm_train.data import CIFAR10_SOURCE, FASHION_MNIST_SOURCE, MNIST_SOURCE

    published = {
        MNIST_SOURCE: dict(tv.MNIST.resources),
        FASHION_MNIST_SOURCE: dict(tv.FashionMNIST.resources),
        CIFAR10_SOURCE: {tv.CIFAR10.filename: tv.CIFAR10.tgz_md5},
    }
    for source, expected in published.items():
        assert isinstance(source, DatasetSource)
        assert {remote.name: remote.md5 for remote in source.files} == expected
        for remote in source.files:
            assert remote.urls and all(url.endswith("/" + remote.name) for url in remote.urls)


def test_default_root_follows_datamaestro_dir(monkeypatch, tmp_path):
    from xpm_train.data import default_data_root

    monkeypatch.setenv("DATAMAESTRO_DIR", str(tmp_path))
    assert default_data_root() == tmp_path / "data" / "xpm-train"
