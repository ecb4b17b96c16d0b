"""Download public data sets from Zenodo: ``wsbench data fetch NAME --out DIR``.

The Zenodo records API (``GET <base>/api/records/<id>``) lists a record's files with their download
links and checksums (``md5:<hex>``). Each file is downloaded with a progress bar into
``DIR/.wsbench-download/<name>/<key>.part`` (the key's relative path is kept, so files of one name in
two folders never collide; keys that leave the folder, links other than http(s) and records of
another shape are refused with one line, and so are redirects to another scheme than http(s) or
from https to http); an interrupted download resumes from where it stopped
(an HTTP ``Range`` request) when the command is run again. A file whose checksum does not match,
or whose server sends more than the record's size, is deleted and reported (reading stops one byte
past the size). Archives whose members overlap are refused before anything is extracted.
Archives (zip, tar, tar.gz, ...) are extracted, each into its key's folder, in a
temporary folder that is renamed to ``DIR/<name>`` only when every file is in, so a failure never
leaves a half-extracted data set; the downloaded archives are then removed.

The base URL is ``https://zenodo.org`` unless ``$WSBENCH_ZENODO_URL`` says otherwise (the tests serve
a fake record from 127.0.0.1). Only the standard library is used.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import UserError
from .files import chmod_as_new, disk_error
from .progress import show_progress

__all__ = ["PUBLIC_DATASETS", "ZENODO_ENV", "PublicDataset", "download_dir", "fetch_dataset", "zenodo_record"]

ZENODO_ENV = "WSBENCH_ZENODO_URL"
_DEFAULT_BASE = "https://zenodo.org"
_CHUNK = 1 << 20
_TIMEOUT = 60


@dataclasses.dataclass(frozen=True)
class PublicDataset:
    """A data set that ``wsbench data fetch`` can download.

    Attributes:
        record: Zenodo record id (for a DOI ``10.5281/zenodo.<id>``, the id after ``zenodo.``).
        dataset: the registered data set that reads it (``--dataset``).
        description: one line for messages.
    """

    record: str
    dataset: str
    description: str = ""


PUBLIC_DATASETS: dict[str, PublicDataset] = {
    "ws2": PublicDataset("14793518", "ws2", "WS² before/after waste-sorting videos (Marelli et al.)"),
    # DOI 10.5281/zenodo.4899926
    "zerowaste-w": PublicDataset("4899926", "zerowaste-w", "ZeroWaste-w before/after frames (Bashkirova et al.)"),
}


def _base_url() -> str:
    return os.environ.get(ZENODO_ENV, _DEFAULT_BASE).rstrip("/")


def download_dir(out: str | os.PathLike, name: str) -> Path:
    """Where the files of data set ``name`` are downloaded (``.part`` while incomplete)."""
    return Path(out) / ".wsbench-download" / name


class _SameSchemeRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to http(s), and never from https down to http."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        old = urllib.parse.urlsplit(req.full_url).scheme.lower()
        new = urllib.parse.urlsplit(urllib.parse.urljoin(req.full_url, newurl)).scheme.lower()
        if new not in ("http", "https") or (old == "https" and new == "http"):
            raise UserError(f"{req.full_url}: the server redirects to {newurl!r}; only redirects to http(s) "
                            "that keep https are followed")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _open(url: str, headers: dict[str, str] | None = None):
    request = urllib.request.Request(url, headers={"User-Agent": "wsbench", **(headers or {})})
    opener = urllib.request.build_opener(_SameSchemeRedirects)
    try:
        return opener.open(request, timeout=_TIMEOUT)  # https or a test server
    except (urllib.error.HTTPError, UserError):
        raise
    except (TimeoutError, urllib.error.URLError, ConnectionError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise UserError(f"cannot reach {url}: {reason}; check the network and run the same command again "
                        "(downloads resume)") from None


def zenodo_record(record: str) -> dict[str, Any]:
    """The record's metadata from the Zenodo records API.

    Raises:
        UserError: network failure, unknown record, or an answer that is not a record.
    """
    url = f"{_base_url()}/api/records/{record}"
    _check_link(url, f"${ZENODO_ENV}")
    try:
        with _open(url, {"Accept": "application/json"}) as response:
            data = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as err:
        raise UserError(f"Zenodo answered {err.code} {err.reason} for record {record} ({url})") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"{url}: the answer is not a Zenodo record (invalid JSON)") from None
    if not isinstance(data, dict):
        raise UserError(f"{url}: the answer is not a Zenodo record")
    return data


def _restricted(record: dict[str, Any]) -> bool:
    access, metadata = record.get("access"), record.get("metadata")
    return ((isinstance(access, dict) and access.get("files") == "restricted")
            or (isinstance(metadata, dict) and metadata.get("access_right") in ("restricted", "closed")))


def _files(record: dict[str, Any], where: str = "the record") -> list[dict[str, Any]]:
    """``[{"key", "size", "md5", "url"}]`` from a record (legacy and current API shapes).

    ``key`` is the file's relative path in the record (kept, so ``a/data.zip`` and ``b/data.zip``
    stay apart).

    Raises:
        UserError: a record of another shape: files that are not a list of objects, a key that is
            not a relative path inside the target (absolute, ``..``), a size that is not a
            non-negative integer, a link that is not http(s), or two files with one key.
    """
    files = record.get("files")
    if isinstance(files, dict):  # current API: {"entries": {...}} or {"entries": [...]}
        files = files.get("entries", [])
        files = list(files.values()) if isinstance(files, dict) else files
    if files is None:
        files = []
    if not isinstance(files, list):
        raise UserError(f"{where}: 'files' is a {type(files).__name__}, not a list of file entries")
    out, seen = [], set()
    for n, entry in enumerate(files):
        if not isinstance(entry, dict):
            raise UserError(f"{where}: files entry {n} is a {type(entry).__name__}, not an object")
        key = entry.get("key") or entry.get("filename")
        links = entry.get("links") or {}
        if not isinstance(links, dict):
            raise UserError(f"{where}: links of files entry {n} are not an object")
        url = links.get("self") or links.get("content") or links.get("download")
        if not key or not url:
            continue
        if not isinstance(key, str) or not isinstance(url, str):
            raise UserError(f"{where}: files entry {n} has a key or link that is not text")
        key = _relative_key(key, where)
        if key in seen:
            raise UserError(f"{where}: two files entries have the key {key!r}")
        seen.add(key)
        _check_link(url, f"{where}: link of file {key!r}")
        size = entry.get("size")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            raise UserError(f"{where}: size of file {key!r} is {size!r}, not a number of bytes")
        checksum = entry.get("checksum") or ""
        if not isinstance(checksum, str):
            raise UserError(f"{where}: checksum of file {key!r} is not text")
        md5 = checksum.split(":", 1)[1] if checksum.startswith("md5:") else None
        out.append({"key": key, "size": size, "md5": md5, "url": url})
    return out


def _relative_key(key: str, where: str) -> str:
    """A record's file key as a clean relative POSIX path that stays inside the target folder."""
    path = PurePosixPath(key)
    parts = [p for p in path.parts if p not in ("", ".")]
    if path.is_absolute() or "\\" in key or "\0" in key or ".." in parts or not parts:
        raise UserError(f"{where}: file key {key!r} is not a relative path inside the target folder")
    return "/".join(parts)


