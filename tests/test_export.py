import importlib.util
import json
import warnings

import numpy as np
import pytest
import torch
from torchvision.datasets import FashionMNIST

from fmnist_lightning import cli, load_classifier
from fmnist_lightning.data.files import CLASS_NAMES
from fmnist_lightning.export import load_exported, main
from helpers.faults import disk_full_in


def run_export(argv: list[str]) -> int:
    """The command's exit status, through the command-line front that prints its errors."""
    with pytest.raises(SystemExit) as exited:
        cli.run(lambda: main(argv))
    return exited.value.code


ONNX_MISSING = [
    m for m in ("onnx", "onnxruntime", "onnxscript") if importlib.util.find_spec(m) is None
]
needs_onnx = pytest.mark.skipif(
    bool(ONNX_MISSING),
    reason=f"optional extra 'export' not installed ({', '.join(ONNX_MISSING)}): uv sync --extra export",
)


@pytest.fixture(scope="module")
def pixels(synthetic_root) -> np.ndarray:
    """uint8 (1000, 1, 28, 28), the exported model's input: the test images, then random ones."""
    test_images = FashionMNIST(str(synthetic_root), train=False).data.unsqueeze(1).numpy()
    noise = np.random.default_rng(0).integers(0, 256, (1000 - len(test_images), 1, 28, 28))
    return np.concatenate([test_images, noise.astype(np.uint8)])


@pytest.fixture(scope="module")
def expected(tiny_checkpoint, pixels) -> np.ndarray:
    """The checkpoint's probabilities for ``pixels``, from the project's own Classifier."""
    return load_classifier(tiny_checkpoint).predict(torch.from_numpy(pixels)).probabilities.numpy()


def exported_matches_pytorch(path, fmt, expected, pixels) -> None:
    run = load_exported(path.read_bytes(), fmt)
    for batch in (1, 7, len(pixels)):  # the batch size is dynamic
        probabilities = run(pixels[:batch])
        assert probabilities.shape == (batch, 10) and probabilities.dtype == np.float32
        np.testing.assert_allclose(probabilities, expected[:batch], atol=1e-5, rtol=0)


@needs_onnx
def test_onnx_export_round_trip(
    tiny_checkpoint, synthetic_root, pixels, expected, tmp_path, capsys
):
    import onnx

    path = tmp_path / "model.onnx"
    argv = [str(tiny_checkpoint), "--format", "onnx", "-o", str(path)]
    assert run_export([*argv, "--data-root", str(synthetic_root)]) == 0
    printed = capsys.readouterr().out
    assert f"Wrote {path} (onnx, " in printed and "exporter: torch.export)" in printed
    assert "Max abs difference from PyTorch on 100 Fashion-MNIST test images" in printed
    assert not list(tmp_path.glob("*.data"))  # one self-contained file
    exported_matches_pytorch(path, "onnx", expected, pixels)
    model = onnx.load(str(path))
    (inputs,), (outputs,) = model.graph.input, model.graph.output
    assert (inputs.name, outputs.name) == ("pixels", "probabilities")
    assert inputs.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    info = {prop.key: prop.value for prop in model.metadata_props}
    assert json.loads(info["class_names"]) == list(CLASS_NAMES) and float(info["mean"]) == 0.286


