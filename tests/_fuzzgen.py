"""A seeded generator of malformed ``polyloss`` invocations, files and run directories.

Used by ``tests/test_fuzz.py`` (and runnable by hand: ``python tests/_fuzzgen.py --cases 1500``).
Every case is an argv for :func:`polyloss.cli.main` and what it must end with:

* ``"error"``: the input is invalid — exit code 2 and exactly one line on stderr;
* ``"ok"``: the input is valid (and cheap) — exit code 0;
* ``"any"``: a random combination that may or may not be valid — 0, or 2 with one line.

Whatever the expectation, no exception other than ``SystemExit`` may escape ``main`` and every
case must finish within the time bound. The corpus is reproducible from ``(seed, count)`` with
``random.Random`` only (no new dependencies); the fixture files are written once per corpus.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import resource
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field

import numpy as np

D, M, WIDTH, DEPTH = 3, 6, 4, 2


@dataclass
class Case:
    argv: list
    expect: str  # "error" | "ok" | "any"
    category: str


@dataclass
class Outcome:
    case: Case
    rc: int | None
    stdout: str
    stderr: str
    seconds: float
    problem: str | None = None  # None: as expected; else "traceback", "hang", "multi-line", "rc"
    detail: str = ""
    extra: dict = field(default_factory=dict)


class _Hang(BaseException):
    pass


# ------------------------------------------------------------------------------------- fixtures
def _write(path, data: bytes) -> str:
    with open(path, "wb") as fh:
        fh.write(data)
    return str(path)


def _read(path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def _npz(path, **arrays) -> str:
    np.savez(path, **arrays)
    return str(path)


def build_fixtures(root) -> dict:
    """Write valid and malformed data, weights, JSON files and run directories under ``root``."""
    from polyloss.cli import main as cli_main
    from polyloss.data import linear_teacher
    from polyloss.spec import NetworkSpec, Parametrization
    from polyloss.weights import sample_weights

    root = str(root)
    os.makedirs(root, exist_ok=True)
    j = lambda *p: os.path.join(root, *p)  # noqa: E731
    rng = np.random.default_rng(0)
    fx: dict[str, str] = {"root": root}

    ds = linear_teacher(d=D, m=M, seed=1)
    fx["data"] = j("data.npz")
    ds.to_npz(fx["data"])
    fx["data_csv"] = j("data.csv")
    np.savetxt(fx["data_csv"], np.column_stack([ds.X, ds.y]), delimiter=",", header="x1,x2,x3,y", comments="")
    w = sample_weights(NetworkSpec(DEPTH, WIDTH, D), Parametrization.preset("mup"), np.random.SeedSequence(0))
    fx["weights"] = j("w.npz")
    w.to_npz(fx["weights"])
    arrays = dict(np.load(fx["weights"]))

    good_npz = _read(fx["data"])
    bad_data = {
        "binary.npz": _write(j("binary.npz"), rng.bytes(300)),
        "empty.npz": _write(j("empty.npz"), b""),
        "truncated.npz": _write(j("truncated.npz"), good_npz[: len(good_npz) // 2]),
        "text.npz": _write(j("text.npz"), b"X,y\n1,2\n"),
        "complex.npz": _npz(j("complex.npz"), X=ds.X + 1j * ds.X, y=ds.y),
        "complex_y.npz": _npz(j("complex_y.npz"), X=ds.X, y=ds.y + 0.5j),
        "overflow.npz": _npz(j("overflow.npz"), X=ds.X * 1e200, y=ds.y * 1e200),
        "overflow_y.npz": _npz(j("overflow_y.npz"), X=ds.X, y=ds.y * 1e250),
        "tiny.npz": _npz(j("tiny.npz"), X=ds.X * 1e-300, y=ds.y * 1e-300),
        "zero_y.npz": _npz(j("zero_y.npz"), X=ds.X, y=np.zeros(M)),
        "nan.npz": _npz(j("nan.npz"), X=np.where(ds.X > 0, np.nan, ds.X), y=ds.y),
        "inf.npz": _npz(j("inf.npz"), X=ds.X, y=np.full(M, np.inf)),
        "onlyX.npz": _npz(j("onlyX.npz"), X=ds.X),
        "shape.npz": _npz(j("shape.npz"), X=ds.X[:, :, None], y=ds.y),
        "rows.npz": _npz(j("rows.npz"), X=ds.X, y=ds.y[:-1]),
        "emptyX.npz": _npz(j("emptyX.npz"), X=np.zeros((0, D)), y=np.zeros(0)),
        "strings.npz": _npz(j("strings.npz"), X=np.array([["a"] * D] * M), y=np.array(["b"] * M)),
        "bool.npz": _npz(j("bool.npz"), X=ds.X > 0, y=ds.y > 0),
        "scalar.npz": _npz(j("scalar.npz"), X=np.float64(1.0), y=np.float64(2.0)),
        "latin1.csv": _write(j("latin1.csv"), "x1,é,y\n1,2,3\n4,5,6\n".encode("latin-1")),
        "latin1data.csv": _write(j("latin1data.csv"), "1,2,3\n4,5\xe9,6\n".encode("latin-1")),
        "binary.csv": _write(j("binary.csv"), rng.bytes(400)),
        "nul.csv": _write(j("nul.csv"), b"1,2,3\n\x00\x00,1,2\n"),
        "empty.csv": _write(j("empty.csv"), b""),
        "header.csv": _write(j("header.csv"), b"x1,x2,y\n"),
        "ragged.csv": _write(j("ragged.csv"), b"1,2,3\n4,5\n"),
        "onecol.csv": _write(j("onecol.csv"), b"1\n2\n3\n"),
        "nan.csv": _write(j("nan.csv"), b"1,2,3\nnan,5,6\n"),
        "e400.csv": _write(j("e400.csv"), b"1,2,3\n1e400,5,6\n"),
        "bigcsv.csv": _write(j("bigcsv.csv"), b"1e300,2e300,3\n4e300,5,6e300\n"),
        "complex.csv": _write(j("complex.csv"), b"1,2,3\n1+2j,2,3\n4,5,6\n"),
        "utf16.csv": _write(j("utf16.csv"), "1,2,3\n4,5,6\n".encode("utf-16")),
        "data.txt": _write(j("data.txt"), b"1,2,3\n"),
        "noext": _write(j("noext"), good_npz),
    }
    os.makedirs(j("dir.npz"), exist_ok=True)
    os.makedirs(j("dir.csv"), exist_ok=True)
    bad_data["dir.npz"] = j("dir.npz")
    bad_data["dir.csv"] = j("dir.csv")
    bad_data["missing.npz"] = j("missing", "nothing.npz")
    fx["bad_data"] = bad_data
    fx["bom_csv"] = _write(j("bom.csv"), ("\ufeff" + _read(fx["data_csv"]).decode()).encode())  # valid: UTF-8 with a BOM

    def wvar(name, **changes):
        a = dict(arrays)
        for k, v in changes.items():
            if v is None:
                a.pop(k, None)
            else:
                a[k] = v
        return _npz(j(name), **a)

    n = WIDTH
    bad_w = {
        "binary": _write(j("wbinary.npz"), rng.bytes(500)),
        "empty": _write(j("wempty.npz"), b""),
        "complex": wvar("wcomplex.npz", W1=arrays["W1"] + 1j),
        "complexV": wvar("wcomplexV.npz", V=arrays["V"] * (1 + 1j)),
        "overflow": wvar("woverflow.npz", W1=arrays["W1"] * 1e200, W2=arrays["W2"] * 1e200),
        "overflowV": wvar("woverflowV.npz", V=arrays["V"] * 1e300),
        "nan": wvar("wnan.npz", W2=arrays["W2"] * np.nan),
        "noV": wvar("wnoV.npz", V=None),
        "noW0": wvar("wnoW0.npz", W0=None),
        "gap": wvar("wgap.npz", W2=None, W3=arrays["W2"]),
        "nohidden": wvar("wnohidden.npz", W1=None, W2=None),
        "extra": wvar("wextra.npz", B1=np.zeros(n)),
        "shape": wvar("wshape.npz", W1=np.zeros((n, n + 1))),
        "W0d": wvar("wW0d.npz", W0=np.zeros((n, D + 2))),
        "V2d": wvar("wV2d.npz", V=np.zeros((2, n))),
        "W0_1d": wvar("wW01d.npz", W0=np.zeros(n)),
        "strings": wvar("wstrings.npz", V=np.array(["a"] * n)),
        "emptyV": _npz(j("wemptyV.npz"), W0=np.zeros((0, D)), W1=np.zeros((0, 0)), V=np.zeros(0)),
        "dir": j("dir.npz"),
        "missing": j("missing", "w.npz"),
        "data_as_weights": fx["data"],
    }
    fx["bad_weights"] = bad_w

    # derivation JSON files (compare/report --derivation)
    bad_json = {
        "binary": _write(j("binary.json"), rng.bytes(200)),
        "latin1": _write(j("latin1.json"), '{"schema": "caf\xe9"}'.encode("latin-1")),
        "array": _write(j("array.json"), b"[1, 2, 3]"),
        "empty": _write(j("empty.json"), b""),
        "object": _write(j("object.json"), b'{"schema": "polyloss.derivation/1"}'),
        "wrongschema": _write(j("wrongschema.json"), b'{"schema": "nope", "loss_coefficients": ["1"]}'),
        "badcoef": _write(j("badcoef.json"), json.dumps({"schema": "polyloss.derivation/1", "kind": "data",
                                                          "loss_coefficients": ["x", None, []]}).encode()),
        "nan": _write(j("nan.json"), b'{"schema": "polyloss.derivation/1", "loss_coefficients": [NaN]}'),
        "npz": fx["data"],
        "dir": j("dir.npz"),
        "missing": j("missing", "lim.json"),
    }
    fx["bad_json"] = bad_json

    # valid run directories
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        rc1 = cli_main(["sample", "--depth", "2", "--widths", "4,8", "--samples", "2", "--steps", "1", "--d", str(D),
                        "--m", str(M), "--quiet", "--out", j("run_sample")])
        rc2 = cli_main(["sweep", "--depth", "2", "--widths", "4,8", "--seeds", "2", "--steps", "1", "--d", str(D),
                        "--m", str(M), "--etas", "lin:0.1:1:4", "--quiet", "--out", j("run_sweep")])
    assert rc1 == 0 and rc2 == 0, "valid fixture runs failed"
    fx["run_sample"], fx["run_sweep"] = j("run_sample"), j("run_sweep")
    fx["bad_runs"] = _corrupt_runs(root, fx["run_sample"], fx["run_sweep"], rng)

    # output paths
    fx["a_file"] = _write(j("a_file.txt"), b"not a directory\n")
    fx["bad_out"] = {
        "empty": "",
        "blank": "   ",
        "proc": "/proc/polyloss-fuzz-out",
        "sys": "/sys/polyloss-fuzz-out",
        "proc_nested": "/proc/self/polyloss/out",
        "file": fx["a_file"],
        "under_file": os.path.join(fx["a_file"], "sub"),
        "nul": root + "/bad\x00name",
        "long": j("x" * 300),
    }
    return fx


def _corrupt_runs(root, run_sample, run_sweep, rng) -> dict:
    """Copies of the valid runs with one thing broken each."""
    import shutil

    out = {}
    cfg = json.loads(_read(os.path.join(run_sample, "run.json")))
    recs = [json.loads(line) for line in _read(os.path.join(run_sample, "records.jsonl")).splitlines()]
    scfg = json.loads(_read(os.path.join(run_sweep, "run.json")))
    srecs = [json.loads(line) for line in _read(os.path.join(run_sweep, "records.jsonl")).splitlines()]

    def make(name, config=None, records=None, raw_config=None, raw_records=None, base="sample"):
        d = os.path.join(root, "runs", name)
        os.makedirs(d, exist_ok=True)
        if raw_config is not None:
            _write(os.path.join(d, "run.json"), raw_config)
        elif config is not None:
            _write(os.path.join(d, "run.json"), json.dumps(config).encode())
        if raw_records is not None:
            _write(os.path.join(d, "records.jsonl"), raw_records)
        elif records is not None:
            _write(os.path.join(d, "records.jsonl"), "".join(json.dumps(r) + "\n" for r in records).encode())
        out[name] = d

    def with_rec(i, **changes):
        rs = [dict(r) for r in recs]
        for k, v in changes.items():
            if v is _DROP:
                rs[i].pop(k, None)
            else:
                rs[i][k] = v
        return rs

    def with_cfg(base, **changes):
        c = dict(base)
        for k, v in changes.items():
            if v is _DROP:
                c.pop(k, None)
            else:
                c[k] = v
        return c

    make("cfg_binary", raw_config=rng.bytes(100), records=recs)
    make("cfg_latin1", raw_config='{"schema": "polyloss.sample/1", "x": "\xe9"}'.encode("latin-1"), records=recs)
    make("cfg_array", raw_config=b"[1, 2]", records=recs)
    make("cfg_string", raw_config=b'"run"', records=recs)
    make("cfg_empty", raw_config=b"", records=recs)
    make("cfg_missing", records=recs)
    make("cfg_schema", config=with_cfg(cfg, schema="polyloss.other/1"), records=recs)
    for key in ("depth", "steps", "param", "window", "data", "curve_etas", "widths", "m", "degree"):
        make(f"cfg_no_{key}", config=with_cfg(cfg, **{key: _DROP}), records=recs)
    make("cfg_depth_str", config=with_cfg(cfg, depth="two"), records=recs)
    make("cfg_depth_neg", config=with_cfg(cfg, depth=-1), records=recs)
    make("cfg_param_str", config=with_cfg(cfg, param="mup"), records=recs)
    make("cfg_param_bad", config=with_cfg(cfg, param={"name": "mup", "alpha": "x", "gamma": "0"}), records=recs)
    make("cfg_window_nan", raw_config=json.dumps(with_cfg(cfg, window=float("nan"))).encode(), records=recs)
    make("cfg_data_null", config=with_cfg(cfg, data=None), records=recs)
    make("cfg_data_file", config=with_cfg(cfg, data={"kind": "file", "path": "/nonexistent.npz", "sha256": "0"}), records=recs)
    make("cfg_data_unknown", config=with_cfg(cfg, data={"kind": "martian"}), records=recs)
    make("cfg_nan_json", raw_config=json.dumps(cfg).replace('"window": ', '"window": NaN, "w0": ').encode(), records=recs)
    make("rec_binary", config=cfg, raw_records=rng.bytes(300) + b"\n" + rng.bytes(10) + b"\n")
    make("rec_latin1", config=cfg, raw_records='{"width": "\xe9"}\n{}\n'.encode("latin-1"))
    make("rec_array", config=cfg, raw_records=b"[1, 2, 3]\n[4]\n")
    make("rec_scalar", config=cfg, raw_records=b"1\n2\n")
    make("rec_empty_obj", config=cfg, raw_records=b"{}\n{}\n")
    make("rec_empty_file", config=cfg, raw_records=b"")
    for key in ("width", "sample", "loss_coefficients", "eta_opt", "at_edge", "curve_loss", "local_minima"):
        make(f"rec_no_{key}", config=cfg, records=with_rec(0, **{key: _DROP}))
    make("rec_width_str", config=cfg, records=with_rec(0, width="4"))
    make("rec_width_float", config=cfg, records=with_rec(0, width=4.5))
    make("rec_width_null", config=cfg, records=with_rec(0, width=None))
    make("rec_width_neg", config=cfg, records=with_rec(0, width=-4))
    make("rec_eta_null", config=cfg, records=with_rec(1, eta_opt=None))
    make("rec_eta_str", config=cfg, records=with_rec(1, eta_opt="fast"))
    make("rec_coef_null", config=cfg, records=with_rec(1, loss_coefficients=[None, 1.0]))
    make("rec_coef_short", config=cfg, records=with_rec(1, loss_coefficients=[]))
    make("rec_coef_str", config=cfg, records=with_rec(1, loss_coefficients="abc"))
    make("rec_curve_short", config=cfg, records=with_rec(1, curve_loss=[1.0]))
    make("rec_nan", config=cfg, raw_records=("".join(json.dumps(r) + "\n" for r in recs[:-1])
                                             + json.dumps(recs[-1]).replace('"eta_opt": ', '"eta_opt": NaN, "x": ')
                                             + "\n").encode())
    make("rec_dup", config=cfg, records=recs + recs[:1])
    make("rec_mid_garbage", config=cfg, raw_records=(json.dumps(recs[0]) + "\n{not json\n" + json.dumps(recs[1]) + "\n").encode())
    # sweep runs
    make("sweep_cfg_array", raw_config=b"[]", records=srecs)
    make("sweep_no_etas", config=with_cfg(scfg, etas=_DROP), records=srecs)
    make("sweep_etas_str", config=with_cfg(scfg, etas="lin:0:1:3"), records=srecs)
    make("sweep_rec_losses_str", config=scfg, records=[dict(srecs[0], losses="x")] + srecs[1:])
    make("sweep_rec_losses_short", config=scfg, records=[dict(srecs[0], losses=[[1.0]])] + srecs[1:])
    make("sweep_rec_no_losses", config=scfg, records=[{k: v for k, v in srecs[0].items() if k != "losses"}] + srecs[1:])
    make("sweep_rec_array", config=scfg, raw_records=b"[[1]]\n")
    make("sweep_rec_width_str", config=scfg, records=[dict(srecs[0], width="8")] + srecs[1:])
    # structural
    d = os.path.join(root, "runs", "cfg_is_dir")
    os.makedirs(os.path.join(d, "run.json"), exist_ok=True)
    out["cfg_is_dir"] = d
    d = os.path.join(root, "runs", "rec_is_dir")
    os.makedirs(os.path.join(d, "records.jsonl"), exist_ok=True)
    shutil.copy(os.path.join(run_sample, "run.json"), os.path.join(d, "run.json"))
    out["rec_is_dir"] = d
    out["empty_dir"] = os.path.join(root, "runs", "empty_dir")
    os.makedirs(out["empty_dir"], exist_ok=True)
    out["missing"] = os.path.join(root, "runs", "does_not_exist")
    out["a_file"] = _write(os.path.join(root, "runs", "plain_file"), b"hello")
    return out


#: Corrupt run directories left out of the asserted corpus while their loaders were being fixed
#: (POLYLOSS_FUZZ_ALL=1 includes them anyway). Empty: every loader now refuses them in one line.
KNOWN_OTHERS: tuple = ()


def without_known(cases, fx) -> list:
    if os.environ.get("POLYLOSS_FUZZ_ALL"):
        return list(cases)
    bad = {fx["bad_runs"][k] for k in KNOWN_OTHERS}
    return [c for c in cases if not bad.intersection(c.argv)]


class _Drop:
    pass


_DROP = _Drop()

# ------------------------------------------------------------------------------------- values
# Sizes that are absurd for every count option (refused by the resource guards or the caps).
HUGE_INTS = ["1000000000000", "99999999999999999999", "4294967297000", "1e6", "2147483648000"]
BAD_INTS = ["0", "-1", "-5", "", " ", "abc", "1.5", "nan", "inf", "-inf", "1e400", "0x10", "३", "1_0", "٣", "\x00", "--"]
BAD_FLOATS = ["0", "-1", "", "abc", "nan", "inf", "-inf", "1e400", "-1e400", "1e-400", "5e-324", "-0", "1,2", "\x00", "0x1p3"]
BAD_LISTS = ["", ",", "64,,128", ",64", "64,", "a,b", "0", "-4", "4,-8", "4.5", "1e400", "nan", "4;8", " , ", "4,,", "4 8"]
BAD_PARAMS = ["", "mupp", "1e400,0", "0,1e400", "nan,0", "inf,1", "1,2,3", ",", "a,b", "1/0,0", "MUPP", "1e-400,0",
              "2,1e400", "1" * 400 + ",0", "1/" + "9" * 5000 + ",0", "μp"]
WEIRD = ["\x00", "\n", "é", "--help-me", "-", "--", "💥", "a" * 5000, "%s%n", "{}", "'", '"', "\\", "$(id)"]


REQUIRED = {"poly": ["--data", "--weights", "--steps"], "sample": ["--depth", "--widths", "--samples", "--steps", "--out"],
            "sweep": ["--depth", "--widths", "--etas", "--steps", "--out"], "derive": ["--depth", "--steps"],
            "compare": ["_pos"], "report": ["_pos", "--out"], "verify": ["--out"]}


def _maybe_valid(fx) -> set:
    """(command, option, value) triples whose outcome is a documented choice rather than an error:
    ``report`` notes an unusable ``--derivation`` and continues; identical duplicate records are
    kept once."""
    out = {("report", "--derivation", v) for k, v in fx["bad_json"].items() if k not in ("missing", "dir")}
    for cmd in ("compare", "report"):
        out |= {(cmd, "_pos", fx["bad_runs"][k]) for k in ("rec_dup", "rec_curve_short")}
    out |= {("report", "_pos", fx["bad_runs"][k]) for k in ("cfg_nan_json", "cfg_window_nan", "cfg_data_unknown",
                                                             "cfg_data_file", "cfg_data_null")}
    out.add(("sweep", "--data", fx["bad_data"]["tiny.npz"]))
    out.add(("sweep", "--data", fx["bad_data"]["zero_y.npz"]))  # sweep needs no window: tiny data train fine
    return out


def _pick(rnd: random.Random, seq):
    return seq[rnd.randrange(len(seq))]


# Each subcommand: base (valid, cheap) options, and per option a list of invalid values. ``{out}``
# is replaced by a fresh path. Options whose value must be a path take values from the fixtures.
def _specs(fx) -> dict:
    bd, bw, bj, br, bo = fx["bad_data"], fx["bad_weights"], fx["bad_json"], fx["bad_runs"], fx["bad_out"]
    data_bad = list(bd.values())
    out_bad = list(bo.values()) + [fx["run_sample"]]  # an existing run: needs --resume
    return {
        "poly": {
            "base": {"--data": fx["data"], "--weights": fx["weights"], "--steps": "1"},
            "flags": ["--json"],
            "bad": {
                "--data": data_bad,
                "--weights": list(bw.values()),
                "--steps": BAD_INTS + HUGE_INTS + ["1000", "100000", "100"],
                "--param": BAD_PARAMS,
                "--window": BAD_FLOATS + ["1e308", "1e300", "1e-200"],
                "--degree": ["-1", "abc", "1e400", "", "9" * 40],
            },
            "good": {"--steps": ["1", "2"], "--param": ["sp", "ntp", "2,0", "3/2,1/2"], "--window": ["0.5", "3"],
                     "--degree": ["0", "3", "1000", "99999999999999999999999"], "--data": [fx["data_csv"]]},
        },
        "sample": {
            "base": {"--depth": "1", "--widths": "4", "--samples": "1", "--steps": "1", "--d": str(D), "--m": str(M),
                     "--out": "{out}"},
            "flags": ["--quiet"],
            "bad": {
                "--depth": BAD_INTS + HUGE_INTS + ["100000000"],
                "--widths": BAD_LISTS + ["4," + w for w in HUGE_INTS[:4]],
                "--samples": BAD_INTS + HUGE_INTS,
                "--steps": BAD_INTS + HUGE_INTS,
                "--d": BAD_INTS + HUGE_INTS + ["4294967297"],
                "--m": BAD_INTS + HUGE_INTS + ["4294967297"],
                "--noise": [v for v in BAD_FLOATS if v not in ("0", "-0", "1e-400", "5e-324")] + ["1e308"],
                "--seed": ["-1", "abc", "1.5", "", "1e400"] + ["9" * 50],
                "--degree": ["-1", "x", "", "1e400", "9" * 40],
                "--window": BAD_FLOATS,
                "--param": BAD_PARAMS,
                "--sampler": ["", "lazzy", "DENSE", "\x00"],
                "--backend": ["", "torch", "CUPY"],
                "--synthetic": ["", "quadratic", "LINEAR"],
                "--data": data_bad,
                "--out": out_bad,
            },
            "good": {"--depth": ["1", "2"], "--widths": ["4,8", " 8 , 4 ", "4,4"], "--param": ["sp", "ntp", "1,1/2"],
                     "--degree": ["0", "2"], "--window": ["1", "0.25"], "--noise": ["0", "0.5"],
                     "--synthetic": ["nonlinear"], "--sampler": ["lazy", "dense", "auto"], "--seed": ["0", "7"],
                     "--data": [fx["data"], fx["data_csv"], fx["bom_csv"]], "--samples": ["2"]},
        },
        "sweep": {
            "base": {"--depth": "1", "--widths": "4", "--etas": "lin:0.1:1:3", "--steps": "1", "--d": str(D),
                     "--m": str(M), "--out": "{out}"},
            "flags": ["--quiet"],
            "bad": {
                "--depth": BAD_INTS + HUGE_INTS + ["100000000"],
                "--widths": BAD_LISTS + ["4,100000000", "4,4294967297"],
                "--etas": ["", ",", "0", "0,0", "lin:0:1:1", "lin:1:0:5", "log:0:1:5", "lin:0:1:1e400", "1e400",
                           "lin:0:1:100000000", "lin:0:1:-3", "log:1e-400:1:3", "lin::1:3", "0.1,,0.2", "nan",
                           "lin:0:1:3:4", "exp:0:1:3", "-1,2", "lin:0:1e400:3", "0.1,0.1", "log:5e-324:1e308:3",
                           "lin:0:1:" + "9" * 30],
                "--seeds": BAD_INTS + HUGE_INTS,
                "--steps": BAD_INTS + HUGE_INTS,
                "--activation": ["", "tanh", "RELU!"],
                "--optimizer": ["", "sgd"],
                "--adam-eps": BAD_FLOATS,
                "--adam-exponent": ["1e400", "", "abc", "1/0", "nan", "inf", "1e-400x", "1/" + "9" * 5000],
                "--dtype": ["", "float16", "int"],
                "--memory-mb": BAD_FLOATS + ["1e300"],
                "--method": ["", "sparse"],
                "--param": BAD_PARAMS,
                "--seed": ["-1", "x", "1e400"],
                "--data": data_bad,
                "--out": out_bad,
            },
            "good": {"--etas": ["0,0.5,1", "log:0.01:1:3", "lin:0:1:2", "0.5"], "--activation": ["relu"],
                     "--optimizer": ["adam"], "--method": ["dense", "auto"], "--dtype": ["float32"],
                     "--adam-exponent": ["1", "1/2", "0.5"], "--memory-mb": ["1", "0.01", "1e-300"], "--seeds": ["2"],
                     "--data": [fx["data"]]},
        },
        "derive": {
            "base": {"--depth": "1", "--steps": "1"},
            "flags": [],
            "bad": {
                "--depth": BAD_INTS + HUGE_INTS + ["65"],
                "--steps": BAD_INTS + HUGE_INTS + ["13"],
                "--data": data_bad,
                "--param": BAD_PARAMS,
                "--window": BAD_FLOATS + ["1/0", "abc/2", "1e400", "5e-324x"],
                "--rationalize": BAD_FLOATS + ["1e400", "1/0", "1e-400"],
                "--digits": BAD_INTS + HUGE_INTS,
                "--max-terms": BAD_INTS,
                "--format": ["", "xml", "JSON"],
                "--output": [fx["root"], bd["dir.npz"], os.path.join(fx["root"], "missing", "out.txt")]
                + [v for k, v in bo.items() if k not in ("file",)],
            },
            "good": {"--depth": ["2", "3"], "--param": ["sp", "ntp"], "--format": ["json", "latex"],
                     "--window": ["1", "1/3", "0.5"], "--data": [fx["data"]], "--digits": ["5"]},
        },
        "compare": {
            "base": {"_pos": fx["run_sample"]},
            "flags": ["--json"],
            "bad": {
                "_pos": list(br.values()) + [fx["run_sweep"], fx["data"]],
                "--derivation": list(bj.values()),
                "--level": ["0", "1", "-0.5", "nan", "abc", "", "1e400", "5e-324x"],
                "--coeffs": ["0", "-1", "abc", "", "1e400", "99999999999999999999"],
            },
            "good": {"--level": ["0.1"], "--coeffs": ["1", "2", "50"], "--derivation": ["auto"]},
        },
        "report": {
            "base": {"_pos": fx["run_sample"], "--out": "{out}"},
            "flags": [],
            "bad": {
                "_pos": list(br.values()),
                "--derivation": list(bj.values()),
                "--coeffs": ["0", "-1", "abc", "", "1e400", "99999999999999999999"],
                "--out": list(bo.values()),
            },
            "good": {},  # a valid report draws figures: too slow for the fuzzer (tested in test_compare_report)
        },
        "verify": {
            "base": {"--claims": "C1", "--out": "{out}"},
            "flags": ["--quiet"],
            "bad": {
                "--claims": ["", ",", "C1,,C2", "C9", "C0", "all,C1", "C1;C2", "\x00", " ", "C1,"],
                "--out": list(bo.values()),
                "--seed": ["-1", "abc", "", "1e400", "1.5"],
                "--override": ["", "mup", "mup=", "foo=sp", "mup=xyz", "mup=1e400,0", "=sp", "mup=sp=ntp"],
            },
            "good": {},  # a valid verify takes about a minute
        },
    }


def generate(seed: int, count: int, fx: dict, tmp_out: str) -> list[Case]:
    """``count`` cases from ``random.Random(seed)``: mostly one or two invalid options on a valid base,
    some valid variations, some random token soup, some bare parser abuse."""
    rnd = random.Random(seed)
    specs = _specs(fx)
    maybe = _maybe_valid(fx)
    names = list(specs)
    cases: list[Case] = []
    counter = [0]

    def fresh_out() -> str:
        counter[0] += 1
        return os.path.join(tmp_out, f"o{counter[0]}")

    def render(cmd, opts, flags) -> list:
        argv = [cmd]
        for k, v in opts.items():
            v = fresh_out() if v == "{out}" else v
            if k == "_pos":
                argv.append(v) if not isinstance(v, list) else argv.extend(v)
            else:
                argv += [k, v] if not k.startswith("--") or not v.startswith("-") else [f"{k}={v}"]
        return argv + flags

    while len(cases) < count:
        r = rnd.random()
        cmd = _pick(rnd, names)
        spec = specs[cmd]
        flags = [f for f in spec["flags"] if rnd.random() < 0.5]
        if r < 0.72:  # one or two invalid options
            opts = dict(spec["base"])
            keys = rnd.sample(sorted(spec["bad"]), k=min(len(spec["bad"]), 1 if rnd.random() < 0.7 else 2))
            for k in keys:
                opts[k] = _pick(rnd, spec["bad"][k])
            cats = "+".join(sorted(k.lstrip("-") for k in keys))
            exp = "any" if all((cmd, k, opts[k]) in maybe for k in keys) else "error"
            cases.append(Case(render(cmd, opts, flags), exp, f"{cmd}:{cats}"))
        elif r < 0.82 and spec["good"]:  # valid variations
            opts = dict(spec["base"])
            for k in rnd.sample(sorted(spec["good"]), k=min(2, len(spec["good"]))):
                opts[k] = _pick(rnd, spec["good"][k])
            if cmd == "sweep" and opts.get("--adam-exponent") and "--optimizer" not in opts:
                opts["--optimizer"] = "adam"
            cases.append(Case(render(cmd, opts, flags), "ok", f"{cmd}:valid"))
        elif r < 0.90:  # a required option missing, or an unknown / repeated / weird token
            opts = dict(spec["base"])
            kind = rnd.random()
            if kind < 0.4:
                opts.pop(_pick(rnd, REQUIRED[cmd]))
                cases.append(Case(render(cmd, opts, flags), "error", f"{cmd}:missing"))
            else:
                argv = render(cmd, opts, flags)
                argv.insert(rnd.randrange(1, len(argv) + 1), _pick(rnd, WEIRD))
                cases.append(Case(argv, "error", f"{cmd}:weird-token"))
        else:  # token soup: any mix of options of this command with random values
            if cmd in ("verify", "report"):
                # keep the invalid part so that no valid (slow) run can result
                opts = dict(spec["base"])
                k = _pick(rnd, sorted(spec["bad"]))
                opts[k] = _pick(rnd, spec["bad"][k])
                argv = render(cmd, opts, flags)
                cases.append(Case(argv, "any" if (cmd, k, opts[k]) in maybe else "error", f"{cmd}:soup"))
                continue
            argv = [cmd]
            pool = sorted(set(spec["bad"]) | set(spec["good"]) | set(spec["base"]))
            for _ in range(rnd.randrange(0, 7)):
                k = _pick(rnd, pool)
                vals = spec["bad"].get(k, []) + spec["good"].get(k, []) + HUGE_INTS + BAD_INTS + WEIRD
                v = _pick(rnd, vals)
                if k == "_pos":
                    argv.append(v)
                else:
                    argv += [k, v] if not v.startswith("-") else [f"{k}={v}"]
            if "--out" in argv or cmd in ("sample", "sweep"):
                argv += ["--out", fresh_out()]
            cases.append(Case(argv + flags, "any", f"{cmd}:soup"))
    return cases


# ------------------------------------------------------------------------------------- running
@contextlib.contextmanager
def _memory_cap(extra_bytes: int):
    """Cap this process's address space at its current size + ``extra_bytes`` (restored on exit), so a
    case that allocates absurdly fails fast instead of taking the machine down."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    try:
        with open("/proc/self/statm") as fh:
            vsize = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        yield
        return
    cap = vsize + extra_bytes
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def run_case(case: Case, timeout: float = 10.0) -> Outcome:
    from polyloss.cli import main

    def on_alarm(signum, frame):
        raise _Hang()

    out, err = io.StringIO(), io.StringIO()
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    t0 = time.perf_counter()
    rc, problem, detail = None, None, ""
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(list(case.argv))
            except SystemExit as exc:  # argparse --help/--version
                rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except _Hang:
        problem = "hang"
    except BaseException as exc:  # noqa: BLE001 - the point is to catch everything
        problem = "traceback"
        tb = traceback.extract_tb(exc.__traceback__)
        where = next((f"{os.path.relpath(f.filename)}:{f.lineno} {f.name}" for f in reversed(tb)
                      if "polyloss" in f.filename), str(tb[-1]) if tb else "")
        detail = f"{type(exc).__name__}: {str(exc)[:300]} @ {where}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    seconds = time.perf_counter() - t0
    o = Outcome(case, rc, out.getvalue(), err.getvalue(), seconds, problem, detail)
    if problem is None:
        lines = o.stderr.splitlines()
        if rc == 2 and len(lines) != 1:
            o.problem, o.detail = "multi-line", f"{len(lines)} stderr lines: {o.stderr[:400]!r}"
        elif rc == 2 and "Traceback" in o.stderr:
            o.problem, o.detail = "traceback", o.stderr[:400]
        elif case.expect == "error" and rc != 2:
            o.problem, o.detail = "accepted", f"rc={rc}; stderr {o.stderr[-300:]!r}"
        elif case.expect == "ok" and rc != 0:
            o.problem, o.detail = "rejected", f"rc={rc}; stderr {o.stderr[-300:]!r}"
        elif case.expect == "any" and rc not in (0, 2):
            o.problem, o.detail = "rc", f"rc={rc}"
    return o