def _check_link(url: str, what: str) -> None:
    """Only http(s) links are followed (no file:, ftp:, data: ...)."""
    if urllib.parse.urlsplit(url).scheme.lower() not in ("http", "https"):
        raise UserError(f"{what} is {url!r}; only http(s) links are accepted")


def _download(url: str, target: Path, size: int | None, md5: str | None) -> None:
    """Download ``url`` to ``target`` through ``target.part``, resuming it; verify the MD5."""
    from tqdm.auto import tqdm

    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have > size:  # not a prefix of this file
        part.unlink()
        have = 0
    if size is None or have < size or not part.exists():  # (an empty file is fetched too)
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            response = _open(url, headers)
        except urllib.error.HTTPError as err:
            if err.code == 416 and size is None:  # nothing left to fetch
                response = None
            elif err.code in (401, 403):
                raise UserError(f"{url}: access denied ({err.code}); the file may be restricted on Zenodo") from None
            else:
                raise UserError(f"{url}: download failed ({err.code} {err.reason})") from None
        if response is not None:
            with response:
                if have and response.status != 206:  # the server ignored the range: start again
                    have = 0
                total = size if size is not None else (have + int(response.headers.get("Content-Length", 0)) or None)
                with open(part, "ab" if have else "wb") as fh, tqdm(
                        total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                        desc=target.name, disable=not show_progress(), leave=False) as bar:
                    try:  # never more than one byte past the record's size: a longer body is the wrong file
                        while chunk := response.read(_CHUNK if size is None else min(_CHUNK, size + 1 - have)):
                            fh.write(chunk)
                            have += len(chunk)
                            bar.update(len(chunk))
                            if size is not None and have > size:
                                break
                    except (TimeoutError, OSError) as err:
                        one_line = disk_error(err, part.parent) if isinstance(err, OSError) else None
                        if one_line is not None:  # the disk, not the network
                            raise one_line from None
                        raise UserError(f"{url}: download interrupted ({err}); run the same command again "
                                        "to resume") from None
    got = part.stat().st_size
    if size is not None and got > size:
        part.unlink()
        raise UserError(f"{url}: the server sends more than the record's {size} bytes, so it is not the record's file; "
                        "the download was deleted")
    if size is not None and got != size:
        raise UserError(f"{url}: download incomplete ({got} of {size} bytes); run the same command again to resume")
    if md5 is not None:
        digest = hashlib.md5(usedforsecurity=False)
        with open(part, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
        if digest.hexdigest() != md5.lower():
            part.unlink()
            raise UserError(f"{target.name}: checksum mismatch (md5 {digest.hexdigest()}, the record says {md5}); "
                            "the download was deleted, run the same command again")
    os.replace(part, target)


def _members(path: Path) -> list[str]:
    """The files (not folders) an archive holds, or the file itself, as relative POSIX paths."""
    name = path.name.lower()
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                return [m.filename for m in archive.infolist() if not m.is_dir()]
        if name.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")) and tarfile.is_tarfile(path):
            with tarfile.open(path) as archive:
                return [m.name for m in archive.getmembers() if not m.isdir()]
    except (zipfile.BadZipFile, tarfile.TarError, OSError) as err:
        raise UserError(f"{path}: cannot extract ({err})") from None
    return [path.name]


def _extract(path: Path, into: Path) -> None:
    """Extract an archive into ``into``; other files are moved there as they are."""
    name = path.name.lower()
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                root = into.resolve()
                for member in archive.namelist():  # refuse members that would land outside
                    if not (root / member).resolve().is_relative_to(root):
                        raise UserError(f"{path}: archive member {member!r} points outside the target folder")
                archive.extractall(into)
        elif name.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")) and tarfile.is_tarfile(path):
            with tarfile.open(path) as archive:
                if not hasattr(tarfile, "data_filter"):  # Python < 3.10.12 / 3.11.4
                    raise UserError(f"{path}: extracting tar archives safely needs Python >= 3.10.12 or "
                                    ">= 3.11.4; extract it yourself into {into}")
                archive.extractall(into, filter="data")
        else:
            shutil.copy2(path, into / path.name)  # downloads are removed only once the data set is in place
    except (zipfile.BadZipFile, tarfile.TarError, OSError) as err:
        raise UserError(f"{path}: cannot extract ({err})") from None


def _data_root(name: str, folder: Path) -> Path:
    """The folder to pass as ``--data-root`` inside an extracted data set."""
    if name == "zerowaste-w":  # its loader needs before/ and after/ right under the root
        for dirpath, dirnames, _ in os.walk(folder):
            if "before" in dirnames and "after" in dirnames:
                return Path(dirpath)
    return folder


def fetch_dataset(name: str, out: str | os.PathLike, echo: Callable[[str], Any] = print) -> Path:
    """Download, verify and extract a public data set.

    Args:
        name: a key of :data:`PUBLIC_DATASETS` (``ws2``, ``zerowaste-w``).
        out: parent folder; the data set ends up in ``out/<name>``.
        echo: where one-line status messages go.

    Returns:
        The folder to pass as ``--data-root``.

    Raises:
        UserError: unknown name, restricted record, network failure, checksum mismatch or an
            archive that cannot be extracted (nothing is left in ``out/<name>`` then).
    """
    if name not in PUBLIC_DATASETS:
        raise UserError(f"no public download for {name!r}; available: {', '.join(sorted(PUBLIC_DATASETS))}")
    entry = PUBLIC_DATASETS[name]
    out = Path(out).expanduser()
    target = out / name
    if target.exists():
        echo(f"{target} exists already; delete it to download again")
        return _data_root(name, target)
    record = zenodo_record(entry.record)
    page = f"{_DEFAULT_BASE}/records/{entry.record}"
    files = _files(record, f"Zenodo record {entry.record}")
    if _restricted(record) or not files:
        raise UserError(f"Zenodo record {entry.record} ({name}) has restricted files: open {page}, log in, "
                        "use 'Request access', then download the files there and pass their folder as --data-root")
    downloads = download_dir(out, name)
    downloads.mkdir(parents=True, exist_ok=True)
    for f in files:
        path = downloads / f["key"]
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            echo(f"downloading {f['key']}" + (f" ({f['size'] / 2**20:.1f} MiB)" if f.get("size") else ""))
            _download(f["url"], path, f.get("size"), f.get("md5"))
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.extracting.", dir=out))
    try:
        chmod_as_new(tmp, folder=True)  # becomes the data set's folder: not mkdtemp's 0700
        owners: dict[str, str] = {}  # extracted file -> the download it came from
        for f in files:  # each file where its key puts it: a/data.zip into a/, b/data.zip into b/
            prefix = PurePosixPath(f["key"]).parent
            for member in _members(downloads / f["key"]):
                where = (prefix / PurePosixPath(member)).as_posix().removeprefix("./")
                if where in owners:  # one would silently overwrite the other
                    raise UserError(f"{f['key']}: holds {where!r}, which {owners[where]} holds too; the archives "
                                    "overlap, so the data set is ambiguous (nothing was extracted)")
                owners[where] = f["key"]
        for f in files:
            folder = (tmp / f["key"]).parent
            folder.mkdir(parents=True, exist_ok=True)
            _extract(downloads / f["key"], folder)
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(downloads, ignore_errors=True)
    with contextlib.suppress(OSError):
        (out / ".wsbench-download").rmdir()  # only if no other data set is downloading there
    return _data_root(name, target)
