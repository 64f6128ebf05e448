"""Mutual TLS for the district broker: a small certificate authority, the ACL, ``kiosk pki``.

Identities: a client certificate's common name (CN) is the MQTT username
(Mosquitto ``use_identity_as_username``) and, with ``use_username_as_clientid``,
also the client id, so a certificate can neither act as nor take over the session
of another client. A station's CN is its mqtt.md client id ``{district}-{station}``
(`station_username`); a district tool's is ``district-{district}`` or
``district-{district}-{name}`` (`district_username`) — one per concurrently
connected tool, since the broker allows one connection per client id.

Mosquitto patterns substitute the whole username, and a station's topics need its
district and id as two levels, so the ACL names each user: `acl_for_district`
writes it; ``kiosk pki acl DIR`` for every client certificate in DIR that is not
revoked. The whole scheme and the threat model: docs/security.md.

Keys are ECDSA P-256, PKCS#8 PEM, mode 0600. The CA lasts 10 years, other
certificates 825 days. `make_ca` also writes an empty ``crl.pem`` (the broker's
``crlfile``); `revoke` adds a certificate to it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kiosk.station.config import DISTRICT, STATION_ID

CA_DAYS = 3650
LEAF_DAYS = 825
SKEW = dt.timedelta(minutes=5)  # a station whose clock is a little behind still accepts
COMMON_NAME = re.compile(r"[A-Za-z0-9._:-]{1,64}")  # also a file name and an ACL username
TOPIC_ROOT = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")

Pair = tuple[Path, Path]  # (certificate, private key)


# -- identities and the broker's configuration ------------------------------------------

def station_username(district: str, station: str) -> str:
    """The CN, MQTT username and client id of a station (mqtt.md: ``{district}-{station}``)."""
    _check(DISTRICT, district, "district")
    _check(STATION_ID, station, "station")
    return f"{district}-{station}"


def district_username(district: str, name: str = "") -> str:
    """The CN of a district tool: ``district-{d}``, or ``district-{d}-{name}``."""
    _check(DISTRICT, district, "district")
    if name:
        _check(STATION_ID, name, "name")
    return f"district-{district}-{name}" if name else f"district-{district}"


def acl_for_district(root: str, district: str, stations: Iterable[str], *,
                     district_users: Iterable[str] | None = None) -> str:
    """A Mosquitto ``acl_file``: each station its own topics, district tools all of the district.

    A station reads its ``jobs`` and ``cmd/+`` and writes its ``availability``,
    ``state`` and ``events``, plus command replies under ``{root}/{d}/_replies/``
    (where `DistrictClient` asks for them). Whatever is not granted is denied.
    """
    _check(TOPIC_ROOT, root, "topic root")
    base = f"{root}/{district}"
    users = [district_username(district)] if district_users is None else list(district_users)
    lines = [f"# Mosquitto ACL for district {district} under {root}/ (written by kiosk pki acl).",
             "# Usernames are certificate common names; anything not granted is denied.", ""]
    for user in users:
        _check(COMMON_NAME, user, "district user")
        lines += [f"user {user}", f"topic readwrite {base}/#", ""]
    for station in sorted(set(stations)):
        own = f"{base}/{station}"
        lines += [f"user {station_username(district, station)}",
                  f"topic read {own}/jobs", f"topic read {own}/cmd/+",
                  f"topic write {own}/availability", f"topic write {own}/state",
                  f"topic write {own}/events", f"topic write {base}/_replies/#", ""]
    return "\n".join(lines)


def tls_listener(port: int, *, ca_file: str | Path, cert_file: str | Path,
                 key_file: str | Path, acl_file: str | Path,
                 crl_file: str | Path | None = None, address: str | None = None) -> str:
    """The mosquitto.conf lines of a listener that admits only clients with a CA certificate."""
    lines = [f"listener {port} {address}" if address else f"listener {port}",
             f"cafile {ca_file}", f"certfile {cert_file}", f"keyfile {key_file}",
             "tls_version tlsv1.2", "require_certificate true", "use_identity_as_username true",
             "use_username_as_clientid true", f"acl_file {acl_file}"]
    return "\n".join(lines + ([f"crlfile {crl_file}"] if crl_file else []))


def _check(pattern: re.Pattern[str], value: str, what: str) -> None:
    if not pattern.fullmatch(value):
        raise ValueError(f"{what} {value!r} must match {pattern.pattern}")


# -- certificates ------------------------------------------------------------------------

def make_ca(directory: str | Path, name: str) -> Pair:
    """A new CA as ``ca.crt`` and ``ca.key`` in *directory*, plus an empty ``crl.pem``.

    Refuses (FileExistsError) to replace an existing CA key: every certificate it
    signed would stop working.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "ca.crt", directory / "ca.key"
    if key_path.exists():
        raise FileExistsError(f"{key_path} exists: a CA is already there")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - SKEW).not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_crl((cert_path, key_path), set())
    return cert_path, key_path


