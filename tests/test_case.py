"""Case files: every key optional, unknown keys and wrong types refused by name, times with a zone."""
from __future__ import annotations

import pytest

from analyzer.case import Case, CaseError, load_case

FULL = """
case_number = "2026-0113"
examiner = "A. Examiner"
organisation = "Forensic Unit"
examination_start = 2026-11-29T09:00:00+01:00
examination_end = 2026-11-30
subject_description = "Laptop seized at the subject's address"

[[evidence]]
id = "E1"
path = "captures/day1.pcap"
description = "tcpdump on the uplink"
acquired = 2026-11-28T17:50:00Z

[[evidence]]
id = "E2"
path = "captures/rotated"
"""


def write(tmp_path, text, name="case.toml"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_full_case(tmp_path):
    case = load_case(write(tmp_path, FULL))
    assert case.case_number == "2026-0113" and case.examiner == "A. Examiner"
    assert case.organisation == "Forensic Unit"
    assert case.examination_start == "2026-11-29T09:00:00+01:00" and case.examination_end == "2026-11-30"
    assert case.subject_description.startswith("Laptop")
    e1, e2 = case.evidence
    assert (e1.id, e1.path, e1.description, e1.acquired) == ("E1", "captures/day1.pcap", "tcpdump on the uplink",
                                                              "2026-11-28T17:50:00Z")
    # relative paths are taken from the case file's folder
    assert e1.resolved_path == str((tmp_path / "captures" / "day1.pcap").resolve())
    assert e2.description is None and e2.acquired is None
    assert case.source == str(tmp_path / "case.toml")


def test_as_json_round_trip_and_matching(tmp_path):
    case = load_case(write(tmp_path, FULL))
    j = case.as_json()
    assert set(j) == {"case_number", "examiner", "organisation", "examination_start", "examination_end",
                      "subject_description", "evidence"}
    assert j["evidence"][0] == {"id": "E1", "path": "captures/day1.pcap",
                                "resolved_path": str((tmp_path / "captures/day1.pcap").resolve()),
                                "description": "tcpdump on the uplink", "acquired": "2026-11-28T17:50:00Z"}
    back = Case.from_json(j)
    assert back.as_json() == j
    rotated = str((tmp_path / "captures" / "rotated" / "part-0001.pcap").resolve())
    assert back.evidence_for(rotated).id == "E2"                 # a file inside an evidence folder
    assert back.evidence_for(j["evidence"][0]["resolved_path"]).id == "E1"
    assert back.evidence_for(str(tmp_path / "elsewhere.pcap")) is None


def test_empty_case_file_is_allowed(tmp_path):
    case = load_case(write(tmp_path, ""))
    assert case.is_empty() and case.as_json()["evidence"] == []


@pytest.mark.parametrize("text, message", [
    ('examinor = "x"\n', "unknown key 'examinor'"),
    ('case_number = "1"\n[[evidence]]\nid = "E1"\npath = "a"\nsha256 = "00"\n', "evidence #1: unknown key 'sha256'"),
    ("case_number = 2026\n", "case_number: expected text in quotes, not int"),
    ('examiner = ["a", "b"]\n', "examiner: expected text"),
    ('examiner = ""\n', "examiner: is empty"),
    ("examination_start = 2026-11-29T09:00:00\n", "examination_start: 2026-11-29T09:00:00 has no time zone"),
    ("examination_start = 09:00:00\n", "without a date"),
    ('examination_start = "yesterday"\n', "'yesterday' is not a date"),
    ("examination_start = 2026-11-30\nexamination_end = 2026-11-29\n", "is after examination_end"),
    ('[[evidence]]\nid = "E1"\n', "evidence #1: 'path' is required"),
    ('[[evidence]]\npath = "a"\n', "evidence #1: 'id' is required"),
    ('[[evidence]]\nid = 1\npath = "a"\n', "evidence #1: id: expected text"),
    ('[[evidence]]\nid = "E1"\npath = "a"\nacquired = 2026-11-28T17:50:00\n', "acquired: 2026-11-28T17:50:00 has no"),
    ('[[evidence]]\nid = "E1"\npath = "a"\n[[evidence]]\nid = "E1"\npath = "b"\n', "same id"),
    ('[[evidence]]\nid = "E1"\npath = "a"\n[[evidence]]\nid = "E2"\npath = "./a"\n', "same path"),
    ('evidence = "a.pcap"\n', "evidence must be [[evidence]] tables"),
    ('case_number = "x\n', "not valid TOML"),
])
def test_refused_with_a_clear_message(tmp_path, text, message):
    with pytest.raises(CaseError) as e:
        load_case(write(tmp_path, text))
    assert message in str(e.value)
    assert str(tmp_path / "case.toml") in str(e.value)          # names the file


def test_unreadable_and_non_utf8(tmp_path):
    with pytest.raises(CaseError, match="cannot read the case file"):
        load_case(tmp_path / "missing.toml")
    p = tmp_path / "latin1.toml"
    p.write_bytes('examiner = "Jos\xe9"\n'.encode("latin-1"))
    with pytest.raises(CaseError, match="not UTF-8"):
        load_case(p)


def test_times_as_strings_and_utc(tmp_path):
    case = load_case(write(tmp_path, 'examination_start = "2026-11-29T08:00:00+00:00"\n'
                                     'examination_end = "2026-11-29"\n'))
    assert case.examination_start == "2026-11-29T08:00:00Z"      # +00:00 written as Z
    assert case.examination_end == "2026-11-29"                  # a day: the same day is not "before"
