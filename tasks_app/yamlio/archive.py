"""Task directories as zip files, for the web UI's upload and download.

An upload is refused before anything is unpacked when an entry could escape the target
(absolute, ``..``, a symbolic link), is encrypted, or when the zip holds too many entries or
too many bytes (``PODBOARD_ZIP_MAX_FILES``, ``PODBOARD_ZIP_MAX_BYTES``, and
``PODBOARD_YAML_MAX_BYTES`` per file). An entry whose data does not match its header (a
falsified size, a bad checksum, a truncated or unknown compression) is an import error naming
it. A download is byte-stable for equal data.
"""

import io
import re
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from .export import export_directory
from .format import limit
from .plan import import_directory
from .problems import ImportErrors, Problem
from .records import PODS_FILE

ZIP_FOLDER = "podboard-tasks"
# What reading an entry whose bytes do not match its header raises.
DAMAGED = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, OSError, ValueError)
_ZIP_TIME = (2026, 1, 1, 0, 0, 0)


def export_zip(task_ids=None):
    """Return a zip of the export, in a ``podboard-tasks/`` folder, byte-stable for equal data."""
    with tempfile.TemporaryDirectory(prefix="podboard-export-") as tmp:
        export_directory(tmp, task_ids=task_ids)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(Path(tmp).rglob("*")):
                if path.is_file():
                    rel = path.relative_to(tmp).as_posix()
                    info = zipfile.ZipInfo(f"{ZIP_FOLDER}/{rel}", date_time=_ZIP_TIME)
                    info.compress_type = zipfile.ZIP_DEFLATED
                    info.external_attr = 0o644 << 16
                    archive.writestr(info, path.read_bytes())
        return buffer.getvalue()


def _problem(name, message):
    return Problem(name, None, None, message)


def _safe_parts(name):
    """Return the path parts of a zip entry, or None when it could escape the target."""
    if not name or name.startswith(("/", "\\")) or "\\" in name or re.match(r"^[A-Za-z]:", name):
        return None
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
    if any(p == ".." for p in parts) or not parts:
        return None
    return parts


def _entries(archive, *, max_files, max_total, max_file):
    """Return ``[(ZipInfo, path parts)]`` of the files to unpack; raise ``ImportErrors``
    naming every entry that is refused."""
    infos = archive.infolist()
    if len(infos) > max_files:
        raise ImportErrors(
            [_problem("upload", f"holds {len(infos)} entries; the limit is {max_files}")]
        )
    problems, entries = [], []
    for info in infos:
        parts = _safe_parts(info.filename)
        mode = info.external_attr >> 16
        if parts is None:
            problems.append(
                _problem(
                    info.filename, "refused: the path is absolute or leaves the archive ('..')"
                )
            )
        elif stat.S_ISLNK(mode):
            problems.append(_problem(info.filename, "refused: symbolic links are not allowed"))
        elif info.flag_bits & 0x1:
            problems.append(_problem(info.filename, "refused: the entry is encrypted"))
        elif not info.is_dir():
            if parts[0] == "__MACOSX" or parts[-1] == ".DS_Store":
                continue
            if info.file_size > max_file:
                problems.append(
                    _problem(
                        info.filename,
                        f"is {info.file_size} bytes; the "
                        f"limit is {max_file} (PODBOARD_YAML_MAX_BYTES)",
                    )
                )
            entries.append((info, parts))
    total = sum(info.file_size for info, _ in entries)
    if total > max_total:
        problems.append(
            _problem(
                "upload",
                f"expands to {total} bytes; the limit is {max_total} (PODBOARD_ZIP_MAX_BYTES)",
            )
        )
    if problems:
        raise ImportErrors(problems)
    return entries


def import_zip(fileobj, *, actor, dry_run=False, progress=None):
    """Import a zip of a task directory (at its top or in one top-level folder).

    Refuse what could escape or is too large (see the module docstring); then import as
    ``import_directory``.
    """
    max_file = limit("PODBOARD_YAML_MAX_BYTES", 2 * 1024 * 1024)
    try:
        archive = zipfile.ZipFile(fileobj)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise ImportErrors([_problem("upload", "is not a zip file")]) from None
    with archive:
        entries = _entries(
            archive,
            max_files=limit("PODBOARD_ZIP_MAX_FILES", 100_000),
            max_total=limit("PODBOARD_ZIP_MAX_BYTES", 256 * 1024 * 1024),
            max_file=max_file,
        )
        tops = {parts[0] for _, parts in entries}
        strip = (
            len(tops) == 1
            and not any(len(parts) == 1 for _, parts in entries)
            and next(iter(tops)) not in ("tasks", PODS_FILE)
        )
        with tempfile.TemporaryDirectory(prefix="podboard-import-") as tmp:
            base = Path(tmp).resolve()
            for info, parts in entries:
                parts = parts[1:] if strip else parts
                target = base.joinpath(*parts).resolve()
                if base not in target.parents:
                    raise ImportErrors([_problem(info.filename, "refused: leaves the archive")])
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with archive.open(info) as src:
                        # ZipExtFile stops at the declared size, so a lying header cannot
                        # make this read more than the checks above allowed; the checksum
                        # at the end then gives the lie away.
                        target.write_bytes(src.read(max_file + 1))
                except DAMAGED as exc:
                    raise ImportErrors(
                        [_problem(info.filename, f"is damaged and cannot be unpacked ({exc})")]
                    ) from None
            return import_directory(base, actor=actor, dry_run=dry_run, progress=progress)
