"""BEP 10 extension messages, routed by extension name to their handlers.

Theory of operation
-------------------
Each peer wire parser queues the BEP 10 messages of its direction
(``ext_messages``: extension id and payload, the extended handshake (id 0)
included).  After every frame the engine hands the queue to the
``ExtensionRouter`` together with the connection and the frame's
``where`` (file index, frame number, time).  Routing follows BEP 10: an
extended handshake announces, in its ``m`` dictionary, the ids under which
*its sender* wants to *receive* each extension, so a message sent by
direction ``d`` is named by direction ``1 - d``'s handshake.  The router
decodes each handshake once (records reuse the decoded dictionary) and
passes every named message to the handler registered under that name.

A handler is one small module with one class (libtorrent's pattern): a
``name`` and ``on_handshake``/``on_message`` methods, and ``result()`` /
``merge()`` for the facts it collected, which are plain values: with several
partitions every partition has its own handlers and the analysis merges
their results, so what a handler finds does not depend on how connections
were partitioned.  A new extension: a module here, its name in ``HANDLERS``,
its test, and its place in the output schema.
"""
from __future__ import annotations

from analyzer.protocols.extension import decode_ext_handshake
from analyzer.sessions.extensions.base import Extension
from analyzer.sessions.extensions.ut_metadata import UtMetadata
from analyzer.sessions.extensions.ut_pex import UtPex

HANDLERS: tuple[type[Extension], ...] = (UtMetadata, UtPex)

MAX_MESSAGES_PER_CONNECTION = 1 << 16   # extension messages routed per connection; the rest counted


class ConnectionExtensions:
    """The BEP 10 state of one connection: each direction's first extended handshake
    (decoded) and the extension names each direction's messages are sent under."""

    __slots__ = ("handshakes", "names", "messages", "dropped")

    def __init__(self):
        self.handshakes: list = [None, None]       # decoded first handshake per direction
        self.names: list = [{}, {}]                # direction -> {id: name} for messages it RECEIVES
        self.messages = 0
        self.dropped = 0


class ExtensionRouter:
    """Routes queued BEP 10 messages to the handlers (one router per engine)."""

    def __init__(self, handlers: list[Extension]):
        self.handlers = {h.name: h for h in handlers}
        self.unnamed = 0           # messages under an id the receiver never announced
        self.dropped = 0           # messages beyond MAX_MESSAGES_PER_CONNECTION
        self.malformed_handshakes = 0   # extended handshakes that are not a bencoded dictionary

    def route(self, conn, d: int, queue: list, where: tuple) -> None:
        ext = conn.extensions
        if ext is None:
            ext = conn.extensions = ConnectionExtensions()
        for ext_id, payload in queue:
            if ext_id == 0:
                self._handshake(conn, ext, d, payload, where)
                continue
            if ext.messages >= MAX_MESSAGES_PER_CONNECTION:
                ext.dropped += 1
                self.dropped += 1
                continue
            ext.messages += 1
            name = ext.names[1 - d].get(ext_id)
            if name is None:
                self.unnamed += 1
                continue
            handler = self.handlers.get(name)
            if handler is not None:
                handler.on_message(conn, d, payload, where)
        queue.clear()

    def _handshake(self, conn, ext: ConnectionExtensions, d: int, payload: bytes, where: tuple) -> None:
        decoded = decode_ext_handshake(payload)
        if "error" in decoded:
            self.malformed_handshakes += 1
        if ext.handshakes[d] is None:
            ext.handshakes[d] = decoded
        # a later handshake may enable, move or disable (id 0) extensions (BEP 10)
        names = ext.names[d]
        for name, ext_id in decoded.get("m", {}).items():
            for old in [k for k, v in names.items() if v == name]:
                del names[old]
            if ext_id:
                names[ext_id] = name
        for handler in self.handlers.values():
            handler.on_handshake(conn, d, decoded, where)

    def results(self) -> dict:
        return {name: h.result() for name, h in self.handlers.items()}


def handlers(verifier=None) -> list[Extension]:
    """A fresh set of the registered handlers (``verifier``: the piece verifier that
    metadata rebuilt while reading is given to, if any)."""
    return [cls(verifier) for cls in HANDLERS]


def merge_results(parts: list[dict]) -> dict:
    """Merge the per-partition ``ExtensionRouter.results()``, handler by handler."""
    return {cls.name: cls.merge([p[cls.name] for p in parts if cls.name in p]) for cls in HANDLERS}
