"""Views of a scene (MIP, best focus, representative, composite), their
ISCC-IMAGE, and thumbnails."""
