"""Training-step cost of the supernet (one sampled child) divided by the exported child alone. Goal: <= 1.05.

Same batch, forward + backward + AdamW step, the two measured interleaved in one run.

    python bench/step_overhead.py [--hidden 256 --layers 8 --batch 8 --seq 128 --rounds 30]
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import torch

from magic_bert import MagicBertConfig, MagicBertSupernetForMaskedLM

sys.path.insert(0, str(Path(__file__).parent))
from timing import interleaved_medians, print_table  # noqa: E402


def train_step(model, optimizer, batch, **kwargs):
    def step():
        optimizer.zero_grad(set_to_none=True)
        model(**batch, **kwargs).loss.backward()
        optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--archs", type=int, default=3, help="number of sampled children measured")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

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
