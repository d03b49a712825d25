"""The workflow's config: one-line messages for mistakes, and whose roots count.

Snakemake's own validation prints the whole schema for a misspelt key (some
hundreds of lines); :func:`check_config` says what is wrong in one line, with
the keys allowed there. :func:`settle_roots` decides which roots a run scans:
the example's when the user gave none, only the user's when they did.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A config mistake, as one line that names the key."""


def _where(path: Any) -> str:
    return ".".join(str(p) for p in path) or "config"


def check_config(config: Mapping[str, Any], schema_file: str | os.PathLike) -> None:
    """Raise :class:`ConfigError` (one line) for the first problem in ``config``
    against the JSON schema: an unknown key names the keys allowed beside it
    (and the nearest one), anything else the key and what was expected."""
    import jsonschema
    import yaml

    schema = yaml.safe_load(Path(schema_file).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(dict(config)))
    if error is None:
        return
    where = _where(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in allowed)
        if allowed and extra:
            near = difflib.get_close_matches(str(extra[0]), allowed, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            key = extra[0] if where == "config" else f"{where}.{extra[0]}"
            raise ConfigError(
                f"config: unknown key {key!r}{hint} (allowed in "
                f"{where}: {', '.join(allowed)})"
            )
    if error.validator == "type" and where == "roots":
        raise ConfigError(
            "config: roots must name each directory with a label, e.g. "
            "'roots: {lab: /data/lab}' (a mapping, not a list)"
        )
    message = " ".join(error.message.split())
    if len(message) > 200:
        message = message[:200] + "..."
    raise ConfigError(f"config: {where}: {message}")


def expand_path(value: str, key: str) -> str:
    """``~`` and ``$VAR``/``${VAR}`` expanded in a local path (a URL is left
    as it is); a variable that is not set is a :class:`ConfigError`."""
    import re

    from biocodes.infra.remote import is_remote

    if is_remote(value):
        return value
    out = os.path.expandvars(os.path.expanduser(value))
    unset = re.search(r"\$\{?(\w+)", out)
    if unset:
        raise ConfigError(
            f"config: {key}: {value!r} uses the environment variable "
            f"{unset.group(1)}, which is not set"
        )
    return out


def settle_results(config: dict[str, Any]) -> str:
    """``results`` with ``~`` and environment variables expanded (in place)."""
    config["results"] = expand_path(str(config["results"]), "results")
    return config["results"]


def _inside(path: str, parent: str) -> bool:
    """Whether ``path`` is ``parent`` or lies under it (symlinks resolved)."""
    path, parent = os.path.realpath(path), os.path.realpath(parent)
    return path == parent or path.startswith(parent.rstrip(os.sep) + os.sep)


def check_overlaps(roots: Mapping[str, str], results: str | None) -> None:
    """Refuse roots that overlap (their common images would be catalogued
    twice) and a results folder inside a root (its thumbnails would be
    catalogued as images), in one line naming both paths."""
    from biocodes.infra.remote import is_remote

    local = sorted((k, v) for k, v in roots.items() if not is_remote(v))
    for i, (a, pa) in enumerate(local):
        for b, pb in local[i + 1 :]:
            if _inside(pa, pb) or _inside(pb, pa):
                inner, outer = (
                    ((a, pa), (b, pb)) if _inside(pa, pb) else ((b, pb), (a, pa))
                )
                raise ConfigError(
                    f"config: roots.{inner[0]} ({inner[1]}) lies inside "
                    f"roots.{outer[0]} ({outer[1]}): its images would be "
                    "catalogued twice; keep one of them"
                )
    if results is None:
        return
    for k, v in local:
        if _inside(results, v):
            raise ConfigError(
                f"config: results ({os.path.abspath(results)}) lies inside "
                f"roots.{k} ({v}): the run's own thumbnails would be catalogued "
                "as images; put results outside the roots"
            )


def settle_roots(
    config: dict[str, Any],
    user: Mapping[str, Any] | None,
    workdir: str | os.PathLike = ".",
) -> dict[str, str]:
    """The roots this run scans, as recorded: local roots absolute.

    ``config`` is Snakemake's merged config (config/config.yaml, then the
    user's ``--configfile``s); ``user`` is what the user's files and
    ``--config`` gave. A user who names ``roots`` gets only those roots, and
    the example is generated only if they ask for it (``example.generate``):
    Snakemake merges mappings key by key, which would otherwise add the
    example's root to theirs. ``config`` is updated in place, so the recorded
    config says what was scanned.
    """
    user = user or {}
    example = dict(config.get("example") or {})
    if "roots" in user:
        config["roots"] = dict(user["roots"])
        example["generate"] = bool((user.get("example") or {}).get("generate", False))
        config["example"] = example
    label = example.get("root")
    generated = bool(example.get("generate", False))
    roots = {
        k: v
        for k, v in config["roots"].items()
        if generated or k != label or k in user.get("roots", {})
    }
    if not roots:
        raise ConfigError("config: no roots to scan")
    from biocodes.infra.remote import is_remote

    for k, root in roots.items():
        root = roots[k] = expand_path(str(root), f"roots.{k}")
        if not is_remote(root):
            roots[k] = os.path.normpath(os.path.join(os.path.abspath(workdir), root))
        made_here = generated and k == label  # the example, generated first
        if not made_here and not is_remote(root) and not os.path.isdir(roots[k]):
            raise ConfigError(
                f"config: roots.{k}: {root!r} is not a directory or a "
                "s3://, http:// or https:// URL"
            )
    if generated and label not in roots:
        raise ConfigError(
            f"config: example.generate is true but example.root {label!r} is not "
            f"one of roots ({', '.join(roots)})"
        )
    results = config.get("results")
    if results is not None:
        results = os.path.join(os.path.abspath(workdir), str(results))
    check_overlaps(roots, results)
    config["roots"] = roots
    return roots


class _NoPandas:
    """A module finder that refuses pandas (see :func:`without_pandas`)."""

    def find_spec(self, name: str, path: object = None, target: object = None):
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"no pandas in this job: {name}", name=name)
        return None


def without_pandas() -> None:
    """Let this process never import pandas, for a workflow job that has no
    use for it (the scan, the merge and report): pyarrow imports pandas on
    its first conversion of Python values (~0.3-0.5 s, every job of every
    night) only to ask whether they are pandas objects, and takes a failed
    import as pandas not installed. Call before anything imports pyarrow."""
    import sys

    if "pandas" not in sys.modules and not any(
        isinstance(f, _NoPandas) for f in sys.meta_path
    ):
        sys.meta_path.insert(0, _NoPandas())
