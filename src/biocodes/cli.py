"""The ``biocodes`` command. Thin: parses arguments, calls the library, prints.

Errors in the input are one line on stderr (``biocodes: PATH: cause``) and a
non-zero exit status; with ``--json`` they are also an ``error`` object on
stdout, in input order, so a pipeline sees one line per path.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click

from biocodes import __version__
from biocodes.errors import BiocodeError, as_biocode_error

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
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--simprints", is_flag=True, help="Add a Data-Code simprint per plane.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per path.")
def biocode(paths: tuple[str, ...], simprints: bool, as_json: bool) -> None:
    """Compute the biocode of each image file or zarr store.

    Prints the raw-file ISCC-SUM of each PATH and one ISCC-SUM per scene. A
    path that fails is reported on stderr; the others are still processed, and
    the exit status is 1 if any failed.
    """
    from biocodes.fingerprint import biocode as compute

    def work(path: str) -> dict:
        progress = _Progress(path)
        try:
            return compute(path, simprints=simprints, progress=progress)
        finally:
            progress.close()

    def show(path: str, r: dict) -> None:
        click.echo(f"{r['iscc_code']} *{path}")
        for part in r["parts"]:
            dims = " ".join(f"{k}={v}" for k, v in part["dims"].items())
            click.echo(
                f"  scene {part['scene_index']} {part['iscc_code']} "
                f"{dims} {part['dtype']} {part['scene_name']}"
            )

    _run_each(paths, as_json, work, show)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="One JSON object per path.")
def scenes(paths: tuple[str, ...], as_json: bool) -> None:
    """List the scenes of each image with their dims and pixel type."""
    from biocodes.fingerprint import scene_entry
    from biocodes.sources import open_source

    def work(path: str) -> dict:
        with open_source(path) as source:
            items = [scene_entry(s) for s in source.scenes]
            return {"format": source.format, "scenes": items}

    def show(path: str, r: dict) -> None:
        click.echo(f"{path} ({r['format']}, {len(r['scenes'])} scenes)")
        for s in r["scenes"]:
            dims = " ".join(f"{k}={v}" for k, v in s["dims"].items())
            click.echo(f"  {s['scene_index']}: {dims} {s['dtype']} {s['scene_name']}")

    _run_each(paths, as_json, work, show)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
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
    from biocodes.pixhash import pixhash as compute

    def show(path: str, r: dict) -> None:
        for i, digest in enumerate(r["digests"]):
            click.echo(f"{digest} *{path}#scene{i}")

    _run_each(paths, as_json, lambda p: compute(p, algorithm), show)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option(
    "-o",
    "--output",
    "out_dir",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Directory for the PNG files.",
)
@click.option("--size", default=256, show_default=True, help="Longest side in pixels.")
def thumb(paths: tuple[str, ...], out_dir: str, size: int) -> None:
    """Write a PNG thumbnail of every scene of each image."""
    from biocodes.sources import open_source
    from biocodes.thumbnails import write_thumbnails

    def work(path: str) -> dict:
        with open_source(path) as source:
            return {
                "thumbnails": [str(p) for p in write_thumbnails(source, out_dir, size)]
            }

    def show(path: str, r: dict) -> None:
        for p in r["thumbnails"]:
            click.echo(p)

    _run_each(paths, False, work, show)


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
