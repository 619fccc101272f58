"""Search a trained supernet for the best child under parameter / FLOPs / latency budgets.

    python recipes/search.py --supernet outputs/tiny-supernet --max_params 150e3 --output_dir outputs/search
    accelerate launch recipes/search.py --supernet outputs/supernet-60m --max_params 60e6 \\
        --dataset_name wikitext --dataset_config_name wikitext-103-raw-v1 --output_dir outputs/search-60m

Children are scored with the supernet's inherited weights on held-out masked-LM loss (or accuracy), on text from
--validation_file / --dataset_name (default: the embedded synthetic corpus's held-out documents). Outputs in
--output_dir: arch.json (the best arch, its params, FLOPs and scores), candidates.jsonl (every evaluated arch),
pareto.png (params vs score, the front marked), latency_table.json (with --measure_latency); a top-k table is printed.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from accelerate import Accelerator
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import AutoTokenizer, default_data_collator

from magic_bert import MagicBertSupernetForMaskedLM
from magic_bert.evaluation import evaluate_mlm
from magic_bert.recipe_utils import (
    add_held_out_arguments,
    check_output_dir,
    check_supernet_dir,
    held_out_from_args,
    publish,
)
from magic_bert.search.algorithms import (
    METRICS,
    STRATEGIES,
    CandidateScorer,
    Constraints,
    LatencyTable,
    evolution_search,
    format_table,
    measure_latency,
    plot_pareto,
    random_search,
)
from magic_bert.training.setup import main_process_first


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--supernet", required=True, help="a pre-training output folder (model + tokenizer)")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--overwrite_output_dir", action="store_true", help="replace a non-empty --output_dir")
    parser.add_argument("--max_params", type=float, help="e.g. 60e6")
    parser.add_argument("--min_params", type=float)
    parser.add_argument("--max_flops", type=float, help="FLOPs of one sequence of --seq_len tokens")
    parser.add_argument("--seq_len", type=int, default=128, help="sequence length for FLOPs and latency")
    parser.add_argument("--latency_table", help="a latency_table.json from --measure_latency")
    parser.add_argument("--measure_latency", action="store_true", help="time every op on this device first")
    parser.add_argument("--max_latency", type=float, help="seconds per forward (needs a latency table)")
    parser.add_argument("--strategy", default="evolution", choices=STRATEGIES)
    parser.add_argument("--metric", default="loss", choices=METRICS, help="held-out MLM loss (lower) or accuracy")
    parser.add_argument("--population_size", type=int, default=20)
    parser.add_argument("--generations", type=int, default=10)
    parser.add_argument("--parents", type=int, help="archs kept as parents each generation (default: half)")
    parser.add_argument("--mutation_prob", type=float, default=0.1, help="per-layer probability of a new op")
    parser.add_argument("--crossover", type=float, default=0.5, help="probability a child comes from crossover")
    parser.add_argument("--num_evaluations", type=int, help="random search: archs to score "
                        "(default: population_size * generations, the evolution's budget)")
    parser.add_argument("--num_eval_batches", type=int, default=8, help="held-out batches per process per arch")
    parser.add_argument("--per_device_eval_batch_size", type=int, default=32)
    add_held_out_arguments(parser)
    parser.add_argument("--top_k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        search(args)
    except ValueError as error:  # bad input: one clear message, nothing written
        sys.exit(f"error: {error}")


def search(args: argparse.Namespace):
    output = check_output_dir(args.output_dir, args.overwrite_output_dir)
    supernet_dir = check_supernet_dir(args.supernet)
    accelerator = Accelerator()
    supernet = MagicBertSupernetForMaskedLM.from_pretrained(supernet_dir)
    space = supernet.config.search_space
    table = LatencyTable.load(args.latency_table) if args.latency_table else None
    if args.measure_latency:
        table = measure_latency(supernet, seq_len=args.seq_len, device=accelerator.device)
    constraints = Constraints(args.max_params, args.min_params, args.max_flops, args.seq_len, args.max_latency, table)
    constraints.check(space)
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer_name or supernet_dir)

    # An error on the main process stops every rank.
    blocks = main_process_first(accelerator, lambda: held_out_from_args(args, tokenizer))
    # The same first blocks for every arch: num_eval_batches per process.
    blocks = blocks.select(range(min(len(blocks), args.num_eval_batches * args.per_device_eval_batch_size
                                     * accelerator.num_processes)))
    loader = accelerator.prepare(DataLoader(blocks, batch_size=args.per_device_eval_batch_size,
                                            collate_fn=default_data_collator))
    supernet = accelerator.prepare_model(supernet, evaluation_mode=True)
    scorer = CandidateScorer(space, constraints, lambda arch: evaluate_mlm(supernet, loader, accelerator, arch=arch))
    rng = random.Random(args.seed)

    bar = tqdm(disable=not accelerator.is_local_main_process, unit="arch")
    if args.strategy == "evolution":
        bar.total = args.population_size * args.generations

        def progress(generation: int, made: int) -> None:
            bar.update(made)
            bar.set_description(f"generation {generation + 1}/{args.generations}")

        result = evolution_search(scorer, rng, args.population_size, args.generations, args.parents,
                                  args.mutation_prob, args.crossover, args.metric, progress)
    else:
        bar.total = args.num_evaluations or args.population_size * args.generations
        result = random_search(scorer, bar.total, rng, args.metric, bar.update)
    bar.close()

    if accelerator.is_main_process:
        write_outputs(output, result, table, args)
        print(format_table(result.top(args.top_k)))
        print(f"best arch -> {output / 'arch.json'}")
    accelerator.wait_for_everyone()
    return result


def write_outputs(output: Path, result, table: LatencyTable | None, args: argparse.Namespace) -> None:
    """Everything into a staging folder, renamed into place when complete."""

    def write(staging: Path) -> None:
        best = result.best
        (staging / "arch.json").write_text(json.dumps({
            "arch": best.arch, "params": best.params, "flops": best.flops, "seq_len": args.seq_len,
            "latency": best.latency, "eval_loss": best.loss, "eval_accuracy": best.accuracy, "metric": result.metric,
            "supernet": str(args.supernet), "strategy": args.strategy, "num_evaluated": len(result.candidates),
            "constraints": {"max_params": args.max_params, "min_params": args.min_params,
                            "max_flops": args.max_flops, "max_latency": args.max_latency}}, indent=2))
        with open(staging / "candidates.jsonl", "w") as f:
            for candidate in result.candidates:
                f.write(json.dumps(candidate.__dict__) + "\n")
        plot_pareto(result.candidates, staging / "pareto.png", result.metric)
        if table is not None:
            table.save(staging / "latency_table.json")

    publish(output, write)


if __name__ == "__main__":
    main()
