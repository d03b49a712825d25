"""What the commands print, for a person: check reads back what biocode
printed escaped; similar and verify refuse a wrong argument in one line and
say when nothing matched; a file that is not an image says so."""

import os

import numpy as np
from conftest import run_cli

from biocodes import synth


def picture(seed):
    return np.random.default_rng(seed).integers(0, 255, (16, 16), dtype=np.uint8)


def test_check_reads_back_names_biocode_printed_escaped(tmp_path):
    latin = os.fsdecode(str(tmp_path).encode() + b"/caf\xe9.png")
    newline = str(tmp_path / "two\nlines.png")
    for i, name in enumerate((latin, newline)):
        synth.write_png(name, picture(i))
    for flag in ([], ["--json"]):
        printed = run_cli("biocode", *flag, latin, newline)
        assert printed.returncode == 0, printed.stderr
        codes = tmp_path / "codes.txt"
        codes.write_text(printed.stdout)
        proc = run_cli("check", codes)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.splitlines() == [
            f"{tmp_path}/caf\\xe9.png#scene0: OK",
            f"{tmp_path}/two\\nlines.png#scene0: OK",
        ]


def test_similar_and_verify_refuse_wrong_arguments_in_one_line(tmp_path):
    from catalogues import build_catalogue

    repo = tmp_path / "repo"
    repo.mkdir()
    synth.write_png(repo / "a.png", picture(1))
    cat = build_catalogue({"repo": repo}, tmp_path / "results", views=False)
    proc = run_cli("similar", "--max-distance", "-5", cat, "ISCC:EEAQ2F2XHJ5HJH6C")
    assert proc.returncode == 2 and "-5 is not in the range x>=0" in proc.stderr
    # a code without its ISCC: prefix is understood as a code
    printed = run_cli("biocode", "--json", repo / "a.png").stdout
    code = __import__("json").loads(printed)["parts"][0]["iscc_code"]
    proc = run_cli("similar", cat, code.removeprefix("ISCC:"))
    assert proc.returncode == 0, proc.stderr
    assert "a.png#scene0" in proc.stdout
    # neither a file nor a code: one line
    proc = run_cli("similar", cat, "nosuchfile.tif")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "biocodes: nosuchfile.tif: no such file, and not an ISCC code "
        "(a code looks like ISCC:KACT...)"
    ]
    # nothing matched: it says so
    synth.write_png(tmp_path / "other.png", picture(2))
    proc = run_cli("similar", cat, tmp_path / "other.png")
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith("biocodes: nothing in the catalogue within")
    # verify: a directory that is not there, a label the catalogue lacks
    proc = run_cli("verify", tmp_path / "nonexistent")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"biocodes: {tmp_path / 'nonexistent'}: not a biocodes catalogue (no "
        "images and runs tables in it or in its catalogue/)"
    ]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (repo / "bad.png").write_bytes(bad.read_bytes())
    cat = build_catalogue({"repo": repo}, tmp_path / "results2", views=False)
    proc = run_cli("verify", "--root", f"rpeo={repo}", cat)
    assert proc.returncode == 2
    assert "NOTE" not in proc.stderr
    assert len(proc.stderr.splitlines()) == 1


def test_a_text_file_is_not_an_image_format(tmp_path):
    readme = tmp_path / "README.txt"
    readme.write_text("hello\n")
    proc = run_cli("biocode", readme)
    assert proc.returncode == 1
    (line,) = proc.stderr.splitlines()
    assert "not an image format biocodes reads" in line
    assert "docs/reading.md" in line


def test_the_python_api_gives_the_cli_json_and_a_folder_per_image(tmp_path):
    import json

    import biocodes

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = synth.write_png(tmp_path / "a" / "x.png", picture(1))
    two = synth.write_png(tmp_path / "b" / "x.png", picture(2))
    line = json.loads(run_cli("biocode", "--json", one).stdout)
    assert biocodes.biocode(str(one)) == line
    assert biocodes.biocode(one)["path"] == str(one)
    out = tmp_path / "thumbs"
    views = biocodes.ViewOptions(thumbnails=str(out))
    pngs = [
        v["thumbnail"]
        for path in (one, two)
        for part in biocodes.biocode(path, views=views)["parts"]
        for v in part["views"]
    ]
    assert len(pngs) == len(set(pngs)) >= 2
    folders = {os.path.dirname(p) for p in pngs}
    assert len(folders) == 2 and all(os.path.dirname(f) == str(out) for f in folders)
    assert all(os.path.exists(p) for p in pngs)
    assert biocodes.imagecode(one, views)["path"] == str(one)
