"""Declared fields of the stage configs: type and bounds checks, flat names, TOML presets."""

from __future__ import annotations

import dataclasses
import math
import tomllib
import typing
from dataclasses import field
from pathlib import Path
from typing import Any, Literal, Optional


def bounded(default: Any, *, low: Optional[float] = None, high: Optional[float] = None,
            low_open: bool = False, high_open: bool = False, **kwargs: Any) -> Any:
    """A dataclass field whose numeric value must lie between ``low`` and ``high``."""
    return field(default=default, metadata={"low": low, "high": high, "low_open": low_open,
                                            "high_open": high_open}, **kwargs)

class Stage:
    """Base of the stage configs: fields are checked against their declared types and bounds."""

    def __post_init__(self) -> None:
        validate_fields(self)
        self.check()

    def check(self) -> None:
        """Rules that involve more than one field (none by default)."""



def stage_fields(stages: dict[str, type]) -> dict[str, str]:
    """Each flat field name and the stage that holds it."""
    owner: dict[str, str] = {}
    for stage, cls in stages.items():
        for f in dataclasses.fields(cls):
            if f.name in owner:
                raise TypeError(f"field {f.name!r} declared in two stages")
            owner[f.name] = stage
    return owner


def split_flat(values: dict[str, Any], stages: dict[str, type], source: str,
                allowed_extra: frozenset[str] = frozenset()) -> dict[str, dict[str, Any]]:
    """Group flat ``values`` by stage; a nested table named after a stage is taken as is."""
    owner = stage_fields(stages)
    grouped: dict[str, dict[str, Any]] = {stage: {} for stage in stages}
    for key, value in values.items():
        if key in stages and isinstance(value, dict):
            for inner_key, inner in value.items():
                if owner.get(inner_key) != key:
                    raise ValueError(f"{source}: unknown config key {inner_key!r} in [{key}]")
                grouped[key][inner_key] = inner
        elif key in owner:
            grouped[owner[key]][key] = value
        elif key not in allowed_extra:
            raise ValueError(f"{source}: unknown config key {key!r} (known: {', '.join(sorted(owner))})")
    return grouped


def parse_value(text: str) -> Any:
    """A setting's value written as text, read as in TOML (``32``, ``true``, ``0.5``, ``"text"``),
    and as plain text where it is not valid TOML (``uniform``)."""
    try:
        return tomllib.loads(f"value = {text.strip()}")["value"]
    except tomllib.TOMLDecodeError:
        return text.strip()


def parse_settings(settings: list[str]) -> dict[str, Any]:
    """``NAME=VALUE`` pairs (``--set``), each value read by :func:`parse_value`.

    Raises
    ------
    ValueError
        For an item without ``=``.
    """
    values: dict[str, Any] = {}
    for item in settings:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--set {item!r}: expected NAME=VALUE (e.g. --set rank=32)")
        values[name.strip()] = parse_value(text)
    return values


def load_toml(path: str | Path) -> dict[str, Any]:
    """Key/value pairs of a TOML preset (top level, or under ``[gwalign]``)."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ValueError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ValueError(f"{path}: is a directory, expected a TOML file") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a TOML file (not UTF-8 text: byte {err.object[err.start]:#04x} "
                         f"at offset {err.start})") from None
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path}: not valid TOML ({err})") from None
    if "gwalign" in data and isinstance(data["gwalign"], dict):
        data = data["gwalign"]
    return data


def validate_fields(obj: Any) -> None:
    """Check every field of a stage config against its declared type and bounds."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        _check_value(f.name, getattr(obj, f.name), hints[f.name], f.metadata)


def _check_value(name: str, value: Any, hint: Any, bounds: Any) -> None:
    args = typing.get_args(hint)
    if typing.get_origin(hint) is typing.Union and type(None) in args:
        if value is None:
            return
        hint = next(arg for arg in args if arg is not type(None))
    if typing.get_origin(hint) is Literal:
        if value not in typing.get_args(hint):
            raise ValueError(f"{name} must be one of {', '.join(typing.get_args(hint))}, got {value!r}")
    elif hint is bool:
        # A TOML string such as "false" would otherwise pass as a true value.
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {value!r}")
    elif hint is int:
        low = bounds.get("low")
        if isinstance(value, bool) or not isinstance(value, int) or (low is not None and value < low):
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    elif hint is float:
        _check_number(name, value, bounds)


def _check_number(name: str, value: Any, bounds: Any) -> None:
    low, high = bounds.get("low"), bounds.get("high")
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if bounds["low_open"] else value >= low
    if ok and high is not None:
        ok = value < high if bounds["high_open"] else value <= high
    if ok:
        return
    if high is None:
        raise ValueError(f"{name} must be a finite number {'>' if bounds['low_open'] else '>='} {low:g}, got {value!r}")
    left, right = "(" if bounds["low_open"] else "[", ")" if bounds["high_open"] else "]"
    raise ValueError(f"{name} must lie in {left}{low:g}, {high:g}{right}, got {value!r}")


