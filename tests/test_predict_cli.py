import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from torchvision.datasets import FashionMNIST

from fmnist_lightning import cli, load_classifier
from fmnist_lightning.data.files import CLASS_NAMES
from fmnist_lightning.predict import main
from helpers.faults import disk_full_in

PROBABILITY_COLUMNS = [f"prob_{name}" for name in CLASS_NAMES]


@pytest.fixture(scope="module")
def photos(synthetic_root, tmp_path_factory) -> tuple[Path, list[int]]:
    """A folder of image files made from test images: PNG, a light-background JPEG, RGBA, 16-bit."""
    folder = tmp_path_factory.mktemp("photos")
    images = FashionMNIST(str(synthetic_root), train=False).data[:4].numpy()
    Image.fromarray(images[0]).save(folder / "a_gray.png")
    light = Image.fromarray(255 - images[1]).resize((84, 84), Image.Resampling.NEAREST)
    light.convert("RGB").save(folder / "b_light.jpg", quality=95)
    Image.fromarray(images[2]).convert("RGBA").save(folder / "c_rgba.png")
    Image.fromarray(images[3].astype("uint16") * 257).save(folder / "d_16bit.png")
    (folder / "notes.txt").write_text("not an image, and skipped: wrong extension")
    return folder, [0, 1, 2, 3]


def run_predict(argv: list[str]) -> int:
    """The command's exit status, through the command-line front that prints its errors."""
    with pytest.raises(SystemExit) as exited:
        cli.run(lambda: main(argv))
    return exited.value.code


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_folder_of_images_gives_one_row_each_with_ten_probabilities(
    tiny_checkpoint, photos, synthetic_root, tmp_path, capsys
):
    folder, indices = photos
    output = tmp_path / "rows.csv"
    assert run_predict([str(tiny_checkpoint), str(folder), "-o", str(output)]) == 0
    rows = read_csv(output)
    assert [Path(row["path"]).name for row in rows] == [
        "a_gray.png", "b_light.jpg", "c_rgba.png", "d_16bit.png"
    ]  # fmt: skip
    assert list(rows[0]) == [
        "path",
        "class_index",
        "class",
        "confidence",
        *PROBABILITY_COLUMNS,
        "error",
    ]
    expected = load_classifier(tiny_checkpoint).predict(
        FashionMNIST(str(synthetic_root), train=False).data[indices]
    )
    for row, name, probabilities in zip(rows, expected.names, expected.probabilities, strict=True):
        assert row["class"] == name and row["error"] == ""
        assert CLASS_NAMES[int(row["class_index"])] == name
        written = torch.tensor([float(row[column]) for column in PROBABILITY_COLUMNS])
        # PNGs are exact; the resized JPEG is close.
        tolerance = 2e-2 if row["path"].endswith(".jpg") else 1e-5
        assert torch.allclose(written, probabilities, atol=tolerance, rtol=0)
        assert float(row["confidence"]) == pytest.approx(float(written.max()))
    printed = capsys.readouterr().out
    assert "a_gray.png" in printed and expected.names[0] in printed
    assert "4 of 4 inputs classified" in printed


def test_corrupt_and_missing_files_get_error_rows_and_a_failing_exit_status(
    tiny_checkpoint, photos, tmp_path, capsys
):
    folder, _ = photos
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes((folder / "a_gray.png").read_bytes()[:70])
    output = tmp_path / "rows.json"
    inputs = [
        str(folder / "a_gray.png"),
        str(corrupt),
        str(tmp_path / "gone.png"),
        str(folder / "c_rgba.png"),
    ]
    status = run_predict([str(tiny_checkpoint), *inputs, "-o", str(output)])
    assert status == 1
    rows = json.loads(output.read_text())  # the format follows the .json suffix
    by_path = {row["path"]: row for row in rows}
    assert set(by_path) == set(inputs)
    for good in (inputs[0], inputs[3]):
        assert by_path[good]["error"] is None and len(by_path[good]["probabilities"]) == 10
    assert "corrupt, truncated" in by_path[str(corrupt)]["error"]
    assert by_path[str(corrupt)]["class"] is None and by_path[str(corrupt)]["probabilities"] is None
    assert by_path[inputs[2]]["error"] == "no such file or folder"
    errors = capsys.readouterr().err
    assert f"cannot read image '{corrupt}'" in errors and "gone.png" in errors


def test_json_to_stdout_puts_the_table_on_stderr(tiny_checkpoint, photos, capsys):
    folder, _ = photos
    assert (
        run_predict(
            [str(tiny_checkpoint), str(folder / "a_gray.png"), "-o", "-", "--format", "json"]
        )
        == 0
    )
    captured = capsys.readouterr()
    (row,) = json.loads(captured.out)
    assert row["class"] in CLASS_NAMES and sum(row["probabilities"].values()) == pytest.approx(1)
    assert "Predictions" in captured.err


