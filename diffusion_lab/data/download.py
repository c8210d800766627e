"""Downloading dataset files: stream, verify MD5, rename atomically; clear errors offline.

``download_url`` never leaves a partial file at ``dest``: bytes go to a temporary file in the
same folder, which is renamed onto ``dest`` (``os.replace``, atomic on one filesystem) only
after the checksum matched. Several processes (e.g. DDP ranks) may therefore download the same
file at once without ever reading a half-written one.

When a file cannot be fetched (no network, HTTP error, timeout) the error is a
:class:`DatasetNotFoundError` whose one-line message says which file is missing, the folder to
put it in and the URL to get it from, so an offline user can fix it by hand.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import tarfile
import tempfile
import urllib.request
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20


class DatasetNotFoundError(FileNotFoundError, RuntimeError):
    """Dataset files are absent and could not (or may not) be downloaded."""


class ChecksumError(ValueError):
    """A downloaded or local file does not have the expected MD5 checksum."""


def md5sum(path: str | os.PathLike) -> str:
    """Hex MD5 of a file, read in 1 MiB chunks (integrity check, not security)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def missing_files_error(
    dataset: str,
    missing: Iterable[str],
    folder: str | os.PathLike,
    url: str,
    how: str | None = None,
) -> DatasetNotFoundError:
    """The one error for absent data: names the files, the folder and where to get them.

    ``how`` replaces the default instruction "download from <url> and place the files in that
    folder" (e.g. for an archive that must be extracted).
    """
    how = how or f"download from {url} and place the files in that folder"
    return DatasetNotFoundError(
        f"{dataset}: missing {', '.join(missing)} in {Path(folder).resolve()}; "
        f"{how}, or pass download=True"
    )


def download_url(url: str, dest: str | os.PathLike, md5: str | None, timeout: float = 30.0) -> Path:
    """Download ``url`` to ``dest`` (a file path) and verify its MD5.

    Skips the download when ``dest`` already exists with the right checksum.

    Raises:
        DatasetNotFoundError: the URL could not be fetched (network error, HTTP error, timeout).
        ChecksumError: the downloaded bytes do not match ``md5``; nothing is left at ``dest``.
    """
    dest = Path(dest)
    if dest.is_file() and (md5 is None or md5sum(dest) == md5):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        log.info("downloading %s -> %s", url, dest)
        digest = hashlib.md5(usedforsecurity=False)
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    for chunk in iter(lambda: response.read(CHUNK_BYTES), b""):
                        out.write(chunk)
                        digest.update(chunk)
            except (OSError, ValueError, http.client.HTTPException) as exc:
                reason = getattr(exc, "reason", None) or exc
                raise DatasetNotFoundError(
                    f"could not download {url} ({type(exc).__name__}: {reason}); "
                    f"get it by hand and save it as {dest.resolve()} "
                    f"(missing {dest.name} in {dest.parent.resolve()})"
                ) from exc
        if md5 is not None and digest.hexdigest() != md5:
            raise ChecksumError(
                f"checksum mismatch for {url}: md5 {digest.hexdigest()}, expected {md5}; "
                f"the download was discarded ({dest} not written)"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def download_from_mirrors(
    mirrors: Iterable[str], filename: str, folder: str | os.PathLike, md5: str | None
) -> Path:
    """Try ``mirror + filename`` for each mirror in turn; re-raise the last failure."""
    error: Exception | None = None
    for mirror in mirrors:
        try:
            return download_url(mirror + filename, Path(folder) / filename, md5)
        except (DatasetNotFoundError, ChecksumError) as exc:
            log.warning("%s", exc)
            error = exc
    if error is None:
        raise ValueError(f"no mirrors given for {filename}")
    raise error


def extract_tar(archive: str | os.PathLike, folder: str | os.PathLike) -> None:
    """Extract a tar archive into ``folder``, refusing anything but plain files and folders.

    Members with absolute paths, ``..`` components, links or device files raise ``ValueError``
    before anything is written (a "tar slip" guard; Python's ``filter="data"`` is applied too).
    """
    folder = Path(folder).resolve()
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        for m in members:
            target = (folder / m.name).resolve()
            unsafe = Path(m.name).is_absolute() or ".." in Path(m.name).parts
            if unsafe or not (m.isfile() or m.isdir()) or not target.is_relative_to(folder):
                raise ValueError(f"{archive}: refusing unsafe archive member {m.name!r}")
        if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4
            tar.extractall(folder, members=members, filter="data")
        else:
            tar.extractall(folder, members=members)  # members were checked above
