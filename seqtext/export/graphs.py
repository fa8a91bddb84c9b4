"""The networks as ONNX graphs, written node by node with onnx.helper from a model's weights.

ONNX's own recurrent operators (LSTM, GRU, RNN) run the cells, so any ONNX runtime runs them with its
fused kernels. Their gate order differs from PyTorch's, so the weights are reordered here:
LSTM i f g o → i o f c; GRU r z n → z r h (with linear_before_reset, as PyTorch computes it).

- language model, `forward`: ids (B, T) and the state (h, and c for an LSTM: (L, B, H)) → logits (B, T, V)
  and the new state; `step`: ids (B,) and the state → logits and probabilities (B, V) and the new state.
- classifier: ids (B, T) padded with 0 and lengths (B,) → probabilities (B, C), padding never read
  (sequence_lens), pooled as the model pools.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from seqtext.classifiers import KMAX

OPSET = 18  # ReduceMax takes its axes as an input from 18 on
# The file format: the oldest with opset 18 (onnx 1.13), not the installed onnx's newest, which runtimes a
# few releases old refuse (onnxruntime-web 1.23 from npm cannot open IR 14)
IR_VERSION = 8
GATES = {"lstm": (4, [0, 3, 1, 2]), "gru": (3, [1, 0, 2]), "rnn": (1, [0])}  # PyTorch chunks in ONNX order
OPS = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}


class Graph:
    """Nodes, initializers and fresh names for one graph."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self.weights, self.nodes, self.initializers, self.count = weights, [], [], 0

    def const(self, value: np.ndarray | list, name: str | None = None) -> str:
        name = name or self.fresh("const")
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def fresh(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}_{self.count}"

    def op(self, kind: str, inputs: list[str], outputs: int | list[str] = 1, **attributes) -> list[str]:
        names = [self.fresh(kind.lower()) for _ in range(outputs)] if isinstance(outputs, int) else outputs
        self.nodes.append(helper.make_node(kind, inputs, names, **attributes))
        return names

    def one(self, kind: str, inputs: list[str], **attributes) -> str:
        return self.op(kind, inputs, 1, **attributes)[0]

    def linear(self, x: str, prefix: str) -> str:
        """x @ W.T + b for the PyTorch Linear whose weights are `prefix`.weight and `prefix`.bias."""
        weight = self.const(np.ascontiguousarray(self.weights[f"{prefix}.weight"].T))
        return self.one("Add", [self.one("MatMul", [x, weight]), self.const(self.weights[f"{prefix}.bias"])])

    def recurrent(self, x: str, cell: str, layer: int, hidden: int, directions: int, state: list[str], lens: str = ""):
        """One layer of ONNX's LSTM/GRU/RNN over x (T, B, in); returns Y (T, D, B, H) and the final states."""
        gates, order = GATES[cell]

        def stacked(name: str) -> np.ndarray:
            suffixes = ["", "_reverse"][:directions]
            parts = [self.weights[f"rnn.{name}_l{layer}{s}"].reshape(gates, hidden, -1)[order] for s in suffixes]
            return np.stack([p.reshape(gates * hidden, -1) for p in parts])

        w, r = self.const(stacked("weight_ih")), self.const(stacked("weight_hh"))
        b = self.const(np.concatenate([stacked("bias_ih"), stacked("bias_hh")], axis=1)[..., 0])
        attributes = {"hidden_size": hidden, "direction": "bidirectional" if directions == 2 else "forward"}
        if cell == "gru":
            attributes["linear_before_reset"] = 1
        outputs = 3 if cell == "lstm" else 2
        return self.op(OPS[cell], [x, w, r, b, lens, *state], outputs, **attributes)

    def model(self, inputs: list, outputs: list, name: str) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.initializers)
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="seqtext", ir_version=IR_VERSION
        )
        onnx.checker.check_model(model)
        return model


