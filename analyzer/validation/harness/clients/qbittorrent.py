"""qBittorrent (``qbittorrent-nox``, Debian 12: 4.5.2 on libtorrent 2.0.8).

Config: ``--profile=<state>`` puts everything under
``<state>/qBittorrent/``; the driver writes ``config/qBittorrent.conf``
before start: legal notice accepted, Web UI on the control address with
the control address as the only entry of the authentication subnet whitelist
(the driver's requests need no login, so the Web API is plain HTTP without a
cookie; ``LocalHostAuth=false`` alone would only exempt 127.0.0.1 itself), DHT/LSD/PeX, UPnP/NAT-PMP, peer country
lookups (which would fetch a GeoIP database) off, no queueing or ratio
limits, ``Session\\InterfaceAddress`` = the client's address (qBittorrent
turns it into libtorrent's listen_interfaces and outgoing_interfaces),
``Encryption`` 2 = disabled (1 forced, 0 enabled), ``BTProtocol`` TCP/UTP/Both
and a 500 ms ``RefreshInterval`` (how often it pulls torrent status from
libtorrent).  ``/api/v2/torrents/addPeers`` makes it dial a peer.

Counters (Web API; src/base/bittorrent/torrentimpl.cpp, sessionimpl.cpp,
webui/api/serialize/serialize_torrent.cpp of 4.5.2):

* ``/api/v2/torrents/info``: ``uploaded``/``downloaded`` = libtorrent's
  ``all_time_upload``/``all_time_download`` (payload bytes, i.e. block bytes
  of piece messages, over all sessions incl. the resume data; libtorrent adds
  the last second's payload on each one-second torrent tick, so they trail
  the session counters by up to a second); ``uploaded_session``/
  ``downloaded_session`` = ``total_payload_upload``/``total_payload_download``
  (this session; redundant and failed bytes included, as in libtorrent);
* ``/api/v2/torrents/properties``: ``total_wasted`` = libtorrent's
  ``total_failed_bytes + total_redundant_bytes``;
* ``/api/v2/transfer/info``: ``dl_info_data``/``up_info_data`` = the
  session's ``net.recv_payload_bytes``/``net.sent_payload_bytes``.

State (at the clean stop, ``/api/v2/app/shutdown``): ``qBittorrent/config/``
(qBittorrent.conf, categories.json, ...), ``qBittorrent/data/BT_backup/``
(``<info hash>.fastresume``, libtorrent's bencoded resume data with
``total_uploaded``/``total_downloaded`` = the all-time counters, and
``<info hash>.torrent``), ``qBittorrent/data/logs/qbittorrent.log``.
"""
from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlencode

from .base import ClientDaemon, TorrentState, torrent_info_hash
from .rpc import HTTPError, http_request, multipart

DONE_STATES = {"uploading", "stalledUP", "queuedUP", "forcedUP", "pausedUP", "checkingUP"}
CHECKING_STATES = {"checkingDL", "checkingUP", "checkingResumeData", "allocating", "moving",
                   "metaDL"}


