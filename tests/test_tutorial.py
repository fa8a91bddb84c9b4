"""docs/tutorial: the Spanish notebook runs end to end with tiny budgets in a real Jupyter kernel
(nbclient and ipykernel, the tutorial extra, which dev includes): every cell ran, its figures and key
outputs are there, nothing went to stderr, and each training showed one progress display. The
notebook in the repository carries no outputs, and its budgets are one `parameters` cell."""

import ast
import json
import os
import sys
from pathlib import Path

import pytest
from helpers import ROOT, SHARED_DATA

NOTEBOOK = ROOT / "docs" / "tutorial" / "redes-recurrentes.ipynb"
# Tiny budgets (papermill-style: a cell injected after the `parameters` cell overrides them)
TINY = {
    "PASOS": 10,
    "PASOS_TECLADO": 10,
    "EPOCAS_SENTIMIENTO": 1,
    "OCULTA": 16,
    "EMBEBIDO": 16,
    "BPTT": 16,
    "LOTE": 8,
    "PASOS_ATRAS": 8,
    "LINEAS_TATOEBA": 1500,
    "FILAS_SENTIMIENTO": 1500,
    "DISPOSITIVO": "cpu",
}
TRAININGS = 11  # train_lm and train_classifier calls in the notebook: one progress display each
# The figures it draws: seqtext's (curves ×4, gradients ×2, confusion) and its own (lengths, temperature,
# the three classifiers, p("perro") key by key)
FIGURES = 11


def notebook() -> dict:
    return json.loads(NOTEBOOK.read_text(encoding="utf-8"))


