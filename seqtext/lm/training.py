"""Language-model training: next-token prediction with teacher forcing (or scheduled sampling) over
line or stream windows, run by the shared loop of `seqtext.training.loop`.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from seqtext.cells import PAIRED
from seqtext.config import LMConfig, TrainConfig
from seqtext.data import Window, check_lm_size, count_characters, lm_windows, looks_like_lines, read_texts, split_texts
from seqtext.errors import ConfigError, CorpusError
from seqtext.lm.evaluation import eval_windows, lm_metrics, lm_nll
from seqtext.lm.gradients import ProbeWindows, probe_windows, state_gradient_norms
from seqtext.lm.sampled import SampledSoftmax, token_counts
from seqtext.models import RNNLanguageModel, State, detach_state, on_meta, state_from_tensors, state_tensors
from seqtext.runs.checks import problem
from seqtext.runs.reading import read_tokenizer
from seqtext.runs.resume import saved_configs
from seqtext.runtime import autocast, check_fits, pick_device, resolve_precision, seed_everything
from seqtext.tokenizer import PAD_ID, build_tokenizer, from_json, to_json
from seqtext.training import distributed, loop, shards
from seqtext.training.averaging import WeightAverage
from seqtext.training.fitting import TIMED_STEPS, Choice, Recipe, choose, seconds_per_step
from seqtext.training.loop import Callback, TrainResult, run_training
from seqtext.training.session import TrainingSession, check_out_dir
from seqtext.vectors import check_dim, start_embedding
from seqtext.wordinput import char_vocab_size, spell_vocabulary, vocabulary_tokens


class LMTask:
    """Next-token prediction with teacher forcing (or scheduled sampling below ratio 1)."""

    monitor = ("val_loss", "min")
    info: ClassVar[dict[str, Any]] = {}

    def __init__(
        self,
        model: RNNLanguageModel,
        train: Any,
        valid: Any,
        valid_chars: int,
        cfg: TrainConfig,
        device: torch.device,
        precision: str,
        probe: ProbeWindows | None = None,
        sampler: SampledSoftmax | None = None,
    ) -> None:
        self.model, self.train_windows, self.valid_windows = model, train, valid
        self.valid_chars, self.cfg, self.device, self.precision = valid_chars, cfg, device, precision
        self.steps_per_epoch = train.steps_per_epoch
        self.state: State | None = None
        self.probe = probe  # validation windows for the gradient through time (--log-gradients)
        self.sampler = sampler  # --sampled-softmax: the training loss's output layer
        self.average = WeightAverage(model, cfg.ema) if cfg.ema else None  # --ema: validated and kept
        if self.average is not None:
            self.kept_model = self.average.model

    def windows(self, epoch: int, start: int) -> Iterator[Window]:
        return self.train_windows.epoch(epoch, self.cfg.seed, start)

    def loss(self, window: Window) -> tuple[torch.Tensor, int]:
        if self.average is not None:
            self.average.catch_up()  # the loop has taken the step of the previous window
            self.average.pending = True
        inputs, targets = window.inputs.to(self.device), window.targets.to(self.device)
        state = self.state if window.carry else None
        with autocast(self.device, self.precision):
            if self.cfg.teacher_forcing < 1.0:
                logits, state = self._scheduled_sampling(inputs, state)  # (B, T, V)
                real = targets != PAD_ID
                nll = F.cross_entropy(logits[real].float(), targets[real], reduction="none")  # (N,)
            elif self.sampler is not None:
                features, state = self.model.features(inputs, state)
                real = targets != PAD_ID
                nll = self.sampler.nll(features[real], targets[real], self.model.head)  # (N,)
            else:
                nll, state = self.model.nll(inputs, targets, state, PAD_ID)  # (N,)
        self.state = detach_state(state)
        return nll.mean(), nll.numel()

    def _scheduled_sampling(self, inputs: torch.Tensor, state: State | None) -> tuple[torch.Tensor, State]:
        """Step by step: each input is the true token with probability R, else the model's own sample."""
        outputs, previous = [], None
        for t in range(inputs.size(1)):
            step_input = inputs[:, t : t + 1]  # (B, 1)
            if previous is not None:
                keep = torch.rand(step_input.shape, device=self.device) < self.cfg.teacher_forcing
                step_input = torch.where(keep | (step_input == PAD_ID), step_input, previous)
            logits, state = self.model(step_input, state)  # (B, 1, V)
            outputs.append(logits)
            previous = torch.multinomial(logits[:, 0].float().softmax(-1).detach(), 1)  # (B, 1)
        return torch.cat(outputs, dim=1), state

    def validate(self) -> dict[str, float]:
        # Training precision: validation is for picking the checkpoint, and bf16 makes it ~3× cheaper;
        # `seqtext evaluate` reports final figures in fp32.
        if self.average is not None:
            self.average.catch_up()
        model = self.model if self.average is None else self.average.model
        nll, tokens = lm_nll(model, self.valid_windows, self.device, self.precision)
        m = lm_metrics(nll, tokens, self.valid_chars)
        return {"val_loss": m.loss, "val_ppl": m.perplexity, "val_bpc": m.bits_per_char}

    def probe_gradients(self) -> dict[str, Any]:
        """--log-gradients: mean ‖∂L_T/∂h_{T−k}‖ over the probe windows for k = 0 … steps, and its last ÷ first."""
        if self.probe is None:
            return {}
        mean = state_gradient_norms(self.model, self.probe).mean(0)  # (steps + 1,)
        return {"grad_tt": mean.tolist(), "grad_tt_ratio": float(mean[-1] / mean[0]) if mean[0] > 0 else math.nan}

    def carried(self) -> dict[str, torch.Tensor]:
        average = {} if self.average is None else self.average.tensors()
        if self.state is None:
            return average
        return {**average, **{f"state.{i}": s for i, s in enumerate(state_tensors(self.state))}}

    def restore(self, tensors: dict[str, torch.Tensor]) -> None:
        if self.average is not None:
            self.average.restore(tensors)
        tensors = {k: v for k, v in tensors.items() if not k.startswith("ema")}
        parts = [tensors[k] for k in sorted(tensors) if k.startswith("state.")]
        config = self.model.config
        expected = (config.layers, config.hidden_dim)
        count = 2 if config.cell in PAIRED else 1
        if parts and (
            sorted(tensors) != [f"state.{i}" for i in range(count)]
            or any(p.dim() != 3 or (p.size(0), p.size(2)) != expected or p.size(1) > self.cfg.batch_size for p in parts)
            or len({p.shape for p in parts}) != 1
        ):
            raise problem(
                Path(self.cfg.out) / "optimizer.safetensors",
                "the carried RNN state does not fit this model (a foreign or edited file)",
            )
        self.state = state_from_tensors(parts) if parts else None


