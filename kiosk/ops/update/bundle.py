"""The release bundle: one file per platform, signed, checked whole before anything is touched.

A bundle is an uncompressed tar of three members, in this order:
  manifest.json    what it is (below), canonical JSON
  manifest.sig     {"alg": "ed25519", "key_id", "value"}: Ed25519 over manifest.json's bytes
  payload.tar.gz   the release directory: ``venv/`` (the whole environment, every wheel
                   installed) and ``manifest.json`` again

manifest.json (schema ``kiosk.release/1``):
  {"schema", "version", "platform": {"name", "machine", "python"}, "interpreter",
   "payload": {"sha256", "size"}, "installed": {"bytes", "files"},
   "spool": {"writes": n, "opens": [lo, hi]}, "created"}

The signature covers the manifest, the manifest names the payload's SHA-256: so a bundle
whose signature, platform or digest is wrong, or which ends early, is refused by
``verify`` before one byte is unpacked. ``unpack`` hashes the payload again as it
writes (the file may have changed since), into a directory it removes on any failure.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import tarfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.contract.record import Rejected
from kiosk.contract.signing import Verifier, canonical_json, sign_record
from kiosk.contract.update import VERSION_RE
from kiosk.ops.update.platform import Platform

SCHEMA = "kiosk.release/1"
MEMBERS = ("manifest.json", "manifest.sig", "payload.tar.gz")
MAX_MANIFEST = 64 * 1024
CHUNK = 1 << 20

Write = Callable[[int, bytes], int]  # os.write's shape: the seam where a full disk is injected


class BundleError(Exception):
    """A bundle refused; ``reason`` is a short code, the message says precisely why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


@dataclass(frozen=True)
class Manifest:
    version: str
    platform_name: str
    platform: Platform
    interpreter: str
    payload_sha256: str
    payload_size: int
    installed_bytes: int
    installed_files: int
    spool_writes: int
    spool_opens: tuple[int, int]
    created: int
    raw: bytes

    @classmethod
    def parse(cls, raw: bytes) -> Manifest:
        try:
            doc = json.loads(raw)
            if doc.get("schema") != SCHEMA:
                raise ValueError(f"schema is not {SCHEMA!r}")
            plat, payload, spool = doc["platform"], doc["payload"], doc["spool"]
            manifest = cls(
                version=_str(doc["version"]), platform_name=_str(plat["name"]),
                platform=Platform(_str(plat["machine"]), _str(plat["python"])),
                interpreter=_str(doc["interpreter"]), payload_sha256=_str(payload["sha256"]),
                payload_size=_int(payload["size"]), installed_bytes=_int(doc["installed"]["bytes"]),
                installed_files=_int(doc["installed"]["files"]), spool_writes=_int(spool["writes"]),
                spool_opens=(_int(spool["opens"][0]), _int(spool["opens"][1])),
                created=_int(doc["created"]), raw=raw)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as error:
            raise BundleError("bad-manifest", f"manifest.json: {error}") from None
        if not VERSION_RE.fullmatch(manifest.version):
            raise BundleError("bad-manifest", f"version {manifest.version[:70]!r} is not a"
                              " release name (letters, digits, . + _ -)")
        return manifest

    def describe(self) -> str:
        return (f"kiosk {self.version} for {self.platform_name} ({self.platform.machine},"
                f" Python {self.platform.python})")


