"""Readers you can trust (issue 16): one test group per class of fault.

Each group names its class. Truth is the array a test wrote (PNGs are encoded
here by hand: zlib + CRC, so no decoder under test wrote them), turned into
codes by :func:`biocodes.synth.expected_biocode`.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile

from biocodes import biocode, synth
from biocodes.infra.errors import UnreadableError, as_biocode_error
from biocodes.sources import open_source
from biocodes.sources.base import PlaneSource, make_scene


def codes(path, **kw) -> list[str]:
    return [p["iscc_code"] for p in biocode(path, **kw)["parts"]]


def truth(yx_or_yxs: np.ndarray) -> list[str]:
    """The code of one plane (Y, X) or (Y, X, S), samples as channels."""
    return synth.expected_biocode(yx_or_yxs[None, None, None])


# -- class 1: a reader that converts on decode ------------------------------

COLOR = {"gray": 0, "rgb": 2, "palette": 3, "la": 4, "rgba": 6}
SAMPLES = {"gray": 1, "rgb": 3, "palette": 1, "la": 2, "rgba": 4}


def encode_png(
    path: Path, a: np.ndarray, depth: int, kind: str, trns: bytes | None = None
) -> Path:
    """A PNG of ``a`` (Y, X) or (Y, X, S) at ``depth`` bits, written by hand
    (PNG spec §11: IHDR, PLTE, tRNS, IDAT with filter 0 rows, IEND)."""
    y, x = a.shape[:2]
    flat = a.reshape(y, -1)
    if depth == 16:
        rows = [r.astype(">u2").tobytes() for r in flat]
    elif depth == 8:
        rows = [r.astype("u1").tobytes() for r in flat]
    else:  # pack the samples MSB first, each row padded to a byte
        shifts = np.arange(depth - 1, -1, -1)
        rows = [
            np.packbits(((r[:, None] >> shifts) & 1).ravel().astype(np.uint8)).tobytes()
            for r in flat.astype(np.uint8)
        ]
    raw = b"".join(b"\x00" + r for r in rows)

    def chunk(tag: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(tag + body))
        return struct.pack(">I", len(body)) + tag + body + crc

    ihdr = struct.pack(">IIBBBBB", x, y, depth, COLOR[kind], 0, 0, 0)
    body = chunk(b"IHDR", ihdr)
    if kind == "palette":
        colours = np.arange(2**depth * 3, dtype=np.uint32) * 37 % 256
        body += chunk(b"PLTE", colours.astype(np.uint8).tobytes())
    if trns is not None:
        body += chunk(b"tRNS", trns)
    body += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


PNG_CASES = [
    (kind, depth)
    for kind, depths in {
        "gray": (1, 2, 4, 8, 16),
        "palette": (1, 2, 4, 8),
        "la": (8, 16),
        "rgb": (8, 16),
        "rgba": (8, 16),
    }.items()
    for depth in depths
]


@pytest.mark.parametrize(("kind", "depth"), PNG_CASES)
def test_png_is_hashed_as_its_stored_samples(tmp_path, kind, depth):
    """Class: a reader that converts on decode. Pillow gives 16-bit RGB as
    8-bit, gray+alpha as RGBA, palettes as RGB, 2/4-bit gray scaled to 255."""
    rng = np.random.default_rng(depth)
    shape = (9, 13) if SAMPLES[kind] == 1 else (9, 13, SAMPLES[kind])
    dtype = np.uint16 if depth == 16 else np.uint8
    a = rng.integers(0, 2**depth, shape, endpoint=False).astype(dtype)
    path = encode_png(tmp_path / f"{kind}{depth}.png", a, depth, kind)
    result = biocode(path)
    (part,) = result["parts"]
    assert part["dims"]["C"] == SAMPLES[kind]
    assert part["dtype"] == np.dtype(dtype).name
    assert [part["iscc_code"]] == truth(a)
    # the TIFF with the same samples has the same code
    if depth >= 8:
        twin = tmp_path / f"{kind}{depth}.tif"
        tifffile.imwrite(twin, a, photometric="minisblack", planarconfig="contig")
        assert codes(twin) == truth(a)


@pytest.mark.parametrize("kind", ["gray", "rgb"])
def test_png_transparency_chunk_adds_no_channel(tmp_path, kind):
    """libpng (imagecodecs) turns a tRNS chunk into an alpha channel: the
    decoder that keeps the samples is used instead."""
    rng = np.random.default_rng(5)
    shape = (7, 11) if kind == "gray" else (7, 11, 3)
    a = rng.integers(0, 256, shape).astype(np.uint8)
    trns = b"\x00\x05" if kind == "gray" else b"\x00\x01\x00\x02\x00\x03"
    path = encode_png(tmp_path / "t.png", a, 8, kind, trns=trns)
    assert codes(path) == truth(a)


def test_png_interlaced_and_the_two_decoders_agree(tmp_path):
    """Adam7 PNGs, and libpng vs pypng on the same 16-bit RGBA samples."""
    import imagecodecs
    import png

    rng = np.random.default_rng(6)
    a = rng.integers(0, 65536, (10, 14, 4)).astype(np.uint16)
    path = tmp_path / "adam7.png"
    with open(path, "wb") as f:
        png.Writer(
            14, 10, greyscale=False, alpha=True, bitdepth=16, interlace=True
        ).write(f, a.reshape(10, -1).tolist())
    assert codes(path) == truth(a)
    plain = encode_png(tmp_path / "plain.png", a, 16, "rgba")
    _, _, rows, _ = png.Reader(filename=str(plain)).read()
    by_pypng = np.vstack([np.asarray(r, np.uint16) for r in rows]).reshape(a.shape)
    assert np.array_equal(imagecodecs.png_decode(plain.read_bytes()), by_pypng)


def test_a_reader_that_adds_samples_is_caught():
    """The mechanism: every decoded plane is checked against what the file
    declared before a byte is hashed (here a reader returns RGBA for RGB)."""

    class Liar(PlaneSource):
        def __init__(self) -> None:
            super().__init__("liar.png")
            self._scenes = [make_scene("liar.png", 0, "x", {"Y": 4, "X": 5}, "u1", 3)]

        def _read_pixels(self, scene, z, channel, t):
            return np.zeros((4, 5, 4), np.uint8)

    source = Liar()
    with pytest.raises(UnreadableError, match=r"declares \(4, 5, 3\)"):
        source.read_plane(source.scenes[0], 0, 0, 0)


def test_animated_png_is_refused(tmp_path):
    a = np.arange(20, dtype=np.uint8).reshape(4, 5)
    path = encode_png(tmp_path / "a.png", a, 8, "gray")
    data = path.read_bytes()
    actl = b"acTL" + struct.pack(">II", 2, 0)
    chunk = struct.pack(">I", 8) + actl + struct.pack(">I", zlib.crc32(actl))
    path.write_bytes(data[:33] + chunk + data[33:])
    with pytest.raises(Exception, match="animated PNG"):
        biocode(path)


# -- class 7: palette images are their indices -----------------------------


def test_palette_images_are_hashed_as_indices_in_every_format(tmp_path):
    """Decision: the stored samples (indices), not the colour table."""
    from PIL import Image

    rng = np.random.default_rng(7)
    idx = rng.integers(0, 16, (12, 17)).astype(np.uint8)
    colours = [int(v) for v in np.arange(768) * 7 % 256]
    im = Image.fromarray(idx, mode="P")
    im.putpalette(colours)
    paths = [encode_png(tmp_path / "p4.png", idx, 4, "palette")]
    for name in ("p.png", "p.gif", "p.bmp", "p.tif"):
        im.save(tmp_path / name)
        paths.append(tmp_path / name)
    with tifffile.TiffFile(tmp_path / "p.tif") as tif:
        assert tif.pages[0].photometric == tifffile.PHOTOMETRIC.PALETTE
    for path in paths:
        assert codes(path) == truth(idx), path.name


def test_one_bit_samples_are_zero_and_one_in_every_format(tmp_path):
    from PIL import Image

    bits = np.random.default_rng(8).integers(0, 2, (9, 21)).astype(bool)
    paths = [encode_png(tmp_path / "b.png", bits.astype(np.uint8), 1, "gray")]
    for name in ("b.tif", "b.bmp"):
        Image.fromarray(bits).save(tmp_path / name)
        paths.append(tmp_path / name)
    zarr = synth.write_ome_zarr(
        tmp_path / "b.ome.zarr", bits.astype(np.uint8)[None, None, None], levels=1
    )
    import zarr as zarr_python

    group = zarr_python.open_group(str(zarr), mode="r+")
    group["0"] = group["0"][...].astype(bool)  # a boolean array: 0/1 bytes
    paths.append(zarr)
    for path in paths:
        assert codes(path) == truth(bits.astype(np.uint8)), path.name


def test_pillow_conversions_are_refused_not_hashed(tmp_path):
    """A 16-bit (5-6-5) BMP is widened to 8-bit RGB by Pillow."""
    y, x = 4, 6
    pixels = np.arange(y * x, dtype="<u2").reshape(y, x) * 997
    row = x * 2
    masks = struct.pack("<III", 0xF800, 0x07E0, 0x001F)
    info = struct.pack("<IiiHHIIiiII", 40, x, -y, 1, 16, 3, row * y, 0, 0, 0, 0)
    offset = 14 + len(info) + len(masks)
    head = b"BM" + struct.pack("<IHHI", offset + row * y, 0, 0, offset)
    path = tmp_path / "565.bmp"
    path.write_bytes(head + info + masks + pixels.tobytes())
    with pytest.raises(Exception, match="widens"):
        biocode(path)


# -- class 2: codec checks follow the whole codec chain ---------------------


def _zarr(path: Path, a: np.ndarray, zarr_format: int, **codecs) -> Path:
    """One OME-Zarr image (NGFF 0.5 on v3, 0.4 on v2) whose array has the
    given codec keywords of ``create_array``, in 8 x 8 chunks."""
    import zarr

    root = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    arr = root.create_array(
        "0",
        shape=a.shape,
        chunks=(1, 1, 1, 8, 8),
        dtype=a.dtype,
        fill_value=0,
        **codecs,
    )
    arr[...] = a
    names = zip("tczyx", ["time", "channel"] + ["space"] * 3)
    scale = [{"type": "scale", "scale": [1.0] * 5}]
    ms = {
        "axes": [{"name": n, "type": t} for n, t in names],
        "datasets": [{"path": "0", "coordinateTransformations": scale}],
    }
    if zarr_format == 3:
        root.attrs["ome"] = {"version": "0.5", "multiscales": [ms]}
    else:
        root.attrs["multiscales"] = [{"version": "0.4", **ms}]
    return path


def _zarr_v3(path: Path, a: np.ndarray, codecs: list) -> Path:
    return _zarr(path, a, 3, serializer=codecs[0], compressors=codecs[1:])


def _zarr_v2(path: Path, a: np.ndarray, filters: list, compressor) -> Path:
    return _zarr(path, a, 2, filters=filters, compressors=compressor)


def _chains():
    import numcodecs
    from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, ZstdCodec

    return {
        "v3-blosc": lambda p, a: _zarr_v3(p, a, [BytesCodec(), BloscCodec()]),
        "v3-blosc-crc32c": lambda p, a: _zarr_v3(
            p, a, [BytesCodec(), BloscCodec(), Crc32cCodec()]
        ),
        "v3-blosc-zstd": lambda p, a: _zarr_v3(
            p, a, [BytesCodec(), BloscCodec(), ZstdCodec()]
        ),
        "v2-blosc": lambda p, a: _zarr_v2(p, a, None, numcodecs.Blosc()),
        "v2-blosc-filter-zlib": lambda p, a: _zarr_v2(
            p, a, [numcodecs.Blosc()], numcodecs.Zlib()
        ),
        "v2-delta-blosc": lambda p, a: _zarr_v2(
            p, a, [numcodecs.Delta(dtype="<u2")], numcodecs.Blosc()
        ),
        # no compressor: the last filter's output (a blosc frame) is stored
        "v2-blosc-filter-only": lambda p, a: _zarr_v2(p, a, [numcodecs.Blosc()], None),
    }


@pytest.mark.parametrize("chain", sorted(_chains()))
def test_zarr_codec_chains_read_and_cut_chunks_fail(tmp_path, chain):
    """Class: healthy stores refused. The blosc header is checked only where
    the stored bytes are a blosc frame; a cut chunk is an error in every
    chain (blosc's header, crc32c, zstd or zlib say so), never a code."""
    a = synth.random_scene((1, 2, 1, 16, 16), "uint16", seed=11)
    good = _chains()[chain](tmp_path / "good.ome.zarr", a)
    assert codes(good) == synth.expected_biocode(a)
    cut = _chains()[chain](tmp_path / "cut.ome.zarr", a)
    chunk = max(
        (
            p
            for p in (cut / "0").rglob("*")
            if p.is_file() and not p.name.startswith((".", "zarr"))
        ),
        key=lambda p: p.stat().st_size,
    )
    chunk.write_bytes(chunk.read_bytes()[:-7])
    with pytest.raises(UnreadableError):
        biocode(cut)


# -- class 3: error types say what a user should do -------------------------


def _ome_stack(path: Path, a: np.ndarray, xml: str) -> Path:
    with tifffile.TiffWriter(path) as tw:
        for k, plane in enumerate(a):
            tw.write(plane, description=xml if k == 0 else None, metadata=None)
    return path


OME = (
    '<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/'
    'Schemas/OME/2016-06"><Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder='
    '"XYZCT" Type="uint16" SizeX="9" SizeY="7" SizeZ="{z}" SizeC="1" SizeT="1">'
    '<Channel ID="Channel:0:0" SamplesPerPixel="1"/><TiffData/></Pixels></Image></OME>'
)


def test_unparsable_ome_xml_reads_the_pages_as_a_plain_stack(tmp_path):
    """OME-XML that is not XML: the file has no OME metadata, its pages are
    read as a plain TIFF stack (as Bio-Formats does); not `truncated`."""
    a = synth.random_scene((3, 7, 9), "uint16", seed=12)
    path = _ome_stack(
        tmp_path / "bad.ome.tif", a, OME.format(z=3).replace("</Pixels>", "")
    )
    assert codes(path) == synth.expected_biocode(a[None, None])


def test_ome_xml_that_disagrees_with_the_pages_is_no_code_and_not_truncated(tmp_path):
    a = synth.random_scene((3, 7, 9), "uint16", seed=13)
    path = _ome_stack(tmp_path / "more.ome.tif", a, OME.format(z=5))
    try:
        result = biocode(path)
    except UnreadableError as err:
        assert err.kind == "unreadable"
    else:  # tifffile may read the 3 pages it has: never a 5-plane code
        assert result["parts"][0]["planes"] == 3


def test_a_readers_crash_is_unreadable_not_internal():
    """An exception escaping a reader package is the reader failing on the
    file (`unreadable`); only biocodes' own exceptions are `internal`."""
    from biocodes.sources.png import PngHeader

    with pytest.raises(Exception) as crash:
        tifffile.TiffFile(__file__)  # raises inside tifffile
    err = as_biocode_error("x.tif", crash.value)
    assert err.kind == "unreadable" and "tifffile" in str(err)
    with pytest.raises(KeyError) as bug:
        PngHeader(1, 1, 8, 99, 0, frozenset()).samples  # noqa: B018 - raises in biocodes
    assert as_biocode_error("x.png", bug.value).kind == "internal"


def test_a_bioformats_crash_is_unreadable(tmp_path):
    """Bio-Formats 7.3.1 throws ArrayIndexOutOfBoundsException on a 1-bit
    PNG written by Pillow (28 x 20): a Java exception is the reader's
    failure, not biocodes' bug."""
    from biocodes.sources import bioformats

    if bioformats.problem():
        pytest.fail(f"Bio-Formats is not set up: {bioformats.problem()}")
    from PIL import Image

    bits = np.random.default_rng(9).integers(0, 2, (20, 28)).astype(bool)
    path = tmp_path / "b.png"
    Image.fromarray(bits).save(path)  # as Pillow 13 writes it
    error = cli(path, reader="bioformats")["b.png"]["error"]
    assert error["type"] == "unreadable" and "Bio-Formats" in error["message"]


# -- class 4: unnamed axes keep the stored order ----------------------------


def test_shaped_tiff_pages_are_walked_in_stored_order(tmp_path):
    a = synth.random_scene((3, 5, 6, 7), "uint16", seed=14)
    path = tmp_path / "shaped.tif"
    tifffile.imwrite(path, a)  # {"shape": [3, 5, 6, 7]}: no axes
    with tifffile.TiffFile(path) as tif:
        assert tif.series[0].axes == "QQYX"
    assert codes(path) == synth.expected_biocode(a.reshape(1, 1, 15, 6, 7))
    # properly labelled files keep their axes (and IMAGEWALK reorders them)
    hyper = tmp_path / "hyper.tif"
    tifffile.imwrite(hyper, a[None], imagej=True, metadata={"axes": "TZCYX"})
    with open_source(hyper) as source:
        assert (source.scenes[0].size_z, source.scenes[0].size_c) == (3, 5)


# -- class 6: the content, not the name, decides what is read --------------


def test_renamed_files_give_the_same_scenes(tmp_path):
    a = synth.random_scene((2, 16, 16), "uint8", seed=15)
    tif = synth.write_tiff(tmp_path / "x.tif", a)
    png = synth.write_png(tmp_path / "x.png", a[0])
    for src, names in (
        (tif, ("x.svs", "x.tiff", "x.btf", "x.data", "t.png", "t.jpg")),
        (png, ("y.PNG", "y.img")),
    ):
        want = codes(src)
        for name in names:
            other = tmp_path / name
            other.write_bytes(src.read_bytes())
            assert codes(other) == want, name


def _write_mrc(path: Path, a: np.ndarray) -> Path:
    """An MRC2014 file of int16 (mode 1) ZYX data: 1024-byte header, then
    the data, x fastest (https://www.ccpem.ac.uk/mrc_format/mrc2014.php)."""
    z, y, x = a.shape
    head = bytearray(1024)
    struct.pack_into("<10i", head, 0, x, y, z, 1, 0, 0, 0, x, y, z)
    struct.pack_into("<6f", head, 40, x, y, z, 90, 90, 90)
    struct.pack_into("<3i", head, 64, 1, 2, 3)
    struct.pack_into("<3f", head, 76, a.min(), a.max(), a.mean())
    head[104:108], head[208:212] = b"MRCO", b"MAP "
    struct.pack_into("<i", head, 108, 20140)
    head[212:216] = bytes([0x44, 0x44, 0, 0])  # little-endian machine stamp
    path.write_bytes(bytes(head) + a.astype("<i2").tobytes())
    return path


def _need_bioformats() -> None:
    from biocodes.sources import bioformats

    if bioformats.problem():
        pytest.fail(f"Bio-Formats is not set up: {bioformats.problem()}")


def cli(*paths: Path, reader: str = "auto") -> dict[str, dict]:
    """``biocodes biocode --json`` in a subprocess, so that no JVM lives in
    the test process (as in test_bioformats.py): {file name: result}."""
    import json
    import subprocess
    import sys

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "biocodes.cli",
            "biocode",
            "--json",
            "--reader",
            reader,
            "--",
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    found = {Path(r["path"]).name: r for r in map(json.loads, proc.stdout.splitlines())}
    assert set(found) == {Path(p).name for p in paths}, proc.stderr[-2000:]
    return found


def cli_codes(result: dict) -> list[str]:
    assert "error" not in result, result
    return [p["iscc_code"] for p in result["parts"]]


def test_bioformats_suffix_list_is_the_jars():
    """biocodes.sources.bioformats.SUFFIXES equals what the jar's readers claim."""
    import subprocess
    import sys

    _need_bioformats()
    code = (
        "from biocodes.sources import bioformats; bioformats.configure();"
        "import scyjava;"
        "r = scyjava.jimport('loci.formats.ImageReader')();"
        "print('SUFFIXES', *sorted({str(s).lower() for s in r.getSuffixes()}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    from biocodes.sources.bioformats import SUFFIXES

    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("SUFFIXES ")]
    jar = {s for s in line.split()[1:] if "," not in s}  # one entry is "tif,"
    assert jar == set(SUFFIXES), proc.stderr[-2000:]


def test_every_suffix_of_a_bioformats_reader_is_read(tmp_path):
    """EMDB maps (.map), particle stacks (.mrcs), tilt series (.st, .ali) are
    MRC files: Bio-Formats' MRC reader claims them all, so they are read.
    Rows top-down, as Bio-Formats turns them (MRC's origin is the lower left,
    like DeltaVision's)."""
    _need_bioformats()
    a = synth.random_scene((3, 6, 8), "int16", seed=16)
    want = synth.expected_biocode(a[None, None, :, ::-1].copy())
    suffixes = ("mrc", "map", "mrcs", "st", "ali", "rec")
    paths = [_write_mrc(tmp_path / f"x.{suffix}", a) for suffix in suffixes]
    for name, result in cli(*paths).items():
        assert cli_codes(result) == want, name


def test_an_svs_under_any_name_has_the_scenes_bioformats_gives(tmp_path):
    """An Aperio SVS is a TIFF: read by content, the same scenes as .svs or
    .tif (baseline, label, macro: the thumbnail, a downsampled copy like the
    pyramid levels, is no scene) and the same codes as Bio-Formats."""
    _need_bioformats()
    rng = np.random.default_rng(17)
    base = rng.integers(0, 255, (256, 384, 3), dtype=np.uint8)
    aperio = "Aperio Image Library v12.0.15 \r\n"
    kw = {"photometric": "rgb", "compression": None, "metadata": None}
    svs = tmp_path / "slide.svs"
    with tifffile.TiffWriter(svs) as tw:
        tw.write(
            base, tile=(128, 128), description=aperio + "384x256 |AppMag = 20", **kw
        )
        tw.write(base[::8, ::8].copy(), description=aperio + "-> 48x32", **kw)
        tw.write(
            base[::2, ::2].copy(),
            tile=(64, 64),
            description=aperio + "-> 192x128",
            **kw,
        )
        tw.write(
            base[:50, :60].copy(), subfiletype=1, description=aperio + "label", **kw
        )
        tw.write(
            base[:80, :96].copy(), subfiletype=9, description=aperio + "macro", **kw
        )
    renamed = tmp_path / "slide.tif"
    renamed.write_bytes(svs.read_bytes())
    want = [
        synth.expected_biocode(x[None, None, None])[0]
        for x in (base, base[:50, :60], base[:80, :96])
    ]
    assert codes(svs) == codes(renamed) == want
    assert cli_codes(cli(svs, reader="bioformats")["slide.svs"]) == want


def test_a_tiff_entry_of_another_format_is_not_read_as_a_tiff(tmp_path):
    """An Olympus .vsi is a TIFF whose pixels live in .ets files: tifffile
    would hash its own pages (a thumbnail). It goes to Bio-Formats."""
    _need_bioformats()
    path = synth.write_tiff(
        tmp_path / "slide.vsi", synth.random_scene((16, 16), "uint8")
    )
    assert cli(path)["slide.vsi"].get("format") == "bioformats"


# -- class 8: lossy codecs record their decoder ----------------------------


def test_scenes_record_codec_decoder_and_lossy(tmp_path):
    from PIL import Image

    a = synth.random_scene((24, 32), "uint8", seed=18)
    Image.fromarray(a).save(tmp_path / "x.jpg", quality=90)
    tifffile.imwrite(tmp_path / "j.tif", a, compression="jpeg")
    tifffile.imwrite(tmp_path / "z.tif", a, compression="zlib")
    got = {
        name: biocode(tmp_path / name)["parts"][0]
        for name in ("x.jpg", "j.tif", "z.tif")
    }
    assert (got["x.jpg"]["codec"], got["x.jpg"]["lossy"]) == ("jpeg", True)
    assert got["x.jpg"]["decoder"].startswith("pillow ")
    assert (got["j.tif"]["codec"], got["j.tif"]["lossy"]) == ("jpeg", True)
    assert (got["z.tif"]["codec"], got["z.tif"]["lossy"]) == ("adobe_deflate", False)
    assert "imagecodecs" in got["j.tif"]["decoder"]
    zarr = synth.write_ome_zarr(tmp_path / "x.ome.zarr", a[None, None, None], levels=1)
    part = biocode(zarr)["parts"][0]
    assert part["lossy"] is False and "zarr" in part["decoder"]


def test_decoder_versions_are_part_of_the_settings_key():
    from biocodes.repository.catalogue import code_versions

    versions = code_versions()
    for name in (
        "imagecodecs",
        "pypng",
        "pillow",
        "bioio-bioformats",
        "bioformats-jar",
    ):
        assert name in versions


# -- every handed case in ../shared/cases gives its expected answer -------

CASES = Path(__file__).resolve().parents[2] / "shared" / "cases"
#: the class each handed case guards (issue 16, unless noted)
CASE_CLASSES = {
    "png-depths": "1: a reader that converts on decode",
    "zarr-blosc-checksum": "2: codec checks follow the codec chain",
    "ometiff-bad-xml": "3: error types (unparsable OME-XML is a plain stack)",
    "palette-png-tiff": "7: palette images are their indices",
    "imagej-hyperstack": "4: axes the file names are kept",
    "tiff-planar-samples": "1: samples, planar or contiguous",
    "tiff-pyramid": "6: pyramid levels are no scenes",
    "omezarr-lowdim-edges": "2: zarr layouts",
    "zarr-v3-sharding": "2: sharded chunks",
    "dv-sequence-channels": "5: native reader vs Bio-Formats (DV)",
    "ometiff-xml-layout": "3/4: OME-XML that disagrees with the pages",
    "ometiff-binaryonly": "issue 17: filesets",
    "imagej-odd-metadata": "issue 24, 1: a description the pages contradict",
    "zarr-absent-fill-chunks": "issue 24: absent chunks read as the fill value",
}
#: handed inputs whose expected answer a later decision replaced: (case,
#: input) -> the decision; each is checked for its new answer below
SUPERSEDED = {
    ("zarr-v3-sharding", "shard_missing.ome.zarr"): "issue 24: a shard file "
    "left out reads as the fill value (counted; an error with "
    "limits.missing_chunks: error), no longer an error by default",
}


@pytest.mark.skipif(
    not CASES.is_dir(), reason="../shared/cases is not beside this clone"
)
@pytest.mark.parametrize("case", sorted(CASE_CLASSES))
def test_handed_case(case, monkeypatch):
    import shutil
    import sys

    if not (CASES / case).is_dir():
        pytest.skip(f"{case} is not among the handed cases")
    monkeypatch.syspath_prepend(str(CASES))
    monkeypatch.setenv(
        "BIOCODES",
        shutil.which("biocodes") or str(Path(sys.executable).parent / "biocodes"),
    )
    import _common

    monkeypatch.setattr(
        _common, "BIOCODES", str(Path(sys.executable).parent / "biocodes")
    )
    failed = [
        (r["path"], r["got"], r["want"])
        for r in _common.compare(CASES / case)["results"]
        if not r["ok"] and (case, r["path"]) not in SUPERSEDED
    ]
    assert not failed, f"{CASE_CLASSES[case]}: {failed}"


@pytest.mark.skipif(
    not (CASES / "zarr-v3-sharding").is_dir(), reason="handed case not here"
)
def test_superseded_shard_missing_reads_as_fill_and_is_counted():
    """The shard file deleted from the handed sharded store: 4 inner chunks
    read as the fill value (issue 24), refused under missing_chunks: error."""
    from biocodes.infra.limits import Limits

    path = CASES / "zarr-v3-sharding" / "shard_missing.ome.zarr"
    # the array make.py writes, with the deleted shard's region as fill
    a = np.random.default_rng(33).integers(1, 65535, (2, 50, 70), dtype=np.uint16)
    a[:, 0:16, 0:16] = 0
    a[1, 32:48, 32:48] = 0
    a[1, 0:32, 32:64] = 0
    (part,) = biocode(path)["parts"]
    assert part["iscc_code"] == synth.expected_biocode(a[None, :, None])[0]
    # the shard's 4 inner chunks, and 3 inner chunks left out of others
    assert part["chunks_absent"] == 4 + 3
    with pytest.raises(UnreadableError, match="missing_chunks is error"):
        biocode(path, limits=Limits(missing_chunks="error"))
