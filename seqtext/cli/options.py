"""The options `train lm` and `train classifier` share, declared once: their types (a config field's own
type: its Literal is the list of choices) and help texts. Each command gives the default, its config's
field: `lr: LrOption = T.lr`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from seqtext.config import Cell, Device, LMCell, Precision

OutOption = Annotated[Path, typer.Option(help="Run directory to write")]
CellOption = Annotated[Cell, typer.Option(help="Recurrent cell: Elman RNN (tanh), LSTM or GRU")]
LMCellOption = Annotated[
    LMCell,
    typer.Option(help="Recurrent cell: Elman RNN (tanh), LSTM, GRU, or cifg: an LSTM with coupled input-forget gates"),
]
LayersOption = Annotated[int, typer.Option(min=1, help="Stacked recurrent layers")]
EmbedDimOption = Annotated[int, typer.Option(min=1, help="Embedding size")]
DropoutOption = Annotated[float, typer.Option(help="Dropout on embeddings, between layers and before the head")]
LrOption = Annotated[float, typer.Option(help="Peak AdamW learning rate (warm-up, then cosine decay)")]
WeightDecayOption = Annotated[float, typer.Option(help="AdamW weight decay")]
ClipOption = Annotated[float, typer.Option(min=0, help="Clip the gradient norm to this value; 0 turns clipping off")]
MaxTimeOption = Annotated[str | None, typer.Option(help="Wall-clock budget: 90s, 10m, 1h")]
MaxStepsOption = Annotated[
    int | None,
    typer.Option(min=1, help="Optimizer steps at most; the learning rate is planned over them [default: no limit]"),
]
EvalEveryOption = Annotated[int, typer.Option(min=0, help="Steps between evaluations; 0 means twice per epoch")]
PrecisionOption = Annotated[Precision, typer.Option(help="bf16 autocast where supported (auto), or force one")]
DeviceOption = Annotated[Device, typer.Option(help="Where to train")]
EmaOption = Annotated[
    float, typer.Option(help="Keep an exponential moving average of the weights with this decay (0.999); 0 off")
]
ResumeOption = Annotated[bool, typer.Option(help="Continue an interrupted run in --out exactly")]
PlotOption = Annotated[bool, typer.Option(help="Draw the training curves into OUT/curves.png when training stops")]