def _str(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{value!r} is not a non-empty string")
    return value


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{value!r} is not a count")
    return value


# -- building (scripts/release) ------------------------------------------------------------


def build(out: Path, release_dir: Path, *, version: str, platform_name: str,
          platform: Platform, interpreter: str, key: Ed25519PrivateKey,
          spool: tuple[int, tuple[int, int]] = (0, (0, 0))) -> Manifest:
    """Write the bundle *out* from *release_dir* (holding ``venv/``), signed by *key*."""
    files, size = _measure(release_dir)
    body: dict[str, Any] = {
        "schema": SCHEMA, "version": version,
        "platform": {"name": platform_name, "machine": platform.machine,
                     "python": platform.python},
        "interpreter": interpreter, "installed": {"bytes": size, "files": files},
        "spool": {"writes": spool[0], "opens": list(spool[1])}, "created": int(time.time()),
        "payload": {"sha256": "", "size": 0}}
    payload = out.with_name(out.name + ".payload.tmp")
    try:
        _write_payload(payload, release_dir, canonical_json({**body, "payload": None}))
        body["payload"] = {"sha256": _sha256_file(payload), "size": payload.stat().st_size}
        raw = canonical_json(body)
        sig = sign_record(body, key)["sig"]
        with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as outer:
            _add_bytes(outer, "manifest.json", raw)
            _add_bytes(outer, "manifest.sig", canonical_json(sig))
            outer.add(payload, arcname="payload.tar.gz", recursive=False)
    finally:
        payload.unlink(missing_ok=True)
    return Manifest.parse(raw)


def _measure(directory: Path) -> tuple[int, int]:
    files = size = 0
    for path in directory.rglob("*"):
        if path.is_file() and not path.is_symlink():
            files, size = files + 1, size + path.stat().st_size
    return files, size


def _write_payload(path: Path, release_dir: Path, inner_manifest: bytes) -> None:
    with tarfile.open(path, "w:gz", compresslevel=6, format=tarfile.PAX_FORMAT) as payload:
        _add_bytes(payload, "manifest.json", inner_manifest)
        for child in sorted(release_dir.iterdir()):
            if child.name != "manifest.json":
                payload.add(child, arcname=child.name, filter=_normalised)


def _normalised(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
    archive.addfile(info, io.BytesIO(data))


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# -- verifying (the station) -----------------------------------------------------------------


def trusted_keys(paths: Iterable[str | os.PathLike[str]]) -> Verifier:
    """The release keys ([update] trusted_keys; ValueError names a bad file)."""
    return Verifier.from_pem_files(paths)


def verify(path: str | os.PathLike[str], keys: Verifier) -> Manifest:
    """The bundle's manifest, once its signature and its payload's digest are good.

    Raises BundleError: ``unreadable``, ``not-a-bundle``, ``truncated``, ``bad-manifest``,
    ``unknown-key``, ``bad-signature``, ``digest-mismatch``. The platform is checked by
    the caller (platform.check), also before anything is touched.
    """
    with _open_outer(path) as (outer, members):
        raw = _read_small(outer, members["manifest.json"])
        sig = _read_small(outer, members["manifest.sig"])
        _check_signature(raw, sig, keys)
        manifest = Manifest.parse(raw)
        payload = members["payload.tar.gz"]
        if payload.size != manifest.payload_size:
            raise BundleError("truncated" if payload.size < manifest.payload_size
                              else "digest-mismatch",
                              f"payload is {payload.size} bytes, the manifest says"
                              f" {manifest.payload_size}")
        stream = outer.extractfile(payload)
        assert stream is not None
        digest = hashlib.sha256()
        read = 0
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
            read += len(chunk)
        if read != manifest.payload_size:
            raise BundleError("truncated", f"the file ends after {read} of the payload's"
                              f" {manifest.payload_size} bytes")
        if digest.hexdigest() != manifest.payload_sha256:
            raise BundleError("digest-mismatch", "the payload's SHA-256 is not the one"
                              " the signed manifest names")
        return manifest


class _open_outer:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path

    def __enter__(self) -> tuple[tarfile.TarFile, dict[str, tarfile.TarInfo]]:
        try:
            self.outer = tarfile.open(self.path, "r:")
        except FileNotFoundError:
            raise BundleError("unreadable", f"{self.path}: no such file") from None
        except OSError as error:
            raise BundleError("unreadable", f"{self.path}: {error.strerror or error}") from None
        except tarfile.TarError as error:
            raise BundleError("not-a-bundle", f"{self.path}: not a bundle ({error})") from None
        try:
            members = {info.name: info for info in self.outer.getmembers()}
        except (tarfile.TarError, EOFError) as error:
            self.outer.close()
            raise BundleError("truncated", f"{self.path}: the file ends early ({error})") from None
        missing = [name for name in MEMBERS if name not in members]
        if missing:
            self.outer.close()
            reason = "truncated" if set(members) & set(MEMBERS) else "not-a-bundle"
            raise BundleError(reason, f"{self.path}: no {', '.join(missing)}")
        return self.outer, members

    def __exit__(self, *exc: object) -> None:
        self.outer.close()


def _read_small(outer: tarfile.TarFile, info: tarfile.TarInfo) -> bytes:
    if info.size > MAX_MANIFEST:
        raise BundleError("bad-manifest", f"{info.name} is {info.size} bytes")
    stream = outer.extractfile(info)
    data = stream.read() if stream else b""
    if len(data) != info.size:
        raise BundleError("truncated", f"{info.name} ends early")
    return data


def _check_signature(raw: bytes, sig_raw: bytes, keys: Verifier) -> None:
    """The record signature of contract/signing.py, over the manifest as a JSON object."""
    try:
        doc, sig = json.loads(raw), json.loads(sig_raw)
        canonical = isinstance(doc, dict) and "sig" not in doc and canonical_json(doc) == raw
    except (ValueError, TypeError, RecursionError) as error:
        raise BundleError("bad-manifest", f"manifest.json or manifest.sig: {error}") from None
    if not canonical:
        raise BundleError("bad-manifest", "manifest.json is not a canonical JSON object")
    try:
        keys.verify({**doc, "sig": sig})
    except Rejected as rejected:
        if rejected.code == "unknown-key":
            raise BundleError("unknown-key", "signed by a key that is not one of [update]"
                              " trusted_keys") from None
        raise BundleError("bad-signature", "the signature does not match the manifest"
                          f" (altered, or not signed by this key): {rejected}") from None


# -- unpacking -----------------------------------------------------------------------------


def unpack(path: str | os.PathLike[str], manifest: Manifest, dest: Path, *,
           write: Write = os.write) -> None:
    """Unpack the payload into *dest* (which must not exist), or leave nothing behind.

    Only directories, regular files and symbolic links inside *dest* are written; every
    file write goes through *write* (the tests' seam for a full disk). The payload is
    hashed again as it is read; a mismatch removes *dest* and raises BundleError.
    """
    dest.mkdir()
    try:
        with _open_outer(path) as (outer, members):
            raw = outer.extractfile(members["payload.tar.gz"])
            assert raw is not None
            hashing = _Hashing(raw)
            with tarfile.open(fileobj=hashing, mode="r|gz") as payload:
                for info in payload:
                    _unpack_member(payload, info, dest, write)
            hashing.drain()
            if hashing.digest.hexdigest() != manifest.payload_sha256:
                raise BundleError("digest-mismatch", "the payload changed since it was"
                                  " verified")
        os.sync()  # the files are on disk before a symlink may point at them
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise


class _Hashing(io.RawIOBase):
    def __init__(self, stream: IO[bytes]) -> None:
        self.stream, self.digest = stream, hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.digest.update(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def drain(self) -> None:
        while self.read(CHUNK):
            pass


def _unpack_member(payload: tarfile.TarFile, info: tarfile.TarInfo, dest: Path,
                   write: Write) -> None:
    target = _inside(dest, info.name)
    if info.isdir():
        target.mkdir(parents=True, exist_ok=True)
        target.chmod(stat.S_IMODE(info.mode) | 0o700)
    elif info.issym():
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(info.linkname, target)
    elif info.isfile():
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_file(payload, info, target, write)
    elif info.islnk():  # a hard link to a file unpacked before it
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(_inside(dest, info.linkname), target)
    else:
        raise BundleError("bad-payload", f"member {info.name!r} is neither file, directory"
                          " nor symlink")


def _inside(dest: Path, name: str) -> Path:
    """*dest*/*name*, refusing a name that leaves *dest*, directly or through a symlink."""
    parts = Path(name.removeprefix("./")).parts
    if not parts or name.startswith("/") or ".." in parts:
        raise BundleError("bad-payload", f"member {name!r} points outside the release")
    target = dest.joinpath(*parts)
    if not os.path.realpath(target.parent).startswith(os.path.realpath(dest)):
        raise BundleError("bad-payload", f"member {name!r} goes through a symlink out of"
                          " the release")
    return target


def _write_file(payload: tarfile.TarFile, info: tarfile.TarInfo, target: Path,
                write: Write) -> None:
    source = payload.extractfile(info)
    assert source is not None
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IMODE(info.mode) | 0o600)
    try:
        while chunk := source.read(CHUNK):
            view = memoryview(chunk)
            while view:
                view = view[write(fd, view):]
    finally:
        os.close(fd)
    os.chmod(target, stat.S_IMODE(info.mode))
