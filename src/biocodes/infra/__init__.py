"""The bottom layer: errors, atomic writes, limits, the version, and where
an image's bytes are (local or remote)."""
