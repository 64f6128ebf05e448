"""Build a signed release bundle of this checkout for one station platform (docs/releases.md).

    scripts/release --platform host|bookworm-arm64|trixie-arm64 --key RELEASE.key [--prove]

host            this machine's interpreter (x86_64 here): quick, what the tests install
bookworm-arm64  Raspberry Pi OS 12 / Debian 12, arm64, CPython 3.11
trixie-arm64    Debian 13 (Pi OS Trixie), arm64, CPython 3.13

An arm64 bundle is built in a Debian root made by ``debootstrap --arch=arm64`` and run
through qemu-user (Debian's ``qemu-user-static`` and ``binfmt-support``): a station root
(what a station has: python3, python3-venv, libcups2, mosquitto; no compiler) and, copied
from it, a build root with gcc and the -dev packages, where pip builds the wheels that
PyPI does not have for the platform (pycups; lgpio for 3.13, with PYPI=1 so it bundles its
C library). ``--prove`` unpacks the bundle in the station root and runs ``kiosk demo
--cards 2`` there. The roots are kept in --cache for the next build.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from kiosk.contract.signing import load_private_key
from kiosk.ops.update import bundle
from kiosk.ops.update.platform import Platform, platform_of

# The checkout being released (scripts/release sets it; else this file's own checkout).
REPO = Path(os.environ.get("KIOSK_REPO") or Path(__file__).resolve().parents[3])

MIRROR = "http://deb.debian.org/debian"
HOST_CA = os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt"
# Debian 13 renamed libcups2 for its 64-bit time_t transition (libcups2t64).
STATION_PACKAGES = "python3,python3-venv,{libcups},mosquitto,ca-certificates"
BUILD_PACKAGES = ["gcc", "make", "python3-dev", "libcups2-dev", "swig"]
RELOCATABLE = (b"#!/bin/sh\n"
               b"'''exec' \"$(dirname -- \"$(readlink -f -- \"$0\")\")/python\" \"$0\" \"$@\"\n"
               b"' '''\n")


@dataclass(frozen=True)
class Target:
    suite: str
    python: str
    extras: str = "pi,ipp,receipt"
    libcups: str = "libcups2"  # the CUPS client library's package in this suite

    @property
    def interpreter(self) -> str:
        return f"/usr/bin/python{self.python}"


TARGETS = {"bookworm-arm64": Target("bookworm", "3.11"),
           "trixie-arm64": Target("trixie", "3.13", libcups="libcups2t64")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/release", description=__doc__.split("\n")[0])
    parser.add_argument("--platform", required=True, choices=["host", *TARGETS])
    parser.add_argument("--key", required=True, help="the release key (PEM Ed25519 private key)")
    parser.add_argument("--out", default=str(REPO / "dist"), help="where the bundle goes")
    parser.add_argument("--version", help="release name (default: package version-git commit)")
    parser.add_argument("--extras", help="pip extras (default: none on host, pi,ipp,receipt)")
    parser.add_argument("--python", default=os.path.realpath(sys._base_executable),
                        help="host only: the interpreter the environment is made with")
    parser.add_argument("--cache", default="/var/cache/kiosk-release",
                        help="arm64: where the Debian roots are kept")
    parser.add_argument("--prove", action="store_true",
                        help="arm64: run kiosk demo --cards 2 in the station root")
    args = parser.parse_args(argv)
    try:
        key = load_private_key(args.key)
    except ValueError as error:
        print(f"release: {error}", file=sys.stderr)
        return 2
    version = args.version or default_version()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kiosk-release-") as work:
        wheel = build_wheel(Path(work))
        release = Path(work) / "release"
        release.mkdir()
        if args.platform == "host":
            extras = args.extras or ""
            interpreter, plat = args.python, platform_of(args.python)
            host_venv(interpreter, wheel, extras, release / "venv")
        else:
            target = TARGETS[args.platform]
            extras = target.extras if args.extras is None else args.extras
            roots = Path(args.cache) / "roots"
            interpreter, plat = target.interpreter, Platform("aarch64", target.python)
            arm64_venv(target, roots, wheel, extras, release / "venv")
        relocate(release / "venv")
        drop_pip(release / "venv")
        out = Path(args.out) / f"kiosk-{version}-{args.platform}.bundle"
        out.parent.mkdir(parents=True, exist_ok=True)
        manifest = bundle.build(out, release, version=version, platform_name=args.platform,
                                platform=plat, interpreter=interpreter, key=key,
                                spool=spool_schema())
    built = time.monotonic() - started
    print(f"release: {out} ({out.stat().st_size / 1e6:.1f} MB; installed"
          f" {manifest.installed_bytes / 1e6:.0f} MB in {manifest.installed_files} files;"
          f" built in {built:.0f} s)")
    if args.prove and args.platform != "host":
        return prove(TARGETS[args.platform], Path(args.cache) / "roots", out, manifest)
    return 0


def default_version() -> str:
    from importlib.metadata import version

    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or "nogit"
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "kiosk"],
                           capture_output=True, text=True).stdout.strip()
    return f"{version('kiosk')}-{commit}{'.dirty' if dirty else ''}"


def spool_schema() -> tuple[int, tuple[int, int]]:
    """What the spool of this checkout writes and opens (kiosk/station/spool.py; 0 until
    it names a SCHEMA_VERSION and the oldest it migrates from, SCHEMA_OPENS)."""
    from kiosk.station import spool

    writes = int(getattr(spool, "SCHEMA_VERSION", 0))
    low, high = getattr(spool, "SCHEMA_OPENS", (0, writes))
    return writes, (int(low), int(high))


def run(*command: str, **kwargs) -> None:
    print("release: $", " ".join(command), flush=True)
    subprocess.run(command, check=True, **kwargs)


def build_wheel(work: Path) -> Path:
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
        "-w", str(work / "wheels"), str(REPO))
    (wheel,) = (work / "wheels").glob("kiosk-*.whl")
    return wheel


def host_venv(interpreter: str, wheel: Path, extras: str, venv: Path) -> None:
    run(interpreter, "-m", "venv", str(venv))
    spec = f"{wheel}[{extras}]" if extras else str(wheel)
    run(str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
        "--disable-pip-version-check", spec)


def relocate(venv: Path) -> None:
    """Scripts that find their interpreter beside them, wherever the release is unpacked."""
    for path in (venv / "bin").iterdir():
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        first, _, rest = data.partition(b"\n")
        if first.startswith(b"#!") and b"python" in first:
            path.write_bytes(RELOCATABLE + rest)


def drop_pip(venv: Path) -> None:
    """A station is never changed by pip (bundles replace the whole environment): 16 MB less."""
    for path in [*venv.glob("lib/python*/site-packages/pip"),
                 *venv.glob("lib/python*/site-packages/pip-*.dist-info"), *venv.glob("bin/pip*")]:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


# -- arm64 under emulation ------------------------------------------------------------------


def check_emulation() -> None:
    entry = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
    if not entry.exists():
        sys.exit("release: arm64 programs cannot run here: no binfmt_misc entry qemu-aarch64.\n"
                 "  sudo apt-get install qemu-user-static binfmt-support debootstrap\n"
                 "  (and, in a container, mount -t binfmt_misc binfmt_misc"
                 " /proc/sys/fs/binfmt_misc)")


def station_root(target: Target, roots: Path) -> Path:
    root = roots / f"{target.suite}-arm64"
    if not (root / "usr" / "bin" / f"python{target.python}").exists():
        check_emulation()
        roots.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(root, ignore_errors=True)
        packages = STATION_PACKAGES.format(libcups=target.libcups)
        run("debootstrap", "--arch=arm64", "--variant=minbase", f"--include={packages}",
            target.suite, str(root), MIRROR)
    return root


def build_root(target: Target, roots: Path) -> Path:
    root = roots / f"{target.suite}-arm64-build"
    if not (root / "usr" / "bin" / "gcc").exists():
        base = station_root(target, roots)
        shutil.rmtree(root, ignore_errors=True)
        run("cp", "-a", str(base), str(root))
        with mounted(root):
            run("chroot", str(root), "apt-get", "update", "-qq")
            run("chroot", str(root), "env", "DEBIAN_FRONTEND=noninteractive", "apt-get",
                "install", "-y", "-qq", "--no-install-recommends", *BUILD_PACKAGES)
    return root


@contextlib.contextmanager
def mounted(root: Path):
    """/proc, /dev, /dev/pts and the host's resolv.conf inside *root* while in use."""
    mounts = [("proc", root / "proc", ["-t", "proc", "proc"]),
              ("dev", root / "dev", ["--bind", "/dev"]),
              ("pts", root / "dev" / "pts", ["--bind", "/dev/pts"])]
    done = []
    shutil.copy("/etc/resolv.conf", root / "etc" / "resolv.conf")
    try:
        for _name, where, how in mounts:
            run("mount", *how, str(where))
            done.append(where)
        yield root
    finally:
        for where in reversed(done):
            subprocess.run(["umount", "-l", str(where)], check=False)


