"""Command line: thin wrappers over the library (``analyzer.analysis``)."""
from __future__ import annotations

import contextlib
import datetime as _dt
import os
import sys
from pathlib import Path

import click

# numpy's BLAS is never used here: one thread spares every run the start of a pool
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from analyzer import __version__
from analyzer.units import format_bytes

# Exit status (the README's one "Exit status" table; when several apply, the lowest): 2 no input
# readable; 3 a --local spec matched no traffic; 4 the inferred subject is ambiguous (without
# --local); 5 some inputs could not be read or failed.
EXIT_UNREADABLE = 2
EXIT_SUBJECT_UNMATCHED = 3
EXIT_AMBIGUOUS_SUBJECT = 4
EXIT_INPUTS_FAILED = 5


def _internal_error(e: Exception, debug: bool) -> click.ClickException:
    """An internal error as one clear line (to raise); its traceback printed only on request
    (--debug or BT_ANALYZER_DEBUG)."""
    if debug or os.environ.get("BT_ANALYZER_DEBUG"):
        import traceback        # only when asked for: costs every run's start-up otherwise
        traceback.print_exc()
    return click.ClickException(f"internal error: {type(e).__name__}: {e}")


def _check_local(ctx, param, values):
    from analyzer.sessions.subject import parse_endpoint_spec
    for v in values:
        try:
            parse_endpoint_spec(v)
        except ValueError as e:
            raise click.BadParameter(str(e)) from None
    return values


class _Group(click.Group):
    def invoke(self, ctx):
        """Ctrl-C before a command's own handling (start-up, imports) ends with status 130 too."""
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("bt-analyzer: interrupted", err=True)
            ctx.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bt-analyzer")
def main():
    """Forensic analysis of BitTorrent traffic in packet captures."""


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--local", "local", multiple=True, callback=_check_local, metavar="SPEC",
              help="The subject host: an IP, a CIDR network or IP:port ([v6]:port). Repeatable. "
                   "Without it the subject is inferred and the inference stated.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), default=Path("out"),
              show_default=True, help="Output folder.")
@click.option("--torrent", "torrents", multiple=True, type=click.Path(path_type=Path, exists=True),
              metavar="FILE", help="A .torrent file, or a folder of them (repeatable): names, sizes and "
                                   "v1/v2 hashes for the report.")
@click.option("--carve", "carve", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Write the verified pieces and the torrents' files rebuilt from them into this folder "
                   "(missing ranges listed in <info_hash>/carve.json).")
@click.option("--case", "case_file", type=click.Path(path_type=Path, dir_okay=False), default=None, metavar="FILE",
              help="Case data (TOML, see README): recorded in summary.json and the manifest, shown in the report.")
@click.option("--client-state", "client_state", multiple=True, type=click.Path(path_type=Path, exists=True),
              metavar="PATH", help="The subject's BitTorrent client state files, or folders of them (repeatable): "
                                   "libtorrent/qBittorrent/Deluge resume data, Transmission, rtorrent, µTorrent; "
                                   "their lifetime counters are reconciled with the capture.")
@click.option("--include", default=None, metavar="GLOB",
              help="In folders, read only files whose name matches GLOB (e.g. '*.pcap*'); default: every file "
                   "that starts like a capture (also compressed). Files named directly are always read.")
@click.option("--bin", "bin_seconds", type=click.IntRange(1, 86400), default=1, show_default=True,
              help="Time bin of timeline.parquet, in seconds.")
@click.option("--report", "with_report", is_flag=True, help="Also write the report (see `bt-analyzer report`).")
@click.option("--validation", "validation_file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              metavar="FILE", callback=lambda c, p, v: _check_validation(v),
              help="With --report: a validation.json of bt-analyzer validate for the report's appendix.")
@click.option("--workers", default="auto", show_default=True, metavar="N|auto",
              help="Worker processes. More than 1 runs the staged pipeline on a local Dask cluster; auto: one "
                   "per core where that is expected to finish sooner than this process alone (several files, "
                   "3 or more cores, enough bytes to pay the cluster's start; README, Large cases).")
