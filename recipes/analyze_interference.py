"""Gradient interference between children of a trained supernet, for one shared operator.

    python recipes/analyze_interference.py --supernet outputs/tiny-supernet --layer 1 --op ffn:256 \\
        --output_dir outputs/interference

Children that all use --op at --layer are run on the same held-out batches (eval mode, fixed masks). For each, the
gradient of its masked-LM loss with respect to that op's parameters, and the op's input and output, are kept.
Outputs in --output_dir:
  similarity_matrix.json / .png   pairwise gradient cosine (and input/output cosine) of --num_children children
                                  (or those of --children_file), averaged over --num_batches batches
  similarity_vs_m.json / .png     for m = 1..L-1 layers of difference: mean and std over --pairs_per_m random pairs
A table of similarity against m is printed.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from torch.utils.data import DataLoader
from transformers import AutoTokenizer, default_data_collator

from magic_bert import MagicBertSupernetForMaskedLM
from magic_bert.analysis import (
    check_shared,
    plot_similarity_matrix,
    plot_similarity_vs_m,
    sample_sharing_children,
    shared_op,
    short_arch,
    similarity_matrix,
    similarity_vs_m,
)
from magic_bert.recipe_utils import (
    add_held_out_arguments,
    check_output_dir,
    check_supernet_dir,
    held_out_from_args,
    publish,
)
from magic_bert.search_space import load_arch


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--supernet", required=True, help="a pre-training output folder (model + tokenizer)")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--overwrite_output_dir", action="store_true", help="replace a non-empty --output_dir")
    parser.add_argument("--layer", type=int, help="layer of the shared op (default: the middle layer)")
    parser.add_argument("--op", help="the shared op, e.g. ffn:256 (default: the largest op of the space)")
    parser.add_argument("--num_children", type=int, default=8, help="children in the similarity matrix")
    parser.add_argument("--children_file", help="a JSON list of archs for the matrix instead of sampled ones")
    parser.add_argument("--pairs_per_m", type=int, default=8, help="random child pairs at each m")
    parser.add_argument("--num_batches", type=int, default=4, help="held-out batches each gradient is taken on")
    parser.add_argument("--per_device_batch_size", type=int, default=16)
    parser.add_argument("--max_params", type=float, help="sample children inside this budget")
    parser.add_argument("--min_params", type=float)
    parser.add_argument("--seed", type=int, default=42, help="children, pairs and the held-out masks")
    add_held_out_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        analyze(args)
    except ValueError as error:  # bad input: one clear message, nothing written
        sys.exit(f"error: {error}")


def _default_op(space) -> str:
    return max((op for op in space.ops if op.kind != "identity"), key=lambda op: op.num_params(space.hidden_size)).name


def analyze(args: argparse.Namespace) -> dict:
    output = check_output_dir(args.output_dir, args.overwrite_output_dir)
    supernet_dir = check_supernet_dir(args.supernet)
    for name in ("num_children", "pairs_per_m", "num_batches", "per_device_batch_size"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be at least 1, got {getattr(args, name)}.")
    supernet = MagicBertSupernetForMaskedLM.from_pretrained(supernet_dir)
    space = supernet.config.search_space
    layer = space.num_layers // 2 if args.layer is None else args.layer
    op = args.op or _default_op(space)
    shared_op(supernet, layer, op)
    if args.children_file is not None:
        if not Path(args.children_file).is_file():
            raise ValueError(f"--children_file {args.children_file!r} does not exist.")
        children = check_shared([load_arch(a) for a in json.loads(Path(args.children_file).read_text())], space,
                                layer, op)
        if len(children) < 2:
            raise ValueError(f"--children_file holds {len(children)} arch(s); a similarity needs at least 2.")
    else:
        children = sample_sharing_children(space, layer, op, args.num_children, random.Random(args.seed),
                                           args.max_params, args.min_params)

    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer_name or supernet_dir)
    blocks = held_out_from_args(args, tokenizer)
    blocks = blocks.select(range(min(len(blocks), args.num_batches * args.per_device_batch_size)))
    batches = list(DataLoader(blocks, batch_size=args.per_device_batch_size, collate_fn=default_data_collator))

    matrices = similarity_matrix(supernet, children, batches, layer, op)
    curve = similarity_vs_m(supernet, batches, layer, op, args.pairs_per_m, args.seed, args.max_params,
                            args.min_params)
    what = {"supernet": str(supernet_dir), "layer": layer, "op": op, "num_batches": len(batches),
            "batch_size": args.per_device_batch_size}

    def write(staging: Path) -> None:
        (staging / "similarity_matrix.json").write_text(json.dumps({**what, "children": children, **matrices},
                                                                   indent=2))
        (staging / "similarity_vs_m.json").write_text(json.dumps({**what, "rows": curve}, indent=2))
        plot_similarity_matrix(matrices["gradient"], [short_arch(a) for a in children],
                               staging / "similarity_matrix.png", f"gradient cosine at {op}, layer {layer}")
        plot_similarity_vs_m({supernet_dir.name: curve}, staging / "similarity_vs_m.png",
                             f"{op} at layer {layer}: children differing in m layers")

    publish(output, write)
    print(format_curve(curve))
    print(f"outputs -> {output}")
    return {"children": children, **matrices, "rows": curve}


def format_curve(rows: list[dict]) -> str:
    lines = ["  m  pairs  gradient (mean ± std)  input   output"]
    for r in rows:
        if r["num_pairs"] == 0:
            lines.append(f"{r['m']:>3}      0  (no pair found inside the budget)")
            continue
        lines.append(f"{r['m']:>3}  {r['num_pairs']:>5}  {r['gradient_mean']:+.4f} ± {r['gradient_std']:.4f}"
                     f"       {r['input_mean']:.4f}  {r['output_mean']:.4f}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
