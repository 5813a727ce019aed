"""Folder (cron) mode: one input under its output folder's lock, or every input of a folder
whose output is not up to date, each failure reported and the rest carried on.

The commands pass the stage to run as ``process(source, output)``; this module knows nothing
of what the stage does.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from . import files
from .errors import OutputError, PpmlError

#: Seconds a stage waits for another run's lock on its output folder by default.
DEFAULT_WAIT = 300.0


def run_one(process: Callable, source, output, wait: float = DEFAULT_WAIT):
    """``process(source, output)`` under the output folder's lock (none for stdout)."""
    lock = files.output_lock(output, timeout=wait) if output is not None else contextlib.nullcontext()
    with lock:
        return process(source, output)


MANIFEST = ".ppml-manifest.json"
MANIFEST_FORMAT = "ppml.folder-manifest"


@dataclass
class FolderReport:
    """How a folder run went; ``errors`` holds one ``(input, message)`` per failed input."""

    processed: int = 0
    skipped: int = 0
    errors: list = field(default_factory=list)

    @property
    def failed(self) -> int:
        return len(self.errors)


def run_folder(inputs: Iterable[Path], out_dir, out_name: Callable, process: Callable,
               wait: float = DEFAULT_WAIT) -> FolderReport:
    """Cron mode: ``process(input, output)`` for every input whose output is not up to date.

    An output is up to date when the folder's manifest (``.ppml-manifest.json``) records that
    it was made from an input of this name with these exact bytes (SHA-256), so an input
    replaced by one with an older modification time (``cp -p``, ``rsync -a``, ``tar``) is
    redone. Inputs whose outputs would share a name are refused, each naming the other. Every
    failure — of any kind — is reported and the other inputs go on. The output folder stays
    locked throughout, so a second run waits, then finds the work done; temporary files that a
    killed run left are removed first."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError("is not a folder (folder mode writes one output per input)", str(out_dir))
    report = FolderReport()
    by_output: dict = {}
    for source in sorted(inputs):
        by_output.setdefault(out_name(source), []).append(source)
    with files.output_lock(out_dir / MANIFEST, timeout=wait):
        files.remove_stale_temps_in(out_dir)
        manifest = _read_manifest(out_dir)
        for name, sources in by_output.items():
            if len(sources) > 1:
                for source in sources:
                    others = ", ".join(str(s) for s in sources if s != source)
                    report.errors.append((source, f"its output {out_dir / name} would also be that of {others}; "
                                                  "rename one of them"))
                continue
            source, target = sources[0], out_dir / name
            try:
                digest = _sha256(source)
                if target.exists() and manifest.get(name) == {"input": source.name, "sha256": digest}:
                    report.skipped += 1
                    continue
                process(source, target)
                manifest[name] = {"input": source.name, "sha256": digest}
                _write_manifest(out_dir, manifest)
                report.processed += 1
            except PpmlError as e:
                report.errors.append((source, e.message if e.source in (None, str(source)) else str(e)))
            except Exception as e:  # noqa: BLE001 - one document's failure must not stop the rest
                report.errors.append((source, f"internal error: {type(e).__name__}: {e}"))
    return report


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except OSError as e:
        raise OutputError(f"cannot read: {e.strerror}", str(path)) from None
    return digest.hexdigest()


def _read_manifest(out_dir: Path) -> dict:
    """The outputs' provenance; an unreadable manifest means every output is redone."""
    try:
        d = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    outputs = d.get("outputs") if isinstance(d, dict) and d.get("format") == MANIFEST_FORMAT else None
    return dict(outputs) if isinstance(outputs, dict) else {}


def _write_manifest(out_dir: Path, outputs: dict) -> None:
    files.atomic_write_bytes(out_dir / MANIFEST, files.dump_json(
        {"format": MANIFEST_FORMAT, "version": 1, "outputs": outputs}).encode())


def folder_inputs(folder, suffixes: tuple) -> list[Path]:
    return [p for p in Path(folder).iterdir()
            if p.is_file() and not p.name.startswith(".") and p.name.endswith(suffixes)]