@click.option("--shards", type=click.IntRange(1, 4096), default=None,
              help="Shards of the flows stage (default: one per worker); more than 1 stages the run.")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Run the staged pipeline on an existing Dask cluster (tcp://HOST:PORT); its workers must "
                   "see the inputs and the output folder at the same paths.")
@click.option("--spill", type=click.Choice(["auto", "index", "copy"]), default="auto", show_default=True,
              help="What the map stage of a staged run writes for an uncompressed input: an index of where "
                   "its frames lie (the flows tasks read the inputs again; fewest bytes written), or a copy "
                   "of the frames (about the input's size; each flows task reads only its own). auto: a copy "
                   "with --scheduler (whose machines would each read every input again), else an index.")
@click.option("--workdir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Work folder of a staged run (default: OUT/.work): every finished task's output, so that "
                   "--resume can continue an interrupted run. Removed when the run ends well.")
@click.option("--resume", is_flag=True,
              help="Continue an interrupted staged run: reuse the finished tasks in the work folder.")
@click.option("--jobs", type=click.IntRange(1, 64), default=None, hidden=True,
              help="Older name of --workers.")
@click.option("--progress", "progress_mode", type=click.Choice(["auto", "bar", "jsonl", "none"]), default="auto",
              show_default=True,
              help="Progress while running: a bar on a terminal (auto), or JSON lines on stderr for batch systems.")
@click.option("--no-input-hash", "no_input_hash", is_flag=True,
              help="Do not compute the inputs' SHA-256 (a triage run: the manifest, summary and report say so).")
@click.option("--force", is_flag=True,
              help="Empty the output folder first when it holds files this run did not write (else refused).")
@click.option("--quiet", is_flag=True, help="Print nothing but errors: no progress, no summary.")
@click.option("--debug", is_flag=True, hidden=True, help="Show tracebacks of internal errors.")
def analyze(paths, local, out_dir, torrents, carve, case_file, client_state, include, bin_seconds, with_report,
            validation_file, workers, shards, scheduler, spill, workdir, resume, jobs, progress_mode, no_input_hash,
            force, quiet, debug):
    """Analyse capture files or folders (pcap, pcapng, gzip/bzip2/xz compressed).

    Rotated sets are merged in timestamp order.  Writes summary.json,
    torrents.csv, torrent_transports.csv, connections.csv, tracker.csv, dht.csv,
    pex.csv, pieces.csv (with --torrent or rebuilt metadata), timeline.parquet,
    peers.parquet and manifest.json into --out; with --report also --out/report/.
    """
    # first, before the imports below: the Parquet process imports pyarrow meanwhile (parquet_worker.py);
    # not for a run on a cluster: its workers' start keeps the cores busy (the files are made here)
    from analyzer.output.parquet_worker import ParquetWorker
    on_cluster = scheduler is not None or (jobs or 1) > 1 or workers not in ("auto", "1")
    parquet = ParquetWorker(parallel=not on_cluster)
    try:
        _analyze(parquet, paths, local, out_dir, torrents, carve, case_file, client_state, include, bin_seconds,
                 with_report, validation_file, workers, shards, scheduler, spill, workdir, resume, jobs,
                 progress_mode, no_input_hash, force, quiet, debug)
    finally:
        parquet.close()       # (a no-op once it made the files)


