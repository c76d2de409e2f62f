"""Deluge (``deluged``, Debian 12: 2.0.3 on libtorrent 2.0.8) in a harness namespace.

Config: ``-c <state>``; the driver writes ``core.conf`` (Deluge's format: a
version JSON object followed by the settings object) and ``auth`` (user
``localclient``, admin level) before start.  Peer wire on
``listen_interface``/``outgoing_interface`` = the client's address with one
fixed port, the RPC daemon (DelugeRPC: zlib-compressed rencode over TLS,
spoken by the ``deluge-client`` package) on ``-u <control address>``.  DHT,
LSD, UPnP, NAT-PMP, uTorrent PEX and the new-release check are off, no
queueing limits, encryption policy "disabled" (2) for both directions with
plaintext level unless asked.  Deluge has no transport setting: libtorrent's
defaults accept TCP and uTP, the dialling peer chooses.  ``core.connect_peer``
makes it dial a peer.

Counters (``core.get_torrent_status``; deluge/core/torrent.py of 2.0.3 maps
them straight to libtorrent's torrent_status):

* ``total_uploaded`` = ``all_time_upload``, ``all_time_download``: payload
  bytes (block bytes of piece messages) over all sessions, added on each
  one-second torrent tick (they trail the session counters by up to 1 s);
* ``total_payload_upload``/``total_payload_download``: this session's
  payload, redundant and failed bytes included, as in libtorrent;
* ``total_done``: bytes of the wanted data the client has (verified).

``core.get_session_status`` gives libtorrent's session metrics
(``net.sent_payload_bytes``, ``net.recv_payload_bytes``,
``net.recv_redundant_bytes``, ``net.recv_failed_bytes``, ...).

Deluge 2.0.3 quirks: it writes its listen interface as ``"%s:%s" % (ip,
port)``, so an IPv6 address is configured with its brackets; with
libtorrent 2.0 its session-stats handler logs ``KeyError:
'disk.num_blocks_cache_hits'`` (a metric libtorrent 2.0 dropped) about once a
second, harmless for the counters read here.

State (at the clean stop, ``daemon.shutdown``): ``core.conf``,
``state/torrents.state`` (pickled torrent list), ``state/torrents.fastresume``
(one bencoded dict of libtorrent resume data per info hash, with
``total_uploaded``/``total_downloaded``), ``state/<info hash>.torrent``,
``session.state``, ``deluged.log``.
"""
from __future__ import annotations

import base64
import json
import secrets
import warnings
from pathlib import Path

from .base import ClientDaemon, TorrentState, torrent_info_hash

RPC_PORT = 58846
STATUS_KEYS = ["state", "progress", "is_finished", "total_wanted", "total_done", "total_uploaded",
               "all_time_download", "total_payload_upload", "total_payload_download", "message"]
SESSION_KEYS = ["net.sent_payload_bytes", "net.recv_payload_bytes", "net.sent_bytes", "net.recv_bytes",
                "net.recv_redundant_bytes", "net.recv_failed_bytes"]