def test_existing_output_is_kept_unless_overwrite_is_given(
    tiny_checkpoint, photos, tmp_path, capsys
):
    folder, _ = photos
    output = tmp_path / "predictions.csv"
    output.write_text("earlier results\n")
    assert run_predict([str(tiny_checkpoint), str(folder), "-o", str(output)]) == 2
    assert output.read_text() == "earlier results\n"
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert run_predict([str(tiny_checkpoint), str(folder), "-o", str(output), "--overwrite"]) == 0
    assert len(read_csv(output)) == 4


def test_a_file_that_is_no_checkpoint_is_named(photos, tmp_path, capsys):
    folder, _ = photos
    not_a_checkpoint = tmp_path / "model.ckpt"
    not_a_checkpoint.write_bytes((folder / "a_gray.png").read_bytes())
    status = run_predict([str(not_a_checkpoint), str(folder), "-o", str(tmp_path / "rows.csv")])
    assert status == 2
    error = capsys.readouterr().err
    assert "model.ckpt' could not be read as a PyTorch checkpoint" in error
    assert "Traceback" not in error and not (tmp_path / "rows.csv").exists()


def test_a_run_folder_names_its_best_checkpoint_and_tta_is_applied(
    tiny_checkpoint, photos, tmp_path, capsys
):
    folder, _ = photos
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "best-epoch01-val_acc0.5.ckpt").write_bytes(tiny_checkpoint.read_bytes())
    output = tmp_path / "rows.json"
    argv = [str(run), str(folder / "a_gray.png"), "--tta", "flip_shift", "-o", str(output)]
    assert run_predict(argv) == 0
    [row] = json.loads(output.read_text())
    expected = load_classifier(tiny_checkpoint).predict(
        [folder / "a_gray.png"], tta={"flip": True, "shift": 1}
    )
    assert row["class"] == expected.names[0]
    written = torch.tensor(list(row["probabilities"].values()))
    assert torch.allclose(written, expected.probabilities[0], atol=1e-6, rtol=0)
    without_tta = load_classifier(tiny_checkpoint).predict([folder / "a_gray.png"])
    assert not torch.allclose(written, without_tta.probabilities[0], atol=1e-6, rtol=0)


def test_a_model_without_images_is_refused(tiny_checkpoint, capsys):
    with pytest.raises(SystemExit) as exited:
        main([str(tiny_checkpoint)])
    assert exited.value.code == 2 and "no images to classify" in capsys.readouterr().err


def test_without_a_model_the_shipped_one_classifies_every_input(photos, tmp_path, capsys):
    folder, _ = photos
    output = tmp_path / "rows.json"
    assert run_predict([str(folder / "a_gray.png"), str(folder), "-o", str(output)]) == 0
    rows = json.loads(output.read_text())
    assert len(rows) == 4  # a_gray.png once: the first input is an image, not a model
    expected = load_classifier().predict([folder / "a_gray.png"])
    assert rows[0]["class"] == expected.names[0]


@pytest.mark.slow
def test_module_entry_point_exit_status(tiny_checkpoint, photos, tmp_path):
    folder, _ = photos
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    command = [sys.executable, "-m", "fmnist_lightning.predict", str(tiny_checkpoint)]
    command += [str(folder), str(broken), "--format", "json", "-o", str(tmp_path / "out.json")]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"}
    )
    assert result.returncode == 1, result.stderr[-2000:]
    rows = json.loads((tmp_path / "out.json").read_text())
    assert len(rows) == 5 and sum(row["error"] is not None for row in rows) == 1
    assert "broken.jpg" in result.stderr and "4 of 5 inputs classified" in result.stdout


def test_glob_patterns_are_expanded_when_the_shell_did_not(tiny_checkpoint, photos, tmp_path):
    folder, _ = photos
    output = tmp_path / "rows.csv"
    assert run_predict([str(tiny_checkpoint), str(folder / "*.png"), "-o", str(output)]) == 0
    assert [Path(row["path"]).name for row in read_csv(output)] == [
        "a_gray.png", "c_rgba.png", "d_16bit.png"
    ]  # fmt: skip


@pytest.fixture
def no_hang():
    """Fail, rather than hang, a test whose command would block on a FIFO."""
    signal.signal(signal.SIGALRM, lambda *_: pytest.fail("the command hung"))
    signal.alarm(60)
    yield
    signal.alarm(0)


def test_a_file_name_that_is_not_utf8_is_classified_and_written(
    tiny_checkpoint, photos, tmp_path, capsys, monkeypatch
):
    folder, _ = photos
    monkeypatch.setenv("COLUMNS", "300")  # the table folds long paths at 80 columns
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    name = os.fsdecode(b"caf\xe9.png")  # Latin-1 bytes: not UTF-8
    (inputs / name).write_bytes((folder / "a_gray.png").read_bytes())
    output = tmp_path / "rows.csv"
    assert run_predict([str(tiny_checkpoint), str(inputs), "-o", str(output)]) == 0
    (row,) = read_csv(output)
    assert row["path"].endswith("caf\\xe9.png") and row["class"] in CLASS_NAMES
    assert "caf\\xe9.png" in capsys.readouterr().out


