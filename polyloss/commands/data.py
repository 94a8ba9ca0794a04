"""``polyloss data``: write a data set or one network's weights to a file, exactly as a run draws them.

Three sources (exactly one):

* ``--synthetic linear|nonlinear`` with ``--d``, ``--m``, ``--noise``, ``--seed``: the teacher data
  that ``polyloss sample``/``sweep`` with the same options train on (drawn from
  ``SeedSequence(seed, spawn_key=(0,))``), bit for bit;
* ``--from-run RUN_DIR``: the data set of a ``sample`` or ``sweep`` run directory;
* ``--network``: the dense network (width N, sample K) of a run with root ``--seed`` (drawn from
  ``SeedSequence(seed, spawn_key=(N, K))``), as NPZ with W0, W1..WL, V for ``poly --weights``.
  With ``--from-run`` the depth, parametrization, d and seed are taken from that run.

Data files are NPZ (``X``, ``y``) or CSV (header ``x_1..x_d,y``, every value written so that it
reads back to the same float64), chosen by the extension of ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

from polyloss.commands._common import add_param, positive_float, positive_int

EPILOG = """examples:
  polyloss data --synthetic linear --d 10 --m 50 --seed 1 --out data.npz
  polyloss data --synthetic nonlinear --d 10 --m 50 --noise 0.1 --out data.csv
  polyloss data --network --depth 2 --width 64 --d 10 --param mup --seed 1 --sample 0 --out net.npz

  `polyloss data --synthetic KIND ... --seed S` writes exactly the data that `polyloss sample` or
  `sweep` with the same --synthetic/--d/--m/--noise/--seed train on. `--network` writes network
  (width, sample) of a run with root --seed as `sample --sampler dense` draws it (`--sampler auto`
  also draws widths < 2048 densely); `polyloss poly --weights net.npz` then reproduces that
  record. `--from-run RUN_DIR` writes a run's data set, or with --network --width N [--sample K]
  one of its networks. An existing output file is kept unless --force.
