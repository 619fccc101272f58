"""Training tokens/s of the package's pre-training step against transformers' ``BertForMaskedLM``, before and after the
masked-only MLM head and the cheaper teacher; and children scored per second by search, before and after.

Sizes are the compression showcase's (defaults): the teacher is all-MiniLM-L6-v2's shape (BERT, hidden 384, 6 layers,
12 heads, FFN 1536, vocabulary 30,522; random weights unless ``--teacher`` names the real one: speed does not depend
on them), the student is its DistilBERT-style cut (teacher layers 0, 2, 4: ``[mha:12, ffn:1536] × 3``, 5.3M encoder
parameters), batch 16 × 128. Variants, each in its own worker process (``workers.Worker``: own model, AdamW and
allocator, as a real run), one step each in turn, alternating the order every round:

- ``bert``: transformers' ``BertForMaskedLM`` of the cut's shape (3 BERT layers), ``model(**batch).loss``;
- ``fixed`` / ``child``: the cut as a fixed MagicBert arch / as a child of the supernet of the space around the
  teacher (12 sublayers, the default ops: identity, mha:6/12, ffn:384/768/1536, conv:3/5/7), through the recipe's
  own step (``CompositeLoss.forward``: forward, loss terms; then backward, clipping, AdamW);
- ``+kd``: with the showcase's distillation: hidden-state MSE to the teacher (``--kd_hidden_weight 1``, default layer
  map) plus masked-LM; the teacher's forward in ``--teacher_precision`` (default auto) under inference mode;
- ``(before)``: the same step as it was: the MLM head over every position (``masked_logits_only=False``) and, with a
  teacher, its forward in fp32 (``teacher_precision training``).

Search: the default search's scoring (``evaluate_mlm`` of one child on ``--eval_batches`` held-out batches of
``--eval_batch`` × 128) on that supernet, now and before (the full head, through ``evaluate_mlm``'s path for models
without ``masked_logits_only``), interleaved in this process, over the same random children in the budget.

    python bench/step_throughput.py [--rounds 10 --warmup 2 --batch 16 --seq 128 --eval_batches 8 --eval_batch 32]
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from transformers import BertConfig, BertForMaskedLM, BertModel

from magic_bert import MagicBertForMaskedLM, MagicBertSupernetForMaskedLM
from magic_bert.cli import arg, at_least, parse_one, run
from magic_bert.compression import bert_layers_arch, space_from_bert
from magic_bert.evaluation import evaluate_mlm
from magic_bert.training.arguments import LossArguments, PretrainArguments, check_precision
from magic_bert.training.losses import build_loss_terms, resolve_precision
from magic_bert.training.teacher import Teacher, layer_map

sys.path.insert(0, str(Path(__file__).parent))
from sampler_overhead import make_batch  # noqa: E402
from timing import interleaved_times, paired_ratio, print_table  # noqa: E402
from workers import Worker  # noqa: E402

CUT = [0, 2, 4]  # DistilBERT's every other layer of a 6-layer teacher
VARIANTS = ("bert", "fixed (before)", "fixed", "child (before)", "child",
            "fixed+kd (before)", "fixed+kd", "child+kd (before)", "child+kd")


@dataclass
class StepThroughputArguments:
    teacher: str | None = arg(None, "A BERT folder whose config (and, for the teacher, weights) to use; default: "
                                    "all-MiniLM-L6-v2's shape with random weights.")
    teacher_precision: str = arg("auto", "The teacher's forward in the variants without '(before)'.")
    batch: int = arg(16, "Training batch size.")
    seq: int = arg(128, "Sequence length.")
    rounds: int = arg(10, "Timed rounds (one step of every variant each).")
    warmup: int = arg(2, "Untimed rounds first.")
    eval_batches: int = arg(8, "Search: held-out batches per child (search's --num_eval_batches).")
    eval_batch: int = arg(32, "Search: their size (search's --per_device_eval_batch_size).")
    search_children: int = arg(6, "Search: children timed (each scored now and before, interleaved).")
    variants: list[str] | None = arg(None, f"A subset of {list(VARIANTS)}.")
    seed: int = arg(0, "Seed.")

    def check(self) -> None:
        check_precision(self.teacher_precision, "teacher_precision")
        at_least(1, batch=self.batch, seq=self.seq, rounds=self.rounds, eval_batches=self.eval_batches,
                 eval_batch=self.eval_batch, search_children=self.search_children)
        at_least(0, warmup=self.warmup)


def teacher_config(path: str | None) -> BertConfig:
    if path is not None:
        return BertConfig.from_pretrained(path)
    return BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                      intermediate_size=1536, max_position_embeddings=512)


class Step:
    """One variant's training step; calling it runs one optimizer step on the same masked batch."""

    def __init__(self, name: str, args: StepThroughputArguments):
        torch.manual_seed(args.seed)
        bert_config = teacher_config(args.teacher)
        self.accelerator = Accelerator(cpu=True)
        self.batch = make_batch(bert_config.vocab_size, args.batch, args.seq, args.seed)
        kind, _, when = name.partition(" ")
        self.hf = kind == "bert"
        self.supernet = kind.startswith("child")
        self.full_head = when == "(before)"
        cut = BertConfig(**{**bert_config.to_dict(), "num_hidden_layers": len(CUT)})  # the cut's own shape
        # In the teacher's space the cut keeps sublayers 0-1, 4-5, 8-9; as a fixed model it is BERT-shaped.
        self.arch = bert_layers_arch(bert_config if self.supernet else cut,
                                     CUT if self.supernet else range(len(CUT)))
        if self.hf:
            model = BertForMaskedLM(cut)
        elif self.supernet:
            model = MagicBertSupernetForMaskedLM(space_from_bert(bert_config))
        else:
            model = MagicBertForMaskedLM(space_from_bert(cut).with_arch(self.arch))
        self.model = self.accelerator.prepare(model.train())
        self.unwrapped = self.accelerator.unwrap_model(self.model)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-4)
        teacher = None
        loss_args = PretrainArguments().group(LossArguments)
        if kind.endswith("+kd"):
            model = BertModel.from_pretrained(args.teacher) if args.teacher else BertModel(bert_config)
            precision = "training" if self.full_head else resolve_precision(args.teacher_precision, "cpu")
            teacher = Teacher(model.eval().requires_grad_(False), "teacher", has_mlm_head=False,
                              precision=precision, needs_logits=False)
            loss_args.kd_hidden_weight = 1.0
        pairs = None if teacher is None else layer_map(None, len(self.arch), bert_config.num_hidden_layers)
        self.loss = build_loss_terms(loss_args, None, teacher, 0.0, pairs, device="cpu")
        self.teacher_precision = None if teacher is None else teacher.precision
        self.params = self.unwrapped.num_parameters()

    def __call__(self) -> None:
        batch = dict(self.batch)  # a new batch object every step, as in training: the teacher caches per batch
        if self.hf:
            loss = self.model(**batch).loss
        else:
            loss = self.loss.forward(self.model, batch, self.arch, self.unwrapped, self.accelerator.autocast,
                                     supernet=self.supernet, masked_logits_only=not self.full_head)["loss"]
        self.accelerator.backward(loss)
        self.accelerator.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def figures(self) -> dict:
        return {"params": self.params, "teacher_precision": self.teacher_precision}


