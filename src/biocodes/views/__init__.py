"""Views of a scene (MIP, best focus, representative, composite), their
ISCC-IMAGE, and thumbnails."""

from __future__ import annotations


def __getattr__(name: str):
    if name == "ViewOptions":  # documented as biocodes.views.ViewOptions
        from biocodes.views.build import ViewOptions

        return ViewOptions
    raise AttributeError(name)