def run_corpus(cases, timeout: float = 10.0, memory_cap_bytes: int = 3 << 30, log=None) -> list[Outcome]:
    import warnings

    import tempfile

    outcomes = []
    cwd, env = os.getcwd(), os.environ.get("POLYLOSS_MEMORY_MB")
    # the resource guards see the same cap as the process (half of it: the guards are estimates)
    os.environ["POLYLOSS_MEMORY_MB"] = str(memory_cap_bytes // 2**21)
    with tempfile.TemporaryDirectory() as scratch, _memory_cap(memory_cap_bytes), warnings.catch_warnings():
        os.chdir(scratch)  # a command that wrongly writes into the working directory writes here
        warnings.simplefilter("always")  # a warning is printed on stderr: it must not happen
        try:
            for i, c in enumerate(cases):
                o = run_case(c, timeout)
                outcomes.append(o)
                if log and o.problem:
                    log(f"[{i}] {o.problem} {c.category} {c.argv!r}: {o.detail}")
        finally:
            os.chdir(cwd)
            if env is None:
                os.environ.pop("POLYLOSS_MEMORY_MB", None)
            else:
                os.environ["POLYLOSS_MEMORY_MB"] = env
    return outcomes


def summary(outcomes) -> dict:
    from collections import Counter

    probs = Counter(o.problem for o in outcomes if o.problem)
    by_cat = Counter((o.problem, o.case.category.split(":")[0]) for o in outcomes if o.problem)
    return {"cases": len(outcomes), "problems": dict(probs), "by_command": {f"{p}/{c}": n for (p, c), n in by_cat.items()},
            "seconds": round(sum(o.seconds for o in outcomes), 1), "slowest": round(max(o.seconds for o in outcomes), 2)}


if __name__ == "__main__":  # pragma: no cover
    import argparse
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cases", type=int, default=1200)
    ap.add_argument("--seed", type=int, default=20240)
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--only", default=None, help="only cases whose category starts with this")
    ap.add_argument("--skip-known", action="store_true", help="leave out the run directories of KNOWN_OTHERS")
    a = ap.parse_args()
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")
    with tempfile.TemporaryDirectory() as tmp:
        fx = build_fixtures(os.path.join(tmp, "fx"))
        cases = generate(a.seed, a.cases, fx, os.path.join(tmp, "out"))
        if a.skip_known:
            cases = without_known(cases, fx)
        if a.only:
            cases = [c for c in cases if c.category.startswith(a.only)]
        outs = run_corpus(cases, a.timeout, log=lambda s: print(s, file=sys.stderr, flush=True))
        print(json.dumps(summary(outs), indent=1))
