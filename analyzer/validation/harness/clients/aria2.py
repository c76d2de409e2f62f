"""aria2 (``aria2c``, Debian 12: 1.36.0) in a harness namespace.

Everything is on the command line (``--no-conf``): BitTorrent listens on
``--listen-port`` of ``--interface`` = the client's address (aria2 binds its
passive sockets to the ``--interface`` addresses), JSON-RPC on
``--rpc-listen-all=false``, i.e. the namespace's 127.0.0.1:6800 (aria2 cannot
put its RPC on another address).  DHT (v4 and v6), LPD and PEX are off, the
legacy (plaintext) handshake is accepted and no encryption required unless
asked, seeding never stops (``--seed-ratio=0.0`` without ``--seed-time``),
existing data is hash-checked (``--check-integrity``).  aria2 speaks no uTP
and has no RPC to make it dial a peer: the libtorrent side dials it.

Counters (``aria2.tellStatus``; src/BtPieceMessage.cc, RpcMethodImpl.cc of
1.36.0):

* ``uploadLength``: block bytes of piece messages written to the socket (the
  13-byte message header is subtracted before counting), over all sessions
  (the control file carries earlier sessions' upload) = payload uploaded;
* ``completedLength``: bytes of the torrent's data the client has, *not* a
  wire counter: redundant or failed block bytes received are not in it, and
  aria2 has no counter of received payload at all (``getGlobalStat`` has
  only speeds).  A clean download from one seeder (no redundant requests,
  no failed piece) has payload received = completedLength = totalLength.

``aria2.shutdown`` halts after a fixed 3 s grace period (aria2's
TimedHaltCommand), so a stop takes about 4 s.

State (at the clean stop, ``aria2.shutdown``): ``aria2.session``
(``--save-session`` with ``--force-save``: every download, seeding ones
included, with its options), the control file ``<download dir>/<name>.aria2``
(binary: bitfield, in-flight pieces and the all-time upload length) and the
torrent as aria2 was given it, ``<download dir>/<info hash>.torrent``
(``--rpc-save-upload-metadata``), both beside the data; ``aria2.log``.
"""
from __future__ import annotations

import base64
import itertools
import secrets
from pathlib import Path

from .base import ClientDaemon, TorrentState
from .rpc import json_post

STATUS_KEYS = ["gid", "status", "totalLength", "completedLength", "uploadLength", "verifiedLength",
               "verifyIntegrityPending", "seeder", "errorCode", "errorMessage", "connections", "infoHash"]


class Aria2(ClientDaemon):
    name = "aria2"
    program = "aria2c"
    rpc_port = 6800
    utp = False
    ipv6 = True
    state_files = {"session": "aria2.session", "log": "aria2.log"}

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self._ids = itertools.count(1)
        self.secret = secrets.token_hex(12)

    @property
    def rpc_address(self) -> str:
        return "127.0.0.1"

    def write_config(self) -> None:
        pass

    def command(self) -> list[str]:
        c = self.cfg
        opts = {
            "no-conf": "true", "daemon": "false", "dir": str(c.download_dir),
            "enable-rpc": "true", "rpc-listen-port": self.rpc_port, "rpc-listen-all": "false",
            "rpc-secret": self.secret,
            "listen-port": c.port, "interface": c.ip, "disable-ipv6": "false" if c.ipv6 else "true",
            "enable-dht": "false", "enable-dht6": "false", "bt-enable-lpd": "false",
            "enable-peer-exchange": "false",
            "bt-require-crypto": "true" if c.encryption else "false",
            "bt-min-crypto-level": "arc4" if c.encryption else "plain",
            "seed-ratio": "0.0", "check-integrity": "true", "bt-hash-check-seed": "true",
            "follow-torrent": "false", "bt-save-metadata": "false",
            "save-session": str(c.state_dir / "aria2.session"), "force-save": "true",
            "rpc-save-upload-metadata": "true",
            "log": str(c.state_dir / "aria2.log"), "log-level": "info", "console-log-level": "warn",
            "summary-interval": "0", "file-allocation": "none", "async-dns": "false",
            "max-overall-upload-limit": "0", "max-overall-download-limit": "0",
            "auto-file-renaming": "false", "bt-max-peers": "0",
            **c.extra,
        }
        return [self.program, *(f"--{k}={v}" for k, v in opts.items())]

    def log_files(self) -> list[Path]:
        return [self.cfg.state_dir / "aria2.log"]

    def call(self, method: str, *params):
        status, _, r = json_post(self.ns, self.rpc_address, self.rpc_port, "/jsonrpc",
                                 {"jsonrpc": "2.0", "id": str(next(self._ids)), "method": method,
                                  "params": [f"token:{self.secret}", *params]})
        if status != 200 or not isinstance(r, dict) or "error" in r:
            raise RuntimeError(f"{method}: HTTP {status} {r!r}")
        return r["result"]

    def ping(self) -> str:
        return f"aria2 {self.call('aria2.getVersion')['version']}"

    def add_torrent(self, torrent_file: Path, content_dir: Path) -> str:
        return self.call("aria2.addTorrent", base64.b64encode(torrent_file.read_bytes()).decode(), [],
                         {"dir": str(content_dir)})

    def _status(self, key: str) -> dict:
        st = self.call("aria2.tellStatus", key, STATUS_KEYS)
        if st["status"] in ("error", "removed"):
            self.fail(f"download {key} {st['status']}: {st.get('errorCode')} {st.get('errorMessage')}")
        return st

    def torrent_state(self, key: str) -> TorrentState:
        st = self._status(key)
        checking = "verifiedLength" in st or st.get("verifyIntegrityPending") == "true"
        return TorrentState(checking=checking,
                            complete=not checking and st["completedLength"] == st["totalLength"]
                            and st.get("seeder") == "true", raw=st)

    def counters(self, key: str) -> dict:
        st = self._status(key)
        return {k: int(st[k]) for k in ("uploadLength", "completedLength", "totalLength")}

    def session_counters(self) -> dict:
        return self.call("aria2.getGlobalStat")

    def shutdown(self) -> None:
        self.call("aria2.shutdown")
