"""Reading a user's state_dict (issue 15, first part): safetensors written here byte by byte from the format's
definition and NPZ with torch key names map to the effective weights they were made from, hence to the
same loss polynomial; layouts, biases and bad files get one-line answers."""

from __future__ import annotations

import json
import struct
from fractions import Fraction

import numpy as np
import pytest

from polyloss.data import linear_teacher
from polyloss.engine import LossEngine
from polyloss.errors import DataError, SpecError
from polyloss.interop import import_model, infer_layout, read_state_dict
from polyloss.spec import NetworkSpec, Parametrization
from polyloss.weights import child_seed, sample_weights

MUP = Parametrization.parse("mup")
DATA = linear_teacher(d=5, m=12, noise=0.1, seed=1)


def write_safetensors(path, tensors: dict, dtype: str = "F64") -> None:
    """The safetensors layout: u64 little-endian header size, JSON header, then the tensors' bytes."""
    np_dtype = {"F64": "<f8", "F32": "<f4", "F16": "<f2"}.get(dtype)
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, a in tensors.items():
        if dtype == "BF16":
            raw = (np.asarray(a, dtype="<f4").view("<u4") >> 16).astype("<u2").tobytes()
        else:
            raw = np.ascontiguousarray(a, dtype=np_dtype).tobytes()
        header[name] = {"dtype": dtype, "shape": list(np.shape(a)), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def _effective(n=16, L=2):
    return sample_weights(NetworkSpec(L, n, DATA.d), MUP, child_seed(4, n, 0))


def _mup_state(w, base, om, bias=False):
    """A mup model's state_dict whose effective weights are ``w``: readout.weight = V · width_mult/output_mult."""
    n = w.width
    sd = {"input.weight": w.W0, **{f"hidden.{i}.weight": W for i, W in enumerate(w.hidden)},
          "readout.weight": (w.V * (n / base) / om)[None, :]}
    if bias:
        sd.update({"input.bias": np.zeros(n), "readout.bias": np.zeros(1)})
    return sd


@pytest.mark.parametrize("fmt", ["safetensors", "npz"])
def test_mup_state_dict_gives_the_same_polynomial(tmp_path, fmt):
    w = _effective()
    sd = _mup_state(w, base=4, om=2.0, bias=True)
    path = tmp_path / f"model.{fmt}"
    write_safetensors(path, sd) if fmt == "safetensors" else np.savez(path, **sd)
    model = import_model(path, optimizer="musgd", base_width=4, output_mult=2)
    assert model.layout.hidden == ("hidden.0.weight", "hidden.1.weight")
    np.testing.assert_allclose(model.weights.V, w.V, rtol=1e-15)
    ref = LossEngine(w, DATA, MUP).polynomial(2).loss
    got = LossEngine(model.weights, DATA, MUP).polynomial(2).loss
    np.testing.assert_allclose(got, ref, rtol=1e-13)
    assert any("input.bias: kept as a bias" in note for note in model.notes)
    assert model.biases["readout"] == 0.0 and not np.any(model.biases["input"])
    rates = model.lr_rates()
    assert rates["input"] == (Fraction(1, 4), -1) and rates["readout"] == (Fraction(16), 1)  # om^2 · base = 4 · 4
    assert import_model(path, optimizer="muadam", base_width=4, output_mult=2).lr_rates()["hidden"] == (4, 1)


def test_sequential_names_and_dtypes(tmp_path):
    """nn.Sequential(Linear, ReLU, Linear, ReLU, Linear, ReLU, Linear): keys 0, 2, 4, 6 in natural order (10 after 4)."""
    w = _effective(L=3)
    sd = {"0.weight": w.W0, "2.weight": w.hidden[0], "4.weight": w.hidden[1], "10.weight": w.hidden[2],
          "12.weight": w.V[None, :]}
    write_safetensors(tmp_path / "f32.safetensors", sd, "F32")
    got = read_state_dict(tmp_path / "f32.safetensors")
    assert got["4.weight"].dtype == np.float64
    np.testing.assert_array_equal(got["4.weight"], w.hidden[1].astype(np.float32))
    lay = infer_layout(got)
    assert lay.names == ("0.weight", "2.weight", "4.weight", "10.weight", "12.weight")
    write_safetensors(tmp_path / "bf16.safetensors", {"x": np.array([1.0, -2.5, 3.140625])}, "BF16")
    np.testing.assert_array_equal(read_state_dict(tmp_path / "bf16.safetensors")["x"], [1.0, -2.5, 3.140625])
    model = import_model(sd)  # a dict of arrays, torch SGD: effective weights are the raw ones
    np.testing.assert_array_equal(model.weights.V, w.V)
    assert set(model.lr_rates().values()) == {(1, 0)}


def test_declared_layout(tmp_path):
    w = _effective()
    sd = {"a.weight": w.W0, "z.weight": w.hidden[0], "b.weight": w.hidden[1], "head.weight": w.V[None, :]}
    lay = infer_layout(sd, "input=a,hidden=z;b,readout=head")
    assert lay.hidden == ("z.weight", "b.weight")
    with pytest.raises(SpecError, match="`layout`="):
        infer_layout(sd, "input=a,hidden=z")
    with pytest.raises(SpecError, match="no 'q.weight'"):
        infer_layout(sd, "input=a,hidden=q,readout=head")
    with pytest.raises(DataError, match="not 16×16"):
        infer_layout(sd, "input=a,hidden=head,readout=z")


def test_refusals(tmp_path):
    w = _effective()
    sd = _mup_state(w, 4, 1.0)
    sd["input.bias"] = np.full(15, 0.1)
    with pytest.raises(DataError, match="'input.bias' has 15 entries, not 16"):
        import_model(sd, optimizer="musgd", base_width=4)
    with pytest.raises(SpecError, match="`base_width` is required"):
        import_model(_mup_state(w, 4, 1.0), optimizer="muadam")
    with pytest.raises(SpecError, match="`optimizer`='adamw' is invalid"):
        import_model(_mup_state(w, 4, 1.0), optimizer="adamw")
    (tmp_path / "x.safetensors").write_bytes(b"\xff" * 4)
    with pytest.raises(DataError, match="not a safetensors file"):
        read_state_dict(tmp_path / "x.safetensors")
    (tmp_path / "y.safetensors").write_bytes(struct.pack("<Q", 4) + b"[1] ")
    with pytest.raises(DataError, match="not a JSON object"):
        read_state_dict(tmp_path / "y.safetensors")
    with pytest.raises(SpecError, match="`model`="):
        read_state_dict(tmp_path / "model.pt")


@pytest.mark.parametrize("bad", [123, None, ["x"], {"a.weight": "abc"}, {"a.weight": [[1.0, float("nan")]]}])
def test_bad_sources_are_one_line(bad):
    with pytest.raises(SpecError, match="`model"):
        import_model(bad)


def test_mup_base_shape_file(tmp_path):
    """mup.make_base_shapes(..., savefile=) YAML, read without a YAML library: the hidden layers' base width."""
    from polyloss.interop import read_base_shapes

    (tmp_path / "b.bsh").write_text("# mup base shapes\nhidden.0.weight:\n- 4\n- 4\nhidden.1.weight:\n- 4\n- 4\n"
                                    "input.weight:\n- 4\n- null\nreadout.weight: [null, 4]\n")
    assert read_base_shapes(tmp_path / "b.bsh")["readout.weight"] == [None, 4]
    w = _effective()
    sd = _mup_state(w, 4, 2.0)
    a = import_model(sd, optimizer="musgd", base_shapes=tmp_path / "b.bsh", output_mult=2)
    b = import_model(sd, optimizer="musgd", base_width=4, output_mult=2)
    assert a.base_width == 4 and a.lr_rates() == b.lr_rates()
    np.testing.assert_array_equal(a.weights.V, b.weights.V)
    with pytest.raises(SpecError, match="`base_width`=8 is invalid"):
        import_model(sd, optimizer="musgd", base_shapes=tmp_path / "b.bsh", base_width=8)
    (tmp_path / "bad.bsh").write_text("input.weight:\n- four\n")
    with pytest.raises(DataError, match="line 2"):
        read_base_shapes(tmp_path / "bad.bsh")
