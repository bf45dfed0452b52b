"""``trio-lingma bootstrap``: make the real Lingma binary and the instance workdirs ready.

Theory of operation
-------------------
Run once before the server (the container's entry point does), idempotent:

1. **Install** (only with ``LINGMA_ARCHIVE``): the archive — a path or an http(s) URL — is
   copied into a temporary directory under ``LINGMA_INSTALL_DIR`` while its sha256 is computed;
   a checksum other than ``LINGMA_ARCHIVE_SHA256`` refuses the install. Only then is it
   extracted (tar with the ``data`` filter, zip with every path checked) into that temporary
   directory, and the tree is renamed atomically to ``<LINGMA_INSTALL_DIR>/<sha256[:16]>``. A
   failure at any step leaves nothing behind but the temporary directory's removal; an archive
   already installed (same checksum) is not installed again.
2. **Find the binary** (:func:`find_binary`): ``LINGMA_BINARY`` when it is a path; with
   ``LINGMA_BINARY=auto`` the installed archive, else the IDE layout
   ``<LINGMA_DATA_DIR or ~/.lingma>/bin/<version>/<arch_os>/Lingma`` (lingma-protocol.md §1.1):
   the version in ``bin/config.json`` (``cosy.core.version``) if its binary exists, else the
   highest version directory that has one. It must be an executable file.
3. **Prepare workdirs** (only with ``LINGMA_DATA_DIR``): the logged-in data directory, possibly
   a read-only mount, is *copied* into each ``<LINGMA_WORK_ROOT>/instance-N`` (never modified;
   ``bin``, ``logs``, discovery files and sockets are left out). Files are written 0600 through
   a temporary name and renamed, so a credential file is never half-written (§1.3: the gateway
   never reads the credentials, the binary does).

Every error is a :class:`BootstrapError` (a ``ConfigError``) naming the setting to change.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import shutil
import stat
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .settings import ConfigError, Settings, load_dotenv

__all__ = [
    "BootstrapError",
    "arch_os",
    "find_binary",
    "find_in_layout",
    "install_archive",
    "main",
    "prepare_workdir",
    "prepare_workdirs",
]

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
#: Top-level entries of a data dir that are not copied into a workdir.
_NOT_COPIED = frozenset({"bin", "logs", "vscode", "SharedClientCache", "sharedClientCache"})
_NOT_COPIED_FILES = frozenset({".info", ".info.json"})


class BootstrapError(ConfigError):
    """The binary or the data dir cannot be used; the message names the setting."""


# -- finding the binary ---------------------------------------------------------------------


def arch_os(machine: str | None = None, system: str | None = None) -> str:
    """``<arch>_<os>`` as in the install layout: ``x86_64_linux``, ``aarch64_darwin``, ..."""
    machine = (machine or platform.machine()).lower()
    system = system or sys.platform
    arch = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    os_name = "windows" if system.startswith("win") else "darwin" if system == "darwin" else "linux"
    return f"{arch}_{os_name}"


def binary_name(system: str | None = None) -> str:
    return "Lingma.exe" if (system or sys.platform).startswith("win") else "Lingma"


def _version_key(name: str) -> tuple[tuple[int, str], ...]:
    """``2.11.1`` → comparable parts; numbers compare as numbers, other parts as text."""
    return tuple((int(part), "") if part.isdigit() else (-1, part) for part in name.replace("-", ".").split("."))


def _configured_version(bin_dir: Path) -> str | None:
    """``cosy.core.version`` from ``bin/config.json`` (a flat key or nested objects)."""
    try:
        data: Any = json.loads((bin_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    value = data.get("cosy.core.version")
    if value is None:
        value = data
        for key in ("cosy", "core", "version"):
            value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, str) and value else None


def find_in_layout(root: Path, *, arch: str | None = None, name: str | None = None,
                   variable: str = "LINGMA_DATA_DIR") -> Path:
    """The binary under ``<root>/bin/<version>/<arch_os>/``; the configured version first."""
    arch, name = arch or arch_os(), name or binary_name()
    bin_dir = root / "bin"
    configured = _configured_version(bin_dir)
    if configured and (bin_dir / configured / arch / name).is_file():
        return check_executable(bin_dir / configured / arch / name, variable)
    versions = sorted((d.name for d in _subdirs(bin_dir) if (d / arch / name).is_file()), key=_version_key)
    if not versions:
        raise BootstrapError(
            f"{variable}: no Lingma binary at {bin_dir}/<version>/{arch}/{name}; set LINGMA_BINARY "
            "to the binary's path, or LINGMA_ARCHIVE (+ LINGMA_ARCHIVE_SHA256) to install one"
        )
    return check_executable(bin_dir / versions[-1] / arch / name, variable)


def _subdirs(path: Path) -> list[Path]:
    try:
        return [child for child in path.iterdir() if child.is_dir()]
    except OSError:
        return []


def check_executable(path: Path, variable: str) -> Path:
    """``path`` if it is an executable regular file, else a BootstrapError naming ``variable``."""
    if not path.exists():
        raise BootstrapError(f"{variable}: the Lingma binary {path} does not exist")
    if not path.is_file():
        raise BootstrapError(f"{variable}: {path} is not a file")
    if not os.access(path, os.X_OK):
        raise BootstrapError(f"{variable}: {path} is not executable (chmod +x it, or fix the mount)")
    return path


def find_binary(settings: Settings, *, home: Path | None = None) -> Path | None:
    """The binary to start; None means the built-in simulator (``LINGMA_BINARY`` empty)."""
    if not settings.lingma_binary:
        return None
    if settings.lingma_binary != "auto":
        return check_executable(Path(settings.lingma_binary).expanduser(), "LINGMA_BINARY")
    if settings.lingma_archive:
        installed = _install_path(settings)
        if installed.is_dir():
            return check_executable(_binary_in(installed), "LINGMA_ARCHIVE")
    default = (home or Path.home()) / ".lingma"
    root = Path(settings.lingma_data_dir).expanduser() if settings.lingma_data_dir else default
    return find_in_layout(root, variable="LINGMA_DATA_DIR (with LINGMA_BINARY=auto)")


# -- installing an archive --------------------------------------------------------------------


def _install_path(settings: Settings) -> Path:
    return Path(settings.lingma_install_dir).resolve() / settings.lingma_archive_sha256.lower()[:16]


def install_archive(source: str, sha256: str, install_dir: Path) -> Path:
    """Verify and install a Lingma archive; return the installed binary's path."""
    expected = sha256.lower()
    final = install_dir.resolve() / expected[:16]
    if final.is_dir():
        return check_executable(_binary_in(final), "LINGMA_ARCHIVE")
    install_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=install_dir, prefix=".installing-") as tmp:
        archive = Path(tmp) / "archive"
        actual = _copy_hashing(source, archive)
        if actual != expected:
            raise BootstrapError(
                f"LINGMA_ARCHIVE_SHA256: {source} has sha256 {actual}, not {expected}; refusing to install it"
            )
        staging = Path(tmp) / "tree"
        _extract(archive, staging)
        binary = _binary_in(staging)
        binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        try:
            os.replace(staging, final)
        except OSError:
            if not final.is_dir():  # not a concurrent bootstrap that won the race
                raise
    log.info("installed %s into %s", source, final)
    return check_executable(final / binary.relative_to(staging), "LINGMA_ARCHIVE")


