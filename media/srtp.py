"""SRTP protection of RTP packets with AES-GCM (RFC 7714), for the relay's send path.

A viewer's packets are protected one by one on the relay's hot path. libsrtp (through
pylibsrtp) costs ~2.4 us a call before the first byte is encrypted (its stream lookup,
the replay window, the cipher set-up, the copies through cffi), ~3.1 us for a 1,150-byte
packet; the ``cryptography`` package's one-shot ``AESGCM.encrypt`` ~1.3 us (figures in
bench/RESULTS.md, "Media relay"). ``GcmProtector`` protects exactly as libsrtp does for
the two AEAD profiles (``SRTP_AEAD_AES_128_GCM``, ``SRTP_AEAD_AES_256_GCM``, which
Chromium and aiortc negotiate first), byte for byte (tests/media/test_srtp.py compares
it with pylibsrtp's ``protect`` and unprotects its output with pylibsrtp):

- session keys from the master key and salt by the SRTP key derivation (RFC 3711
  s4.3, key derivation rate 0; RFC 7714 s11): AES in counter mode keyed with the master
  key, from the block ``(master salt, zero-padded to 14 bytes) || 0x0000`` with the
  label XORed into its eighth byte: label 0 the encryption key, label 2 the 12-byte salt;
- each packet: IV = ``(0x0000 || SSRC || ROC || SEQ) XOR session salt``, the RTP header
  (with its CSRCs and extension block) as associated data, the payload encrypted, the
  16-byte tag appended (RFC 7714 s8);
- the packet index (rollover counter and sequence number) per SSRC estimated from the
  highest one sent, as libsrtp does (RFC 3711 appendix A, with ROC 0 until the numbers
  pass 2**15): a retransmission of an older number gets its original index.

Contract: the caller never sends two different packets under one SSRC and sequence
number (GCM's nonce would repeat); a retransmission resends the same header and
payload, so its ciphertext and tag are the same as the first time. RTCP (SRTCP) stays
with libsrtp, whose RTCP context is apart from the RTP one.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

#: (key length, salt length) of the AEAD profiles by their OpenSSL names
GCM_PROFILES = {b"SRTP_AEAD_AES_128_GCM": (16, 12), b"SRTP_AEAD_AES_256_GCM": (32, 12)}
_LABEL_RTP_ENCRYPTION = 0x00
_LABEL_RTP_SALT = 0x02
_HALF = 1 << 15


def derive(master_key: bytes, master_salt: bytes, label: int, length: int) -> bytes:
    """``length`` bytes of the session key ``label`` (RFC 3711 s4.3.1, rate 0)."""
    if len(master_key) not in (16, 32) or len(master_salt) not in (12, 14):
        raise ValueError("master key of 16 or 32 bytes, salt of 12 or 14 bytes")
    block = bytearray(master_salt.ljust(14, b"\x00") + b"\x00\x00")
    block[7] ^= label
    keystream = Cipher(algorithms.AES(master_key), modes.CTR(bytes(block))).encryptor()
    return keystream.update(b"\x00" * length) + keystream.finalize()


class GcmProtector:
    """Protects outgoing RTP packets of any SSRC with one AEAD master key and salt."""

    __slots__ = ("_aead", "_highest", "_salt")

    def __init__(self, master_key: bytes, master_salt: bytes) -> None:
        if len(master_salt) != 12:
            raise ValueError("an AEAD profile's master salt has 12 bytes")
        key = derive(master_key, master_salt, _LABEL_RTP_ENCRYPTION, len(master_key))
        self._aead = AESGCM(key)
        self._salt = int.from_bytes(derive(master_key, master_salt, _LABEL_RTP_SALT, 12))
        #: per SSRC: the highest packet index sent (rollover counter << 16 | sequence)
        self._highest: dict[int, int] = {}

    @classmethod
    def from_key_and_salt(cls, key_and_salt: bytes, profile: bytes) -> GcmProtector:
        """From the keying material as aiortc hands it to libsrtp (key then salt)."""
        key_length, salt_length = GCM_PROFILES[profile]
        if len(key_and_salt) != key_length + salt_length:
            raise ValueError(f"{profile.decode()} takes {key_length + salt_length} bytes")
        return cls(key_and_salt[:key_length], key_and_salt[key_length:])

    def protect(self, header: bytes, payload: bytes) -> bytes:
        """The SRTP packet for the RTP ``header`` (12 bytes, CSRCs and extension block
        included) and its ``payload``."""
        seq = (header[2] << 8) | header[3]
        ssrc = int.from_bytes(header[8:12])
        highest = self._highest.get(ssrc, 0)
        if highest <= _HALF:
            # as libsrtp: until the numbers pass 2**15 the rollover counter is 0
            index = seq
        else:
            roc, last = highest >> 16, highest & 0xFFFF
            if last < _HALF:
                if seq - last > _HALF:  # from before the last wrap
                    roc -= 1
            elif last - _HALF > seq:  # the numbers wrapped
                roc += 1
            index = (roc << 16) | seq
        if index > highest:
            self._highest[ssrc] = index
        iv = (((ssrc << 48) | index) ^ self._salt).to_bytes(12)
        return header + self._aead.encrypt(iv, payload, header)
