"""Finding and loading model and hardware specs by catalog name or by path.

The catalog is the `models/` and `hardware/` folders: at the repository's top level in a
checkout, and under `perfest/data/` in an installed wheel. Nothing is read at import time;
each file is parsed once per process (cached by path and modification time).
"""

from __future__ import annotations

import difflib
import json
from functools import cache, lru_cache
from pathlib import Path

import yaml

from perfest.errors import SpecFileError, UnknownNameError
from perfest.specs import HardwareSpec, ModelConfig, build

_PACKAGE = Path(__file__).resolve().parent


def _catalog_dir(kind: str) -> Path:
    """`kind` is "models" or "hardware": the installed copy first, then the checkout's."""
    for candidate in (_PACKAGE / "data" / kind, _PACKAGE.parent / kind):
        if candidate.is_dir():
            return candidate
    return _PACKAGE / "data" / kind


def read_yaml(path: Path) -> dict:
    """Parse a YAML mapping with `safe_load`; errors name the file and the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        raise SpecFileError(f"{path}{line}: invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise SpecFileError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise SpecFileError(f"{path}: expected a mapping of fields, got {type(data).__name__}")
    return data


@cache
def _load_file(path: Path, kind: str, _mtime: float):
    if path.suffix == ".json":
        from perfest.hf import model_from_hf_config

        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise SpecFileError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
        except OSError as exc:
            raise SpecFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
        if kind != "models":
            raise SpecFileError(f"{path}: a config.json describes a model, not hardware")
        return model_from_hf_config(data, where=str(path))
    data = read_yaml(path)
    data.setdefault("name", path.stem)
    cls = ModelConfig if kind == "models" else HardwareSpec
    return build(cls, data, where=str(path))


def _load_path(path: Path, kind: str):
    """Parse once per process; a file edited since is parsed again (keyed by its mtime)."""
    try:
        mtime = path.stat().st_mtime
    except OSError as exc:
        raise SpecFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return _load_file(path, kind, mtime)


@lru_cache(maxsize=2)
def _index(kind: str) -> dict[str, Path]:
    """Map every id and alias in the shipped catalog to its file."""
    index: dict[str, Path] = {}
    for path in sorted(_catalog_dir(kind).resolve().glob("*.yaml")):
        index[path.stem] = path
        for alias in read_yaml(path).get("aliases") or ():
            index.setdefault(str(alias).lower(), path)
    return index


def _looks_like_path(name: str) -> bool:
    return name.endswith((".yaml", ".yml", ".json")) or "/" in name or "\\" in name


@lru_cache(maxsize=256)
def _catalog_path(key: str, kind: str) -> Path | None:
    """The shipped file for an id or alias (the index of aliases is read only when needed)."""
    direct = _catalog_dir(kind).resolve() / f"{key}.yaml"
    if direct.is_file():  # the common case: no need to read every file for its aliases
        return direct
    return _index(kind).get(key)


def _resolve(name: str, kind: str):
    if _looks_like_path(name):
        return _load_path(Path(name).expanduser().resolve(), kind)
    return _catalog_entry(name, kind)


@lru_cache(maxsize=512)
def _catalog_entry(name: str, kind: str):
    """A shipped spec by id or alias, parsed once per process (the catalog does not change under
    a running process; a file given by path is re-read when it changes)."""
    key = name.strip().lower()
    path = _catalog_path(key, kind)
    if path is not None:
        return _load_path(path, kind)
    close = difflib.get_close_matches(key, list(_index(kind)), n=3, cutoff=0.5)
    hint = f"; closest: {', '.join(close)}" if close else f"; see `perfest list {kind}`"
    option, what = ("--model", "model") if kind == "models" else ("--gpu", "device")
    raise UnknownNameError(f"{option}: unknown {what} '{name}'{hint}")


def load_model(name: str | ModelConfig) -> ModelConfig:
    """A catalog id or alias, a path to a model YAML file, or a Hugging Face config.json."""
    if isinstance(name, ModelConfig):
        return name
    return _resolve(name, "models")


def load_hardware(name: str | HardwareSpec) -> HardwareSpec:
    """A catalog id or alias, or a path to a hardware YAML file (e.g. from `perfest calibrate`)."""
    if isinstance(name, HardwareSpec):
        return name
    return _resolve(name, "hardware")


def _ids(kind: str) -> list[str]:
    return sorted(path.stem for path in _catalog_dir(kind).glob("*.yaml"))


def list_models() -> list[str]:
    """Ids of the shipped models."""
    return _ids("models")


def list_hardware() -> list[str]:
    """Ids of the shipped devices."""
    return _ids("hardware")
