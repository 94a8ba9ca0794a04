"""Run directories shared by ``sample``, ``sweep`` and the claims' per-network runs: a config file
plus append-only records, under an advisory lock.

``DIR/run.json`` holds the configuration (with a ``schema`` tag); ``DIR/records.jsonl`` one JSON
record per finished unit of work, appended, flushed and fsync'ed at once, so a kill loses no
finished record. A writer holds ``DIR/.lock`` (an exclusive ``fcntl.flock``) for its whole run, so
two processes never compute into one directory; only the lock holder repairs the file (a torn final
line of a killed run is truncated away, a complete final line that lost its newline gets it back).
Readers never modify the file: they drop a torn final line in memory, validate every record
(naming the file and line), and refuse duplicate records of one unit unless they are identical
apart from their timing. Resuming checks that the keys that determine the records are unchanged.
"""

from __future__ import annotations

import errno
import json
import math
import numbers
import os
from contextlib import contextmanager

from polyloss._jsonsafe import dumps
from polyloss.errors import RunError, invalid

CONFIG = "run.json"
RECORDS = "records.jsonl"
LOCK = ".lock"
_VOLATILE = ("seconds",)  # fields that may differ between two computations of one record


def _is_int(v, minimum: int) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= minimum


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


# Field checks shared by every record kind: name -> (predicate, what is valid).
FIELD_CHECKS = {
    "width": (lambda v: _is_int(v, 1), "an integer >= 1"),
    "sample": (lambda v: _is_int(v, 0), "an integer >= 0"),
    "eta_opt": (lambda v: _is_number(v) and v > 0, "a finite number > 0"),
    "loss_at_eta_opt": (_is_number, "a finite number"),
    "at_edge": (lambda v: isinstance(v, bool), "true or false"),
    "local_minima": (lambda v: isinstance(v, list), "a list"),
    "loss_coefficients": (lambda v: isinstance(v, list) and all(c is None or _is_number(c) for c in v),
                          "a list of numbers (null beyond float64's range)"),
    "curve_loss": (lambda v: isinstance(v, list), "a list"),
    "losses": (lambda v: isinstance(v, list), "a list"),
}


def read_records(path: str, *, required=(), key=("width", "sample"), repair: bool = False) -> list[dict]:
    """Read and validate a JSONL records file.

    Every record must be a JSON object holding the fields ``required`` (checked by
    :data:`FIELD_CHECKS` where listed there). Records with the same ``key`` fields are allowed only
    when identical apart from their timing, and are then kept once. A final line that is not valid
    JSON (a kill mid-write) is dropped; with ``repair`` (only under the run's lock) it is truncated
    away, and a complete final line without its newline gets one.
    """
    if not os.path.exists(path):
        return []
    if not os.path.isfile(path):
        raise RunError(f"{path} is not a file; the run directory is corrupt")
    with open(path, "rb") as fh:
        raw = fh.read()
    records, first_line, seen = [], {}, {}
    lines = raw.split(b"\n")
    good_end, pos, missing_newline = 0, 0, False
    for lineno, line in enumerate(lines, start=1):
        last = lineno == len(lines)
        end = pos + len(line) + (0 if last else 1)
        if line.strip():
            try:
                rec = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                if last:  # the torn final line of a killed run
                    break
                raise RunError(f"{path}: line {lineno} is not valid JSON; the run is corrupt") from None
            _check_record(rec, path, lineno, required)
            k = tuple(rec[f] for f in key) if key else None
            if k is not None and k in seen:
                j = seen[k]
                if _strip(records[j]) != _strip(rec):
                    names = ", ".join(f"{f}={v}" for f, v in zip(key, k))
                    raise RunError(f"{path}: lines {first_line[k]} and {lineno} are two different records for {names}; "
                                   "the run is corrupt (two processes wrote into it?)")
            else:
                if k is not None:
                    seen[k], first_line[k] = len(records), lineno
                records.append(rec)
            missing_newline = last
        good_end = end
        pos = end
    if repair:
        if good_end < len(raw):
            with open(path, "r+b") as fh:
                fh.truncate(good_end)
        elif missing_newline:
            with open(path, "ab") as fh:
                fh.write(b"\n")
                fh.flush()
                os.fsync(fh.fileno())
    return records


def _strip(rec: dict) -> dict:
    return {k: v for k, v in rec.items() if k not in _VOLATILE}


def _check_record(rec, path: str, lineno: int, required) -> None:
    if not isinstance(rec, dict):
        raise RunError(f"{path}: line {lineno} is a JSON {type(rec).__name__}, not a record (object); the run is corrupt")
    for name in required:
        if name not in rec:
            raise RunError(f"{path}: line {lineno} lacks the field `{name}`; the run is corrupt")
        check = FIELD_CHECKS.get(name)
        if check is not None and not check[0](rec[name]):
            raise RunError(f"{path}: line {lineno}: `{name}`={rec[name]!r} is invalid: must be {check[1]}")