class QBittorrent(ClientDaemon):
    name = "qbittorrent"
    program = "qbittorrent-nox"
    rpc_port = 8080
    utp = True
    ipv6 = True
    can_dial = True
    state_files = {"resume": "qBittorrent/data/BT_backup/*.fastresume",
                   "torrents": "qBittorrent/data/BT_backup/*.torrent",
                   "settings": "qBittorrent/config/qBittorrent.conf", "log": "qBittorrent/data/logs/qbittorrent.log"}
    counter_settle_s = 1.2     # RefreshInterval 0.5 s + libtorrent's one-second tick
    # qBittorrent keeps a freshly checked torrent paused inside libtorrent and resumes it
    # (auto-managed) only on its next status refresh, while the Web API already shows it
    # active: a peer dialling in that window is dropped (close reason "torrent removed")
    ready_delay_s = 1.0

    @property
    def profile(self) -> Path:
        return self.cfg.state_dir / "qBittorrent"

    def write_config(self) -> None:
        c = self.cfg
        proto = {"tcp": "TCP", "utp": "UTP", "both": "Both"}[c.transports]
        session = {
            "Port": c.port, "InterfaceAddress": c.ip, "Interface": "", "InterfaceName": "",
            "DHTEnabled": "false", "LSDEnabled": "false", "PeXEnabled": "false",
            "Encryption": 0 if c.encryption else 2, "BTProtocol": proto,
            "AnonymousModeEnabled": "false", "QueueingSystemEnabled": "false",
            "GlobalMaxRatio": -1, "AddTorrentPaused": "false", "RefreshInterval": 500,
            "DefaultSavePath": str(c.download_dir), "TempPathEnabled": "false",
            "AddTrackersEnabled": "false", "IgnoreLimitsOnLAN": "true",
            **c.extra.get("session", {}),
        }
        prefs = {
            "WebUI\\Enabled": "true", "WebUI\\Address": c.control_ip, "WebUI\\Port": self.rpc_port,
            "WebUI\\LocalHostAuth": "false", "WebUI\\HostHeaderValidation": "false",
            "WebUI\\AuthSubnetWhitelistEnabled": "true", "WebUI\\AuthSubnetWhitelist": f"{c.control_ip}/32",
            "WebUI\\CSRFProtection": "false", "WebUI\\UseUPnP": "false",
            "Connection\\ResolvePeerCountries": "false", "Connection\\ResolvePeerHostNames": "false",
            "General\\Locale": "en",
            **c.extra.get("preferences", {}),
        }
        lines = ["[LegalNotice]", "Accepted=true", "", "[Network]", "PortForwardingEnabled=false", "",
                 "[BitTorrent]"]
        lines += [f"Session\\{k}={v}" for k, v in session.items()]
        lines += ["", "[Preferences]"] + [f"{k}={v}" for k, v in prefs.items()] + [""]
        conf = self.profile / "config" / "qBittorrent.conf"
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text("\n".join(lines))

    def command(self) -> list[str]:
        return [self.program, f"--profile={self.cfg.state_dir}", f"--webui-port={self.rpc_port}"]

    def log_files(self) -> list[Path]:
        return [self.profile / "data" / "logs" / "qbittorrent.log"]

    def api(self, path: str, form: dict | None = None, files: dict | None = None, query: dict | None = None):
        url = f"/api/v2/{path}" + (f"?{urlencode(query)}" if query else "")
        if files:
            body, ctype = multipart({k: str(v) for k, v in (form or {}).items()}, files)
        elif form is not None:
            body, ctype = urlencode(form).encode(), "application/x-www-form-urlencoded"
        else:
            body, ctype = b"", ""
        status, headers, data = http_request(self.ns, self.rpc_address, self.rpc_port,
                                             "POST" if form is not None or files else "GET", url, body,
                                             {"Content-Type": ctype} if ctype else {})
        if status != 200:
            raise HTTPError(status, data, headers)
        if headers.get("content-type", "").startswith("application/json"):
            return json.loads(data)
        return data.decode("utf-8", "replace")

    def ping(self) -> str:
        return f"qBittorrent {self.api('app/version').lstrip('v')}"

    def add_torrent(self, torrent_file: Path, content_dir: Path) -> str:
        info_hash = torrent_info_hash(torrent_file)
        r = self.api("torrents/add", form={"savepath": str(content_dir), "paused": "false",
                                           "skip_checking": "false", "autoTMM": "false",
                                           "contentLayout": "Original"},
                     files={"torrents": (torrent_file.name, torrent_file.read_bytes())})
        if r.strip() != "Ok.":
            self.fail(f"torrents/add answered {r!r}")
        self.wait_for(lambda: bool(self.api("torrents/info", query={"hashes": info_hash})), 15,
                      f"showing torrent {info_hash}")
        return info_hash

    def _info(self, key: str) -> dict:
        r = self.api("torrents/info", query={"hashes": key})
        if len(r) != 1:
            self.fail(f"torrent {key} unknown to the client: {r}")
        if r[0]["state"] in ("error", "missingFiles"):
            self.fail(f"torrent {key} in state {r[0]['state']}")
        return r[0]

    def torrent_state(self, key: str) -> TorrentState:
        t = self._info(key)
        return TorrentState(checking=t["state"] in CHECKING_STATES,
                            complete=t["state"] in DONE_STATES - {"checkingUP"} and t["amount_left"] == 0,
                            raw=t)

    def counters(self, key: str) -> dict:
        t = self._info(key)
        p = self.api("torrents/properties", query={"hash": key})
        return {"uploaded": t["uploaded"], "downloaded": t["downloaded"],
                "uploaded_session": t["uploaded_session"], "downloaded_session": t["downloaded_session"],
                "total_wasted": p["total_wasted"], "completed": t["completed"], "size": t["size"]}

    def session_counters(self) -> dict:
        return self.api("transfer/info")

    def add_peer(self, key: str, ip: str, port: int) -> None:
        peer = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
        self.api("torrents/addPeers", form={"hashes": key, "peers": peer})

    def shutdown(self) -> None:
        self.api("app/shutdown", form={})
