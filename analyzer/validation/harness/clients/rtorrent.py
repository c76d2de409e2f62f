"""rTorrent (``rtorrent``, Debian 12: 0.9.8 on libtorrent 0.13.8 "rakshasa").

Config: ``rtorrent -n -o import=<state>/rtorrent.rc`` (no ~/.rtorrent.rc);
the rc file puts the peer wire on ``network.bind_address`` = the client's
address with one fixed port, turns the curses UI off
(``system.daemon.set``), DHT, PEX and UDP trackers off, encryption
``none`` (plaintext only) unless asked, and opens XML-RPC over SCGI on a
Unix socket in the state directory (``network.scgi.open_local``; no TCP,
so nothing of it reaches the capture).  rTorrent speaks no uTP; the libtorrent
side dials it (``d.add_peer`` exists but is not used).

Counters (XML-RPC ``d.*``; libtorrent src/protocol/peer_connection_base.cc
and rtorrent src/command_download.cc of those versions):

* ``d.up.total``: block bytes of piece messages written to the socket
  (``up_chunk``: only the block, the header goes through the message
  buffer) = payload uploaded, this session;
* ``d.down.total``: block bytes of piece messages read (``down_chunk`` and
  ``down_chunk_skip_process``), redundant ("skipped") ones included =
  payload received, this session; ``d.skip.total`` the redundant part;
* ``d.bytes_done`` / ``d.completed_bytes``: data the client has, not wire
  counters.

State (at the clean stop, ``system.shutdown.normal``): ``session/`` with
``<INFO HASH>.torrent``, ``<INFO HASH>.torrent.rtorrent`` (bencoded
rtorrent state: ``total_uploaded``, ``total_downloaded``, ...),
``<INFO HASH>.torrent.libtorrent_resume`` (libtorrent resume data); and
``rtorrent.log``.
"""
from __future__ import annotations

from pathlib import Path

from .base import ClientDaemon, TorrentState, torrent_info_hash
from .rpc import scgi_proxy


class RTorrent(ClientDaemon):
    name = "rtorrent"
    program = "rtorrent"
    rpc_port = 0            # SCGI on a Unix socket
    utp = False
    ipv6 = False
    state_files = {"resume": "session/*.torrent.libtorrent_resume", "state": "session/*.torrent.rtorrent",
                   "torrents": "session/*.torrent"}

    @property
    def socket_path(self) -> Path:
        return self.cfg.state_dir / "rpc.socket"

    @property
    def rpc_address(self) -> str:
        return ""

    def write_config(self) -> None:
        c = self.cfg
        (c.state_dir / "session").mkdir(exist_ok=True)
        lines = [
            f'session.path.set = "{c.state_dir / "session"}"',
            "session.use_lock.set = no",
            f'directory.default.set = "{c.download_dir}"',
            f"network.bind_address.set = {c.ip}",
            f"network.local_address.set = {c.ip}",
            f"network.port_range.set = {c.port}-{c.port}",
            "network.port_random.set = no",
            f'network.scgi.open_local = "{self.socket_path}"',
            "network.xmlrpc.size_limit.set = 16M",
            "dht.mode.set = off",          # initialised (trackerless torrents load) but never started
            "protocol.pex.set = no",
            "trackers.use_udp.set = no",
            "protocol.encryption.set = " + ("allow_incoming,try_outgoing,enable_retry"
                                             if c.encryption else "none"),
            "throttle.global_up.max_rate.set_kb = 0",
            "throttle.global_down.max_rate.set_kb = 0",
            "system.daemon.set = true",
            f'log.open_file = "rtorrent", "{c.state_dir / "rtorrent.log"}"',
            'log.add_output = "info", "rtorrent"',
            *c.extra.get("rc", []),
        ]
        (c.state_dir / "rtorrent.rc").write_text("\n".join(lines) + "\n")

    def command(self) -> list[str]:
        return [self.program, "-n", "-o", f"import={self.cfg.state_dir / 'rtorrent.rc'}"]

    def log_files(self) -> list[Path]:
        return [self.cfg.state_dir / "rtorrent.log"]

    def call(self, method: str, *args):
        return getattr(scgi_proxy(str(self.socket_path)), method)(*args)

    def ping(self) -> str:
        return f"rTorrent {self.call('system.client_version')} (libtorrent {self.call('system.library_version')})"

    def add_torrent(self, torrent_file: Path, content_dir: Path) -> str:
        key = torrent_info_hash(torrent_file).upper()
        self.call("load.raw_start_verbose", "", torrent_file.read_bytes(),
                  f'd.directory.set="{content_dir}"')
        self.wait_for(lambda: key in self.call("download_list"), 15, f"showing download {key}")
        return key

    def _get(self, key: str, *fields: str) -> dict:
        calls = [{"methodName": f, "params": [key]} for f in fields]
        out = {}
        for f, r in zip(fields, self.call("system.multicall", calls)):
            if not isinstance(r, list):
                self.fail(f"{f} on {key}: {r}")
            out[f] = r[0]
        return out

    def torrent_state(self, key: str) -> TorrentState:
        st = self._get(key, "d.hashing", "d.complete", "d.state", "d.message", "d.bytes_done", "d.size_bytes")
        if st["d.message"]:
            self.fail(f"download {key}: {st['d.message']}")
        return TorrentState(checking=st["d.hashing"] != 0,
                            complete=st["d.hashing"] == 0 and st["d.complete"] == 1, raw=st)

    def counters(self, key: str) -> dict:
        return self._get(key, "d.up.total", "d.down.total", "d.skip.total", "d.bytes_done",
                         "d.completed_bytes", "d.size_bytes")

    def session_counters(self) -> dict:
        return {f: self.call(f) for f in ("throttle.global_up.total", "throttle.global_down.total")}

    def shutdown(self) -> None:
        self.call("system.shutdown.normal")
