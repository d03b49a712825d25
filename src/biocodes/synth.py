"""Write the same arrays in many formats: fixtures for tests and the example.

Every writer takes scenes as numpy arrays in TCZYX order, with a trailing S
axis for RGB. Nothing here is downloaded; every file is generated.
"""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import numpy as np

AXES = "TCZYX"


def _scenes(scenes: np.ndarray | list[np.ndarray]) -> list[np.ndarray]:
    return [scenes] if isinstance(scenes, np.ndarray) else list(scenes)


def random_scene(
    shape: tuple[int, ...], dtype: str | np.dtype = "uint16", seed: int = 0
) -> np.ndarray:
    """Deterministic random pixels covering the dtype's range."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return (rng.standard_normal(shape) * 1000).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


def structured_scene(
    shape: tuple[int, int, int, int, int],
    dtype: str | np.dtype = "uint16",
    seed: int = 0,
) -> np.ndarray:
    """Blurred blobs with a little noise, in TCZYX: a scene that looks like
    something, so perceptual codes can tell copies from other scenes (the codes
    of pure noise change with any crop). The middle Z plane is the sharpest."""
    rng = np.random.default_rng(seed)
    t, c, z, y, x = shape
    yy, xx = np.mgrid[0:y, 0:x].astype(np.float64)
    out = np.empty(shape, np.float64)
    for ci in range(c):
        n = 10
        cy, cx = rng.uniform(0, y, n), rng.uniform(0, x, n)
        sigma = rng.uniform(0.03, 0.12, n) * min(y, x)
        amp = rng.uniform(0.3, 1.0, n)
        for zi in range(z):
            blur = 1.0 + 0.6 * abs(zi - z // 2)
            for ti in range(t):
                plane = np.zeros((y, x))
                for k in range(n):
                    r2 = (yy - cy[k] - 2 * ti) ** 2 + (xx - cx[k]) ** 2
                    plane += amp[k] * np.exp(-r2 / (2 * (sigma[k] * blur) ** 2))
                out[ti, ci, zi] = plane + rng.normal(0, 0.01, (y, x))
    out = np.clip(out / out.max(), 0, 1)
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return (out * 1000).astype(dtype)
    return np.rint(out * 0.9 * np.iinfo(dtype).max).astype(dtype)


def write_ome_tiff(
    path: str | os.PathLike,
    scenes: np.ndarray | list[np.ndarray],
    compression: str | None = None,
) -> Path:
    """OME-TIFF, one OME Image (and tifffile series) per scene."""
    import tifffile

    with tifffile.TiffWriter(path, ome=True) as w:
        for a in _scenes(scenes):
            rgb = a.ndim == 6
            meta = {"axes": AXES + ("S" if rgb else "")}
            w.write(
                a,
                metadata=meta,
                photometric="rgb" if rgb else "minisblack",
                compression=compression,
            )
    return Path(path)


def write_tiff(
    path: str | os.PathLike, array: np.ndarray, compression: str | None = None
) -> Path:
    """A plain TIFF: 2D, a ZYX page stack, or YXS for RGB (last axis 3)."""
    import tifffile

    rgb = array.ndim == 3 and array.shape[-1] in (3, 4)
    tifffile.imwrite(
        path,
        array,
        photometric="rgb" if rgb else "minisblack",
        compression=compression,
    )
    return Path(path)


def write_imagej_tiff(path: str | os.PathLike, array: np.ndarray) -> Path:
    """An ImageJ hyperstack from a TCZYX array (ImageJ stores TZCYX)."""
    import tifffile

    tifffile.imwrite(
        path, array.transpose(0, 2, 1, 3, 4), imagej=True, metadata={"axes": "TZCYX"}
    )
    return Path(path)


def write_png(path: str | os.PathLike, array: np.ndarray) -> Path:
    """PNG from a YX (gray) or YXS (RGB) array of uint8 or uint16."""
    import imageio.v3 as iio

    iio.imwrite(path, array, extension=".png")
    return Path(path)


def _divisor_chunk(n: int, target: int) -> int:
    """The largest divisor of n not above target (the writer needs exact chunks)."""
    return max(d for d in range(1, min(n, target) + 1) if n % d == 0)


def write_ome_zarr(
    path: str | os.PathLike,
    array: np.ndarray,
    zarr_format: int = 3,
    levels: int = 2,
    name: str = "Image",
    **writer: object,
) -> Path:
    """One OME-Zarr image (NGFF 0.4 for zarr v2, 0.5 for v3) with a pyramid;
    ``writer``: more OMEZarrWriter options (``axes_units``, ``channels``, ...)."""
    from bioio_ome_zarr.writers import OMEZarrWriter

    if Path(path).exists():
        shutil.rmtree(path)
    shapes = [array.shape]
    for _ in range(levels - 1):
        t, c, z, y, x = shapes[-1]
        shapes.append((t, c, z, max(1, y // 2), max(1, x // 2)))
    chunks = [
        (1, 1, 1, _divisor_chunk(s[3], 256), _divisor_chunk(s[4], 256)) for s in shapes
    ]
    writer = OMEZarrWriter(
        store=str(path),
        level_shapes=shapes,
        dtype=array.dtype,
        chunk_shape=chunks,
        zarr_format=zarr_format,
        image_name=name,
        **writer,
    )
    writer.write_full_volume(array)
    return Path(path)


def write_bioformats2raw(
    path: str | os.PathLike, scenes: list[np.ndarray], zarr_format: int = 2
) -> Path:
    """A bioformats2raw tree: numbered OME-Zarr series under one root."""
    import zarr

    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    root = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    layout = {"bioformats2raw.layout": 3}
    root.attrs.update(
        layout if zarr_format == 2 else {"ome": {"version": "0.5", **layout}}
    )
    for i, a in enumerate(scenes):
        write_ome_zarr(path / str(i), a, zarr_format=zarr_format, name=f"Image:{i}")
    (path / "OME").mkdir(exist_ok=True)
    (path / "OME" / "METADATA.ome.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8"?><OME xmlns='
        '"http://www.openmicroscopy.org/Schemas/OME/2016-06">'
        + "".join(
            f'<Image ID="Image:{i}" Name="Image:{i}"/>' for i in range(len(scenes))
        )
        + "</OME>"
    )
    return path


OME_NS = "http://www.openmicroscopy.org/Schemas/OME/2016-06"


def write_ome_tiff_fileset(
    folder: str | os.PathLike,
    scene: np.ndarray,
    parts: int = 3,
    companion: str | None = None,
    stem: str = "part",
) -> list[Path]:
    """One gray TCZYX scene as a multi-file OME-TIFF: its planes (in XYZCT
    order) split over ``parts`` files ``{stem}{i}.ome.tif``. Each file holds
    the full OME-XML, or, with ``companion`` (a file name), only a
    ``BinaryOnly`` pointer to that ``*.companion.ome`` file. Returns the
    files written, the companion last."""
    import tifffile

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    t_n, c_n, z_n, y, x = scene.shape
    planes = [
        scene[t, c, z] for t in range(t_n) for c in range(c_n) for z in range(z_n)
    ]
    bounds = np.linspace(0, len(planes), parts + 1).astype(int)
    names = [f"{stem}{i}.ome.tif" for i in range(parts)]
    uuids = [f"urn:uuid:00000000-0000-0000-0000-{i + 1:012d}" for i in range(parts + 1)]
    tiffdata = ""
    for i, name in enumerate(names):
        first = int(bounds[i])
        z, c, t = first % z_n, first // z_n % c_n, first // (z_n * c_n)
        tiffdata += (
            f'<TiffData FirstZ="{z}" FirstC="{c}" FirstT="{t}" IFD="0" '
            f'PlaneCount="{bounds[i + 1] - first}">'
            f'<UUID FileName="{name}">{uuids[i]}</UUID></TiffData>'
        )
    channels = "".join(
        f'<Channel ID="Channel:0:{c}" SamplesPerPixel="1"/>' for c in range(c_n)
    )
    ptype = {"u1": "uint8", "u2": "uint16", "f4": "float"}[scene.dtype.str[1:]]

    def ome(own: str) -> str:
        return (
            f'<?xml version="1.0" encoding="UTF-8"?><OME xmlns="{OME_NS}" '
            f'UUID="{own}"><Image ID="Image:0" Name="{stem}"><Pixels ID="Pixels:0" '
            f'DimensionOrder="XYZCT" Type="{ptype}" SizeX="{x}" SizeY="{y}" '
            f'SizeZ="{z_n}" SizeC="{c_n}" SizeT="{t_n}">{channels}{tiffdata}'
            "</Pixels></Image></OME>"
        )

    written = []
    for i, name in enumerate(names):
        if companion:
            xml = (
                f'<?xml version="1.0" encoding="UTF-8"?><OME xmlns="{OME_NS}" '
                f'UUID="{uuids[i]}"><BinaryOnly MetadataFile="{companion}" '
                f'UUID="{uuids[-1]}"/></OME>'
            )
        else:
            xml = ome(uuids[i])
        stack = np.stack(planes[bounds[i] : bounds[i + 1]])
        tifffile.imwrite(
            folder / name,
            stack,
            description=xml,
            metadata=None,
            photometric="minisblack",
        )
        written.append(folder / name)
    if companion:
        (folder / companion).write_text(ome(uuids[-1]))
        written.append(folder / companion)
    return written


def write_plate(
    path: str | os.PathLike,
    fields: dict[tuple[str, str], list[np.ndarray]],
    zarr_format: int = 3,
    bioformats2raw: bool = False,
    name: str = "plate",
) -> Path:
    """An HCS plate in OME-Zarr (NGFF 0.4 on zarr v2, 0.5 on v3): ``fields``
    maps (row name, column name) to the well's fields, each a TCZYX array
    written as an OME-Zarr image at ``row/column/index``. With
    ``bioformats2raw`` the root also says ``bioformats2raw.layout`` as
    bioformats2raw's plates do."""
    import zarr

    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    rows = sorted({r for r, _ in fields})
    columns = sorted({c for _, c in fields}, key=lambda c: (len(c), c))
    wells = [
        {"path": f"{r}/{c}", "rowIndex": rows.index(r), "columnIndex": columns.index(c)}
        for r, c in sorted(
            fields, key=lambda rc: (rows.index(rc[0]), columns.index(rc[1]))
        )
    ]
    count = max(len(v) for v in fields.values())
    plate = {
        "name": name,
        "rows": [{"name": r} for r in rows],
        "columns": [{"name": c} for c in columns],
        "wells": wells,
        "acquisitions": [{"id": 0}],
        "field_count": count,
    }
    version = "0.4" if zarr_format == 2 else "0.5"

    def ome(attrs: dict) -> dict:
        if zarr_format == 2:
            return {k: {**v, "version": version} for k, v in attrs.items()}
        return {"ome": {"version": version, **attrs}}

    root = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    root.attrs.update(ome({"plate": plate}))
    if bioformats2raw:
        root.attrs["bioformats2raw.layout"] = 3
    for (r, c), arrays in fields.items():
        well = root.require_group(f"{r}/{c}")
        images = [{"path": str(i), "acquisition": 0} for i in range(len(arrays))]
        well.attrs.update(ome({"well": {"images": images}}))
        for i, a in enumerate(arrays):
            write_ome_zarr(path / r / c / str(i), a, zarr_format, name=f"{r}{c}/{i}")
    return path


