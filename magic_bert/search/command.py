"""``magic-bert-search`` / ``recipes/search.py`` and ``magic-bert-export`` / ``recipes/export.py``.

Search scores children with the supernet's inherited weights on held-out masked-LM loss (or accuracy) under
parameter / FLOPs / latency budgets, and writes arch.json (the best arch, its params, FLOPs and scores),
candidates.jsonl (every evaluated arch), pareto.png and latency_table.json (with --measure_latency) into
--output_dir, published whole; a top-k table is printed. Export writes one child as a standard HF checkpoint.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import replace
from functools import partial
from pathlib import Path

from accelerate import Accelerator
from tqdm.auto import tqdm

from ..cli import command_main, console_script, parse_one
from ..data import fit_batch_size
from ..errors import InputError
from ..io_utils import publish_dir
from ..output_folder import locks_output_dir
from ..ranks import main_process_first
from ..supernet_inputs import HeldOutArguments, check_supernet_dir, held_out, load_supernet, load_tokenizer
from .algorithms import (
    CandidateScorer,
    Constraints,
    LatencyTable,
    SearchResult,
    evolution_search,
    format_table,
    measure_latency,
    plot_pareto,
    random_search,
)
from .arguments import ExportArguments, SearchArguments
from .export import export_checkpoint, push_to_hub
from .scoring import metric_score_fn
from .seeds import resolve_seed_archs


@locks_output_dir("supernet", "latency_table", "tokenizer_name", "validation_file")
def search(args: SearchArguments) -> SearchResult:
    """Search ``args.supernet`` and write the outputs; every input is checked before anything is written."""
    output = Path(args.output_dir)  # checked, with the arguments, by @locks_output_dir
    supernet_dir = check_supernet_dir(args.supernet)
    table = LatencyTable.load(args.latency_table) if args.latency_table else None
    accelerator = Accelerator()
    supernet = load_supernet(supernet_dir)
    args.check_fits(supernet.config)
    space = supernet.config.search_space
    if args.measure_latency:
        table = measure_latency(supernet, seq_len=args.seq_len, device=accelerator.device)
    constraints = Constraints(args.max_params, args.min_params, args.max_flops, args.seq_len, args.max_latency, table,
                              args.max_encoder_params, args.min_encoder_params, args.min_attention_layers)
    constraints.check(space)
    seeds, notes = resolve_seed_archs(args.seed_archs, supernet.config, constraints)
    tokenizer = load_tokenizer(args.tokenizer_name or supernet_dir)
    if args.tokenizer_name is not None:
        _check_tokenizer_fits(tokenizer, args.tokenizer_name, supernet_dir, supernet.config.vocab_size)

    blocks = scoring_blocks(args, tokenizer, supernet_dir, accelerator)
    args = replace(args, per_device_eval_batch_size=fit_batch_size(  # scoring batches no larger than the blocks
        args.per_device_eval_batch_size, len(blocks), "held-out blocks", accelerator.print,
        "per_device_eval_batch_size"))
    screen_fn = None
    if args.screen_batches:  # racing: the same score on the first batches of every process
        screen_fn = metric_score_fn(args, supernet, blocks.select(range(min(len(blocks), args.screen_batches * (
            args.per_device_eval_batch_size * accelerator.num_processes)))), tokenizer, accelerator)
    scorer = CandidateScorer(space, constraints, metric_score_fn(args, supernet, blocks, tokenizer, accelerator),
                             screen_fn, keep=args.parents or max(2, args.population_size // 2), metric=args.metric)
    result = _run_strategy(args, scorer, random.Random(args.seed), not accelerator.is_local_main_process, seeds)

    if accelerator.is_main_process:
        publish_dir(output, lambda staging: _write_outputs(staging, result, table, args))
        print(format_table(result.top(args.top_k), result.metric))
        for line in [*notes, *seed_ranks(result)]:
            print(line)
        print(f"best arch -> {output / 'arch.json'}")
    accelerator.wait_for_everyone()
    return result


def _check_tokenizer_fits(tokenizer, name: str, supernet_dir: Path, vocab_size: int) -> None:
    """A ``tokenizer_name`` other than the supernet's own must be its vocabulary (another one scores other tokens)."""
    has_own = (supernet_dir / "tokenizer_config.json").is_file()
    same = len(tokenizer) == vocab_size and (
        not has_own or load_tokenizer(supernet_dir, "supernet").get_vocab() == tokenizer.get_vocab())
    if not same:
        raise InputError(f"`tokenizer_name` {name!r} ({len(tokenizer)} tokens) is not the vocabulary the supernet was "
                         f"trained with ({vocab_size} tokens); leave `tokenizer_name` out to use the supernet's own.")