def float_input(name: str, shape: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def int_input(name: str, shape: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.INT64, shape)


def language_model(weights: dict[str, np.ndarray], config, step: bool) -> onnx.ModelProto:
    """The LM's `step` graph (one token per row) or its `forward` graph (T tokens per row)."""
    g, lstm, layers = Graph(weights), config.cell == "lstm", config.layers
    ids = "ids"
    if step:
        ids = g.one("Unsqueeze", ["ids", g.const(np.array([1]))])  # (B, 1)
    table = weights.get("embed.table", weights["embed.weight"])  # char-aware input: precomputed per token
    x = g.one("Transpose", [g.one("Gather", [g.const(table), ids])], perm=[1, 0, 2])  # (T, B, E)
    finals: list[list[str]] = []
    for layer in range(layers):
        index = g.const(np.array([layer]))
        state = [g.one("Gather", ["h", index])] + ([g.one("Gather", ["c", index])] if lstm else [])
        out = g.recurrent(x, config.cell, layer, config.hidden_dim, 1, state)
        x = g.one("Squeeze", [out[0], g.const(np.array([1]))])  # (T, B, H)
        finals.append(out[1:])
    g.op("Concat", [f[0] for f in finals], ["h_out"], axis=0)
    if lstm:
        g.op("Concat", [f[1] for f in finals], ["c_out"], axis=0)
    features = g.one("Transpose", [x], perm=[1, 0, 2])  # (B, T, H)
    if "proj.weight" in weights:
        features = g.linear(features, "proj")
    logits = g.linear(features, "head")  # (B, T, V)
    state_in = [float_input("h", [layers, "B", config.hidden_dim])]
    state_out = [float_input("h_out", [layers, "B", config.hidden_dim])]
    if lstm:
        state_in.append(float_input("c", [layers, "B", config.hidden_dim]))
        state_out.append(float_input("c_out", [layers, "B", config.hidden_dim]))
    vocab = config.vocab_size
    if step:
        g.op("Squeeze", [logits, g.const(np.array([1]))], ["logits"])
        g.op("Softmax", ["logits"], ["probs"], axis=-1)
        outputs = [float_input("logits", ["B", vocab]), float_input("probs", ["B", vocab])]
        return g.model([int_input("ids", ["B"]), *state_in], outputs + state_out, "seqtext_lm_step")
    g.op("Identity", [logits], ["logits"])
    outputs = [float_input("logits", ["B", "T", vocab])]
    return g.model([int_input("ids", ["B", "T"]), *state_in], outputs + state_out, "seqtext_lm_forward")


def classifier(weights: dict[str, np.ndarray], config) -> onnx.ModelProto:
    """ids (B, T) and lengths (B,) → label probabilities (B, C), as RNNClassifier computes them."""
    g, directions, hidden = Graph(weights), 2 if config.bidirectional else 1, config.hidden_dim
    lengths = g.one("Max", ["lengths", g.const(np.array(1, dtype=np.int64))])  # an empty text reads one pad
    lens = g.one("Cast", [lengths], to=TensorProto.INT32)
    x = g.one("Transpose", [g.one("Gather", [g.const(weights["embed.weight"]), "ids"])], perm=[1, 0, 2])  # (T, B, E)
    width = g.const(np.array([0, 0, -1]))
    for layer in range(config.layers):
        out = g.recurrent(x, config.cell, layer, hidden, directions, [], lens)
        x = g.one("Reshape", [g.one("Transpose", [out[0]], perm=[0, 2, 1, 3]), width])  # (T, B, D·H)
        last_h = out[1]  # (D, B, H)
    if config.pooling == "last":
        pooled = g.one("Reshape", [g.one("Transpose", [last_h], perm=[1, 0, 2]), g.const(np.array([0, -1]))])
    else:
        out = g.one("Transpose", [x], perm=[1, 0, 2])  # (B, T, D·H)
        steps = g.one("Range", [g.const(np.array(0)), g.one("Gather", [g.one("Shape", ["ids"]), g.const(np.array(1))]),
                                g.const(np.array(1))])  # fmt: skip
        mask = g.one(
            "Unsqueeze",
            [g.one("Less", [steps, g.one("Unsqueeze", [lengths, g.const(np.array([1]))])]), g.const(np.array([2]))],
        )  # fmt: skip  (B, T, 1)
        one_axis = g.const(np.array([1]))
        if config.pooling == "mean":
            maskf = g.one("Cast", [mask], to=TensorProto.FLOAT)
            total = g.one("ReduceSum", [g.one("Mul", [out, maskf]), one_axis], keepdims=0)
            pooled = g.one("Div", [total, g.one("ReduceSum", [maskf, one_axis], keepdims=0)])
        elif config.pooling == "max":
            minus_inf = g.const(np.array(-np.inf, dtype=np.float32))
            pooled = g.one("ReduceMax", [g.one("Where", [mask, out, minus_inf]), one_axis], keepdims=0)
        elif config.pooling == "kmax":  # as RNNClassifier: KMAX − 1 steps of −inf past the end, the top KMAX
            minus_inf = g.const(np.array(-np.inf, dtype=np.float32))
            pads = g.const(np.array([0, 0, 0, 0, KMAX - 1, 0]))  # (B, T, F): begins, then ends
            padded = g.one("Pad", [g.one("Where", [mask, out, minus_inf]), pads, minus_inf])
            top = g.op("TopK", [padded, g.const(np.array([KMAX]))], 2, axis=1)[0]  # (B, KMAX, F), largest first
            largest = g.one("ReduceMax", [top, one_axis], keepdims=1)
            top = g.one("Where", [g.one("IsInf", [top]), largest, top])  # a text shorter than KMAX repeats it
            pooled = g.one("Reshape", [top, g.const(np.array([0, -1]))])
        else:  # attention
            minus_inf = g.const(np.array(-np.inf, dtype=np.float32))
            scores = g.one("Where", [mask, g.linear(out, "attention"), minus_inf])
            pooled = g.one("ReduceSum", [g.one("Mul", [g.one("Softmax", [scores], axis=1), out]), one_axis], keepdims=0)
    zero = g.const(np.array(0, dtype=np.int64))
    nonempty = g.one("Cast", [g.one("Greater", ["lengths", zero])], to=TensorProto.FLOAT)
    pooled = g.one("Mul", [pooled, g.one("Unsqueeze", [nonempty, g.const(np.array([1]))])])
    g.op("Softmax", [g.linear(pooled, "head")], ["probs"], axis=-1)
    inputs = [int_input("ids", ["B", "T"]), int_input("lengths", ["B"])]
    return g.model(inputs, [float_input("probs", ["B", config.num_classes])], "seqtext_classifier")
