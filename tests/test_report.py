"""The HTML report: names from the repository are text, never markup."""

import json

from biocodes.catalogue import TABLES, to_table, write_atomic
from biocodes.report import render, write_report

EVIL = 'x/<img src=x onerror="alert(1)">&.tif'


def catalogue(tmp_path, scenes=3):
    rows = {name: [] for name in TABLES}
    rows["runs"].append(
        {
            "run_id": "r1",
            "started": "s",
            "finished": "f",
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
