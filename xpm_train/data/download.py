"""A small, explicit downloader with checksums and atomic writes.

:func:`ensure_file` makes sure ``folder/name`` holds the file with the
expected md5: a file already there with the right checksum is kept (no
request is made); otherwise each mirror URL is tried in turn. A download
streams into a temporary file in the destination folder while hashing, and
is renamed to its final name only once the checksum matches, so an
interrupted or corrupted transfer never leaves a partial file under the
final name. Works with any URL ``urllib`` opens (``http(s)://``, ``file://``).
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..atomic import atomic_write
from .files import CHUNK_SIZE, file_digest

logger = logging.getLogger(__name__)

PROGRESS_EVERY = 16 << 20
"""A progress line is logged every time this many bytes have been received"""

TIMEOUT = 60.0
"""Seconds without data after which a connection is abandoned"""


class DownloadError(UserError, RuntimeError):
    """A file could not be fetched from any of its URLs."""


class ChecksumError(DownloadError):
    """A fetched file does not have the expected checksum (it was discarded)."""


@dataclass(frozen=True)
class RemoteFile:
    """One official file of a dataset: its local name, mirrors and checksum."""

    name: str
    """File name inside the dataset folder"""

    urls: tuple[str, ...]
    """Mirrors, tried in order until one answers"""

    md5: str
    """Expected md5 of the file as published (hex)"""


def download(url: str, destination: Path, md5: str, *, progress_every: int = PROGRESS_EVERY) -> None:
    """Fetch ``url`` into ``destination`` if and only if its md5 is ``md5``.

    Raises :class:`ChecksumError` on a mismatch (``destination`` untouched)
    and lets ``urllib``/``OSError`` errors through for the caller to retry.
    """
    destination = Path(destination)
    logger.info("Downloading %s into %s", url, destination)
    request = urllib.request.Request(url, headers={"User-Agent": "xpm-train"})
    digest = hashlib.md5()
    received = 0
    with atomic_write(destination) as out, urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        total = int(response.headers.get("Content-Length") or 0)
        next_report = progress_every
        while chunk := response.read(CHUNK_SIZE):
            out.write(chunk)
            digest.update(chunk)
            received += len(chunk)
            if received >= next_report:
                logger.info("%s: %s", destination.name, _progress(received, total))
                next_report += progress_every
        if digest.hexdigest() != md5:
            raise ChecksumError(
                f"Checksum mismatch for {url}: expected md5 {md5}, got {digest.hexdigest()} "
                f"({received} bytes received). The download was discarded and nothing was written "
                f"to {destination}. Retry (the transfer may have been corrupted); if it fails "
                f"again, the server publishes a different file: fetch it by hand, check its md5 "
                f"and place it at {destination}."
            )
    logger.info("Downloaded %s (%s)", destination, _progress(received, total))


def _progress(received: int, total: int) -> str:
    mib = received / (1 << 20)
    if total:
        return f"{mib:.1f} of {total / (1 << 20):.1f} MiB ({100 * received / total:.0f}%)"
    return f"{mib:.1f} MiB"


def ensure_file(remote: RemoteFile, folder: Path) -> bool:
    """Make sure ``folder/remote.name`` exists with the right md5.

    Returns True when the file had to be downloaded, False when the local
    copy was already valid (then no request is made at all).
    """
    destination = Path(folder) / remote.name
    if destination.is_file():
        actual = file_digest(destination)
        if actual == remote.md5:
            return False
        logger.warning("%s has md5 %s instead of %s: fetching it again", destination, actual, remote.md5)
    errors = []
    for url in remote.urls:
        try:
            download(url, destination, remote.md5)
            return True
        except ChecksumError:
            raise
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            logger.warning("Could not download %s: %s", url, exc)
            errors.append(f"  {url}: {exc}")
    raise DownloadError(
        f"Could not download {remote.name} from any mirror:\n" + "\n".join(errors) + "\n"
        f"Check the network (proxy, firewall), or fetch the file by hand and place it at "
        f"{destination} (expected md5 {remote.md5})."
    )


def ensure_files(files: tuple[RemoteFile, ...], folder: Path) -> list[str]:
    """:func:`ensure_file` for each file; returns the names actually downloaded."""
    return [remote.name for remote in files if ensure_file(remote, folder)]
