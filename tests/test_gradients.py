"""Gradients through time (`seqtext gradients`, `--log-gradients`): the numbers are checked by hand on
an Elman RNN and against torch's own fused kernels, and recording them leaves training unchanged."""

import json

import pytest
import torch
import torch.nn.functional as F
from helpers import ROOT, TINY_MODEL, TINY_TRAIN, assert_clean_error, invoke, png_size, train_tiny

import seqtext
from seqtext.config import ClassifierConfig, ClassifierTrainConfig, LMConfig
from seqtext.lm.gradients import ProbeWindows, probe_windows, state_gradient_norms
from seqtext.models import RNNLanguageModel


def windows(ids, last, warm=0, steps=None):
    ids = torch.as_tensor(ids)
    last = torch.as_tensor(last)
    return ProbeWindows(ids[:, :-1], ids[:, 1:], last, warm, steps if steps is not None else int(last.min()) - warm)


@pytest.fixture()
def float64():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def test_elman_rnn_by_hand(float64):
    """Zero embeddings keep h_t = tanh(0) = 0, so each step back multiplies the gradient by W_hh = 0.5."""
    model = RNNLanguageModel(LMConfig(cell="rnn", layers=1, embed_dim=2, hidden_dim=1, dropout=0.0, vocab_size=6))
    with torch.no_grad():
        model.embed.weight.zero_()
        model.rnn.weight_hh_l0.fill_(0.5)
        model.rnn.bias_ih_l0.zero_()
        model.rnn.bias_hh_l0.zero_()
        model.head.weight.copy_(torch.arange(6.0)[:, None])  # logit j = j · h = 0: the prediction is uniform
        model.head.bias.zero_()
    # The last target is token 5: ∂L/∂h_T = Σ_j w_j p_j − w_5 = 15/6 − 5 = −2.5
    norms = state_gradient_norms(model, windows([[2, 4, 4, 4, 4, 4, 4, 4, 4, 5]], [8]))
    assert norms[0].tolist() == pytest.approx([2.5 * 0.5**k for k in range(9)], rel=1e-12)


def test_elman_rnn_with_inputs_against_the_textbook_recurrence(float64):
    """∂L/∂h_t = W_hhᵀ diag(1 − h_{t+1}²) ∂L/∂h_{t+1}, computed here by hand from the forward states."""
    torch.manual_seed(1)
    model = RNNLanguageModel(LMConfig(cell="rnn", layers=1, embed_dim=3, hidden_dim=4, dropout=0.0, vocab_size=9))
    ids = torch.randint(4, 9, (1, 12))
    w_ih, w_hh = model.rnn.weight_ih_l0.detach(), model.rnn.weight_hh_l0.detach()
    b = (model.rnn.bias_ih_l0 + model.rnn.bias_hh_l0).detach()
    h, hs = torch.zeros(4), []
    for token in ids[0, :-1]:
        h = torch.tanh(w_ih @ model.embed.weight[token].detach() + w_hh @ h + b)
        hs.append(h)
    p = (model.head.weight.detach() @ hs[-1] + model.head.bias.detach()).softmax(-1)
    g = model.head.weight.detach().T @ (p - F.one_hot(ids[0, -1], 9))
    expected = [g.norm().item()]
    for t in range(len(hs) - 2, -1, -1):
        g = w_hh.T @ ((1 - hs[t + 1] ** 2) * g)
        expected.append(g.norm().item())
    got = state_gradient_norms(model, windows(ids, [10]))
    assert got[0].tolist() == pytest.approx(expected, rel=1e-10)