def code_cells(nb: dict) -> list[dict]:
    return [cell for cell in nb["cells"] if cell["cell_type"] == "code"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def parameters_cell(nb: dict) -> dict:
    tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged `parameters` holds the budgets"
    return tagged[0]


def test_the_committed_notebook_has_no_outputs():
    for cell in code_cells(notebook()):
        assert cell["outputs"] == [] and cell["execution_count"] is None, (
            f"cell {cell.get('id')} has outputs: clear them before committing (nbstripout, or Clear All Outputs)"
        )
    assert "widgets" not in notebook()["metadata"]


def test_the_budgets_are_one_parameters_cell():
    cell = parameters_cell(notebook())
    assigned = {t.id for node in ast.parse(source(cell)).body if isinstance(node, ast.Assign) for t in node.targets}
    assert set(TINY) | {"CARPETA", "SEMILLA"} <= assigned, "the test overrides names the parameters cell must define"


def test_the_first_code_cell_installs_seqtext_when_it_is_missing():
    first = source(code_cells(notebook())[0])
    assert 'find_spec("seqtext") is None' in first and '%pip install --quiet "{ORIGEN_SEQTEXT}[plot]"' in first
    assert 'ORIGEN_SEQTEXT = "seqtext"' in first and "raise RuntimeError" in first  # a clear line if it fails


def test_the_readme_and_the_docs_link_the_tutorial():
    assert "docs/tutorial/redes-recurrentes.ipynb" in (ROOT / "README.md").read_text(encoding="utf-8")
    assert "redes-recurrentes.ipynb" in (ROOT / "docs" / "tutorial" / "README.md").read_text(encoding="utf-8")


def outputs(cell: dict, kind: str) -> list[dict]:
    return [o for o in cell.get("outputs", []) if o["output_type"] == kind]


def text_of(cell: dict) -> str:
    """Everything a cell printed or displayed as text."""
    parts = []
    for o in cell.get("outputs", []):
        parts.append("".join(o.get("text", "")))
        parts += ["".join(o.get("data", {}).get(kind, "")) for kind in ("text/plain", "text/html")]
    return "\n".join(parts)


def run_notebook(runs: Path, cwd: Path, *, until: str | None = None, then: str = "") -> dict:
    """The notebook executed in a real kernel from `cwd`, with TINY budgets and its runs in `runs`
    (a cell injected after the `parameters` cell, as papermill does); `until`: stop after the cell
    whose source has this text, and run `then` there."""
    nbformat = pytest.importorskip("nbformat", reason="needs the tutorial extra (pip install -e '.[tutorial]')")
    nbclient = pytest.importorskip("nbclient", reason="needs the tutorial extra (pip install -e '.[tutorial]')")
    pytest.importorskip("ipykernel", reason="needs a Jupyter kernel: the tutorial extra installs ipykernel")
    pytest.importorskip("matplotlib", reason="the notebook draws its figures with matplotlib (the plot extra)")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    if until is not None:
        nb.cells = nb.cells[: next(i for i, c in enumerate(nb.cells) if until in c.source) + 1]
        nb.cells.append(nbformat.v4.new_code_cell(then))
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    overrides = {**TINY, "CARPETA": str(runs)}
    injected = nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in overrides.items()))
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(at + 1, injected)
    env = {"OMP_NUM_THREADS": "1", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel is this interpreter ("python" first on PATH), on one thread
    try:
        client = nbclient.NotebookClient(
            nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
        )
        client.execute()
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
        nbformat.write(nb, runs.parent / NOTEBOOK.name)  # what it showed, to read when a check fails
    return json.loads(nbformat.writes(nb))


@pytest.fixture(scope="module")
def executed(tmp_path_factory) -> tuple[dict, Path]:
    """The whole notebook, run where a learner opens it: it finds the corpora above docs/tutorial."""
    runs = tmp_path_factory.mktemp("tutorial") / "ejecuciones"
    return run_notebook(runs, NOTEBOOK.parent), runs


def test_every_cell_ran_without_errors_or_terminal_output(executed):
    nb, _ = executed
    for cell in code_cells(nb):
        assert cell["execution_count"] is not None, f"cell {cell['id']} did not run"
        assert not outputs(cell, "error"), f"cell {cell['id']} failed: {outputs(cell, 'error')}"
        stderr = [o for o in outputs(cell, "stream") if o["name"] == "stderr"]
        assert not stderr, f"cell {cell['id']} wrote to stderr: {''.join(stderr[0]['text'])[:500]}"


def test_each_training_shows_one_progress_display_updated_in_place(executed):
    nb, _ = executed
    displays = [o for c in code_cells(nb) for o in outputs(c, "display_data") if "<progress" in str(o["data"])]
    assert len(displays) == TRAININGS, "one display per training, however many steps"
    for display in displays:
        assert "done" in "".join(display["data"]["text/plain"]), "the display ends on its final state"


def test_the_figures_and_key_outputs_are_there(executed):
    nb, runs = executed
    cells = code_cells(nb)
    figures = sum("image/png" in o.get("data", {}) for c in cells for o in c.get("outputs", []))
    assert figures == FIGURES
    everything = "\n".join(text_of(c) for c in cells)
    assert "seqtext 0.1.0" in everything
    assert ("Tatoeba" if (SHARED_DATA / "spanish").is_dir() else "corpus del proyecto") in everything
    for expected in (
        "mejor bpc de validación",
        "bits por carácter en el texto de prueba",
        "T = 0.2: 'Voy al parque con mi ",
    ):
        assert expected in everything
    for expected in ("exactitud", "<table>", "Voy al parque con mi per▌", "ahorro de pulsaciones (KSR)"):
        assert expected in everything
    for run in ("elman", "elman_bptt8", "lstm", "gru", "lstm_tf075", "sentimiento", "sentimiento_bi2", "teclado"):
        assert (runs / run / "model.safetensors").is_file(), f"{run} was not trained"
    assert (runs / "teclado" / "ngram.safetensors").is_file() and (runs / "confusion.png").is_file()


FALLBACK_CHECK = """
lm = seqtext.train_lm(
    LMConfig(level="char", embed_dim=8, hidden_dim=8, layers=1, dropout=0.0),
    TrainConfig(data=str(TEXTO), out=str(CARPETA / "lm"), max_steps=3, device="cpu"),
)
clf = seqtext.train_classifier(
    ClassifierConfig(embed_dim=8, hidden_dim=8),
    ClassifierTrainConfig(data=str(SENTIMIENTO), out=str(CARPETA / "clf"), epochs=1, device="cpu"),
)
print("reserva:", RAIZ, seqtext.evaluate(CARPETA / "clf", SENTIMIENTO_PRUEBA).texts, len(frases))
"""


def test_without_the_project_it_writes_template_corpora_that_train(tmp_path):
    """A fresh Colab: no corpora above the notebook. Its data cell writes template corpora, and both
    kinds of model train on them and evaluate on their held-out part."""
    runs = tmp_path / "ejecuciones"
    nb = run_notebook(runs, tmp_path, until="def raiz_del_proyecto", then=FALLBACK_CHECK)
    everything = "\n".join(text_of(c) for c in code_cells(nb))
    assert "español: 400 frases (reserva)" in everything and "reserva: None" in everything
    assert not any(outputs(c, "error") for c in code_cells(nb))
    assert (runs / "lm" / "model.safetensors").is_file() and (runs / "clf" / "model.safetensors").is_file()
    assert not (tmp_path / "corpora").exists()
