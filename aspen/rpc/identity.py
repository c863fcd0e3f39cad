"""Node identity: one Ed25519 key that names the node and secures its QUIC endpoint.

The endpoint id (hex of the raw public key) is what tickets carry and what
clients pin.  The TLS certificate is self-signed by that same key, and TLS 1.3's
CertificateVerify proves the server holds the private key matching the
certificate's public key, so "certificate public key == pinned id" is a
complete authentication of the server; no CA and no clock are involved.

The key file is named ``iroh_secret_key`` and holds 64 hex characters of the
raw 32-byte private key, the same format as earlier iroh-based deployments,
so existing data directories keep their identity.
"""

from __future__ import annotations

import datetime
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID

__all__ = ["SECRET_KEY_FILENAME", "NodeIdentity", "endpoint_id_of_certificate", "load_or_create"]

SECRET_KEY_FILENAME = "iroh_secret_key"

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")

# Fixed, very wide validity: peers never check it (they pin the key instead),
# but some TLS stacks reject certificates outside their window, and a fixed
# window keeps the certificate deterministic for a given key.
_NOT_BEFORE = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
_NOT_AFTER = datetime.datetime(2100, 1, 1, tzinfo=datetime.UTC)


def _parse_secret_hex(secret_hex: str, source: str) -> ed25519.Ed25519PrivateKey:
    text = secret_hex.strip()
    if not _HEX64.fullmatch(text):
        raise ValueError(
            f"invalid node secret key from {source}: expected 64 hex characters "
            f"(32 raw Ed25519 private-key bytes), got {len(text)} characters"
            + ("" if len(text) != 64 else " containing non-hex characters")
        )
    return ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(text))


@dataclass(frozen=True, eq=False)
class NodeIdentity:
    """An Ed25519 private key plus the X.509 certificate derived from it."""

    private_key: ed25519.Ed25519PrivateKey
    _certificate: x509.Certificate = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Build once: certificate signing is cheap but the server reuses it
        # for every connection, and a stable object keeps PEM output stable.
        object.__setattr__(self, "_certificate", _self_signed_certificate(self.private_key))

    @classmethod
    def generate(cls) -> NodeIdentity:
        return cls(ed25519.Ed25519PrivateKey.generate())

    @classmethod
    def from_secret_hex(cls, secret_hex: str) -> NodeIdentity:
        """Build from 64 hex characters; raises ``ValueError`` on bad input."""
        return cls(_parse_secret_hex(secret_hex, "explicit secret"))

    @property
    def secret_bytes(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )

    @property
    def secret_hex(self) -> str:
        return self.secret_bytes.hex()

    @property
    def public_key_bytes(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @property
    def endpoint_id(self) -> str:
        """64 lowercase hex characters of the raw 32-byte public key."""
        return self.public_key_bytes.hex()

    @property
    def certificate(self) -> x509.Certificate:
        """Self-signed certificate for this key (usable as ``QuicConfiguration.certificate``)."""
        return self._certificate

    def certificate_pem(self) -> bytes:
        return self._certificate.public_bytes(serialization.Encoding.PEM)

    def private_key_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def save(self, path: Path) -> None:
        """Atomically write the secret as 64 hex characters with mode 0600."""
        _atomic_write_secret(path, self.secret_hex.encode("ascii"))


def _self_signed_certificate(key: ed25519.Ed25519PrivateKey) -> x509.Certificate:
    endpoint_id = (
        key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, endpoint_id)])
    # The serial only has to be unique per issuer; deriving it from the key keeps
    # the certificate reproducible. Top bit cleared: serials must be positive.
    serial = int.from_bytes(bytes.fromhex(endpoint_id)[:16], "big") >> 1 or 1
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(_NOT_BEFORE)
        .not_valid_after(_NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, algorithm=None)  # Ed25519 signs the message itself: no separate hash
    )


def endpoint_id_of_certificate(cert: x509.Certificate) -> str:
    """Return the endpoint id (hex public key) a peer certificate carries.

    Uses the certificate's public key, not its subject: TLS proves possession of
    that key, whereas the subject is an unauthenticated label.  Raises
    ``ValueError`` for non-Ed25519 certificates.
    """
    public_key = cert.public_key()
    if not isinstance(public_key, ed25519.Ed25519PublicKey):
        raise ValueError(f"peer certificate key is {type(public_key).__name__}, expected Ed25519")
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def _atomic_write_secret(path: Path, data: bytes) -> None:
    directory = path.parent
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    # mkstemp creates the file with mode 0600 from the start, so the secret is
    # never readable by others, not even briefly.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_name, 0o600)
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    # fsync the directory so the rename itself survives a crash.
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_or_create(data_dir: Path, secret_hex: str | None = None) -> NodeIdentity:
    """Return the node identity.

    Precedence: an explicit ``secret_hex`` (not written to disk), then the file
    ``data_dir/iroh_secret_key``, then a freshly generated key which is saved
    there atomically.  Malformed input raises ``ValueError`` rather than being
    silently replaced: a node that changed identity would no longer match the
    tickets that name it.
    """
    if secret_hex is not None:
        return NodeIdentity.from_secret_hex(secret_hex)
    path = Path(data_dir) / SECRET_KEY_FILENAME
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        identity = NodeIdentity.generate()
        identity.save(path)
        return identity
    except UnicodeDecodeError as exc:
        raise ValueError(f"invalid node secret key in {path}: not ASCII hex") from exc
    return NodeIdentity(_parse_secret_hex(text, str(path)))
