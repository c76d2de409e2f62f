"""Client state files: the per-torrent records BitTorrent clients keep on disk.

``read_client_state(paths)`` finds, hashes and reads them (``reader``): one
module per format (``libtorrent_resume``: libtorrent, qBittorrent, Deluge;
``transmission``; ``rtorrent``; ``utorrent``), all into the shapes of
``model``.  Their reconciliation with the capture is a finding
(``analyzer.findings.client_state``); their serialisation an output
(``analyzer.output.client_state``).
"""
from __future__ import annotations

from analyzer.evidence.clientstate.model import ClientStateSet, StateFile, TorrentState
from analyzer.evidence.clientstate.reader import read_client_state

__all__ = ["read_client_state", "ClientStateSet", "StateFile", "TorrentState"]
