"""Fuzz the CLI parser and the loaders: malformed argv, files and run directories.

A seeded generator (tests/_fuzzgen.py, ``random.Random`` only) builds invocations of every
subcommand with one or two invalid options on a valid base (wrong types, empty list items,
huge/tiny/NaN/inf/1e400/negative numbers, unknown choices, missing files, directories where files
are expected, binary/Latin-1/empty/truncated NPZ, CSV and JSON, complex and overflowing arrays,
corrupt run directories, unusable output paths), valid variations, and random token soup. Each
case runs ``polyloss.cli.main`` in-process under a time bound and a memory cap and must end with
exit code 2 and exactly one line on stderr (0 where the input is valid), with no exception
escaping and no warning printed.

The default suite runs ~300 cases (< 60 s); ``-m slow`` runs the 1200-case corpus. Set
``POLYLOSS_FUZZ_CASES``/``POLYLOSS_FUZZ_SEED`` to run another corpus.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import _fuzzgen  # noqa: E402

TIMEOUT = 10.0  # seconds per case; every invalid case should end in well under a second


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    return _fuzzgen.build_fixtures(tmp_path_factory.mktemp("fuzzfx"))


def _run(fixtures, tmp_path, seed, count):
    cases = _fuzzgen.without_known(_fuzzgen.generate(seed, count, fixtures, str(tmp_path / "out")), fixtures)
    outcomes = _fuzzgen.run_corpus(cases, TIMEOUT)
    bad = [o for o in outcomes if o.problem]
    report = "\n".join(f"{o.problem} {o.case.category} {o.case.argv!r}: {o.detail}" for o in bad[:30])
    assert not bad, f"{len(bad)} of {len(outcomes)} cases failed ({_fuzzgen.summary(outcomes)['problems']}):\n{report}"
    return outcomes


def test_fuzz_cli_quick(fixtures, tmp_path):
    seed = int(os.environ.get("POLYLOSS_FUZZ_SEED", "1"))
    count = int(os.environ.get("POLYLOSS_FUZZ_CASES", "300"))
    outcomes = _run(fixtures, tmp_path, seed, count)
    # the corpus exercises what it claims: errors, valid runs and every subcommand
    rcs = {o.rc for o in outcomes}
    assert {0, 2} <= rcs
    assert {o.case.argv[0] for o in outcomes} >= {"poly", "sample", "sweep", "derive", "compare", "report", "verify"}


@pytest.mark.slow
def test_fuzz_cli_corpus(fixtures, tmp_path):
    """The closing corpus of issue 10: at least 1000 cases, zero tracebacks and zero hangs."""
    outcomes = _run(fixtures, tmp_path, 20240, 1200)
    assert len(outcomes) >= 1000


def test_generator_is_reproducible(fixtures, tmp_path):
    a = _fuzzgen.generate(7, 50, fixtures, str(tmp_path / "a"))
    b = _fuzzgen.generate(7, 50, fixtures, str(tmp_path / "a"))
    assert [c.argv for c in a] == [c.argv for c in b]
    assert {c.expect for c in a} >= {"error"}


def test_run_case_detects_tracebacks_hangs_and_multiline(monkeypatch):
    """The harness itself can fail: an escaping exception, a hang and a two-line error are caught."""
    import polyloss.cli as cli

    def boom(argv):
        raise ZeroDivisionError("x")

    def hang(argv):
        while True:
            pass

    def two_lines(argv):
        print("a\nb", file=sys.stderr)
        return 2

    case = _fuzzgen.Case(["derive"], "error", "t")
    for fn, problem in ((boom, "traceback"), (hang, "hang"), (two_lines, "multi-line")):
        monkeypatch.setattr(cli, "main", fn)
        assert _fuzzgen.run_case(case, timeout=0.5).problem == problem


def _err(capsys, argv):
    from polyloss.cli import main

    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("argv, needle", [
    (["derive", "--depth", "2", "--steps", "1", "--output", ""], "non-empty file path"),
    (["derive", "--depth", "2", "--steps", "1", "--window", "1e400"], "window"),
    (["derive", "--depth", "2", "--steps", "1", "--rationalize", "1e400"], "rationalize"),
    (["derive", "--depth", "40", "--steps", "6"], "would take over a million years"),
    (["derive", "--depth", "2", "--steps", "1", "--param", "1e400,0"], "param"),
    (["sample", "--depth", "2", "--widths", "64,,128", "--samples", "1", "--steps", "1", "--out", "{tmp}/r"], "widths"),
    (["sample", "--depth", "2", "--widths", "4", "--samples", "1", "--steps", "100000", "--out", "{tmp}/r"], "degree"),
    (["sample", "--depth", "100000000", "--widths", "4", "--samples", "1", "--steps", "1", "--out", "{tmp}/r"], "L = 100000000"),
    (["sample", "--depth", "2", "--widths", "4", "--samples", "1", "--steps", "1", "--out", "/proc/x"], "/proc"),
    (["sample", "--depth", "2", "--widths", "50000", "--samples", "1", "--steps", "1", "--sampler", "dense",
      "--out", "{tmp}/r"], "--sampler lazy"),
    (["sweep", "--depth", "2", "--widths", "4", "--etas", "0.1,0.2", "--steps", "1", "--seeds", "1000000000",
      "--out", "{tmp}/r"], "networks"),
    (["sweep", "--depth", "2", "--widths", "4", "--etas", "0.1,0.2", "--steps", "1", "--adam-exponent", "1e400",
      "--optimizer", "adam", "--out", "{tmp}/r"], "adam-exponent"),
    (["verify", "--claims", "", "--out", "{tmp}/v"], "claims"),
    (["verify", "--claims", "C1", "--out", ""], "non-empty directory path"),
    (["report", "{tmp}", "--out", "{tmp}/rep", "--coeffs", "0"], "coeffs"),
    (["poly", "--data", "{tmp}/missing.npz", "--weights", "{tmp}/w.npz", "--steps", "1"], "does not exist"),
])
def test_named_bad_inputs(capsys, tmp_path, argv, needle):
    """The bad inputs named in issue 10, each refused in one line that names the problem."""
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    err = _err(capsys, argv)
    assert needle in err


def test_poly_huge_steps_refused_with_a_way_out(capsys, fixtures):
    err = _err(capsys, ["poly", "--data", fixtures["data"], "--weights", fixtures["weights"], "--steps", "1000"])
    assert "--degree K" in err and "degree above 10^15" in err


def test_report_out_existing_file_and_missing_derivation(capsys, fixtures, tmp_path):
    err = _err(capsys, ["report", fixtures["run_sample"], "--out", fixtures["a_file"]])
    assert "a file of that name exists" in err
    err = _err(capsys, ["report", fixtures["run_sample"], "--out", str(tmp_path / "r"), "--derivation", str(tmp_path / "no.json")])
    assert "does not exist" in err
    assert not (tmp_path / "r").exists()  # refused before any output


@pytest.mark.parametrize("name", ["latin1.csv", "binary.csv", "complex.npz", "overflow.npz", "complex.csv", "e400.csv"])
def test_bad_data_files(capsys, fixtures, name):
    err = _err(capsys, ["derive", "--depth", "1", "--steps", "1", "--data", fixtures["bad_data"][name]])
    expected = {"latin1.csv": "not UTF-8", "binary.csv": "binary", "complex.npz": "complex", "overflow.npz": "overflow",
                "complex.csv": "non-numeric", "e400.csv": "beyond float64"}[name]
    assert expected in err


@pytest.mark.parametrize("name, needle", [("complex", "complex"), ("overflow", "overflow"), ("overflowV", "overflow")])
def test_bad_weight_files(capsys, fixtures, name, needle):
    err = _err(capsys, ["poly", "--data", fixtures["data"], "--weights", fixtures["bad_weights"][name], "--steps", "1"])
    assert needle in err


def test_binary_json_derivation(capsys, fixtures):
    err = _err(capsys, ["compare", fixtures["run_sample"], "--derivation", fixtures["bad_json"]["binary"]])
    assert "not UTF-8" in err or "invalid JSON" in err


# ------------------------------------------------------------------------------------- the Python API
def test_api_accepts_the_same_param_forms(fixtures):
    from polyloss import api

    etas = [api.poly(fixtures["weights"], fixtures["data"], param=p, steps=1).minimisation.eta_opt
            for p in ("mup", "2,0", (2, 0))]
    assert etas[0] == etas[1] == etas[2]


@pytest.mark.parametrize("call, name", [
    (lambda a, fx: a.poly(42, fx["data"]), "weights"),
    (lambda a, fx: a.poly(fx["weights"], 3.5), "data"),
    (lambda a, fx: a.poly(fx["weights"], fx["data"], steps="2"), "steps"),
    (lambda a, fx: a.poly(fx["weights"], fx["data"], param=object()), "param"),
    (lambda a, fx: a.poly(fx["weights"], fx["data"], window=float("1e400")), "window"),
    (lambda a, fx: a.sample("/proc/x", depth=1, sampling={"widths": [4], "samples": 1}, training=1, data=fx["data"]), "out"),
    (lambda a, fx: a.sample(fx["root"] + "/s", depth=1, sampling="4", training=1, data=fx["data"]), "sampling"),
    (lambda a, fx: a.sample(fx["root"] + "/s", depth=1, sampling={"widths": [4], "samples": 1}, training=1,
                            data=fx["data"], resume="yes"), "resume"),
    (lambda a, fx: a.sweep(fx["root"] + "/w", data=(1, 2), depth=1, widths=[4], etas="0.1,0.2", seeds=1, steps=1), "data"),
    (lambda a, fx: a.derive(2, 1, param="1e400,0"), "param"),
    (lambda a, fx: a.derive(None, 1), "depth"),
    (lambda a, fx: a.compare(fx["run_sample"], level=2), "level"),
    (lambda a, fx: a.compare(123), "run_dir"),
    (lambda a, fx: a.report(fx["run_sample"], fx["root"] + "/rep", n_coeffs=0), "n_coeffs"),
    (lambda a, fx: a.verify("C1", "medium", fx["root"] + "/v"), "mode"),
])
def test_api_refuses_bad_arguments_by_name(fixtures, call, name):
    from polyloss import api
    from polyloss.errors import PolylossError

    with pytest.raises(PolylossError) as info:
        call(api, fixtures)
    msg = str(info.value)
    assert f"`{name}`" in msg and "\n" not in msg


def test_error_messages_are_one_line():
    import numpy as np

    from polyloss.errors import SpecError, invalid

    assert "\n" not in str(SpecError(f"bad seed {np.random.SeedSequence(1)!r}"))
    assert "\n" not in str(invalid("x", "a\nb", "c"))
