"""Real BitTorrent clients besides libtorrent in the real-traffic harness.

Placeholder: see runner.py.
"""
from .base import ClientConfig, ClientDaemon, TorrentState
from .registry import CLIENTS
from .runner import ClientSwarmResult, run_client_swarm

__all__ = ["CLIENTS", "ClientConfig", "ClientDaemon", "ClientSwarmResult", "TorrentState", "run_client_swarm"]
