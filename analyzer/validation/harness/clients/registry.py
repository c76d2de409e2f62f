"""The client drivers by name."""
from __future__ import annotations

from .aria2 import Aria2
from .deluge import Deluge
from .qbittorrent import QBittorrent
from .rtorrent import RTorrent
from .transmission import Transmission

CLIENTS = {cls.name: cls for cls in (Transmission, QBittorrent, Deluge, Aria2, RTorrent)}

# {client: {kind: glob under its state directory}}: what a clean stop leaves there
STATE_FILES = {name: dict(cls.state_files) for name, cls in CLIENTS.items()}
