"""Training tokens/s of the ``tiny`` and ``60m`` presets on this machine, through the real recipe function.

Each run is ``magic_bert.training.recipe.pretrain(parse_pretrain_args([...]))`` on the embedded synthetic corpus, output
under a temporary folder; tokens/s is the recipe's own ``train_tokens_per_second`` (non-padding tokens over the
seconds spent in the training loop: data, masking, sampling, forward, backward, clipping, AdamW, logging; not the
setup, tokenizer training, final evaluation or saving, which the ``wall s`` column includes). Runs are short, so the
first step's warm-up weighs in: read the figures as a lower bound of steady-state throughput. The runs are
sequential, not interleaved, so other load on the machine hits them unevenly: run it on a quiet machine.

No ``--tokenizer_name`` (nothing may be downloaded): the recipe trains a WordPiece tokenizer on the synthetic
corpus. Its few hundred words give a vocabulary far below the presets' sizes (30522 for ``60m``), so the
embedding and MLM-head cost, and the parameter count, are underestimated; the ``vocab`` column shows what was used.

    python bench/pretrain_throughput.py [--tiny_steps 100 --tiny_batch 16 --big_steps 20 --big_batch 4 --seq 128
                                         --samplers spos magic-at]
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from magic_bert import PRESETS
from magic_bert.cli import arg, parse_one
from magic_bert.training.arguments import parse_pretrain_args
from magic_bert.training.recipe import pretrain

sys.path.insert(0, str(Path(__file__).parent))
from timing import print_table  # noqa: E402


def run_once(preset: str, sampler: str, steps: int, batch: int, seq: int, documents: int, seed: int,
             root: Path) -> tuple:
    """One short pre-training run; returns its table row."""
    argv = ["--preset", preset, "--sampler", sampler, "--max_train_steps", str(steps),
            "--per_device_train_batch_size", str(batch), "--max_seq_length", str(seq),
            "--synthetic_documents", str(documents), "--seed", str(seed),
            # Ask for the preset's vocabulary; the trainer stops when the corpus has no more merges.
            "--vocab_size", str(PRESETS[preset]["vocab_size"]),
            # Keep the untimed parts (final evaluation, anchor checks) small.
            "--max_eval_samples", "16", "--anchor_eval_samples", "16", "--per_device_eval_batch_size", "16",
            "--output_dir", str(root / f"{preset}-{sampler}")]
    start = time.perf_counter()
    result = pretrain(parse_pretrain_args(argv))
    wall = time.perf_counter() - start
    r = result.results
    vocab = result.model.config.vocab_size
    return (preset, sampler, f"{r['num_parameters'] / 1e6:.1f}M", f"{vocab} of {PRESETS[preset]['vocab_size']}",
            f"{r['train_steps']}x{batch}x{seq}", f"{r['train_tokens_per_second']:,.0f}", f"{r['train_seconds']:.1f}",
            f"{wall:.1f}")


@dataclass
class ThroughputArguments:
    presets: list[str] = field(default_factory=lambda: ["tiny", "60m"], metadata={"help": "Presets to time."})
    samplers: list[str] = field(default_factory=lambda: ["spos", "magic-at"], metadata={"help": "Samplers to time."})
    tiny_steps: int = arg(100, "Steps for the tiny preset.")
    tiny_batch: int = arg(16, "Batch size for the tiny preset.")
    big_steps: int = arg(20, "Steps for the 60m / 110m presets.")
    big_batch: int = arg(4, "Batch size for the 60m / 110m presets.")
    seq: int = arg(128, "Sequence length.")
    documents: int = arg(500, "Synthetic documents (enough blocks for the runs).")
    seed: int = arg(0, "Seed.")

def main(argv: list[str] | None = None) -> None:
    args = parse_one(ThroughputArguments, argv, __doc__)
    logging.disable(logging.WARNING)  # the recipe's own progress bar and results table still print

    rows = []
    with tempfile.TemporaryDirectory(prefix="magic_bert_throughput_") as tmp:
        # Untimed: the first run in a process pays one-off initialisation (kernels, thread pools, imports).
        run_once("tiny", args.samplers[0], 2, 4, min(args.seq, 128), 100, args.seed, Path(tmp) / "warmup")
        for preset in args.presets:
            steps, batch = (args.tiny_steps, args.tiny_batch) if preset == "tiny" else (args.big_steps,
                                                                                        args.big_batch)
            for sampler in args.samplers:
                rows.append(run_once(preset, sampler, steps, batch, args.seq, args.documents, args.seed, Path(tmp)))
    print(f"\nthreads={torch.get_num_threads()}; params: the whole supernet (every op of every layer), one child "
          "trains per step")
    print_table(rows, ("preset", "sampler", "params", "vocab", "steps x batch x seq", "tokens/s", "train s",
                       "wall s"))
    print("Vocabulary from a WordPiece trained on the synthetic corpus, below the preset's: the embedding and MLM-head "
          "cost (and params) are underestimated, most for 60m/110m.")


if __name__ == "__main__":
    main()
