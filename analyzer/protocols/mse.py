"""Recognising Message Stream Encryption (MSE/PE, "BitTorrent protocol encryption").

An MSE connection begins with a Diffie-Hellman exchange: the initiator sends
its 768-bit public key Ya plus 0-512 bytes of random padding and waits; the
responder answers with Yb plus 0-512 bytes of padding; everything after is
RC4-encrypted (or, when both settled on "plaintext", the peer wire protocol
continues in the clear after the encrypted negotiation).  No plaintext
handshake, two first flights of 96-608 bytes, and key bytes that look random
are what a capture can show; the keys themselves cannot be recovered, so the
content of such a connection can never be attributed to a torrent.
"""
from __future__ import annotations

KEY_BYTES = 96
MAX_PAD = 512
_KNOWN_PREFIXES = (b"\x16\x03", b"SSH-", b"GET ", b"POST ", b"HEAD ", b"PUT ", b"HTTP/", b"\x13BitTorrent")


def _looks_random(b: bytes) -> bool:
    """96 random bytes have ~80 distinct values; text and most headers far fewer."""
    return len(b) >= KEY_BYTES and len(set(b[:KEY_BYTES])) >= 60


def mse_basis(flight0: int, flight1: int, head0: bytes, head1: bytes) -> str | None:
    """Why this connection looks like an MSE key exchange, or None.

    ``flight0``: bytes the initiator sent before the responder's first byte;
    ``flight1``: bytes the responder sent before the initiator's next;
    ``head0``/``head1``: the first bytes of each direction."""
    if not (KEY_BYTES <= flight0 <= KEY_BYTES + MAX_PAD and KEY_BYTES <= flight1 <= KEY_BYTES + MAX_PAD):
        return None
    if any(h.startswith(p) for h in (head0, head1) for p in _KNOWN_PREFIXES):
        return None
    if not (_looks_random(head0) and _looks_random(head1)):
        return None
    return (f"no plaintext handshake; first flights of {flight0} and {flight1} bytes "
            f"(a 96-byte key plus padding each way); key bytes look random")