def write_czi(
    path: str | os.PathLike,
    scenes: np.ndarray | list[np.ndarray],
    metadata: dict | None = None,
) -> Path:
    """CZI via pylibCZIrw: gray uint8/uint16/float32, or RGB uint8 (as BGR).

    Scenes are placed side by side so their bounding boxes never overlap, and
    the scene XML is added so readers list every scene. ``metadata`` goes to
    pylibCZIrw's ``write_metadata`` (``channel_names``, ``scale_x`` in µm, ...).
    """
    from pylibCZIrw import czi as pyczi

    scenes = _scenes(scenes)
    if Path(path).exists():
        os.remove(path)
    x0 = 0
    with pyczi.create_czi(str(path), exist_ok=True) as doc:
        for s, a in enumerate(scenes):
            t_n, c_n, z_n = a.shape[:3]
            for t in range(t_n):
                for c in range(c_n):
                    for z in range(z_n):
                        plane = a[t, c, z]
                        if plane.ndim == 3:  # RGB: CZI stores BGR
                            plane = plane[..., ::-1]
                        doc.write(
                            data=np.ascontiguousarray(plane),
                            plane={"T": t, "C": c, "Z": z},
                            scene=s,
                            location=(x0, 0),
                        )
            x0 += a.shape[4] + 16
        if metadata:
            doc.write_metadata(**metadata)
    if len(scenes) > 1:
        _add_czi_scene_xml(path, len(scenes))
    return Path(path)


