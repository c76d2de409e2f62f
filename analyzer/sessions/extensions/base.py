"""What every BEP 10 extension handler is (see the package docstring)."""
from __future__ import annotations

from analyzer.protocols.compact import address_text


class Extension:
    """Base of the handlers: one instance per analysis partition."""

    name = ""

    def __init__(self, verifier=None):
        self.verifier = verifier

    def on_handshake(self, conn, d: int, handshake: dict, where: tuple) -> None:
        """Direction ``d`` of ``conn`` sent its extended handshake (decoded)."""

    def on_message(self, conn, d: int, payload: bytes, where: tuple) -> None:
        """Direction ``d`` of ``conn`` sent a message of this extension."""

    def result(self):
        """The facts collected (a picklable value)."""
        return None

    @staticmethod
    def merge(results: list):
        """One result from the results of several partitions."""
        return results[0] if results else None


def endpoint(conn, d: int) -> tuple[str, int]:
    """(address, port) of the sender of direction ``d`` of an engine connection."""
    return (address_text(conn.addr0), conn.port0) if d == 0 else (address_text(conn.addr1), conn.port1)


def info_hashes(conn) -> list[str]:
    """The info hashes of the connection's handshakes, the initiator's first."""
    return [p.info_hash.hex() for p in (conn.parser0, conn.parser1) if p is not None and p.info_hash is not None]