def scoring_blocks(args: SearchArguments, tokenizer, supernet_dir: Path, accelerator: Accelerator):
    """The held-out blocks every child is scored on: the same first ``num_eval_batches`` batches per process, without
    the blocks the supernet's anchor checks used."""
    # An error on the main process stops every rank.
    blocks = main_process_first(accelerator, lambda: held_out(args.group(HeldOutArguments), tokenizer, args.seed,
                                                               [supernet_dir]))
    return blocks.select(range(min(len(blocks), args.num_eval_batches * args.per_device_eval_batch_size
                                   * accelerator.num_processes)))


def seed_ranks(result: SearchResult) -> list[str]:
    """Where each seed arch ranked among every evaluated arch, by the search's metric."""
    ranked = result.top(len(result.candidates))
    return [f"seed {c.seed}: rank {rank} of {len(ranked)} (held-out {result.metric} {c.value(result.metric):.4f})"
            for rank, c in enumerate(ranked, start=1) if c.seed is not None]


def _run_strategy(args: SearchArguments, scorer: CandidateScorer, rng: random.Random, quiet: bool,
                  seeds: dict[str, list[str]]) -> SearchResult:
    bar = tqdm(disable=quiet, unit="arch")
    if args.strategy == "evolution":
        bar.total = args.population_size * args.generations

        def progress(generation: int, made: int) -> None:
            bar.update(made)
            bar.set_description(f"generation {generation + 1}/{args.generations}")

        result = evolution_search(scorer, rng, args.population_size, args.generations, args.parents,
                                  args.mutation_prob, args.crossover, args.metric, progress, seeds)
    else:
        bar.total = args.num_evaluations or args.population_size * args.generations
        result = random_search(scorer, bar.total, rng, args.metric, bar.update, seeds)
    bar.close()
    return result


def _finite(record: dict) -> dict:
    """``null`` for the scores a metric did not compute (NaN is not JSON)."""
    return {key: None if isinstance(value, float) and math.isnan(value) else value for key, value in record.items()}


def _write_outputs(staging: Path, result: SearchResult, table: LatencyTable | None, args: SearchArguments) -> None:
    best = result.best
    (staging / "arch.json").write_text(json.dumps(_finite({
        "arch": best.arch, "params": best.params, "encoder_params": best.encoder_params, "flops": best.flops,
        "seq_len": args.seq_len,
        "latency": best.latency, "eval_loss": best.loss, "eval_accuracy": best.accuracy, "metric": result.metric,
        "score": best.value(result.metric), "proxies": best.proxies,
        "supernet": str(args.supernet), "strategy": args.strategy, "num_evaluated": len(result.candidates),
        "seed": best.seed, "seed_archs": {c.seed: c.arch for c in result.candidates if c.seed is not None},
        "constraints": {"max_params": args.max_params, "min_params": args.min_params,
                        "max_encoder_params": args.max_encoder_params, "min_encoder_params": args.min_encoder_params,
                        "max_flops": args.max_flops, "max_latency": args.max_latency,
                        "min_attention_layers": args.min_attention_layers}}), indent=2))
    (staging / "candidates.jsonl").write_text("".join(json.dumps(_finite(c.__dict__)) + "\n"
                                                      for c in result.candidates))
    plot_pareto(result.candidates, staging / "pareto.png", result.metric)
    if table is not None:
        table.save(staging / "latency_table.json")


@locks_output_dir("supernet", "arch", "glue_results")
def export(args: ExportArguments) -> Path:
    output = export_checkpoint(args.supernet, args.arch, args.output_dir, head=args.head, init=args.init,
                               format=args.format, num_labels=args.num_labels, glue_results=args.glue_results,
                               overwrite_output_dir=args.overwrite_output_dir,
                               model_name=args.model_name or args.hub_model_id, seed=args.seed,
                               base_model=args.base_model, license=args.license,
                               datasets=[d.strip() for d in args.datasets.split(",") if d.strip()]
                               if args.datasets else None)
    print(f"exported to {output}")
    if args.push_to_hub:
        push_to_hub(output, args.hub_model_id, args.hub_token, args.hub_private_repo)
        print(f"pushed to https://huggingface.co/{args.hub_model_id}")
    return output


parse_search_args = partial(parse_one, SearchArguments, description=__doc__)
parse_export_args = partial(parse_one, ExportArguments, description=__doc__)
main_search = command_main(SearchArguments, search, __doc__)
main_export = command_main(ExportArguments, export, __doc__)
# The installed magic-bert-search / magic-bert-export: exit 0 on success (the mains return the result / the folder).
console_search = console_script(main_search)
console_export = console_script(main_export)


__all__ = ["console_export", "console_search", "export", "main_export", "main_search", "parse_export_args",
           "parse_search_args", "scoring_blocks", "search"]
