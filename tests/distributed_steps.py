"""A few optimizer steps of a tiny language model, run alone or under torchrun (tests/test_distributed.py).

    python tests/distributed_steps.py CORPUS BATCH_SIZE STEPS OUT.safetensors
    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/distributed_steps.py ...

Under torchrun each process reads its shard with BATCH_SIZE sequences and DDP averages the gradients;
rank 0 writes the weights, so they can be compared with one process reading twice the batch. The
process ends as `seqtext` ends: the session's shutdown in distributed.joined(), then distributed.leave().
"""

import itertools
import sys

import torch
from safetensors.torch import save_file

from seqtext.config import LMConfig, TrainConfig
from seqtext.data import lm_windows, read_texts
from seqtext.lm.training import LMTask
from seqtext.models import RNNLanguageModel
from seqtext.tokenizer import build_tokenizer
from seqtext.training import distributed, shards
from seqtext.training.replicas import Replicas

BPTT = 64


def main(corpus: str, batch_size: int, steps: int, out: str) -> None:
    torch.set_num_threads(1)
    with distributed.joined("cpu") as world:
        take_steps(world, corpus, batch_size, steps, out)  # its model and DDP are gone when the group ends


def take_steps(world: distributed.World | None, corpus: str, batch_size: int, steps: int, out: str) -> None:
    torch.manual_seed(0)
    texts = read_texts(corpus)
    tokenizer = build_tokenizer(texts, "char", 1000)
    windows = lm_windows(texts, tokenizer, stream=True, bptt=BPTT, batch_size=batch_size)
    windows = shards.for_rank(windows, corpus)
    config = LMConfig(vocab_size=tokenizer.get_vocab_size(), embed_dim=16, hidden_dim=32, layers=1, dropout=0.0)
    model = RNNLanguageModel(config)
    train = TrainConfig(data=corpus, out=out, bptt=BPTT, batch_size=batch_size, precision="fp32", device="cpu")
    task = LMTask(model, windows, None, 1, train, torch.device("cpu"), "fp32")
    team = Replicas(world)
    step_loss = team.loss_of(task, 0, fresh=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    for window in itertools.islice(task.windows(0, 0), steps):
        loss, tokens = step_loss(window)
        loss, _, _, _ = team.step(loss, tokens)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    if team.writer:
        save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, out)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    distributed.leave(0)
