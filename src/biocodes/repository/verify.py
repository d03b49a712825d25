"""Re-read images and compare their pixel codes with the catalogue (``sha256sum -c``).

Repositories run this after a format migration or a storage move: every
catalogued scene must still have the same per-scene ISCC-SUM. A changed raw-file
code with equal scene codes (the file was re-written, the pixels were not) is
reported but is not a failure. :func:`check_codes` does the same for a list of
codes printed by ``biocodes biocode``, without a catalogue.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path


class NotACatalogueError(ValueError):
    """A path given as a catalogue is not one: a typo must not pass as an
    empty, all-good catalogue."""


def catalogue_dir(path: str | os.PathLike) -> Path:
    """The catalogue in ``path`` (a results directory or the catalogue
    itself); :class:`NotACatalogueError` if there is none."""
    path = Path(path)
    for where in (path / "catalogue", path):
        if (where / "images.parquet").is_file() and (where / "runs.parquet").is_file():
            return where
    raise NotACatalogueError(
        f"{path}: not a biocodes catalogue (no images.parquet and runs.parquet "
        "in it or in its catalogue/)"
    )


def _run_dir(cat: Path, results: str | None) -> Path:
    """The directory the workflow ran in, recovered from where its results are
    now and how the config named them (``results: results`` in /x means /x):
    catalogues written before roots were recorded as absolute paths name them
    relative to that directory."""
    here = Path(os.path.abspath(cat)).parent  # results/catalogue is a symlink
    if results and not os.path.isabs(results):
        parts = Path(results).parts
        if here.parts[-len(parts) :] == parts:
            return (
                Path(*here.parts[: -len(parts)])
                if len(here.parts) > len(parts)
                else Path("/")
            )
    return Path.cwd()


def recorded_roots(cat: Path) -> dict[str, str]:
    """Root label -> directory (absolute) or URL, from the config of the
    catalogue's last run."""
    from biocodes.infra.remote import is_remote
    from biocodes.repository.tables import read_catalogue

    runs = read_catalogue(cat, "runs")
    if not runs:
        return {}
    config = json.loads(runs[-1].get("config") or "{}")
    base = _run_dir(cat, config.get("results"))
    roots = {
        label: root if is_remote(root) else os.path.normpath(base / root)
        for label, root in dict(config.get("roots", {})).items()
    }
    if config.get("manifest"):
        roots["manifest"] = os.path.normpath(base / Path(config["manifest"]).parent)
    return roots


def _join(base: str, rel: str) -> str:
    """``rel`` (POSIX, from the catalogue) under a root directory or URL."""
    from biocodes.infra.remote import is_remote

    if is_remote(base):
        return f"{base.rstrip('/')}/{rel}"
    return str(Path(base) / rel)


def verify(
    catalogue: str | os.PathLike,
    sample: int | None = None,
    roots: Mapping[str, str] | None = None,
    seed: int = 0,
) -> Iterator[dict]:
    """Yield ``{"path", "status" (OK / FAILED / MISSING), "detail"}`` per image.

    ``roots`` moves root labels to new places; a label the catalogue does not
    have is a ValueError (a misspelt label would otherwise change nothing)."""
    from biocodes.repository.tables import read_catalogue

    cat = catalogue_dir(catalogue)
    recorded = recorded_roots(cat)
    unknown = sorted(set(roots or {}) - set(recorded))
    if unknown:
        raise ValueError(
            f"--root {unknown[0]}=...: the catalogue has no root labelled "
            f"{unknown[0]!r} (its roots: {', '.join(sorted(recorded)) or 'none'})"
        )
    where = {**recorded, **(roots or {})}
    images = [
        i for i in read_catalogue(cat, "images") if i["status"] in ("ok", "empty")
    ]
    if sample is not None and sample < len(images):
        images = sorted(
            random.Random(seed).sample(images, sample), key=lambda i: i["path"]
        )
    scenes: dict[str, list[str]] = {}
    absent: dict[str, list[int | None]] = {}
    rows: dict[str, list[dict]] = {}
    for s in read_catalogue(cat, "scenes"):
        scenes.setdefault(s["image_id"], []).append(s["iscc_code"])
        absent.setdefault(s["image_id"], []).append(s.get("chunks_absent"))
        rows.setdefault(s["image_id"], []).append(s)
    for image in images:
        base = where.get(image["root"])
        if base is None:
            shown = f"{image['root']}:{image['path']}"
            yield {"path": shown, "status": "MISSING", "detail": "unknown root"}
            continue
        path = _join(base, image["path"])
        before = scenes.get(image["image_id"], [])
        result = _recompute(path)
        if "status" in result:
            yield {"path": path, **result}
            continue
        now = [p["iscc_code"] for p in result["parts"]]
        if now != before:
            differ = [
                i
                for i in range(max(len(now), len(before)))
                if i >= len(now) or i >= len(before) or now[i] != before[i]
            ]
            detail = f"pixels differ in scene(s) {', '.join(map(str, differ))}"
            planes = _planes_differ(rows.get(image["image_id"], []), result)
            if planes:
                detail += f": {planes}"
            yield {"path": path, "status": "FAILED", "detail": detail}
        elif moved := _absent_moved(absent.get(image["image_id"], []), result):
            yield {"path": path, "status": "FAILED", "detail": moved}
        elif result["iscc_code"] != image["iscc_code"]:
            yield {
                "path": path,
                "status": "OK",
                "detail": "file rewritten, same pixels",
            }
        elif None in before:  # a plate field unreadable then and now
            failed = ", ".join(str(i) for i, c in enumerate(before) if c is None)
            detail = f"scene(s) {failed} unreadable, as in the catalogue"
            yield {"path": path, "status": "OK", "detail": detail}
        else:
            yield {"path": path, "status": "OK", "detail": ""}


