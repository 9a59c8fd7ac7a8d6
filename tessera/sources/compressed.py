"""Compressed files: ``.gz`` files and ``.zip`` archives read like the plain files inside them.

A ``.csv.gz`` (``.json.gz``, ``.ndjson.gz``...) is one file: it is decompressed, as a stream, into
the import's work folder under its name without ``.gz``, so its format, line numbers and rejects
are those of the plain file. A ``.zip`` holds several files: each member is imported as a file of
its own, named ``archive.zip/member.csv``, and skipped on a later import when its content was
already imported. Folders and hidden members (``__MACOSX/``, ``.DS_Store``) are ignored, and a
member's path never leaves the work folder: only its base name is used.

This happens after the download, so every connection type (local folder, FTP, FTPS, SFTP) reads
compressed files alike.
"""

from __future__ import annotations

import gzip
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tessera.errors import SourceError

_CHUNK = 1 << 20
#: a compressed file may expand to this many times its size (plus a small allowance), no more: data
#: exports compress 5 to 50 times, a "decompression bomb" of zeros about 1,000 times
MAX_RATIO = 200
_ALLOWANCE = 64 << 20


class _TooLarge(Exception):
    pass


def _copy(src, dst, limit: int) -> None:
    """Copy the stream ``src`` into ``dst``, stopping as soon as more than ``limit`` bytes came."""
    written = 0
    while chunk := src.read(_CHUNK):
        written += len(chunk)
        if written > limit:
            raise _TooLarge
        dst.write(chunk)


def _bomb(name: str, size: int, limit: int) -> SourceError:
    return SourceError(f"File '{name}' expands to more than {limit:,} bytes, over {MAX_RATIO} times its compressed "
                       f"size of {size:,} bytes: it looks like a decompression bomb and was not expanded further. If "
                       "it is real data, decompress it before putting it in the folder.")


@dataclass
class Member:
    """One plain file to import: its name as shown to the user, and where it was written."""

    name: str
    path: Path
    size: int


def is_compressed(name: str) -> bool:
    return name.lower().endswith((".gz", ".zip"))


def expand(local: Path, name: str, workdir: Path) -> list[Member]:
    """The plain files of the compressed file ``local`` (shown as ``name``), written in ``workdir``.

    Raises:
        SourceError: the file is not a valid gzip or zip file, or holds no file.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    lower = name.lower()
    if lower.endswith(".gz"):
        inner = PurePosixPath(name).name[: -len(".gz")] or "data"
        out = workdir / inner
        size = local.stat().st_size
        limit = size * MAX_RATIO + _ALLOWANCE
        try:
            with gzip.open(local, "rb") as src, out.open("wb") as dst:
                _copy(src, dst, limit)
        except _TooLarge:
            out.unlink(missing_ok=True)
            raise _bomb(name, size, limit) from None
        except (OSError, EOFError, zlib.error) as exc:
            out.unlink(missing_ok=True)
            raise SourceError(f"File '{name}' is not a valid gzip file ({exc}): compress it again with gzip, "
                              "or remove the .gz extension if it is not compressed.") from None
        return [Member(name, out, out.stat().st_size)]
    try:
        archive = zipfile.ZipFile(local)
    except (zipfile.BadZipFile, OSError) as exc:
        raise SourceError(f"File '{name}' is not a valid zip archive ({exc}): create it again, "
                          "or remove the .zip extension if it is not one.") from None
    members: list[Member] = []
    used: set[str] = set()
    size = local.stat().st_size
    limit = size * MAX_RATIO + _ALLOWANCE  # for all the members together
    with archive:
        for info in archive.infolist():
            parts = PurePosixPath(info.filename.replace("\\", "/")).parts
            base = parts[-1] if parts else ""
            if info.is_dir() or not base or base.startswith(".") or "__MACOSX" in parts:
                continue
            target = base
            n = 1
            while target.lower() in used:  # two members of the same name in different folders
                n += 1
                target = f"{n}-{base}"
            used.add(target.lower())
            sub = workdir / f"m{len(members)}"
            sub.mkdir(exist_ok=True)
            out = sub / target
            try:
                with archive.open(info) as src, out.open("wb") as dst:
                    _copy(src, dst, limit)
                limit -= out.stat().st_size
            except _TooLarge:
                out.unlink(missing_ok=True)
                raise _bomb(name, size, size * MAX_RATIO + _ALLOWANCE) from None
            except (zipfile.BadZipFile, OSError, zlib.error, NotImplementedError, RuntimeError) as exc:
                raise SourceError(f"File '{name}': member '{info.filename}' cannot be extracted ({exc}): "
                                  "create the archive again (zip without a password).") from None
            members.append(Member(f"{name}/{info.filename}", out, out.stat().st_size))
    if not members:
        raise SourceError(f"File '{name}' is a zip archive without any file: export the data again.")
    return members
