"""bt-analyzer: forensic analysis of BitTorrent traffic in packet captures."""

__version__ = "0.1.0"
