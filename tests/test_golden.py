"""Golden outputs: every output file of `analyze` on fixed captures, byte for byte.

Refactors must not change a single output byte.  Each case runs the command
line in-process on committed or public captures (copied into the test's
folder under fixed names, so paths inside the outputs do not depend on where
the repository lives) and compares every file it wrote, except the manifest's
run facts, with ``tests/golden/<case>/``.

After an intended change of the outputs, regenerate the files with
``BT_GOLDEN_UPDATE=1 pytest tests/test_golden.py`` and review the diff.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
from pathlib import Path

import pytest
from click.testing import CliRunner

from analyzer.cli import main
from craft import public_captures_dir

REPO = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).with_name("golden")
SAMPLE = REPO / "captures" / "sample-swarm.pcap"
TORRENT = REPO / "captures" / "sample-swarm.torrent"
PUBLIC = public_captures_dir()
UPDATE = os.environ.get("BT_GOLDEN_UPDATE") == "1"
# manifest.json facts that belong to the run, not to the inputs and options
BIG = 256 << 10         # files larger than this are compared by SHA-256 (not committed whole)
RUN_FACTS = ("started_utc", "finished_utc", "platform", "libraries", "command_line", "run")


def split_pcap(src: Path, dst_dir: Path, cuts: list[int]) -> list[Path]:
    """A classic pcap cut into files at the given record numbers (a rotated set)."""
    b = src.read_bytes()
    header, off, records = b[:24], 24, []
    while off + 16 <= len(b):
        end = off + 16 + struct.unpack_from("<I", b, off + 8)[0]
        records.append(b[off:end])
        off = end
    out = []
    for k, (a, z) in enumerate(zip([0, *cuts], [*cuts, len(records)])):
        p = dst_dir / f"rotated.pcap{k}"
        p.write_bytes(header + b"".join(records[a:z]))
        out.append(p)
    return out


def _public(*names):
    return [PUBLIC / n for n in names]


# case -> (inputs (absolute), extra options)
CASES = {
    "sample-verified": ([SAMPLE], ["--local", "127.0.0.3", "--torrent", TORRENT, "--carve", "carve"]),
    "sample-inferred": ([SAMPLE], []),
    "sample-network": ([SAMPLE], ["--local", "127.0.0.0/30", "--bin", "5"]),
    "sample-rotated": ("rotated", ["--local", "127.0.0.4", "--torrent", TORRENT]),
    "public-all": ("public", []),
    "public-bittorrent": (_public("ndpi_bittorrent.pcap"), []),
    "public-utp": (_public("ndpi_bittorrent_utp.pcap", "ndpi_lru_ipv6_caches.pcapng"), []),
    "public-discovery": (_public("zeek_bittorrent_tracker.pcap", "ndpi_bt-http.pcapng", "ndpi_bt_search.pcap",
                                 "suricata-verify_bittorrent-dht_SYNTHETIC.pcap", "arkime_bt-udp.pcap"), []),
    "public-midstream": (_public("ppa1e_torrential-slowness.pcap", "ndpi_bittorrent_tcp_miss.pcapng"), []),
}

# exit status of the cases whose inferred subject is ambiguous (4); the others exit 0
AMBIGUOUS = {"sample-inferred", "public-all", "public-utp", "public-discovery", "public-midstream"}


def _inputs(case: str, workdir: Path) -> list[str]:
    spec = CASES[case][0]
    indir = workdir / "input"
    indir.mkdir()
    if spec == "rotated":
        files = split_pcap(SAMPLE, indir, [900, 2000, 2001])
    else:
        sources = sorted(p for p in PUBLIC.iterdir() if p.suffix in (".pcap", ".pcapng")) \
            if spec == "public" else spec
        files = []
        for src in sources:
            shutil.copyfile(src, indir / src.name)
            files.append(indir / src.name)
    return [str(p.relative_to(workdir)) for p in files]


def _args(case: str, workdir: Path) -> list[str]:
    args = []
    for a in CASES[case][1]:
        if isinstance(a, Path):          # a .torrent: copied in, named relatively
            shutil.copyfile(a, workdir / a.name)
            a = a.name
        args.append(str(a))
    return args


def run_case(case: str, workdir: Path, *extra: str) -> Path:
    """Run the case in ``workdir`` (the current directory during the run); the output folder."""
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        inputs = _inputs(case, workdir) if not (workdir / "input").exists() else \
            [str(p.relative_to(workdir)) for p in sorted((workdir / "input").iterdir())]
        r = CliRunner().invoke(main, ["analyze", *inputs, *_args(case, workdir), "--out", "out", "--quiet",
                                      *extra])
    finally:
        os.chdir(cwd)
    assert r.exit_code == (4 if case in AMBIGUOUS else 0), r.output
    return workdir / "out"


def output_files(out: Path) -> dict[str, bytes]:
    """Every file the run wrote (outputs and carved files), the manifest without its run facts."""
    files = {}
    for p in sorted(out.rglob("*")):
        if p.is_file():
            files[str(p.relative_to(out))] = p.read_bytes()
    carve = out.parent / "carve"
    for p in sorted(carve.rglob("*")) if carve.exists() else ():
        if p.is_file():
            files["../carve/" + str(p.relative_to(carve))] = p.read_bytes()
    for name, content in list(files.items()):
        if len(content) > BIG:            # carved payload: its hash stands for it
            del files[name]
            files[name + ".sha256"] = hashlib.sha256(content).hexdigest().encode() + b"\n"
    m = json.loads(files["manifest.json"])
    for k in RUN_FACTS:
        m.pop(k, None)
    for i in [*m.get("inputs", []), *m.get("torrent_files", []), m.get("case_file") or {}]:
        i.pop("resolved_path", None)         # the test's temporary folder
    files["manifest.json"] = (json.dumps(m, indent=2, ensure_ascii=False) + "\n").encode()
    return files


def _needs_public(case):
    spec = CASES[case][0]
    return spec == "public" or (isinstance(spec, list) and any(PUBLIC in p.parents for p in spec))


@pytest.mark.parametrize("case", sorted(CASES))
def test_outputs_equal_the_golden_files(case, tmp_path):
    if _needs_public(case) and not PUBLIC.is_dir():
        pytest.fail(f"public captures not found at {PUBLIC}")
    files = output_files(run_case(case, tmp_path))
    golden = GOLDEN / case
    if UPDATE:
        shutil.rmtree(golden, ignore_errors=True)
        for name, content in files.items():
            target = golden / name.replace("../", "__parent__/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
    expected = {str(p.relative_to(golden)).replace("__parent__/", "../"): p.read_bytes()
                for p in sorted(golden.rglob("*")) if p.is_file()}
    assert sorted(files) == sorted(expected)
    for name in expected:
        assert files[name] == expected[name], f"{case}: {name} differs from tests/golden/{case}/{name}"


@pytest.mark.parametrize("case", ["sample-network", "public-all"])
def test_shards_give_the_golden_files(case, tmp_path):
    """The same files whatever the number of shards of the staged pipeline."""
    files = output_files(run_case(case, tmp_path, "--shards", "3"))
    golden = GOLDEN / case
    for p in sorted(golden.rglob("*")):
        if p.is_file() and p.name != "manifest.json":
            assert files[str(p.relative_to(golden))] == p.read_bytes(), p.name


@pytest.mark.parametrize("case", ["sample-verified", "sample-rotated", "public-all"])
def test_mapped_reading_gives_the_golden_files(case, tmp_path, monkeypatch):
    """Large uncompressed files are scanned mapped into memory (and hashed from the same pages):
    the same files, hashes included, as reading them through buffers."""
    from analyzer.capture import reader
    monkeypatch.setattr(reader, "MAP_AT", 0)
    monkeypatch.setattr(reader, "DROP_BEHIND", 4096)
    files = output_files(run_case(case, tmp_path))
    golden = GOLDEN / case
    for p in sorted(golden.rglob("*")):
        if p.is_file():
            name = str(p.relative_to(golden)).replace("__parent__/", "../")
            assert files[name] == p.read_bytes(), name
