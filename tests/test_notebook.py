"""notebooks/tour.ipynb: committed without outputs, and executed end to end on synthetic data."""

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from fmnist_lightning.analysis import run_files

NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "tour.ipynb"
# Small limits for the suite: a tiny network and small batches on the synthetic data.
TINY = "debug=tiny model.net.blocks=[[8],[16]] model.net.dense=[16]"


def test_the_committed_notebook_has_no_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert len(code) > 10
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)
    assert notebook.metadata.kernelspec.name == "python3"


def test_it_trains_through_the_same_code_path_as_the_command_line():
    source = "\n".join(c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells)
    assert 'compose("train"' in source and "train(cfg)" in source
    assert "Trainer(" not in source  # no trainer of its own


@pytest.mark.slow  # a Jupyter kernel is a subprocess
def test_the_tour_runs_end_to_end_on_synthetic_data(synthetic_root, tmp_path, monkeypatch):
    logs = tmp_path / "logs"
    monkeypatch.setenv("FMNIST_DATA_DIR", str(synthetic_root))
    monkeypatch.setenv("FMNIST_TOUR_LOGS", str(logs))
    monkeypatch.setenv("FMNIST_TOUR_OVERRIDES", TINY)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    ).execute()

    (run_dir,) = (logs / "runs").iterdir()
    assert run_dir.name.startswith("tour-")
    summary = run_files.read_json(run_dir / run_files.TEST_METRICS_JSON)
    assert summary["epochs"] == 3 and (run_dir / summary["best_checkpoint"]).is_file()
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    pictures = [o for c in code for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(pictures) == 5  # samples, architecture, curves, confusion matrix, predictions
    # The data came from the synthetic files: 400 training images, 100 test images.
    sizes = next(c for c in code if "datamodule.tensors.items()" in c.source).outputs[0]
    assert json.loads(sizes.data["text/plain"].replace("'", '"')) == {
        "train": 320,
        "val": 80,
        "test": 100,
    }
