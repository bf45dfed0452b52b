"""Bootstrap: finding the binary, installing a verified archive, copying a read-only data dir."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from trio_lingma.bootstrap import (
    BootstrapError,
    arch_os,
    binary_name,
    find_binary,
    find_in_layout,
    install_archive,
    main,
    prepare_workdir,
    prepare_workdirs,
)
from trio_lingma.settings import ConfigError, Settings

BINARY = b"#!/bin/sh\necho lingma\n"


def _binary(path: Path, *, executable: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(BINARY)
    path.chmod(0o755 if executable else 0o644)
    return path


def _layout(root: Path, version: str, **kw: bool) -> Path:
    return _binary(root / "bin" / version / arch_os() / binary_name(), **kw)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tar_gz(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
    return path


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _member() -> str:
    return f"lingma-2.11.1/{arch_os()}/{binary_name()}"


# -- finding the binary -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("machine", "system", "expected"),
    [
        ("x86_64", "linux", "x86_64_linux"),
        ("AMD64", "win32", "x86_64_windows"),
        ("arm64", "darwin", "aarch64_darwin"),
        ("x86_64", "darwin", "x86_64_darwin"),
    ],
)
def test_arch_os(machine: str, system: str, expected: str) -> None:
    assert arch_os(machine, system) == expected


def test_newest_version_without_config(tmp_path: Path) -> None:
    _layout(tmp_path, "2.9.5")
    newest = _layout(tmp_path, "2.10.0")
    (tmp_path / "bin" / "2.12.0" / "other_os").mkdir(parents=True)  # no binary for us
    assert find_in_layout(tmp_path) == newest


@pytest.mark.parametrize("config", [{"cosy.core.version": "2.9.5"}, {"cosy": {"core": {"version": "2.9.5"}}}])
def test_configured_version_wins(tmp_path: Path, config: dict[str, object]) -> None:
    configured = _layout(tmp_path, "2.9.5")
    _layout(tmp_path, "2.10.0")
    (tmp_path / "bin" / "config.json").write_text(json.dumps(config))
    assert find_in_layout(tmp_path) == configured


def test_configured_version_missing_falls_back(tmp_path: Path) -> None:
    newest = _layout(tmp_path, "2.10.0")
    (tmp_path / "bin" / "config.json").write_text('{"cosy.core.version": "3.0.0"}')
    assert find_in_layout(tmp_path) == newest


def test_not_executable(tmp_path: Path) -> None:
    _layout(tmp_path, "2.11.1", executable=False)
    with pytest.raises(BootstrapError, match="LINGMA_DATA_DIR.*not executable"):
        find_in_layout(tmp_path)
    plain = _binary(tmp_path / "Lingma", executable=False)
    with pytest.raises(BootstrapError, match="LINGMA_BINARY.*not executable"):
        find_binary(Settings(lingma_binary=str(plain)))


def test_missing_binary(tmp_path: Path) -> None:
    with pytest.raises(BootstrapError, match="LINGMA_DATA_DIR.*LINGMA_BINARY") as info:
        find_in_layout(tmp_path)
    assert isinstance(info.value, ConfigError)
    with pytest.raises(BootstrapError, match="LINGMA_BINARY.*does not exist"):
        find_binary(Settings(lingma_binary=str(tmp_path / "nope")))
    with pytest.raises(BootstrapError, match="LINGMA_BINARY.*not a file"):
        find_binary(Settings(lingma_binary=str(tmp_path)))


def test_find_binary_modes(tmp_path: Path) -> None:
    assert find_binary(Settings()) is None  # the simulator
    explicit = _binary(tmp_path / "explicit" / "Lingma")
    assert find_binary(Settings(lingma_binary=str(explicit))) == explicit
    data = tmp_path / "data"
    in_layout = _layout(data, "2.11.1")
    assert find_binary(Settings(lingma_binary="auto", lingma_data_dir=str(data))) == in_layout
    home_layout = _layout(tmp_path / "home" / ".lingma", "2.11.0")
    assert find_binary(Settings(lingma_binary="auto"), home=tmp_path / "home") == home_layout


# -- installing -----------------------------------------------------------------------------------


def test_install_tar_gz(tmp_path: Path) -> None:
    archive = _tar_gz(tmp_path / "lingma.tar.gz", {_member(): BINARY, "lingma-2.11.1/README": b"hi"})
    install_dir = tmp_path / "install"
    sha = _sha(archive)
    binary = install_archive(str(archive), sha.upper(), install_dir)
    assert binary.read_bytes() == BINARY and os.access(binary, os.X_OK)
    assert binary.is_relative_to(install_dir.resolve() / sha[:16])
    assert [p.name for p in install_dir.iterdir()] == [sha[:16]]  # no temp dir left
    archive.unlink()  # installed already: the archive is not read again
    assert install_archive(str(archive), sha, install_dir) == binary


def test_install_zip_makes_the_binary_executable(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "lingma.zip", {_member(): BINARY})
    binary = install_archive(str(archive), _sha(archive), tmp_path / "install")
    assert os.access(binary, os.X_OK)
    settings = Settings(lingma_binary="auto", lingma_archive=str(archive), lingma_archive_sha256=_sha(archive),
                        lingma_install_dir=str(tmp_path / "install"))
    assert find_binary(settings) == binary


def test_wrong_checksum_is_refused_and_nothing_is_installed(tmp_path: Path) -> None:
    archive = _tar_gz(tmp_path / "lingma.tar.gz", {_member(): BINARY})
    install_dir = tmp_path / "install"
    with pytest.raises(BootstrapError, match="LINGMA_ARCHIVE_SHA256.*refusing"):
        install_archive(str(archive), "0" * 64, install_dir)
    assert list(install_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"../evil": BINARY}, "unsafe path"),
        ({"lingma/README": b"no binary here"}, "no Lingma"),
    ],
)
def test_bad_zip_archives_leave_nothing(tmp_path: Path, members: dict[str, bytes], message: str) -> None:
    archive = _zip(tmp_path / "bad.zip", members)
    install_dir = tmp_path / "install"
    with pytest.raises(BootstrapError, match=message):
        install_archive(str(archive), _sha(archive), install_dir)
    assert list(install_dir.iterdir()) == []
    assert not (tmp_path / "evil").exists()


def test_tar_traversal_and_garbage_are_refused(tmp_path: Path) -> None:
    evil = _tar_gz(tmp_path / "evil.tar.gz", {"../../evil": BINARY})
    with pytest.raises(BootstrapError, match="LINGMA_ARCHIVE"):
        install_archive(str(evil), _sha(evil), tmp_path / "install")
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"not an archive")
    with pytest.raises(BootstrapError, match="LINGMA_ARCHIVE: not a"):
        install_archive(str(garbage), _sha(garbage), tmp_path / "install")
    with pytest.raises(BootstrapError, match="LINGMA_ARCHIVE: cannot read"):
        install_archive(str(tmp_path / "missing.zip"), "0" * 64, tmp_path / "install")
    assert list((tmp_path / "install").iterdir()) == []
    assert not (tmp_path / "evil").exists()


# -- workdirs -------------------------------------------------------------------------------------


def _data_dir(root: Path) -> Path:
    files = {
        "cache/user": b"encrypted credentials",
        "cache/id": b"machine id",
        "config.json": b"{}",
        "bin/2.11.1/x86_64_linux/Lingma": BINARY,
        "logs/lingma.log": b"old log",
        "SharedClientCache/.info.json": b'{"websocketPort": 1}',
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def _snapshot(root: Path) -> dict[str, tuple[int, int, bytes]]:
    return {str(p.relative_to(root)): (p.stat().st_mode, p.stat().st_mtime_ns, p.read_bytes() if p.is_file() else b"")
            for p in sorted(root.rglob("*"))}


def _make_read_only(root: Path) -> None:
    for path in sorted(root.rglob("*"), reverse=True) + [root]:
        path.chmod(0o555 if path.is_dir() else 0o444)


def _make_writable(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def test_workdir_is_copied_from_a_read_only_source(tmp_path: Path) -> None:
    source = _data_dir(tmp_path / "secrets")
    _make_read_only(source)
    before = _snapshot(source)
    try:
        dest = tmp_path / "work" / "instance-0"
        assert prepare_workdir(source, dest) == 3
        (dest / "logs").mkdir()
        (dest / "logs" / "lingma.log").write_text("our own log")
        assert prepare_workdir(source, dest) == 3  # again: refreshed, our log kept
        after = _snapshot(source)
    finally:
        _make_writable(source)
    assert before == after
    assert (dest / "cache" / "user").read_bytes() == b"encrypted credentials"
    assert stat.S_IMODE((dest / "cache" / "user").stat().st_mode) == 0o600
    assert os.access(dest / "cache", os.W_OK)
    assert not (dest / "bin").exists() and not (dest / "SharedClientCache").exists()
    assert (dest / "logs" / "lingma.log").read_text() == "our own log"
    assert not list(dest.rglob("*.copying"))


def test_prepare_workdirs_for_every_instance(tmp_path: Path) -> None:
    source = _data_dir(tmp_path / "secrets")
    settings = Settings(lingma_data_dir=str(source), lingma_work_root=str(tmp_path / "work"), lingma_instances=2)
    dests = prepare_workdirs(settings)
    assert dests == [(tmp_path / "work").resolve() / f"instance-{i}" for i in range(2)]
    assert all((d / "cache" / "id").is_file() for d in dests)
    with pytest.raises(BootstrapError, match="LINGMA_DATA_DIR"):
        prepare_workdir(tmp_path / "missing", tmp_path / "x")


# -- the command ------------------------------------------------------------------------------------


def _env(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for name in ("LINGMA_BINARY", "LINGMA_ARCHIVE", "LINGMA_ARCHIVE_SHA256", "LINGMA_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def test_main_installs_and_prepares(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    archive = _tar_gz(tmp_path / "lingma.tar.gz", {_member(): BINARY})
    source = _data_dir(tmp_path / "secrets")
    _env(monkeypatch, LINGMA_BINARY="auto", LINGMA_ARCHIVE=str(archive), LINGMA_ARCHIVE_SHA256=_sha(archive),
         LINGMA_INSTALL_DIR=str(tmp_path / "install"), LINGMA_DATA_DIR=str(source),
         LINGMA_WORK_ROOT=str(tmp_path / "work"))
    assert main(["--env-file", str(tmp_path / "none.env")]) == 0
    out = capsys.readouterr().out
    assert "installed:" in out and "binary:" in out and "instance-0" in out
    assert (tmp_path / "work" / "instance-0" / "cache" / "user").is_file()


def test_main_reports_a_wrong_checksum(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    archive = _tar_gz(tmp_path / "lingma.tar.gz", {_member(): BINARY})
    _env(monkeypatch, LINGMA_BINARY="auto", LINGMA_ARCHIVE=str(archive), LINGMA_ARCHIVE_SHA256="ab" * 32,
         LINGMA_INSTALL_DIR=str(tmp_path / "install"))
    assert main(["--env-file", str(tmp_path / "none.env")]) == 2
    assert "LINGMA_ARCHIVE_SHA256" in capsys.readouterr().err
    assert list((tmp_path / "install").iterdir()) == []


def test_main_simulator_and_bad_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    _env(monkeypatch)
    assert main(["--env-file", str(tmp_path / "none.env")]) == 0
    assert "simulator" in capsys.readouterr().out
    _env(monkeypatch, LINGMA_ARCHIVE="x.zip")
    assert main(["--env-file", str(tmp_path / "none.env")]) == 2
    assert "LINGMA_ARCHIVE_SHA256" in capsys.readouterr().err
