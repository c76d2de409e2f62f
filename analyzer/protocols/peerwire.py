"""Peer wire protocol (BEP 3, 6, 10, 52): the public parser and its events, in one import.

The parser itself is compiled (``_peerwire.pyx``) because it sits in the
per-byte hot path; the typed events it emits are defined in ``events.py``;
this module re-exports both.  Usage is the h11 model, bytes in and events out::

    p = PeerWireParser(at_stream_start=True)
    events = p.receive_data(chunk)     # any chunking gives the same events
    events = p.receive_gap(n)          # n bytes of the stream were not captured
    events = p.receive_eof()

Piece payload is never carried in events: a ``Piece`` event says which block
ended and how many of its bytes were missing; the byte counts live in the
parser's counters (``block_bytes`` and friends).  BEP 10 messages are also
queued, for the engine to route by extension name, when ``ext_messages`` is
set to a list (see ``analyzer.sessions.extensions``).
"""
from analyzer.protocols.events import *  # noqa: F401,F403
from analyzer.protocols.events import MESSAGE_NAMES, PROTOCOL_NAME  # noqa: F401
from analyzer.protocols._peerwire import PeerWireParser  # noqa: F401  (compiled)
