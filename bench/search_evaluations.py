"""How many children a search scores in the same wall time, against the search issue 29 was filed on (its item 5:
at least 5 times as many, by making scoring cheaper rather than the search shorter).

One raced search runs first (``magic-bert-search --scoring_precision bf16 --screen_batches N``, 16 × 6 children on
4 held-out batches of 32 blocks), on a trained supernet. Then ``--children`` of its children, spread evenly over its
record, are scored again under each way of scoring, interleaved child by child (the order turning every child, so
the machine's noise hits all alike), on the same held-out blocks:

- ``filed``: scoring as it was when issue 29 was filed: the MLM head's decoder over every position, fp32, 8
  batches of 32 blocks (the defaults then: 20 × 10 children on 8 × 32 blocks);
- ``masked head``: the decoder on the masked positions only (the throughput release), fp32, 8 batches: the same
  score, which the bench checks;
- ``default``: today's default, the masked head on 4 batches, fp32;
- ``bf16``: the same under ``--scoring_precision bf16``;
- ``raced bf16``: what the raced search paid for that child: its screen (``N`` batches, bf16), plus the full bf16
  score when the record says it was scored in full.

Children per unit of time against ``filed`` is the total time ``filed`` took over the variant's total, on the same
children. Kendall τ of each variant's scores against ``filed``'s says what the cheaper score gives up.

    python bench/search_evaluations.py --supernet outputs/proxy_study/supernet_magic --max_encoder_params 5376625

Results: docs/results/search_evaluations.json.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from scipy.stats import kendalltau
from torch.utils.data import DataLoader
from transformers import default_data_collator

sys.path.insert(0, str(Path(__file__).parent))
from step_throughput import FullHead  # noqa: E402
from timing import print_table  # noqa: E402

from magic_bert.cli import arg, at_least, parse_one, run  # noqa: E402
from magic_bert.errors import InputError  # noqa: E402
from magic_bert.evaluation import evaluate_mlm  # noqa: E402
from magic_bert.io_utils import write_json_atomic  # noqa: E402

FILED_BATCHES, DEFAULT_BATCHES = 8, 4  # held-out batches per child then and now
# name: (decoder over every position, bf16 autocast, batches)
VARIANTS = {"filed": (True, False, FILED_BATCHES), "masked head": (False, False, FILED_BATCHES),
            "default": (False, False, DEFAULT_BATCHES), "bf16": (False, True, DEFAULT_BATCHES)}
RACED = "raced bf16"


@dataclass
class EvaluationsArguments:
    supernet: str | None = arg(None, "A trained supernet folder (required).")
    output_dir: str = arg("outputs/search_evaluations", "Where the raced search writes.")
    results: str = arg("docs/results/search_evaluations.json", "The summary JSON.")
    max_encoder_params: float | None = arg(None, "The search's encoder budget.")
    children: int = arg(24, "Children of the raced search scored again under every variant.")
    screen_batches: int = arg(1, "Batches the raced search screens a child on.")
    population_size: int = arg(16, "The raced search's archs per generation.")
    generations: int = arg(6, "The raced search's generations.")
    eval_batch: int = arg(32, "Blocks per held-out batch (the default then and now).")
    max_seq_length: int | None = arg(None, "Block length (default: the supernet's).")
    seed: int = arg(42, "Search seed.")

    def check(self) -> None:
        if self.supernet is None:
            raise InputError("`supernet` is required: a trained supernet folder.")
        at_least(2, children=self.children, population_size=self.population_size)
        at_least(1, generations=self.generations, eval_batch=self.eval_batch)
        at_least(1, screen_batches=self.screen_batches)
        if self.screen_batches >= DEFAULT_BATCHES:
            raise InputError(f"`screen_batches` {self.screen_batches} must be below the {DEFAULT_BATCHES} batches "
                             "a child is scored on in full.")


def raced_search(args: EvaluationsArguments) -> tuple[list[dict], float]:
    """The raced search's record (every child in the order scored) and its wall seconds."""
    from magic_bert.search.command import main_search

    output = Path(args.output_dir)
    flags = [*search_flags(args, DEFAULT_BATCHES), "--overwrite_output_dir", "--population_size",
             str(args.population_size), "--generations", str(args.generations), "--scoring_precision", "bf16",
             "--screen_batches", str(args.screen_batches)]
    if args.max_encoder_params is not None:
        flags += ["--max_encoder_params", str(args.max_encoder_params)]
    start = time.perf_counter()
    run(main_search, flags)
    seconds = time.perf_counter() - start
    return [json.loads(line) for line in (output / "candidates.jsonl").read_text().splitlines()], seconds


def search_flags(args: EvaluationsArguments, batches: int) -> list[str]:
    """The flags that fix the held-out blocks: the same for the raced search and the bench's own batches."""
    flags = ["--supernet", args.supernet, "--output_dir", args.output_dir, "--seed", str(args.seed),
             "--num_eval_batches", str(batches), "--per_device_eval_batch_size", str(args.eval_batch)]
    return flags + (["--max_seq_length", str(args.max_seq_length)] if args.max_seq_length else [])


