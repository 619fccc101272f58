"""Racing (``magic-bert-search --screen_batches``) against the full search on one trained supernet: the same search
(seed, budget, population, generations, held-out blocks) run without and with racing; how much scoring work racing
saves and what it finds.

    python bench/search_racing.py --supernet outputs/proxy_study/supernet_magic --max_encoder_params 5.4e6

The work is counted, not timed (this machine is shared): a child scored in full costs 1, a screened one
``screen_batches / num_eval_batches``; a raced child scored in full also paid its screen. ``evaluations per unit of
work`` is the factor by which racing multiplies the children a search can look at in the same scoring time. Wall
times are printed too, measured one after the other. Results: docs/results/search_racing.json.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from timing import print_table  # noqa: E402

from magic_bert.cli import arg, parse_one, run  # noqa: E402
from magic_bert.errors import InputError  # noqa: E402
from magic_bert.io_utils import write_json_atomic  # noqa: E402


@dataclass
class RacingArguments:
    supernet: str | None = arg(None, "A trained supernet folder (required).")
    output_dir: str = arg("outputs/search_racing", "Where the two searches write.")
    results: str = arg("docs/results/search_racing.json", "The summary JSON.")
    max_encoder_params: float | None = arg(None, "The searches' encoder budget.")
    population_size: int = arg(16, "Archs per generation.")
    generations: int = arg(6, "Generations.")
    num_eval_batches: int = arg(4, "Held-out batches per child scored in full.")
    screen_batches: int = arg(1, "Batches a raced child is screened on.")
    seed: int = arg(42, "Search seed.")


def _search(args: RacingArguments, name: str, screen: int) -> dict:
    from magic_bert.search.command import main_search

    output = Path(args.output_dir) / name
    flags = ["--supernet", args.supernet, "--output_dir", str(output), "--overwrite_output_dir", "--population_size",
             str(args.population_size), "--generations", str(args.generations), "--num_eval_batches",
             str(args.num_eval_batches), "--seed", str(args.seed), "--screen_batches", str(screen)]
    if args.max_encoder_params is not None:
        flags += ["--max_encoder_params", str(args.max_encoder_params)]
    start = time.perf_counter()
    run(main_search, flags)
    seconds = time.perf_counter() - start
    rows = [json.loads(line) for line in (output / "candidates.jsonl").read_text().splitlines()]
    screened = sum(row.get("screened", False) for row in rows)
    full = len(rows) - screened
    share = screen / args.num_eval_batches
    work = full + (screened + full) * share if screen else float(full)
    best = json.loads((output / "arch.json").read_text())
    return {"evaluations": len(rows), "scored_in_full": full, "screened": screened, "work": work,
            "evaluations_per_work": len(rows) / work, "wall_seconds": seconds, "best_arch": best["arch"],
            "best_loss": best["eval_loss"], "full_losses": {" ".join(r["arch"]): r["loss"] for r in rows
                                                             if not r.get("screened", False)}}


def compare(args: RacingArguments) -> dict:
    if args.supernet is None:
        raise InputError("`supernet` is required.")
    full, raced = _search(args, "full", 0), _search(args, "raced", args.screen_batches)
    ranked = sorted(full["full_losses"].values())
    raced_best_in_full = full["full_losses"].get(" ".join(raced["best_arch"]))
    settings = {k: v for k, v in vars(args).items() if k not in ("output_dir", "results")}  # paths: not evidence
    summary = {"settings": settings, "full": full, "raced": raced,
               "same_best": raced["best_arch"] == full["best_arch"],
               "raced_best_rank_in_full_search": None if raced_best_in_full is None
               else ranked.index(raced_best_in_full) + 1,
               "work_saved": 1 - raced["work"] / raced["evaluations"]}
    print_table([(name, r["evaluations"], r["scored_in_full"], r["screened"], f"{r['work']:.1f}",
                  f"{r['evaluations_per_work']:.2f}", f"{r['best_loss']:.4f}", f"{r['wall_seconds']:.0f}")
                 for name, r in (("full", full), ("raced", raced))],
                ("search", "evaluations", "in full", "screened", "work", "evals / work", "best loss", "wall s"))
    print(f"same best arch: {summary['same_best']}")
    write_json_atomic(Path(args.results), summary)
    return summary


def main(argv: list[str] | None = None) -> dict:
    return run(compare, parse_one(RacingArguments, argv, __doc__))


if __name__ == "__main__":
    main()
