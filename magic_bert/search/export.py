"""Export a supernet child as a standard HF checkpoint with a model card (``recipes/export.py`` is a thin CLI).

The checkpoint is written to a temporary folder next to ``output_dir`` and renamed into place when complete:
``config.json`` (with the arch), ``model.safetensors``, the tokenizer, the modeling code with a complete ``auto_map``
(``trust_remote_code`` loading), and ``README.md`` rendered from the packaged
``search/templates/model_card.md``. ``format="bert"``
writes the plain transformers ``BertFor*`` model of the head instead (BERT-shaped archs only);
``format="sentence-transformers"`` writes the encoder with mean pooling as a folder ``SentenceTransformer(path)`` loads
(:mod:`magic_bert.sentence_export`; a plain ``BertModel`` inside when the arch is BERT-shaped).

The tokenizer is saved as the stock class it is (``tokenizer_class`` in ``tokenizer_config.json``) with its
``model_max_length`` cut to the model's ``max_position_embeddings``, so ``truncation=True`` (pipelines included)
never feeds the model more positions than it has.
"""

from __future__ import annotations

import importlib.resources
import json
import warnings
from pathlib import Path

import torch

from ..bert_interop import to_bert
from ..data import fit_tokenizer_to_model
from ..errors import InputError, invalid_value, load_user_file
from ..glue.metrics import task_score
from ..glue.tasks import TASKS as GLUE_TASK_RECORDS
from ..io_utils import check_output_dir, publish_dir
from ..modeling_magic_bert import (
    MagicBertForMaskedLM,
    MagicBertForSequenceClassification,
    MagicBertSupernetForMaskedLM,
)
from ..modeling_magic_bert_heads import (
    MagicBertForMultipleChoice,
    MagicBertForQuestionAnswering,
    MagicBertForTokenClassification,
)
from ..search_space import load_arch
from ..sentence_export import require_sentence_transformers, sentence_encoder, write_sentence_transformer
from ..supernet_inputs import check_supernet_dir, load_supernet, load_tokenizer

# --head -> (model class, Hub pipeline tag, what the card says the head is)
HEAD_MODELS = {
    "masked_lm": (MagicBertForMaskedLM, "fill-mask", "plus the masked-LM head"),
    "sequence_classification": (MagicBertForSequenceClassification, "text-classification", "plus the classifier"),
    "token_classification": (MagicBertForTokenClassification, "token-classification",
                             "plus a token classifier"),
    "question_answering": (MagicBertForQuestionAnswering, "question-answering", "plus a span (start / end) head"),
    "multiple_choice": (MagicBertForMultipleChoice, "multiple-choice", "plus a multiple-choice scorer"),
}
HEADS = tuple(HEAD_MODELS)
# Heads whose output size is --num_labels (question answering has two outputs, multiple choice one).
LABELLED_HEADS = ("sequence_classification", "token_classification")
INITS = ("inherit", "scratch")
# The most labels a classifier head is exported with: its weights are num_labels x hidden_size, so 1e11 would need
# terabytes (and was killed for memory); no task in use has more than a few tens of thousands of classes.
MAX_NUM_LABELS = 100_000
DEFAULT_NUM_LABELS = 2
# The licence ids the Hub's model cards take (https://huggingface.co/docs/hub/repositories-licenses); "other" for any
# licence not among them.
HUB_LICENSES = frozenset({
    "apache-2.0", "mit", "openrail", "bigscience-openrail-m", "creativeml-openrail-m", "bigscience-bloom-rail-1.0",
    "bigcode-openrail-m", "afl-3.0", "artistic-2.0", "bsl-1.0", "bsd", "bsd-2-clause", "bsd-3-clause",
    "bsd-3-clause-clear", "c-uda", "cc", "cc0-1.0", "cc-by-2.0", "cc-by-2.5", "cc-by-3.0", "cc-by-4.0",
    "cc-by-sa-3.0", "cc-by-sa-4.0", "cc-by-nc-2.0", "cc-by-nc-3.0", "cc-by-nc-4.0", "cc-by-nd-4.0", "cc-by-nc-nd-3.0",
    "cc-by-nc-nd-4.0", "cc-by-nc-sa-2.0", "cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0", "cdla-sharing-1.0",
    "cdla-permissive-1.0", "cdla-permissive-2.0", "wtfpl", "ecl-2.0", "epl-1.0", "epl-2.0", "etalab-2.0", "eupl-1.1",
    "eupl-1.2", "agpl-3.0", "gfdl", "gpl", "gpl-2.0", "gpl-3.0", "lgpl", "lgpl-2.1", "lgpl-3.0", "isc", "h-research",
    "intel-research", "lppl-1.3c", "ms-pl", "apple-ascl", "apple-amlr", "mpl-2.0", "odc-by", "odbl", "openrail++",
    "osl-3.0", "postgresql", "ofl-1.1", "ncsa", "unlicense", "zlib", "pddl", "lgpl-lr", "deepfloyd-if-license",
    "fair-noncommercial-research-license", "llama2", "llama3", "llama3.1", "llama3.2", "llama3.3", "llama4", "gemma",
    "unknown", "other"
})
SENTENCE_FORMAT = "sentence-transformers"
FORMATS = ("magic_bert", "bert", SENTENCE_FORMAT)
# Package data (in the wheel): the card every export renders.
TEMPLATE = importlib.resources.files("magic_bert.search") / "templates" / "model_card.md"
# GLUE's paper order and the one number per task the tables report (from the GLUE task records).
GLUE_TASKS = {name: task.main_metric for name, task in GLUE_TASK_RECORDS.items()}


