"""Up-front checks of the paths a command reads or writes, with one-line errors.

Every command that writes (``sample``/``sweep``/``report``/``verify --out``, ``derive --output``)
checks its destination here *before* any work starts, so a long run never ends in an
``OSError`` traceback: empty names, NUL bytes, over-long names, /proc and /sys, a file where a
folder is needed (or the reverse), a missing or unwritable parent folder. :func:`read_json` reads
a JSON document that must be an object, turning binary/Latin-1 content, invalid JSON, NaN
constants and non-objects into one-line :class:`~polyloss.errors.PolylossError`\\ s.
"""

from __future__ import annotations

import json
import os

from polyloss.errors import DataError, PolylossError, SpecError, invalid

__all__ = ["check_out_dir", "check_out_file", "check_in_file", "read_json"]

#: Virtual file systems that look writable to root but are not places for results.
_VIRTUAL = ("/proc", "/sys", "/dev")


def _common(name: str, path, kind: str, exc) -> str:
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        raise invalid(name, path, f"a {kind} path (str or os.PathLike)", exc)
    path = os.fspath(path)
    if not isinstance(path, str) or not path.strip():
        raise invalid(name, path, f"a non-empty {kind} path", exc)
    if "\x00" in path:
        raise invalid(name, path, f"a {kind} path without NUL characters", exc)
    if path != path.strip():
        raise invalid(name, path, f"a {kind} path without leading or trailing spaces", exc)
    try:
        max_name = os.pathconf("/", "PC_NAME_MAX")
        max_path = os.pathconf("/", "PC_PATH_MAX")
    except (OSError, ValueError):  # pragma: no cover - non-POSIX
        max_name, max_path = 255, 4096
    if len(os.fsencode(path)) >= max_path or any(len(os.fsencode(p)) > max_name for p in path.split(os.sep)):
        raise invalid(name, path, f"a {kind} path with names of at most {max_name} bytes", exc)
    real = os.path.realpath(path)
    for root in _VIRTUAL:
        if real == root or real.startswith(root + os.sep):
            raise invalid(name, path, f"a {kind} path outside {', '.join(_VIRTUAL)} (virtual file systems)", exc)
    return path


def _nearest_existing(path: str) -> str:
    cur = os.path.abspath(path)
    while not os.path.lexists(cur):
        parent = os.path.dirname(cur)
        if parent == cur:
            break
        cur = parent
    return cur


def check_out_dir(name: str, path, *, exc: type[PolylossError] = SpecError) -> str:
    """Validate an output *directory* (created later if missing); returns ``os.fspath(path)``."""
    path = _common(name, path, "directory", exc)
    if os.path.lexists(path) and not os.path.isdir(path):
        raise invalid(name, path, "a directory path (a file of that name exists)", exc)
    base = _nearest_existing(path)
    if not os.path.isdir(base):
        raise invalid(name, path, f"a directory path ({base!r} is a file, not a folder)", exc)
    if not os.access(base, os.W_OK | os.X_OK):
        raise invalid(name, path, f"a directory you can write to ({base!r} is not writable)", exc)
    return path


def check_out_file(name: str, path, *, exc: type[PolylossError] = SpecError) -> str:
    """Validate an output *file* (overwritten if it exists); its folder must exist and be writable."""
    path = _common(name, path, "file", exc)
    if os.path.isdir(path) or path.endswith(os.sep):
        raise invalid(name, path, "a file path (a directory of that name exists)", exc)
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        what = "is a file" if os.path.lexists(parent) else "does not exist"
        raise invalid(name, path, f"a file in an existing folder ({parent!r} {what})", exc)
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise invalid(name, path, "a file you can write to (it is read-only)", exc)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise invalid(name, path, f"a file in a folder you can write to ({parent!r} is not writable)", exc)
    return path


def check_in_file(name: str, path, what: str, *, exc: type[PolylossError] = DataError) -> str:
    """Validate an existing, readable regular input file; ``what`` says what it should hold."""
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        raise invalid(name, path, f"a path to {what}", exc)
    path = os.fspath(path)
    if not path.strip() or "\x00" in path:
        raise invalid(name, path, f"a path to {what}", exc)
    try:
        exists, isdir = os.path.exists(path), os.path.isdir(path)
    except (OSError, ValueError):
        exists, isdir = False, False
    if not exists:
        raise exc(f"`{name}`={path!r} does not exist; expected {what}")
    if isdir:
        raise exc(f"`{name}`={path!r} is a directory; expected {what}")
    if not os.access(path, os.R_OK):
        raise exc(f"`{name}`={path!r} is not readable; expected {what}")
    return path


def _no_constants(token: str):
    raise ValueError(f"non-standard JSON constant {token}")


def read_json(path, what: str, *, name: str = "file", exc: type[PolylossError] = DataError,
              max_bytes: int = 1 << 30) -> dict:
    """Read a JSON *object* from ``path`` (strict UTF-8, no NaN/Infinity), with one-line errors."""
    path = check_in_file(name, path, what, exc=exc)
    try:
        size = os.path.getsize(path)
        if size > max_bytes:
            raise exc(f"{path}: {size} bytes is too large for {what} (limit {max_bytes})")
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc_:
        raise exc(f"{path}: cannot be read ({exc_.strerror}); expected {what}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise exc(f"{path}: not UTF-8 text (byte {e.start}: {raw[e.start:e.start + 1]!r}); expected {what}") from None
    try:
        doc = json.loads(text, parse_constant=_no_constants)
    except ValueError as e:  # JSONDecodeError or a NaN/Infinity constant
        raise exc(f"{path}: invalid JSON ({e}); expected {what}") from None
    except RecursionError:
        raise exc(f"{path}: JSON nested too deeply; expected {what}") from None
    if not isinstance(doc, dict):
        raise exc(f"{path}: a JSON {type(doc).__name__}, expected {what} (a JSON object)")
    return doc
