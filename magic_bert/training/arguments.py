"""The options of ``magic-bert-pretrain`` / ``recipes/pretrain.py``: transformers' ``run_mlm_no_trainer.py`` names
plus the NAS ones, in groups that each setup phase takes on its own (data, model, loss, strategy, optimisation,
run). :class:`PretrainArguments` is all groups in one flat dataclass, so the command line (and ``--config FILE``)
reads like every HF script, and :meth:`PretrainArguments.group` hands a phase only its part.
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers.trainer_utils import SchedulerType

from ..cli import (
    ArgumentGroups,
    arg,
    at_least,
    at_most,
    check_budget_order,
    check_report_to,
    check_seed,
    in_range,
    parse_one,
    positive,
)
from ..compression import INHERIT_METHODS
from ..configuration_magic_bert import PRESETS
from ..data import SPECIAL_TOKENS
from ..errors import InputError
from ..student_recipes import RECIPE_HELP, STUDENT_RECIPES, TakesStudentRecipe
from ..synthetic_corpus import DEFAULT_DOCUMENTS
from .strategies import DEFAULT_SWAP_MARGIN, SAMPLER_CHOICES, STRATEGIES

# The named alignment settings of MAGIC-A/AT (the paper aligns operators' outputs; the logits term is ours).
ALIGNMENTS = {"paper": "hidden-state alignment only (align_logits_weight 0)",
              "full": "hidden-state and logits alignment (both weights > 0)"}
DEFAULT_ALIGN_WEIGHT = 0.1
# The precision of a forward that only computes targets, the anchor's or the teacher's (its outputs carry no
# gradient, so bf16 rounding only perturbs the targets).
PRECISIONS = {"auto": "bf16 where the device has bf16 kernels (a CUDA GPU that supports it, a CPU with oneDNN's "
                      "AVX-512 / AMX path), else training",
              "bf16": "autocast to bfloat16 whatever the training precision",
              "training": "the training precision, as the child (fp32, or --mixed_precision's)"}


EMBEDDING_LOSSES = {"cosine": "1 - cosine similarity of the pooled embeddings (their scale is free)",
                    "mse": "mean squared error of the pooled embeddings (sentence-transformers' MSELoss)"}
# Loss options added after runs were cached (studies, rankings), with their defaults: a cached run without them had
# these values.
ADDED_LOSS_DEFAULTS = {"student_recipe": None, "mlm_weight": None, "kd_attention_weight": 0.0,
                       "kd_relation_heads": None, "kd_attention_layer": None, "kd_embedding_weight": 0.0,
                       "kd_embedding_loss": "cosine", "objective": "mlm", "rtd_weight": 50.0, "generator_arch": None}
OBJECTIVES = {"mlm": "masked-LM through the model's own head",
              "electra": "ELECTRA's replaced-token detection: a small generator (sharing the model's embeddings) fills "
                         "the masked positions with samples, the model predicts for every token whether it was "
                         "replaced; loss = generator masked-LM + rtd_weight x detection BCE"}


def check_precision(value: str, name: str) -> None:
    """One of ``PRECISIONS`` (the command line's choices guard only the command line)."""
    if value not in PRECISIONS:
        raise InputError(f"`{name}` {value!r} is not a precision; choose one of {list(PRECISIONS)}.")


# The largest --vocab_size taken: BERT's is 30,522 and multilingual vocabularies reach 250,000; the embeddings hold
# vocab_size x hidden_size weights (100000000000 was taken in silence and gave the text's ~600 tokens).
MAX_VOCAB_SIZE = 1_000_000
DEFAULT_VALIDATION_SPLIT = 5  # percent
UNIFORM_MAP = "uniform"  # --kd_layer_map's keyword for TinyBERT's uniform map (teacher.uniform_layer_map)


@dataclass
class DataArguments:
    dataset_name: str | None = arg(None, "Dataset on the Hub (e.g. wikitext).")
    dataset_config_name: str | None = arg(None, "Its configuration (e.g. wikitext-103-raw-v1).")
    train_file: str | None = arg(None, "Local training text: .txt, .csv, .json/.jsonl or .parquet.")
    validation_file: str | None = arg(None, "Local held-out text (same formats).")
    text_column_name: str | None = arg(None, "Column holding the text (default: 'text', else the first column).")
    validation_split_percentage: int = arg(DEFAULT_VALIDATION_SPLIT, "Percent of --train_file / --dataset_name held "
                                                                     "out when there is no validation split.")
    synthetic_documents: int = arg(DEFAULT_DOCUMENTS, "Documents of the embedded synthetic corpus (used when no "
                                                     "data is given).")
    max_seq_length: int | None = arg(None, "Block length after grouping (default: min(128, the model's maximum)).")
    mlm_probability: float = arg(0.15, "Fraction of tokens masked.")
    preprocessing_num_workers: int | None = arg(None, "Processes for tokenisation.")
    overwrite_cache: bool = arg(False, "Recompute the tokenised datasets instead of reusing the cache.")
    max_eval_samples: int | None = arg(None, "Cap on held-out blocks for the final evaluation.")
    tokenizer_name: str | None = arg(None, "BERT-style tokenizer (Hub id or path). Without it, a WordPiece "
                                           "tokenizer of --vocab_size is trained on the training text.")
    vocab_size: int | None = arg(None, "Size of the trained tokenizer (default: the preset's vocab_size).")
    streaming: bool = arg(False, "Stream --dataset_name / --train_file instead of loading it whole: shuffled with a "
                                 "buffer, split across processes, tokenised lazily. Needs --max_train_steps and "
                                 "held-out text (--validation_file, the dataset's validation split or "
                                 "--held_out_documents).")
    shuffle_buffer_size: int = arg(10_000, "With --streaming: documents in the shuffle buffer (seeded by --seed, "
                                           "reseeded each pass over the stream).")
    held_out_documents: int | None = arg(None, "With --streaming: hold out the first N documents of the stream "
                                               "(training skips them) when there is no --validation_file.")
    tokenizer_train_documents: int = arg(10_000, "With --streaming and no --tokenizer_name: train the WordPiece "
                                                 "tokenizer on the first N training documents of the stream.")


@dataclass
class ModelArguments:
    preset: str | None = arg(None, "Search space preset (default: the space around --init_from_bert when given, "
                                   "else tiny).", choices=sorted(PRESETS))
    config_name: str | None = arg(None, "A MagicBertConfig (path or Hub id) instead of --preset.")
    init_from_bert: str | None = arg(None, "Start every candidate op from this BERT (BertForMaskedLM or BertModel; "
                                           "path or Hub id). Without --preset / --config_name the space is built "
                                           "around it.")
    inherit: str = arg("importance", "With --init_from_bert, which FFN neurons a narrower ffn keeps: importance "
                                     "(MLM gradient x activation on held-out blocks; mean |activation| x output "
                                     "weights without an MLM head), magnitude (weights only) or first.",
                       choices=list(INHERIT_METHODS))
    gradient_checkpointing: bool = arg(False, "Recompute activations in the backward pass to save memory.")


@dataclass
class LossArguments:
    student_recipe: str | None = arg(None, RECIPE_HELP, choices=list(STUDENT_RECIPES))
    teacher_name_or_path: str | None = arg(None, "A BERT to distil (path or Hub id), with an MLM head (logits and "
                                                 "hidden-state KD) or without one (hidden-state KD); it must share "
                                                 "the tokenizer's vocabulary.")
    kd_weight: float | None = arg(None, "Logits KD: loss = (1 - kd_weight) * MLM + kd_weight * KL (default: 0.5 "
                                        "with a teacher that has an MLM head, 0 without one).")
    kd_temperature: float = arg(1.0, "Softmax temperature of the distillation KL.")
    teacher_precision: str = arg("auto", "Precision of the teacher's forward (inference mode, targets only): auto "
                                         "(bf16 where the device has bf16 kernels, else training), bf16 or training.",
                                 choices=list(PRECISIONS))
    kd_hidden_weight: float = arg(0.0, "Hidden-state KD: weight of the MSE between the student's sublayer outputs "
                                       "and the teacher's hidden states (a learned projection when widths differ).")
    kd_layer_map: str | None = arg(None, "Hidden-state pairs 'student:teacher,...' as indices into hidden_states "
                                         "(0 = embeddings). Default: student 2k <-> teacher k (sublayer 2j+1 <-> "
                                         "layer j+1), spread evenly when the depths are not 2:1. 'uniform': the "
                                         "output of each non-empty layer (sublayers 2j, 2j+1, not both identity) <-> "
                                         "teacher layers spread evenly, the last with the last (TinyBERT's uniform "
                                         "map; in a supernet, each sampled child's own).")
    objective: str = arg("mlm", "Pre-training objective: mlm (masked-LM through the model's head) or electra "
                                "(ELECTRA's replaced-token detection with a small generator; with --sampler magic-at, "
                                "E-MAGIC-AT).", choices=list(OBJECTIVES))
    rtd_weight: float = arg(50.0, "--objective electra: weight of the replaced-token detection loss (ELECTRA's "
                                  "lambda; the generator's masked-LM loss has weight 1).")
    generator_arch: str | None = arg(None, "--objective electra: the generator's layers (op names; default: every "
                                           "layer [heads:<h/4>, ffn:<I/4>], a quarter of the widest attention and "
                                           "FFN, the model's depth).")
    mlm_weight: float | None = arg(None, "Weight of the masked-LM loss through the student's (fresh) MLM head "
                                         "(default: 1 - kd_weight); 0 drops it: the student learns from the "
                                         "teacher's targets alone.")
    kd_attention_weight: float = arg(0.0, "Self-attention relation KD (MiniLMv2): KL between the teacher's and the "
                                          "student's query-query, key-key and value-value relations of one layer "
                                          "each, split into --kd_relation_heads heads (any head counts).")
    kd_relation_heads: int | None = arg(None, "Relation heads of --kd_attention_weight (default: the teacher's "
                                              "attention heads); must divide both models' attention widths.")
    kd_attention_layer: int | None = arg(None, "The teacher layer (0-based) whose relations are distilled into the "
                                               "student's last attention sublayer (default: the teacher's last).")
    kd_embedding_weight: float = arg(0.0, "Sentence-embedding KD: the student's mean-pooled last hidden state "
                                          "against the teacher's (sentence-transformers' distillation).")
    kd_embedding_loss: str = arg("cosine", "Loss of --kd_embedding_weight: cosine (1 - cosine similarity) or mse.",
                                 choices=list(EMBEDDING_LOSSES))
    alignment: str | None = arg(None, "MAGIC-A/AT alignment with the anchor: 'paper' (per-layer hidden states only, "
                                      "logits weight 0) or 'full' (hidden states and predictions). Default: full "
                                      "unless --align_logits_weight is 0. The weights below set the terms' sizes.",
                                choices=list(ALIGNMENTS))
    align_hidden_weight: float | None = arg(None, "MAGIC-A/AT: weight of the per-layer hidden-state MSE to the "
                                                  "anchor (default 0.1).")
    align_logits_weight: float | None = arg(None, "MAGIC-A/AT: weight of the T^2-scaled KL to the anchor's "
                                                  "predictions (default 0.1; 0 with --alignment paper).")
    align_temperature: float = arg(1.0, "MAGIC-A/AT: temperature of that KL.")
    anchor_precision: str = arg("auto", "MAGIC-A/AT: precision of the anchor's forward, which computes the alignment "
                                        "targets: auto (bf16 where the device has bf16 kernels, else training), bf16 "
                                        "or training (as the child). bf16 halves the anchor's cost on CPU.",
                                choices=list(PRECISIONS))

    def alignment_weights(self) -> tuple[float, float]:
        """``(hidden, logits)`` weights: ``alignment`` names which terms are on, the weights their sizes. An unset
        weight gets the setting's value; one that contradicts the setting (0 for a term it needs, logits > 0 under
        paper) is refused."""
        at_least(0, align_hidden_weight=self.align_hidden_weight, align_logits_weight=self.align_logits_weight)
        needs = {"paper": {"align_hidden_weight": True, "align_logits_weight": False},
                 "full": {"align_hidden_weight": True, "align_logits_weight": True}}.get(self.alignment, {})
        wrong = [f"`{name}` {getattr(self, name)}" for name, on in needs.items()
                 if getattr(self, name) is not None and (getattr(self, name) > 0) != on]
        if wrong:
            raise InputError(f"`alignment` {self.alignment} contradicts {' and '.join(wrong)}: {self.alignment} "
                             f"means {ALIGNMENTS[self.alignment]}; drop the weight or choose the other setting.")
        hidden = DEFAULT_ALIGN_WEIGHT if self.align_hidden_weight is None else self.align_hidden_weight
        logits = self.align_logits_weight
        if logits is None:  # ELECTRA's discriminator has no masked-LM predictions to align
            logits = 0.0 if self.alignment == "paper" or self.objective == "electra" else DEFAULT_ALIGN_WEIGHT
        return hidden, logits


@dataclass
class StrategyArguments:
    sampler: str | None = arg(None, "Child sampler strategy (default spos).", choices=SAMPLER_CHOICES)
    arch: str | None = arg(None, "Train this single fixed architecture instead of the supernet: an arch.json file, "
                                 "a JSON list, or op names separated by spaces/commas.")
    max_params: float | None = arg(None, "Sample only children with at most this many parameters (e.g. 60e6).")
    min_params: float | None = arg(None, "... and at least this many.")
    max_encoder_params: float | None = arg(None, "Sample only children whose layers (no embeddings, pooler or head) "
                                                 "have at most this many parameters.")
    min_encoder_params: float | None = arg(None, "... and at least this many.")
    anchor_arch: str | None = arg(None, "MAGIC-A/AT initial anchor (same forms as --arch). Default: the BERT-like "
                                        "child [largest mha, largest ffn] * L/2, shrunk into the budget.")
    anchor_eval_steps: int = arg(50, "MAGIC-A/AT: compare the current child with the anchor every N steps.")
    anchor_eval_file: str | None = arg(None, "MAGIC-A/AT: held-out text of the anchor checks (same formats as "
                                             "--validation_file). Without it the checks use the first validation "
                                             "blocks, which the final score (and search and analysis, by default) "
                                             "then skip.")
    anchor_eval_samples: int = arg(256, "MAGIC-A/AT: blocks of the anchor checks: the first N of --anchor_eval_file, "
                                        "or of the validation set (at most half of it, at least 2; the rest "
                                        "scores the final model).")
    anchor_swap_margin: float = arg(DEFAULT_SWAP_MARGIN, "MAGIC-A/AT: a child replaces the anchor when its loss on "
                                                         "the anchor blocks is lower by this many paired standard "
                                                         "errors (0: any lower loss).")

    @property
    def strategy_name(self) -> str:
        """The registered strategy this run uses: ``fixed`` with ``arch``, else the sampler (default spos)."""
        return "fixed" if self.arch is not None else (self.sampler or "spos")


@dataclass
class OptimizationArguments:
    per_device_train_batch_size: int = arg(16, "Batch size per device for training.")
    per_device_eval_batch_size: int = arg(32, "Batch size per device for evaluation.")
    learning_rate: float = arg(1e-3, "Peak learning rate (AdamW); the 60m / 110m spaces want less (e.g. 2e-4).")
    weight_decay: float = arg(0.01, "AdamW weight decay (not on biases and LayerNorm weights).")
    max_grad_norm: float = arg(1.0, "Gradient clipping (0 disables).")
    num_train_epochs: int = arg(3, "Epochs, when --max_train_steps is not given.")
    max_train_steps: int | None = arg(None, "Total optimizer steps (overrides --num_train_epochs).")
    gradient_accumulation_steps: int = arg(1, "Micro-batches per optimizer step (one child per optimizer step).")
    lr_scheduler_type: SchedulerType = arg("linear", "Learning-rate schedule.")
    num_warmup_steps: int = arg(0, "Warm-up steps (0: --warmup_ratio of the steps).")
    warmup_ratio: float = arg(0.06, "Warm-up as a fraction of the steps, when --num_warmup_steps is 0.")


@dataclass
class RunArguments:
    seed: int = arg(42, "Seed of initialisation, data order, masking and the child sequence.")
    output_dir: str | None = arg(None, "Where the model, tokenizer, logs and checkpoints go (required).")
    overwrite_output_dir: bool = arg(False, "Start afresh in a non-empty --output_dir (the old folder is moved "
                                            "aside and deleted once the new run succeeds).")
    checkpointing_steps: str | None = arg(None, "Save the training state every N steps, or 'epoch'.")
    checkpoints_total_limit: int | None = arg(None, "Keep only the newest N checkpoints.")
    resume_from_checkpoint: str | None = arg(None, "'latest' (newest checkpoint in --output_dir) or a checkpoint "
                                                   "folder.")
    logging_steps: int = arg(10, "Log to trackers every N steps (train_log.jsonl has every step).")
    probe_interference_steps: int = arg(0, "Supernets: every N steps, log how steps t-1 and t interfere: the cosine "
                                           "of their gradients on shared ops and how much step t raises child "
                                           "t-1's loss on the first held-out batch (0: off; training unchanged).")
    with_tracking: bool = arg(False, "Log to experiment trackers.")
    report_to: str = arg("all", "Trackers: 'all', or a comma-separated list (tensorboard, wandb, ...).")


GROUPS = (DataArguments, ModelArguments, LossArguments, StrategyArguments, OptimizationArguments, RunArguments)


@dataclass
class PretrainArguments(TakesStudentRecipe, ArgumentGroups, RunArguments, OptimizationArguments, StrategyArguments,
                        LossArguments, ModelArguments, DataArguments):
    """Every pre-training option; ``group(DataArguments)`` etc. give a phase its own part."""

    recipe_command = "pretrain"

    @property
    def is_supernet(self) -> bool:
        return self.arch is None

    def check(self) -> None:
        """Every cheap check of the values, in one place (files and checkpoints are checked where they load)."""
        if self.output_dir is None:
            raise InputError("`output_dir` is required.")
        if self.preset is None and self.config_name is None and self.init_from_bert is None:
            self.preset = "tiny"  # the default space (and what checkpoints of earlier runs recorded)
        if self.inherit not in INHERIT_METHODS:
            raise InputError(f"`inherit` {self.inherit!r} is not a method; choose one of {list(INHERIT_METHODS)}.")
        check_budget_order("max_encoder_params", self.max_encoder_params, "min_encoder_params",
                           self.min_encoder_params)
        if self.dataset_name is not None and self.train_file is not None:
            raise InputError("Pass either `dataset_name` or `train_file`, not both.")
        if self.validation_file is not None and self.train_file is None and not self.streaming:
            raise InputError("`validation_file` needs `train_file`.")
        self._check_streaming()
        if self.arch is not None and (self.sampler is not None or self.anchor_arch is not None):
            raise InputError("`arch` trains one fixed architecture; `sampler` and `anchor_arch` apply to supernets "
                             "only.")
        strategy = STRATEGIES.get(self.strategy_name)
        if strategy is None or self.sampler == "fixed":
            raise InputError(f"Unknown `sampler` {self.sampler!r}; allowed: "
                             f"{[name for name in STRATEGIES if name != 'fixed']}.")
        at_least(0, probe_interference_steps=self.probe_interference_steps)
        if self.probe_interference_steps and self.arch is not None:
            raise InputError("`probe_interference_steps` compares consecutive children of a supernet; a fixed `arch` "
                             "trains one child (drop one of them).")
        for name in ("anchor_arch", "anchor_eval_file", "alignment"):
            if getattr(self, name) is not None and not strategy.uses_anchor:
                raise InputError(f"`{name}` needs `sampler` magic-a or magic-at (got {self.strategy_name}).")
        self.align_hidden_weight, self.align_logits_weight = self.alignment_weights()
        at_least(1, per_device_train_batch_size=self.per_device_train_batch_size,
                 per_device_eval_batch_size=self.per_device_eval_batch_size,
                 gradient_accumulation_steps=self.gradient_accumulation_steps,
                 anchor_eval_steps=self.anchor_eval_steps,
                 logging_steps=self.logging_steps, num_train_epochs=self.num_train_epochs,
                 max_train_steps=self.max_train_steps, max_eval_samples=self.max_eval_samples,
                 checkpoints_total_limit=self.checkpoints_total_limit, synthetic_documents=self.synthetic_documents)
        self._check_validation_split()
        positive(learning_rate=self.learning_rate, kd_temperature=self.kd_temperature,
                 align_temperature=self.align_temperature)
        at_least(8, max_seq_length=self.max_seq_length)
        check_seed(self.seed)
        check_report_to(self.report_to)
        check_precision(self.anchor_precision, "anchor_precision")
        check_precision(self.teacher_precision, "teacher_precision")
        at_least(2, anchor_eval_samples=self.anchor_eval_samples)  # a paired standard error needs 2 blocks
        at_least(0, anchor_swap_margin=self.anchor_swap_margin)
        self._check_vocab_size()
        in_range("mlm_probability", self.mlm_probability, 0, 1, "()")
        if self.kd_weight is not None:
            in_range("kd_weight", self.kd_weight, 0, 1)
        self._check_distillation()
        self._check_objective()
        in_range("warmup_ratio", self.warmup_ratio, 0, 1, "[)")
        at_least(0, num_warmup_steps=self.num_warmup_steps, weight_decay=self.weight_decay,
                 max_grad_norm=self.max_grad_norm)
        if self.checkpointing_steps is not None and self.checkpointing_steps != "epoch" and not (
                str(self.checkpointing_steps).isdigit() and int(self.checkpointing_steps) > 0):
            raise InputError(f"`checkpointing_steps` must be a positive integer or 'epoch', got "
                             f"{self.checkpointing_steps!r}.")

    def _check_validation_split(self) -> None:
        """A percentage in (0, 100), and another than the default only where it holds text out."""
        in_range("validation_split_percentage", self.validation_split_percentage, 0, 100, "()")
        if self.validation_split_percentage == DEFAULT_VALIDATION_SPLIT:
            return
        if self.validation_file is not None:
            raise InputError("`validation_split_percentage` holds out part of the training data; `validation_file` "
                             "is the held-out text here: drop one of them.")
        if self.train_file is None and self.dataset_name is None:
            raise InputError("`validation_split_percentage` holds out part of `train_file` / `dataset_name`; the "
                             "embedded synthetic corpus holds out documents of its own: drop it.")

    def _check_vocab_size(self) -> None:
        """``vocab_size`` sizes the tokenizer trained here: more than the special tokens, at most
        :data:`MAX_VOCAB_SIZE`, and not with a tokenizer of its own."""
        if self.vocab_size is None:
            return
        if self.vocab_size <= len(SPECIAL_TOKENS):
            raise InputError(f"`vocab_size` must exceed the {len(SPECIAL_TOKENS)} special tokens, got "
                             f"{self.vocab_size}.")
        at_most(MAX_VOCAB_SIZE, vocab_size=self.vocab_size)
        if self.tokenizer_name is not None:
            raise InputError("`vocab_size` sizes the tokenizer trained on the training text; `tokenizer_name` "
                             f"{self.tokenizer_name!r} brings its own vocabulary: drop `vocab_size`.")

    def _check_objective(self) -> None:
        """ELECTRA's discriminator predicts replaced tokens, not masked ones: the terms that read its masked-LM
        predictions (masked-LM, logits KD, logits alignment) do not apply."""
        if self.objective not in OBJECTIVES:
            raise InputError(f"`objective` {self.objective!r} is not an objective; choose one of {list(OBJECTIVES)}.")
        if self.objective != "electra":
            given = [name for name, default in (("rtd_weight", 50.0), ("generator_arch", None))
                     if getattr(self, name) != default]
            if given:
                raise InputError(f"{', '.join(f'`{n}`' for n in given)} apply with `objective` electra only.")
            return
        positive(rtd_weight=self.rtd_weight)
        clashes = [f"`{name}` {getattr(self, name)}" for name in ("mlm_weight", "kd_weight", "align_logits_weight")
                   if getattr(self, name) not in (None, 0)] + (["`alignment` full"] if self.alignment == "full" else [])
        if clashes:
            raise InputError(f"`objective` electra trains the model to detect replaced tokens, so it has no masked-LM "
                             f"predictions for {', '.join(clashes)}; drop them (alignment with an anchor is on "
                             "hidden states, as the paper's).")

    def _check_distillation(self) -> None:
        at_least(0, kd_hidden_weight=self.kd_hidden_weight, kd_attention_weight=self.kd_attention_weight,
                 kd_embedding_weight=self.kd_embedding_weight, mlm_weight=self.mlm_weight,
                 kd_attention_layer=self.kd_attention_layer)
        at_least(1, kd_relation_heads=self.kd_relation_heads)
        if self.kd_embedding_loss not in EMBEDDING_LOSSES:
            raise InputError(f"`kd_embedding_loss` {self.kd_embedding_loss!r} is not a loss; choose one of "
                             f"{list(EMBEDDING_LOSSES)}.")
        given = [name for name in ("kd_hidden_weight", "kd_attention_weight", "kd_embedding_weight")
                 if getattr(self, name) > 0]
        given += [name for name in ("kd_layer_map", "kd_relation_heads", "kd_attention_layer")
                  if getattr(self, name) is not None]
        if self.teacher_name_or_path is None and given:
            raise InputError(f"{', '.join(f'`{n}`' for n in given)} distil a teacher: give `teacher_name_or_path`.")
        if self.mlm_weight == 0 and self.teacher_name_or_path is None:
            raise InputError("`mlm_weight` 0 drops the masked-LM loss, and without `teacher_name_or_path` nothing "
                             "else would be learned; give a teacher and a `kd_*_weight`, or a positive `mlm_weight`.")

    def _check_streaming(self) -> None:
        """A stream has no length: steps must be given, epochs cannot be counted and held-out text must exist."""
        if not self.streaming:
            if self.held_out_documents is not None:
                raise InputError("`held_out_documents` applies with `streaming` only (without it, "
                                 "`validation_split_percentage` holds out part of the training data).")
            return
        if self.dataset_name is None and self.train_file is None:
            raise InputError("`streaming` needs `dataset_name` or `train_file` (the embedded synthetic corpus is "
                             "generated in memory, not streamed).")
        if self.max_train_steps is None:
            raise InputError("`streaming` needs `max_train_steps` (a stream has no length to count epochs in).")
        if self.checkpointing_steps == "epoch":
            raise InputError("`checkpointing_steps` 'epoch' does not apply with `streaming`; pass a number of steps.")
        if self.preprocessing_num_workers is not None:
            raise InputError("`preprocessing_num_workers` does not apply with `streaming` (each process tokenises "
                             "its share lazily).")
        if self.validation_file is not None and self.held_out_documents is not None:
            raise InputError("Pass either `validation_file` or `held_out_documents`, not both.")
        if self.train_file is not None and self.validation_file is None and self.held_out_documents is None:
            raise InputError("`streaming` needs held-out text: `validation_file`, or `held_out_documents` N (the "
                             "first N documents of the stream, which training skips).")
        at_least(1, shuffle_buffer_size=self.shuffle_buffer_size, held_out_documents=self.held_out_documents,
                 tokenizer_train_documents=self.tokenizer_train_documents)


def parse_pretrain_args(argv: list[str] | None = None) -> PretrainArguments:
    """Parse the command line (and ``--config FILE``; the command line wins)."""
    return parse_one(PretrainArguments, argv, "Pre-train a MagicBert supernet or a fixed arch.")


__all__ = ["ADDED_LOSS_DEFAULTS", "ALIGNMENTS", "EMBEDDING_LOSSES", "GROUPS", "MAX_VOCAB_SIZE", "OBJECTIVES",
           "PRECISIONS",
           "DataArguments", "LossArguments", "ModelArguments", "OptimizationArguments", "PretrainArguments",
           "RunArguments", "StrategyArguments", "check_precision", "parse_pretrain_args"]