def lm_texts(model_config: LMConfig, train_config: TrainConfig) -> tuple[list[str], list[str], bool]:
    """The training and validation texts of a run (--valid, or the seeded split), and whether it is a stream."""
    texts = read_texts(train_config.data, train_config.text_column)
    stream = model_config.sample_by == "stream" or (model_config.sample_by == "auto" and not looks_like_lines(texts))
    if train_config.valid:
        return texts, read_texts(train_config.valid, train_config.text_column), stream
    train_texts, valid_texts = split_texts(texts, train_config.valid_fraction, stream=stream, seed=train_config.seed)
    return train_texts, valid_texts, stream


def train_lm(
    session: TrainingSession,
    model_config: LMConfig,
    train_config: TrainConfig,
    *,
    resume: bool = False,
    callback: Callback | None = None,
    recipe: Recipe | None = None,
) -> TrainResult:
    """Train a language model on train_config.data; keep the best-validation checkpoint in train_config.out.

    In the session that holds train_config.out: `seqtext.train_lm` opens it, and adds the keyboard's n-gram.
    With a recipe and --max-time, the model is the recipe's candidate that learns most in the budget here.
    """
    out = Path(train_config.out)
    if resume:  # what training derived when the run started stays as it was
        saved_model, saved_train = saved_configs(out)
        train_config = replace(
            train_config, embeddings_coverage=saved_train.embeddings_coverage, chosen=saved_train.chosen
        )
        if recipe is not None:  # the run chose its model when it started: it goes on with what it chose
            fields = {name for c in recipe.candidates for name in c.fields}
            model_config = replace(model_config, **{name: getattr(saved_model, name) for name in fields})
    saved = check_out_dir(out, resume, model_config, train_config)
    if train_config.embeddings and not resume:
        if model_config.level != "word":
            raise ConfigError("--embeddings holds word vectors; train a --level word language model with them")
        check_dim(train_config.embeddings, model_config.embed_dim)
    seed_everything(train_config.seed)
    device = pick_device(train_config.device)
    precision = resolve_precision(train_config.precision, device)
    train_texts, valid_texts, stream = lm_texts(model_config, train_config)
    if resume:
        tokenizer = read_tokenizer(out, vocab_size=saved.vocab_size, level=saved.level)
    else:
        build = lambda: build_tokenizer(train_texts, model_config.level, model_config.max_vocab)  # noqa: E731
        tokenizer = distributed.from_writer(build, to_json, from_json)  # built once (rank 0), shared
    model_config = replace(
        model_config, vocab_size=tokenizer.get_vocab_size(), sample_by="stream" if stream else "line"
    )
    if model_config.char_input:
        model_config = replace(model_config, char_vocab=char_vocab_size(vocabulary_tokens(tokenizer)))
    train_windows = lm_windows(
        train_texts, tokenizer, stream=stream, bptt=train_config.bptt, batch_size=train_config.batch_size
    )
    check_lm_size(train_windows, train_config.data, train_config.bptt, train_config.batch_size)
    sampler, counts = None, None
    if train_config.sampled_softmax or (train_config.embeddings and not resume):
        counts = token_counts(train_windows, model_config.vocab_size)  # of the whole corpus, the same on every process
    if train_config.sampled_softmax:
        sampler = SampledSoftmax(counts, train_config.sampled_softmax)
    train_windows = shards.for_rank(train_windows, train_config.data)  # under torchrun: this process's share
    valid_windows = eval_windows(valid_texts, tokenizer, stream=stream, bptt=train_config.bptt)
    valid_chars = count_characters(valid_texts, stream=stream)
    if valid_chars == 0:
        raise CorpusError(f"{train_config.valid or train_config.data}: the validation text is empty")
    probe = None
    if train_config.log_gradients:
        try:
            probe = probe_windows(
                valid_texts,
                tokenizer,
                stream=stream,
                steps=None,
                default=train_config.bptt,
                count=16,
                source="validation text",
            )
        except CorpusError as exc:
            raise CorpusError(f"--log-gradients: {exc}; lower --bptt or give more validation text") from exc
    choice = None
    if recipe is not None and train_config.max_time and not resume:
        windows = list(itertools.islice(train_windows.epoch(0, train_config.seed), TIMED_STEPS + 1))

        def time_step(fields: dict[str, Any]) -> float:
            task = LMTask(
                RNNLanguageModel(replace(model_config, **fields)).to(device),
                *(train_windows, valid_windows, 1, train_config, device, precision, None, sampler),
            )
            return seconds_per_step(task.model, lambda window: task.loss(window)[0], windows, loop.clock)

        step_limit = min(train_config.epoch_limit * train_windows.steps_per_epoch, train_config.max_steps or math.inf)
        choice = distributed.from_writer(  # rank 0 measures; every process trains what it chose
            lambda: fit_to_budget(
                recipe, train_config.max_time or 0.0, step_limit, time_step, train_windows.steps_per_epoch
            ),
            lambda chosen: json.dumps(asdict(chosen)),
            lambda text: Choice(**json.loads(text)),
        )
        model_config = replace(model_config, **choice.fields)
        train_config = replace(train_config, chosen=choice.summary)
    check_fits(on_meta(RNNLanguageModel, model_config), device)
    model = RNNLanguageModel(model_config)
    spell_vocabulary(model, tokenizer)
    if train_config.embeddings and not resume:  # a tied output layer is the same matrix, so it starts from them too
        coverage = start_embedding(model.embed, train_config.embeddings, tokenizer.get_vocab(), counts)
        train_config = replace(train_config, embeddings_coverage=coverage)
    model.embed.weight.requires_grad_(not train_config.freeze_embeddings)  # tied: the output matrix is fixed too
    model = model.to(device)
    task = LMTask(model, train_windows, valid_windows, valid_chars, train_config, device, precision, probe, sampler)
    task.info = {
        **({"embeddings": train_config.embeddings_coverage} if train_config.embeddings else {}),
        **({"chosen": train_config.chosen} if choice is not None else {}),
    }
    return run_training(
        session,
        task,
        tokenizer,
        train_config,
        out,
        resume=resume,
        callback=callback,
        precision=precision,
        device=device,
        spent=choice.seconds if choice else 0.0,
    )


def fit_to_budget(
    recipe: Recipe,
    budget: float,
    step_limit: float,
    time_step: Callable[[dict[str, Any]], float],
    steps_per_epoch: int,
) -> Choice:
    """The recipe's choice for `budget` seconds here (seqtext.training.fitting.choose). The throwaway models
    it times leave the random state as it was, so the chosen model starts as it would have alone."""
    rng = torch.get_rng_state()
    try:
        return choose(recipe, budget, step_limit, time_step, loop.clock, steps_per_epoch)
    finally:
        torch.set_rng_state(rng)
