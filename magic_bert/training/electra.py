"""ELECTRA's replaced-token detection (Clark et al., 2020) as the pre-training objective of a supernet's children or
of a fixed arch (``--objective electra``; with the MAGIC-AT sampler this is the paper's E-MAGIC-AT).

A small generator fills the masked positions with tokens sampled from its own masked-LM predictions; the model being
trained (the discriminator) then sees the corrupted text and predicts, for every real token, whether it was
replaced. ``loss = generator masked-LM + rtd_weight · discriminator binary cross-entropy`` (ELECTRA's λ = 50).

As in ELECTRA the generator shares the discriminator's embeddings (token, position and token type: the embedding
module's output is the generator's input) and decodes with its token embeddings; it is narrower (by default every
layer ``[heads:<h/4>, ffn:<I/4>]``: a quarter of the widest attention's heads and of the widest FFN). A sample that
equals the original token counts as not replaced. The discriminator's masked-LM head is not trained (a run with
``--objective electra`` says so in its results); fine-tuning drops it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from transformers.models.bert.modeling_bert import BertPredictionHeadTransform
from transformers.models.electra.modeling_electra import ElectraDiscriminatorPredictions

from ..configuration_magic_bert import MagicBertConfig
from ..data import seed_from_keys
from ..errors import invalid_value, load_user_file
from ..io_utils import publish_dir
from ..modeling_magic_bert import MagicBertEncoder, MagicBertPreTrainedModel, encoder_masks
from ..op_specs import parse_op
from ..search_space import load_arch

GENERATOR_FOLDER = "electra_generator"  # in a run's output folder: the generator and detection head, for inspection
GENERATOR_FRACTION = 4  # the default generator keeps 1/4 of the widest attention's heads and FFN neurons


def default_generator_arch(config: MagicBertConfig) -> list[str]:
    """``[heads:<h/4>, ffn:<I/4>]`` per BERT layer of ``config`` (``h`` its widest attention's heads, ``I`` its widest
    FFN): ELECTRA's generator at a quarter of the discriminator's width, the same depth."""
    specs = [parse_op(op) for op in config.candidate_ops]
    heads = max((s.size for s in specs if s.kind in ("mha", "heads")), default=0)
    inner = max((s.size for s in specs if s.kind == "ffn"), default=4 * config.hidden_size)
    layer = ([f"heads:{max(1, heads // GENERATOR_FRACTION)}"] if heads else []) + \
        [f"ffn:{max(1, inner // GENERATOR_FRACTION)}"]
    depth = max(1, config.num_hidden_layers // 2)
    return (layer * depth)[:max(len(layer), config.num_hidden_layers)]


def generator_config(config: MagicBertConfig, arch: list[str]) -> MagicBertConfig:
    """The generator's config: the discriminator's dimensions and vocabulary, ``arch`` its layers; ``heads:<k>`` ops
    use the discriminator's head size (``attention_head_size``, else hidden size over its widest attention's heads)."""
    head_size = config.attention_head_size
    if head_size is None:
        heads = max((parse_op(op).size for op in config.candidate_ops if parse_op(op).kind in ("mha", "heads")),
                    default=1)
        head_size = config.hidden_size // heads
    fields = {**config.to_dict(), "candidate_ops": list(dict.fromkeys(arch)), "arch": list(arch),
              "num_hidden_layers": len(arch), "attention_head_size": head_size}
    for key in ("model_type", "auto_map", "transformers_version", "architectures", "inherited"):
        fields.pop(key, None)
    return MagicBertConfig(**fields)


def electra_generator_config(objective: str, generator_arch: str | None,
                             config: MagicBertConfig) -> MagicBertConfig | None:
    """The generator's config for ``--objective electra`` (None for another objective); a bad ``generator_arch`` is
    one :class:`~magic_bert.errors.InputError`, before anything is written."""
    if objective != "electra":
        return None
    with invalid_value(f"`generator_arch` {generator_arch!r}"):
        arch = default_generator_arch(config) if generator_arch is None else load_arch(generator_arch)
        generator = generator_config(config, arch)
        generator.search_space.validate(arch)
        return generator


def load_electra(supernet_dir: str | Path, device: torch.device | str = "cpu") -> ElectraObjective | None:
    """The generator and detection head a supernet was trained with (``electra_generator/`` in its folder, written
    by ``--objective electra`` at the end and in every checkpoint), or None for a masked-LM supernet. Search scores
    such a supernet's children by detection: its masked-LM head was never trained."""
    folder = Path(supernet_dir) / GENERATOR_FOLDER
    if not (folder / "generator.safetensors").is_file():
        return None

    def load() -> ElectraObjective:
        generator = ElectraGenerator(MagicBertConfig.from_pretrained(folder))
        generator.load_state_dict(load_file(folder / "generator.safetensors"))
        head = DiscriminatorHead(generator.config)
        head.load_state_dict(load_file(folder / "discriminator_head.safetensors"))
        return ElectraObjective(generator.to(device).eval(), head.to(device).eval(), rtd_weight=1.0)

    return load_user_file(f"`supernet` {str(supernet_dir)!r}: {GENERATOR_FOLDER}/", load)


