"""The HTML report: names from the repository are text, never markup; the
morning report's sections for a repository run three times; capped at scale."""

import json
import os
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from catalogues import build_catalogue

from biocodes import synth
from biocodes.repository.report import render, write_report
from biocodes.repository.tables import TABLES, to_table, write_atomic

EVIL = 'x/<img src=x onerror="alert(1)">&.tif'


def catalogue(tmp_path, scenes=3):
    rows = {name: [] for name in TABLES}
    rows["runs"].append(
        {
            "run_id": "r1",
            "started": datetime(2026, 11, 30, 1, 0, tzinfo=UTC),
            "finished": datetime(2026, 11, 30, 1, 5, tzinfo=UTC),
            "config_sha256": "0" * 64,
            "versions": json.dumps({"biocodes": "0"}),
            "imagewalk_spec": "IMAGEWALK",
            "images": scenes,
            "images_ok": scenes,
            "images_error": 1,
            "scenes": scenes,
            "bytes_hashed": 10,
        }
    )
    for i in range(scenes):
        rows["scenes"].append(
            {"image_id": f"id{i}", "path": EVIL, "scene_index": i, "dtype": "uint8"}
            | {k: 1 for k in ("size_t", "size_c", "size_z", "size_y", "size_x")}
        )
        rows["views"].append(
            {
                "image_id": f"id{i}",
                "scene_index": i,
                "view_index": 0,
                "strategy": "mip",
                "iscc_image": "ISCC:EEA",
                "thumbnail": f"thumbnails/0/id{i}/a b#.png",
            }
        )
    rows["errors"].append(
        {"image_id": "e", "path": EVIL, "stage": "read", "message": "<b>bad</b>"}
    )
    out = tmp_path / "catalogue"
    for name, items in rows.items():
        write_atomic(to_table(name, items), out / f"{name}.parquet")
    return out


def test_names_and_messages_are_escaped(tmp_path):
    html = render(catalogue(tmp_path))
    assert "<img src=x" not in html and "<b>bad</b>" not in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;.tif" in html
    assert 'src="thumbnails/0/id0/a%20b%23.png"' in html  # URL-quoted


def test_grid_is_capped_and_says_so(tmp_path):
    page = write_report(catalogue(tmp_path), tmp_path / "report.html", max_scenes=2)
    html = page.read_text()
    assert "Scenes (first 2 of 3)" in html
    assert html.count('class="card"') == 2
    assert not list(tmp_path.glob(".*.tmp"))


