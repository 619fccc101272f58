"""Forward time of MagicBertModel with a BERT-shaped arch divided by transformers' BertModel, same dims and weights,
SDPA both, measured interleaved in one run. Goal: <= 1.00. Two ratios: of the median times, and the median over
rounds of the ratio within a round (paired: both ran back to back, so load that drifts between rounds cancels).

    python bench/inference_vs_bert.py [--hidden 256 --bert_layers 4 --batch 8 --seq 128 --rounds 40]
"""

from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import BertConfig, BertModel

from magic_bert import MagicBertModel, from_bert
from magic_bert.cli import arg, parse_one

sys.path.insert(0, str(Path(__file__).parent))
from timing import interleaved_times, paired_ratio, print_table  # noqa: E402


@dataclass
class InferenceArguments:
    hidden: int = arg(256, "Hidden size.")
    bert_layers: int = arg(4, "BERT layers (twice as many MagicBert layers).")
    heads: int = arg(4, "Attention heads.")
    vocab: int = arg(8000, "Vocabulary size.")
    batch: int = arg(8, "Batch size.")
    seq: int = arg(128, "Sequence length.")
    rounds: int = arg(40, "Timed rounds.")

def main(argv: list[str] | None = None) -> None:
    args = parse_one(InferenceArguments, argv, __doc__)

    torch.manual_seed(0)
    bert_config = BertConfig(vocab_size=args.vocab, hidden_size=args.hidden, num_hidden_layers=args.bert_layers,
                             num_attention_heads=args.heads, intermediate_size=4 * args.hidden,
                             max_position_embeddings=max(args.seq, 128), attn_implementation="sdpa")
    bert = BertModel(bert_config).eval()
    magic = from_bert(bert, MagicBertModel).eval()
    assert bert.config._attn_implementation == magic.config._attn_implementation == "sdpa"
    input_ids = torch.randint(5, args.vocab, (args.batch, args.seq))
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0, args.seq // 2:] = 0  # some padding, so both build a real mask

    rows = []
    with torch.inference_mode():
        diff = (bert(input_ids, attention_mask=attention_mask).last_hidden_state
                - magic(input_ids, attention_mask=attention_mask).last_hidden_state)[attention_mask.bool()]
        for label, mask in (("padded", attention_mask), ("no mask", None)):
            samples = interleaved_times(
                {"magic": lambda m=mask: magic(input_ids, attention_mask=m),
                 "bert": lambda m=mask: bert(input_ids, attention_mask=m)},
                rounds=args.rounds,
            )
            times = {name: statistics.median(values) for name, values in samples.items()}
            rows.append((label, f"{times['magic'] * 1e3:.2f}", f"{times['bert'] * 1e3:.2f}",
                         f"{times['magic'] / times['bert']:.3f}", f"{paired_ratio(samples, 'magic', 'bert'):.3f}"))
    print(f"hidden={args.hidden} bert_layers={args.bert_layers} batch={args.batch} seq={args.seq} "
          f"threads={torch.get_num_threads()} max |diff| at real tokens={diff.abs().max().item():.2e}")
    print_table(rows, ("inputs", "magic ms", "bert ms", "ratio magic/bert", "paired ratio"))
    print("goal: ratio <= 1.00")


if __name__ == "__main__":
    main()
