"""The evidence table's rows: intake and end hashes, case items matched by resolved path."""
from __future__ import annotations

import hashlib

from analyzer.case import parse_case
from analyzer.report.exhibits import Rehash, evidence_rows, file_refs


def folder_files(tmp_path):
    files = {}
    for name, data in (("same.pcap", b"a" * 5000), ("changed.pcap", b"b" * 5000), ("gone.pcap", b"c" * 10),
                       ("rot/part-1.pcap", b"d"), ("rot/part-2.pcap", b"e")):
        p = tmp_path / name
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(data)
        files[name] = (p, hashlib.sha256(data).hexdigest())
    return files


def test_evidence_rows(tmp_path):
    files = folder_files(tmp_path)
    manifest = {"inputs": [{"path": name, "resolved_path": str(p.resolve()), "sha256": sha, "size_bytes": 1}
                           for name, (p, sha) in files.items()]}
    summary = {"inputs": [{"path": name, "sha256": sha, "frames": 3, "first_ts": "2026-01-01T00:00:00.000000000Z",
                           "last_ts": "2026-01-01T00:00:01.000000000Z", "link_types": ["ETHERNET"], "errors": []}
                          for name, (_, sha) in files.items()]}
    files["changed.pcap"][0].write_bytes(b"x")
    files["gone.pcap"][0].unlink()
    case = parse_case({"evidence": [{"id": "E1", "path": "same.pcap", "description": "first"},
                                    {"id": "E2", "path": "rot"}, {"id": "E9", "path": "never.pcap"}]}, tmp_path)
    rehash = Rehash(manifest)
    try:
        rows, unmatched = evidence_rows(summary, manifest, case, rehash)
    finally:
        rehash.close()
    by = {r["path"]: r for r in rows}
    assert [r["ref"] for r in rows] == ["E1", "F2", "F3", "E2/1", "E2/2"]
    assert by["same.pcap"]["end_status"] == "same" and by["same.pcap"]["sha256_end"] == files["same.pcap"][1]
    assert by["same.pcap"]["description"] == "first" and by["same.pcap"]["link_types"] == "ETHERNET"
    assert by["changed.pcap"]["end_status"] == "different"
    assert by["changed.pcap"]["sha256_end"] == hashlib.sha256(b"x").hexdigest()
    assert by["gone.pcap"]["end_status"] == "missing" and by["gone.pcap"]["sha256_end"] is None
    assert by["rot/part-2.pcap"]["evidence_id"] == "E2"
    assert [u["evidence_id"] for u in unmatched] == ["E9"]
    assert file_refs(rows)["changed.pcap"] == "F2"


def test_no_rehash_and_no_manifest(tmp_path):
    summary = {"inputs": [{"path": "a.pcap", "sha256": "00" * 32, "frames": 1}]}
    rehash = Rehash({}, enabled=False)
    rows, unmatched = evidence_rows(summary, {}, None, rehash)
    assert rows[0]["end_status"] == "skipped" and rows[0]["sha256_intake"] == "00" * 32 and unmatched == []
    rows, _ = evidence_rows(summary, {}, None, Rehash({}))
    assert rows[0]["end_status"] == "missing"          # no recorded location to re-hash