def held_out_batches(args: EvaluationsArguments, supernet_dir: Path) -> list[dict]:
    """The search's own held-out blocks (the supernet's held-out text), ``FILED_BATCHES`` batches of ``eval_batch``."""
    from magic_bert.search.arguments import SearchArguments
    from magic_bert.search.command import scoring_blocks
    from magic_bert.supernet_inputs import load_tokenizer

    search_args = parse_one(SearchArguments, search_flags(args, FILED_BATCHES))
    blocks = scoring_blocks(search_args, load_tokenizer(supernet_dir), supernet_dir, Accelerator())
    if len(blocks) < FILED_BATCHES * args.eval_batch:
        raise InputError(f"`supernet` {str(supernet_dir)!r} holds out {len(blocks)} blocks; the bench scores "
                         f"{FILED_BATCHES} batches of `eval_batch` {args.eval_batch}.")
    return list(DataLoader(blocks, batch_size=args.eval_batch, collate_fn=default_data_collator))


def spread(record: list[dict], count: int) -> list[dict]:
    """``count`` children at evenly spaced places of the record (its first children are all scored in full)."""
    count = min(count, len(record))
    return [record[round(i * (len(record) - 1) / (count - 1))] for i in range(count)]


def time_variants(supernet, batches: list[dict], children: list[dict], screen_batches: int) -> dict:
    """Seconds and loss of every variant on every child, interleaved child by child."""
    full_head = FullHead(supernet)

    def score(arch, full: bool, bf16: bool, count: int) -> float:
        model = full_head if full else supernet
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with autocast:
            return evaluate_mlm(model, batches[:count], arch=arch).loss

    def raced(child: dict) -> float:
        loss = score(child["arch"], False, True, screen_batches)
        return loss if child.get("screened", False) else score(child["arch"], False, True, DEFAULT_BATCHES)

    calls = {name: (lambda child, v=v: score(child["arch"], *v)) for name, v in VARIANTS.items()} | {RACED: raced}
    seconds = {name: [] for name in calls}
    losses = {name: [] for name in calls}
    names = list(calls)
    for index, child in enumerate(children):
        for name in names[index % len(names):] + names[:index % len(names)]:
            start = time.perf_counter()
            losses[name].append(calls[name](child))
            seconds[name].append(time.perf_counter() - start)
    return {"seconds": seconds, "losses": losses}


def summarise(timed: dict) -> dict:
    seconds, losses = timed["seconds"], timed["losses"]
    filed = sum(seconds["filed"])
    return {name: {"seconds_per_child": sum(values) / len(values),
                   "children_per_time_vs_filed": filed / sum(values),
                   "kendall_tau_vs_filed": float(kendalltau(losses["filed"], losses[name]).statistic)}
            for name, values in seconds.items()}


def compare(args: EvaluationsArguments) -> dict:
    from magic_bert.supernet_inputs import check_supernet_dir, load_supernet

    args.check()
    supernet_dir = check_supernet_dir(args.supernet)
    batches = held_out_batches(args, supernet_dir)
    record, search_seconds = raced_search(args)
    children = spread(record, args.children)
    supernet = load_supernet(supernet_dir).eval()
    timed = time_variants(supernet, batches, children, args.screen_batches)
    summary = summarise(timed)
    exact = max(abs(a - b) for a, b in zip(timed["losses"]["filed"], timed["losses"]["masked head"], strict=True))
    in_full = sum(not child.get("screened", False) for child in children)
    print(f"{len(children)} of the raced search's {len(record)} children ({in_full} scored in full there), "
          f"{torch.get_num_threads()} threads, interleaved:")
    print_table([(name, f"{row['seconds_per_child']:.2f}", f"{row['children_per_time_vs_filed']:.2f}x",
                  f"{row['kendall_tau_vs_filed']:+.3f}") for name, row in summary.items()],
                ("scoring", "s per child", "children per time vs filed", "tau vs filed"))
    print(f"masked head vs filed: max |loss difference| {exact:.2e}")
    settings = {k: v for k, v in vars(args).items() if k not in ("output_dir", "results")}  # paths: not evidence
    result = {"settings": settings, "threads": torch.get_num_threads(), "raced_search_seconds": search_seconds,
              "raced_search_children": len(record),
              "raced_search_screened": sum(row.get("screened", False) for row in record),
              "children": [" ".join(c["arch"]) for c in children], "max_loss_diff_masked_head": exact,
              "variants": summary, **timed}
    write_json_atomic(Path(args.results), result)
    return result


def main(argv: list[str] | None = None) -> dict:
    return run(compare, parse_one(EvaluationsArguments, argv, __doc__))


if __name__ == "__main__":
    main()
