"""The options of ``magic-bert-search`` and ``magic-bert-export``, each a dataclass with its checks in one place."""

from __future__ import annotations

from dataclasses import dataclass

from ..cli import ArgumentGroups, arg, at_least, at_most, check_budget_order, check_seed, in_range, positive
from ..errors import InputError
from ..supernet_inputs import HeldOutArguments
from .algorithms import METRICS, STRATEGIES
from .export import FORMATS, HEADS, INITS, LABELLED_HEADS, MAX_NUM_LABELS, check_head_options

SCORING_PRECISIONS = ("fp32", "bf16", "auto")
# The most children one search scores (a generation's, or random search's): a million take days at the defaults.
MAX_SEARCH_CHILDREN = 1_000_000


@dataclass
class SearchArguments(ArgumentGroups, HeldOutArguments):
    supernet: str | None = arg(None, "A pre-training output folder (model + tokenizer); required.")
    output_dir: str | None = arg(None, "Where arch.json, candidates.jsonl and pareto.png go (required).")
    overwrite_output_dir: bool = arg(False, "Replace a non-empty --output_dir.")
    max_params: float | None = arg(None, "Parameter budget, e.g. 60e6.")
    min_params: float | None = arg(None, "Smallest parameter count allowed.")
    max_encoder_params: float | None = arg(None, "Budget on the layers alone (no embeddings, pooler or head).")
    min_encoder_params: float | None = arg(None, "Smallest encoder parameter count allowed.")
    max_flops: float | None = arg(None, "FLOPs of one sequence of --seq_len tokens.")
    seq_len: int = arg(128, "Sequence length for FLOPs and latency.")
    latency_table: str | None = arg(None, "A latency_table.json from --measure_latency.")
    measure_latency: bool = arg(False, "Time every op on this device first.")
    max_latency: float | None = arg(None, "Seconds per forward (needs a latency table).")
    min_attention_layers: int = arg(0, "Keep at least this many self-attention (mha:*, heads:*) layers in every arch.")
    seed_archs: str = arg("auto", "Archs scored first, in the first generation: 'auto' (the hand-designed students of "
                                  "a space built around a BERT that meet the constraints: every other layer, the "
                                  "first half, half the heads and neurons of every layer), 'none', or a JSON file "
                                  "or text with a list of archs or an object of named archs.")
    strategy: str = arg("evolution", "Search strategy.", choices=list(STRATEGIES))
    metric: str = arg("loss", "What children are ranked by: held-out MLM loss (lower) or accuracy; 'distill', the "
                              "student recipe's distillation loss against the teacher (lower); 'embedding', the "
                              "cosine of pooled embeddings with the teacher's; 'task', a linear probe on --task_* "
                              "data (docs/search_and_export.md).", choices=list(METRICS))
    scoring_precision: str = arg("fp32", "Precision of the children's forwards while scoring: fp32, bf16 (an autocast: "
                                         "about 1.5x faster on an AVX-512 CPU; docs/search_and_export.md) or auto "
                                         "(bf16 where the device runs it natively).", choices=list(SCORING_PRECISIONS))
    teacher_name_or_path: str | None = arg(None, "The teacher of --metric distill / embedding (default: the "
                                                 "supernet's --init_from_bert).")
    task_name: str | None = arg(None, "--metric task: a GLUE task (its train file, with --task_data_dir; a seeded "
                                      "slice is held out, dev is never read).")
    task_data_dir: str | None = arg(None, "A folder with the original GLUE task folders (MRPC/, ...).")
    task_train_file: str | None = arg(None, "--metric task: your labelled file (csv / json / jsonl, text columns "
                                            "and --task_label_column).")
    task_validation_file: str | None = arg(None, "Its held-out file (default: a seeded slice of the train file).")
    task_label_column: str = arg("label", "The label column of --task_train_file.")
    task_text_columns: str | None = arg(None, "Its one or two text columns, comma-separated (default: the columns "
                                              "besides the label and an id).")
    task_train_samples: int = arg(1000, "--metric task: examples the probe is fit on.")
    task_eval_samples: int = arg(500, "--metric task: held-out examples it is scored on.")
    probe_ridge: float = arg(1.0, "--metric task: the ridge penalty of the linear probe.")
    # 16 x 6 children on 4 x 32 blocks: a MiniLM-sized supernet's default search takes under 5 minutes on 2 CPU cores
    # (docs/benchmarks.md); 20 x 10 on 8 x 32 took 37 minutes before the head ran on masked positions only.
    population_size: int = arg(16, "Archs per generation.")
    generations: int = arg(6, "Generations of the evolution.")
    parents: int | None = arg(None, "Archs kept as parents each generation (default: half).")
    mutation_prob: float = arg(0.1, "Per-layer probability of a new op.")
    crossover: float = arg(0.5, "Probability a child comes from crossover.")
    num_evaluations: int | None = arg(None, "Random search: archs to score (default: population_size * "
                                            "generations, the evolution's budget).")
    num_eval_batches: int = arg(4, "Held-out batches per process per arch.")
    screen_batches: int = arg(0, "Racing: score each new child on this many of those batches first, and on all of "
                                 "them only if that ranks it among the best --parents children so far (0: off; "
                                 "--metric loss or accuracy). The others are recorded as screened, never parents.")
    per_device_eval_batch_size: int = arg(32, "Batch size per device for scoring.")
    top_k: int = arg(10, "Rows of the printed table.")
    seed: int = arg(42, "Seed of the search and of the held-out masks.")

    def check(self) -> None:
        HeldOutArguments.check(self)
        if self.supernet is None:
            raise InputError("`supernet` is required.")
        if self.output_dir is None:
            raise InputError("`output_dir` is required.")
        at_least(1, seq_len=self.seq_len, num_eval_batches=self.num_eval_batches, top_k=self.top_k,
                 per_device_eval_batch_size=self.per_device_eval_batch_size, num_evaluations=self.num_evaluations)
        at_least(2, population_size=self.population_size, parents=self.parents)
        at_most(MAX_SEARCH_CHILDREN, population_size=self.population_size, num_evaluations=self.num_evaluations)
        at_least(0, min_attention_layers=self.min_attention_layers, screen_batches=self.screen_batches)
        if self.screen_batches and (self.screen_batches >= self.num_eval_batches
                                    or self.metric not in ("loss", "accuracy")):
            raise InputError(f"`screen_batches` {self.screen_batches} screens on fewer batches than "
                             f"`num_eval_batches` ({self.num_eval_batches}) with `metric` loss or accuracy (got "
                             f"{self.metric!r}).")
        at_least(2, task_train_samples=self.task_train_samples, task_eval_samples=self.task_eval_samples)
        if self.scoring_precision not in SCORING_PRECISIONS:
            raise InputError(f"`scoring_precision` {self.scoring_precision!r} is not a precision; choose one of "
                             f"{list(SCORING_PRECISIONS)}.")
        positive(probe_ridge=self.probe_ridge)
        task_given = self.task_name is not None or self.task_train_file is not None
        if self.metric == "task" and not task_given:
            raise InputError("`metric` task needs labelled data: `task_name` (a GLUE task, with `task_data_dir`) or "
                             "`task_train_file`.")
        if self.teacher_name_or_path is not None and self.metric not in ("distill", "embedding"):
            raise InputError(f"`teacher_name_or_path` is read by `metric` distill and embedding only; `metric` is "
                             f"{self.metric!r}.")
        if self.metric != "task" and task_given:
            raise InputError(f"`task_name` / `task_train_file` are read by `metric` task only; `metric` is "
                             f"{self.metric!r}.")
        at_least(1, generations=self.generations)
        if self.population_size * self.generations > MAX_SEARCH_CHILDREN:
            raise InputError(f"`population_size` {self.population_size} x `generations` {self.generations} would score "
                             f"{self.population_size * self.generations:,} children; at most {MAX_SEARCH_CHILDREN:,}.")
        if self.parents is not None and self.parents > self.population_size:
            raise InputError(f"`parents` {self.parents} exceeds `population_size` {self.population_size}: the parents "
                             "are the best of the population, at most all of it.")
        positive(max_params=self.max_params, max_flops=self.max_flops, max_latency=self.max_latency)
        check_budget_order("max_encoder_params", self.max_encoder_params, "min_encoder_params",
                           self.min_encoder_params)
        in_range("mutation_prob", self.mutation_prob, 0, 1, "(]")
        in_range("crossover", self.crossover, 0, 1)
        check_seed(self.seed)

    def check_fits(self, config) -> None:
        """The held-out blocks, and the sequences timed with `measure_latency`, fit the supernet's positions; a
        generation fits in the space."""
        HeldOutArguments.check_fits(self, config)
        space = config.search_space
        if self.strategy == "evolution" and self.population_size > space.size:
            raise InputError(f"`population_size` {self.population_size} exceeds the {space.size:,} distinct children "
                             f"of the supernet's space ({len(space.ops)} ops, {space.num_layers} layers); pass at "
                             f"most {space.size:,}.")
        if self.measure_latency and self.seq_len > config.max_position_embeddings:
            raise InputError(f"`seq_len` {self.seq_len} exceeds the supernet's max_position_embeddings "
                             f"{config.max_position_embeddings}; `measure_latency` times sequences of that length.")