def arm64_venv(target: Target, roots: Path, wheel: Path, extras: str, venv: Path) -> None:
    check_emulation()
    root = build_root(target, roots)
    inside = Path("/tmp/kiosk-build")
    shutil.rmtree(root / inside.relative_to("/"), ignore_errors=True)
    (root / inside.relative_to("/")).mkdir(parents=True)
    shutil.copy(wheel, root / inside.relative_to("/"))
    # The host's CA bundle: where a proxy re-signs TLS, pip in the build root trusts what the
    # host trusts (Debian's pip reads the system bundle).
    shutil.copy(HOST_CA, root / inside.relative_to("/") / "ca.crt")
    shutil.copy(HOST_CA, root / "etc" / "ssl" / "certs" / "ca-certificates.crt")
    spec = f"{inside / wheel.name}[{extras}]" if extras else str(inside / wheel.name)
    with mounted(root):
        run("chroot", str(root), target.interpreter, "-m", "venv", str(inside / "venv"))
        # PYPI=1: lgpio's sdist builds and bundles its C library (no wheel for 3.13).
        run("chroot", str(root), "env", "PYPI=1", f"PIP_CERT={inside / 'ca.crt'}",
            str(inside / "venv" / "bin" / "python"), "-m", "pip", "install", "--quiet",
            "--disable-pip-version-check", spec)
    shutil.copytree(root / inside.relative_to("/") / "venv", venv, symlinks=True)


def prove(target: Target, roots: Path, path: Path, manifest: bundle.Manifest) -> int:
    """Unpack the bundle in the station root (no compiler) and print two cards there."""
    root = station_root(target, roots)
    releases = root / "opt" / "kiosk" / "releases"
    shutil.rmtree(releases / manifest.version, ignore_errors=True)
    releases.mkdir(parents=True, exist_ok=True)
    bundle.unpack(path, manifest, releases / manifest.version)
    current = root / "opt" / "kiosk" / "current"
    current.unlink(missing_ok=True)
    os.symlink(Path("releases") / manifest.version, current)
    started = time.monotonic()
    with mounted(root):
        done = subprocess.run(["chroot", str(root), "/opt/kiosk/current/venv/bin/kiosk",
                               "demo", "--cards", "2"], check=False)
    print(f"release: kiosk demo --cards 2 in the {target.suite} arm64 root: exit"
          f" {done.returncode} in {time.monotonic() - started:.0f} s")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