def fused_reference(model, inputs, targets, t_end, k):
    """‖∂L_T/∂s_{T−k}‖ with nn.RNN/LSTM/GRU's own kernels: run to T−k, make the state a leaf, run on."""
    x = model.embed(inputs).detach()
    out, state = model.rnn(x[:, : t_end + 1 - k])
    if k == 0:
        leaves = [out[:, -1].detach().requires_grad_()]
        h = leaves[0]
    else:
        leaves = [s.detach().requires_grad_() for s in (state if isinstance(state, tuple) else (state,))]
        out, _ = model.rnn(x[:, t_end + 1 - k : t_end + 1], tuple(leaves) if len(leaves) == 2 else leaves[0])
        h = out[:, -1]
    h = model.proj(h) if model.proj is not None else h
    loss = F.cross_entropy(model.head(h), targets[:, t_end])
    return torch.sqrt(sum(g.pow(2).sum() for g in torch.autograd.grad(loss, leaves))).item()


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize(("layers", "tie"), [(1, False), (2, True)])
def test_unrolled_cells_match_the_fused_kernels(cell, layers, tie, float64):
    torch.manual_seed(0)
    config = LMConfig(cell=cell, layers=layers, embed_dim=5, hidden_dim=7, dropout=0.3, tie_weights=tie, vocab_size=11)
    model = RNNLanguageModel(config).eval()
    ids = torch.randint(4, 11, (3, 14))
    last = torch.tensor([12, 10, 11])  # rows end at different steps, as lines of different lengths do
    for warm in (0, 3):  # a stream window: the first positions only warm the state up
        got = state_gradient_norms(model, windows(ids, last, warm, steps=7))
        for row in range(3):
            inputs, targets = ids[row : row + 1, :-1], ids[row : row + 1, 1:]
            expected = [fused_reference(model, inputs, targets, int(last[row]), k) for k in range(8)]
            assert got[row].tolist() == pytest.approx(expected, rel=1e-9)


def test_probe_windows_follow_how_the_model_reads(char_run, prose_file, lines_file):
    tokenizer = seqtext.load(char_run).tokenizer
    texts = prose_file.read_text(encoding="utf-8").split("\n")
    stream = probe_windows(texts, tokenizer, stream=True, steps=20, default=128, count=8, source="p")
    assert stream.inputs.shape == (8, stream.warm + 21) and stream.warm == 100 and stream.steps == 20
    assert (stream.last == stream.warm + 20).all()
    assert torch.equal(stream.inputs[:, 1:], stream.targets[:, :-1])
    lines = lines_file.read_text(encoding="utf-8").splitlines()
    by_line = probe_windows(lines, tokenizer, stream=False, steps=None, default=128, count=8, source="l")
    assert (by_line.inputs[:, 0] == 2).all() and by_line.warm == 0  # every line from <bos>
    assert (by_line.last >= by_line.steps).all() and (
        by_line.targets[torch.arange(len(by_line.last)), by_line.last] == 3
    ).all()
    with pytest.raises(seqtext.SeqtextError, match="no line of l reaches 500 steps back"):
        probe_windows(lines, tokenizer, stream=False, steps=500, default=128, count=8, source="l")


def test_gradients_report(prose_run, prose_file):
    report = seqtext.gradients(prose_run, prose_file, steps=12, windows=8, batches=3)
    curve = report.through_time
    assert curve["steps_back"] == list(range(13)) and report.windows == 8 and report.model["cell"] == "gru"
    assert all(lo <= mid <= hi for lo, mid, hi in zip(curve["p10"], curve["median"], curve["p90"], strict=True))
    assert report.ratio == pytest.approx(curve["mean"][-1] / curve["mean"][0])
    figures = report.parameters
    assert set(figures["norms"]) == {"embed", "rnn.l0", "head", "total"} and figures["batches"] == 3
    assert (
        figures["clip"] == 1.0 and 0 <= figures["clipped"] <= 1 and (figures["batch_size"], figures["bptt"]) == (8, 16)
    )
    total = figures["norms"]["total"]
    assert total["max"] >= total["mean"] > figures["norms"]["embed"]["mean"]
    assert seqtext.gradients(prose_run, prose_file, steps=4, windows=2, batches=2, clip=1e-9).parameters["clipped"] == 1
    assert seqtext.gradients(prose_run, prose_file, steps=4, windows=2, batches=2, clip=0).parameters["clipped"] == 0
    again = seqtext.gradients(prose_run, prose_file, steps=12, windows=8, batches=3)
    assert again.to_dict() == report.to_dict(), "seeded and deterministic"


def test_gradients_command(char_run, prose_run, lines_file, tmp_path):
    result = invoke("gradients", char_run, prose_run, lines_file, "--steps", "10", "--windows", "4", "--batches", "2")
    assert result.exit_code == 0, result.output
    assert (
        "‖∂L_T/∂h_t‖" in result.stderr and "--clip 1 would have clipped" in result.stderr and "rnn.l0" in result.stderr
    )
    figure = tmp_path / "g.png"
    args = [char_run, prose_run, lines_file, "--steps", "10", "--windows", "4", "--batches", "2", "--json"]
    result = invoke("gradients", *args, "--plot", figure)
    assert result.exit_code == 0, result.output
    reports = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["run"] for r in reports] == [str(char_run), str(prose_run)]
    assert len(reports[0]["through_time"]["mean"]) == 11
    assert png_size(figure) == (640, 400)


