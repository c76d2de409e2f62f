"""One large input mapped by byte ranges, in parallel, as if it were mapped in one pass.

Theory of operation
-------------------
A case that is one huge capture (or a few, next to many small ones) would
leave every worker but one idle during the map stage.  An uncompressed
classic pcap file larger than its fair share of the case (the case's bytes
over twice the workers, at least ``RANGE_MIN``), in a run that does not hash
its inputs (``plan_ranges``) and whose files, mapped whole, would leave the
busiest worker more than ``RANGE_MIN`` over an even share (``idle_if_whole``),
is cut into byte ranges of about that share, each mapped by a task of its own
(``map_range_task``):
the reader takes the records that *begin* in the range, the first being the
first chain of ``RANGE_CHAIN`` plausible record headers at or after its
start (``capture.reader``), and says where the record after its last one
begins (its *exit*).

The ranges partition the file's records exactly as one pass does when each
range's first record is where the range before it exited (the *seam*): the
first range begins at the file's first record, and by induction every range
then follows the file's own chain of record lengths.  A seam that does not
match (a plausible chain inside a frame's bytes, or damage), damage in any
range but the last, odd timestamps in any but the last, a range that fails,
all send the file back to one map task over the whole file (``assemble``
returns None): slower, never different.  The last range may end the file
as one pass would (a truncated last record, odd timestamps), since its
reader decides that end exactly as one pass does.

What the ranges produce is merged into one ``MapResult`` for the file: its
report (frames summed, first and last times, the last range's errors), the
frame numbers of each range rebased by the frames before it (``frame_base``,
added when the flows stage reads), and the file's SHA-256 from a task that
hashes it whole (``hash_task``: a second read of the file, in parallel with
the ranges).  The flows stage reads the ranges in order as it would read the
file.  The merged result is kept in the work folder under the file's key, as
a whole-file map is: ``--resume`` reuses a ranged file whole or maps it again.
"""
from __future__ import annotations

import heapq
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

from analyzer.capture.reader import PCAP_MAGICS, FileReport, RangeError
from analyzer.digest import sha256_file
from analyzer.pipeline.stages import MapResult, map_file
from analyzer.pipeline.workdir import install

RANGE_MIN = 256 << 20       # no range smaller than this (and no file this small is cut)
PCAP_HEADER = 24


def range_min() -> int:
    """RANGE_MIN, or ``BT_ANALYZER_RANGE_BYTES`` from the environment (a test hook: ranges of
    that size for every classic pcap file larger than it, whatever the workers)."""
    forced = os.environ.get("BT_ANALYZER_RANGE_BYTES", "")
    return int(forced) if forced.isdigit() and int(forced) > 0 else 0


