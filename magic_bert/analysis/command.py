"""``magic-bert-interference`` / ``recipes/analyze_interference.py`` and ``magic-bert-rank-correlation`` /
``recipes/rank_correlation.py``: gradient interference of one shared op across children of a trained supernet, and
the rank correlation of supernets with standalone training (see those recipes' docstrings)."""

from __future__ import annotations

import json
import random
from functools import partial
from pathlib import Path

from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import default_data_collator

from ..cli import command_main, console_script, parse_one
from ..data import fit_batch_size
from ..errors import InputError, invalid_value, load_user_file
from ..evaluation import evaluate_mlm
from ..io_utils import publish_dir
from ..output_folder import locks_output_dir
from ..search_space import load_arch
from ..supernet_inputs import (
    HeldOutArguments,
    blocks_to_skip,
    held_out,
    held_out_source,
    load_supernet,
    load_tokenizer,
)
from ..training.arguments import PretrainArguments
from ..training.electra import load_electra
from .arguments import InterferenceArguments, RankCorrelationArguments
from .interference import check_shared, sample_sharing_children, shared_op, similarity_matrix, similarity_vs_m
from .plots import plot_rank_scatter, plot_similarity_matrix, plot_similarity_vs_m, short_arch
from .ranking import StandaloneCache, rank_correlation, sample_children

# What must agree between supernets compared on one standalone set.
_SAME_SPACE = ("vocab_size", "hidden_size", "num_hidden_layers", "candidate_ops", "attention_head_size")


def _default_op(space) -> str:
    return max((op for op in space.ops if op.kind != "identity"), key=space.op_params).name


def _children_from_file(path: str, space, layer: int, op: str) -> list[list[str]]:
    with invalid_value(f"`children_file` {path!r}"):
        archs = [load_arch(a) for a in load_user_file(f"`children_file` {path!r}",
                                                      lambda: json.loads(Path(path).read_text()))]
        children = check_shared(archs, space, layer, op)
    if len(children) < 2:
        raise InputError(f"`children_file` holds {len(children)} arch(s); a similarity needs at least 2.")
    return children


@locks_output_dir("supernet", "children_file", "validation_file", "tokenizer_name")
def analyze(args: InterferenceArguments) -> dict:
    output = Path(args.output_dir)  # checked, with the arguments, by @locks_output_dir
    supernet = load_supernet(args.supernet)
    args.check_fits(supernet.config)
    space = supernet.config.search_space
    layer = space.num_layers // 2 if args.layer is None else args.layer
    op = args.op or _default_op(space)
    shared_op(supernet, layer, op)
    if args.children_file is not None:
        children = _children_from_file(args.children_file, space, layer, op)
    else:
        with invalid_value("`max_params` / `min_params`"):
            children = sample_sharing_children(space, layer, op, args.num_children, random.Random(args.seed),
                                               *_total_budget(space, args))

    tokenizer = load_tokenizer(args.tokenizer_name or args.supernet)
    blocks = held_out(args.group(HeldOutArguments), tokenizer, args.seed, [args.supernet])
    blocks = blocks.select(range(min(len(blocks), args.num_batches * args.per_device_batch_size)))
    batch_size = fit_batch_size(args.per_device_batch_size, len(blocks), "held-out blocks",
                                name="per_device_batch_size")
    batches = list(DataLoader(blocks, batch_size=batch_size, collate_fn=default_data_collator))

    electra = load_electra(args.supernet)  # an ELECTRA supernet: gradients of its own objective, detection
    matrices = similarity_matrix(supernet, children, batches, layer, op, electra)
    curve = similarity_vs_m(supernet, batches, layer, op, args.pairs_per_m, args.seed,
                            *_total_budget(space, args), electra=electra)
    what = {"supernet": str(args.supernet), "layer": layer, "op": op, "num_batches": len(batches),
            "batch_size": batch_size, "loss": "masked-LM" if electra is None else "replaced-token detection"}

    def write(staging: Path) -> None:
        (staging / "similarity_matrix.json").write_text(json.dumps({**what, "children": children, **matrices},
                                                                   indent=2))
        (staging / "similarity_vs_m.json").write_text(json.dumps({**what, "rows": curve}, indent=2))
        plot_similarity_matrix(matrices["gradient"], [short_arch(a) for a in children],
                               staging / "similarity_matrix.png", f"gradient cosine at {op}, layer {layer}")
        plot_similarity_vs_m({Path(args.supernet).name: curve}, staging / "similarity_vs_m.png",
                             f"{op} at layer {layer}: children differing in m layers")

    publish_dir(output, write)
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


def _load_same_space(paths: list[str]) -> list:
    supernets = [load_supernet(path) for path in paths]
    first = supernets[0].config
    for path, net in zip(paths[1:], supernets[1:], strict=True):
        differ = [k for k in _SAME_SPACE if getattr(net.config, k) != getattr(first, k)]
        if differ:
            raise InputError(f"`supernet` {path} has another search space than {paths[0]} ({differ} differ); "
                             "one standalone set serves supernets of one space only.")
    return supernets


def _standalone_template(args: RankCorrelationArguments, first: str, max_seq_length: int) -> PretrainArguments:
    """The fixed-arch pre-training run every standalone child gets (the one training loop), on blocks of the held-out
    text's length."""
    return PretrainArguments(
        train_file=args.train_file, validation_file=args.validation_file if args.train_file else None,
        text_column_name=args.text_column_name, tokenizer_name=args.tokenizer_name or first, config_name=first,
        max_seq_length=max_seq_length, mlm_probability=args.mlm_probability,
        per_device_train_batch_size=args.per_device_train_batch_size, learning_rate=args.learning_rate,
        num_warmup_steps=args.num_warmup_steps, max_train_steps=args.standalone_steps, seed=args.seed,
        synthetic_documents=args.synthetic_documents)


