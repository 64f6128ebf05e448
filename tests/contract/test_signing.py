"""Ed25519 signing and verification of records (kiosk.contract.signing), with openssl interop."""

from __future__ import annotations

import base64
import hashlib
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.contract.record import FIELD_NAMES, Rejected, parse_record
from kiosk.contract.signing import (
    Verifier,
    canonical_json,
    generate_key_pair,
    key_id,
    load_private_key,
    sign_record,
)
from kiosk.sim import samples

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
RID = "demo-3210-000001"


def signed(key: Ed25519PrivateKey = KEY) -> dict[str, Any]:
    return sign_record(samples.make_record(1), key)


def rejected_by(verifier: Verifier, record: dict[str, Any]) -> Rejected:
    with pytest.raises(Rejected) as info:
        verifier.verify(record)
    assert info.value.record_id == record.get("record_id")
    return info.value


def test_canonical_json_exact_bytes() -> None:
    obj = {"nama": "SITI CONTOH ÑOÑO", "b": [1, True, None, -7], "a": "é\n\"\\/\x1f", "Ä": {}}
    assert canonical_json(obj) == (
        '{"a":"é\\n\\"\\\\/\\u001f","b":[1,true,null,-7],"nama":"SITI CONTOH ÑOÑO","Ä":{}}'
    ).encode()


def test_canonical_json_sorts_keys_by_utf16_code_units() -> None:
    # Code point order would put U+FB33 before U+1F600; UTF-16 (D83D DE00) puts it after.
    obj = {"\ufb33": 3, "\U0001f600": 2, "\u20ac": 1}
    assert canonical_json(obj) == '{"\u20ac":1,"\U0001f600":2,"\ufb33":3}'.encode()