class ElectraGenerator(MagicBertPreTrainedModel):
    """ELECTRA's generator: a fixed-arch MagicBert encoder over the discriminator's embedding output (no embeddings
    of its own) and BERT's prediction transform, decoding with the discriminator's token embeddings plus a bias."""

    def __init__(self, config: MagicBertConfig):
        super().__init__(config)
        self.encoder = MagicBertEncoder(config)
        self.transform = BertPredictionHeadTransform(config)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.post_init()

    def forward(self, embedding_output: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor,
                word_embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits at the labelled positions (``labels != -100``, row-major), ``(labelled, vocab)``, and their
        masked-LM loss."""
        ops = self.encoder.path()
        mask, padding_mask = encoder_masks(self.config, embedding_output, attention_mask, ops)
        hidden, _, _ = self.encoder(embedding_output, mask, padding_mask, ops=ops)
        labelled = labels != -100
        logits = F.linear(self.transform(hidden[labelled]), word_embeddings, self.bias)
        return logits, F.cross_entropy(logits.float(), labels[labelled])


class DiscriminatorHead(nn.Module):
    """ELECTRA's discriminator head (transformers' ``ElectraDiscriminatorPredictions``: dense, activation, one logit
    per token) over the trained model's last hidden state."""

    def __init__(self, config: MagicBertConfig):
        super().__init__()
        self.predictions = ElectraDiscriminatorPredictions(config)
        for linear in (self.predictions.dense, self.predictions.dense_prediction):
            nn.init.normal_(linear.weight, std=config.initializer_range)
            nn.init.zeros_(linear.bias)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.predictions(hidden_states)


