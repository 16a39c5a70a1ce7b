"""Where the raw files of a downloadable dataset come from, and fetching them.

A downloadable dataset's module (:mod:`~xpm_train.data.mnist`,
:mod:`~xpm_train.data.cifar`) declares its :class:`DatasetSource`: the
official files with the md5 checksums published with the dataset (and listed
by torchvision's dataset definitions). :func:`fetch_source` makes sure they
are in ``<data root>/<folder>``, stored unchanged (still compressed); the
default data root is datamaestro's data folder (``$DATAMAESTRO_DIR/data``, by
default ``~/datamaestro/data``) under ``xpm-train/``. :func:`mirror_source`
fetches them from a mirror instead, :func:`local_source` from files a test
wrote.

datamaestro's own dataset definitions are not used for the download:
datamaestro-image's MNIST carries no checksum and stores decompressed copies,
and datamaestro 1.16 verifies a transformed download only after writing it
to its final place. The files still live in datamaestro's data folder.
"""

from __future__ import annotations

import logging
import os
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path

from .download import TIMEOUT, DownloadError, RemoteFile, ensure_files

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DatasetSource:
    """The official files of one dataset and the folder they are kept in."""

    folder: str
    """Sub-folder of the data root holding the files"""

    files: tuple[RemoteFile, ...]
    """The raw files, as published"""

    def file(self, name: str) -> RemoteFile:
        """The file called ``name`` (KeyError naming the known files otherwise)."""
        for remote in self.files:
            if remote.name == name:
                return remote
        raise KeyError(f"{self.folder} has no file {name!r} (files: {[f.name for f in self.files]})")


def remote_files(mirrors: tuple[str, ...], md5s: dict[str, str]) -> tuple[RemoteFile, ...]:
    """One :class:`RemoteFile` per ``{name: md5}``, fetched from ``<mirror><name>`` in order."""
    return tuple(RemoteFile(name, tuple(m + name for m in mirrors), md5) for name, md5 in md5s.items())


def default_data_root() -> Path:
    """``<datamaestro data folder>/xpm-train``, read from ``DATAMAESTRO_DIR`` at call time.

    Same rule as datamaestro's ``Context`` (``$DATAMAESTRO_DIR`` or
    ``~/datamaestro``, then ``data``), evaluated when called rather than at
    import so that tests and plans may set the variable late.
    """
    base = Path(os.environ.get("DATAMAESTRO_DIR", "~/datamaestro")).expanduser()
    return base / "data" / "xpm-train"


MD5SUMS = "MD5SUMS"
"""Checksum file of a mirror, in ``md5sum`` output format (``<md5>  <name>``)"""


def mirror_source(source: DatasetSource, mirror: str) -> DatasetSource:
    """``source`` fetched from ``mirror`` (a folder or a URL) instead of the official sites.

    The mirror holds the files under their official names. When it also has
    an ``MD5SUMS`` file (``md5sum *.gz > MD5SUMS``), its checksums replace the
    published ones, e.g. for a reduced copy used in smoke tests; otherwise
    the files must be the published ones.
    """
    base = mirror.rstrip("/")
    if "://" not in base:
        folder = Path(base).expanduser()
        if not folder.is_dir():
            raise DownloadError(f"mirror {mirror!r}: no such folder. Give a folder or a URL holding "
                                f"the files {[f.name for f in source.files]}")
        base = folder.resolve().as_uri()
    md5s = read_md5sums(f"{base}/{MD5SUMS}")
    files = tuple(
        replace(remote, urls=(f"{base}/{remote.name}",), md5=md5s.get(remote.name, remote.md5))
        for remote in source.files
    )
    return replace(source, files=files)


def read_md5sums(url: str) -> dict[str, str]:
    """``{name: md5}`` from an ``md5sum``-format file at ``url`` ({} when there is none)."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            text = response.read().decode()
    except (urllib.error.URLError, OSError):
        return {}
    sums = {}
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            md5, _, name = line.strip().partition(" ")
            name = name.strip().lstrip("*")
            if len(md5) != 32 or not name:
                raise DownloadError(f"{url}, line {number}: expected '<md5>  <file name>', got {line!r}")
            sums[name] = md5.lower()
    return sums


def fetch_source(source: DatasetSource, root: Path | None = None) -> Path:
    """Ensure every file of ``source`` is in ``<root>/<source.folder>`` with its
    checksum (downloading only what is missing or corrupted; nothing is fetched
    when everything is there); returns that folder."""
    folder = (Path(root) if root is not None else default_data_root()) / source.folder
    downloaded = ensure_files(source.files, folder)
    logger.info("%s ready in %s (downloaded: %s)", source.folder, folder, ", ".join(downloaded) or "nothing")
    return folder


def local_source(folder: Path, name: str, files: list[str], base_url: str | None) -> DatasetSource:
    """A source for ``files`` written into ``folder`` (by a dataset's synthetic
    writer), with their true md5s, also written as ``MD5SUMS``: ``file://``
    URLs, or ``base_url/<file>`` when given (e.g. a local HTTP server)."""
    from ..atomic import atomic_write_text
    from .files import file_digest

    base = base_url.rstrip("/") if base_url else folder.resolve().as_uri()
    files_md5 = {file: file_digest(folder / file) for file in files}
    atomic_write_text(folder / MD5SUMS, "".join(f"{md5}  {file}\n" for file, md5 in files_md5.items()))
    return DatasetSource(
        folder=name,
        files=tuple(RemoteFile(file, (f"{base}/{file}",), md5) for file, md5 in files_md5.items()),
    )
