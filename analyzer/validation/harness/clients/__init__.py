"""Other real BitTorrent clients in the real-traffic harness, beside libtorrent.

Theory of operation
-------------------
Each driver (one module per client) runs the client's own daemon, as Debian
packages it, inside a harness namespace (``netns.Namespace``) on its own
loopback address, with a private config/state directory, no DHT, LSD, PEX,
UPnP/NAT-PMP or trackers, and plaintext peer wire unless asked; it talks to
the daemon through the daemon's own RPC and reads the daemon's own counters:

=============  ======================  =====================================
client         package (Debian 12)     interface
=============  ======================  =====================================
transmission   transmission-daemon     RPC (JSON/HTTP) torrent-get,
               3.00                    session-stats
qbittorrent    qbittorrent-nox 4.5.2   Web API v2 torrents/info, properties,
               (libtorrent 2.0.8)      transfer/info
deluge         deluged 2.0.3           DelugeRPC (deluge-client) core.
               (libtorrent 2.0.8)      get_torrent_status, get_session_status
aria2          aria2 1.36.0            JSON-RPC aria2.tellStatus
rtorrent       rtorrent 0.9.8          XML-RPC over SCGI (Unix socket) d.*
               (libtorrent 0.13.8)
=============  ======================  =====================================

What each counter counts (each driver's module doc has the source
references; in short):

* payload = block bytes of piece messages, as the analyzer counts them;
* Transmission ``uploadedEver`` = payload + 13 header bytes per piece
  message sent; ``downloadedEver`` = payload - redundant - failed pieces;
* qBittorrent ``uploaded``/``downloaded`` and Deluge ``total_uploaded``/
  ``all_time_download`` = libtorrent's all-time payload (updated once a
  second), the ``*_session``/``total_payload_*`` ones this session's;
* aria2 ``uploadLength`` = payload uploaded; no received-payload counter
  (``completedLength`` is the verified data);
* rTorrent ``d.up.total``/``d.down.total`` = payload (redundant included).

What works to connect them: every client accepts incoming connections, so
the libtorrent side dials (``connect_to`` on the client's ``external``
entry); qBittorrent (``torrents/addPeers``) and Deluge
(``core.connect_peer``) can also be told to dial (``dial`` in the spec).
Transmission and aria2 have no RPC for it; rTorrent has ``d.add_peer``
(not wired up).  uTP: Transmission (libutp), qBittorrent and Deluge
(libtorrent); aria2 and rTorrent speak TCP only.  IPv6: every driver but
rTorrent's binds to an fd00:: address.

Use outside pytest (nothing here imports pytest or the analyzer)::

    from analyzer.validation.harness.clients import run_client_swarm, scenarios
    res = run_client_swarm(scenarios.exchange("transmission"), "/tmp/run1")
    res.capture_files, res.client_counters, res.ground_truth, res.state_dir

``res.state_dir`` keeps what the client wrote at its clean stop (resume
files, statistics; see ``STATE_FILES``), for tools that read client state.
Quirks met on the way, each handled in its driver: qBittorrent exempts only
127.0.0.1 from Web UI login (the driver whitelists the control address) and
turns peers away for a moment after adding a torrent; aria2 opens its peer
port only once it has a torrent and its RPC only on 127.0.0.1; rTorrent
refuses a torrent without trackers unless its DHT is initialised (mode
``off``: never started); libtorrent binds to the device too
(``127.0.0.4%lo``), rTorrent listens on a v4-mapped IPv6 socket; Deluge's
libtorrent sends an SSDP M-SEARCH before Deluge turns UPnP off (the runner
drops multicast on output).
"""
from .base import ClientConfig, ClientDaemon, TorrentState
from .registry import CLIENTS, STATE_FILES
from .runner import ClientSwarmResult, run_client_swarm

__all__ = ["CLIENTS", "STATE_FILES", "ClientConfig", "ClientDaemon", "ClientSwarmResult", "TorrentState",
           "run_client_swarm"]
