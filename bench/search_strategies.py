"""Evolution vs random search at equal evaluations on a trained supernet (several seeds, one held-out set).

    python bench/search_strategies.py --supernet outputs/tiny-supernet [--population_size 10 --generations 6]

Both strategies score children with the supernet's inherited weights on the same held-out blocks
(`magic_bert.evaluation.evaluate_mlm`), under the same parameter budget and number of evaluations; the table gives
the best held-out loss each found per seed (lower is better) and the mean difference.
"""

from __future__ import annotations

import random
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import DataLoader
from transformers import AutoTokenizer, default_data_collator

from magic_bert import MagicBertSupernetForMaskedLM
from magic_bert.cli import arg, parse_one
from magic_bert.evaluation import evaluate_mlm
from magic_bert.search.algorithms import CandidateScorer, Constraints, evolution_search, random_search
from magic_bert.supernet_inputs import HeldOutArguments, held_out

sys.path.insert(0, str(Path(__file__).parent))
from timing import print_table  # noqa: E402


@dataclass
class SearchStrategiesArguments:
    supernet: str | None = arg(None, "A trained supernet folder (required).")
    max_params: float | None = arg(None, "Default: the middle of the space's range.")
    population_size: int = arg(10, "Archs per generation.")
    generations: int = arg(6, "Generations (random search gets the same number of evaluations).")
    seeds: int = arg(3, "Search seeds.")
    eval_blocks: int = arg(64, "Held-out blocks each child is scored on.")
    max_seq_length: int = arg(128, "Block length.")

def main(argv: list[str] | None = None) -> None:
    args = parse_one(SearchStrategiesArguments, argv, __doc__)
    if args.supernet is None:
        raise SystemExit("error: --supernet is required.")

    supernet = MagicBertSupernetForMaskedLM.from_pretrained(args.supernet).eval()
    space = supernet.config.search_space
    budget = args.max_params or (space.min_params + space.max_params) / 2
    tokenizer = AutoTokenizer.from_pretrained(args.supernet)
    # The supernet's own held-out text, as search scores it (its recorded corpus and seed, its anchor blocks skipped):
    # a fixed synthetic corpus would be another run's text, for a supernet trained with another seed its training text
    blocks = held_out(HeldOutArguments(max_seq_length=args.max_seq_length), tokenizer, 0, [args.supernet])
    loader = DataLoader(blocks.select(range(min(len(blocks), args.eval_blocks))), batch_size=32,
                        collate_fn=default_data_collator)
    cache: dict[tuple, object] = {}  # scores do not depend on the strategy: share them across runs

    def score(arch):
        key = tuple(arch)
        if key not in cache:
            cache[key] = evaluate_mlm(supernet, loader, arch=arch)
        return cache[key]

    evaluations = args.population_size * args.generations
    rows, gaps = [], []
    for seed in range(args.seeds):
        found = {}
        for strategy in ("evolution", "random"):
            scorer = CandidateScorer(space, Constraints(max_params=budget), score)
            if strategy == "evolution":
                result = evolution_search(scorer, random.Random(seed), args.population_size, args.generations)
            else:
                result = random_search(scorer, evaluations, random.Random(seed))
            found[strategy] = result.best.loss
        gaps.append(found["random"] - found["evolution"])
        rows.append((seed, evaluations, f"{found['evolution']:.4f}", f"{found['random']:.4f}", f"{gaps[-1]:+.4f}"))
    print(f"supernet {args.supernet}, budget {budget:,.0f} params, {len(cache)} distinct archs scored\n")
    print_table(rows, ("seed", "evaluations", "evolution best loss", "random best loss", "random - evolution"))
    spread = statistics.stdev(gaps) if len(gaps) > 1 else 0.0
    print(f"\nmean(random - evolution) = {statistics.mean(gaps):+.4f} ± {spread:.4f} (positive: evolution better)")


if __name__ == "__main__":
    main()
