"""Where each resolved setting came from: default, file, environment or the command line.

``edgeflow config show`` prints this so a person can tell why a run used the value it did
(a forgotten ``EDGEFLOW_*`` variable is the usual surprise). It mirrors :func:`load_config`'s
layering exactly: file, then environment, then command-line overrides, the last one wins.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from configs.settings import Settings, _nest, env_overrides, load_config, resolve_profile

#: Leaf names whose values are never shown (none of the shipped settings is a secret, but a
#: user's profile may add one under an extension; the check is on the name, to be safe).
_SECRET = re.compile(r"(secret|password|passwd|token|credential|private_key(?!_file))", re.I)
MASK = "***"


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists and scalars are leaves."""
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for key, sub in value.items():
            out.update(_flatten(sub, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value}


def _claims(layer: Mapping[str, Any]) -> set[str]:
    """Dotted keys a layer sets (a mapping set at once claims every leaf below it)."""
    return set(_flatten(layer))


def _owner(key: str, claimed: set[str]) -> bool:
    """True when ``key`` or one of its parents is set by the layer."""
    parts = key.split(".")
    return any(".".join(parts[:i]) in claimed for i in range(1, len(parts) + 1))


def explain_config(
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[Settings, list[tuple[str, Any, str]]]:
    """The resolved settings and ``(dotted key, value, source)`` for every leaf.

    ``source`` is ``default``, ``file:<path>``, ``env:EDGEFLOW_...`` or ``--set``/the option
    that set it (``overrides`` keys map to ``--set`` unless given as ``(value, label)``
    pairs). Values whose name looks secret are masked.
    """
    env = os.environ if environ is None else environ
    labelled = {
        k: (v if isinstance(v, tuple) else (v, "--set")) for k, v in (overrides or {}).items()
    }
    settings = load_config(path, {k: v for k, (v, _) in labelled.items()}, env)
    file_keys: set[str] = set()
    file_label = ""
    if path is not None:
        file = resolve_profile(path)
        file_label = f"file:{file}"
        file_keys = _claims(yaml.safe_load(file.read_text(encoding="utf-8")) or {})
    env_keys = _claims(env_overrides(env))
    env_names = {
        name[len("EDGEFLOW_") :].lower().replace("__", "."): name
        for name in env
        if name.startswith("EDGEFLOW_")
    }
    cli_layers = [(_claims(_nest(k, v)), label) for k, (v, label) in labelled.items()]
    rows = []
    for key, value in _flatten(settings.model_dump(mode="json")).items():
        source = "default"
        if _owner(key, file_keys):
            source = file_label
        if _owner(key, env_keys):
            name = next((n for p, n in env_names.items() if _owner(key, {p})), "EDGEFLOW_*")
            source = f"env:{name}"
        for claimed, label in cli_layers:
            if _owner(key, claimed):
                source = label
        shown = MASK if _SECRET.search(key.rsplit(".", 1)[-1]) and value else value
        rows.append((key, shown, source))
    return settings, rows
