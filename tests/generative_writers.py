"""Random small images through real writers, each with the array it holds.

Used by tests/test_generative.py. Every ``write_*`` function takes the
hypothesis ``draw`` (inside ``st.composite``), draws the writer's options
and pixels, writes the file under ``tmp`` and returns a :class:`Case`: the
path, the scenes as TCZYX(S) arrays (the truth) and the options, for the
failure message. Pixels come from a drawn seed (fast, and the seed shrinks);
shapes, dtypes and options are drawn directly so hypothesis shrinks them.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from hypothesis import strategies as st

from biocodes import synth

#: dtypes IMAGEWALK encodes (sources/base.py SUPPORTED_DTYPES), per writer
ALL = ["uint8", "uint16", "uint32", "int8", "int16", "int32", "float32", "float64"]
WIDE = [*ALL, "uint64", "int64"]
#: tifffile compressions that are lossless for the dtypes drawn with them
#: (jpeg and the other lossy codecs are left out: their code is the decoder's)
TIFF_COMPRESSIONS = [None, "zlib", "adobe_deflate", "lzw", "zstd", "packbits"]


@dataclass
class Case:
    """A written image: where, what it holds, and how it was written."""

    path: Path
    scenes: list[np.ndarray]
    options: dict = field(default_factory=dict)

    def __repr__(self) -> str:  # what hypothesis prints for a falsifying example
        shapes = [(a.shape, str(a.dtype)) for a in self.scenes]
        return f"Case({self.path.name}, scenes={shapes}, options={self.options})"


def pixels(draw, shape: tuple[int, ...], dtype: str, nonzero: bool = False):
    """Random pixels over the dtype's range; ``nonzero``: no value equals the
    zarr fill value 0, so no chunk is all fill and every chunk is stored."""
    a = synth.random_scene(shape, dtype, seed=draw(st.integers(0, 2**16)))
    if a.dtype.kind == "f" and a.size and draw(st.booleans(), label="specials"):
        # NaN, infinities and -0.0 keep their bits through every reader
        flat = a.reshape(-1)
        special = np.array([np.nan, np.inf, -np.inf, -0.0], a.dtype)
        flat[:: max(1, flat.size // 4)][:4] = special[: min(4, flat.size)]
    if nonzero:
        a[a == 0] = 1
    return a


def sizes(draw, axes: str, small: int = 3, plane: int = 24) -> dict[str, int]:
    out = {}
    for ax in axes:
        top = plane if ax in "YX" else small
        out[ax] = draw(st.integers(1, top), label=f"size {ax}")
    return out


def to_tczyx(a: np.ndarray, axes: str) -> np.ndarray:
    """``a`` with named ``axes`` (a subset of TZCQYXS) as TCZYX(+S)."""
    for ax in "TCZ":
        if ax not in axes:
            a, axes = a[np.newaxis], ax + axes
    order = [axes.index(ax) for ax in "TCZYX" + ("S" if "S" in axes else "")]
    return np.ascontiguousarray(a.transpose(order))


def layout(draw, y: int, x: int) -> dict:
    """Strips or tiles (tiles are multiples of 16, the TIFF rule)."""
    kind = draw(st.sampled_from(["strips", "tiles"]))
    if kind == "tiles":
        return {
            "tile": (draw(st.sampled_from([16, 32])), draw(st.sampled_from([16, 32])))
        }
    return {"rowsperstrip": draw(st.integers(1, max(1, y)))}


def tiff_options(draw, dtype: str, y: int, x: int) -> dict:
    """Compression (+ predictor), byte order, BigTIFF, strips or tiles."""
    compression = draw(st.sampled_from(TIFF_COMPRESSIONS))
    opts: dict = {"compression": compression, **layout(draw, y, x)}
    if compression in ("zlib", "adobe_deflate", "lzw", "zstd") and draw(st.booleans()):
        opts["predictor"] = True
    return opts


def tiff_file_options(draw) -> dict:
    return {
        "byteorder": draw(st.sampled_from(["<", ">"])),
        "bigtiff": draw(st.booleans()),
    }


def planar(page: np.ndarray, opts: dict) -> np.ndarray:
    """A YXS page as tifffile takes it: SYX for separate sample planes."""
    if opts.get("planarconfig") == "separate":
        return np.ascontiguousarray(np.moveaxis(page, -1, 0))
    return page


# -- tifffile --------------------------------------------------------------


@st.composite
def plain_tiff(draw, tmp: Path, rgb_pages: bool = False) -> Case:
    """A TIFF without OME, ImageJ or shape metadata (``metadata=None``): one
    gray or RGB page, or a stack of gray pages. ``rgb_pages``: a stack of RGB
    pages, plain or shaped (Bio-Formats: pages are T, samples C)."""
    kind = "rgb-pages" if rgb_pages else draw(st.sampled_from(["gray", "rgb", "pages"]))
    rgb = kind.startswith("rgb")
    dtype = draw(st.sampled_from(["uint8", "uint16"] if rgb else ALL))
    s = sizes(draw, "TYX", small=4)
    n = s["T"] if kind.endswith("pages") else 1
    if kind.endswith("pages") and n == 1:
        n = 2
    shape = (n, s["Y"], s["X"]) + ((3,) if rgb else ())
    a = pixels(draw, shape, dtype)
    opts = tiff_options(draw, dtype, s["Y"], s["X"])
    if rgb:
        opts["photometric"] = "rgb"
        opts["planarconfig"] = draw(st.sampled_from(["contig", "separate"]))
    else:
        opts["photometric"] = "minisblack"
    file_opts = tiff_file_options(draw)
    path = tmp / "plain.tif"
    import tifffile

    # RGB pages also as tifffile's default, one shaped series of N pages
    shaped = rgb_pages and draw(st.booleans(), label="shaped")
    with tifffile.TiffWriter(path, **file_opts) as w:
        if shaped:
            w.write(np.stack([planar(page, opts) for page in a]), **opts)
        else:
            for page in a:
                w.write(planar(page, opts), metadata=None, **opts)
    truth = a[:, None, None]  # pages as T, samples (if any) as C
    return Case(path, [truth], {"kind": kind, "shaped": shaped, **opts, **file_opts})


@st.composite
def shaped_tiff(draw, tmp: Path, narrow: bool = False) -> Case:
    """tifffile's default: an N-D gray array as pages with a JSON shape
    description. Its axes are unnamed, so pages are walked in stored order.
    ``narrow``: planes one pixel wide (tifffile then stores pages of the last
    two dimensions that are not 1, a series it names ...YXQ)."""
    dtype = draw(st.sampled_from(ALL))
    lead = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    s = sizes(draw, "YX")
    s["X"] = 1 if narrow else max(s["X"], 2)
    a = pixels(draw, (*lead, s["Y"], s["X"]), dtype)
    opts = tiff_options(draw, dtype, s["Y"], s["X"])
    file_opts = tiff_file_options(draw)
    path = tmp / "shaped.tif"
    import tifffile

    with tifffile.TiffWriter(path, **file_opts) as w:
        w.write(a, photometric="minisblack", **opts)
    truth = a.reshape(-1, 1, 1, s["Y"], s["X"])
    return Case(path, [truth], {"lead": lead, **opts, **file_opts})


IMAGEJ_AXES = ["YX", "ZYX", "CYX", "TYX", "ZCYX", "TZYX", "TCYX", "TZCYX"]


@st.composite
def imagej_tiff(draw, tmp: Path) -> Case:
    """``imagej=True`` with axes (ImageJ stores TZCYXS): gray uint8, uint16,
    float32, or RGB uint8."""
    rgb = draw(st.booleans())
    axes = draw(st.sampled_from(IMAGEJ_AXES)) + ("S" if rgb else "")
    dtype = "uint8" if rgb else draw(st.sampled_from(["uint8", "uint16", "float32"]))
    s = sizes(draw, axes.replace("S", ""))
    # tifffile writes a stack of 1-pixel-wide planes as one page (a file at
    # odds with its own description; test_imagej_stack_of_one_pixel_wide_...)
    s["X"] = max(s["X"], 2)
    shape = tuple(s[ax] for ax in axes if ax != "S") + ((3,) if rgb else ())
    a = pixels(draw, shape, dtype)
    opts = tiff_options(draw, dtype, s["Y"], s["X"])
    if rgb:
        opts["photometric"] = "rgb"
    byteorder = draw(st.sampled_from(["<", ">"]))
    path = tmp / "imagej.tif"
    import tifffile

    tifffile.imwrite(
        path, a, imagej=True, metadata={"axes": axes}, byteorder=byteorder, **opts
    )
    return Case(
        path, [to_tczyx(a, axes)], {"axes": axes, "byteorder": byteorder, **opts}
    )


@st.composite
def ome_tiff(draw, tmp: Path) -> Case:
    """``ome=True`` with axes in any OME order, 1-3 series (scenes) of their
    own shapes and dtypes; RGB series with contig or separate samples."""
    import tifffile

    n = draw(st.integers(1, 3), label="series")
    file_opts = tiff_file_options(draw)
    path = tmp / "image.ome.tif"
    scenes, series = [], []
    with tifffile.TiffWriter(path, ome=True, **file_opts) as w:
        for _ in range(n):
            rgb = draw(st.booleans())
            lead = draw(st.permutations("TCZ"))
            keep = draw(st.lists(st.sampled_from(lead), unique=True, max_size=3))
            axes = "".join(ax for ax in lead if ax in keep) + "YX"
            if rgb:
                axes = axes.replace("C", "") + "S"
            # OME Pixels types: no 64-bit integers
            dtype = draw(st.sampled_from(["uint8", "uint16"] if rgb else ALL))
            s = sizes(draw, axes.replace("S", ""))
            shape = tuple(s[ax] for ax in axes if ax != "S") + ((3,) if rgb else ())
            a = pixels(draw, shape, dtype)
            opts = tiff_options(draw, dtype, s["Y"], s["X"])
            opts["photometric"] = "rgb" if rgb else "minisblack"
            if rgb:
                opts["planarconfig"] = draw(st.sampled_from(["contig", "separate"]))
            meta = {"axes": axes}
            stored = a
            if opts.get("planarconfig") == "separate":  # tifffile wants S first
                stored = np.ascontiguousarray(np.moveaxis(a, -1, -3))
                meta["axes"] = axes[:-3] + "SYX"
            # a pyramid in SubIFDs, as bfconvert and tifffile's examples write
            levels = draw(st.integers(1, 2), label="levels")
            if levels > 1:
                opts["subifds"] = 1
            w.write(stored, metadata=meta, **opts)
            if levels > 1:
                small = (
                    stored[..., ::2, ::2]
                    if not rgb or "separate" in str(opts.get("planarconfig"))
                    else stored[..., ::2, ::2, :]
                )
                sub = {k: v for k, v in opts.items() if k != "subifds"}
                w.write(
                    np.ascontiguousarray(small), subfiletype=1, metadata=None, **sub
                )
            scenes.append(to_tczyx(a, axes))
            series.append({"axes": axes, **opts})
    return Case(path, scenes, {"series": series, **file_opts})


# -- zarr ------------------------------------------------------------------

NGFF_AXES = ["yx", "zyx", "cyx", "tyx", "czyx", "tzyx", "tcyx", "tczyx"]
TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}


def zarr_codecs(draw, zarr_format: int) -> dict:
    """A compressor (v2) or a codec chain (v3, with endian and maybe a
    crc32c checksum); sharding is drawn by the caller."""
    import numcodecs
    import zarr.codecs as zc

    name = draw(st.sampled_from(["none", "zlib", "zstd", "blosc", "gzip"]))
    if zarr_format == 2:
        comp = {
            "none": None,
            "zlib": numcodecs.Zlib(level=1),
            "zstd": numcodecs.Zstd(level=1),
            "blosc": numcodecs.Blosc(
                cname="lz4", shuffle=draw(st.sampled_from([0, 1, 2]))
            ),
            "gzip": numcodecs.GZip(level=1),
        }[name]
        return {"compressors": comp, "name": name}
    comp = {
        "none": None,
        "zlib": zc.GzipCodec(level=1),
        "zstd": zc.ZstdCodec(level=1),
        "blosc": zc.BloscCodec(
            cname="lz4",
            shuffle=draw(st.sampled_from(["noshuffle", "shuffle", "bitshuffle"])),
        ),
        "gzip": zc.GzipCodec(level=5),
    }[name]
    endian = draw(st.sampled_from(["little", "big"]))
    crc = draw(st.booleans(), label="crc32c")
    compressors = [c for c in (comp, zc.Crc32cCodec() if crc else None) if c]
    return {
        "compressors": compressors or None,
        "serializer": zc.BytesCodec(endian=endian),
        "transpose": draw(st.booleans(), label="transpose"),
        "name": name + ("+crc32c" if crc else ""),
        "endian": endian,
    }


def chunk_shape(draw, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Any chunk shape up to the array's (edge chunks need not divide it)."""
    return tuple(draw(st.integers(1, n), label="chunk") for n in shape)