def _planes_differ(before: list[dict], result: dict) -> str:
    """Which planes differ (:func:`biocodes.core.planediff.image_difference`)
    between the catalogue's scenes rows and a re-read's parts."""
    from biocodes.core.planediff import image_difference
    from biocodes.repository.shard import packed_digests

    now = []
    for p in result["parts"]:
        if "error" in p:
            now.append({"scene_index": p["scene_index"], "iscc_code": None})
            continue
        d = p["dims"]
        now.append(
            {
                "scene_index": p["scene_index"],
                "iscc_code": p["iscc_code"],
                "dtype": p["dtype"],
                "plane_digests": packed_digests(p.get("plane_digests")),
                **{f"size_{k.lower()}": d[k] for k in "ZCTYX"},
            }
        )
    return image_difference(before, now)


def _absent_moved(before: list[int | None], result: dict) -> str:
    """Why the chunks absent from a zarr store differ from the catalogue's
    count ("" if they do not, or either side has no count): the same pixels
    from a store that no longer holds the same chunks (a partial copy that
    lost only all-fill chunks, or a rewrite with or without them)."""
    now = [p.get("chunks_absent") for p in result["parts"]]
    differ = [
        f"scene {i}: {b} → {n}"
        for i, (b, n) in enumerate(zip(before, now))
        if b is not None and n is not None and b != n
    ]
    if not differ:
        return ""
    return "same pixels, but chunks absent from the store changed (" + (
        "; ".join(differ) + ")"
    )


def unchecked(catalogue: str | os.PathLike) -> int:
    """How many catalogued images :func:`verify` cannot check: they failed
    in the last run, so the catalogue holds no codes for them (their errors
    are in ``errors.parquet``)."""
    from biocodes.repository.tables import read_table

    images = read_table(
        catalogue_dir(catalogue) / "images.parquet", "images", ["status"]
    )
    import pyarrow.compute as pc

    return pc.sum(pc.equal(images["status"], "error")).as_py() or 0


def _recompute(path: str) -> dict:
    """The biocode of ``path`` now, or ``{"status", "detail"}`` if it is
    missing (MISSING) or cannot be read (FAILED)."""
    from biocodes.core.fingerprint import biocode
    from biocodes.infra.errors import as_biocode_error
    from biocodes.infra.remote import is_remote

    if not is_remote(path) and not os.path.lexists(path):
        return {"status": "MISSING", "detail": "no such file"}
    try:
        return biocode(path)
    except Exception as exc:
        err = as_biocode_error(str(path), exc)
        status = "MISSING" if err.kind == "not_found" else "FAILED"
        return {"status": status, "detail": str(err)}


def parse_codes(lines: Iterable[str]) -> tuple[list[dict], int]:
    """Entries ``{"path", "iscc_code", "scenes": [code, ...]}`` from the output
    of ``biocodes biocode`` (text or ``--json``), and how many lines were not
    understood (or held no code: a file that had failed)."""
    entries: list[dict] = []
    bad = 0
    for line in lines:
        text = line.rstrip("\n")
        if not text.strip():
            continue
        if text.startswith("{"):
            try:
                obj = json.loads(text)
                parts = [p["iscc_code"] for p in obj["parts"]]
                entries.append(
                    {
                        "path": obj["path"],
                        "iscc_code": obj.get("iscc_code"),
                        "scenes": parts,
                    }
                )
            except (ValueError, KeyError, TypeError):
                bad += 1
            continue
        if text.startswith("  scene ") and entries:
            fields = text.split()
            if len(fields) >= 3 and fields[1] == str(len(entries[-1]["scenes"])):
                entries[-1]["scenes"].append(fields[2])
                continue
            bad += 1
            continue
        if text.startswith("  ("):  # a note under an entry
            continue
        code, sep, path = text.partition(" *")
        if sep and path and (code.startswith("ISCC:") or code == "-"):
            entries.append(
                {"path": path, "iscc_code": None if code == "-" else code, "scenes": []}
            )
        else:
            bad += 1
    return entries, bad


def check_codes(entries: Iterable[dict]) -> Iterator[dict]:
    """Re-read every listed file and compare it scene by scene: yield
    ``{"path" (PATH#sceneN, or PATH when the file is missing or unreadable),
    "status" (OK / FAILED / MISSING), "detail"}``."""
    from biocodes.infra.errors import display_path, undisplay_path
    from biocodes.infra.remote import is_remote

    for entry in entries:
        named = entry["path"]  # biocode printed it escaped: caf\xe9.png, a\nb.png
        if not is_remote(named) and not os.path.lexists(named):
            if os.path.lexists(undisplay_path(named)):
                named = undisplay_path(named)
        path = display_path(named)  # one line, as biocode printed it
        result = _recompute(named)
        if "status" in result:
            yield {"path": path, **result}
            continue
        now = [p["iscc_code"] for p in result["parts"]]
        before = entry["scenes"]
        rewritten = entry["iscc_code"] not in (None, result["iscc_code"])
        if not now and not before:  # an image without scenes, as before
            yield {"path": path, "status": "OK", "detail": "no scenes"}
        for i in range(max(len(now), len(before))):
            shown = f"{path}#scene{i}"
            if i >= len(now):
                yield {"path": shown, "status": "FAILED", "detail": "scene gone"}
            elif i >= len(before):
                yield {"path": shown, "status": "FAILED", "detail": "new scene"}
            elif now[i] != before[i]:
                yield {"path": shown, "status": "FAILED", "detail": "pixels differ"}
            else:
                detail = "file rewritten, same pixels" if rewritten else ""
                yield {"path": shown, "status": "OK", "detail": detail}