def _check_standalone_text(args: RankCorrelationArguments, record: dict) -> None:
    """The embedded corpus's held-out documents of seed s open its training text of seed s + 1: standalone children
    trained on the embedded corpus at that seed would train on the very text they are scored on."""
    if args.train_file is None and record.get("synthetic_documents") is not None and args.seed == record["seed"] + 1:
        raise InputError(f"`seed` {args.seed}: the standalone children would train on the embedded corpus of seed "
                         f"{args.seed}, which begins with the documents the supernet held out (seed {record['seed']}) "
                         f"and that they are scored on; pass another `seed` (e.g. {record['seed']}) or a "
                         "`train_file`.")


def _total_budget(space, args) -> tuple[float | None, float | None]:
    """``(max_params, min_params)`` meaning the parameter and the encoder budgets together."""
    with invalid_value("`max_encoder_params` / `min_encoder_params`"):
        return space.total_budget(args.max_params, args.min_params, args.max_encoder_params, args.min_encoder_params)


@locks_output_dir("supernet", "cache_dir", "train_file", "validation_file", "tokenizer_name")
def correlate(args: RankCorrelationArguments) -> dict:
    output = Path(args.output_dir)  # checked, with the arguments, by @locks_output_dir
    supernets = _load_same_space(args.supernet)
    args.check_fits(supernets[0].config)
    space = supernets[0].config.search_space
    with invalid_value("`max_params` / `min_params`"):
        children = sample_children(space, args.num_children, args.children_seed, *_total_budget(space, args))

    tokenizer = load_tokenizer(args.tokenizer_name or args.supernet[0])
    blocks = held_out(args.group(HeldOutArguments), tokenizer, args.seed, args.supernet)  # no anchor blocks
    blocks = blocks.select(range(min(len(blocks), args.num_eval_batches * args.per_device_eval_batch_size)))
    loader = DataLoader(blocks, collate_fn=default_data_collator, batch_size=fit_batch_size(
        args.per_device_eval_batch_size, len(blocks), "held-out blocks", name="per_device_eval_batch_size"))

    cache_dir = Path(args.cache_dir) if args.cache_dir else output.parent / "standalone_cache"
    fingerprint = {"held_out": [args.validation_file, args.dataset_name, args.dataset_config_name,
                                args.validation_split], "blocks": len(blocks), "vocab": tokenizer.get_vocab()}
    skipped = blocks_to_skip(args.group(HeldOutArguments), args.supernet)
    if skipped:  # only then, so that caches of runs that skipped nothing stay valid
        fingerprint["skipped_blocks"] = skipped
    source = held_out_source(args.group(HeldOutArguments), args.seed, args.supernet)
    _check_standalone_text(args, source.recorded or {})
    if args.validation_file is None and args.dataset_name is None:  # the supernet's recorded text (or the default)
        fingerprint["held_out_text"] = source.description
    cache = StandaloneCache(cache_dir, _standalone_template(args, str(args.supernet[0]), source.max_seq_length),
                            lambda model: evaluate_mlm(model, loader), fingerprint)
    bar = tqdm(total=len(children), desc="standalone children", unit="child")
    standalone = cache.scores(children, bar.update)
    bar.close()
    standalone_losses = [entry["eval_loss"] for entry in standalone]

    results = []
    for folder, net in zip(args.supernet, supernets, strict=True):
        # An ELECTRA-trained supernet (E-MAGIC-AT) is scored on its own objective, replaced-token detection, against
        # the same masked-LM standalone reference
        electra = load_electra(folder)
        inherited = [evaluate_mlm(net, loader, arch=arch, example_sums=electra and electra.example_sums).loss
                     for arch in children]
        results.append({"supernet": str(folder), "inherited_score": "masked-LM" if electra is None else
                        "replaced-token detection", "inherited_losses": inherited,
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

    publish_dir(output, write)
    print(format_rank_table(results))
    print(f"standalone runs trained now: {cache.trained} (cache: {cache_dir}); outputs -> {output}")
    return report


def format_rank_table(results: list[dict]) -> str:
    width = max(len(r["supernet"]) for r in results)
    lines = [f"{'supernet':<{width}}  Kendall tau  Spearman rho  children"]
    lines += [f"{r['supernet']:<{width}}  {r['kendall_tau']:+11.4f}  {r['spearman_rho']:+12.4f}  "
              f"{r['num_children']:>8}" for r in results]
    return "\n".join(lines)


parse_interference_args = partial(parse_one, InterferenceArguments, description=__doc__)
parse_rank_correlation_args = partial(parse_one, RankCorrelationArguments, description=__doc__)
main_interference = command_main(InterferenceArguments, analyze, __doc__)
main_rank_correlation = command_main(RankCorrelationArguments, correlate, __doc__)
# The installed magic-bert-interference / magic-bert-rank-correlation: exit 0 on success (the mains return reports).
console_interference = console_script(main_interference)
console_rank_correlation = console_script(main_rank_correlation)


__all__ = ["analyze", "console_interference", "console_rank_correlation", "correlate", "main_interference",
           "main_rank_correlation", "parse_interference_args", "parse_rank_correlation_args"]
