"""Scene metadata: physical pixel sizes with units, channel names and the
acquisition date where the file says them; never part of a code, never a
reason to fail an image."""

import numpy as np
import pyarrow.parquet as pq
import tifffile
from catalogues import build_catalogue

from biocodes import synth
from biocodes.core.fingerprint import biocode
from biocodes.sources.metadata import ome_xml, safely

PIXELS = synth.structured_scene((1, 2, 3, 32, 40), "uint16", seed=1)


def write_ome(path, pixels=PIXELS, **extra):
    meta = {
        "axes": "TCZYX",
        "PhysicalSizeX": 0.65,
        "PhysicalSizeY": 0.65,
        "PhysicalSizeZ": 2.0,
        "PhysicalSizeZUnit": "nm",
        "Channel": {"Name": ["DAPI", "GFP"]},
        **extra,
    }
    with tifffile.TiffWriter(path, ome=True) as w:
        w.write(pixels, metadata=meta)
    return path


def test_ome_tiff_metadata(tmp_path):
    (part,) = biocode(write_ome(tmp_path / "m.ome.tif"))["parts"]
    assert part["metadata"] == {
        "physical_size_x": 0.65,
        "physical_unit_x": "µm",  # OME's default unit
        "physical_size_y": 0.65,
        "physical_unit_y": "µm",
        "physical_size_z": 2.0,
        "physical_unit_z": "nm",
        "channel_names": ["DAPI", "GFP"],
    }


def test_ome_xml_acquisition_date_per_image():
    xml = (
        '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">'
        '<Image ID="Image:0"><AcquisitionDate>2026-11-29T22:10:00</AcquisitionDate>'
        '<Pixels PhysicalSizeX="0.1" PhysicalSizeXUnit="mm"><Channel Name="a"/>'
        "</Pixels></Image>"
        '<Image ID="Image:1"><Pixels/></Image></OME>'
    )
    assert ome_xml(xml) == [
        {
            "acquisition_date": "2026-11-29T22:10:00",
            "physical_size_x": 0.1,
            "physical_unit_x": "mm",
            "channel_names": ["a"],
        },
        {},
    ]
    assert safely("x", lambda: ome_xml("<OME><Image"), []) == []  # broken: none


def test_ome_zarr_and_czi_metadata(tmp_path):
    from bioio_ome_zarr.writers.metadata import Channel

    zarr = synth.write_ome_zarr(
        tmp_path / "m.ome.zarr",
        PIXELS,
        axes_units=[None, None, "micrometer", "micrometer", "micrometer"],
        physical_pixel_size=[1.0, 1.0, 2.0, 0.5, 0.5],
        channels=[
            Channel(label="DAPI", color="0000FF"),
            Channel(label="GFP", color="00FF00"),
        ],
    )
    (part,) = biocode(zarr)["parts"]
    assert part["metadata"] == {
        "physical_size_x": 0.5,
        "physical_unit_x": "micrometer",
        "physical_size_y": 0.5,
        "physical_unit_y": "micrometer",
        "physical_size_z": 2.0,
        "physical_unit_z": "micrometer",
        "channel_names": ["DAPI", "GFP"],
    }
    czi = synth.write_czi(
        tmp_path / "m.czi",
        PIXELS,
        metadata={
            "channel_names": {0: "DAPI", 1: "GFP"},
            "scale_x": 0.5,
            "scale_y": 0.5,
        },
    )
    (cpart,) = biocode(czi)["parts"]
    assert cpart["metadata"]["channel_names"] == ["DAPI", "GFP"]
    # CZI scaling is metres by the format; recorded as written, with its unit
    assert cpart["metadata"]["physical_size_x"] == 0.5
    assert cpart["metadata"]["physical_unit_x"] == "m"
    assert "physical_size_z" not in cpart["metadata"]  # 0: not given
    assert cpart["iscc_code"] == part["iscc_code"]


def test_metadata_is_never_part_of_a_code(tmp_path):
    a = write_ome(tmp_path / "a.ome.tif")
    b = write_ome(
        tmp_path / "b.ome.tif", PhysicalSizeX=9.0, Channel={"Name": ["x", "y"]}
    )
    plain = synth.write_ome_tiff(tmp_path / "c.ome.tif", PIXELS)
    codes = [biocode(p)["parts"][0] for p in (a, b, plain)]
    assert len({c["iscc_code"] for c in codes}) == 1
    assert codes[1]["metadata"]["physical_size_x"] == 9.0
    assert codes[2]["metadata"] == {}


def test_metadata_columns_in_the_catalogue(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    write_ome(repo / "m.ome.tif")
    rgb = np.dstack([PIXELS[0, 0, 0].astype(np.uint8)] * 3)
    synth.write_png(repo / "p.png", rgb)
    cat = build_catalogue({"repo": repo}, tmp_path / "results", views=False)
    scenes = {s["path"]: s for s in pq.read_table(cat / "scenes").to_pylist()}
    m, p = scenes["m.ome.tif"], scenes["p.png"]
    assert (m["physical_size_z"], m["physical_unit_z"]) == (2.0, "nm")
    assert m["channel_names"] == ["DAPI", "GFP"] and m["acquisition_date"] is None
    assert p["physical_size_x"] is None and p["channel_names"] is None
