"""The package version, at the bottom so that every layer can name it."""

__version__ = "0.1.0"
