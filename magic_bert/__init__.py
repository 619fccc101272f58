"""magic_bert: compress BERT with weight-sharing NAS (NAS-BERT search space, SPOS / MAGIC-T / MAGIC-A / MAGIC-AT).

Importing the package registers the models with transformers' Auto classes: a supernet checkpoint
(``model_type: magic_bert_supernet``) loads as a supernet, a fixed child (``magic_bert``) as a fixed model. With peft
installed it also registers default LoRA target modules for both model types (``PEFT_TARGET_MODULES``).
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForMultipleChoice,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

from .bert_interop import from_bert, to_bert
from .compression import inherit_from_bert, space_from_bert
from .configuration_magic_bert import PRESETS, MagicBertConfig, MagicBertSupernetConfig
from .modeling_magic_bert import (
    MagicBertForMaskedLM,
    MagicBertForSequenceClassification,
    MagicBertModel,
    MagicBertPreTrainedModel,
    MagicBertSupernetForMaskedLM,
    MagicBertSupernetModel,
)
from .modeling_magic_bert_heads import (
    MagicBertForMultipleChoice,
    MagicBertForQuestionAnswering,
    MagicBertForTokenClassification,
)
from .op_specs import OpSpec, parse_op
from .search_space import SearchSpace
from .sentence_export import save_sentence_transformer

AutoConfig.register("magic_bert", MagicBertConfig, exist_ok=True)
AutoModel.register(MagicBertConfig, MagicBertModel, exist_ok=True)
AutoModelForMaskedLM.register(MagicBertConfig, MagicBertForMaskedLM, exist_ok=True)
AutoModelForSequenceClassification.register(MagicBertConfig, MagicBertForSequenceClassification, exist_ok=True)
AutoModelForTokenClassification.register(MagicBertConfig, MagicBertForTokenClassification, exist_ok=True)
AutoModelForQuestionAnswering.register(MagicBertConfig, MagicBertForQuestionAnswering, exist_ok=True)
AutoModelForMultipleChoice.register(MagicBertConfig, MagicBertForMultipleChoice, exist_ok=True)
AutoConfig.register("magic_bert_supernet", MagicBertSupernetConfig, exist_ok=True)
AutoModel.register(MagicBertSupernetConfig, MagicBertSupernetModel, exist_ok=True)
AutoModelForMaskedLM.register(MagicBertSupernetConfig, MagicBertSupernetForMaskedLM, exist_ok=True)

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "MagicBertConfig",
    "MagicBertForMaskedLM",
    "MagicBertForMultipleChoice",
    "MagicBertForQuestionAnswering",
    "MagicBertForSequenceClassification",
    "MagicBertForTokenClassification",
    "MagicBertModel",
    "MagicBertPreTrainedModel",
    "MagicBertSupernetForMaskedLM",
    "MagicBertSupernetConfig",
    "MagicBertSupernetModel",
    "OpSpec",
    "SearchSpace",
    "from_bert",
    "inherit_from_bert",
    "parse_op",
    "save_sentence_transformer",
    "space_from_bert",
    "to_bert",
]
