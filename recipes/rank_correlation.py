"""Rank correlation of one or more supernets with standalone training.

    python recipes/rank_correlation.py --supernet outputs/spos outputs/magic-at --num_children 16 \\
        --max_params 150e3 --standalone_steps 1000 --cache_dir outputs/standalone_cache --output_dir outputs/rank

--num_children children are drawn inside the budget (--children_seed). Each is scored on the same held-out blocks
with the weights it inherits from every supernet, and once more after training it alone from scratch: the fixed-arch
mode of recipes/pretrain.py, --standalone_steps steps on --train_file (default: the embedded corpus), with the
supernet's tokenizer and config. Standalone results are cached in --cache_dir by arch and schedule, so later calls
(other supernets, more children) train only what is missing. Outputs in --output_dir: rank_correlation.json (every
score, Kendall tau and Spearman rho per supernet) and rank_scatter.png; a table is printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import AutoTokenizer, default_data_collator

from magic_bert import MagicBertSupernetForMaskedLM
from magic_bert.analysis import StandaloneCache, plot_rank_scatter, rank_correlation, sample_children
from magic_bert.evaluation import evaluate_mlm
from magic_bert.recipe_utils import (
    add_held_out_arguments,
    check_output_dir,
    check_supernet_dir,
    held_out_from_args,
    publish,
)
from magic_bert.training.arguments import PretrainArguments

# What must agree between supernets compared on one standalone set.
_SAME_SPACE = ("vocab_size", "hidden_size", "num_hidden_layers", "candidate_ops")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--supernet", nargs="+", required=True, help="one or more pre-training output folders")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--overwrite_output_dir", action="store_true", help="replace a non-empty --output_dir")
    parser.add_argument("--cache_dir", help="standalone results (default: <output_dir>/../standalone_cache)")
    parser.add_argument("--num_children", type=int, default=16)
    parser.add_argument("--children_seed", type=int, default=0)
    parser.add_argument("--max_params", type=float, help="draw children inside this budget")
    parser.add_argument("--min_params", type=float)
    parser.add_argument("--num_eval_batches", type=int, default=8, help="held-out batches each child is scored on")
    parser.add_argument("--per_device_eval_batch_size", type=int, default=32)
    schedule = parser.add_argument_group("standalone training (the fixed-arch mode of recipes/pretrain.py)")
    schedule.add_argument("--train_file", help="training text (default: the embedded corpus)")
    schedule.add_argument("--standalone_steps", type=int, default=1000)
    schedule.add_argument("--learning_rate", type=float, default=1e-3)
    schedule.add_argument("--num_warmup_steps", type=int, default=100)
    schedule.add_argument("--per_device_train_batch_size", type=int, default=16)
    schedule.add_argument("--synthetic_documents", type=int, default=2000)
    schedule.add_argument("--seed", type=int, default=42, help="standalone runs and the held-out masks")
    add_held_out_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        correlate(args)
    except ValueError as error:  # bad input: one clear message, nothing written
        sys.exit(f"error: {error}")


def correlate(args: argparse.Namespace) -> dict:
    output = check_output_dir(args.output_dir, args.overwrite_output_dir)
    folders = [check_supernet_dir(path) for path in args.supernet]
    if args.train_file is not None and args.validation_file is None:
        raise ValueError("--train_file needs --validation_file (the held-out text the children are scored on).")
    supernets = [MagicBertSupernetForMaskedLM.from_pretrained(folder) for folder in folders]
    first = supernets[0].config
    for folder, net in zip(folders[1:], supernets[1:], strict=True):
        differ = [k for k in _SAME_SPACE if getattr(net.config, k) != getattr(first, k)]
        if differ:
            raise ValueError(f"--supernet {folder} has another search space than {folders[0]} ({differ} differ); "
                             "one standalone set serves supernets of one space only.")
    space = first.search_space
    children = sample_children(space, args.num_children, args.children_seed, args.max_params, args.min_params)

    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer_name or folders[0])
    blocks = held_out_from_args(args, tokenizer)
    blocks = blocks.select(range(min(len(blocks), args.num_eval_batches * args.per_device_eval_batch_size)))
    loader = DataLoader(blocks, batch_size=args.per_device_eval_batch_size, collate_fn=default_data_collator)

    template = PretrainArguments(
        train_file=args.train_file, validation_file=args.validation_file if args.train_file else None,
        text_column_name=args.text_column_name, tokenizer_name=args.tokenizer_name or str(folders[0]),
        config_name=str(folders[0]), max_seq_length=args.max_seq_length, mlm_probability=args.mlm_probability,
        per_device_train_batch_size=args.per_device_train_batch_size, learning_rate=args.learning_rate,
        num_warmup_steps=args.num_warmup_steps, max_train_steps=args.standalone_steps, seed=args.seed,
        synthetic_documents=args.synthetic_documents)
    cache_dir = Path(args.cache_dir) if args.cache_dir else output.parent / "standalone_cache"
    fingerprint = {"held_out": [args.validation_file, args.dataset_name, args.dataset_config_name,
                                args.validation_split], "blocks": len(blocks), "vocab": tokenizer.get_vocab()}
    cache = StandaloneCache(cache_dir, template, lambda model: evaluate_mlm(model, loader), fingerprint)
    bar = tqdm(total=len(children), desc="standalone children", unit="child")
    standalone = cache.scores(children, bar.update)
    bar.close()
    standalone_losses = [entry["eval_loss"] for entry in standalone]

    results = []
    for folder, net in zip(folders, supernets, strict=True):
        inherited = [evaluate_mlm(net, loader, arch=arch).loss for arch in children]
        results.append({"supernet": str(folder), "inherited_losses": inherited,
                        **rank_correlation(inherited, standalone_losses)})

    report = {"children": children, "standalone": standalone, "trained_now": cache.trained,
              "cache_dir": str(cache_dir), "schedule": {"steps": args.standalone_steps, "lr": args.learning_rate,
                                                        "batch_size": args.per_device_train_batch_size},
              "supernets": results}

    def write(staging: Path) -> None:
        (staging / "rank_correlation.json").write_text(json.dumps(report, indent=2))
        plot_rank_scatter({f"{Path(r['supernet']).name} (τ={r['kendall_tau']:+.2f})":
                           (r["inherited_losses"], standalone_losses) for r in results},
                          staging / "rank_scatter.png", f"{len(children)} children: supernet vs standalone")

    publish(output, write)
    print(format_table(results))
    print(f"standalone runs trained now: {cache.trained} (cache: {cache_dir}); outputs -> {output}")
    return report


def format_table(results: list[dict]) -> str:
    width = max(len(r["supernet"]) for r in results)
    lines = [f"{'supernet':<{width}}  Kendall tau  Spearman rho  children"]
    lines += [f"{r['supernet']:<{width}}  {r['kendall_tau']:+11.4f}  {r['spearman_rho']:+12.4f}  "
              f"{r['num_children']:>8}" for r in results]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
