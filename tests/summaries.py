"""The analyzer's outputs from an analysis result, as the tests read them: the findings
from any subject's side, serialised by the same writers the command uses."""
from __future__ import annotations

from analyzer.findings import build_findings
from analyzer.output import tables
from analyzer.output.summary import summary_json


def summarize(result, subject=None, bin_seconds: int = 1) -> dict:
    """summary.json of ``result`` (from ``subject``'s side; default: the analysis's subject)."""
    return summary_json(build_findings(result, subject, bin_seconds))


def torrents_of(result, subject=None) -> list[dict]:
    """summary.json ``torrents`` from ``subject``'s side."""
    return summarize(result, subject)["torrents"]


def connections_csv(result, subject=None) -> str:
    return tables.connections_csv(build_findings(result, subject))


def tracker_csv(result, subject=None) -> str:
    return tables.tracker_csv(build_findings(result, subject))


def torrents_csv(result, subject=None) -> str:
    return tables.torrents_csv(build_findings(result, subject))


def torrent_transports_csv(result, subject=None) -> str:
    return tables.torrent_transports_csv(build_findings(result, subject))


def torrent_hosts_csv(result, subject=None) -> str:
    return tables.torrent_hosts_csv(build_findings(result, subject))