def plan_ranges(paths: list[Path], workers: int, hash_inputs: bool = False) -> dict[int, list[tuple[int, int]]]:
    """Byte ranges per input index, for the inputs worth cutting (see the module's doc).  None
    when the inputs are hashed: a file's SHA-256 is one core's work, which takes as long as
    mapping it in one pass does (the hash runs beside the map), so ranges would only add a second
    read of the file (measured: 2 workers on the bench's case set went from 0.59 to 0.67-0.76 s/GB
    with its files cut).  ``BT_ANALYZER_RANGE_BYTES`` cuts them anyway (tests)."""
    forced = range_min()
    if hash_inputs and not forced:
        return {}
    sizes = []
    for p in paths:
        try:
            sizes.append(p.stat().st_size)
        except OSError:
            sizes.append(0)
    if forced:
        share = forced
    else:
        if workers < 2 or idle_if_whole(sizes, workers) <= RANGE_MIN:
            return {}
        share = max(RANGE_MIN, sum(sizes) // (2 * workers))
    out = {}
    for i, (p, size) in enumerate(zip(paths, sizes)):
        if size <= share or not _classic_pcap(p):
            continue
        count = -(-(size - PCAP_HEADER) // share)
        body = size - PCAP_HEADER
        bounds = [PCAP_HEADER + body * k // count for k in range(count + 1)]
        out[i] = list(zip(bounds, bounds[1:]))
    return out


def idle_if_whole(sizes: list[int], workers: int) -> int:
    """How many bytes more than an even share the busiest worker would map if every input were one
    task (estimated by giving the largest files first, each to the worker with least to do).
    Cutting pays only when that is more than a range's worth: a file mapped by ranges costs more
    than one task (its seams, its parts merged).  On the bench's case set (2 workers), four files
    of 0.45-0.53 GB took 1.06 s mapped whole against 1.12 s with the largest one cut in two,
    though mapped whole they left one worker 18 MB more than the other."""
    loads = [0] * workers
    for size in sorted(sizes, reverse=True):
        heapq.heapreplace(loads, loads[0] + size)
    return max(loads) - sum(sizes) // workers


def _classic_pcap(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) in PCAP_MAGICS
    except OSError:
        return False


def map_range_task(path: Path, file_idx: int, k: int, byte_range: tuple, shards: int, root: Path,
                   copy: bool = False) -> MapResult:
    """Map the records that begin in ``byte_range`` of ``path`` into a staging folder of the work
    folder (made final by ``finish``); a range that cannot be read alone, or any failure, is
    returned as ``range_error`` (the file is then mapped in one pass)."""
    from analyzer.pipeline.stages import fault_point
    staging = root / "map" / f".r{file_idx}-{k}-{os.getpid()}-{time.monotonic_ns()}"
    try:
        fault_point(path, "map")
        result = map_file(path, file_idx, shards, staging, False, copy, tuple(byte_range))
        if result.range_exit is None:         # the reader could not go on (unreadable, damage at the end)
            result.range_error = "; ".join(result.report.errors) or "the range ended early"
        return result
    except Exception as e:      # RangeError, or a failure one pass will report properly
        shutil.rmtree(staging, ignore_errors=True)
        why = str(e) if isinstance(e, RangeError) else f"{type(e).__name__}: {e}"
        return MapResult(file_idx, FileReport(str(path)), byte_range=tuple(byte_range), range_error=why,
                         path=str(path))


def hash_task(path: Path) -> str | None:
    """The SHA-256 of an input mapped by byte ranges (None: it could not be read)."""
    return sha256_file(path)


def assemble(path: Path, file_idx: int, parts: list[MapResult], sha256: str | None,
             hash_input: bool) -> tuple[MapResult | None, str]:
    """The file's MapResult from its ranges (in order), or (None, why) when one pass must do it."""
    for p in parts:
        if p.range_error:
            return None, f"range {p.byte_range}: {p.range_error}"
    if hash_input and sha256 is None:
        return None, "the file could not be hashed"
    if parts[0].range_first != PCAP_HEADER:
        return None, f"the first range begins at {parts[0].range_first}"
    for a, b in zip(parts, parts[1:]):
        if b.range_first != a.range_exit:
            return None, f"range {b.byte_range} begins at {b.range_first}, the one before ends at {a.range_exit}"
    for p in parts[:-1]:
        r = p.report
        if r.errors or r.damaged_bytes or r.truncated_bytes or r.timestamp_anomalies:
            return None, f"range {p.byte_range}: {r.errors[0] if r.errors else 'odd records'}"
    last = parts[-1].report
    if last.damaged_bytes:
        return None, f"range {parts[-1].byte_range}: damage"
    reports = [p.report for p in parts]
    firsts = [r.first_ts_ns for r in reports if r.first_ts_ns is not None]
    lasts = [r.last_ts_ns for r in reports if r.last_ts_ns is not None]
    report = replace(last, frames=sum(r.frames for r in reports), link_types=set().union(*(r.link_types for r in reports)),
                     first_ts_ns=min(firsts) if firsts else None, last_ts_ns=max(lasts) if lasts else None,
                     sha256=sha256 if hash_input else None, errors=list(last.errors),
                     timestamp_anomalies=dict(last.timestamp_anomalies), skipped_blocks={})
    base = 0
    ranges = []
    for p in parts:
        ranges.append(replace(p, frame_base=base))
        base += p.report.frames
    return MapResult(file_idx, report, [], sum(p.spill_bytes for p in parts), sha256=sha256 if hash_input else None,
                     kind=parts[0].kind, path=str(path), ranges=ranges), ""


def finish(result: MapResult, final: Path) -> MapResult:
    """Move the ranges' staging folders into the file's folder ``final`` (r0000, r0001, ...)."""
    shutil.rmtree(final, ignore_errors=True)
    return replace(result, ranges=[replace(p, spills=install(p.spills[0].parent, final / f"r{k:04d}", p.spills))
                                   if p.spills else p for k, p in enumerate(result.ranges)])


def discard(parts: list[MapResult | None]) -> None:
    """Remove the staging folders of ranges not used (the file mapped in one pass instead)."""
    for p in parts:
        if p is not None and p.spills:
            shutil.rmtree(p.spills[0].parent, ignore_errors=True)
