"""Task heads on a fixed MagicBert architecture: token classification, extractive question answering, multiple choice.

Each is BERT's head under BERT's module names (``classifier`` / ``qa_outputs``), so ``from_bert`` / ``to_bert`` map
them key for key. Only same-folder (relative) imports: ``save_pretrained`` of these models copies this file next to
the weights with the core files, and the saved ``auto_map`` then names all three classes.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.modeling_outputs import (
    BaseModelOutputWithPooling,
    MultipleChoiceModelOutput,
    QuestionAnsweringModelOutput,
    TokenClassifierOutput,
)
from transformers.utils.generic import can_return_tuple

from .configuration_magic_bert import MagicBertConfig
from .modeling_magic_bert import MagicBertModel, MagicBertPreTrainedModel


class _MagicBertHeadModel(MagicBertPreTrainedModel):
    """A fixed-arch encoder (``self.bert``) under a task head; the encoder's pooler only where BERT's head has one."""

    _saves_heads_code = True
    _add_pooling_layer = False
    # As BERT's heads without a pooler: a checkpoint with one (a base model, a classifier) loads without warnings.
    _keys_to_ignore_on_load_unexpected = [r"pooler"]

    def __init__(self, config: MagicBertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = MagicBertModel(config, add_pooling_layer=self._add_pooling_layer)

    def _head_dropout(self) -> nn.Dropout:
        config = self.config
        return nn.Dropout(config.classifier_dropout if config.classifier_dropout is not None
                          else config.hidden_dropout_prob)

    def _encode(self, input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, output_hidden_states,
                output_attentions) -> BaseModelOutputWithPooling:
        return self.bert(
            input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, position_ids=position_ids,
            inputs_embeds=inputs_embeds, output_hidden_states=output_hidden_states,
            output_attentions=output_attentions, return_dict=True,
        )


class MagicBertForTokenClassification(_MagicBertHeadModel):
    """A fixed architecture with BERT's token-classification head (NER, POS tagging): one label per token."""

    def __init__(self, config: MagicBertConfig):
        super().__init__(config)
        self.dropout = self._head_dropout()
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> TokenClassifierOutput:
        r"""
        labels (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
            Label index of each token; `-100` marks positions without a loss.
        """
        outputs = self._encode(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                               output_hidden_states, output_attentions)
        logits = self.classifier(self.dropout(outputs.last_hidden_state))
        loss = None
        if labels is not None:
            loss = self.loss_function(logits, labels, config=self.config,
                                      num_items_in_batch=kwargs.get("num_items_in_batch"))
        return TokenClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


class MagicBertForQuestionAnswering(_MagicBertHeadModel):
    """A fixed architecture with BERT's extractive question-answering head (span start and end logits)."""

    def __init__(self, config: MagicBertConfig):
        super().__init__(config)
        self.qa_outputs = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        start_positions: torch.Tensor | None = None,
        end_positions: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> QuestionAnsweringModelOutput:
        r"""
        start_positions, end_positions (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
            Token index of the answer's first and last token; positions past the sequence add no loss.
        """
        outputs = self._encode(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                               output_hidden_states, output_attentions)
        start_logits, end_logits = self.qa_outputs(outputs.last_hidden_state).split(1, dim=-1)
        start_logits, end_logits = start_logits.squeeze(-1).contiguous(), end_logits.squeeze(-1).contiguous()
        loss = None
        if start_positions is not None and end_positions is not None:
            loss = self.loss_function(start_logits, end_logits, start_positions, end_positions)
        return QuestionAnsweringModelOutput(
            loss=loss, start_logits=start_logits, end_logits=end_logits, hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


class MagicBertForMultipleChoice(_MagicBertHeadModel):
    """A fixed architecture with BERT's multiple-choice head: one score per (prompt, choice) pair, pooled."""

    _add_pooling_layer = True
    _keys_to_ignore_on_load_unexpected = None

    def __init__(self, config: MagicBertConfig):
        super().__init__(config)
        self.dropout = self._head_dropout()
        self.classifier = nn.Linear(config.hidden_size, 1)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> MultipleChoiceModelOutput:
        r"""
        input_ids (`torch.LongTensor` of shape `(batch_size, num_choices, sequence_length)`):
            One row per choice (the other inputs are shaped the same; `inputs_embeds` has a hidden dimension more).
        labels (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
            Index of the right choice.
        """
        num_choices = (input_ids if input_ids is not None else inputs_embeds).shape[1]
        # Every choice is a sequence of its own: (batch * choices, seq[, hidden]).
        inputs = (input_ids, attention_mask, token_type_ids, position_ids)
        flat = [None if t is None else t.reshape(-1, t.size(-1)) for t in inputs]
        embeds = None if inputs_embeds is None else inputs_embeds.reshape(-1, *inputs_embeds.shape[-2:])
        outputs = self._encode(*flat, embeds, output_hidden_states, output_attentions)
        logits = self.classifier(self.dropout(outputs.pooler_output)).view(-1, num_choices)
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels.to(logits.device))
        return MultipleChoiceModelOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


# `save_pretrained` copies this file (and the core files it imports) next to the weights.
MagicBertForTokenClassification.register_for_auto_class("AutoModelForTokenClassification")
MagicBertForQuestionAnswering.register_for_auto_class("AutoModelForQuestionAnswering")
MagicBertForMultipleChoice.register_for_auto_class("AutoModelForMultipleChoice")

__all__ = ["MagicBertForMultipleChoice", "MagicBertForQuestionAnswering", "MagicBertForTokenClassification"]