@pytest.mark.parametrize("bad", [1.5, 2**53, -(2**53), {1: "x"}, "\ud800", object()])
def test_canonical_json_refuses_what_records_never_hold(bad: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        canonical_json({"x": bad})


def test_key_id_is_sha256_prefix_of_raw_public_key() -> None:
    raw = KEY.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    assert key_id(KEY.public_key()) == hashlib.sha256(raw).hexdigest()[:16]
    assert len(key_id(KEY.public_key())) == 16


def test_sign_verify_round_trip_through_parse_record() -> None:
    record = signed()
    assert record["sig"]["alg"] == "ed25519"
    assert record["sig"]["key_id"] == key_id(KEY.public_key())
    value = base64.b64decode(record["sig"]["value"])
    body = {k: v for k, v in record.items() if k != "sig"}
    KEY.public_key().verify(value, canonical_json(body))
    verifier = Verifier([KEY.public_key()])
    verifier.verify(record)
    parsed = parse_record(canonical_json(record), verifier=verifier)
    assert parsed.sig == record["sig"]


def test_sign_record_replaces_an_old_signature_and_leaves_input_alone() -> None:
    original = samples.make_record(1)
    twice = sign_record(sign_record(original, OTHER), KEY)
    assert "sig" not in original
    assert twice == signed()


TAMPER = [*(f"fields.{name}" for name in FIELD_NAMES), "nik", "record_id", "priority",
          "photo_jpeg", "signature_png", "schema", "extra"]


@pytest.mark.parametrize("where", TAMPER)
def test_tampering_any_member_breaks_the_signature(where: str) -> None:
    record = signed()
    parent, _, name = where.rpartition(".")
    target = record["fields"] if parent else record
    old = target.get(name)
    target[name] = old + 1 if isinstance(old, int) else (old or "") + "X"
    code = rejected_by(Verifier([KEY.public_key()]), record).code
    assert code == "bad-signature"


def test_signature_is_checked_before_the_content() -> None:
    record = signed()
    record["photo_jpeg"] = "not base64!"
    with pytest.raises(Rejected) as info:
        parse_record(canonical_json(record), verifier=Verifier([KEY.public_key()]))
    assert info.value.code == "bad-signature"


def test_unknown_key() -> None:
    rejected = rejected_by(Verifier([KEY.public_key()]), signed(OTHER))
    assert rejected.code == "unknown-key"
    assert key_id(OTHER.public_key()) in rejected.detail


def test_unsigned_required_and_optional() -> None:
    record = samples.make_record(1)
    rejected = rejected_by(Verifier([KEY.public_key()]), record)
    assert rejected.code == "unsigned"
    Verifier([KEY.public_key()], required=False).verify(record)
    parsed = parse_record(canonical_json(record), verifier=Verifier([], required=False))
    assert parsed.record_id == RID


@pytest.mark.parametrize(("change", "code", "detail"), [
    ({"alg": "rsa"}, "bad-signature", "sig.alg is not 'ed25519'"),
    ({"value": "!!!"}, "bad-signature", "sig.value is not base64"),
    ({"value": 5}, "bad-signature", "sig.value is not base64"),
    ({"value": "AAAA"}, "bad-signature", "sig.value is 3 bytes, not 64"),
    ({"value": base64.b64encode(bytes(64)).decode()}, "bad-signature",
     "signature does not match the record"),
    ({"key_id": None}, "bad-signature", "sig.key_id is not a string"),
    ({"key_id": "0" * 16}, "unknown-key", "'0000000000000000' is not a trusted key"),
])
@pytest.mark.parametrize("required", [True, False])
def test_present_but_bad_signature_is_rejected_even_when_optional(
        change: dict[str, Any], code: str, detail: str, required: bool) -> None:
    record = signed()
    record["sig"].update(change)
    rejected = rejected_by(Verifier([KEY.public_key()], required=required), record)
    assert (rejected.code, rejected.detail[-len(detail):]) == (code, detail)


def test_sig_that_is_not_an_object_and_unsignable_record() -> None:
    verifier = Verifier([KEY.public_key()])
    assert rejected_by(verifier, {**signed(), "sig": "x"}).detail == "sig is not an object"
    float_record = {**signed(), "priority": 0.5}
    assert "cannot be canonicalised" in rejected_by(verifier, float_record).detail


def test_key_rotation_with_two_trusted_keys(tmp_path: Path) -> None:
    paths = []
    for key, name in ((KEY, "old.pub"), (OTHER, "new.pub")):
        paths.append(tmp_path / name)
        paths[-1].write_bytes(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    verifier = Verifier.from_pem_files([str(p) for p in paths])
    assert verifier.key_ids == {key_id(KEY.public_key()), key_id(OTHER.public_key())}
    verifier.verify(signed(KEY))
    verifier.verify(signed(OTHER))
    third = Ed25519PrivateKey.generate()
    assert rejected_by(verifier, signed(third)).code == "unknown-key"


def write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def test_pem_loading_errors_name_the_file(tmp_path: Path) -> None:
    ec_pub = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    private_pem = KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    cases = {
        str(tmp_path / "missing.pub"): "cannot read trusted key",
        write(tmp_path / "junk.pub", b"hello"): "not a PEM public key",
        write(tmp_path / "private.pem", private_pem): "not a PEM public key",
        write(tmp_path / "ec.pub", ec_pub): "not an Ed25519 public key (",
    }
    for path, problem in cases.items():
        with pytest.raises(ValueError) as info:
            Verifier.from_pem_files([path])
        assert str(info.value).startswith(f"{path}: {problem}")


def test_generate_and_load_key_pair(tmp_path: Path) -> None:
    private_path, public_path = generate_key_pair(tmp_path)
    assert (private_path.name, public_path.name) == ("district.key", "district.pub")
    assert stat.S_IMODE(private_path.stat().st_mode) == 0o600
    key = load_private_key(private_path)
    verifier = Verifier.from_pem_files([public_path])
    verifier.verify(signed(key))
    with pytest.raises(FileExistsError):
        generate_key_pair(tmp_path)
    with pytest.raises(ValueError, match=r"district\.pub: not an unencrypted PEM private key"):
        load_private_key(public_path)
    with pytest.raises(ValueError, match=r"nope\.key: cannot read private key"):
        load_private_key(tmp_path / "nope.key")
    encrypted = KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.BestAvailableEncryption(b"pw"))
    with pytest.raises(ValueError, match=r"enc\.key: not an unencrypted PEM private key"):
        load_private_key(write(tmp_path / "enc.key", encrypted))


OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")


def openssl(*args: str) -> bytes:
    assert OPENSSL is not None
    return subprocess.run([OPENSSL, *args], check=True, capture_output=True, timeout=10).stdout


@needs_openssl
def test_openssl_keys_and_signatures_interoperate(tmp_path: Path) -> None:
    priv, pub = str(tmp_path / "k.pem"), str(tmp_path / "k.pub")
    openssl("genpkey", "-algorithm", "ed25519", "-out", priv)
    openssl("pkey", "-in", priv, "-pubout", "-out", pub)
    der = openssl("pkey", "-in", priv, "-pubout", "-outform", "DER")
    expected_id = hashlib.sha256(der[-32:]).hexdigest()[:16]
    verifier = Verifier.from_pem_files([pub])
    assert verifier.key_ids == {expected_id}

    # openssl signs, we verify
    body = samples.make_record(3)
    message = write(tmp_path / "msg", canonical_json(body))
    signature = openssl("pkeyutl", "-sign", "-inkey", priv, "-rawin", "-in", message)
    record = {**body, "sig": {"alg": "ed25519", "key_id": expected_id,
                              "value": base64.b64encode(signature).decode()}}
    verifier.verify(record)
    assert parse_record(canonical_json(record), verifier=verifier).record_id == body["record_id"]

    # we sign with the openssl key, openssl verifies
    ours = sign_record(body, load_private_key(priv))
    sigfile = write(tmp_path / "sig", base64.b64decode(ours["sig"]["value"]))
    out = openssl("pkeyutl", "-verify", "-pubin", "-inkey", pub, "-rawin", "-in", message,
                  "-sigfile", sigfile)
    assert b"Signature Verified Successfully" in out


@needs_openssl
def test_openssl_reads_our_generated_keys(tmp_path: Path) -> None:
    private_path, public_path = generate_key_pair(tmp_path)
    assert openssl("pkey", "-in", str(private_path), "-pubout") == public_path.read_bytes()
