"""Transmission (``transmission-daemon``, Debian 12: 3.00) in a harness namespace.

Config: ``<state>/settings.json`` (``-g <state>``), written before start;
peer wire bound to ``bind-address-ipv4``/``-ipv6``, RPC (JSON over HTTP,
``/transmission/rpc`` with the ``X-Transmission-Session-Id`` handshake) on
``rpc-bind-address``.  DHT, LPD, PEX, port forwarding and the blocklist are
off; trackers are only what the .torrent lists.  ``encryption`` 0 is
Transmission's "prefer plaintext" (it has no "disabled": encrypted incoming
handshakes would still be accepted, outgoing ones are plaintext first).  uTP
(libutp) is on unless ``transports="tcp"``.  Transmission has no RPC to add a
peer: the libtorrent side dials it.

Counters (``torrent-get``; libtransmission/peer-mgr.c, peer-msgs.c, torrent.c
of 3.00, unchanged in 4.0.x):

* ``uploadedEver`` counts bytes of *whole piece messages* as they are written
  to the socket (the 4-byte length, id, index and begin = 13 bytes of header
  are counted with the block, peer-msgs.c marks the whole message as piece
  data): ``uploadedEver = payload + 13 x piece messages sent``;
* ``downloadedEver`` counts block bytes of incoming piece messages as they are
  read, then *subtracts* a block that was already complete (redundant) and a
  whole piece that failed its hash check (whose size goes to ``corruptEver``):
  ``downloadedEver = payload - redundant - failed``, never below 0;
* ``session-stats`` ``current-stats.downloadedBytes`` is the same raw count
  without those subtractions (= block payload received), ``uploadedBytes``
  the same as uploadedEver (header included); ``cumulative-stats`` adds
  earlier sessions (``stats.json``).

State (written at the clean stop, ``session-close``): ``settings.json``,
``stats.json`` (cumulative session stats), ``resume/<info hash>.resume``
(bencoded: uploaded = uploadedEver, downloaded = downloadedEver, corrupt =
corruptEver, progress, peers, ...; 2.x named it ``<name>.<hash16>.resume``),
``torrents/<info hash>.torrent``.
"""
from __future__ import annotations

import base64
import json
from pathlib import Path

from .base import ClientDaemon, TorrentState
from .rpc import json_post

FIELDS = ["id", "hashString", "name", "status", "percentDone", "leftUntilDone", "sizeWhenDone",
          "totalSize", "haveValid", "haveUnchecked", "uploadedEver", "downloadedEver", "corruptEver",
          "error", "errorString", "peersConnected"]
CHECKING = (1, 2)          # TR_STATUS_CHECK_WAIT, TR_STATUS_CHECK


class Transmission(ClientDaemon):
    name = "transmission"
    program = "transmission-daemon"
    rpc_port = 9091
    utp = True
    ipv6 = True
    state_files = {"resume": "resume/*.resume", "torrents": "torrents/*.torrent", "stats": "stats.json",
                   "settings": "settings.json"}

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self._session_id = ""

    def write_config(self) -> None:
        c = self.cfg
        settings = {
            "bind-address-ipv4": "127.0.0.1" if c.ipv6 else c.ip,
            "bind-address-ipv6": c.ip if c.ipv6 else "::1",
            "peer-port": c.port, "peer-port-random-on-start": False,
            "dht-enabled": False, "lpd-enabled": False, "pex-enabled": False,
            "port-forwarding-enabled": False, "blocklist-enabled": False,
            "utp-enabled": c.transports != "tcp",
            "encryption": 1 if c.encryption else 0,
            "rpc-enabled": True, "rpc-bind-address": c.control_ip, "rpc-port": self.rpc_port,
            "rpc-authentication-required": False, "rpc-whitelist-enabled": False,
            "rpc-host-whitelist-enabled": False,
            "download-dir": str(c.download_dir), "incomplete-dir-enabled": False,
            "watch-dir-enabled": False, "start-added-torrents": True,
            "ratio-limit-enabled": False, "idle-seeding-limit-enabled": False,
            "speed-limit-up-enabled": False, "speed-limit-down-enabled": False,
            "alt-speed-enabled": False, "download-queue-enabled": False,
            "seed-queue-enabled": False, "queue-stalled-enabled": False,
            "scrape-paused-torrents-enabled": False, "message-level": 2,
            **c.extra,
        }
        (c.state_dir / "settings.json").write_text(json.dumps(settings, indent=1))

    def command(self) -> list[str]:
        return [self.program, "-f", "-g", str(self.cfg.state_dir),
                "--logfile", str(self.cfg.state_dir / "transmission.log")]

    def log_files(self) -> list[Path]:
        return [self.cfg.state_dir / "transmission.log"]

    def rpc(self, method: str, **arguments) -> dict:
        for _ in range(3):
            status, headers, reply = json_post(
                self.ns, self.rpc_address, self.rpc_port, "/transmission/rpc",
                {"method": method, "arguments": arguments},
                {"X-Transmission-Session-Id": self._session_id})
            if status == 409:          # CSRF handshake: retry with the id it hands out
                self._session_id = headers.get("x-transmission-session-id", "")
                continue
            if status != 200 or not isinstance(reply, dict):
                raise RuntimeError(f"{method}: HTTP {status} {reply!r}")
            if reply.get("result") != "success":
                raise RuntimeError(f"{method}: {reply.get('result')}")
            return reply.get("arguments", {})
        raise RuntimeError(f"{method}: no session id accepted")

    def ping(self) -> str:
        return "Transmission " + self.rpc("session-get")["version"]

    def add_torrent(self, torrent_file: Path, content_dir: Path) -> str:
        r = self.rpc("torrent-add", metainfo=base64.b64encode(torrent_file.read_bytes()).decode(),
                     **{"download-dir": str(content_dir), "paused": False})
        added = r.get("torrent-added") or r.get("torrent-duplicate")
        if not added:
            self.fail(f"torrent-add returned {r}")
        return added["hashString"]

    def _get(self, key: str) -> dict:
        r = self.rpc("torrent-get", ids=[key], fields=FIELDS)
        if len(r.get("torrents", [])) != 1:
            self.fail(f"torrent {key} unknown to the client: {r}")
        t = r["torrents"][0]
        if t.get("error"):
            self.fail(f"torrent error {t['error']}: {t.get('errorString')}")
        return t

    def torrent_state(self, key: str) -> TorrentState:
        t = self._get(key)
        return TorrentState(checking=t["status"] in CHECKING,
                            complete=t["leftUntilDone"] == 0 and t["status"] not in CHECKING
                            and t["haveUnchecked"] == 0, raw=t)

    def counters(self, key: str) -> dict:
        t = self._get(key)
        return {k: t[k] for k in ("uploadedEver", "downloadedEver", "corruptEver", "haveValid",
                                  "sizeWhenDone")}

    def session_counters(self) -> dict:
        return self.rpc("session-stats")

    def shutdown(self) -> None:
        self.rpc("session-close")