@dataclass
class ExportArguments:
    supernet: str | None = arg(None, "A pre-training output folder; required.")
    arch: str | None = arg(None, "arch.json from search, a JSON list, or op names; required.")
    output_dir: str | None = arg(None, "Where the checkpoint goes (required).")
    overwrite_output_dir: bool = arg(False, "Replace a non-empty --output_dir.")
    head: str = arg("masked_lm", "The model head.", choices=list(HEADS))
    num_labels: int | None = arg(None, f"Classes of --head {' or '.join(LABELLED_HEADS)} (default 2; at most "
                                       f"{MAX_NUM_LABELS:,}).")
    init: str = arg("inherit", "Supernet weights, or fresh ones.", choices=list(INITS))
    format: str = arg("magic_bert", "magic_bert (remote code), a plain BERT (BERT-shaped archs), or "
                                    "sentence-transformers (the encoder with mean pooling; pip install "
                                    "magic_bert[sentence]).", choices=list(FORMATS))
    glue_results: str | None = arg(None, "JSON of GLUE dev results for the card's model-index.")
    model_name: str | None = arg(None, "Name in the model card (default: the hub id or the folder name).")
    base_model: str | None = arg(None, "The card's base_model: the Hub id this model was compressed from (default: "
                                       "the supernet's --init_from_bert when that was a Hub id).")
    datasets: str | None = arg(None, "The card's datasets: comma-separated Hub ids of the training data.")
    license: str = arg("apache-2.0", "The card's licence (a Hub licence id); it must allow what the weights derive "
                                     "from.")
    seed: int = arg(42, "Initialisation of fresh weights.")
    push_to_hub: bool = arg(False, "Upload the exported folder to the Hub.")
    hub_model_id: str | None = arg(None, "The Hub repository, e.g. me/magic-bert-60m.")
    hub_token: str | None = arg(None, "A Hub token (default: the logged-in one).")
    hub_private_repo: bool = arg(False, "Create the repository as private.")

    def check(self) -> None:
        for name in ("supernet", "arch", "output_dir"):
            if getattr(self, name) is None:
                raise InputError(f"`{name}` is required.")
        check_head_options(self.head, self.num_labels, self.license)
        if self.push_to_hub and not self.hub_model_id:
            raise InputError("`push_to_hub` needs `hub_model_id`.")
        check_seed(self.seed)


__all__ = ["ExportArguments", "SearchArguments"]