def _analyze(parquet, paths, local, out_dir, torrents, carve, case_file, client_state, include, bin_seconds,
             with_report, validation_file, workers, shards, scheduler, spill, workdir, resume, jobs,
             progress_mode, no_input_hash, force, quiet, debug):
    from analyzer.analysis import analyze as run
    from analyzer.case import CaseError, load_case
    from analyzer.findings import build_findings
    from analyzer.output.writer import write_outputs
    from analyzer.pipeline.progress import progress_for
    import gc
    gc.freeze()      # the objects of the imports are never garbage: collections stop walking them

    started = _dt.datetime.now(_dt.timezone.utc)
    if validation_file and not with_report:
        raise click.BadParameter("needs --report (the validation goes into the report's appendix)",
                                 param_hint="--validation")
    _prepare_out(out_dir, force, resume)
    try:
        case = load_case(case_file) if case_file else None
    except CaseError as e:
        raise click.BadParameter(str(e), param_hint="--case") from None
    pdf = charts = None
    if with_report:
        # the PDF and chart processes import WeasyPrint and matplotlib while the capture is analysed
        from analyzer.report.document import start_workers
        pdf, charts = start_workers(others=[parquet.conn] if parquet.conn is not None else [])
    try:
        with _terminate_as_interrupt():
            result = run(list(paths), local=list(local), workers=jobs or _workers(workers), shards=shards,
                         scheduler=scheduler, torrents=list(torrents), carve=carve, case=case, include=include,
                         client_state=list(client_state), workdir=workdir or out_dir / ".work", resume=resume,
                         hash_inputs=not no_input_hash, spill=spill,
                         progress=progress_for(progress_mode, quiet))
            try:
                summary = write_outputs(build_findings(result, bin_seconds=bin_seconds), out_dir,
                                        argv=["bt-analyzer", *sys.argv[1:]], started=started, parquet=parquet)
            except BaseException:
                result.close(completed=False)
                raise
            result.close()
            if with_report:
                # the report reads the finished folder (manifest included), as `bt-analyzer report` would
                from analyzer.report.document import write_report
                from analyzer.report.options import record_in_manifest
                files = write_report(out_dir, validation_file=validation_file, pdf_worker=pdf,
                                     chart_worker=charts)
                record_in_manifest(out_dir, files, files.record, finished=True)
    except KeyboardInterrupt:
        click.echo("bt-analyzer: interrupted. A staged run (--workers, --shards, --scheduler) continues where "
                   "it stopped with --resume.", err=True)
        sys.exit(130)
    except Exception as e:  # an internal error: one clear line, traceback only on request
        raise _internal_error(e, debug) from None
    finally:
        for worker in (pdf, charts):
            if worker is not None:
                worker.close()      # (a no-op once it did its part of the report)
    if not quiet:
        click.echo(render_summary(summary, out_dir))
        if with_report:
            click.echo(f"report: {out_dir / 'report' / 'report.html'} and report.pdf")
    if result.readable_files == 0:
        click.echo("bt-analyzer: error: no input could be read", err=True)
        sys.exit(EXIT_UNREADABLE)
    status = []             # every condition is said; the lowest status is returned
    if local and not summary["subject"]["matched"]:
        click.echo(f"bt-analyzer: warning: the subject ({', '.join(local)}) matches no traffic in the capture",
                   err=True)
        status.append(EXIT_SUBJECT_UNMATCHED)
    if summary["subject"]["ambiguous"]:
        click.echo("bt-analyzer: the subject is ambiguous: the outputs take the best-ranked candidate "
                   "provisionally; pass --local (summary.json subject.candidates lists the evidence)", err=True)
        status.append(EXIT_AMBIGUOUS_SUBJECT)
    failed = [i for i in summary["inputs"] if not i["readable"] or i["internal_error"]]
    if failed:
        click.echo(f"bt-analyzer: {len(failed)} of {len(summary['inputs'])} input(s) could not be read or "
                   f"failed (see the status table and summary.json inputs); the others were analysed", err=True)
        status.append(EXIT_INPUTS_FAILED)
    if status:
        sys.exit(min(status))


@main.command()
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--case", "case_file", type=click.Path(path_type=Path, dir_okay=False), default=None, metavar="FILE",
              help="Case data (TOML: case_number, examiner, organisation, examination_start/_end, "
                   "subject_description, [[evidence]] id/path/description/acquired); overrides the case "
                   "recorded by the analysis.")
