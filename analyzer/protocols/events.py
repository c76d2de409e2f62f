"""Typed events of the peer wire parser (frozen dataclasses, no payload)."""
from __future__ import annotations

from dataclasses import dataclass

PROTOCOL_NAME = b"BitTorrent protocol"

# Message ids (BEP 3, BEP 6 fast extension, BEP 10, BEP 52).
CHOKE, UNCHOKE, INTERESTED, NOT_INTERESTED, HAVE, BITFIELD, REQUEST, PIECE, CANCEL, PORT = range(10)
SUGGEST, HAVE_ALL, HAVE_NONE, REJECT, ALLOWED_FAST = 0x0D, 0x0E, 0x0F, 0x10, 0x11
EXTENDED = 20
HASH_REQUEST, HASHES, HASH_REJECT = 21, 22, 23

MESSAGE_NAMES = {
    CHOKE: "choke", UNCHOKE: "unchoke", INTERESTED: "interested",
    NOT_INTERESTED: "not_interested", HAVE: "have", BITFIELD: "bitfield",
    REQUEST: "request", PIECE: "piece", CANCEL: "cancel", PORT: "port",
    SUGGEST: "suggest", HAVE_ALL: "have_all", HAVE_NONE: "have_none",
    REJECT: "reject", ALLOWED_FAST: "allowed_fast", EXTENDED: "extended",
    HASH_REQUEST: "hash_request", HASHES: "hashes", HASH_REJECT: "hash_reject",
}


@dataclass(frozen=True, slots=True)
class _BlockRef:
    """A block of a piece: request, cancel, reject (BEP 3, BEP 6)."""

    index: int
    begin: int
    length: int


@dataclass(frozen=True, slots=True)
class _HashRef:
    """Hashes of a file's merkle tree: hash request, hashes, hash reject (BEP 52)."""

    pieces_root: bytes
    base_layer: int
    index: int
    length: int
    proof_layers: int


@dataclass(frozen=True, slots=True)
class Handshake:
    reserved: bytes
    info_hash: bytes
    peer_id: bytes | None  # None when the stream ended or broke before it

    @property
    def supports_dht(self) -> bool:
        return bool(self.reserved[7] & 0x01)

    @property
    def supports_fast(self) -> bool:
        return bool(self.reserved[7] & 0x04)

    @property
    def supports_v2(self) -> bool:
        return bool(self.reserved[7] & 0x10)

    @property
    def supports_extensions(self) -> bool:
        return bool(self.reserved[5] & 0x10)


@dataclass(frozen=True, slots=True)
class KeepAlive:
    pass


@dataclass(frozen=True, slots=True)
class Choke:
    pass


@dataclass(frozen=True, slots=True)
class Unchoke:
    pass


@dataclass(frozen=True, slots=True)
class Interested:
    pass


@dataclass(frozen=True, slots=True)
class NotInterested:
    pass


@dataclass(frozen=True, slots=True)
class Have:
    index: int


@dataclass(frozen=True, slots=True)
class Bitfield:
    bitfield: bytes


@dataclass(frozen=True, slots=True)
class Request(_BlockRef):
    pass


@dataclass(frozen=True, slots=True)
class Piece:
    """A piece message ended (or was cut short).

    ``length`` is the block length the header declared; ``missing`` the part of
    it the parser never saw (lost in a capture gap, or never sent because the
    stream ended).
    """

    index: int
    begin: int
    length: int
    missing: int


@dataclass(frozen=True, slots=True)
class Cancel(_BlockRef):
    pass


@dataclass(frozen=True, slots=True)
class Port:
    port: int


@dataclass(frozen=True, slots=True)
class Suggest:
    index: int


@dataclass(frozen=True, slots=True)
class HaveAll:
    pass


@dataclass(frozen=True, slots=True)
class HaveNone:
    pass


@dataclass(frozen=True, slots=True)
class Reject(_BlockRef):
    pass


@dataclass(frozen=True, slots=True)
class AllowedFast:
    index: int


@dataclass(frozen=True, slots=True)
class Extended:
    """BEP 10 message: ``ext_id`` 0 is the extended handshake."""

    ext_id: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class HashRequest(_HashRef):
    pass


@dataclass(frozen=True, slots=True)
class Hashes(_HashRef):
    hashes: bytes


@dataclass(frozen=True, slots=True)
class HashReject(_HashRef):
    pass


@dataclass(frozen=True, slots=True)
class UnknownMessage:
    msg_id: int
    length: int


@dataclass(frozen=True, slots=True)
class ProtocolError:
    """The peer sent bytes that break the protocol; the parser now resynchronises."""

    offset: int  # stream offset of the offending message
    reason: str


@dataclass(frozen=True, slots=True)
class OversizedMessage:
    """A message of a known variable-length kind (bitfield, piece, extended, hashes) whose
    length prefix exceeds the parser's cap: its ``length`` - 1 bytes after the id are skipped
    unparsed (never buffered) and framing continues after them."""

    offset: int  # stream offset of the message's length prefix
    msg_id: int
    length: int  # the length prefix


@dataclass(frozen=True, slots=True)
class NotPeerWire:
    """The stream start was seen and is not a plaintext BitTorrent handshake."""

    offset: int


@dataclass(frozen=True, slots=True)
class Desync:
    """Message framing was lost (a gap ran past the current message)."""

    offset: int


@dataclass(frozen=True, slots=True)
class Resync:
    """Framing found again at ``offset`` after ``skipped`` unparsed bytes.

    ``block_tail`` says the skipped bytes were counted as the tail of a block
    whose header was not captured (piece unknown).
    """

    offset: int
    skipped: int
    block_tail: bool


@dataclass(frozen=True, slots=True)
class Gap:
    """``length`` stream bytes were not captured (-1: an unknown number, as when a
    uTP packet is missing); ``in_block`` when all of them fell inside a piece
    block whose framing is known."""

    offset: int
    length: int
    in_block: bool