class Deluge(ClientDaemon):
    name = "deluge"
    program = "deluged"
    rpc_port = RPC_PORT
    utp = True
    ipv6 = True
    can_dial = True
    state_files = {"resume": "state/torrents.fastresume", "torrents": "state/*.torrent",
                   "state": "state/torrents.state", "session": "session.state", "settings": "core.conf"}
    counter_settle_s = 1.2     # libtorrent's one-second tick for the all-time counters

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.password = secrets.token_hex(12)
        self._rpc = None

    def write_config(self) -> None:
        c = self.cfg
        plain = not c.encryption
        core = {
            # Deluge joins interface and port as "%s:%s": an IPv6 address needs its brackets here
            "listen_ports": [c.port, c.port], "random_port": False,
            "listen_interface": f"[{c.ip}]" if c.ipv6 else c.ip,
            "outgoing_interface": c.ip, "listen_use_sys_port": False,
            "daemon_port": RPC_PORT, "allow_remote": False,
            "dht": False, "lsd": False, "upnp": False, "natpmp": False, "utpex": False,
            "new_release_check": False, "send_info": False,
            "enc_in_policy": 2 if plain else 1, "enc_out_policy": 2 if plain else 1,
            "enc_level": 0 if plain else 2,
            "download_location": str(c.download_dir), "move_completed": False,
            "copy_torrent_file": False, "add_paused": False, "auto_managed": False,
            "max_active_seeding": -1, "max_active_downloading": -1, "max_active_limit": -1,
            "stop_seed_at_ratio": False, "pre_allocate_storage": False,
            "max_upload_speed": -1.0, "max_download_speed": -1.0,
            **c.extra,
        }
        with open(c.state_dir / "core.conf", "w") as f:
            json.dump({"file": 1, "format": 1}, f, indent=4)
            json.dump(core, f, indent=4)
        (c.state_dir / "auth").write_text(f"localclient:{self.password}:10\n")

    def command(self) -> list[str]:
        c = self.cfg
        return [self.program, "-d", "-c", str(c.state_dir), "-u", c.control_ip, "-p", str(RPC_PORT),
                "-L", "info", "-l", str(c.state_dir / "deluged.log")]

    def log_files(self) -> list[Path]:
        return [self.cfg.state_dir / "deluged.log"]

    def call(self, method: str, *args, **kwargs):
        if self._rpc is None:
            from deluge_client import DelugeRPCClient
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                with self.ns.entered():       # its socket is created (and stays) in the namespace
                    rpc = DelugeRPCClient(self.cfg.control_ip, RPC_PORT, "localclient", self.password,
                                          decode_utf8=True, automatic_reconnect=False, timeout=10)
                    rpc.connect()
            self._rpc = rpc
        try:
            return self._rpc.call(method, *args, **kwargs)
        except Exception:
            self._disconnect()
            raise

    def _disconnect(self) -> None:
        if self._rpc is not None:
            try:
                self._rpc.disconnect()
            except Exception:
                pass
            self._rpc = None

    def ping(self) -> str:
        return f"Deluge {self.call('daemon.info')}"

    def add_torrent(self, torrent_file: Path, content_dir: Path) -> str:
        tid = self.call("core.add_torrent_file", torrent_file.name,
                        base64.b64encode(torrent_file.read_bytes()).decode(),
                        {"download_location": str(content_dir), "add_paused": False, "auto_managed": False})
        want = torrent_info_hash(torrent_file)
        if tid != want:
            self.fail(f"add_torrent_file returned {tid!r}, expected {want}")
        return tid

    def _status(self, key: str) -> dict:
        st = self.call("core.get_torrent_status", key, STATUS_KEYS)
        if not st:
            self.fail(f"torrent {key} unknown to the client")
        if st.get("state") == "Error":
            self.fail(f"torrent {key} in state Error: {st.get('message')}")
        return st

    def torrent_state(self, key: str) -> TorrentState:
        st = self._status(key)
        return TorrentState(checking=st["state"] in ("Checking", "Allocating", "Moving"),
                            complete=st["state"] == "Seeding" and st["total_done"] == st["total_wanted"],
                            raw=st)

    def counters(self, key: str) -> dict:
        st = self._status(key)
        return {k: st[k] for k in ("total_uploaded", "all_time_download", "total_payload_upload",
                                   "total_payload_download", "total_done", "total_wanted")}

    def session_counters(self) -> dict:
        return self.call("core.get_session_status", SESSION_KEYS)

    def add_peer(self, key: str, ip: str, port: int) -> None:
        self.call("core.connect_peer", key, ip, port)

    def shutdown(self) -> None:
        from deluge_client.client import ConnectionLostException
        try:
            self.call("daemon.shutdown")
        except ConnectionLostException:
            pass        # it may close the connection before answering
        self._disconnect()

    def kill(self) -> None:
        self._disconnect()
        super().kill()