def test_torchscript_export_round_trip(tiny_checkpoint, pixels, expected, tmp_path, capsys):
    path = tmp_path / "model.torchscript.pt"
    # No dataset where --data-root points: the check runs on random pixels and says so.
    argv = [str(tiny_checkpoint), "--format", "torchscript", "-o", str(path)]
    assert (
        run_export([*argv, "--data-root", str(tmp_path / "no-data"), "--check-images", "16"]) == 0
    )
    assert "on 16 random images (no Fashion-MNIST test set" in capsys.readouterr().out
    exported_matches_pytorch(path, "torchscript", expected, pixels)
    extra = {"metadata.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated upstream
        torch.jit.load(str(path), _extra_files=extra)
    assert json.loads(json.loads(extra["metadata.json"])["class_names"]) == list(CLASS_NAMES)


def test_pt2_export_round_trip(tiny_checkpoint, pixels, expected, tmp_path, capsys):
    checkpoint = tmp_path / "model.ckpt"
    checkpoint.write_bytes(tiny_checkpoint.read_bytes())
    # The default --output; the command's own check at batch 1000 and 1 (random pixels).
    argv = [str(checkpoint), "--format", "pt2", "--data-root", str(tmp_path / "no-data")]
    assert run_export([*argv, "--check-images", "1000"]) == 0
    printed, path = capsys.readouterr().out, tmp_path / "model.pt2"
    assert "Max abs difference from PyTorch on 1000 random images" in printed
    assert f"Wrote {path} (pt2, " in printed and "exporter: torch.export)" in printed
    exported_matches_pytorch(path, "pt2", expected, pixels)
    extra = {"metadata.json": ""}
    torch.export.load(path, extra_files=extra)
    info = json.loads(extra["metadata.json"])
    assert json.loads(info["class_names"]) == list(CLASS_NAMES)
    assert (float(info["mean"]), float(info["std"])) == (0.286, 0.353)


def test_help_marks_torchscript_deprecated_and_names_its_successor(capsys):
    assert run_export(["--help"]) == 0
    shown = " ".join(capsys.readouterr().out.split())  # argparse wraps the text
    assert "torchscript: deprecated upstream in favour of torch.export, use pt2" in shown


def test_existing_file_and_wrong_checkpoint_are_refused(tiny_checkpoint, tmp_path, capsys):
    existing = tmp_path / "model.torchscript.pt"
    existing.write_bytes(b"keep me")
    assert run_export([str(tiny_checkpoint), "--format", "torchscript", "-o", str(existing)]) == 2
    assert existing.read_bytes() == b"keep me"
    assert "already exists" in capsys.readouterr().err
    not_a_checkpoint = tmp_path / "notes.ckpt"
    not_a_checkpoint.write_text("hello")
    assert run_export([str(not_a_checkpoint), "--format", "torchscript"]) == 2
    assert "notes.ckpt' could not be read as a PyTorch checkpoint" in capsys.readouterr().err


def test_zero_check_images_is_refused_before_anything_is_written(tiny_checkpoint, tmp_path):
    path = tmp_path / "model.torchscript.pt"
    argv = [str(tiny_checkpoint), "--format", "torchscript", "-o", str(path)]
    assert run_export([*argv, "--check-images", "0"]) == 2 and not path.exists()


def test_a_file_that_fails_its_check_replaces_nothing(
    tiny_checkpoint, synthetic_root, tmp_path, monkeypatch, capsys
):
    from fmnist_lightning import export as export_module

    path = tmp_path / "model.torchscript.pt"
    path.write_bytes(b"the model of yesterday")

    def zeros(pixels):  # an exported model that answers 0: off by the top probability
        return np.zeros((len(pixels), 10), np.float32)

    monkeypatch.setattr(export_module, "load_exported", lambda *_: zeros)
    argv = [str(tiny_checkpoint), "--format", "torchscript", "-o", str(path), "--overwrite"]
    assert run_export([*argv, "--data-root", str(synthetic_root)]) == 1
    assert path.read_bytes() == b"the model of yesterday"
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary file
    assert "was not written" in capsys.readouterr().err


def test_a_full_disk_keeps_the_earlier_model_and_leaves_no_temporary(
    tiny_checkpoint, tmp_path, capsys
):
    path = tmp_path / "model.torchscript.pt"
    path.write_bytes(b"the model of yesterday")
    argv = [str(tiny_checkpoint), "--format", "torchscript", "-o", str(path), "--overwrite"]
    with disk_full_in(tmp_path, 1000):
        status = run_export(
            [*argv, "--data-root", str(tmp_path / "no-data"), "--check-images", "8"]
        )
    assert status == 1  # the work failed: the model was made and checked, not written
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"Error: could not write '{path}' (") and "No space left" in error
    assert "'model.torchscript.pt' is kept as it was" in error and len(error.splitlines()) == 1
    assert path.read_bytes() == b"the model of yesterday"
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary file


def test_an_output_that_is_the_checkpoint_is_refused_even_with_overwrite(
    tiny_checkpoint, tmp_path, capsys
):
    checkpoint, linked = tmp_path / "model.ckpt", tmp_path / "linked.pt"
    checkpoint.write_bytes(tiny_checkpoint.read_bytes())
    linked.hardlink_to(checkpoint)  # the same file under another name
    before = checkpoint.read_bytes()
    for output in (checkpoint, linked):
        argv = [str(checkpoint), "--format", "torchscript", "-o", str(output), "--overwrite"]
        assert (
            run_export([*argv, "--data-root", str(tmp_path / "no-data"), "--check-images", "8"])
            == 2
        )
        error = capsys.readouterr().err.strip()
        assert "writing there would replace it; choose another --output" in error
        assert len(error.splitlines()) == 1
    assert checkpoint.read_bytes() == before


def test_an_output_folder_that_cannot_be_written_is_one_line(tiny_checkpoint, tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
    path = tmp_path / "a-file" / "model.torchscript.pt"
    assert run_export([str(tiny_checkpoint), "--format", "torchscript", "-o", str(path)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("Error: cannot write") and len(error.splitlines()) == 1
