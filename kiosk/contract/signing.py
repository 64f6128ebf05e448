"""Ed25519 signatures on print-ready records (mqtt.md, Job: `sig`).

Owns the canonical JSON the signature covers, key ids, signing (district side),
verification against the station's trusted keys, and PEM key files.

Canonical JSON is RFC 8785 restricted to what records hold: objects (keys sorted by
UTF-16 code units), arrays, strings (UTF-8, only `"`, `\\` and control characters
escaped), integers within ±(2**53 - 1), true, false, null. Floats raise ValueError:
records never contain them, and a signer that sends one gets `bad-signature`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Iterable
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kiosk.contract.rejected import Rejected, known_record_id

ALG = "ed25519"
_MAX_SAFE_INT = 2**53 - 1


def canonical_json(obj: object) -> bytes:
    """The RFC 8785 bytes of `obj` (see the module docstring for what is accepted)."""
    return _encode(obj).encode("utf-8")  # lone surrogates raise UnicodeEncodeError


def _encode(obj: object) -> str:
    if obj is None or isinstance(obj, bool):
        return {None: "null", True: "true", False: "false"}[obj]
    if isinstance(obj, int):
        if abs(obj) > _MAX_SAFE_INT:
            raise ValueError(f"integer {obj} is outside ±(2**53 - 1)")
        return str(obj)
    if isinstance(obj, str):
        return encode_basestring(obj)  # json's own escaping, without ensure_ascii
    if isinstance(obj, list | tuple):
        return "[" + ",".join(_encode(item) for item in obj) + "]"
    if isinstance(obj, dict):
        if not all(isinstance(key, str) for key in obj):
            raise TypeError("object keys must be strings")
        keys = sorted(obj, key=lambda k: k.encode("utf-16-be", "surrogatepass"))
        return "{" + ",".join(f"{_encode(k)}:{_encode(obj[k])}" for k in keys) + "}"
    if isinstance(obj, float):
        raise ValueError("floats are not supported in canonical records")
    raise TypeError(f"cannot canonicalise a {type(obj).__name__}")


def key_id(public_key: Ed25519PublicKey) -> str:
    """First 16 hex digits of the SHA-256 of the raw 32-byte public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _unsigned(record_dict: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record_dict.items() if k != "sig"}


def sign_record(record_dict: dict[str, Any], private_key: Ed25519PrivateKey) -> dict[str, Any]:
    """A shallow copy of `record_dict` carrying a fresh `sig` (any old one is dropped)."""
    body = _unsigned(record_dict)
    value = private_key.sign(canonical_json(body))
    sig = {"alg": ALG, "key_id": key_id(private_key.public_key()),
           "value": base64.b64encode(value).decode("ascii")}
    return {**body, "sig": sig}


class Verifier:
    """Checks record signatures against the station's trusted district keys.

    Several keys may be trusted at once (key rotation); each signature names its key
    by `key_id`. With `required=False` unsigned records pass, but a signature that is
    present must still be good.

        verifier = Verifier.from_pem_files(["/etc/kiosk/district.pub"])
        verifier.verify(record_dict)   # raises Rejected, or returns None
    """

    def __init__(self, trusted: Iterable[Ed25519PublicKey], *, required: bool = True) -> None:
        keys = list(trusted)
        if not all(isinstance(key, Ed25519PublicKey) for key in keys):
            raise TypeError("trusted keys must be Ed25519PublicKey objects")
        self._keys = {key_id(key): key for key in keys}
        self.required = required

    @classmethod
    def from_pem_files(cls, paths: Iterable[str | os.PathLike[str]], *,
                       required: bool = True) -> Verifier:
        """Load PEM public keys (`openssl pkey -pubout` of an ed25519 key).

        Raises ValueError naming the file if one is missing or not such a key.
        """
        return cls([_load_public_pem(Path(path)) for path in paths], required=required)

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def verify(self, record_dict: dict[str, Any]) -> None:
        """Raise Rejected ("unsigned", "bad-signature", "unknown-key") unless acceptable."""
        rid = known_record_id(record_dict)
        if "sig" not in record_dict:
            if self.required:
                raise Rejected("unsigned", "record has no sig and signed jobs are required", rid)
            return
        key, value = self._parse_sig(record_dict["sig"], rid)
        try:
            key.verify(value, canonical_json(_unsigned(record_dict)))
        except (ValueError, TypeError, RecursionError) as exc:
            raise Rejected("bad-signature", f"record cannot be canonicalised: {exc}", rid) from None
        except InvalidSignature:
            raise Rejected("bad-signature", "signature does not match the record", rid) from None

    def _parse_sig(self, sig: object, rid: str | None) -> tuple[Ed25519PublicKey, bytes]:
        if not isinstance(sig, dict):
            raise Rejected("bad-signature", "sig is not an object", rid)
        if sig.get("alg") != ALG:
            raise Rejected("bad-signature", f"sig.alg is not {ALG!r}", rid)
        kid = sig.get("key_id")
        if not isinstance(kid, str):
            raise Rejected("bad-signature", "sig.key_id is not a string", rid)
        if kid not in self._keys:
            raise Rejected("unknown-key", f"sig.key_id {kid[:32]!r} is not a trusted key", rid)
        value = _b64decode(sig.get("value"))
        if value is None:
            raise Rejected("bad-signature", "sig.value is not base64", rid)
        if len(value) != 64:
            raise Rejected("bad-signature", f"sig.value is {len(value)} bytes, not 64", rid)
        return self._keys[kid], value


def _b64decode(text: object) -> bytes | None:
    if not isinstance(text, str):
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):  # ValueError: non-ASCII text
        return None


def _load_public_pem(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise ValueError(f"{path}: cannot read trusted key ({exc.strerror})") from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ValueError(f"{path}: not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path}: not an Ed25519 public key ({type(key).__name__})")
    return key


def load_private_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """Load an unencrypted PEM Ed25519 private key (`openssl genpkey -algorithm ed25519`)."""
    path = Path(path)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read private key ({exc.strerror})") from None
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ValueError(f"{path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 private key ({type(key).__name__})")
    return key


def generate_key_pair(directory: str | os.PathLike[str], *,
                      name: str = "district") -> tuple[Path, Path]:
    """Write a new key pair as `{name}.key` (PKCS#8 PEM, mode 0600) and `{name}.pub`.

    Refuses (FileExistsError) to overwrite an existing private key.
    """
    directory = Path(directory)
    private_path, public_path = directory / f"{name}.key", directory / f"{name}.pub"
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(private_pem)
    public_path.write_bytes(public_pem)
    return private_path, public_path
