"""NodeIdentity: key file precedence, atomic persistence, certificate <-> endpoint id."""

from __future__ import annotations

import datetime
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from aspen.rpc.identity import SECRET_KEY_FILENAME, NodeIdentity, endpoint_id_of_certificate, load_or_create

SECRET = "11" * 32


def test_generate_and_save_creates_0600_file(tmp_path: Path) -> None:
    identity = load_or_create(tmp_path / "node")
    path = tmp_path / "node" / SECRET_KEY_FILENAME
    text = path.read_text()
    assert text == identity.secret_hex
    assert len(text) == 64 and text == text.lower()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # No temporary files left behind by the atomic write.
    assert os.listdir(tmp_path / "node") == [SECRET_KEY_FILENAME]


def test_load_existing_file_is_stable(tmp_path: Path) -> None:
    first = load_or_create(tmp_path)
    second = load_or_create(tmp_path)
    assert first.endpoint_id == second.endpoint_id


def test_file_with_surrounding_whitespace_loads(tmp_path: Path) -> None:
    (tmp_path / SECRET_KEY_FILENAME).write_text(SECRET.upper() + "\n")
    assert load_or_create(tmp_path).secret_hex == SECRET


def test_explicit_secret_wins_and_is_not_written(tmp_path: Path) -> None:
    load_or_create(tmp_path)  # a different key on disk
    on_disk = (tmp_path / SECRET_KEY_FILENAME).read_text()
    identity = load_or_create(tmp_path, secret_hex=SECRET)
    assert identity.secret_hex == SECRET
    assert (tmp_path / SECRET_KEY_FILENAME).read_text() == on_disk


def test_explicit_secret_does_not_create_a_file(tmp_path: Path) -> None:
    load_or_create(tmp_path, secret_hex=SECRET)
    assert not (tmp_path / SECRET_KEY_FILENAME).exists()


@pytest.mark.parametrize("bad", ["", "abc", "zz" * 32, "11" * 31, "11" * 33, "0x" + "11" * 31])
def test_bad_explicit_secret(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="64 hex characters"):
        load_or_create(tmp_path, secret_hex=bad)


def test_bad_file_content_is_an_error_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / SECRET_KEY_FILENAME
    path.write_text("not a key")
    with pytest.raises(ValueError, match=SECRET_KEY_FILENAME):
        load_or_create(tmp_path)
    assert path.read_text() == "not a key"


def test_endpoint_id_is_hex_public_key() -> None:
    identity = NodeIdentity.from_secret_hex(SECRET)
    raw = identity.private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert identity.endpoint_id == raw.hex()
    assert len(identity.endpoint_id) == 64


def test_certificate_carries_the_key() -> None:
    identity = NodeIdentity.generate()
    cert = x509.load_pem_x509_certificate(identity.certificate_pem())
    assert endpoint_id_of_certificate(cert) == identity.endpoint_id
    cn = cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value
    assert cn == identity.endpoint_id
    assert cert.not_valid_before_utc.year == 2000
    assert cert.not_valid_after_utc.year == 2100
    # Self-signed by the same key.
    cert.verify_directly_issued_by(cert)


def test_private_key_pem_round_trip() -> None:
    identity = NodeIdentity.generate()
    key = serialization.load_pem_private_key(identity.private_key_pem(), password=None)
    assert NodeIdentity(key).endpoint_id == identity.endpoint_id  # type: ignore[arg-type]


def test_certificate_is_deterministic_per_key() -> None:
    a = NodeIdentity.from_secret_hex(SECRET)
    b = NodeIdentity.from_secret_hex(SECRET)
    assert a.certificate_pem() == b.certificate_pem()


def test_non_ed25519_certificate_rejected() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime.datetime(2000, 1, 1))
        .not_valid_after(datetime.datetime(2100, 1, 1))
        .sign(key, algorithm=hashes.SHA256())
    )
    with pytest.raises(ValueError, match="Ed25519"):
        endpoint_id_of_certificate(cert)
