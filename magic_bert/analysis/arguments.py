"""The options of ``magic-bert-interference`` and ``magic-bert-rank-correlation``, each with its checks."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..cli import ArgumentGroups, arg, at_least, check_budget_order, check_seed, positive
from ..data import check_data_file
from ..errors import InputError, invalid_value
from ..op_specs import parse_op
from ..supernet_inputs import HeldOutArguments


@dataclass
class InterferenceArguments(ArgumentGroups, HeldOutArguments):
    supernet: str | None = arg(None, "A pre-training output folder (model + tokenizer); required.")
    output_dir: str | None = arg(None, "Where the matrices, curves and figures go (required).")
    overwrite_output_dir: bool = arg(False, "Replace a non-empty --output_dir.")
    layer: int | None = arg(None, "Layer of the shared op (default: the middle layer).")
    op: str | None = arg(None, "The shared op, e.g. ffn:256 (default: the largest op of the space).")
    num_children: int = arg(8, "Children in the similarity matrix.")
    children_file: str | None = arg(None, "A JSON list of archs for the matrix instead of sampled ones.")
    pairs_per_m: int = arg(8, "Random child pairs at each m.")
    num_batches: int = arg(4, "Held-out batches each gradient is taken on.")
    per_device_batch_size: int = arg(16, "Batch size of those batches.")
    max_params: float | None = arg(None, "Sample children inside this budget.")
    min_params: float | None = arg(None, "... and at least this many parameters.")
    max_encoder_params: float | None = arg(None, "... and at most this many in the layers alone (no embeddings).")
    min_encoder_params: float | None = arg(None, "... and at least this many in the layers alone.")
    seed: int = arg(42, "Children, pairs and the held-out masks.")

    def check(self) -> None:
        HeldOutArguments.check(self)
        for name in ("supernet", "output_dir"):
            if getattr(self, name) is None:
                raise InputError(f"`{name}` is required.")
        at_least(1, num_children=self.num_children, pairs_per_m=self.pairs_per_m, num_batches=self.num_batches,
                 per_device_batch_size=self.per_device_batch_size)
        positive(max_params=self.max_params)
        check_budget_order("max_encoder_params", self.max_encoder_params, "min_encoder_params",
                           self.min_encoder_params)
        if self.children_file is not None:
            check_data_file(self.children_file, "children_file")
        if self.op is not None:  # its spelling now; whether the supernet has it, once it is loaded
            with invalid_value(f"`op` {self.op!r}"):
                parse_op(self.op)
        check_seed(self.seed)


@dataclass
class RankCorrelationArguments(ArgumentGroups, HeldOutArguments):
    supernet: list[str] = field(default_factory=list, metadata={"help": "One or more pre-training output folders."})
    output_dir: str | None = arg(None, "Where rank_correlation.json and rank_scatter.png go (required).")
    overwrite_output_dir: bool = arg(False, "Replace a non-empty --output_dir.")
    cache_dir: str | None = arg(None, "Standalone results (default: <output_dir>/../standalone_cache).")
    num_children: int = arg(16, "Children drawn inside the budget.")
    children_seed: int = arg(0, "Seed of that draw.")
    max_params: float | None = arg(None, "Draw children inside this budget.")
    min_params: float | None = arg(None, "... and at least this many parameters.")
    max_encoder_params: float | None = arg(None, "... and at most this many in the layers alone (no embeddings).")
    min_encoder_params: float | None = arg(None, "... and at least this many in the layers alone.")
    num_eval_batches: int = arg(8, "Held-out batches each child is scored on.")
    per_device_eval_batch_size: int = arg(32, "Batch size of those batches.")
    train_file: str | None = arg(None, "Standalone training text (default: the embedded corpus).")
    standalone_steps: int = arg(1000, "Steps of each standalone run (the fixed-arch mode of pre-training).")
    learning_rate: float = arg(1e-3, "Standalone peak learning rate.")
    num_warmup_steps: int = arg(100, "Standalone warm-up steps.")
    per_device_train_batch_size: int = arg(16, "Standalone batch size.")
    synthetic_documents: int = arg(2000, "Documents of the embedded corpus for standalone runs.")
    seed: int = arg(42, "Standalone runs and the held-out masks.")

    def check(self) -> None:
        HeldOutArguments.check(self)
        if not self.supernet:
            raise InputError("`supernet` is required (one or more folders).")
        if self.output_dir is None:
            raise InputError("`output_dir` is required.")
        if self.train_file is not None and self.validation_file is None:
            raise InputError("`train_file` needs `validation_file` (the held-out text the children are scored on).")
        check_data_file(self.train_file, "train_file")
        at_least(1, num_eval_batches=self.num_eval_batches, per_device_eval_batch_size=self.per_device_eval_batch_size,
                 standalone_steps=self.standalone_steps, per_device_train_batch_size=self.per_device_train_batch_size,
                 synthetic_documents=self.synthetic_documents)
        at_least(3, num_children=self.num_children)  # a rank correlation of fewer means nothing
        at_least(0, num_warmup_steps=self.num_warmup_steps)
        positive(learning_rate=self.learning_rate, max_params=self.max_params)
        check_budget_order("max_encoder_params", self.max_encoder_params, "min_encoder_params",
                           self.min_encoder_params)
        check_seed(self.seed)
        check_seed(self.children_seed, "children_seed")


__all__ = ["InterferenceArguments", "RankCorrelationArguments"]