def test_gradients_command_refuses_bad_input(char_run, lines_file, tmp_path):

    clf = tmp_path / "clf"
    seqtext.train_classifier(
        ClassifierConfig(embed_dim=8, hidden_dim=8),
        ClassifierTrainConfig(
            data=str(ROOT / "corpora" / "frases_sentimiento.tsv"), out=str(clf), epochs=1, device="cpu"
        ),
    )
    assert_clean_error(invoke("gradients", clf, lines_file), "is a classifier run; 'gradients' needs a language model")
    assert_clean_error(invoke("gradients", char_run, lines_file, "--steps", "900"), "lower --steps")
    assert_clean_error(invoke("gradients", char_run, lines_file, "--plot", tmp_path), "is a directory")
    assert_clean_error(invoke("gradients", char_run, tmp_path / "none.txt"), "no such file")


def records(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize(("corpus", "model"), [("lines_file", {}), ("prose_file", {"cell": "gru"})])
def test_log_gradients_records_and_leaves_training_unchanged(corpus, model, request, tmp_path):
    data = request.getfixturevalue(corpus)
    plain = train_tiny(data, tmp_path / "plain", model)
    logged = train_tiny(data, tmp_path / "logged", model, log_gradients=True)
    assert torch.equal(
        torch.cat([p.flatten() for p in seqtext.load(plain).model.parameters()]),
        torch.cat([p.flatten() for p in seqtext.load(logged).model.parameters()]),
    ), "logging draws no random numbers and touches no gradient"
    rows = records(logged)
    assert not any(k.startswith("grad_") for k in records(plain)[0])
    assert sum(r["grad_steps"] for r in rows) == rows[-1]["step"]  # every step observed once
    for r in rows:
        assert 0 <= r["grad_clipped"] <= 1 and r["grad_norm_max"] >= r["grad_norm"] > 0
        assert {"grad_norm.embed", "grad_norm.rnn.l0", "grad_norm.head"} <= set(r)
        assert len(r["grad_tt"]) == TINY_TRAIN["bptt"] + 1 or corpus == "lines_file"
        assert r["grad_tt_ratio"] == pytest.approx(r["grad_tt"][-1] / r["grad_tt"][0])


def test_clip_counts_are_exact_and_clipping_can_be_off(lines_file, tmp_path):
    always = records(train_tiny(lines_file, tmp_path / "a", clip=1e-9, log_gradients=True, epochs=1))
    off = records(train_tiny(lines_file, tmp_path / "b", clip=0, log_gradients=True, epochs=1))
    assert all(r["grad_clipped"] == 1 for r in always) and all(r["grad_clipped"] == 0 for r in off)
    with pytest.raises(seqtext.SeqtextError, match=r"--clip must be between 0 and 1,000,000 \(got -1.0\)"):
        train_tiny(lines_file, tmp_path / "c", clip=-1)


def test_a_classifier_logs_gradient_norms(tmp_path):
    out = tmp_path / "clf"
    seqtext.train_classifier(
        ClassifierConfig(embed_dim=8, hidden_dim=8),
        ClassifierTrainConfig(
            data=str(ROOT / "corpora" / "frases_sentimiento.tsv"),
            out=str(out),
            epochs=1,
            device="cpu",
            log_gradients=True,
        ),
    )
    row = records(out)[-1]
    assert {"grad_norm", "grad_clipped", "grad_norm.rnn.l0", "grad_norm.rnn.l0_reverse"} <= set(row)
    assert "grad_tt" not in row  # through time is a language model's figure


def test_log_gradients_needs_a_long_enough_validation_text(lines_file, tmp_path):
    valid = tmp_path / "v.txt"
    valid.write_text("a\n", encoding="utf-8")
    with pytest.raises(seqtext.SeqtextError, match=r"--log-gradients: .*lower --bptt"):
        train_tiny(
            lines_file, tmp_path / "r", {**TINY_MODEL, "sample_by": "stream"}, valid=str(valid), log_gradients=True
        )