@click.option("--torrent-filter", default=None, metavar="TEXT",
              help="Only torrents whose info hash starts with TEXT or whose name contains it.")
@click.option("--from", "start", default=None, metavar="TIME",
              help="Start of the time window: date, time and zone, e.g. 2026-11-28T17:52:48Z or "
                   "2026-11-28T18:52:48+01:00.")
@click.option("--to", "end", default=None, metavar="TIME", help="End of the time window (as --from).")
@click.option("--tz", default=None, metavar="ZONE",
              help="Also give every time in this IANA time zone (e.g. Europe/Berlin), beside UTC.")
@click.option("--date", "date", default=None, metavar="YYYY-MM-DD",
              help="The report's date (default: the date the analysis ran, from manifest.json).")
@click.option("--no-rehash", is_flag=True,
              help="Do not re-hash the input files for the evidence table's 'SHA-256 at the end'.")
@click.option("--validation", "validation_file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              metavar="FILE", callback=lambda c, p, v: _check_validation(v),
              help="A validation.json of bt-analyzer validate: adds the appendix with the error measured.")
@click.option("--debug", is_flag=True, hidden=True, help="Show tracebacks of internal errors.")
def report(folder, case_file, torrent_filter, start, end, tz, date, no_rehash, validation_file, debug):
    """Write FOLDER/report/: report.html (self-contained), report.pdf (A4) and every chart as PNG
    and SVG, from the files of an analysis folder; the manifest records the report's files and
    settings.  A filter that matches nothing is an error (exit status 1)."""
    from analyzer.case import CaseError
    from analyzer.report.document import write_report
    from analyzer.report.options import ReportError, ReportOptions, record_in_manifest
    try:
        options = ReportOptions(torrent_filter=torrent_filter, start=start, end=end, tz=tz, date=date,
                                case_file=str(case_file) if case_file else None, rehash=not no_rehash,
                                validation_file=str(validation_file) if validation_file else None)
        files = write_report(folder, options=options)
        record_in_manifest(folder, files, files.record)
    except (ReportError, CaseError) as e:
        raise click.ClickException(str(e)) from None
    except FileNotFoundError as e:
        raise click.ClickException(f"{folder}: not an analysis folder ({e.filename} missing)") from None
    except Exception as e:
        raise _internal_error(e, debug) from None
    click.echo(f"wrote {len(files)} files to {folder / 'report'}/")


@main.command()
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--info-hash", "info_hash", required=True, metavar="H",
              help="The torrent: its info hash (40 hex digits, or a v2 hash of 64) as in summary.json.")
@click.option("--peer", default=None, metavar="IP[:PORT]",
              help="Only the subject's connections with this remote (IP, IP:PORT, [v6]:PORT or a CIDR network), "
                   "and the tracker, DHT and LSD messages exchanged with that address.")
@click.option("--from", "start", default=None, metavar="TIME",
              help="Only frames from this time on: date, time and zone, e.g. 2026-11-28T17:52:48Z.")
@click.option("--to", "end", default=None, metavar="TIME", help="Only frames up to this time (as --from).")
@click.option("-o", "--output", "output", required=True, type=click.Path(path_type=Path, dir_okay=False),
              metavar="FILE.pcapng", help="The excerpt; FILE.frames.csv is written beside it.")
