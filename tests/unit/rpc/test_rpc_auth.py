"""Connection-bound cookie proof: the key derivation, the challenge and header formats, and the
constant-time header check of untrusted input."""

from __future__ import annotations

import blake3
import pytest

from aspen.rpc.auth import (
    HEADER_BYTES,
    MAGIC,
    PROOF_KEY_CONTEXT,
    VERSION,
    HeaderCheck,
    challenge_frame,
    check_header,
    connection_proof,
    new_nonce,
    parse_challenge,
    proof_key,
    request_header,
)


def test_key_is_blake3_derived_from_the_cookie_and_never_contains_it() -> None:
    expected = blake3.blake3(b"secret cookie", derive_key_context=PROOF_KEY_CONTEXT).digest()
    assert proof_key("secret cookie") == expected and len(expected) == 32
    assert proof_key("a") != proof_key("b")
    assert b"cookie-text" not in proof_key("cookie-text")
    assert proof_key("clé ✓") == proof_key("clé ✓")


def test_proof_depends_on_cookie_and_on_the_connection_nonce() -> None:
    key = proof_key("c")
    n1, n2 = new_nonce(), new_nonce()
    assert n1 != n2 and len(n1) == 32
    assert connection_proof(key, n1) == blake3.blake3(n1, key=key).digest()
    assert connection_proof(key, n1) != connection_proof(key, n2)
    assert connection_proof(key, n1) != connection_proof(proof_key("d"), n1)


def test_challenge_round_trip_and_refusals() -> None:
    nonce = new_nonce()
    frame = challenge_frame(nonce)
    assert frame[0] == MAGIC and frame[1] == VERSION and len(frame) == 34
    assert parse_challenge(frame) == nonce
    for bad in (b"", frame[:-1], frame + b"x", bytes([MAGIC, VERSION + 1]) + nonce, b"\x00" * 34):
        with pytest.raises(ValueError):
            parse_challenge(bad)


def test_header_check_accepts_the_proof_only() -> None:
    key = proof_key("c")
    proof = connection_proof(key, new_nonce())
    header = request_header(proof)
    assert len(header) == HEADER_BYTES
    assert check_header(proof, header + b"body") == HeaderCheck.OK
    assert check_header(proof, bytearray(header)) == HeaderCheck.OK
    assert check_header(proof, memoryview(header)) == HeaderCheck.OK
    other = connection_proof(key, new_nonce())
    assert check_header(proof, request_header(other)) == HeaderCheck.BAD_PROOF
    assert check_header(proof, b"\x00" * HEADER_BYTES) == HeaderCheck.BAD_VERSION
    old_format = b"\x83\xa1v\x01" + b"\x00" * 40  # a msgpack envelope of the previous protocol
    assert check_header(proof, old_format) == HeaderCheck.BAD_VERSION
    with pytest.raises(ValueError):
        request_header(proof[:-1])