"""

_DEFAULTS = {"d": 100, "m": 1000, "noise": 0.0, "seed": 0, "sample": 0}


def register(sub) -> None:
    p = sub.add_parser("data", help="write a synthetic or run's data set, or one sampled network, to a file",
                       description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_argument_group("source (exactly one of --synthetic, --from-run, --network; --network may be "
                               "combined with --from-run)")
    src.add_argument("--synthetic", choices=("linear", "nonlinear"), default=None, help="a seeded synthetic teacher")
    src.add_argument("--from-run", metavar="RUN_DIR", default=None,
                     help="a `polyloss sample` or `sweep` run directory: its data set (or, with --network, one of its networks)")
    src.add_argument("--network", action="store_true", help="write one sampled network's effective weights (NPZ)")
    p.add_argument("--d", type=positive_int("d"), default=None, help="input dimension (default 100, as in sample)")
    p.add_argument("--m", type=positive_int("m"), default=None, help="number of synthetic points (default 1000, as in sample)")
    p.add_argument("--noise", type=positive_float("noise", allow_zero=True), default=None, help="label noise sigma (default 0)")
    p.add_argument("--seed", type=positive_int("seed", 0), default=None, help="root seed of the run (default 0)")
    p.add_argument("--depth", type=positive_int("depth"), default=None, help="--network: number L of hidden n x n layers")
    p.add_argument("--width", type=positive_int("width"), default=None, help="--network: the width n")
    p.add_argument("--sample", type=positive_int("sample", 0), default=None, help="--network: sample index K (default 0)")
    add_param(p)
    p.set_defaults(param=None)
    p.add_argument("--out", required=True, metavar="FILE", help="output file: .npz, or .csv for a data set")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.set_defaults(func=run)


# ---------------------------------------------------------------------------------------------
# argument checks


def _given(args, *names) -> list[str]:
    return ["--" + n.replace("_", "-") for n in names if getattr(args, n) not in (None, False)]


def _refuse(args, names, mode: str) -> None:
    from polyloss.errors import SpecError

    extra = _given(args, *names)
    if extra:
        raise SpecError(f"{', '.join(f'`{e}`' for e in extra)} cannot be used with {mode}")


def _check_out(path: str, force: bool, kinds: tuple[str, ...]) -> str:
    from polyloss.errors import invalid

    valid = " or ".join(kinds)
    if not path or not path.strip():
        raise invalid("out", path, f"a file name ending in {valid}")
    if os.path.isdir(path):
        raise invalid("out", path, f"a file name ending in {valid}, not a directory")
    ext = os.path.splitext(path)[1].lower()
    if ext not in kinds:
        raise invalid("out", path, f"a file name ending in {valid}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise invalid("out", path, f"a file in an existing folder ({folder!r} does not exist; create it first)")
    if os.path.exists(path) and not force:
        raise invalid("out", path, "a file that does not exist yet (pass --force to overwrite it)")
    return ext


def _run_config(run_dir: str) -> dict:
    from polyloss._rundir import CONFIG, load_config
    from polyloss.errors import RunError

    cfg_path = os.path.join(os.fspath(run_dir), CONFIG)
    schema = None
    if os.path.isfile(cfg_path):
        try:
            with open(cfg_path, encoding="utf-8") as fh:
                doc = json.load(fh)
            schema = doc.get("schema") if isinstance(doc, dict) else None
        except (OSError, ValueError):
            schema = None  # load_config below names the problem
    if schema not in ("polyloss.sample/1", "polyloss.sweep/1"):
        cfg = load_config(run_dir, "polyloss.sample/1")  # raises the precise error (missing, bad JSON, schema)
    else:
        cfg = load_config(run_dir, schema)
    if not isinstance(cfg.get("data"), dict) or "seed" not in cfg:
        raise RunError(f"{cfg_path}: lacks the `data` description or `seed` of the run")
    return cfg


# ---------------------------------------------------------------------------------------------
# writers (atomic: a temporary file in the target folder, renamed when complete)


def _atomic_write(path: str, write) -> None:
    from polyloss.errors import invalid

    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".polyloss-data-", suffix=os.path.splitext(path)[1], dir=folder)
    except OSError as exc:
        raise invalid("out", path, f"a file in a writable folder ({exc.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except OSError as exc:
        raise invalid("out", path, f"a writable file ({exc.strerror})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_dataset(ds, path: str) -> None:
    """``ds`` to ``path``: NPZ (X, y) or CSV (header x_1..x_d,y; round-trip exact floats)."""
    import numpy as np

    if os.path.splitext(path)[1].lower() == ".csv":
        header = ",".join([f"x_{j}" for j in range(1, ds.d + 1)] + ["y"])

        def write(fh):
            lines = [header] + [",".join(repr(float(v)) for v in row) + "," + repr(float(t)) for row, t in zip(ds.X, ds.y)]
            fh.write(("\n".join(lines) + "\n").encode("ascii"))
    else:

        def write(fh):
            np.savez(fh, X=np.asarray(ds.X), y=np.asarray(ds.y))

    _atomic_write(path, write)


def write_weights(weights, path: str) -> None:
    """Effective weights to NPZ with keys W0, W1..WL, V (what :func:`polyloss.weights.load_weights` reads)."""
    import numpy as np

    from polyloss._backend import to_host

    arrays = {"W0": to_host(weights.W0)}
    arrays.update({f"W{l}": to_host(w) for l, w in enumerate(weights.hidden, start=1)})
    arrays["V"] = to_host(weights.V)
    _atomic_write(path, lambda fh: np.savez(fh, **arrays))


def _check_memory(depth: int, width: int, d: int) -> None:
    from polyloss.errors import SpecError

    need = 8 * (width * d + depth * width * width + width)
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 16 << 30
    if need > total // 2:
        raise SpecError(f"`width`={width} is too large for a dense network: depth {depth} needs {need / 2**30:.3g} GiB "
                        f"of float64 matrices, more than half of this machine's {total / 2**30:.3g} GiB; choose a "
                        "smaller width (wide networks are sampled lazily by `polyloss sample` and cannot be written)")


# ---------------------------------------------------------------------------------------------


def run(args) -> int:
    from polyloss.errors import SpecError

    if args.network:
        return _run_network(args)
    if args.synthetic and args.from_run:
        raise SpecError("give either `--synthetic` or `--from-run`, not both")
    if not args.synthetic and not args.from_run:
        raise SpecError("give a source: `--synthetic linear|nonlinear`, `--from-run RUN_DIR` or `--network`")
    _refuse(args, ("depth", "width", "sample", "param"), "a data set (they describe a network: add --network)")
    _check_out(args.out, args.force, (".npz", ".csv"))
    if args.synthetic:
        from polyloss.data import synthetic
        from polyloss.sampling import data_seed

        opts = {k: (getattr(args, k) if getattr(args, k) is not None else _DEFAULTS[k]) for k in ("d", "m", "noise", "seed")}
        ds = synthetic(args.synthetic, opts["d"], opts["m"], opts["noise"], data_seed(opts["seed"]))
        what = f"{args.synthetic} teacher d={opts['d']} m={opts['m']} noise={opts['noise']:g} seed={opts['seed']}"
    else:
        from polyloss.compare import run_dataset

        _refuse(args, ("d", "m", "noise", "seed"), "`--from-run` (the run fixes them)")
        cfg = _run_config(args.from_run)
        ds = run_dataset(cfg)
        what = f"the data of run {args.from_run}"
    write_dataset(ds, args.out)
    print(f"wrote {args.out}: {what} (X {ds.m} x {ds.d}, y {ds.m})")
    return 0


def _run_network(args) -> int:
    from fractions import Fraction

    from polyloss.errors import RunError, SpecError
    from polyloss.spec import NetworkSpec, Parametrization
    from polyloss.weights import child_seed, sample_weights

    _refuse(args, ("synthetic", "m", "noise"), "`--network` (they describe a data set)")
    if args.width is None:
        raise SpecError("`--network` needs `--width N`")
    _check_out(args.out, args.force, (".npz",))
    sample = args.sample if args.sample is not None else _DEFAULTS["sample"]
    if args.from_run:
        _refuse(args, ("depth", "d", "param", "seed"), "`--network --from-run` (the run fixes them)")
        cfg = _run_config(args.from_run)
        try:
            depth, seed, d = int(cfg["depth"]), int(cfg["seed"]), int(cfg["input_dim"] if "input_dim" in cfg else cfg["data"]["d"])
            param = Parametrization.custom(Fraction(cfg["param"]["alpha"]), Fraction(cfg["param"]["gamma"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise RunError(f"run {args.from_run!r}: run.json lacks a readable depth/seed/param/input_dim ({exc})") from None
        if cfg.get("schema") == "polyloss.sample/1":
            from polyloss.lazy import resolve_sampler

            sampler = cfg.get("sampler", "dense")
            if sampler == "auto":
                kind = "lazy" if args.width >= int(cfg.get("lazy_min_width", 2048)) else "dense"
            else:
                kind = resolve_sampler(sampler, args.width)
            if kind != "dense":
                raise SpecError(f"`width`={args.width}: run {args.from_run!r} draws this width lazily (sampler "
                                f"{sampler!r}); a lazily sampled network has no dense matrices to write")
        where = f"network (width {args.width}, sample {sample}) of run {args.from_run}"
    else:
        if args.depth is None:
            raise SpecError("`--network` needs `--depth L` (or `--from-run RUN_DIR`)")
        depth = args.depth
        d = args.d if args.d is not None else _DEFAULTS["d"]
        seed = args.seed if args.seed is not None else _DEFAULTS["seed"]
        param = args.param if args.param is not None else Parametrization.preset("mup")
        where = f"network (width {args.width}, sample {sample}) of seed {seed}"
    net = NetworkSpec(depth, args.width, d)
    _check_memory(depth, args.width, d)
    weights = sample_weights(net, param, child_seed(seed, args.width, sample))
    write_weights(weights, args.out)
    print(f"wrote {args.out}: {where}, L={depth} n={args.width} d={d} param {param.name} (dense draw; keys W0, "
          f"W1..W{depth}, V)")
    return 0