def scene(seed, shape=(1, 2, 3, 48, 64)):
    return synth.structured_scene(shape, "uint16", seed=seed)


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory):
    """A repository catalogued three times with a day's changes in between."""
    tmp = tmp_path_factory.mktemp("morning")
    repo, results = tmp / "repo", tmp / "results"
    repo.mkdir()
    synth.write_ome_tiff(repo / "a.ome.tif", scene(1))
    synth.write_ome_zarr(repo / "a-copy.ome.zarr", scene(1))  # exact duplicate
    synth.write_ome_tiff(repo / "a-crop.ome.tif", scene(1)[..., 2:-2, 2:-2])
    synth.write_ome_tiff(repo / "b.ome.tif", scene(2))
    synth.write_tiff(repo / "gone.tif", scene(3)[0, 0])
    data = synth.write_ome_tiff(repo / "cut.ome.tif", scene(4)).read_bytes()
    (repo / "cut.ome.tif").write_bytes(data[: len(data) // 2])
    build_catalogue({"repo": repo}, results)
    # day 2: one added, one removed, one not an image at all
    synth.write_ome_tiff(repo / "new.ome.tif", scene(5))
    (repo / "gone.tif").unlink()
    (repo / "notes.tif").write_text("not a TIFF")
    build_catalogue({"repo": repo}, results)
    # day 3: pixels changed under a kept name, one file touched, one added
    synth.write_ome_tiff(repo / "b.ome.tif", scene(6))
    st = os.stat(repo / "new.ome.tif")
    os.utime(repo / "new.ome.tif", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    synth.write_ome_tiff(repo / "late.ome.tif", scene(7))
    cat = build_catalogue({"repo": repo}, results)
    page = write_report(cat, results / "report.html")
    return tmp, page


def test_morning_report_sections(three_runs):
    from browser import dump_dom

    _, page = three_runs
    dom = dump_dom(page)
    # changed, 2 still failing, added, touched
    assert "This run's changes (5)" in dom
    assert '<tr class="integrity">' in dom and "repo:b.ome.tif" in dom
    assert "1 image has new pixel codes" in dom
    assert dom.count('<tr class="integrity">') == 1
    assert "2 still failing" in dom and "0 failed" in dom
    assert "first failed in run" in dom
    assert "Failures (2 images)" in dom
    for kind in ("truncated", "unreadable"):
        assert f"<td><b>{kind}</b></td><td>1</td>" in dom
    assert "exact: identical pixels" in dom and "a-copy.ome.zarr#scene0" in dom
    assert "near_mixed" in dom and "a-crop.ome.tif#scene0" in dom
    assert "Run history (last 3 of 3 runs)" in dom
    assert dom.count("<circle") == 3 * 4  # 3 runs, 4 series
    shown = int(dom.split('data-images="')[1].split('"')[0])
    loaded = int(dom.split('data-loaded="')[1].split('"')[0])
    assert shown > 10 and loaded == shown


def test_morning_report_screenshot(three_runs):
    """On screen: the history plot's lines, the flagged change, thumbnails."""
    from browser import screenshot
    from PIL import Image

    tmp, page = three_runs
    png = screenshot(page, tmp / "report.png", width=1280, height=3200)
    pixels = np.asarray(Image.open(png).convert("RGB")).astype(int)

    def share(rgb, tol=12):
        return (np.abs(pixels - np.array(rgb)).max(axis=2) <= tol).mean()

    assert share((0x1F, 0x5F, 0xBF)) > 1e-4  # images line
    assert share((0xD6, 0x20, 0x20)) > 1e-4  # failures line
    assert share((0x8A, 0x3F, 0xFC)) > 1e-4  # pixels-read line
    assert share((0xFF, 0xD6, 0xD6)) > 1e-3  # the integrity flag
    assert (pixels.max(axis=2) < 40).mean() > 0.02  # thumbnails' dark backgrounds


def test_report_copied_alone_shows_its_thumbnails(three_runs, tmp_path):
    """Thumbnails are embedded: the page e-mailed or copied elsewhere, away
    from results/thumbnails, still shows them (headless Chromium)."""
    import shutil

    from browser import dump_dom, screenshot
    from PIL import Image

    _, page = three_runs
    alone = tmp_path / "elsewhere" / "report.html"
    alone.parent.mkdir()
    shutil.copy(page, alone)
    assert not (alone.parent / "thumbnails").exists()
    dom = dump_dom(alone)
    shown = int(dom.split('data-images="')[1].split('"')[0])
    loaded = int(dom.split('data-loaded="')[1].split('"')[0])
    assert shown > 10 and loaded == shown
    png = screenshot(alone, tmp_path / "alone.png", width=1280, height=3200)
    pixels = np.asarray(Image.open(png).convert("RGB")).astype(int)
    # the cards' pictures: structured content, not only black boxes
    dark = (pixels.max(axis=2) < 40).mean()
    bright = (pixels.min(axis=2) > 200).mean()
    assert dark > 0.02 and bright > 0.05
    cards = pixels[pixels.max(axis=2) >= 40]
    assert len(np.unique(cards // 16, axis=0)) > 50  # many tones: pictures


def test_a_thumbnail_past_the_budget_is_a_link_and_the_page_says_so(tmp_path):
    from biocodes.repository.report import render

    cat = catalogue(tmp_path)
    for i in range(3):
        thumb = tmp_path / f"thumbnails/0/id{i}/a b#.png"
        thumb.parent.mkdir(parents=True, exist_ok=True)
        synth.write_png(thumb, np.full((64, 64), 100 + i, np.uint8))
    html = render(cat, embed_budget=1)
    assert html.count("data:image/jpeg") == 1  # the first, then the budget
    assert "2 thumbnails are links to thumbnails/" in html
    assert html.count("a%20b%23.png") == 2


def big_catalogue(tmp_path, n=100_000):
    """A synthetic catalogue of ``n`` images (one scene and view each), 3% failed,
    a busy night of changes, 5,000 duplicate pairs and 100 runs."""
    rng = np.random.default_rng(1)
    rows = {name: [] for name in TABLES}
    start = datetime(2026, 8, 1, tzinfo=UTC)
    for r in range(100):
        rows["runs"].append(
            {
                "run_id": f"r{r:03d}",
                "started": start + timedelta(days=r),
                "finished": start + timedelta(days=r, hours=1),
                "config_sha256": "0" * 64,
                "versions": json.dumps({"biocodes": "0"}),
                "imagewalk_spec": "IMAGEWALK",
                "images": n,
                "images_ok": n - 3000,
                "images_error": 3000,
                "scenes": n,
                "bytes_hashed": int(rng.integers(0, 10**11)),
            }
        )
    types = ["truncated", "unreadable", "not_found", "empty", "unsupported"]
    for i in range(n):
        iid = f"{i:016x}"
        path = f"plate{i // 1000:03d}/well{i % 1000:04d}.ome.tif"
        rows["scenes"].append(
            {
                "image_id": iid,
                "path": path,
                "scene_index": 0,
                "dtype": "uint16",
                "iscc_code": f"ISCC:{i:020d}",
                "status": "ok",
            }
            | {k: 1 for k in ("size_t", "size_c", "size_z", "size_y", "size_x")}
        )
        rows["views"].append(
            {
                "image_id": iid,
                "scene_index": 0,
                "view_index": 0,
                "strategy": "composite",
                "iscc_image": "ISCC:EEA",
                "thumbnail": f"thumbnails/{iid[:2]}/{iid}/scene0.view0.png",
            }
        )
        if i % 33 == 0:
            rows["errors"].append(
                {
                    "image_id": iid,
                    "path": path,
                    "stage": "read",
                    "error_type": types[i % 5],
                    "message": f"{path}: bad",
                }
            )
        if i % 5 == 0:
            rows["changes"].append(
                {
                    "run_id": "r099",
                    "image_id": iid,
                    "root": "lab",
                    "path": path,
                    "change": ["added", "changed", "touched", "removed"][i % 4],
                    "codes_changed": i % 4 == 1,
                }
            )
        if i % 20 == 0:
            for member in (i, i + 1):
                rows["duplicates"].append(
                    {
                        "kind": "exact",
                        "group_id": f"exact:{i}",
                        "image_id": f"{member:016x}",
                        "path": f"copy{member}.tif",
                        "scene_index": 0,
                        "code": "ISCC:X",
                        "distance": 0,
                    }
                )
    out = tmp_path / "catalogue"
    for name, items in rows.items():
        write_atomic(to_table(name, items), out / f"{name}.parquet")
    # real thumbnails (256 px, as the views write them) for what the page
    # shows: the first 500 cards and the duplicate groups' members
    shown = {i for i in range(500)} | {
        m
        for g in sorted(f"exact:{i}" for i in range(0, n, 20))[:30]
        for m in (int(g[6:]), int(g[6:]) + 1)
    }
    for i in sorted(shown):
        iid = f"{i:016x}"
        thumb = tmp_path / f"thumbnails/{iid[:2]}/{iid}/scene0.view0.png"
        thumb.parent.mkdir(parents=True, exist_ok=True)
        pixels = synth.structured_scene((1, 1, 1, 256, 256), "uint8", seed=i)[0, 0, 0]
        synth.write_png(thumb, pixels)
    return out


@pytest.mark.slow
def test_report_stays_readable_at_100k_images(tmp_path):
    page = write_report(big_catalogue(tmp_path), tmp_path / "report.html")
    html = page.read_text()
    # every picture shown is embedded, and the page stays a few MB
    embedded = html.count('src="data:image/jpeg;base64,')
    assert embedded == 500 + 60 and "are links to" not in html, embedded
    print(f"report at 100k images: {len(html) / 1e6:.1f} MB, {embedded} pictures")
    assert len(html) < 8_000_000, len(html)
    assert "Scenes (first 500 of 100000)" in html
    assert "This run's changes (20,000)" in html
    assert "… and 19,800 more in catalogue/changes/" in html
    assert "Failures (3,031 images)" in html and html.count("in catalogue/errors/") == 5
    assert "Duplicates (5,000 groups)" in html
    assert "… and 4,970 more in catalogue/duplicates/" in html
    assert "Run history (last 60 of 100 runs)" in html
    assert html.count("<circle") == 60 * 4
    assert html.count("<tr") < 400


def test_the_report_reads_into_python_only_the_rows_it_shows(tmp_path, monkeypatch):
    """The grid's scenes are sorted and cut in Arrow, the views are read for
    the cards and duplicates shown, the changes for this run: a catalogue
    of millions of scenes is not read into Python objects to show 500. The
    page is the one the whole tables gave."""
    from biocodes.repository import tables

    rows = {name: [] for name in TABLES}
    for r in ("r1", "r2"):
        rows["runs"].append(
            {
                "run_id": r,
                "started": datetime(2026, 11, 30, int(r[1]), tzinfo=UTC),
                "finished": datetime(2026, 11, 30, int(r[1]), 5, tzinfo=UTC),
                "config_sha256": "0" * 64,
                "versions": json.dumps({"biocodes": "0"}),
                "imagewalk_spec": "IMAGEWALK",
            }
        )
    statuses = ["ok", "error", "removed", None]
    for i in reversed(range(40)):  # written out of order
        iid = f"id{i:02d}"
        rows["scenes"].append(
            {
                "image_id": iid,
                "path": f"p{i % 20:02d}.tif",  # two scenes per path
                "scene_index": i // 20,
                "dtype": "uint8",
                "status": statuses[i % 4],
                "iscc_code": f"ISCC:SUM{i:02d}",
                "chunks_absent": i if i % 8 == 3 else None,
            }
            | {k: 1 for k in ("size_t", "size_c", "size_z", "size_y", "size_x")}
        )
        rows["views"].append(
            {
                "image_id": iid,
                "scene_index": i // 20,
                "view_index": 0,
                "strategy": "mip",
                "iscc_image": f"ISCC:VIEW{i:02d}",
            }
        )
        rows["changes"].append(
            {
                "run_id": "r1" if i % 2 else "r2",
                "image_id": iid,
                "root": "lab",
                "path": f"p{i % 20:02d}.tif",
                "change": "added" if i % 2 else "touched",
                "codes_changed": False,
            }
        )
    out = tmp_path / "catalogue"
    for name, items in rows.items():
        write_atomic(to_table(name, items), out / f"{name}.parquet")

    whole = []
    read = tables.read_catalogue

    def counting(catalogue_dir, name):
        whole.append(name)
        return read(catalogue_dir, name)

    monkeypatch.setattr(tables, "read_catalogue", counting)
    html = render(out, max_scenes=4)
    assert sorted(set(whole)) == ["duplicates", "errors", "runs"]
    # ok or unknown status: i % 4 in (0, 3), 20 scenes; the first four by
    # path and scene: p00 (id00, id20), p03 (id03, id23)
    assert "Scenes (first 4 of 20)" in html
    cards = [c.split("</div>")[0] for c in html.split('class="path">')[1:]]
    assert cards == ["p00.tif", "p00.tif", "p03.tif", "p03.tif"]
    for i in (0, 20, 3, 23):
        assert f"ISCC:SUM{i:02d}" in html and f"ISCC:VIEW{i:02d}" in html
    assert "ISCC:VIEW04" not in html and "ISCC:VIEW07" not in html
    # absent chunks: every listed scene with them (3, 11, 19, 27, 35), not
    # only those in the grid
    assert "Scenes with absent chunks (5)" in html
    # this run's changes only: r2's 20 touched
    assert "This run's changes (20)" in html and ">added<" not in html


def test_a_thumbnail_that_did_not_change_is_not_encoded_again(tmp_path, monkeypatch):
    """The next page takes the last page's encoding of a thumbnail whose
    file kept its size and mtime (a quiet night encodes none), and encodes
    one that changed; the page is the one a fresh encoding gives."""
    from biocodes.repository.report import Embedder

    cat = catalogue(tmp_path)
    thumbs = []
    for i in range(3):
        thumb = tmp_path / f"thumbnails/0/id{i}/a b#.png"
        thumb.parent.mkdir(parents=True, exist_ok=True)
        synth.write_png(thumb, np.full((64, 64), 100 + 40 * i, np.uint8))
        thumbs.append(thumb)
    first = write_report(cat, tmp_path / "report.html").read_text()
    assert first.count("data:image/jpeg") == 3

    encoded = []
    jpeg = Embedder._jpeg

    def counting(self, rel, px):
        encoded.append(rel)
        return jpeg(self, rel, px)

    monkeypatch.setattr(Embedder, "_jpeg", counting)
    again = write_report(cat, tmp_path / "report.html").read_text()
    assert encoded == [] and again == first

    synth.write_png(thumbs[1], np.full((64, 64), 7, np.uint8))
    st = thumbs[1].stat()
    os.utime(thumbs[1], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    changed = write_report(cat, tmp_path / "report.html").read_text()
    assert encoded == ["thumbnails/0/id1/a b#.png"]
    assert render(cat) == changed != first  # as encoded afresh
