"""The notebooks run from top to bottom (on tiny settings) and are stored without outputs."""

import json
import sys
from pathlib import Path

import nbformat
import pytest
from ipykernel.kernelspec import write_kernel_spec
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))
KERNEL = "stconv-test-python"


def test_the_notebooks_are_there():
    names = {path.stem for path in NOTEBOOKS}
    assert {
        "explore_dataset",
        "train_and_forecast",
        "image_classification",
        "multivariable",
    } <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_is_stored_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert any("parameters" in c.metadata.get("tags", []) for c in code)
    assert notebook.cells[0].cell_type == "markdown"


@pytest.fixture(scope="module")
def kernels(tmp_path_factory) -> Path:
    """A Jupyter data dir with a kernelspec that runs this interpreter, so that the notebooks
    use this environment whatever other ``python3`` kernels the machine has."""
    data_dir = tmp_path_factory.mktemp("jupyter")
    spec = Path(write_kernel_spec(data_dir / "kernels" / KERNEL))
    assert json.loads((spec / "kernel.json").read_text())["argv"][0] == sys.executable
    return data_dir


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs(path, kernels, tmp_path, monkeypatch):
    # The kernel inherits this environment: tiny settings, temporary files under tmp_path.
    monkeypatch.setenv("STCONV_NOTEBOOK_SMOKE", "1")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setenv("JUPYTER_PATH", str(kernels))  # searched before the user's kernels
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))  # connection files
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))  # nothing written under ~
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name=KERNEL,
        resources={"metadata": {"path": str(tmp_path)}},  # the working directory
    )
    client.execute()  # raises CellExecutionError, naming the cell, on an error
