"""media/srtp.py against libsrtp (pylibsrtp, what aiortc uses): the same bytes for the
same packets, and libsrtp unprotects ours; sequence numbers wrapping, retransmissions
of older numbers, several SSRCs, headers with CSRCs and extension blocks."""

from __future__ import annotations

import os
import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pylibsrtp import Error as SrtpError
from pylibsrtp import Policy, Session

from media.srtp import GCM_PROFILES, GcmProtector, derive

PROFILES = {
    b"SRTP_AEAD_AES_128_GCM": Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
    b"SRTP_AEAD_AES_256_GCM": Policy.SRTP_PROFILE_AEAD_AES_256_GCM,
}


def libsrtp(key_and_salt: bytes, profile: bytes, outbound: bool) -> Session:
    policy = Policy(
        key=key_and_salt,
        ssrc_type=Policy.SSRC_ANY_OUTBOUND if outbound else Policy.SSRC_ANY_INBOUND,
        srtp_profile=PROFILES[profile],
    )
    policy.allow_repeat_tx = True  # as aiortc sets it
    policy.window_size = 1024
    return Session(policy)


def header(seq: int, ssrc: int, *, csrcs: int = 0, extension: bytes = b"") -> bytes:
    first = 0x80 | (0x10 if extension else 0) | csrcs
    fixed = struct.pack("!BBHII", first, 96, seq & 0xFFFF, 1234, ssrc)
    csrc = b"".join(struct.pack("!I", 1000 + i) for i in range(csrcs))
    if extension:
        extension = b"\xbe\xde" + struct.pack("!H", len(extension) // 4) + extension
    return fixed + csrc + extension


def key_and_salt(profile: bytes) -> bytes:
    key_length, salt_length = GCM_PROFILES[profile]
    return os.urandom(key_length + salt_length)


@pytest.mark.parametrize("profile", sorted(GCM_PROFILES))
def test_the_same_bytes_as_libsrtp_through_a_wrap_and_retransmissions(profile: bytes) -> None:
    material = key_and_salt(profile)
    ours = GcmProtector.from_key_and_salt(material, profile)
    theirs = libsrtp(material, profile, outbound=True)
    receiver = libsrtp(material, profile, outbound=False)
    rng = random.Random(7)
    sent: list[tuple[bytes, bytes]] = []
    ext = bytes([0x10, 0x31, 0x22, 0x11, 0x22, 0x33, 0, 0])  # mid "1", abs-send-time
    for ssrc, start in ((0x11111111, 65_000), (0x22222222, 10), (0x33333333, 40_000)):
        for i in range(3_000):  # the first and last wrap across 0
            h = header(start + i, ssrc, csrcs=i % 3, extension=ext if i % 2 else b"")
            payload = rng.randbytes(rng.randrange(0, 1200))
            packet = ours.protect(h, payload)
            assert packet == theirs.protect(h + payload), (ssrc, start + i)
            assert receiver.unprotect(packet) == h + payload
            sent.append((h, payload))
            if i % 97 == 0 and i > 300:  # a retransmission of a recent packet
                old_h, old_payload = sent[-rng.randrange(2, 300)]
                again = ours.protect(old_h, old_payload)
                assert again == theirs.protect(old_h + old_payload)


@given(
    st.sampled_from(sorted(GCM_PROFILES)),
    st.integers(0, 0xFFFF),
    st.lists(st.integers(-400, 3), min_size=1, max_size=60),
)
@settings(max_examples=150, deadline=None)
def test_any_walk_of_sequence_numbers_matches_libsrtp(
    profile: bytes, start: int, steps: list[int]
) -> None:
    """Sequence numbers walking forwards (also by several) and back (retransmissions
    of earlier numbers, up to 400 back), from any start. libsrtp refuses a number more
    than its window (1,024) behind the highest; the relay never resends one that old
    (its history keeps 512 packets), and ours protects it under its original index."""
    material = key_and_salt(profile)
    ours = GcmProtector.from_key_and_salt(material, profile)
    theirs = libsrtp(material, profile, outbound=True)
    seq = start
    for step in steps:
        seq = (seq + step) & 0xFFFF
        h = header(seq, 0xABCDEF01)
        packet = ours.protect(h, b"payload")
        try:
            expected = theirs.protect(h + b"payload")
        except SrtpError as refused:
            assert "too old" in str(refused)
            continue
        assert packet == expected, seq


def test_session_keys_follow_rfc_3711() -> None:
    """The key derivation's test vector (RFC 3711 appendix B.3: AES-CM PRF, label 0
    and 2), the same function the AEAD profiles use with a zero-padded salt."""
    master_key = bytes.fromhex("E1F97A0D3E018BE0D64FA32C06DE4139")
    master_salt = bytes.fromhex("0EC675AD498AFEEBB6960B3AABE6")
    assert derive(master_key, master_salt, 0, 16) == bytes.fromhex(
        "C61E7A93744F39EE10734AFE3FF7A087"
    )
    assert derive(master_key, master_salt, 2, 14) == bytes.fromhex("30CBBC08863D8C85D49DB34A9AE1")


def test_bad_keys_are_refused() -> None:
    with pytest.raises(ValueError):
        GcmProtector.from_key_and_salt(os.urandom(27), b"SRTP_AEAD_AES_128_GCM")
    with pytest.raises(ValueError):
        GcmProtector(os.urandom(16), os.urandom(14))
