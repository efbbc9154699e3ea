"""Filling typed configuration dataclasses from YAML files and command-line assignments.

The one mechanism every configuration class of the project goes through (the engine's
``RunConfig``, ``nas.NasConfig``, ``CondensedReplayConfig``, the continual runner's config):

* :func:`read_yaml_mapping` reads a ``--config`` file, or a config shipped inside the packages;
* :func:`parse_assignment` turns ``--set section.key=VALUE`` into a nested mapping (the value is
  read as YAML), :func:`nest` does the same for a dotted flag;
* :func:`apply_overrides` walks a (nested) dataclass with such a mapping: an unknown key is a
  ``KeyError`` listing the allowed ones, and every leaf is validated and converted to the
  field's declared type by pydantic (``"50"`` -> 50 for an ``int``, ``"none"`` -> ``None`` for an
  ``int | None``), or a one-line ``ValueError`` naming the key, the value and the type.

Layers apply in order (defaults, YAML, flags, ``--set``), each one over the last.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import types
import typing
from pathlib import Path
from typing import Any, get_type_hints

import yaml

__all__ = [
    "CONFIG_PACKAGES",
    "apply_overrides",
    "coerce",
    "nest",
    "packaged_configs",
    "parse_assignment",
    "read_yaml_mapping",
]

# Packages whose ``configs/`` folder ships YAML files inside the wheel (package data), so that
# ``--config nas_offline_reduced`` works from a pip install, not only from a checkout.
CONFIG_PACKAGES = ("dc_plugins", "nas", "strategies")

_NONE_WORDS = ("none", "null", "~")


@functools.lru_cache(maxsize=None)
def _adapter(tp: Any):
    from pydantic import ConfigDict, TypeAdapter

    # lax mode: YAML and flags give "50" for 50, "yes" for True; numbers may fill str fields
    # (``top_k: [10, 30, 5%]``)
    return TypeAdapter(tp, config=ConfigDict(coerce_numbers_to_str=True))


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _admits(tp: Any, kind: type) -> bool:
    args = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
    return any(a is kind or typing.get_origin(a) is kind for a in args) or tp is Any


def _prepare(tp: Any, value: Any) -> Any:
    """The command line's shorthands, before validation: ``none`` for ``None``, ``a,b`` or a
    single value for a list, a YAML string for a mapping."""
    if isinstance(value, str) and value.strip().lower() in _NONE_WORDS and _admits(tp, type(None)):
        return None
    if _admits(tp, list) and not _admits(tp, str):
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        if value is not None and not isinstance(value, (list, tuple)) and not _admits(tp, type(value)):
            return [value]  # a single value where a list is declared: "seeds: 0"
    if _admits(tp, dict) and isinstance(value, str) and not _admits(tp, str):
        return yaml.safe_load(value)
    return value


def coerce(tp: Any, value: Any, key: str) -> Any:
    """``value`` as the declared type ``tp`` of field ``key``, or a ``ValueError`` naming both."""
    from pydantic import ValidationError

    if tp is Any:
        return value
    value = _prepare(tp, value)
    if isinstance(value, bool) and not _admits(tp, bool):
        # pydantic would read True as 1; a flag given to a number is a mistake, not a number
        raise ValueError(f"{key}: cannot use {value!r} (expected {_type_name(tp)})")
    try:
        return _adapter(tp).validate_python(value)
    except ValidationError:
        raise ValueError(f"{key}: cannot use {value!r} (expected {_type_name(tp)})") from None


def apply_overrides(cfg: Any, values: dict, prefix: str = "") -> Any:
    """Set (nested) fields of a config dataclass from a mapping; unknown keys are an error."""
    if not isinstance(values, dict):
        raise ValueError(f"{prefix.rstrip('.') or 'config'} must be a mapping, got {values!r}")
    hints = get_type_hints(type(cfg))
    names = {f.name for f in dataclasses.fields(cfg)}
    for key, value in values.items():
        name = str(key).replace("-", "_")
        if name not in names:
            raise KeyError(f"unknown config key {prefix + str(key)!r}; allowed: {', '.join(sorted(names))}")
        current = getattr(cfg, name)
        if dataclasses.is_dataclass(current):
            apply_overrides(current, value if value is not None else {}, prefix + name + ".")
        else:
            setattr(cfg, name, coerce(hints[name], value, prefix + name))
    return cfg


def nest(dotted: str, value: Any) -> dict:
    """``nest("eval.epochs", 5)`` -> ``{"eval": {"epochs": 5}}``, for :func:`apply_overrides`."""
    out: dict = {}
    node = out
    *head, last = dotted.strip().split(".")
    for part in head:
        node = node.setdefault(part, {})
    node[last] = value
    return out


def parse_assignment(item: str) -> dict:
    """A ``--set KEY=VALUE`` item as a nested mapping (the value is read as YAML)."""
    if "=" not in item:
        raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
    key, text = item.split("=", 1)
    try:
        value = yaml.safe_load(text.strip()) if text.strip() else ""
    except yaml.YAMLError:
        raise ValueError(f"--set {key}: {text.strip()!r} is not a valid YAML value") from None
    return nest(key, value)


def packaged_configs() -> dict[str, Path]:
    """Every YAML config that ships inside the installed packages: ``{stem: path}``.

    The packages' folders are found with ``importlib.util.find_spec``, which does not import
    them (importing ``strategies`` would import Avalanche, seconds for a file lookup)."""
    from importlib.util import find_spec

    found: dict[str, Path] = {}
    for package in CONFIG_PACKAGES:
        spec = find_spec(package)
        for location in (spec.submodule_search_locations or []) if spec else []:
            folder = Path(location) / "configs"
            if folder.is_dir():
                for entry in sorted(folder.iterdir()):
                    if entry.suffix in (".yaml", ".yml"):
                        found.setdefault(entry.stem, entry)
    return found


def read_yaml_mapping(path: str | os.PathLike) -> dict:
    """A YAML config file's top-level mapping (an empty file is an empty mapping); every CLI of
    the project reads its ``--config`` through this, so the errors are the same everywhere.

    ``path`` is a file, or the name of a config that ships with the package (``nas_offline_reduced``,
    with or without ``.yaml``, or a checkout path such as ``examples/configs/nas_offline_reduced.yaml``
    whose file is absent in a pip install): an existing file always wins.
    """
    path = Path(path)
    if path.is_file():
        text, where = path.read_text(), str(path)
    else:
        stem = path.name.rsplit(".", 1)[0] if path.suffix in (".yaml", ".yml") else path.name
        shipped = packaged_configs()
        if stem not in shipped:
            raise FileNotFoundError(f"config file {str(path)!r} does not exist, and no packaged config is "
                                    f"named {stem!r}; packaged: {', '.join(shipped) or 'none'}")
        text, where = shipped[stem].read_text(), f"packaged config {stem!r}"
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"{where} is not valid YAML: {first}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{where!r} must hold a mapping of config keys, got {type(data).__name__}")
    return data