def load_glue_results(path: str | Path) -> dict[str, dict[str, float]]:
    """``{task: {metric: value}}`` from a JSON file: that mapping itself (GLUE fine-tuning's ``eval_results.json``),
    GLUE fine-tuning's ``all_results.json`` (its ``eval_results``), or flat ``eval_<task>_<metric>`` keys. Only the
    metrics a task's record names are kept (not a run's ``learning_rate`` or ``epoch``).

    Values may be fractions (0.88) or percentages (88.0); they are kept as given.
    """
    file = Path(path)
    if not file.is_file():
        raise InputError(f"`glue_results` {str(path)!r} does not exist.")
    data = load_user_file(f"`glue_results` {str(path)!r}", lambda: json.loads(file.read_text()))
    if isinstance(data, dict) and isinstance(data.get("eval_results"), dict):
        data = data["eval_results"]
    results: dict[str, dict[str, float]] = {}
    for key, value in data.items() if isinstance(data, dict) else ():
        if isinstance(value, dict) and key in GLUE_TASKS:
            metrics = GLUE_TASK_RECORDS[key].metric_keys
            kept = {m: float(v) for m, v in value.items() if m in metrics and isinstance(v, int | float)}
            if kept:
                results[key] = kept
        elif isinstance(value, int | float) and key.startswith("eval_"):
            task, _, metric = key[len("eval_"):].partition("_")
            if task in GLUE_TASKS and metric in GLUE_TASK_RECORDS[task].metric_keys:
                results.setdefault(task, {})[metric] = float(value)
    if not results:
        raise InputError(f"`glue_results` {str(path)!r} holds no GLUE results: expected {{task: {{metric: value}}}} "
                         f"with tasks among {sorted(GLUE_TASKS)}.")
    return results


def check_head_options(head: str, num_labels: int | None, license: str) -> None:
    """``num_labels`` only with a head that has labels, and at most :data:`MAX_NUM_LABELS`; ``license`` a Hub licence
    id (:data:`HUB_LICENSES`)."""
    if num_labels is not None and head not in LABELLED_HEADS:
        raise InputError(f"`num_labels` {num_labels} sizes the classifier of `head` {' or '.join(LABELLED_HEADS)}; "
                         f"`head` {head!r} has none: drop `num_labels`.")
    if num_labels is not None and not 1 <= num_labels <= MAX_NUM_LABELS:
        raise InputError(f"`num_labels` must be from 1 to {MAX_NUM_LABELS:,}, got {num_labels}.")
    if license not in HUB_LICENSES:
        raise InputError(f"`license` {license!r} is not a Hub licence id (e.g. apache-2.0, mit, cc-by-4.0; 'other' "
                         "for any other licence; the list: https://huggingface.co/docs/hub/repositories-licenses).")


def _build_model(supernet: MagicBertSupernetForMaskedLM, arch: list[str], head: str, init: str,
                 num_labels: int | None, seed: int):
    config = supernet.config.with_arch(arch)
    if head == "masked_lm" and init == "inherit":
        return supernet.export(arch)
    if head in LABELLED_HEADS:
        config.num_labels = num_labels or DEFAULT_NUM_LABELS
    torch.manual_seed(seed)
    model = HEAD_MODELS[head][0](config)
    if init == "inherit":
        # The encoder and embeddings come from the supernet; the pooler and the head start fresh.
        encoder = {k: v for k, v in supernet.export(arch).state_dict().items() if k.startswith("bert.")}
        missing, unexpected = model.load_state_dict(encoder, strict=False)
        assert not unexpected and all(not k.startswith("bert.") or k.startswith("bert.pooler") for k in missing), (
            missing, unexpected)
    return model