def make_cert(ca: Pair, directory: str | Path, common_name: str, *, server: bool,
              hosts: Sequence[str] = ("127.0.0.1", "localhost"),
              name: str | None = None) -> Pair:
    """A certificate signed by *ca*, as ``{name or common_name}.crt`` / ``.key`` in *directory*.

    A server certificate names *hosts* (IP addresses and DNS names) as its subject
    alternative names, which clients check; a client certificate's CN is its MQTT
    username. Re-issuing overwrites the files (a renewal).
    """
    _check(COMMON_NAME, common_name, "common name")
    stem = name or common_name
    _check(COMMON_NAME, stem, "file name")
    ca_cert, ca_key = _load_ca(ca)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    purpose = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - SKEW)
        .not_valid_after(min(now + dt.timedelta(days=LEAF_DAYS), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
    )
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(_names(hosts)), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    _write_key(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def revoke(ca: Pair, cert_path: str | Path) -> Path:
    """Add the certificate at *cert_path* to the CA's ``crl.pem`` (beside ``ca.crt``)."""
    ca_cert, _ = _load_ca(ca)
    cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    if not _issued_by(cert, ca_cert):
        raise ValueError(f"{cert_path} was not issued by {ca[0]}")
    return _write_crl(ca, revoked_serials(ca) | {cert.serial_number})


def revoked_serials(ca: Pair) -> set[int]:
    """Serial numbers in the CA's ``crl.pem`` (none when there is no CRL yet)."""
    crl_path = Path(ca[0]).with_name("crl.pem")
    if not crl_path.exists():
        return set()
    crl = x509.load_pem_x509_crl(crl_path.read_bytes())
    return {entry.serial_number for entry in crl}


def issued_names(ca: Pair, directory: str | Path) -> list[str]:
    """Common names of the client certificates of *ca* in *directory* that are not revoked."""
    ca_cert, _ = _load_ca(ca)
    revoked = revoked_serials(ca)
    names = set()
    for path in Path(directory).glob("*.crt"):
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        try:
            usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            continue  # the CA itself
        cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if (cn and ExtendedKeyUsageOID.CLIENT_AUTH in usage
                and cert.serial_number not in revoked and _issued_by(cert, ca_cert)):
            names.add(str(cn[0].value))
    return sorted(names)


def split_names(district: str, names: Iterable[str]) -> tuple[list[str], list[str]]:
    """(station ids, district tool usernames) of *district* among certificate names."""
    tools = [n for n in names if n == district_username(district)
             or n.startswith(district_username(district) + "-")]
    prefix = f"{district}-"
    stations = [n[len(prefix):] for n in names
                if n.startswith(prefix) and STATION_ID.fullmatch(n[len(prefix):])]
    return stations, tools


def _issued_by(cert: x509.Certificate, ca_cert: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _write_crl(ca: Pair, serials: set[int]) -> Path:
    """The CRL lasts as long as the CA: a lapsed CRL would lock every client out."""
    ca_cert, ca_key = _load_ca(ca)
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateRevocationListBuilder()
               .issuer_name(ca_cert.subject)
               .last_update(now - SKEW).next_update(ca_cert.not_valid_after_utc))
    for serial in sorted(serials):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build())
    crl_path = Path(ca[0]).with_name("crl.pem")
    crl_path.write_bytes(builder.sign(ca_key, hashes.SHA256())
                         .public_bytes(serialization.Encoding.PEM))
    return crl_path


def _load_ca(ca: Pair) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    if not Path(ca[1]).exists():
        raise FileNotFoundError(f"no CA key at {ca[1]} (kiosk pki ca makes one)")
    cert = x509.load_pem_x509_certificate(Path(ca[0]).read_bytes())
    key = serialization.load_pem_private_key(Path(ca[1]).read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{ca[1]}: not an EC private key")
    return cert, key


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign,
        crl_sign=cert_sign, encipher_only=False, decipher_only=False)


def _names(hosts: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        os.fchmod(out.fileno(), 0o600)  # an older file keeps its mode through O_TRUNC
        out.write(pem)


# -- kiosk pki -----------------------------------------------------------------------------

_HELP = {
    "ca": "a new certificate authority: DIR/ca.crt, ca.key, crl.pem",
    "server": "the broker's certificate: DIR/server.crt, server.key",
    "station": "a station's certificate: DIR/{district}-{station}.crt, .key",
    "district": "a district tool's certificate: DIR/district-{district}[-{name}].crt, .key",
    "revoke": "add a certificate to DIR/crl.pem",
    "acl": "print the broker's ACL for the client certificates in DIR, revoked ones left out",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="pki_command", required=True)
    commands = {name: sub.add_parser(name, help=text) for name, text in _HELP.items()}
    for command in commands.values():
        command.add_argument("dir", help="the CA's directory (certificates are written there)")
    for name in ("station", "district", "acl"):
        commands[name].add_argument("--district", required=True, type=_district,
                                    help="4 digits: the first four of a NIK")
    commands["ca"].add_argument("--name", default="E-KTP district CA", help="the CA's name")
    commands["server"].add_argument("--host", action="append", required=True,
                                    help="a name or IP address of the broker (repeatable)")
    commands["station"].add_argument("--station", required=True)
    commands["district"].add_argument("--name", default="",
                                      help="for each further tool connected at the same time")
    commands["revoke"].add_argument("cert")
    commands["acl"].add_argument("--root", default="ektp/v1", help="the stations' topic_root")


def run(args: argparse.Namespace) -> int:
    try:
        print(_COMMANDS[args.pki_command](args))
    except (OSError, ValueError) as error:
        print(f"kiosk pki: {error}", file=sys.stderr)
        return 1
    return 0


def _district(value: str) -> str:
    """``--district``: refused at once (usage error, exit 2) unless it is 4 digits."""
    if not DISTRICT.fullmatch(value):
        raise argparse.ArgumentTypeError(f"{value!r} must be 4 digits (the first four of a NIK)")
    return value


def _ca_of(args: argparse.Namespace) -> Pair:
    directory = Path(args.dir)
    return directory / "ca.crt", directory / "ca.key"


def _issue(args: argparse.Namespace, common_name: str, **options: object) -> str:
    cert, key = make_cert(_ca_of(args), args.dir, common_name, **options)  # type: ignore[arg-type]
    return f"{cert}\n{key}"


def _acl(args: argparse.Namespace) -> str:
    stations, tools = split_names(args.district, issued_names(_ca_of(args), args.dir))
    return acl_for_district(args.root, args.district, stations, district_users=tools)


_COMMANDS = {
    "ca": lambda a: "\n".join(str(p) for p in make_ca(a.dir, a.name)),
    "server": lambda a: _issue(a, a.host[0], server=True, hosts=a.host, name="server"),
    "station": lambda a: _issue(a, station_username(a.district, a.station), server=False),
    "district": lambda a: _issue(a, district_username(a.district, a.name), server=False),
    "revoke": lambda a: str(revoke(_ca_of(a), a.cert)),
    "acl": _acl,
}
