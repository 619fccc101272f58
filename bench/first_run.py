"""The first screen a new user sees: the README's main command, then its next one, timed on this machine.

    python bench/first_run.py [--output_dir outputs/first_run]

Runs `recipes/pretrain.py --sampler magic-at` with its defaults (the embedded corpus, the tiny space), reports the
wall time and the held-out MLM accuracy of the final anchor and of a random child against the unigram baseline (the
most frequent token, on the same masked tokens), then runs `recipes/search.py` on the supernet and counts how many
distinct scores its top ten children get (one score for all ten means search cannot choose). Writes
first_run.json into --output_dir.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from magic_bert.cli import arg, parse_one
from magic_bert.io_utils import write_json_atomic
from magic_bert.search.command import main_search
from magic_bert.training.command import main as main_pretrain


@dataclass
class FirstRunArguments:
    output_dir: str = arg("outputs/first_run", "Where the supernet, the search and first_run.json go.")


def main(argv: list[str] | None = None) -> dict:
    args = parse_one(FirstRunArguments, argv, __doc__)
    output = Path(args.output_dir)
    start = time.perf_counter()
    result = main_pretrain(["--sampler", "magic-at", "--output_dir", str(output / "supernet"),
                            "--overwrite_output_dir"])
    pretrain_seconds = time.perf_counter() - start
    start = time.perf_counter()
    search = main_search(["--supernet", str(output / "supernet"), "--output_dir", str(output / "search"),
                          "--overwrite_output_dir"])
    search_seconds = time.perf_counter() - start
    top = search.top(10)
    r = result.results
    report = {"pretrain_seconds": round(pretrain_seconds, 1), "search_seconds": round(search_seconds, 1),
              "train_steps": r["train_steps"], "final_anchor_accuracy": r["eval_accuracy"],
              "final_anchor_loss": r["eval_loss"], "random_child_accuracy": r["random_child_accuracy"],
              "random_child_loss": r["random_child_loss"], "unigram_accuracy": r["unigram_accuracy"],
              "unigram_loss": r["unigram_loss"], "accuracy_over_unigram": r["eval_accuracy"] / r["unigram_accuracy"],
              "search_top10_distinct_losses": len({round(c.loss, 6) for c in top}),
              "search_top10_losses": [c.loss for c in top]}
    write_json_atomic(output / "first_run.json", report)
    print(f"pre-training {pretrain_seconds:.1f} s ({r['train_steps']} steps): final anchor accuracy "
          f"{r['eval_accuracy']:.4f} = {report['accuracy_over_unigram']:.2f}x the unigram baseline "
          f"{r['unigram_accuracy']:.4f}; a random child {r['random_child_accuracy']:.4f}")
    print(f"search {search_seconds:.1f} s: its top ten children have {report['search_top10_distinct_losses']} "
          f"distinct held-out losses ({min(report['search_top10_losses']):.4f} .. "
          f"{max(report['search_top10_losses']):.4f})")
    return report


if __name__ == "__main__":
    main()