def default_base_model(space) -> str | None:
    """The BERT a supernet was built from (``--init_from_bert``), when that was a Hub id rather than a local path."""
    source = (getattr(space.config, "inherited", None) or {}).get("bert")
    return source if source and not Path(source).exists() and "/" in source else None


def _card(model, arch, space, *, head: str, init: str, fmt: str, supernet_dir: Path, search_info: dict | None,
          glue: dict | None, model_name: str, provenance: dict):
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    training = _read_json(supernet_dir / "all_results.json")
    sampler = (training or {}).get("sampler")
    electra = (training or {}).get("objective") == "electra"  # E-MAGIC-AT and the like: the MLM head is untrained
    sampler_text = (f"supernet trained with {'E-' if electra else ''}{sampler.upper()}" if sampler
                    else "supernet training")
    score = ("replaced-token detection (ELECTRA: the encoder learned to tell the generator's samples from the "
             "original tokens; its masked-LM head was not trained, fine-tuning replaces it) loss"
             if electra else "MLM loss")
    training_text = ("no training record found next to the supernet" if training is None else
                     f"{training.get('sampler') or 'fixed arch'}, {training.get('train_steps')} steps, "
                     f"{training.get('train_tokens'):,} tokens; held-out {score} {training.get('eval_loss'):.4f} "
                     f"(accuracy {training.get('eval_accuracy'):.4f}) for arch {training.get('eval_arch')}")
    search_text = ("the arch was given directly" if not search_info else
                   f"{search_info.get('strategy')} search over {search_info.get('num_evaluated')} children scored "
                   f"by {_search_score_text(search_info)} with inherited weights; constraints "
                   f"{search_info.get('constraints')}")
    eval_results = []
    glue_table = ""
    if glue:
        for task, metrics in glue.items():
            for metric, value in metrics.items():
                eval_results.append(EvalResult(task_type="text-classification", dataset_type="nyu-mll/glue",
                                               dataset_name=f"GLUE {task.upper()}", dataset_config=task,
                                               dataset_split="validation", metric_type=metric, metric_value=value))
        glue_table = _glue_table(glue)
    seq_len = 128
    texts = _format_texts(head, fmt, model_name, remote_code=model.config.model_type != "bert")
    card_data = ModelCardData(library_name=texts.pop("library_name"), language="en",
                              tags=["magic_bert", "neural-architecture-search", "bert", texts["pipeline_tag"],
                                    *texts.pop("extra_tags")],
                              pipeline_tag=texts.pop("pipeline_tag"), model_name=model_name,
                              eval_results=eval_results or None, **provenance)
    return ModelCard.from_template(
        card_data, template_str=TEMPLATE.read_text(encoding="utf-8"), model_name=model_name, sampler_text=sampler_text,
        arch=arch, num_layers=len(arch), candidate_ops=space.config.candidate_ops, hidden_size=space.hidden_size,
        params=f"{space.num_params(arch):,}", flops=f"{space.flops(arch, seq_len):,}", seq_len=seq_len,
        init_text="inherited from the supernet" if init == "inherit" else "freshly initialised (train from scratch)",
        training_text=training_text, search_text=search_text, glue_table=glue_table,
        inherited_text=_inherited_text(getattr(space.config, "inherited", None), arch),
        data_text="the supernet's pre-training text (see its train_log.jsonl and all_results.json)", **texts,
    )


REMOTE_CODE_TEXT = ("Loading needs `import magic_bert` or `trust_remote_code=True`; the latter executes this folder's "
                    "`.py` files (the modeling code saved with the weights): read them, or pin a `revision` you trust.")
PLAIN_BERT_TEXT = "A stock transformers BERT checkpoint: no custom code."