def build_step(name: str, settings: dict) -> Step:
    return Step(name, StepThroughputArguments(**settings))


class FullHead(torch.nn.Module):
    """The supernet seen as a model without ``masked_logits_only``: ``evaluate_mlm`` then scores from full logits,
    as it did before."""

    def __init__(self, supernet: MagicBertSupernetForMaskedLM):
        super().__init__()
        self.supernet = supernet

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, arch=None):
        return self.supernet(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                             arch=arch)


def search_scoring(args: StepThroughputArguments) -> dict:
    """Seconds per child of search's scoring, now and before, on the same children and batches."""
    bert_config = teacher_config(args.teacher)
    space = space_from_bert(bert_config)
    torch.manual_seed(args.seed)
    supernet = MagicBertSupernetForMaskedLM(space).eval()
    batches = [make_batch(bert_config.vocab_size, args.eval_batch, args.seq, args.seed + 1 + i)
               for i in range(args.eval_batches)]
    rng = random.Random(args.seed)
    children = [space.search_space.sample(rng) for _ in range(args.search_children)]
    full = FullHead(supernet)
    scores: dict[str, list[float]] = {"now": [], "before": []}
    times: dict[str, list[float]] = {"now": [], "before": []}
    for index, arch in enumerate(children):
        order = [("now", supernet), ("before", full)]
        for name, model in order if index % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            scores[name].append(evaluate_mlm(model, batches, arch=arch).loss)
            times[name].append(time.perf_counter() - start)
    diff = max(abs(a - b) for a, b in zip(scores["now"], scores["before"], strict=True))
    return {"seconds": times, "max_loss_diff": diff, "blocks": args.eval_batches * args.eval_batch,
            "supernet_params": supernet.num_parameters()}