def _is_exponent(v) -> bool:
    from fractions import Fraction

    try:
        return isinstance(v, str) and abs(Fraction(v)) <= 64
    except (ValueError, ZeroDivisionError):
        return False


# Typed checks of run.json keys (where present and required): name -> (predicate, what is valid).
CONFIG_CHECKS = {
    "depth": (lambda v: _is_int(v, 1), "an integer >= 1"),
    "steps": (lambda v: _is_int(v, 1), "an integer >= 1"),
    "degree": (lambda v: _is_int(v, 0), "an integer >= 0"),
    "seed": (lambda v: _is_int(v, 0), "an integer >= 0"),
    "samples": (lambda v: _is_int(v, 1), "an integer >= 1"),
    "seeds": (lambda v: _is_int(v, 1), "an integer >= 1"),
    "m": (lambda v: _is_int(v, 1), "an integer >= 1"),
    "input_dim": (lambda v: _is_int(v, 1), "an integer >= 1"),
    "n_grid": (lambda v: _is_int(v, 2), "an integer >= 2"),
    "window": (lambda v: _is_number(v) and v > 0, "a finite number > 0"),
    "widths": (lambda v: isinstance(v, list) and bool(v) and all(_is_int(w, 1) for w in v), "a non-empty list of integers >= 1"),
    "param": (lambda v: isinstance(v, dict) and isinstance(v.get("name"), str) and _is_exponent(v.get("alpha"))
              and _is_exponent(v.get("gamma")), "an object {name, alpha, gamma} with rational exponents"),
    "data": (lambda v: isinstance(v, dict) and isinstance(v.get("kind"), str), "an object with a `kind` (e.g. synthetic, file)"),
    "curve_etas": (lambda v: isinstance(v, list) and all(_is_number(e) for e in v), "a list of finite numbers"),
    "etas": (lambda v: isinstance(v, list) and bool(v) and all(_is_number(e) and e >= 0 for e in v),
             "a non-empty list of finite numbers >= 0"),
}