def _format_texts(head: str, fmt: str, model_name: str, remote_code: bool) -> dict:
    """What the card says of the folder's format: library, pipeline tag, head, usage and how it loads."""
    loading_text = REMOTE_CODE_TEXT if remote_code else PLAIN_BERT_TEXT
    opt_in = "import magic_bert  # or: trust_remote_code=True without it\n" if remote_code else ""
    if fmt == SENTENCE_FORMAT:
        return {"library_name": "sentence-transformers", "pipeline_tag": "sentence-similarity",
                "extra_tags": ["sentence-transformers", "feature-extraction"], "head": "mean pooling",
                "head_text": "sentence embeddings by mean pooling over the real tokens",
                "format_text": "sentence-transformers around " + (
                    "magic_bert (remote code included)" if remote_code else "a plain transformers BERT"),
                "loading_text": loading_text,
                "usage": f"{opt_in}from sentence_transformers import SentenceTransformer\n"
                         f"model = SentenceTransformer(\"{model_name}\")\n"
                         "embeddings = model.encode([\"A first sentence.\", \"A second one.\"])"}
    model_class, pipeline_tag, head_text = HEAD_MODELS[head]
    auto_class = "AutoModel" + model_class.__name__.removeprefix("MagicBert").removeprefix("Model")
    usage = (f"{opt_in}from transformers import {auto_class}, AutoTokenizer\n"
             f"model = {auto_class}.from_pretrained(\"{model_name}\")" if remote_code
             else f"from transformers import AutoModel\nmodel = AutoModel.from_pretrained(\"{model_name}\")  "
                  "# a plain BERT")
    if remote_code:  # AutoTokenizer reads config.json first, whose auto_map needs the same opt-in
        usage += (f"\ntokenizer = AutoTokenizer.from_pretrained(\"{model_name}\")  "
                  "# trust_remote_code=True too without magic_bert")
    return {"library_name": "transformers", "pipeline_tag": pipeline_tag, "extra_tags": [], "head": head,
            "head_text": head_text, "usage": usage, "loading_text": loading_text,
            "format_text": "magic_bert (remote code included)" if remote_code else "plain transformers BERT"}


def _search_score_text(info: dict) -> str:
    """How search ranked the arch, and its score: held-out MLM loss and accuracy, or a proxy (``distill``, ...)."""
    metric = info.get("metric")
    if metric in (None, "loss", "accuracy"):
        return (f"held-out MLM {metric} (this arch: loss {info.get('eval_loss', float('nan')):.4f}, accuracy "
                f"{info.get('eval_accuracy', float('nan')):.4f})")
    return f"the {metric} proxy (this arch: {float(info.get('score', float('nan'))):.4f})"


def _inherited_text(inherited: dict | None, arch: list[str]) -> str:
    """What the supernet's ops of this arch started from (``--init_from_bert``), or ``""``."""
    if not isinstance(inherited, dict) or not isinstance(inherited.get("ops"), dict):
        return ""
    ops = [op for op in dict.fromkeys(arch) if op in inherited["ops"]]
    source = f"BERT `{inherited['bert']}`" if inherited.get("bert") else "a BERT"
    return (f"every candidate op of the supernet started from {source} (sublayers 2j and 2j+1 from its layer j; "
            f"FFN neurons ranked by {inherited.get('method')}); this arch's ops: "
            + "; ".join(f"`{op}`: {inherited['ops'][op]}" for op in ops))


def _glue_table(glue: dict[str, dict[str, float]]) -> str:
    """The tasks given, in the paper's order under its column names, each by its record's main metric (MNLI: of
    the matched dev set)."""
    tasks = [t for t in GLUE_TASKS if t in glue]
    scores = []
    for t in tasks:
        try:
            scores.append(task_score(GLUE_TASK_RECORDS[t], glue[t]))
        except KeyError:  # not its main metric: the first one given
            scores.append(next(iter(glue[t].values())))
    header = "| " + " | ".join(GLUE_TASK_RECORDS[t].column for t in tasks) + (" | AVG |" if len(tasks) > 1 else " |")
    rule = "|" + "---|" * (len(tasks) + (len(tasks) > 1))
    values = "| " + " | ".join(f"{s:.4g}" for s in scores) + (
        f" | {sum(scores) / len(scores):.4g} |" if len(tasks) > 1 else " |")
    return "\n".join([header, rule, values])


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _check_sentence_format(head: str) -> None:
    require_sentence_transformers(f"`format` {SENTENCE_FORMAT}")
    if head != "masked_lm":
        raise InputError(f"`format` {SENTENCE_FORMAT} exports the encoder with mean pooling, no head: leave `head` "
                         f"at masked_lm, got {head!r}.")