def _copy_hashing(source: str, target: Path) -> str:
    """Copy the archive (a path or an http(s) URL) to ``target``; its sha256 in hex."""
    digest = hashlib.sha256()
    try:
        with _open_source(source) as src, target.open("wb") as out:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
    except OSError as exc:
        raise BootstrapError(f"LINGMA_ARCHIVE: cannot read {source}: {exc}") from None
    return digest.hexdigest()


def _open_source(source: str) -> Any:
    if source.startswith(("http://", "https://")):
        return urllib.request.urlopen(source, timeout=60)  # noqa: S310 (scheme checked)
    return Path(source).expanduser().open("rb")


def _extract(archive: Path, staging: Path) -> None:
    staging.mkdir()
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, staging)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tar:
                tar.extractall(staging, filter="data")
        else:
            raise BootstrapError("LINGMA_ARCHIVE: not a .tar.gz, .tgz or .zip archive")
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as exc:
        raise BootstrapError(f"LINGMA_ARCHIVE: cannot extract it: {exc}") from None


def _extract_zip(archive: Path, staging: Path) -> None:
    root = staging.resolve()
    with zipfile.ZipFile(archive) as zf:
        for member in zf.namelist():
            target = (root / member).resolve()
            if not target.is_relative_to(root):
                raise BootstrapError(f"LINGMA_ARCHIVE: unsafe path {member!r} in the archive")
        zf.extractall(staging)