@click.option("--debug", is_flag=True, hidden=True, help="Show tracebacks of internal errors.")
def extract(folder, info_hash, peer, start, end, output, debug):
    """Write the frames that carry one torrent's evidence, from the original captures of the analysis
    in FOLDER, to FILE.pcapng (original times and link types) with FILE.frames.csv (each excerpt frame's
    original file and frame number); both are hashed into FOLDER/manifest.json (extracts).

    Taken: the torrent's connections (TCP and uTP: handshakes, messages, acknowledgements, IP fragments),
    the HTTP tracker connections that announced it, and the DHT, UDP tracker and LSD messages naming it
    (with their answers).  The inputs must be unchanged (size and SHA-256 as in the manifest)."""
    from analyzer.extract import ExtractError, ExtractUsageError, extract as run
    try:
        result = run(folder, info_hash, output, peer=peer, start=start, end=end,
                     argv=["bt-analyzer", *sys.argv[1:]])
    except ExtractUsageError as e:
        raise click.UsageError(str(e)) from None
    except ExtractError as e:
        raise click.ClickException(str(e)) from None
    except Exception as e:
        raise _internal_error(e, debug) from None
    for note in result.notes:
        click.echo(f"bt-analyzer: {note}", err=True)
    kinds = ", ".join(f"{n:,} {k.replace('_', ' ')}" for k, n in result.by_evidence.items() if n)
    click.echo(f"info hash {result.plan.info_hash}: {result.frames:,} frames ({kinds or 'none'}) from "
               f"{result.plan.connections:,} connection(s)"
               + (f" and {result.plan.tracker_connections:,} tracker connection(s)"
                  if result.plan.tracker_connections else ""))
    click.echo(f"wrote {result.pcapng} and {result.frames_csv}; recorded in {folder / 'manifest.json'}")


@main.command()
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), default=Path("validation"),
              show_default=True, help="Output folder: validation.json, validation.html (and scenarios/ with --keep).")
@click.option("--scenario", "names", multiple=True, metavar="NAME",
              help="Run only this scenario (repeatable; --list shows them). Default: every scenario, those of "
                   "qBittorrent and Deluge only if installed.")
@click.option("--keep", is_flag=True,
              help="Keep each scenario's capture, .torrent files and client state in OUT/scenarios/NAME/.")
@click.option("--list", "list_only", is_flag=True, help="List the scenarios and exit.")
@click.option("--force", is_flag=True, help="Empty the output folder first when it holds other files.")
@click.option("--quiet", is_flag=True, help="Print nothing but errors and the result.")
@click.option("--debug", is_flag=True, hidden=True, help="Show tracebacks of internal errors.")
def validate(out_dir, names, keep, list_only, force, quiet, debug):
    """Run the real-traffic validation scenarios on this machine and measure the tool's error.

    Real clients (libtorrent; Transmission, aria2, rTorrent; qBittorrent and
    Deluge if installed) exchange data in private network namespaces under
    tcpdump; each capture is analysed with the client under test as the
    subject and every figure compared with the clients' own counters
    (tolerance 0 bytes).  Writes OUT/validation.json and OUT/validation.html;
    `report --validation OUT/validation.json` adds them to a report.  Needs
    root.  Exit status 0 when every scenario passed, 1 when one failed or
    could not be run, 6 when a prerequisite is missing (nothing is run).
    """
    from analyzer.validation.scenarios import SCENARIOS
    if list_only:
        from analyzer.validation.prerequisites import optional_missing
        for s in SCENARIOS.values():
            why = optional_missing(s)
            click.echo(f"{s.name:22} {s.description}" + (f" [{why}: skipped by default]" if why else ""))
        return
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise click.BadParameter(f"unknown scenario {', '.join(map(repr, unknown))}; known: {', '.join(SCENARIOS)}",
                                 param_hint="--scenario")
    try:
        with _terminate_as_interrupt():
            code = _validate(out_dir, list(dict.fromkeys(names)), keep, force, quiet)
    except KeyboardInterrupt:
        click.echo("bt-analyzer: interrupted; no validation.json was written", err=True)
        sys.exit(130)
    except click.ClickException:
        raise
    except Exception as e:
        raise _internal_error(e, debug) from None
    sys.exit(code)


