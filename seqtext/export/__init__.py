"""`seqtext export RUN --format onnx --out DIR`: a run as portable files, to run without seqtext.

A language model becomes its network as ONNX (`lm_step.onnx`, one token per row with the state in
and out; `lm_forward.onnx`, a batch of sequences), its raw weights (`weights.safetensors`, for a
hand-written step such as the page's), its tokenizer and vocabulary, the keyboard's n-gram arrays
and mixing weights (`ngram.safetensors`, `keyboard.json`; with --memory, the training lines in
`memory.safetensors`); a classifier becomes `classifier.onnx`, its weights, tokenizer, labels and
phrase memory. JSON and safetensors only, never pickle, and a README.md in DIR that says what each
file holds and how the keyboard ranks its suggestions.
docs/export.md is the full description. Needs the `export` extra (onnx; onnxruntime to check).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from seqtext.errors import ConfigError
from seqtext.files import check_output_dir
from seqtext.runs.loading import Loaded, load

FORMATS = ("onnx",)
# What a keyboard in a web page reads (seqtext serve's in-page keyboard): everything but the ONNX graphs
PAGE_FILES = (
    "keyboard.json",
    "vocab.json",
    "weights.safetensors",
    "ngram.safetensors",
    "lexicon.safetensors",
    "memory.safetensors",
)


def require_extra() -> None:
    """A one-line ConfigError when onnx is missing."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise ConfigError('seqtext export needs onnx: pip install "seqtext[export]"') from None


def check_target(out: Path, force: bool) -> None:
    """Refuse, before any work, an --out that is a file, cannot be written, or holds files (without --force)."""
    check_output_dir(out)
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ConfigError(f"--out {out} is not empty; choose a new or empty directory, or pass --force to write in it")


def export_run(run: str | Path | Loaded, out: str | Path, *, format: str = "onnx", force: bool = False) -> list[Path]:
    """Write the portable files of a run into `out`; returns their paths. See docs/export.md."""
    if format not in FORMATS:
        raise ConfigError(f"--format {format!r} is not supported; choose one of: {', '.join(FORMATS)}")
    out = Path(out)
    check_target(out, force)
    require_extra()
    loaded = run if isinstance(run, Loaded) else load(run)
    if len(loaded.members) > 1:
        raise ConfigError(
            f"{loaded.path} is an ensemble of {len(loaded.members)} models; export one member, or distil it "
            "into one model first (seqtext train classifier --distill-from)"
        )
    from seqtext.export import files

    out.mkdir(parents=True, exist_ok=True)
    written = files.write_lm(loaded, out) if loaded.kind == "lm" else files.write_classifier(loaded, out)
    shutil.copyfile(Path(__file__).parent / f"readme_{loaded.kind}.md", out / "README.md")
    return [*written, out / "README.md"]


def keyboard_files(loaded: Loaded) -> dict[str, bytes]:
    """A language model's export without its ONNX graphs, in memory (name → bytes): the files of PAGE_FILES
    it has. What `seqtext serve` hands its page to run the keyboard there; needs no onnx."""
    from seqtext.export import files

    with tempfile.TemporaryDirectory(prefix="seqtext-page-") as folder:
        written = files.write_lm(loaded, Path(folder), graphs=False)
        return {path.name: path.read_bytes() for path in written if path.name in PAGE_FILES}