def _binary_in(tree: Path) -> Path:
    """The Lingma binary inside an extracted archive (the one for this platform first)."""
    found = sorted(p for p in tree.rglob(binary_name()) if p.is_file())
    if not found:
        raise BootstrapError(f"LINGMA_ARCHIVE: no {binary_name()} binary inside the archive")
    ours = [p for p in found if arch_os() in p.parts]
    return (ours or found)[0]


# -- workdirs ---------------------------------------------------------------------------------


def prepare_workdir(source: Path, dest: Path) -> int:
    """Copy a logged-in data dir into a workdir (never writing to ``source``); files copied."""
    if not source.is_dir():
        raise BootstrapError(f"LINGMA_DATA_DIR: {source} is not a directory")
    if not (source / "cache" / "user").is_file():
        log.warning("LINGMA_DATA_DIR=%s has no cache/user: it does not look logged in", source)
    copied = 0
    for here, dirs, files in os.walk(source):
        rel = Path(here).relative_to(source)
        if rel == Path("."):
            dirs[:] = [d for d in dirs if d not in _NOT_COPIED]
        (dest / rel).mkdir(mode=0o700, parents=True, exist_ok=True)
        for name in files:
            copied += _copy_private(Path(here) / name, dest / rel / name)
    return copied


def _copy_private(src: Path, dst: Path) -> int:
    """Copy one regular file as 0600 through a temporary name; 0 if skipped."""
    if src.name in _NOT_COPIED_FILES or not stat.S_ISREG(src.stat().st_mode):
        return 0
    tmp = dst.with_name(f".{dst.name}.copying")
    with src.open("rb") as fsrc, open(tmp, "wb", opener=_private_opener) as fdst:
        shutil.copyfileobj(fsrc, fdst)
    os.replace(tmp, dst)
    return 1


def _private_opener(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


def prepare_workdirs(settings: Settings) -> list[Path]:
    """Copy ``LINGMA_DATA_DIR`` into every instance's workdir (as ``Instance`` names them)."""
    source = Path(settings.lingma_data_dir).expanduser()
    root = Path(settings.lingma_work_root).resolve()
    dests = [root / f"instance-{index}" for index in range(settings.lingma_instances)]
    for dest in dests:
        prepare_workdir(source, dest)
    return dests


# -- command line -----------------------------------------------------------------------------


def bootstrap(settings: Settings) -> list[str]:
    """Carry out the three steps; the lines to report."""
    report: list[str] = []
    if settings.lingma_archive:
        path = install_archive(settings.lingma_archive, settings.lingma_archive_sha256,
                               Path(settings.lingma_install_dir))
        report.append(f"installed: {path}")
    binary = find_binary(settings)
    if binary is None:
        report.append("binary: LINGMA_BINARY is empty, the built-in simulator will run "
                      "(set LINGMA_BINARY=auto or a path to use the real binary)")
    else:
        report.append(f"binary: {binary}")
    if settings.lingma_data_dir:
        for dest in prepare_workdirs(settings):
            report.append(f"workdir: {dest} (copied from {settings.lingma_data_dir})")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """``trio-lingma bootstrap`` / ``python -m trio_lingma.bootstrap``: 0 ready, 2 misconfigured."""
    parser = argparse.ArgumentParser(prog="trio-lingma bootstrap", description=__doc__.splitlines()[0])
    parser.add_argument("--env-file", default=".env", help="read settings from this file too")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        settings = Settings.from_env({**load_dotenv(args.env_file), **os.environ})
        for line in bootstrap(settings):
            print(line)
    except ConfigError as exc:
        print(f"bootstrap: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