def _validate(out_dir: Path, names: list[str], keep: bool, force: bool, quiet: bool) -> int:
    import shutil
    from analyzer.report.validation import figure_statements
    from analyzer.validation.document import write_validation
    from analyzer.validation.prerequisites import missing, optional_missing
    from analyzer.validation.runner import validate as run
    from analyzer.validation.scenarios import SCENARIOS
    chosen = [SCENARIOS[n] for n in names] if names else list(SCENARIOS.values())
    skip = {} if names else {s.name: why for s in chosen if (why := optional_missing(s))}
    lines = missing([s for s in chosen if s.name not in skip])
    if lines:
        for line in lines:
            click.echo(f"bt-analyzer validate: missing: {line}", err=True)
        click.echo("bt-analyzer validate: nothing was run (see README, 'Validation on the examiner's machine')",
                   err=True)
        return 6
    _prepare_out(out_dir, force, False)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = out_dir / ("scenarios" if keep else ".work")
    progress = None if quiet else (lambda m: click.echo(m, err=True))
    try:
        doc, runs = run(chosen, work, keep=keep, skip=skip, progress=progress)
    finally:
        if not keep:
            shutil.rmtree(out_dir / ".work", ignore_errors=True)
    files = write_validation(doc, out_dir)
    for st in figure_statements(doc):
        click.echo(st["sentence"])
    bad = [r.entry for r in runs if r.entry["status"] in ("failed", "error")]
    for e in bad:
        click.echo(f"bt-analyzer validate: {e['name']}: {'failed' if e['status'] == 'failed' else 'could not be run'}: "
                   f"{(e['reason'] or '').splitlines()[0] if e['reason'] else ''}", err=True)
    click.echo(f"{sum(1 for r in runs if r.entry['status'] == 'passed')} of {len(runs)} scenarios passed "
               f"({doc['duration_seconds']} s); written: {', '.join(str(f) for f in files)}")
    return 1 if bad else 0


@main.command()
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False))
@click.option("--quiet", is_flag=True, help="Print only differences.")
def verify(folder, quiet):
    """Re-hash the inputs and outputs of an analysis folder against its manifest.json.

    Exit status 0 when every file matches, 1 when any is modified or missing.
    """
    from analyzer.evidence.manifest import ManifestError, verify_folder
    try:
        checks = verify_folder(folder)
    except ManifestError as e:
        raise click.ClickException(str(e)) from None
    bad = [c for c in checks if not c.ok]
    for c in checks:
        if not (quiet and c.ok):
            click.echo(c.describe())
    click.echo(f"{len(checks) - len(bad)} of {len(checks)} files match the manifest"
               + ("" if not bad else f"; {len(bad)} differ"))
    sys.exit(1 if bad else 0)


def _check_validation(path: Path | None) -> Path | None:
    """A --validation file is read and checked before anything else is done (a usage error otherwise)."""
    if path is None:
        return None
    from analyzer.report.validation import ValidationFileError, load_validation
    try:
        load_validation(path)
    except ValidationFileError as e:
        raise click.BadParameter(str(e), param_hint="--validation") from None
    return path


def _prepare_out(out_dir: Path, force: bool, resume: bool) -> None:
    """The output folder must hold nothing this run did not write: refused, or emptied with --force.
    Its work folder (.work) is the run's own; with --resume, so are the outputs of a run that did
    not finish (no manifest.json)."""
    import shutil
    if not out_dir.is_dir():
        if out_dir.exists():
            raise click.BadParameter(f"{out_dir} exists and is not a folder", param_hint="--out")
        return
    others = sorted(e.name for e in out_dir.iterdir() if e.name != ".work")
    if not others or (resume and "manifest.json" not in others):
        return
    if not force:
        listed = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise click.BadParameter(f"{out_dir} already holds files ({listed}); choose an empty or new folder, "
                                 "or --force to empty it first", param_hint="--out")
    resolved = out_dir.resolve()
    if resolved in (Path("/"), Path.home().resolve(), Path.cwd().resolve()):
        raise click.BadParameter(f"--force will not empty {resolved}", param_hint="--out")
    for name in others:
        e = out_dir / name
        if e.is_dir() and not e.is_symlink():
            shutil.rmtree(e)
        else:
            e.unlink()


