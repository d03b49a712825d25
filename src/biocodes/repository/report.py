"""The morning report: one self-contained HTML page about a catalogue.

Written for the person who reads it each morning: this run's figures and
changes (a scene code that changed under a kept file is flagged as a possible
integrity problem), failures grouped by type, exact and near duplicate groups
with their thumbnails, a plot of the run history, then a grid of scenes.

The page is plain HTML with inline CSS and SVG and no external resources,
written next to the catalogue so that thumbnail paths (relative to the results
directory) resolve. Every list is capped and says how many it left out, so
the page stays small at 100k images (the catalogue has everything). Every
value from the repository (file names, messages) is escaped: a file name must
never become markup.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from html import escape
from pathlib import Path
from urllib.parse import quote

from biocodes.infra.errors import short_cause

CSS = """
body{font:14px system-ui,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{font-size:22px;margin:0 0 8px} h2{font-size:17px;margin:28px 0 8px}
h3{font-size:15px;margin:16px 0 6px}
.summary td{padding:2px 12px 2px 0;vertical-align:top}
.cols{display:flex;gap:40px;flex-wrap:wrap;align-items:flex-start}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:12px}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px}
.card img{width:100%;height:180px;object-fit:contain;background:#111;display:block}
.noimg{height:180px;background:#eee;text-align:center;line-height:180px}
.path{font-weight:600;word-break:break-all;margin-top:6px}
code{font-size:11px;word-break:break-all;color:#444}
.views{display:flex;gap:3px;margin-top:4px}.views img{width:40px;height:40px}
table.list{border-collapse:collapse;background:#fff}
table.list td,table.list th{border:1px solid #ddd;padding:4px 8px;text-align:left}
tr.integrity td{background:#ffd6d6}
.alert{background:#ffd6d6;border:2px solid #a01616;padding:8px 12px;margin:12px 0;
 border-radius:6px;color:#700}
.ok{color:#176f2c}.bad{color:#a01616}.more{color:#666;font-style:italic}
.kind{display:inline-block;min-width:72px;padding:1px 6px;border-radius:4px;
 background:#e8e8e8;font-size:12px}
.kind.changed{background:#ffe3a8}.kind.failed{background:#ffd6d6}
.kind.still_failing{background:#f3e0e0}.kind.recovered{background:#d3f5d3}
.kind.added{background:#d6f5dc}.kind.removed{background:#ddd}
.group{background:#fff;border:1px solid #ddd;border-radius:6px;padding:6px;
 margin:0 0 8px}
.members{display:flex;gap:8px;flex-wrap:wrap}
.member{width:132px;font-size:11px;word-break:break-all}
.member img{width:128px;height:96px;object-fit:contain;background:#111;display:block}
.member .noimg{width:128px;height:96px;line-height:96px}
svg.history{background:#fff;border:1px solid #ddd;border-radius:6px}
"""

# Counts thumbnails that really decoded, for people and for the browser test.
SCRIPT = """
window.addEventListener('load', () => {
  const imgs = [...document.querySelectorAll('img')];
  document.body.dataset.images = imgs.length;
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0);
  document.body.dataset.loaded = ok.length;
});
"""

#: the run-history series: (runs column, label, colour, scale, unit)
SERIES = (
    ("images", "images", "#1f5fbf", 1, ""),
    ("scenes", "scenes", "#2f9e44", 1, ""),
    ("images_error", "failures", "#d62020", 1, ""),
    ("bytes_hashed", "pixels read", "#8a3ffc", 1e6, " MB"),
)
#: change kinds in the order a reader wants them
KINDS = (
    "changed",
    "failed",
    "still_failing",
    "recovered",
    "chunks_absent",
    "removed",
    "added",
    "touched",
)


def _img(src: str, alt: str, cls: str = "") -> str:
    src = src if src.startswith("data:") else quote(src)
    return f'<img src="{src}" alt="{escape(alt)}" class="{cls}" loading="eager">'


#: bytes of embedded pictures one page may hold. The page shows at most
#: ``max_scenes`` cards (500) and a few duplicate groups whatever the
#: repository's size, each picture a small JPEG at the size it is shown
#: (about 2-8 kB), so about 5 MB at 100k images; past the budget a picture
#: is a link to results/thumbnails and the page says where to open it
EMBED_BUDGET = 16_000_000
DATA_URI = "data:image/jpeg;base64,"


class Embedder:
    """Thumbnails as small ``data:`` URIs, so the page works copied alone
    (e-mailed, moved): each is scaled to the size it is shown at and
    encoded as JPEG (deterministic). Past ``budget`` bytes, or for a file
    that is not there, the relative link is kept and counted.

    ``known``: URIs encoded for an earlier page, by :meth:`key` (the
    thumbnail's path, size and mtime, and the size shown): a thumbnail that
    did not change is not decoded and encoded again each night
    (:meth:`encoded` gives this page's, for the next)."""

    def __init__(
        self,
        results_dir: Path,
        budget: int = EMBED_BUDGET,
        known: dict[str, str] | None = None,
    ) -> None:
        self.results_dir = results_dir
        self.budget = budget
        self.used = 0
        self.linked = 0
        self._done: dict[tuple[str, int], str] = {}
        self._known = known or {}
        self._encoded: dict[str, str] = {}

    def __call__(self, rel: str, px: int) -> str:
        key = (rel, px)
        if key not in self._done:
            self._done[key] = self._encode(rel, px)
        return self._done[key]

    def key(self, rel: str, px: int) -> str | None:
        """What an encoding depends on, or None for a file not there."""
        try:
            st = os.stat(self.results_dir / rel)
        except (OSError, ValueError):
            return None
        return f"{px} {st.st_size} {st.st_mtime_ns} {rel}"

    def encoded(self) -> dict[str, str]:
        """The URIs of this page, by :meth:`key`."""
        return dict(sorted(self._encoded.items()))

    def _encode(self, rel: str, px: int) -> str:
        if self.used >= self.budget:
            self.linked += 1
            return rel
        key = self.key(rel, px)
        uri = self._known.get(key) if key else None
        if uri is None:
            uri = self._jpeg(rel, px)
        if uri is None:
            self.linked += 1
            return rel
        if key:
            self._encoded[key] = uri
        self.used += len(uri) - len(DATA_URI)
        return uri

    def _jpeg(self, rel: str, px: int) -> str | None:
        import base64
        import io

        from PIL import Image

        try:
            with Image.open(self.results_dir / rel) as im:
                im.thumbnail((px, px), Image.Resampling.LANCZOS)
                if im.mode not in ("L", "RGB"):
                    im = im.convert("RGB")
                buf = io.BytesIO()
                im.save(buf, "JPEG", quality=80, optimize=True)
        except (OSError, ValueError):  # gone, or not a picture
            return None
        return DATA_URI + base64.b64encode(buf.getvalue()).decode("ascii")

    def note(self) -> str:
        """What the page says when some pictures are links."""
        if not self.linked:
            return ""
        return (
            f'<p class="more">{_count(self.linked, "thumbnail")} '
            f"{'is a link' if self.linked == 1 else 'are links'} to "
            f"thumbnails/ (past the page's {self.budget / 1e6:.0f} MB budget, "
            "or not found): open this page from its results folder to see "
            "them.</p>"
        )


def _link(rel: str, px: int) -> str:
    return rel


def _more(shown: int, total: int, where: str) -> str:
    if total <= shown:
        return ""
    return f'<p class="more">… and {total - shown:,} more in {escape(where)}</p>'


def _card(scene: dict, views: list[dict], embed: Callable = _link) -> str:
    title = f"{scene['path']} · scene {scene['scene_index']}"
    first = next((v for v in views if v.get("thumbnail")), None)
    picture = (
        _img(embed(first["thumbnail"], 200), title)
        if first
        else '<div class="noimg">no view</div>'
    )
    dims = "×".join(
        str(scene[k]) for k in ("size_t", "size_c", "size_z", "size_y", "size_x")
    )
    small = "".join(
        _img(embed(v["thumbnail"], 48), f"{v['strategy']} {v['iscc_image']}")
        for v in views[1:]
        if v.get("thumbnail")
    )
    codes = "".join(
        f"<div><code>{escape(v['strategy'])} {escape(v['iscc_image'])}</code></div>"
        for v in views
    )
    return (
        f'<div class="card">{picture}<div class="path">{escape(scene["path"])}</div>'
        f"<div>scene {scene['scene_index']} {escape(scene['scene_name'] or '')} "
        f"· TCZYX {dims} · {escape(scene['dtype'])}</div>"
        f"<div><code>SUM {escape(scene['iscc_code'] or '')}</code></div>"
        f"<div><code>MIXED {escape(scene['iscc_mixed'] or '—')}</code></div>"
        f'{codes}<div class="views">{small}</div></div>'
    )


def _n(value: object) -> int:
    return int(value or 0)


def _count(value: object, noun: str) -> str:
    """``1 scene``, ``2 scenes``, ``1,000 groups``: the report is read by people."""
    n = _n(value)
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def _when(value: object) -> str:
    """A run time as text: timestamps (or old catalogues' ISO strings)."""
    if value is None:
        return "—"
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return text.replace("+00:00", "Z")


def _removed(run: dict) -> str:
    """The removed images the catalogue keeps: this run's and earlier ones."""
    now = _n(run.get("images_removed"))
    earlier = _n(run.get("images_removed_total")) - now
    text = f"{earlier:,} removed earlier"
    return f"{now:,} removed in this run, {text}" if now else text


def _summary(run: dict) -> list[str]:
    this_run = [
        ("run", run["run_id"]),
        ("started / finished", f"{_when(run['started'])} / {_when(run['finished'])}"),
        (
            "pixels read",
            f"{_count(run['images_read'], 'image')}, "
            f"{_count(run.get('scenes_read'), 'scene')}, "
            f"{_n(run['bytes_hashed']) / 1e6:,.1f} MB",
        ),
        (
            "re-hashed as files and unchanged / unchanged (not opened)",
            f"{_n(run['images_rehashed']):,} / {_n(run['images_reused']):,}",
        ),
        (
            "refused at the scan (0-byte, bad symlink)",
            f"{_n(run.get('images_refused')):,}",
        ),
        (
            "in progress (still being written, left for a later run)",
            f"{_n(run.get('images_in_progress')):,}",
        ),
        (
            "changes",
            ", ".join(
                f"{_n(run.get(f'images_{k}')):,} {k}"
                for k in ("added", "changed", "touched", "removed", "failed")
            )
            + f", {_n(run.get('images_still_failing')):,} still failing, "
            f"{_n(run.get('images_recovered')):,} recovered",
        ),
        ("files skipped (include/exclude)", f"{_n(run.get('files_skipped')):,}"),
    ]
    total = [
        (
            "images",
            f"{_n(run['images']):,} ({_n(run['images_ok']):,} ok, "
            f"{_n(run['images_error']):,} failed, "
            f"{_removed(run)})",
        ),
        ("scenes", f"{_n(run['scenes']):,}"),
        ("pixels", f"{_n(run.get('bytes_total')) / 1e6:,.1f} MB"),
        ("IMAGEWALK", run["imagewalk_spec"]),
        ("config sha256", run["config_sha256"]),
        (
            "versions",
            ", ".join(f"{k} {v}" for k, v in json.loads(run["versions"]).items()),
        ),
    ]
    if run.get("versions_changed"):
        total.append(("versions changed", run["versions_changed"]))
    total.append(("walk rules", run.get("walk_rules") or "1"))

    def table(title: str, items: list[tuple[str, object]]) -> str:
        body = "".join(
            f"<tr><td>{escape(k)}</td><td>{escape(str(v))}</td></tr>" for k, v in items
        )
        return f"<div><h3>{title}</h3><table class=summary>{body}</table></div>"

    return [
        '<div class="cols">',
        table("This run", this_run),
        table("Catalogue after this run (totals)", total),
        "</div>",
    ]


def history_svg(runs: Sequence[dict], last: int = 60) -> str:
    """The run history as inline SVG: one small panel per series (images,
    scenes, failures, pixels read), one point per run, the newest last."""
    runs = list(runs)[-last:]
    width, panel, gap, left = 720, 70, 22, 120
    height = len(SERIES) * (panel + gap) + 24
    n = len(runs)
    out = [
        f'<svg class="history" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="run history">'
    ]
    for i, (column, label, colour, scale, unit) in enumerate(SERIES):
        top = 12 + i * (panel + gap)
        values = [_n(r.get(column)) / scale for r in runs]
        peak = max(values, default=0) or 1
        xs = [
            left + (width - left - 20) * (k / (n - 1) if n > 1 else 0.5)
            for k in range(n)
        ]
        ys = [top + panel - panel * v / peak for v in values]
        last_value = values[-1] if values else 0
        fmt = ",.1f" if unit else ",.0f"
        out.append(
            f'<text x="8" y="{top + 14}" font-size="13" fill="{colour}" '
            f'font-weight="600">{escape(label)}</text>'
            f'<text x="8" y="{top + 32}" font-size="11" fill="#444">now '
            f"{last_value:{fmt}}{unit}</text>"
            f'<text x="8" y="{top + 48}" font-size="11" fill="#888">max '
            f"{max(values, default=0):{fmt}}{unit}</text>"
            f'<line x1="{left}" y1="{top + panel}" x2="{width - 20}" '
            f'y2="{top + panel}" stroke="#bbb"/>'
        )
        if n > 1:
            points = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys))
            out.append(
                f'<polyline points="{points}" fill="none" stroke="{colour}" '
                f'stroke-width="3"/>'
            )
        for x, y, r, v in zip(xs, ys, runs, values):
            out.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{colour}">'
                f"<title>{escape(r['run_id'])}: {v:,.1f}{unit}</title></circle>"
            )
    first = escape(runs[0]["run_id"]) if runs else ""
    newest = escape(runs[-1]["run_id"]) if runs else ""
    out.append(
        f'<text x="{left}" y="{height - 4}" font-size="11" fill="#666">{first}</text>'
        f'<text x="{width - 20}" y="{height - 4}" font-size="11" fill="#666" '
        f'text-anchor="end">{newest}</text></svg>'
    )
    return "".join(out)


def walk_rules_change(runs: Sequence[dict]) -> str:
    """``"1 → 2"`` when this run (the last) read with other walk rules than
    the run before (a run from before the column has rules 1), else ""."""
    if len(runs) < 2:
        return ""
    before, now = (r.get("walk_rules") or "1" for r in runs[-2:])
    return f"{before} → {now}" if before != now else ""


def _changes(changes: list[dict], cap: int, walk_change: str = "") -> list[str]:
    """This run's changes, by kind; codes_changed rows first and flagged,
    unless the walk rules changed this run (``walk_change``): then new codes
    are what the new rules give, said as such, not an integrity alarm."""
    counts = {k: 0 for k in KINDS}
    for c in changes:
        counts[c["change"]] = counts.get(c["change"], 0) + 1
    integrity = [c for c in changes if c["change"] == "changed" and c["codes_changed"]]
    head = ", ".join(f"{n:,} {k.replace('_', ' ')}" for k, n in counts.items())
    parts = [f"<h2>This run's changes ({len(changes):,})</h2><p>{head}</p>"]
    if integrity and walk_change:
        parts.append(
            f"<p><b>walk rules changed</b> ({escape(walk_change)}): "
            f"{len(integrity):,} image(s) have new pixel codes because the "
            "readers now map their axes differently (docs/reading.md); this "
            "is expected, not an integrity problem.</p>"
        )
        integrity = []
    if integrity:
        parts.append(
            f'<div class="alert"><b>{_count(len(integrity), "image")} '
            f"{'has' if len(integrity) == 1 else 'have'} new pixel codes</b> "
            "under the same name: a re-acquisition, an edit, or an "
            "integrity problem (silent corruption, a wrong copy). Check them "
            "below (catalogue/changes/, codes_changed).</div>"
        )
    if not changes:
        parts.append(
            "<p>No image was added, changed, touched, recovered, removed or failed.</p>"
        )
        return parts
    order = {k: i for i, k in enumerate(KINDS)}
    ranked = sorted(
        changes,
        key=lambda c: (
            not (c["change"] == "changed" and c["codes_changed"]),
            order.get(c["change"], 9),
            c["root"] or "",
            c["path"] or "",
        ),
    )
    parts.append(
        "<table class=list><tr><th>change</th><th>path</th><th>codes</th>"
        "<th>detail</th></tr>"
    )
    for c in ranked[:cap]:
        flag = c["change"] == "changed" and c["codes_changed"] and not walk_change
        if c["change"] == "failed":
            detail = f"new failure: {c['error'] or ''}"
        elif c["change"] == "chunks_absent":
            detail = "same codes; the number of chunks absent from the store changed"
        elif c["change"] == "still_failing":
            since = c.get("failing_since") or "an earlier run"
            detail = f"first failed in run {since}, still failing: {c['error'] or ''}"
        elif c["change"] == "recovered":
            detail = f"readable again: {c['iscc_code'] or '—'}"
        elif c["change"] in ("changed", "touched"):
            detail = f"{c['previous_iscc_code'] or '—'} → {c['iscc_code'] or '—'}"
        else:
            detail = c["iscc_code"] or c["previous_iscc_code"] or ""
        codes = "CHANGED" if flag else ("same" if c["change"] == "touched" else "")
        if walk_change and c["change"] == "changed" and c["codes_changed"]:
            codes = "walk rules changed"
        planes = c.get("planes_changed") if c["change"] == "changed" else None
        where = f"<br>{escape(planes)}" if planes else ""  # which planes
        parts.append(
            f'<tr class="{"integrity" if flag else ""}">'
            f'<td><span class="kind {escape(c["change"])}">{escape(c["change"])}'
            f"</span></td><td>{escape(c['root'] or '')}:{escape(c['path'] or '')}</td>"
            f"<td>{codes}</td><td><code>{escape(detail)}</code>{where}</td></tr>"
        )
    parts.append("</table>")
    parts.append(_more(min(cap, len(ranked)), len(ranked), "catalogue/changes/"))
    return parts


def _absent_chunks(scenes: list[dict], cap: int) -> list[str]:
    """Scenes read with chunks absent from their zarr store (as the fill
    value, the zarr spec's meaning): not errors, but a partial copy looks the
    same, so they are listed apart."""
    found = [s for s in scenes if s.get("chunks_absent")]
    if not found:
        return []
    found.sort(key=lambda s: (-s["chunks_absent"], s["path"], s["scene_index"]))
    parts = [
        f"<h2>Scenes with absent chunks ({len(found):,})</h2>"
        "<p>Read as the fill value (writers leave out all-fill chunks by "
        "default); a partial copy looks the same. limits.missing_chunks: error "
        "refuses them.</p><table class=list><tr><th>path</th><th>scene</th>"
        "<th>chunks absent</th></tr>"
    ]
    for s in found[:cap]:
        parts.append(
            f"<tr><td>{escape(s['path'] or '')}</td><td>{s['scene_index']}</td>"
            f"<td>{s['chunks_absent']:,}</td></tr>"
        )
    parts.append("</table>")
    parts.append(_more(min(cap, len(found)), len(found), "catalogue/scenes/"))
    return parts


def failing_images(catalogue_dir: str | os.PathLike) -> tuple[int, int]:
    """Images with a row in ``errors``: those that failed, and those ok but
    with a failed scene (a plate's field), so the summary, the report and
    the failure lines count the same images."""
    import pyarrow.compute as pc

    from biocodes.repository.tables import read_catalogue_table

    out = Path(catalogue_dir)
    ids = pc.unique(read_catalogue_table(out, "errors", ["image_id"])["image_id"])
    mine = read_catalogue_table(
        out,
        "images",
        ["image_id", "status"],
        pc.field("image_id").isin(ids),
    )
    failed = int(pc.sum(pc.equal(mine["status"], "error")).as_py() or 0)
    partial = int(pc.sum(pc.equal(mine["status"], "ok")).as_py() or 0)
    return failed, partial


def _failure_line(e: dict) -> str:
    """One failure: the path (and scene), the cause in words."""
    scene = "" if e.get("scene_index") is None else f" (scene {e['scene_index']})"
    why = short_cause(e["message"], e["path"])
    return f"<div>{escape(e['path'] or '')}{scene}: <code>{escape(why)}</code></div>"


def _failures(errors: list[dict], per_type: int, partial: int = 0) -> list[str]:
    """Failures grouped by error type, most frequent first, a few examples
    each (the cause in words; the full message in catalogue/errors/). The heading
    counts images, as the summary does: ``partial`` of them are ok but with a
    failed scene (a plate's field), the others failed."""
    images = len({e["image_id"] for e in errors})
    partial = min(partial, images)
    failed = images - partial
    what = f"{images:,} image{'' if images == 1 else 's'}"
    if partial:
        what += f": {failed:,} failed, {partial:,} ok but with a failed scene"
    parts = [f'<h2 class="{"bad" if errors else "ok"}">Failures ({what})</h2>']
    if not errors:
        return [*parts, "<p>None.</p>"]
    groups: dict[str, list[dict]] = {}
    for e in errors:
        groups.setdefault(e["error_type"] or "error", []).append(e)
    parts.append(
        "<table class=list><tr><th>type</th><th>images</th><th>stage</th>"
        "<th>examples</th></tr>"
    )
    for kind, items in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        items.sort(key=lambda e: e["path"] or "")
        stages = ", ".join(sorted({e["stage"] or "" for e in items}))
        examples = "".join(_failure_line(e) for e in items[:per_type])
        if len(items) > per_type:
            examples += (
                f'<div class="more">… and {len(items) - per_type:,} more '
                "in catalogue/errors/</div>"
            )
        parts.append(
            f"<tr><td><b>{escape(kind)}</b></td><td>{len(items):,}</td>"
            f"<td>{escape(stages)}</td><td>{examples}</td></tr>"
        )
    parts.append("</table>")
    return parts


def _duplicates(
    dups: list[dict],
    thumbs: dict[tuple, str],
    groups_cap: int,
    members_cap: int,
    embed: Callable = _link,
) -> list[str]:
    """Exact and near duplicate groups, each member with its first thumbnail."""
    by_kind: dict[str, dict[str, list[dict]]] = {}
    for d in dups:
        by_kind.setdefault(d["kind"], {}).setdefault(d["group_id"], []).append(d)
    total = sum(len(g) for g in by_kind.values())
    parts = [f"<h2>Duplicates ({_count(total, 'group')})</h2>"]
    if not by_kind:
        return [*parts, "<p>No scene appears in more than one file.</p>"]
    titles = {
        "exact": "identical pixels (same scene ISCC-SUM)",
        "near_data": "near by Data-Code",
        "near_mixed": "look alike (ISCC-MIXED)",
    }
    for kind in sorted(by_kind, key=lambda k: (k != "exact", k)):
        groups = by_kind[kind]
        ranked = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        parts.append(
            f"<h3>{escape(kind)}: {escape(titles.get(kind, kind))} "
            f"({_count(len(groups), 'group')})</h3>"
        )
        for _gid, members in ranked[:groups_cap]:
            cells = []
            for m in members[:members_cap]:
                thumb = thumbs.get((m["image_id"], m["scene_index"]))
                where = f"{m['path']}#scene{m['scene_index']}"
                pic = (
                    _img(embed(thumb, 128), where)
                    if thumb
                    else '<div class="noimg">—</div>'
                )
                dist = f" · {m['distance']} bits" if m["distance"] else ""
                cells.append(
                    f'<div class="member">{pic}{escape(where)}<br>'
                    f"{escape(m['format'] or '')}{dist}</div>"
                )
            left = len(members) - members_cap
            if left > 0:
                cells.append(f'<div class="member more">… {left:,} more</div>')
            parts.append(
                f'<div class="group"><code>{escape(members[0]["code"] or "")}</code>'
                f' · {len(members):,} scenes<div class="members">{"".join(cells)}'
                "</div></div>"
            )
        parts.append(
            _more(min(groups_cap, len(ranked)), len(ranked), "catalogue/duplicates/")
        )
    return parts


def render(
    catalogue_dir: str | os.PathLike,
    max_scenes: int = 500,
    max_list: int = 200,
    max_groups: int = 30,
    embed_budget: int = EMBED_BUDGET,
    embed: Embedder | None = None,
) -> str:
    """The report page for a catalogue, as a string. ``max_scenes`` caps the
    grid, ``max_list`` the changes table, ``max_groups`` the duplicate groups
    shown per kind; the page says what each left out. Thumbnails are
    embedded (see :class:`Embedder`) up to ``embed_budget`` bytes, by
    ``embed`` if given."""
    import pyarrow.compute as pc

    from biocodes.repository.tables import read_catalogue, read_catalogue_table

    def rows(name: str) -> list[dict]:
        return read_catalogue(catalogue_dir, name)

    runs = rows("runs")
    run = runs[-1]
    errors = rows("errors")
    if embed is None:
        embed = Embedder(_results_dir(catalogue_dir), embed_budget)
    # a plate's failed field has no pixels to show (it is listed in errors),
    # a removed image none either; of the rest only the rows shown become
    # Python objects: the grid's first max_scenes and those with absent chunks
    shown, total, absent = _shown_scenes(catalogue_dir, max_scenes)
    dups = rows("duplicates")
    ids = {s["image_id"] for s in shown} | {d["image_id"] for d in dups}
    by_scene: dict[tuple, list[dict]] = {}
    for v in read_catalogue_table(
        catalogue_dir,
        "views",
        ["image_id", "scene_index", "strategy", "iscc_image", "thumbnail"],
        pc.field("image_id").isin(sorted(ids)),
    ).to_pylist():
        by_scene.setdefault((v["image_id"], v["scene_index"]), []).append(v)
    thumbs = {
        key: next((v["thumbnail"] for v in items if v.get("thumbnail")), None)
        for key, items in by_scene.items()
    }
    changes = read_catalogue_table(
        catalogue_dir, "changes", filter=pc.field("run_id") == run["run_id"]
    ).to_pylist()
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>biocodes report {escape(run['run_id'])}</title>",
        f"<style>{CSS}</style><script>{SCRIPT}</script></head><body>",
        f"<h1>biocodes report · run {escape(run['run_id'])}</h1>",
        *_summary(run),
        f"<h2>Run history (last {min(len(runs), 60)} of {len(runs)} runs)</h2>",
        history_svg(runs),
        *_changes(changes, max_list, walk_rules_change(runs)),
        *_failures(errors, per_type=5, partial=failing_images(catalogue_dir)[1]),
        *_absent_chunks(absent, max_list),
        *_duplicates(dups, thumbs, max_groups, 8, embed),
    ]
    more = f" (first {len(shown)} of {total})" if len(shown) < total else ""
    cards = [
        _card(s, by_scene.get((s["image_id"], s["scene_index"]), []), embed)
        for s in shown
    ]
    parts += [
        f"<h2>Scenes{more}</h2>",
        embed.note(),
        "<div class=grid>",
        *cards,
        "</div></body></html>",
    ]
    return "\n".join(p for p in parts if p)


#: the scenes columns the report shows
SCENE_COLUMNS = (
    "image_id",
    "path",
    "scene_index",
    "scene_name",
    "size_t",
    "size_c",
    "size_z",
    "size_y",
    "size_x",
    "dtype",
    "iscc_code",
    "iscc_mixed",
    "chunks_absent",
)


def _shown_scenes(
    catalogue_dir: str | os.PathLike, max_scenes: int
) -> tuple[list[dict], int, list[dict]]:
    """The grid's scenes (the first ``max_scenes`` by path and scene), how
    many there are, and the scenes with absent chunks: sorted and filtered
    in Arrow, so a catalogue of millions of scenes becomes a few hundred
    Python rows, not every scene."""
    import pyarrow.compute as pc

    from biocodes.repository.tables import read_catalogue_table

    listed = ~pc.field("status").isin(["error", "removed"])
    table = read_catalogue_table(
        catalogue_dir, "scenes", [*SCENE_COLUMNS, "status"], listed
    ).drop_columns(["status"])
    # stable, as the sort of Python rows was: equal keys keep the files' order
    order = pc.sort_indices(
        table.select(["path", "scene_index"]),
        [("path", "ascending"), ("scene_index", "ascending")],
    )
    shown = table.take(order[:max_scenes])
    absent = table.filter(pc.fill_null(pc.greater(table["chunks_absent"], 0), False))
    return shown.to_pylist(), table.num_rows, absent.to_pylist()


def _results_dir(catalogue_dir: str | os.PathLike) -> Path:
    """The folder thumbnail paths are relative to: the catalogue's parent
    (results/catalogue is a link into results/catalogue.versions)."""
    return Path(os.path.abspath(catalogue_dir)).parent


def write_report(
    catalogue_dir: str | os.PathLike, out: str | os.PathLike, max_scenes: int = 500
) -> Path:
    """Write the report page atomically. Thumbnail paths in the catalogue are
    relative to the results directory, so ``out`` belongs there. The
    thumbnails' encodings are kept beside it (``.<name>.thumbnails.json``)
    for the next page: a quiet night encodes none again."""
    from biocodes.infra.atomic import atomic_path

    out = Path(out)
    kept = out.with_name(f".{out.name}.thumbnails.json")
    try:
        known = json.loads(kept.read_text())
    except (OSError, ValueError):
        known = {}
    if not isinstance(known, dict):
        known = {}
    embed = Embedder(_results_dir(catalogue_dir), EMBED_BUDGET, known)
    with atomic_path(out) as tmp:
        tmp.write_text(render(catalogue_dir, max_scenes, embed=embed), encoding="utf-8")
    with atomic_path(kept) as tmp:
        tmp.write_text(json.dumps(embed.encoded()), encoding="ascii")
    return out