def export_checkpoint(supernet_dir: str | Path, arch, output_dir: str | Path, head: str = "masked_lm",
                      init: str = "inherit", format: str = "magic_bert", num_labels: int | None = None,
                      glue_results: str | Path | None = None, overwrite_output_dir: bool = False,
                      model_name: str | None = None, seed: int = 42, base_model: str | None = None,
                      license: str = "apache-2.0", datasets: list[str] | None = None) -> Path:
    """Write child ``arch`` of the supernet in ``supernet_dir`` as a checkpoint in ``output_dir``; returns it.

    ``arch`` is a list of op names, an ``arch.json`` path (from search) or a string of op names. Every input is
    checked before anything is written. ``num_labels`` (default 2) sizes a labelled head's classifier. ``base_model``
    (default: :func:`default_base_model`), ``license`` and ``datasets`` go into the card's metadata.
    """
    for name, value, allowed in (("head", head, HEADS), ("init", init, INITS), ("format", format, FORMATS)):
        if value not in allowed:
            raise InputError(f"`{name}` {value!r} is not allowed; choose one of {list(allowed)}.")
    check_head_options(head, num_labels, license)
    if format == SENTENCE_FORMAT:
        _check_sentence_format(head)
    supernet_dir = check_supernet_dir(supernet_dir)
    output = check_output_dir(output_dir, overwrite_output_dir)
    arch_file = Path(arch) if isinstance(arch, str | Path) and str(arch).endswith(".json") else None
    with invalid_value(f"`arch` {str(arch)!r}"):  # clear errors for a malformed file or list
        arch = load_arch(arch if arch_file is None else str(arch_file))
    search_info = _read_json(arch_file) if arch_file is not None else None
    search_info = search_info if isinstance(search_info, dict) else None
    glue = load_glue_results(glue_results) if glue_results is not None else None
    supernet = load_supernet(supernet_dir)
    if supernet.config.arch is not None:
        raise InputError(f"`supernet` {str(supernet_dir)!r} holds a fixed arch, not a supernet.")
    space = supernet.config.search_space
    with invalid_value("The `arch` does not belong to this supernet's search space"):
        arch = space.validate(arch)
    if format == "bert" and not supernet.config.with_arch(arch).is_bert_shaped:
        raise InputError(f"`format` bert needs a BERT-shaped arch [attention, ffn:<i>] * n (one inner size; "
                         f"attention mha:<H> or heads:<k> of one head size); got {arch}. Use `format` magic_bert.")
    tokenizer = load_tokenizer(supernet_dir, "supernet") if (supernet_dir / "tokenizer_config.json").is_file() \
        else None

    if format == SENTENCE_FORMAT and tokenizer is None:
        raise InputError(f"`format` {SENTENCE_FORMAT} needs a tokenizer: `supernet` {str(supernet_dir)!r} holds none "
                         "(no tokenizer_config.json).")

    model = _build_model(supernet, arch, head, init, num_labels, seed).eval()
    if format == "bert":
        small = model.num_parameters()
        model = to_bert(model)
        if model.num_parameters() != small:  # pruned heads: a stock BERT holds them as zero heads
            warnings.warn(f"`format` bert: a stock BERT has no pruned heads, so the heads this arch dropped are zero "
                          f"heads: {model.num_parameters():,} parameters instead of {small:,}, and as slow as the "
                          "unpruned layers; `format` magic_bert keeps the small model.", stacklevel=2)
    elif format == SENTENCE_FORMAT:
        model = sentence_encoder(model)
    model_name = model_name or output.name
    provenance = {"license": license, "base_model": base_model or default_base_model(space), "datasets": datasets}
    card = _card(model, arch, space, head=head, init=init, fmt=format, supernet_dir=supernet_dir,
                 search_info=search_info, glue=glue, model_name=model_name,
                 provenance={k: v for k, v in provenance.items() if v})

    if tokenizer is not None:
        fit_tokenizer_to_model(tokenizer, model.config)

    def write(staging: Path) -> None:
        if format == SENTENCE_FORMAT:
            write_sentence_transformer(staging, model, tokenizer, model_card=False)
        else:
            model.save_pretrained(staging)
            if tokenizer is not None:
                tokenizer.save_pretrained(staging)
        card.save(staging / "README.md")

    return publish_dir(output, write)


def push_to_hub(output_dir: str | Path, hub_model_id: str, hub_token: str | None = None, private: bool = False):
    """Upload an exported folder to the Hub (a model repo named ``hub_model_id``)."""
    from huggingface_hub import HfApi

    api = HfApi(token=hub_token)
    api.create_repo(hub_model_id, private=private, exist_ok=True)
    return api.upload_folder(folder_path=str(output_dir), repo_id=hub_model_id,
                             commit_message="Upload magic_bert export")


__all__ = ["FORMATS", "GLUE_TASKS", "HEADS", "HEAD_MODELS", "HUB_LICENSES", "INITS", "LABELLED_HEADS",
           "MAX_NUM_LABELS", "SENTENCE_FORMAT", "check_head_options", "export_checkpoint", "load_glue_results",
           "push_to_hub"]