def _workers(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        n = int(value)
    except ValueError:
        n = 0
    if not 1 <= n <= 1024:
        raise click.BadParameter(f"{value!r} is not a number from 1 to 1024 or 'auto'", param_hint="--workers")
    return n


@contextlib.contextmanager
def _terminate_as_interrupt():
    """While analysing, SIGTERM (a batch system stopping the job) ends the run like Ctrl-C:
    cleanly, resumable."""
    import signal

    def handler(signum, frame):
        raise KeyboardInterrupt
    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:          # not the main thread (an embedding program): leave it alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def render_summary(summary: dict, out_dir: Path) -> str:
    acc = summary["accounting"]
    subject = summary["subject"]
    lines = [f"subject: {', '.join(summary['local']) or '(none)'}"
             + ("  (inferred, AMBIGUOUS: provisional)" if subject["ambiguous"]
                else "  (inferred)" if subject["inferred"] else ""),
             *([f"  ambiguous: {subject['basis']}",
                "  candidates: " + "; ".join(_candidate_text(c) for c in subject["candidates"][:5])]
               if subject["ambiguous"] else []),
             f"inputs: {len(summary['inputs']):,} file(s), {acc['frames']:,} frames, "
             f"{format_bytes(acc['bytes'])} on the wire", ""]
    for t in summary["torrents"]:
        lines += torrent_lines(t)
    if len(summary["torrents"]) > 1:
        lines += totals_lines(summary["torrents"])
    if not summary["torrents"]:
        lines.append("no torrent (info_hash) seen")
    u = summary["unattributed"]
    if u["connections"]:
        lines.append(f"BitTorrent without info_hash (no handshake captured): {u['connections']:,} connection(s), "
                     f"downloaded {u['downloaded_bytes']:,} B, uploaded {u['uploaded_bytes']:,} B")
        lines += _bounds_lines(u["bounds"])
    lines.append("")
    lines.append("frames by category:")
    for name, c in acc["categories"].items():
        if c["frames"]:
            lines.append(f"  {name:24} {c['frames']:>12,} frames  {c['bytes']:>15,} B")
    gaps = acc["gap_bytes"]
    if any(gaps.values()):
        lines.append(f"capture gaps: {gaps['to_subject']:,} B to the subject, "
                     f"{gaps['from_subject']:,} B from it, {gaps['not_involving_subject']:,} B elsewhere")
    lines.append("")
    lines.extend(input_status_table(summary["inputs"]))
    lines.append(f"written to {out_dir}/")
    return "\n".join(lines)


def torrent_lines(t: dict) -> list[str]:
    """One torrent of summary.json for the terminal."""
    aliases = f" (also {', '.join(t['info_hash_aliases'])})" if t["info_hash_aliases"] else ""
    named = f"  \"{t['name']}\", {t['total_size']:,} B" if t.get("name") is not None else ""
    lines = [
        f"torrent {t['info_hash']}{aliases}{named}",
        *_transfer_lines(t),
        f"  {t['peers']:,} peer(s), {t['connections']:,} connection(s), {t['first_seen']} to {t['last_seen']}"
        if t["first_seen"] else "  no connection of the subject" + (
            f"; {t['other_connections']:,} between other hosts" if t.get("other_connections") else ""),
    ]
    lines += _bounds_lines(t["bounds"])
    v = t.get("verification")
    if v:
        lines.append(f"  verified: downloaded {v['verified_downloaded_bytes']:,} B "
                     f"({v['pieces_downloaded_verified']:,} pieces, {v['pieces_downloaded_failed']:,} failed), "
                     f"uploaded {v['verified_uploaded_bytes']:,} B; holds "
                     f"{100 * (v['held_share'] or 0):.1f}% of the torrent")
        for d in ("downloaded", "uploaded"):
            redundant, failed = v[f"redundant_{d}_bytes"], v[f"failed_{d}_bytes"]
            if redundant or failed:
                size = t.get("total_size")
                beyond = (f" (downloaded exceeds the torrent's size by {t[f'{d}_bytes'] - size:,} B)"
                          if d == "downloaded" and size is not None and t[f"{d}_bytes"] > size else "")
                lines.append(f"  {d} beyond the verified pieces: {redundant:,} B redundant, "
                             f"{failed:,} B in pieces that failed the hash check{beyond}")
    return lines


def totals_lines(torrents: list[dict]) -> list[str]:
    """The sums over every torrent (bytes and connections: each connection is one torrent's)."""
    total = {k: sum(t[k] for t in torrents) for k in ("downloaded_bytes", "downloaded_acked_bytes",
                                                       "uploaded_bytes", "uploaded_acked_bytes", "connections")}
    return [f"all {len(torrents):,} torrents", *_transfer_lines(total), f"  {total['connections']:,} connection(s)"]


def _transfer_lines(t: dict) -> list[str]:
    """Downloaded and uploaded bytes (exact, readable, acknowledged) of a torrent or of the totals."""
    return [f"  {d:10} {t[f'{d}_bytes']:>15,} B  {format_bytes(t[f'{d}_bytes']):>22}"
            f"   acknowledged {t[f'{d}_acked_bytes']:,} B" for d in ("downloaded", "uploaded")]


def _bounds_lines(b: dict) -> list[str]:
    """The bounds of connections cut by the snap length (nothing when none was)."""
    if not b["truncated_connections"]:
        return []
    def upper(v):
        return "unknown" if v is None else f"{v:,} B"
    out = [f"  cut by the snap length ({b['truncated_connections']:,} connection(s)): downloaded between "
           f"{b['downloaded_lower_bytes']:,} B and {upper(b['downloaded_upper_bytes'])}, uploaded between "
           f"{b['uploaded_lower_bytes']:,} B and {upper(b['uploaded_upper_bytes'])}"]
    return out + [f"  {basis}" for basis in b["info_hash_from_announces"]]


def _candidate_text(c: dict) -> str:
    e = c["evidence"]
    parts = [f"end of {e['connections']:,}/{e['of']:,} connections" if e["of"] else "",
             f"connected to from {e['connected_from']:,} addresses" if e["connected_from"] else "",
             f"{e['tracker_announces']:,} tracker announces" if e["tracker_announces"] else "",
             f"{e['lsd_announces']:,} LSD announces" if e["lsd_announces"] else "",
             f"{e['dht_queries']:,} DHT get_peers/announce_peer" if e["dht_queries"] else "",
             f"end of {e['dht_messages']:,}/{e['dht_of']:,} DHT messages" if e["dht_of"] else ""]
    return f"{c['address']} ({', '.join(p for p in parts if p) or 'no evidence'})"


def input_status_table(inputs: list[dict]) -> list[str]:
    """One line per input: ok, damaged (with the first reason) or unreadable; then the totals."""
    rows, counts = [], {"ok": 0, "damaged": 0, "unreadable": 0}
    for i in inputs:
        status = "unreadable" if not i["readable"] else \
            "damaged" if i["errors"] or i["damaged_bytes"] or i["truncated_bytes"] else "ok"
        counts[status] += 1
        reason = f"  {i['errors'][0]}" + (f" (+{len(i['errors']) - 1} more)" if len(i["errors"]) > 1 else "") \
            if i["errors"] else ""
        rows.append(f"  {status:10} {i['frames']:>12,} frames  {i['path']}{reason}")
    total = sum(i["size_bytes"] or 0 for i in inputs)
    return ["inputs:", *rows, f"  {len(inputs):,} file(s), {format_bytes(total)}: {counts['ok']:,} ok, "
            f"{counts['damaged']:,} damaged, {counts['unreadable']:,} unreadable"]


if __name__ == "__main__":
    main()
