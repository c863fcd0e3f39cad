"""Cookie proof: deterministic HMAC, constant-time verification of untrusted input."""

from __future__ import annotations

import hashlib
import hmac

from aspen.rpc.auth import cookie_proof, verify_proof


def test_proof_is_hmac_sha256_of_context() -> None:
    expected = hmac.new(b"secret cookie", b"aspen-client-auth-v1", hashlib.sha256).digest()
    assert cookie_proof("secret cookie") == expected
    assert len(expected) == 32


def test_proof_differs_per_cookie_and_never_contains_cookie() -> None:
    assert cookie_proof("a") != cookie_proof("b")
    assert b"cookie-text" not in cookie_proof("cookie-text")


def test_unicode_cookie() -> None:
    assert verify_proof(cookie_proof("clé ✓"), cookie_proof("clé ✓"))


def test_verify_accepts_match_rejects_everything_else() -> None:
    proof = cookie_proof("c")
    assert verify_proof(proof, proof)
    assert verify_proof(proof, bytearray(proof))
    assert not verify_proof(proof, cookie_proof("d"))
    assert not verify_proof(proof, proof[:-1])
    assert not verify_proof(proof, b"")
    for junk in (None, 1, "c", proof.hex(), [proof], {"p": proof}):
        assert not verify_proof(proof, junk)