def _add_czi_scene_xml(path: str | os.PathLike, count: int) -> None:
    """Add the scene list that pylibCZIrw does not write (readers name scenes by it).

    The new XML goes into a metadata segment appended to the file, and the file
    header's metadata position is pointed at it, as the CZI format allows.
    """
    from pylibCZIrw import czi as pyczi

    with pyczi.open_czi(str(path)) as doc:
        xml = doc.raw_metadata
    scenes = "".join(f'<Scene Index="{i}" Name="Scene{i}"/>' for i in range(count))
    block = f"<S><Scenes>{scenes}</Scenes></S>"
    if "<Dimensions>" in xml:
        xml = xml.replace("<Dimensions>", "<Dimensions>" + block, 1)
    else:
        xml = xml.replace("</Image>", f"<Dimensions>{block}</Dimensions></Image>", 1)
    data = xml.encode("utf-8")
    body = struct.pack("<ii", len(data), 0).ljust(256, b"\0") + data
    body = body.ljust(-(-len(body) // 32) * 32, b"\0")
    header = b"ZISRAWMETADATA".ljust(16, b"\0") + struct.pack(
        "<qq", len(body), len(body)
    )
    with open(path, "r+b") as f:
        position = f.seek(0, os.SEEK_END)
        f.write(header + body)
        f.seek(32 + 60)  # file header data: MetadataPosition after 60 bytes
        f.write(struct.pack("<q", position))


def expected_biocode(scenes: np.ndarray | list[np.ndarray]) -> list[str]:
    """Per-scene ISCC-SUMs computed straight from the arrays: the ground truth."""
    from biocodes.core.fingerprint import fingerprint_scene
    from biocodes.sources.array import ArraySource

    source = ArraySource(_scenes(scenes))
    return [fingerprint_scene(source, s)["iscc_code"] for s in source.scenes]


def write_ics(path: str | os.PathLike, scene: np.ndarray, pair: bool = False) -> Path:
    """ICS from a TCZYX uint16 array, a format only Bio-Formats reads here:
    ICS 2.0 (header and pixels in one file), or with ``pair`` ICS 1.0 (the
    header in ``.ics``, the pixels beside it in ``.ids``: a multi-file set).
    Returns the ``.ics`` file."""
    path = Path(path)
    t, c, z, y, x = scene.shape
    lines = [
        f"ics_version\t{'1.0' if pair else '2.0'}",
        f"filename\t{path.stem}",
        "layout\tparameters\t6",
        "layout\torder\tbits\tx\ty\tz\tch\tt",
        f"layout\tsizes\t16\t{x}\t{y}\t{z}\t{c}\t{t}",
        *([] if pair else ["layout\tcoordinates\tvideo"]),
        "layout\tsignificant_bits\t16",
        "representation\tformat\tinteger",
        "representation\tsign\tunsigned",
        "representation\tcompression\tuncompressed",
        "representation\tbyte_order\t1\t2",
        "end",
        "",
    ]
    header = ("\t\n" + "\n".join(lines)).encode()
    pixels = scene.astype("<u2").tobytes()
    if pair:
        path.write_bytes(header)
        path.with_suffix(".ids").write_bytes(pixels)
    else:
        path.write_bytes(header + pixels)
    return path


def write_omero_zarr(
    path: str | os.PathLike,
    scene: np.ndarray,
    image_id: int = 1,
    style: str = "web",
    tile: int = 1024,
) -> Path:
    """One gray TCZYX scene laid out as OMERO hands an image out as OME-Zarr
    (NGFF 0.4 on zarr v2, chunk keys split by "/", axes of size 1 left out,
    an ``omero`` block): ``style="web"`` as omero-web-zarr's endpoint
    ``/zarr/v0.4/image/<id>.zarr`` serves it (one level here; one chunk per
    plane, of shape (size X, size Y), as that plugin computes it, so edge
    chunks are padded), ``style="cli"`` as ``omero zarr export`` writes
    ``<id>.zarr`` (1024-pixel tiles, a pyramid down to 96 pixels).
    ``path`` is the ``<id>.zarr`` directory; returns it."""
    import zarr

    t, c, z, y, x = scene.shape
    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    keep = [n for n, size in zip("tcz", (t, c, z), strict=True) if size > 1]
    data = scene.reshape([s for s in scene.shape[:3] if s > 1] + [y, x])
    if style == "web":
        plane_chunks = (x, y)  # omero-web-zarr: height = size X, width = size Y
        levels = 1
    elif style == "cli":
        plane_chunks = (min(tile, y), min(tile, x))
        levels, longest = 1, max(y, x)
        while longest > 96:
            longest, levels = longest // 2, levels + 1
    else:
        raise ValueError(f"style must be web or cli, not {style!r}")
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    datasets = []
    for level in range(levels):
        factor = 2**level
        array = data[..., ::factor, ::factor]  # a stand-in for OMERO's pyramid
        out = root.create_array(
            str(level),
            shape=array.shape,
            chunks=(1,) * len(keep) + plane_chunks,
            dtype=array.dtype,
            chunk_key_encoding={"name": "v2", "separator": "/"},
            fill_value=0,
        )
        out[...] = array
        scale = [1.0] * len(keep) + [float(factor), float(factor)]
        datasets.append(
            {
                "path": str(level),
                "coordinateTransformations": [{"type": "scale", "scale": scale}],
            }
        )
    types = {"t": "time", "c": "channel", "z": "space"}
    axes = [{"name": n, "type": types[n]} for n in keep]
    axes += [{"name": n, "type": "space"} for n in "yx"]
    root.attrs.update(
        {
            "multiscales": [{"datasets": datasets, "version": "0.4", "axes": axes}],
            "omero": {
                "id": image_id,
                "channels": [{"label": str(i), "active": True} for i in range(c)],
                "rdefs": {"model": "greyscale", "defaultZ": z // 2, "defaultT": 0},
            },
        }
    )
    if style == "cli":
        root.attrs["_creator"] = {"name": "omero-zarr", "version": "0.5.5"}
    return path