def step_throughput(args: StepThroughputArguments) -> dict:
    args.check()
    names = args.variants or list(VARIANTS)
    workers = {name: Worker(build_step, name, asdict(args)) for name in names}
    samples = interleaved_times(workers, rounds=args.rounds, warmup=args.warmup)
    figures = {name: worker.finish() for name, worker in workers.items()}
    tokens = args.batch * args.seq
    times = {name: statistics.median(values) for name, values in samples.items()}
    rows = [(name, f"{figures[name]['params'] / 1e6:.1f}M", figures[name]["teacher_precision"] or "-",
             f"{times[name] * 1e3:.0f}", f"{tokens / times[name]:,.0f}") for name in names]
    print(f"batch {args.batch} x {args.seq}, threads {torch.get_num_threads()}, {args.rounds} rounds "
          "(one worker process per variant)")
    print_table(rows, ("variant", "params", "teacher", "step ms", "tokens/s"))
    ratios = {}
    for now, base in (("fixed", "bert"), ("fixed", "fixed (before)"), ("child", "child (before)"),
                      ("fixed+kd", "fixed+kd (before)"), ("child+kd", "child+kd (before)"), ("child", "fixed"),
                      ("child+kd", "child (before)")):
        if now in samples and base in samples:
            ratios[f"{now} / {base}"] = paired_ratio(samples, base, now)  # a speed-up: base time over now time
    print("speed-ups (median over rounds of the time ratio within a round):")
    for name, ratio in ratios.items():
        print(f"  {name}: {ratio:.2f}x")
    search = search_scoring(args)
    per_child = {name: statistics.median(values) for name, values in search["seconds"].items()}
    print(f"search scoring: {search['blocks']} blocks of {args.seq} tokens per child, supernet "
          f"{search['supernet_params'] / 1e6:.1f}M params, {args.search_children} children")
    print_table([(name, f"{per_child[name]:.2f}", f"{1 / per_child[name]:.3f}") for name in ("before", "now")],
                ("scoring", "s per child", "children/s"))
    speedup = statistics.median(b / a for a, b in zip(search["seconds"]["now"], search["seconds"]["before"],
                                                       strict=True))
    print(f"  children/s now / before: {speedup:.2f}x (max |loss difference| {search['max_loss_diff']:.2e})")
    return {"times": times, "samples": samples, "figures": figures, "speedups": ratios, "search": search,
            "search_speedup": speedup}


def main(argv: list[str] | None = None) -> dict:
    return run(step_throughput, parse_one(StepThroughputArguments, argv, __doc__))


if __name__ == "__main__":
    main()
