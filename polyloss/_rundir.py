"""Run directories shared by ``sample`` and ``sweep``: a config file plus append-only records.

``DIR/run.json`` holds the configuration (with a ``schema`` tag); ``DIR/records.jsonl`` one JSON
record per finished unit of work, appended, flushed and fsync'ed at once, so a kill loses no
finished record. A torn final line (a kill mid-write) is dropped and truncated away on reading.
Resuming checks that the keys that determine the records are unchanged.
"""

from __future__ import annotations

import json
import os

from polyloss.errors import RunError, invalid

CONFIG = "run.json"
RECORDS = "records.jsonl"


def read_records(path: str) -> list[dict]:
    """Read a JSONL file, dropping (and truncating away) a torn last line."""
    if not os.path.exists(path):
        return []
    with open(path, "rb") as fh:
        raw = fh.read()
    good_end, records, pos = 0, [], 0
    for line in raw.split(b"\n"):
        end = pos + len(line) + 1
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                if end >= len(raw):  # the torn final line of a killed run
                    break
                lineno = raw[:pos].count(b"\n") + 1
                raise RunError(f"{path}: line {lineno} is not valid JSON; the run is corrupt") from None
        if end <= len(raw):
            good_end = end
        pos = end
    if good_end < len(raw):
        with open(path, "r+b") as fh:
            fh.truncate(good_end)
    return records


def load_config(run_dir: str, schema: str) -> dict:
    """The config of an existing run directory, checked against ``schema``."""
    run_dir = os.fspath(run_dir)
    cfg_path = os.path.join(run_dir, CONFIG)
    if not os.path.isdir(run_dir):
        raise RunError(f"run directory {run_dir!r} does not exist")
    if not os.path.exists(cfg_path):
        raise RunError(f"{run_dir!r} is not a polyloss run directory (no {CONFIG})")
    try:
        with open(cfg_path) as fh:
            config = json.load(fh)
    except json.JSONDecodeError as exc:
        raise RunError(f"{cfg_path}: invalid JSON ({exc})") from None
    if config.get("schema") != schema:
        raise RunError(f"{cfg_path}: schema {config.get('schema')!r}, expected {schema!r}")
    return config


def open_run(run_dir, config: dict, match_keys, resume: bool, grow_keys=()) -> tuple[dict, list[dict]]:
    """Create or resume a run directory; return (config as written, existing records).

    On resume every key in ``match_keys`` must equal the stored value; keys in ``grow_keys``
    (lists or ints: widths, samples, seeds) are merged (union / max) so a run can be extended.
    """
    run_dir = os.fspath(run_dir)
    cfg_path = os.path.join(run_dir, CONFIG)
    records: list[dict] = []
    config = json.loads(json.dumps(config))  # normalise (tuples → lists, keys → str)
    if os.path.exists(cfg_path):
        if not resume:
            raise RunError(f"`out`={run_dir!r} already holds a run; pass --resume to continue it or choose another directory")
        old = load_config(run_dir, config["schema"])
        for key in match_keys:
            if old.get(key) != config.get(key):
                raise RunError(
                    f"cannot resume {run_dir!r}: `{key}` was {old.get(key)!r}, now {config.get(key)!r}; "
                    f"only {', '.join(grow_keys) or 'nothing'} may change on --resume"
                )
        for key in grow_keys:
            a, b = old.get(key), config.get(key)
            config[key] = sorted(set(a) | set(b)) if isinstance(b, list) else max(a, b)
        records = read_records(os.path.join(run_dir, RECORDS))
    else:
        if os.path.exists(run_dir) and not os.path.isdir(run_dir):
            raise invalid("out", run_dir, "a directory path (a file of that name exists)", RunError)
        os.makedirs(run_dir, exist_ok=True)
    tmp = cfg_path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(config, fh, indent=2, sort_keys=True)
    os.replace(tmp, cfg_path)
    return config, records


class RecordWriter:
    """Append records durably: one JSON line, flushed and fsync'ed per record."""

    def __init__(self, run_dir):
        self._fh = open(os.path.join(os.fspath(run_dir), RECORDS), "a")

    def write(self, record: dict) -> None:
        self._fh.write(json.dumps(record) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