def test_the_output_is_replaced_only_once_it_is_complete(
    tiny_checkpoint, photos, tmp_path, monkeypatch
):
    from fmnist_lightning import predict

    folder, _ = photos
    output = tmp_path / "predictions.csv"
    output.write_text("earlier results\n")

    def fail_half_way(rows, class_names, fmt):
        raise RuntimeError("disk trouble")

    monkeypatch.setattr(predict, "rows_text", fail_half_way)
    with pytest.raises(RuntimeError, match="disk trouble"):
        main([str(tiny_checkpoint), str(folder), "-o", str(output), "--overwrite"])
    assert output.read_text() == "earlier results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions.csv"]  # no temporary


def test_a_full_disk_keeps_the_earlier_output_and_says_so_in_one_line(
    tiny_checkpoint, photos, tmp_path, capsys
):
    folder, _ = photos
    output = tmp_path / "predictions.csv"
    output.write_text("earlier results\n")
    with disk_full_in(tmp_path, 100):
        status = run_predict([str(tiny_checkpoint), str(folder), "-o", str(output), "--overwrite"])
    assert status == 1  # the work failed: the table was printed, the rows not written
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"Error: could not write '{output}' (") and "No space left" in error
    assert "'predictions.csv' is kept as it was" in error and "--output" in error
    assert len(error.splitlines()) == 1
    assert output.read_text() == "earlier results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions.csv"]  # no temporary


def test_an_output_that_is_an_input_is_refused_even_with_overwrite(
    tiny_checkpoint, photos, tmp_path, capsys
):
    folder, _ = photos
    image, checkpoint = tmp_path / "img0.png", tmp_path / "model.ckpt"
    image.write_bytes((folder / "a_gray.png").read_bytes())
    checkpoint.write_bytes(tiny_checkpoint.read_bytes())
    linked = tmp_path / "linked.csv"
    linked.hardlink_to(image)  # the same file under another name
    before = {path: path.read_bytes() for path in (image, checkpoint)}
    for output in (image, linked, checkpoint):
        status = run_predict([str(checkpoint), str(image), "-o", str(output), "--overwrite"])
        assert status == 2
        error = capsys.readouterr().err.strip()
        assert "writing there would replace it; choose another --output" in error
        assert len(error.splitlines()) == 1
    assert {path: path.read_bytes() for path in before} == before


def test_an_output_that_cannot_be_written_is_refused_before_classifying(
    tiny_checkpoint, photos, tmp_path, capsys, monkeypatch
):
    from fmnist_lightning import predict

    folder, _ = photos
    (tmp_path / "a-file").write_text("")
    monkeypatch.setattr(predict, "load_classifier", lambda *a, **k: pytest.fail("loaded"))
    status = run_predict(
        [str(tiny_checkpoint), str(folder), "-o", str(tmp_path / "a-file" / "o.csv")]
    )
    assert status == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("Error: cannot write") and "a-file" in error
    assert len(error.splitlines()) == 1


def test_an_unknown_device_is_one_line(tiny_checkpoint, photos, tmp_path, capsys):
    folder, _ = photos
    output = tmp_path / "rows.csv"
    assert (
        run_predict([str(tiny_checkpoint), str(folder), "-o", str(output), "--device", "foo"]) == 2
    )
    error = capsys.readouterr().err.strip()
    assert error.startswith("Error: Unknown device 'foo'") and len(error.splitlines()) == 1
    assert not output.exists()


def test_a_fifo_is_reported_not_read(tiny_checkpoint, photos, tmp_path, no_hang):
    folder, _ = photos
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    output = tmp_path / "rows.json"
    assert (
        run_predict(
            [str(tiny_checkpoint), str(fifo), str(folder / "a_gray.png"), "-o", str(output)]
        )
        == 1
    )
    by_path = {row["path"]: row for row in json.loads(output.read_text())}
    assert "not a regular file" in by_path[str(fifo)]["error"]
    assert by_path[str(folder / "a_gray.png")]["error"] is None


def test_each_image_is_classified_once_through_a_symlink_loop(tiny_checkpoint, photos, tmp_path):
    folder, _ = photos
    images = tmp_path / "images"
    images.mkdir()
    (images / "shirt.png").write_bytes((folder / "a_gray.png").read_bytes())
    (images / "loop").symlink_to(images, target_is_directory=True)
    output = tmp_path / "rows.csv"
    for inputs in ([str(images / "**" / "*.png")], [str(images), "--recursive"]):
        assert run_predict([str(tiny_checkpoint), *inputs, "-o", str(output), "--overwrite"]) == 0
        assert [Path(row["path"]).name for row in read_csv(output)] == ["shirt.png"]
