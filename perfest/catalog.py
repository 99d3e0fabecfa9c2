"""Finding and loading model and hardware specs by catalog name or by path.

The catalog is the `models/` and `hardware/` folders: at the repository's top level in a
checkout, and under `perfest/data/` in an installed wheel. Nothing is read at import time;
each file is parsed once per process (cached by path and modification time).
"""

from __future__ import annotations

import difflib
import json
import os
import re
import stat
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import yaml

from perfest.errors import ArgumentTypeError, SpecFileError, UnknownNameError
from perfest.specs import HardwareSpec, ModelConfig, build

#: The largest spec file read (a model or hardware YAML, a config.json is a few KB).
MAX_SPEC_BYTES = 1_000_000
#: What a parser may raise on hostile text besides its own errors: out-of-range numbers and
#: dates, integers past Python's digit limit, nesting deeper than the recursion limit.
_PARSE_ERRORS = (ValueError, OverflowError, RecursionError, TypeError)

_PACKAGE = Path(__file__).resolve().parent


def _catalog_dir(kind: str) -> Path:
    """`kind` is "models" or "hardware": the installed copy first, then the checkout's."""
    for candidate in (_PACKAGE / "data" / kind, _PACKAGE.parent / kind):
        if candidate.is_dir():
            return candidate
    return _PACKAGE / "data" / kind


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


def _problem(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return _one_line(exc) or type(exc).__name__


def read_text(path: Path, limit: int = MAX_SPEC_BYTES) -> str:
    """The UTF-8 text of a regular file of at most `limit` bytes. Opened without blocking and
    checked after opening, so a FIFO or a device can never hang the read; each problem is one
    SpecFileError naming the file."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise SpecFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except ValueError:  # an embedded NUL
        raise SpecFileError(f"{path!r}: not a valid file name") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise SpecFileError(f"{path}: not a regular file (a FIFO, device or socket)")
        if info.st_size > limit:
            raise SpecFileError(f"{path}: {info.st_size:,} bytes; a spec file is at most {limit:,}")
        try:
            data = f.read(limit + 1)
        except OSError as exc:
            raise SpecFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if len(data) > limit:
        raise SpecFileError(f"{path}: more than {limit:,} bytes; a spec file is at most {limit:,}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecFileError(
            f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading `1e3` as the number YAML 1.2 says it is (YAML 1.1, and
    so PyYAML, wants `1.0e+3` and reads `1e3` as text)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_yaml(text: str, where: str) -> dict:
    """Parse a YAML mapping safely; errors name the file (`where`) and the line."""
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        problem = _one_line(exc.problem or exc.context)
        raise SpecFileError(f"{where}{line}: invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise SpecFileError(f"{where}: invalid YAML: {_one_line(exc)}") from None
    except _PARSE_ERRORS as exc:
        raise SpecFileError(f"{where}: invalid YAML: {_problem(exc)}") from None
    if not isinstance(data, dict):
        raise SpecFileError(f"{where}: expected a mapping of fields, got {type(data).__name__}")
    return data


def parse_json(text: str, where: str) -> Any:
    """Parse JSON; errors name the file (`where`) and the line."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecFileError(f"{where}:{exc.lineno}: invalid JSON: {exc.msg}") from None
    except _PARSE_ERRORS as exc:
        raise SpecFileError(f"{where}: invalid JSON: {_problem(exc)}") from None


def read_yaml(path: Path) -> dict:
    """Parse a YAML file's mapping; errors name the file and the line."""
    return parse_yaml(read_text(path), str(path))


def spec_from_text(text: str, kind: str, where: str, json_file: bool = False, name: str = ""):
    """A ModelConfig or HardwareSpec (`kind` "models" or "hardware") from a file's text: a
    Hugging Face config.json (`json_file`) or a YAML mapping of fields; `name` when the text
    names none (the file's stem, or the folder of a config.json)."""
    if json_file:
        if kind != "models":
            raise SpecFileError(f"{where}: a config.json describes a model, not hardware")
        from perfest.hf import model_from_hf_config

        return model_from_hf_config(parse_json(text, where), where=where, folder=name)
    data = parse_yaml(text, where)
    data.setdefault("name", name or "custom")
    cls = ModelConfig if kind == "models" else HardwareSpec
    return build(cls, data, where=where)


@cache
def _load_file(path: Path, kind: str, _stamp: tuple):
    json_file = path.suffix.lower() == ".json"
    name = path.resolve().parent.name if json_file else path.stem
    return spec_from_text(read_text(path), kind, str(path), json_file, name)


def _load_path(path: Path, kind: str):
    """Parse once per process; a file edited since is parsed again (keyed by its mtime and
    size). A Hugging Face model folder stands for its config.json."""
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            if kind != "models":
                raise SpecFileError(f"{path}: a folder, not a hardware YAML file")
            path = path / "config.json"
            if not path.is_file():
                raise SpecFileError(
                    f"{path.parent}: a folder without a config.json (a Hugging Face model "
                    "folder holds one)"
                )
            info = path.stat()
    except OSError as exc:
        raise SpecFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except ValueError:  # an embedded NUL
        raise SpecFileError(f"{str(path)!r}: not a valid file name") from None
    return _load_file(path, kind, (info.st_mtime_ns, info.st_size))


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
        return _load_path(Path(name).expanduser(), kind)
    try:
        return _catalog_entry(name, kind)
    except UnknownNameError:
        path = Path(name).expanduser()
        if _exists(path):  # a file or a model folder in the working directory
            return _load_path(path, kind)
        raise


def _exists(path: Path) -> bool:
    try:
        return os.path.lexists(path)
    except (OSError, ValueError):
        return False


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
    arg, what = ("model", "model") if kind == "models" else ("hardware", "device")
    raise UnknownNameError(f"{arg}: unknown {what} '{name}'{hint}")


def load_model(name: str | os.PathLike | ModelConfig | dict) -> ModelConfig:
    """A catalog id or alias, a path (str or pathlib.Path) to a model YAML file, a Hugging Face
    config.json or model folder, a ModelConfig, or a dict of ModelConfig fields."""
    return _load(name, "models", "model")


def load_hardware(name: str | os.PathLike | HardwareSpec | dict) -> HardwareSpec:
    """A catalog id or alias, a path (str or pathlib.Path) to a hardware YAML file (e.g. from
    `perfest calibrate`), a HardwareSpec, or a dict of HardwareSpec fields."""
    return _load(name, "hardware", "hardware")


def _load(spec: Any, kind: str, arg: str):
    cls = ModelConfig if kind == "models" else HardwareSpec
    if isinstance(spec, cls):
        return spec
    if isinstance(spec, str):
        if not spec.isprintable():
            raise SpecFileError(f"{arg}: {spec!r} contains control characters")
        return _resolve(spec, kind)
    if isinstance(spec, os.PathLike):
        return _load_path(Path(spec).expanduser(), kind)
    if isinstance(spec, dict):
        return build(cls, {"name": "custom", **spec}, where=f"{arg} (dict)")
    raise ArgumentTypeError(
        f"{arg}: expected a catalog name or a file path (str or pathlib.Path), a "
        f"{cls.__name__}, or a dict of its fields; got {type(spec).__name__}"
    )


def _ids(kind: str) -> list[str]:
    return sorted(path.stem for path in _catalog_dir(kind).glob("*.yaml"))


def list_models() -> list[str]:
    """Ids of the shipped models."""
    return _ids("models")


def list_hardware() -> list[str]:
    """Ids of the shipped devices."""
    return _ids("hardware")