def replace_masked(input_ids: torch.Tensor, labels: torch.Tensor, generator_logits: torch.Tensor,
                   rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The corrupted ids (each labelled position a token sampled from the generator's predictions there, no
    gradient; every other position its original token) and which tokens were replaced (a sample equal to the
    original is not)."""
    labelled = labels != -100
    probabilities = torch.softmax(generator_logits.detach().float(), dim=-1)
    sampled = torch.multinomial(probabilities, 1, generator=rng).squeeze(-1) if len(probabilities) else \
        labels[labelled]
    corrupted = input_ids.clone()  # unlabelled positions hold their original tokens
    corrupted[labelled] = sampled
    replaced = torch.zeros_like(labelled)
    replaced[labelled] = sampled != labels[labelled]
    return corrupted, replaced


def base_rate_loss(replaced_share: float) -> float:
    """The detection loss of the best constant answer, the binary entropy of the replaced share (nats): what a
    discriminator that learned nothing from the text scores (the counterpart of masked-LM's unigram baseline)."""
    p = min(max(replaced_share, 0.0), 1.0)
    return -sum(q * math.log(q) for q in (p, 1.0 - p) if q > 0)


def detection_loss(logits: torch.Tensor, replaced: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the discriminator's logits over the real (non-padding) tokens."""
    real = attention_mask.bool()
    return F.binary_cross_entropy_with_logits(logits[real].float(), replaced[real].float())


class ElectraObjective:
    """A run's generator and discriminator head (each as ``accelerator.prepare`` returned it) and how the loss and
    the evaluations use them. Sampling draws from a generator of its own, reseeded per micro-batch from its position
    (as the masking), so a resumed run corrupts exactly as an uninterrupted one on every rank."""

    def __init__(self, generator: nn.Module, head: nn.Module, rtd_weight: float):
        self.generator, self.head = generator, head
        self.weights = {"generator_loss": 1.0, "rtd_loss": rtd_weight}
        self.rng: torch.Generator | None = None

    def reseed(self, device: torch.device | str, *keys) -> None:
        self.rng = torch.Generator(device=device).manual_seed(seed_from_keys("electra", *keys))

    def corrupt(self, batch: dict[str, torch.Tensor], embeddings: nn.Module
                ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """The discriminator's batch (the generator's samples at the masked positions, no labels left), which tokens
        were replaced, and the generator's masked-LM loss. ``embeddings``: the discriminator's embedding module."""
        embedding_output = embeddings(input_ids=batch["input_ids"], token_type_ids=batch.get("token_type_ids"))
        logits, generator_loss = self.generator(embedding_output, batch["attention_mask"], batch["labels"],
                                                embeddings.word_embeddings.weight)
        corrupted, replaced = replace_masked(batch["input_ids"], batch["labels"], logits, self.rng)
        return ({**batch, "input_ids": corrupted, "labels": torch.full_like(batch["labels"], -100)}, replaced,
                generator_loss)

    def add_losses(self, losses: dict[str, torch.Tensor], generator_loss: torch.Tensor,
                   last_hidden_state: torch.Tensor, replaced: torch.Tensor,
                   attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """``losses`` (the other terms') with the generator's and the detection loss added, weighted, to ``loss``."""
        components = {"generator_loss": generator_loss,
                      "rtd_loss": detection_loss(self.head(last_hidden_state), replaced, attention_mask)}
        total = sum(self.weights[key] * value for key, value in components.items())
        if losses.get("loss") is not None:
            total = losses["loss"] + total
        return {**losses, **components, "loss": total}

    def save(self, folder: Path, unwrap: Callable[[nn.Module], nn.Module]) -> Path:
        """The generator (its config and ``generator.safetensors``) and the detection head
        (``discriminator_head.safetensors``) in ``folder``, for inspection: ``ElectraGenerator(MagicBertConfig.
        from_pretrained(folder))`` and ``load_state_dict`` bring the generator back."""
        generator, head = unwrap(self.generator), unwrap(self.head)

        def write(staging: Path) -> None:
            generator.config.save_pretrained(staging)
            save_file(generator.state_dict(), staging / "generator.safetensors")
            save_file(head.state_dict(), staging / "discriminator_head.safetensors")

        return publish_dir(folder, write)

    @torch.no_grad()
    def example_sums(self, model, batch: dict[str, torch.Tensor], index: int, extra: dict) -> torch.Tensor:
        """(batch, 3) for :func:`~magic_bert.evaluation.evaluate_mlm`: each example's summed detection loss,
        correctly detected tokens and real tokens, on held-out ``batch`` corrupted by the current generator (sampled
        from ``index`` alone: every child scored in one evaluation sees the same corrupted text)."""
        logits, replaced = self.detect(model, batch, index, extra)
        real = batch["attention_mask"].bool()
        token_loss = F.binary_cross_entropy_with_logits(logits, replaced.float(), reduction="none")
        correct = ((logits > 0) == replaced).float()
        return torch.stack([(token_loss * real).sum(1), (correct * real).sum(1), real.sum(1).float()], dim=1)

    @torch.no_grad()
    def base_rate_sums(self, model, batch: dict[str, torch.Tensor], index: int, extra: dict) -> torch.Tensor:
        """(batch, 3) for :func:`~magic_bert.evaluation.evaluate_mlm`, as :meth:`example_sums` corrupts: each
        example's replaced tokens, kept tokens and real tokens. Its "loss" is the held-out replaced share, its
        "accuracy" that of answering "kept" everywhere (the model is not run)."""
        _, replaced = self.corrupt_held_out(model, batch, index)
        real = batch["attention_mask"].bool()
        replaced = (replaced & real).sum(1).double()
        return torch.stack([replaced, real.sum(1) - replaced, real.sum(1).double()], dim=1)

    def held_out_loss(self, model, batch: dict[str, torch.Tensor], index: int, extra: dict) -> torch.Tensor:
        """The detection loss of ``model`` on held-out ``batch`` (corrupted as :meth:`example_sums` does), with its
        gradient: what the interference analysis differentiates for an ELECTRA supernet."""
        logits, replaced = self.detect(model, batch, index, extra)
        return detection_loss(logits, replaced, batch["attention_mask"])

    def detect(self, model, batch: dict[str, torch.Tensor], index: int, extra: dict
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's detection logits on ``batch`` corrupted by the generator (in eval mode, no gradient through
        it, seeded by ``index``) and which tokens were replaced."""
        with torch.no_grad():
            corrupted, replaced = self.corrupt_held_out(model, batch, index)
        outputs = model(**corrupted, output_hidden_states=True, masked_logits_only=True, **extra)
        return self.head(outputs.hidden_states[-1]).float(), replaced

    def corrupt_held_out(self, model, batch: dict[str, torch.Tensor], index: int
                         ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """``batch`` corrupted by the generator in eval mode, sampled from ``index`` alone, and which tokens were
        replaced."""
        self.reseed(batch["input_ids"].device, "held-out", index)
        unwrapped = getattr(model, "module", model)
        generator_was_training = self.generator.training
        self.generator.eval()
        corrupted, replaced, _ = self.corrupt(batch, unwrapped.bert.embeddings)
        self.generator.train(generator_was_training)
        return corrupted, replaced


__all__ = ["GENERATOR_FOLDER", "DiscriminatorHead", "ElectraGenerator", "ElectraObjective", "base_rate_loss",
           "default_generator_arch", "detection_loss", "electra_generator_config", "generator_config", "load_electra",
           "replace_masked"]