def read_config(run_dir) -> dict:
    """``run_dir/run.json`` as a JSON object (any schema), or a one-line :class:`RunError` saying why not."""
    run_dir = os.fspath(run_dir)
    cfg_path = os.path.join(run_dir, CONFIG)
    if not os.path.isdir(run_dir):
        raise RunError(f"run directory {run_dir!r} does not exist" if not os.path.exists(run_dir)
                       else f"{run_dir!r} is a file, not a run directory")
    if not os.path.isfile(cfg_path):
        raise RunError(f"{run_dir!r} is not a polyloss run directory (no {CONFIG} file)")
    try:
        with open(cfg_path, "rb") as fh:
            config = json.loads(fh.read().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        kind = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else "not valid JSON"
        raise RunError(f"{cfg_path}: {kind}; the run directory is corrupt") from None
    if not isinstance(config, dict):
        raise RunError(f"{cfg_path}: a JSON {type(config).__name__}, expected an object with a `schema`")
    return config


def load_config(run_dir: str, schema: str, required=()) -> dict:
    """The config of an existing run directory, checked against ``schema`` and the ``required`` keys
    (typed by :data:`CONFIG_CHECKS` where listed there)."""
    config = read_config(run_dir)
    cfg_path = os.path.join(os.fspath(run_dir), CONFIG)
    if config.get("schema") != schema:
        raise RunError(f"{cfg_path}: schema {config.get('schema')!r}, expected {schema!r}")
    missing = [k for k in required if k not in config]
    if missing:
        raise RunError(f"{cfg_path}: lacks {', '.join(f'`{k}`' for k in missing)}; the run directory is corrupt")
    for key in required:
        check = CONFIG_CHECKS.get(key)
        if check is not None and not check[0](config[key]):
            raise RunError(f"{cfg_path}: `{key}`={config[key]!r} is invalid: must be {check[1]}; the run directory is corrupt")
    return config


def load_run_config(run_dir, schema: str, required, defaults: dict | None = None) -> dict:
    """:func:`load_config` for a sample or sweep run: keys in ``defaults`` may be absent (run.json
    written before they existed) and take their default; a ``recipe`` block is normalised through
    :func:`polyloss.poly.as_recipe`, or refused in one line."""
    from polyloss.errors import SpecError
    from polyloss.poly import as_recipe  # local: poly imports the engines, _rundir stays light

    defaults = dict(defaults or {})
    config = load_config(run_dir, schema, required=tuple(k for k in required if k not in defaults))
    for key, value in defaults.items():
        config.setdefault(key, value)
    if "recipe" in config:
        try:
            config["recipe"] = as_recipe(config["recipe"]).to_dict()
        except SpecError as exc:
            raise RunError(f"{os.path.join(os.fspath(run_dir), CONFIG)}: {exc}; the run directory is corrupt") from None
    return config


class RunLock:
    """An exclusive advisory lock on a run directory (``DIR/.lock``), held by one writer at a time."""

    def __init__(self, run_dir):
        import fcntl

        self.path = os.path.join(os.fspath(run_dir), LOCK)
        self._fh = open(self.path, "a+")
        try:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self._fh.seek(0)
            holder = self._fh.read().strip() or "another process"
            self._fh.close()
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise RunError(f"run directory {os.path.dirname(self.path)!r} is in use by {holder}; "
                               "wait for it to finish (then --resume) or choose another directory") from None
            raise
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(f"polyloss process {os.getpid()}\n")
        self._fh.flush()

    def release(self) -> None:
        if not self._fh.closed:
            self._fh.close()  # closing drops the flock


def _prepare_dir(run_dir: str) -> None:
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise invalid("out", run_dir, "a directory path (a file of that name exists)", RunError)
    os.makedirs(run_dir, exist_ok=True)


def open_run(run_dir, config: dict, match_keys, resume: bool, grow_keys=(), required=(),
             defaults=None) -> tuple[dict, list[dict]]:
    """Create or resume a run directory; return (config as written, existing records).

    The caller must hold the directory's :class:`RunLock` (see :func:`run_session`). On resume
    every key in ``match_keys`` must equal the stored value; keys in ``grow_keys`` (lists or ints:
    widths, samples, seeds) are merged (union / max) so a run can be extended — the caller then
    computes every unit of the *merged* config, so run.json never claims records it lacks.
    ``defaults`` ({key: value}): match keys that an older run.json may lack, and the value their
    absence means (e.g. the plain training recipe); such a run resumes when the value matches.
    """
    defaults = dict(defaults or {})
    run_dir = os.fspath(run_dir)
    cfg_path = os.path.join(run_dir, CONFIG)
    records: list[dict] = []
    config = json.loads(json.dumps(config))  # normalise (tuples → lists, keys → str)
    if os.path.exists(cfg_path):
        if not resume:
            raise RunError(f"`out`={run_dir!r} already holds a run; pass --resume to continue it or choose another directory")
        old = load_config(run_dir, config["schema"],
                          required=tuple(k for k in match_keys if k not in defaults) + tuple(grow_keys))
        for key, value in defaults.items():
            old.setdefault(key, value)
        for key in match_keys:
            if old.get(key) != config.get(key):
                raise RunError(
                    f"cannot resume {run_dir!r}: `{key}` was {old.get(key)!r}, now {config.get(key)!r}; "
                    f"only {', '.join(grow_keys) or 'nothing'} may change on --resume"
                )
        for key in grow_keys:
            a, b = old.get(key), config.get(key)
            if isinstance(b, list):
                if not isinstance(a, list):
                    raise RunError(f"{cfg_path}: `{key}`={a!r} is invalid: must be a list; the run directory is corrupt")
                config[key] = sorted(set(a) | set(b))
            else:
                if not _is_int(a, 0):
                    raise RunError(f"{cfg_path}: `{key}`={a!r} is invalid: must be an integer; the run directory is corrupt")
                config[key] = max(a, b)
        records = read_records(os.path.join(run_dir, RECORDS), required=required, repair=True)
    tmp = cfg_path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(config, fh, indent=2, sort_keys=True)
    os.replace(tmp, cfg_path)
    return config, records


@contextmanager
def run_session(run_dir, config: dict, match_keys, resume: bool, grow_keys=(), required=(), defaults=None):
    """Lock ``run_dir``, open (create or resume) the run, and yield ``(config, records, writer)``;
    the lock is held until the block ends, so a second process on the directory fails at once."""
    run_dir = os.fspath(run_dir)
    _prepare_dir(run_dir)
    lock = RunLock(run_dir)
    try:
        config, records = open_run(run_dir, config, match_keys, resume, grow_keys, required, defaults)
        with RecordWriter(run_dir) as writer:
            yield config, records, writer
    finally:
        lock.release()


class RecordWriter:
    """Append records durably: one JSON line, flushed and fsync'ed per record."""

    def __init__(self, run_dir):
        self._fh = open(os.path.join(os.fspath(run_dir), RECORDS), "a")

    def write(self, record: dict) -> None:
        self._fh.write(dumps(record) + "\n")  # strict JSON: a non-finite float is written as null
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
