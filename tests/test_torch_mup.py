"""Real PyTorch + mup training against polyloss's prediction (issue 15): a mup MLP (nn.Linear input and hidden
layers, MuReadout, set_base_shapes) trained by mup.MuSGD and mup.MuAdam for a few full-batch steps on
nn.MSELoss at several learning rates equals, to 1e-10, what polyloss computes from the saved state_dict alone:
``poly --model`` (the exact GD polynomial, --loss mse) and the Adam trainer of ``sweep`` with the model's
recipe. Skipped where torch or mup is not installed (CI); run by hand with both installed
(``pip install torch==2.13.0 mup``)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
mup = pytest.importorskip("mup")

D, M, DEPTH, BASE, OM = 6, 20, 2, 8, 1.5


class MLP(torch.nn.Module):
    def __init__(self, width, bias=False):
        super().__init__()
        self.input = torch.nn.Linear(D, width, bias=bias)
        self.hidden = torch.nn.ModuleList([torch.nn.Linear(width, width, bias=bias) for _ in range(DEPTH)])
        self.readout = mup.MuReadout(width, 1, bias=bias, output_mult=OM)

    def forward(self, x):
        h = self.input(x)
        for layer in self.hidden:
            h = layer(h)
        return self.readout(h)[:, 0]


def make(width, seed=0, bias=False):
    """The mup recipe: base shapes from width BASE (delta 2·BASE), float64."""
    torch.manual_seed(seed)
    model = MLP(width, bias).double()
    mup.set_base_shapes(model, MLP(BASE, bias).double(), delta=MLP(2 * BASE, bias).double())
    if bias:  # torch initialises biases small and uniform, MuReadout's at 0: make every one visible
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("bias"):
                    p.uniform_(-0.5, 0.5)
    return model


def _data():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((M, D))
    y = X @ rng.standard_normal(D) / np.sqrt(D) + 0.1 * rng.standard_normal(M)
    return X, y


def _train(model, opt_cls, lr, steps, **kw):
    X, y = (torch.tensor(a) for a in _data())
    opt = opt_cls(model.parameters(), lr=lr, **kw)
    loss_fn = torch.nn.MSELoss()
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(model(X), y).backward()
        opt.step()
    with torch.no_grad():
        return float(loss_fn(model(X), y))


def _save(tmp_path, model):
    path = tmp_path / "model.npz"
    np.savez(path, **{k: v.detach().numpy() for k, v in model.state_dict().items()})
    X, y = _data()
    np.savez(tmp_path / "data.npz", X=X, y=y)
    return path


@pytest.mark.parametrize("width", [16, 64])
@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_musgd_training_equals_poly_model(tmp_path, width, momentum):
    path = _save(tmp_path, make(width))
    lrs = [0.005, 0.02, 0.05]
    steps = 3
    ref = [_train(make(width), mup.MuSGD, lr, steps, momentum=momentum) for lr in lrs]
    res = subprocess.run([sys.executable, "-m", "polyloss", "poly", "--data", str(tmp_path / "data.npz"), "--model",
                          str(path), "--model-optimizer", "musgd", "--base-width", str(BASE), "--output-mult", str(OM),
                          "--loss", "mse", "--steps", str(steps), "--momentum", str(momentum), "--json",
                          "--eval", ",".join(map(str, lrs))], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    got = [e["loss"] for e in json.loads(res.stdout)["eval"]]
    np.testing.assert_allclose(got, ref, rtol=1e-10)


@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_musgd_with_biases_equals_poly_model(tmp_path, momentum):
    """nn.Linear and MuReadout with biases (all trained, MuSGD: input and hidden biases vector-like at lr·width_mult,
    the readout's one-entry bias at lr): poly --model carries them on a constant channel."""
    path = _save(tmp_path, make(32, bias=True))
    lrs = [0.005, 0.02]
    ref = [_train(make(32, bias=True), mup.MuSGD, lr, 3, momentum=momentum) for lr in lrs]
    res = subprocess.run([sys.executable, "-m", "polyloss", "poly", "--data", str(tmp_path / "data.npz"), "--model",
                          str(path), "--model-optimizer", "musgd", "--base-width", str(BASE), "--output-mult", str(OM),
                          "--loss", "mse", "--steps", "3", "--momentum", str(momentum), "--json",
                          "--eval", ",".join(map(str, lrs))], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    np.testing.assert_allclose([e["loss"] for e in json.loads(res.stdout)["eval"]], ref, rtol=1e-10)


def test_musgd_weight_decay_is_polyloss_decoupled(tmp_path):
    path = _save(tmp_path, make(32))
    lrs = [0.01, 0.04]
    ref = [_train(make(32), mup.MuSGD, lr, 2, weight_decay=0.3) for lr in lrs]
    res = subprocess.run([sys.executable, "-m", "polyloss", "poly", "--data", str(tmp_path / "data.npz"), "--model",
                          str(path), "--model-optimizer", "musgd", "--base-width", str(BASE), "--output-mult", str(OM),
                          "--loss", "mse", "--steps", "2", "--weight-decay", "0.3", "--wd-mode", "decoupled", "--json",
                          "--eval", ",".join(map(str, lrs))], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    np.testing.assert_allclose([e["loss"] for e in json.loads(res.stdout)["eval"]], ref, rtol=1e-10)


@pytest.mark.parametrize("width", [16, 64])
def test_muadam_training_equals_the_sweep_trainer(width):
    """MuAdam (eps = 0: Adam divides out the gradient's scale, so MSE vs half-MSE only doubles the loss; with eps > 0
    the MuReadout's raw-vs-effective scaling would change eps per layer) against sweep's Adam on the effective
    weights with the model's recipe (rates 1, base/n, output_mult·base/n)."""
    from polyloss.data import Dataset
    from polyloss.interop import import_model
    from polyloss.train import sweep_network

    model = make(width)
    imported = import_model({k: v.detach().numpy() for k, v in model.state_dict().items()}, optimizer="muadam",
                            base_width=BASE, output_mult=OM)
    X, y = _data()
    lrs = [0.001, 0.003, 0.01]
    steps = 4
    ref = [_train(make(width), mup.MuAdam, lr, steps, eps=0.0) for lr in lrs]
    got = sweep_network(imported.weights, Dataset(X, y), "mup", np.array(lrs), steps, optimizer="adam", adam_eps=0.0,
                        recipe=imported.recipe(), method="dense")[:, -1] * 2.0
    np.testing.assert_allclose(got, ref, rtol=1e-10)


def test_transfer_with_a_torch_factory(tmp_path):
    """``polyloss transfer --factory`` takes a factory returning a torch module (its state_dict is read)."""
    X, y = _data()
    np.savez(tmp_path / "data.npz", X=X, y=y)
    (tmp_path / "mymodels.py").write_text(
        "from tests.test_torch_mup import make\n"
        "def factory(width, seed):\n    return make(width, seed)\n")
    res = subprocess.run([sys.executable, "-m", "polyloss", "transfer", "--factory", f"{tmp_path}/mymodels.py:factory",
                          "--widths", "16,32,64", "--seeds", "2", "--steps", "2", "--data", str(tmp_path / "data.npz"),
                          "--model-optimizer", "musgd", "--base-width", str(BASE), "--output-mult", str(OM),
                          "--loss", "mse", "--out", str(tmp_path / "run"), "--quiet"], capture_output=True, text=True,
                         cwd=str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    assert res.returncode == 0, res.stderr
    assert "verdict:" in res.stdout


def test_the_worked_example_of_docs_interop_runs(tmp_path):
    """docs/interop.md's example as written: its python block saved as mymodels.py, its bash block run line by line."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "interop.md").read_text()
    (tmp_path / "mymodels.py").write_text(re.findall(r"```python\n(.*?)```", text, re.S)[0])
    lines = [ln for ln in re.findall(r"```bash\n(.*?)```", text, re.S)[0].splitlines() if ln.strip()]
    assert lines[0] == "python mymodels.py" and all(ln.startswith("polyloss ") for ln in lines[1:])
    for ln in lines:
        argv = ln.split()
        cmd = [sys.executable, *argv[1:]] if argv[0] == "python" else [sys.executable, "-m", "polyloss", *argv[1:]]
        res = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
        assert res.returncode == 0, (ln, res.stderr)
    assert "verdict:" in res.stdout and (tmp_path / "results" / "my-transfer" / "transfer.png").exists()


def test_live_module_and_mups_base_shape_file(tmp_path):
    """import_model takes the live nn.Module, and the base width from mup's own base-shape file."""
    from polyloss.interop import import_model

    mup.make_base_shapes(MLP(BASE).double(), MLP(2 * BASE).double(), savefile=str(tmp_path / "base.bsh"))
    model = make(64)
    a = import_model(model, optimizer="musgd", base_shapes=tmp_path / "base.bsh", output_mult=OM)
    b = import_model({k: v.detach().numpy() for k, v in model.state_dict().items()}, optimizer="musgd",
                     base_width=BASE, output_mult=OM)
    assert a.base_width == BASE and a.lr_rates() == b.lr_rates()
    np.testing.assert_array_equal(a.weights.V, b.weights.V)


def test_the_exact_limit_example_of_docs_interop_runs(tmp_path):
    """docs/interop.md's --limit exact example as written (its two python blocks as mymodels.py); the same family
    at torch's default initialisation is refused, naming the layer that is off."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "interop.md").read_text()
    py = re.findall(r"```python\n(.*?)```", text, re.S)
    (tmp_path / "mymodels.py").write_text(py[0] + "\n" + py[1])
    line = re.findall(r"```bash\n(.*?)```", text, re.S)[1].strip()
    assert line.startswith("polyloss transfer") and "--limit exact" in line
    assert subprocess.run([sys.executable, "mymodels.py"], cwd=tmp_path).returncode == 0
    res = subprocess.run([sys.executable, "-m", "polyloss", *line.split()[1:], "--quiet"], capture_output=True,
                         text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    rep = json.loads((tmp_path / "results" / "my-limit" / "report.json").read_text())
    ex = rep["exact_limit"]
    assert ex["biases"]["layers"] == ["input", "hidden", "readout"] and ex["eta_inf"] > 0
    print(res.stdout)
    bad = subprocess.run([sys.executable, "-m", "polyloss", *line.replace("make_for_limit", "make").split()[1:],
                          "--quiet"], capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 2 and "input weight has mean squared entry" in bad.stderr, bad.stderr
