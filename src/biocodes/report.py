"""An HTML page about one catalogue: the last run, a grid of scenes, the failures.

The page is plain HTML with inline CSS and no external resources, written next
to the catalogue so that thumbnail paths (relative to the results directory)
resolve. Every value from the repository (file names, messages) is escaped:
a file name must never become markup.
"""

from __future__ import annotations

import json
import os
from html import escape
from pathlib import Path
from urllib.parse import quote

CSS = """
body{font:14px system-ui,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{font-size:22px;margin:0 0 8px} h2{font-size:17px;margin:28px 0 8px}
.summary td{padding:2px 12px 2px 0}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:12px}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px}
.card img{width:100%;height:180px;object-fit:contain;background:#111;display:block}
.noimg{height:180px;background:#eee;text-align:center;line-height:180px}
.path{font-weight:600;word-break:break-all;margin-top:6px}
code{font-size:11px;word-break:break-all;color:#444}
.views{display:flex;gap:3px;margin-top:4px}.views img{width:40px;height:40px}
table.errors{border-collapse:collapse;background:#fff}
table.errors td,table.errors th{border:1px solid #ddd;padding:4px 8px;text-align:left}
.ok{color:#176f2c}.bad{color:#a01616}
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


def _img(src: str, alt: str, cls: str = "") -> str:
    return f'<img src="{quote(src)}" alt="{escape(alt)}" class="{cls}" loading="eager">'


def _card(scene: dict, views: list[dict]) -> str:
    title = f"{scene['path']} · scene {scene['scene_index']}"
    first = next((v for v in views if v.get("thumbnail")), None)
    picture = (
        _img(first["thumbnail"], title) if first else '<div class="noimg">no view</div>'
    )
    dims = "×".join(
        str(scene[k]) for k in ("size_t", "size_c", "size_z", "size_y", "size_x")
    )
    small = "".join(
        _img(v["thumbnail"], f"{v['strategy']} {v['iscc_image']}")
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


def render(catalogue_dir: str | os.PathLike, max_scenes: int = 500) -> str:
    """The report page for a catalogue, as a string."""
    from biocodes.catalogue import read_catalogue

    def rows(name: str) -> list[dict]:
        return read_catalogue(catalogue_dir, name)

    run = rows("runs")[-1]
    errors = rows("errors")
    # a plate's failed field has no pixels to show: it is listed in errors
    scenes = [s for s in rows("scenes") if s["status"] != "error"]
    by_scene: dict[tuple, list[dict]] = {}
    for v in rows("views"):
        by_scene.setdefault((v["image_id"], v["scene_index"]), []).append(v)
    scenes.sort(key=lambda s: (s["path"], s["scene_index"]))
    shown = scenes[:max_scenes]
    versions = json.loads(run["versions"])
    summary = [
        ("run", run["run_id"]),
        ("started / finished", f"{run['started']} / {run['finished']}"),
        (
            "images",
            f"{run['images']} ({run['images_ok']} ok, {run['images_error']} failed)",
        ),
        ("scenes", run["scenes"]),
        ("pixels hashed", f"{run['bytes_hashed'] / 1e6:,.1f} MB"),
        ("IMAGEWALK", run["imagewalk_spec"]),
        ("config sha256", run["config_sha256"]),
        ("versions", ", ".join(f"{k} {v}" for k, v in versions.items())),
    ]
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>biocodes report {escape(run['run_id'])}</title>",
        f"<style>{CSS}</style><script>{SCRIPT}</script></head><body>",
        "<h1>biocodes report</h1><table class=summary>",
        *(f"<tr><td>{k}</td><td>{escape(str(v))}</td></tr>" for k, v in summary),
        "</table>",
        f'<h2 class="{"bad" if errors else "ok"}">Failures ({len(errors)})</h2>',
    ]
    if errors:
        parts.append(
            "<table class=errors><tr><th>path</th><th>scene</th><th>stage</th>"
            "<th>type</th><th>message</th></tr>"
        )
        parts += [
            f"<tr><td>{escape(e['path'])}</td><td>{e['scene_index'] or ''}</td>"
            f"<td>{escape(e['stage'] or '')}</td><td>{escape(e['error_type'] or '')}"
            f"</td><td>{escape(e['message'] or '')}</td></tr>"
            for e in errors
        ]
        parts.append("</table>")
    else:
        parts.append("<p>None.</p>")
    more = f" (first {len(shown)} of {len(scenes)})" if len(shown) < len(scenes) else ""
    parts += [
        f"<h2>Scenes{more}</h2><div class=grid>",
        *(_card(s, by_scene.get((s["image_id"], s["scene_index"]), [])) for s in shown),
        "</div></body></html>",
    ]
    return "\n".join(parts)


def write_report(
    catalogue_dir: str | os.PathLike, out: str | os.PathLike, max_scenes: int = 500
) -> Path:
    """Write the report page atomically. Thumbnail paths in the catalogue are
    relative to the results directory, so ``out`` belongs there."""
    from biocodes.atomic import atomic_path

    with atomic_path(out) as tmp:
        tmp.write_text(render(catalogue_dir, max_scenes), encoding="utf-8")
    return Path(out)
