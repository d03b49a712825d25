"""IMAGEWALK order and bytes, the hashers, and the single pass per scene."""
