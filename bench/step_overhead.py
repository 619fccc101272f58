"""Training-step cost of the supernet (one sampled child) divided by the exported child alone. Goal: <= 1.05.

Same batch, forward + backward + AdamW step, the two measured interleaved in one run.

    python bench/step_overhead.py [--hidden 256 --layers 8 --batch 8 --seq 128 --rounds 30]
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from magic_bert import MagicBertConfig, MagicBertSupernetForMaskedLM
from magic_bert.cli import arg, parse_one

sys.path.insert(0, str(Path(__file__).parent))
from timing import interleaved_medians, print_table  # noqa: E402


def train_step(model, optimizer, batch, **kwargs):
    def step():
        optimizer.zero_grad(set_to_none=True)
        model(**batch, **kwargs).loss.backward()
        optimizer.step()

    return step


@dataclass
class StepOverheadArguments:
    hidden: int = arg(256, "Hidden size.")
    layers: int = arg(8, "Supernet layers.")
    vocab: int = arg(8000, "Vocabulary size.")
    batch: int = arg(8, "Batch size.")
    seq: int = arg(128, "Sequence length.")
    rounds: int = arg(30, "Timed rounds.")
    archs: int = arg(3, "Number of sampled children measured.")
    seed: int = arg(0, "Seed of weights, inputs and children.")

def main(argv: list[str] | None = None) -> None:
    args = parse_one(StepOverheadArguments, argv, __doc__)

    torch.manual_seed(args.seed)
    config = MagicBertConfig(hidden_size=args.hidden, num_hidden_layers=args.layers, vocab_size=args.vocab,
                             max_position_embeddings=max(args.seq, 128))
    supernet = MagicBertSupernetForMaskedLM(config).train()
    supernet_optimizer = torch.optim.AdamW(supernet.parameters(), lr=1e-4)
    input_ids = torch.randint(5, args.vocab, (args.batch, args.seq))
    batch = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": input_ids}

    rows, ratios = [], []
    rng = random.Random(args.seed)
    for _ in range(args.archs):
        arch = config.search_space.sample(rng)
        child = supernet.export(arch).train()
        child_optimizer = torch.optim.AdamW(child.parameters(), lr=1e-4)
        times = interleaved_medians(
            {"supernet": train_step(supernet, supernet_optimizer, batch, arch=arch),
             "child": train_step(child, child_optimizer, batch)},
            rounds=args.rounds,
        )
        ratio = times["supernet"] / times["child"]
        ratios.append(ratio)
        rows.append((" ".join(arch), f"{times['supernet'] * 1e3:.1f}", f"{times['child'] * 1e3:.1f}", f"{ratio:.3f}"))
    print(f"hidden={args.hidden} layers={args.layers} batch={args.batch} seq={args.seq} threads="
          f"{torch.get_num_threads()} supernet params={supernet.num_parameters():,}")
    print_table(rows, ("arch", "supernet ms", "child ms", "ratio"))
    print(f"mean ratio supernet/child: {sum(ratios) / len(ratios):.3f} (goal <= 1.05)")


if __name__ == "__main__":
    main()