def zero_chunks(draw, a: np.ndarray, chunks: tuple[int, ...]) -> tuple[np.ndarray, int]:
    """Set whole chunks to the fill value 0: the writer leaves them out.
    At least one chunk stays stored: a scene with no stored chunk at all is
    refused by name (issue 24's decision: most often a chunk-key separator
    the metadata does not declare), so a one-chunk image keeps its chunk."""
    grid = [range(-(-n // c)) for n, c in zip(a.shape, chunks)]
    keys = list(itertools.product(*grid))
    if len(keys) == 1:
        return a, 0
    chosen = draw(
        st.lists(st.sampled_from(keys), min_size=1, unique=True, max_size=len(keys) - 1)
    )
    for key in chosen:
        a[tuple(slice(k * c, (k + 1) * c) for k, c in zip(key, chunks))] = 0
    return a, len(chosen)


@st.composite
def ngff_zarr(draw, tmp: Path, absent: bool = False) -> Case:
    """An OME-Zarr image written with zarr-python and hand-made NGFF
    metadata (0.4 on zarr v2, 0.5 on v3): any chunking, sharding (v3),
    codecs, v2 separators and memory order, ``write_empty_chunks`` left at
    its default. ``absent``: some chunks hold only the fill value, so
    zarr-python 3 does not write them (they read as the fill value)."""
    import zarr
    import zarr.codecs as zc

    zarr_format = draw(st.sampled_from([2, 3]))
    axes = draw(st.sampled_from(NGFF_AXES))
    dtype = draw(st.sampled_from(WIDE))
    s = sizes(draw, axes.upper())
    shape = tuple(s[ax.upper()] for ax in axes)
    a = pixels(draw, shape, dtype, nonzero=True)
    chunks = chunk_shape(draw, shape)
    opts: dict = {"format": zarr_format, "axes": axes, "chunks": chunks}
    if absent:
        a, opts["zeroed_chunks"] = zero_chunks(draw, a, chunks)
    codecs = zarr_codecs(draw, zarr_format)
    opts["codecs"] = {k: v for k, v in codecs.items() if k in ("name", "endian")}
    kw: dict = {"compressors": codecs["compressors"]}
    if zarr_format == 2:
        sep = draw(st.sampled_from(["/", "."]))
        order = draw(st.sampled_from(["C", "F"]))
        kw.update(chunk_key_encoding={"name": "v2", "separator": sep}, order=order)
        opts.update(separator=sep, order=order)
    else:
        kw["serializer"] = codecs["serializer"]
        if codecs["transpose"]:  # an array-to-array codec: chunks stored F
            kw["filters"] = [zc.TransposeCodec(order=tuple(range(len(shape)))[::-1])]
            opts["codecs"]["transpose"] = True
        if draw(st.booleans(), label="sharded"):
            shards = tuple(c * draw(st.integers(1, 3)) for c in chunks)
            kw["shards"] = shards
            opts["shards"] = shards
    path = tmp / "image.ome.zarr"
    root = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    root.create_array("0", shape=shape, dtype=dtype, chunks=chunks, **kw)[...] = a
    ms = {
        "axes": [{"name": ax, "type": TYPES[ax]} for ax in axes],
        "datasets": [
            {
                "path": "0",
                "coordinateTransformations": [
                    {"type": "scale", "scale": [1.0] * len(axes)}
                ],
            }
        ],
        "name": "image",
    }
    if zarr_format == 2:
        root.attrs["multiscales"] = [{"version": "0.4", **ms}]
    else:
        root.attrs["ome"] = {"version": "0.5", "multiscales": [ms]}
    return Case(path, [to_tczyx(a, axes.upper())], opts)


@st.composite
def bioio_ome_zarr(draw, tmp: Path, absent: bool = False) -> Case:
    """bioio-ome-zarr's OMEZarrWriter with its defaults and drawn chunks,
    shards (v3), compressor and pyramid levels; 5-D TCZYX."""
    from bioio_ome_zarr.writers import OMEZarrWriter

    zarr_format = draw(st.sampled_from([2, 3]))
    dtype = draw(st.sampled_from(ALL))
    s = sizes(draw, "TCZYX")
    shape = tuple(s[ax] for ax in "TCZYX")
    a = pixels(draw, shape, dtype, nonzero=True)
    chunks = chunk_shape(draw, shape)
    opts: dict = {"format": zarr_format, "chunks": chunks}
    if absent:
        a, opts["zeroed_chunks"] = zero_chunks(draw, a, chunks)
    levels = draw(st.integers(1, 2), label="levels")
    shapes = [shape] + [(*shape[:3], max(1, shape[3] // 2), max(1, shape[4] // 2))] * (
        levels - 1
    )
    kw: dict = {
        "chunk_shape": [tuple(min(c, n) for c, n in zip(chunks, sh)) for sh in shapes]
    }
    if zarr_format == 3 and draw(st.booleans(), label="sharded"):
        mult = draw(st.integers(1, 3))
        kw["shard_shape"] = [tuple(c * mult for c in ch) for ch in kw["chunk_shape"]]
        opts["shards"] = kw["shard_shape"][0]
    compressor = draw(st.sampled_from(["default", "zstd", "blosc"]), label="compressor")
    if compressor != "default":
        import numcodecs
        import zarr.codecs as zc

        if zarr_format == 2:
            kw["compressor"] = (
                numcodecs.Zstd(level=1)
                if compressor == "zstd"
                else numcodecs.Blosc(cname="zstd", shuffle=2)
            )
        else:
            kw["compressor"] = zc.BloscCodec(
                cname="zstd" if compressor == "zstd" else "lz4", shuffle="bitshuffle"
            )
    opts["compressor"] = compressor
    path = tmp / "writer.ome.zarr"
    w = OMEZarrWriter(
        store=str(path),
        level_shapes=shapes,
        dtype=a.dtype,
        zarr_format=zarr_format,
        **kw,
    )
    w.write_full_volume(a)
    opts["levels"] = levels
    return Case(path, [a], opts)


# -- PNG (pypng) -----------------------------------------------------------


@st.composite
def pypng_file(draw, tmp: Path) -> Case:
    """pypng's Writer: gray, gray+alpha, RGB, RGBA at every bit depth PNG
    allows, palettes, Adam7 interlace. Truth is the stored samples."""
    import png

    kind = draw(st.sampled_from(["gray", "la", "rgb", "rgba", "palette"]))
    depths = {"gray": [1, 2, 4, 8, 16], "palette": [1, 2, 4, 8]}.get(kind, [8, 16])
    depth = draw(st.sampled_from(depths))
    samples = {"gray": 1, "palette": 1, "la": 2, "rgb": 3, "rgba": 4}[kind]
    s = sizes(draw, "YX")
    y, x = s["Y"], s["X"]
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    dtype = np.uint16 if depth == 16 else np.uint8
    a = rng.integers(0, 2**depth, (y, x, samples)).astype(dtype)
    interlace = draw(st.booleans())
    kw: dict = {"bitdepth": depth, "interlace": interlace}
    if kind == "palette":
        kw["palette"] = [
            ((i * 37) % 256, (i * 91) % 256, (i * 13) % 256) for i in range(2**depth)
        ]
    else:
        kw["greyscale"] = kind in ("gray", "la")
        kw["alpha"] = kind in ("la", "rgba")
    path = tmp / "image.png"
    with open(path, "wb") as f:
        png.Writer(x, y, **kw).write(f, a.reshape(y, -1).tolist())
    return Case(
        path,
        [a[None, None, None]],
        {"kind": kind, "depth": depth, "interlace": interlace},
    )


# -- CZI (pylibCZIrw) --------------------------------------------------------


@st.composite
def czi_file(draw, tmp: Path, variant: str = "main") -> Case:
    """pylibCZIrw: 1-3 scenes side by side, gray uint8/uint16/float32 or
    RGB uint8 (stored BGR, walked RGB); a scene may be a mosaic of tiles that
    exactly cover its box; the scene list XML pylibCZIrw does not write is
    added or not. ``variant``: "main" (one scene, possibly a mosaic, or
    several non-mosaic scenes of one size); "sizes" (several non-mosaic
    scenes, a later one larger than the first); "mosaics" (several scenes of
    one size, at least one a mosaic)."""
    from pylibCZIrw import czi as pyczi

    n = 1 if variant == "main" else 2
    if variant == "main" or variant == "mosaics":
        n = draw(st.integers(1 if variant == "main" else 2, 3), label="scenes")
    rgb = draw(st.booleans())
    dtype = "uint8" if rgb else draw(st.sampled_from(["uint8", "uint16", "float32"]))
    lead = sizes(draw, "TCZ", small=2)
    if rgb:
        lead["C"] = 1
    if variant == "mosaics":
        mosaics = draw(st.lists(st.booleans(), min_size=n, max_size=n))
        mosaics[draw(st.integers(0, n - 1))] = True
    else:
        mosaics = [n == 1 and draw(st.booleans(), label="mosaic")] * n
    xml = n > 1 and draw(st.booleans(), label="scene xml")
    plane = sizes(draw, "YX")
    if variant == "sizes":  # the first scene smaller than a later one
        plane = {"Y": min(plane["Y"], 12), "X": min(plane["X"], 12)}
    path = tmp / "image.czi"
    scenes, opts = [], {"rgb": rgb, "scenes": [], "scene_xml": xml}
    x0 = 0
    with pyczi.create_czi(str(path), exist_ok=True) as doc:
        for si in range(n):
            s = plane
            if si and variant == "sizes":  # a later scene larger than the first
                s = sizes(draw, "YX")
                s = {"Y": plane["Y"] + s["Y"], "X": plane["X"] + s["X"]}
            grid = (
                (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
                if mosaics[si]
                else (1, 1)
            )
            if mosaics[si] and grid == (1, 1):
                grid = (1, 2)
            ty, tx = max(1, s["Y"] // grid[0]), max(1, s["X"] // grid[1])
            y, x = ty * grid[0], tx * grid[1]
            shape = (lead["T"], lead["C"], lead["Z"], y, x) + ((3,) if rgb else ())
            a = pixels(draw, shape, dtype)
            for t, c, z in itertools.product(
                range(shape[0]), range(shape[1]), range(shape[2])
            ):
                for gy, gx in itertools.product(range(grid[0]), range(grid[1])):
                    tile = a[t, c, z, gy * ty : (gy + 1) * ty, gx * tx : (gx + 1) * tx]
                    if rgb:
                        tile = tile[..., ::-1]
                    doc.write(
                        data=np.ascontiguousarray(tile),
                        plane={"T": t, "C": c, "Z": z},
                        scene=si,
                        location=(x0 + gx * tx, gy * ty),
                    )
            x0 += x + 16
            scenes.append(a)
            opts["scenes"].append({"shape": shape, "grid": grid})
    if xml:
        synth._add_czi_scene_xml(path, n)
    return Case(path, scenes, opts)
