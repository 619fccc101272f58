import pytest
import torch
from transformers import BertConfig, BertForMaskedLM, BertForSequenceClassification, BertModel

from magic_bert import (
    MagicBertConfig,
    MagicBertForMaskedLM,
    MagicBertForSequenceClassification,
    MagicBertModel,
    MagicBertSupernetForMaskedLM,
    from_bert,
    to_bert,
)
from magic_bert.bert_interop import bert_arch

from .conftest import TOLERANCE, max_diff

BERT_ARCH = ["mha:2", "ffn:256"] * 2


def tiny_bert_config(**overrides) -> BertConfig:
    return BertConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=256, max_position_embeddings=128, **overrides)


@pytest.fixture
def bert_mlm():
    torch.manual_seed(0)
    model = BertForMaskedLM(tiny_bert_config()).eval()
    with torch.no_grad():  # non-zero biases and LayerNorms so that a wrong mapping cannot hide
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.02)
    return model


def test_bert_arch():
    assert bert_arch(tiny_bert_config()) == BERT_ARCH


def test_mlm_from_bert_and_back(bert_mlm, batch):
    input_ids, attention_mask = batch
    magic = from_bert(bert_mlm, MagicBertForMaskedLM)
    assert magic.config.arch == BERT_ARCH and magic.config.is_bert_shaped
    with torch.no_grad():
        expected = bert_mlm(input_ids, attention_mask=attention_mask).logits
        got = magic(input_ids, attention_mask=attention_mask).logits
        assert max_diff(expected, got, attention_mask) <= TOLERANCE
        back = to_bert(magic)
        assert type(back) is BertForMaskedLM
        assert max_diff(expected, back(input_ids, attention_mask=attention_mask).logits, attention_mask) <= TOLERANCE
    for name, tensor in bert_mlm.state_dict().items():
        assert torch.equal(tensor, back.state_dict()[name]), name


def test_from_bert_path(bert_mlm, batch, tmp_path):
    bert_mlm.save_pretrained(tmp_path / "bert")
    magic = from_bert(str(tmp_path / "bert"))  # MagicBertForMaskedLM by default
    input_ids, attention_mask = batch
    with torch.no_grad():
        assert max_diff(bert_mlm(input_ids, attention_mask=attention_mask).logits,
                        magic(input_ids, attention_mask=attention_mask).logits, attention_mask) <= TOLERANCE


def test_base_model_and_classifier_round_trip(batch):
    torch.manual_seed(0)
    input_ids, attention_mask = batch
    bert = BertModel(tiny_bert_config()).eval()
    magic = from_bert(bert, MagicBertModel)
    with torch.no_grad():
        a, b = bert(input_ids, attention_mask=attention_mask), magic(input_ids, attention_mask=attention_mask)
        assert max_diff(a.last_hidden_state, b.last_hidden_state, attention_mask) <= TOLERANCE
        assert max_diff(a.pooler_output, b.pooler_output) <= TOLERANCE
        assert type(to_bert(magic)) is BertModel
    classifier = BertForSequenceClassification(tiny_bert_config(num_labels=3)).eval()
    magic_classifier = from_bert(classifier, MagicBertForSequenceClassification)
    assert magic_classifier.config.num_labels == 3
    with torch.no_grad():
        expected = classifier(input_ids, attention_mask=attention_mask).logits
        assert max_diff(expected, magic_classifier(input_ids, attention_mask=attention_mask).logits) <= TOLERANCE
        assert max_diff(expected, to_bert(magic_classifier)(input_ids, attention_mask=attention_mask).logits) <= (
            TOLERANCE)


def test_supernet_from_bert(bert_mlm, batch):
    input_ids, attention_mask = batch
    space = MagicBertConfig.from_preset("tiny")  # 4 layers, hidden 64, has mha:2 and ffn:256
    supernet = from_bert(bert_mlm, MagicBertSupernetForMaskedLM, config=space).eval()
    assert supernet.config.candidate_ops == space.candidate_ops
    with torch.no_grad():
        expected = bert_mlm(input_ids, attention_mask=attention_mask).logits
        got = supernet(input_ids, attention_mask=attention_mask, arch=BERT_ARCH).logits
        assert max_diff(expected, got, attention_mask) <= TOLERANCE
        exported = to_bert(supernet.export(BERT_ARCH))
        assert max_diff(expected, exported(input_ids, attention_mask=attention_mask).logits, attention_mask) <= (
            TOLERANCE)
    default = from_bert(bert_mlm, MagicBertSupernetForMaskedLM)
    assert default.config.candidate_ops == ["mha:2", "ffn:256"] and default.config.arch is None


def test_supernet_from_bert_rejects_a_space_that_does_not_fit(bert_mlm):
    with pytest.raises(ValueError, match=r"hidden_size: 128 vs BERT's 64.*num_hidden_layers: 2 vs 4"):
        from_bert(bert_mlm, MagicBertSupernetForMaskedLM, config=MagicBertConfig(
            hidden_size=128, num_hidden_layers=2, vocab_size=1000, max_position_embeddings=128))
    with pytest.raises(ValueError, match=r"candidate_ops lack BERT's ops \['mha:2'\]"):
        from_bert(bert_mlm, MagicBertSupernetForMaskedLM, config=MagicBertConfig.from_preset(
            "tiny", candidate_ops=["identity", "mha:1", "ffn:256"]))


def test_from_bert_rejects_other_classes(bert_mlm):
    with pytest.raises(ValueError, match="needs a BertForSequenceClassification, got a BertForMaskedLM"):
        from_bert(bert_mlm, MagicBertForSequenceClassification)
    with pytest.raises(ValueError, match="Expected a transformers BertModel"):
        from_bert(torch.nn.Linear(2, 2), MagicBertForMaskedLM)


def test_to_bert_refuses_other_archs(tiny_config):
    model = MagicBertForMaskedLM(tiny_config.with_arch(["mha:2", "ffn:256", "conv:3", "identity"]))
    with pytest.raises(ValueError, match=r"BERT-shaped arch .*got \['mha:2', 'ffn:256', 'conv:3', 'identity'\]"):
        to_bert(model)
    with pytest.raises(ValueError, match="call supernet.export"):
        to_bert(MagicBertSupernetForMaskedLM(tiny_config))


def test_from_bert_keeps_dtype_and_mode(bert_mlm, batch):
    bert = bert_mlm.to(torch.bfloat16).eval()
    input_ids, attention_mask = batch
    magic = from_bert(bert, MagicBertForMaskedLM)
    supernet = from_bert(bert, MagicBertSupernetForMaskedLM)
    assert magic.dtype == supernet.dtype == torch.bfloat16 and not magic.training and not supernet.training
    with torch.no_grad():
        expected = bert(input_ids, attention_mask=attention_mask).logits
        assert max_diff(expected, magic(input_ids, attention_mask=attention_mask).logits, attention_mask) == 0


def test_from_bert_names_the_model_classes_it_accepts(bert_mlm):
    with pytest.raises(ValueError, match=r"not available for 'BertForMaskedLM'; model_class is one of \['MagicBert"):
        from_bert(bert_mlm, BertForMaskedLM)
    with pytest.raises(ValueError, match="Fixed models take their config from BERT"):
        from_bert(bert_mlm, MagicBertForMaskedLM, config=MagicBertConfig.from_preset("tiny"))
