"""magic_bert.evaluation: held-out masked-LM scores checked against hand computations on tiny models."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from magic_bert import MagicBertConfig, MagicBertForMaskedLM, MagicBertSupernetForMaskedLM
from magic_bert.evaluation import MLMScore, evaluate_mlm

ARCH = ["mha:2", "ffn:256", "conv:3", "identity"]
OTHER_ARCH = ["conv:7", "mha:1", "conv:5", "ffn:128"]
SEQ = 16
# Masked tokens per example: batches of 2 hold 1+6, 2+9 and 3 masked tokens, so the token-weighted mean and the
# mean of per-batch means differ.
MASKED_COUNTS = [1, 6, 2, 9, 3]


@pytest.fixture
def model(tiny_config):
    torch.manual_seed(0)
    return MagicBertForMaskedLM(tiny_config.with_arch(ARCH)).eval()


@pytest.fixture
def supernet(tiny_config):
    torch.manual_seed(1)
    return MagicBertSupernetForMaskedLM(tiny_config).eval()


def _examples(vocab_size: int = 1000, seed: int = 0, counts=MASKED_COUNTS, model=None, arch=None) -> list[dict]:
    """Pre-masked examples; the last one right-padded. With `model`, the first masked label of each example with at
    least two is set to the model's own prediction (so accuracy is neither 0 nor 1), the others to anything else."""
    generator = torch.Generator().manual_seed(seed)
    examples = []
    for index, count in enumerate(counts):
        input_ids = torch.randint(5, vocab_size, (SEQ,), generator=generator)
        attention_mask = torch.ones(SEQ, dtype=torch.long)
        if index == len(counts) - 1:
            attention_mask[SEQ - 4:] = 0
            input_ids[SEQ - 4:] = 0
        positions = torch.randperm(SEQ - 4, generator=generator)[:count]
        labels = torch.full((SEQ,), -100)
        labels[positions] = torch.randint(5, vocab_size, (count,), generator=generator)
        input_ids[positions] = 4  # [MASK]
        examples.append({"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels})
    if model is not None:
        extra = {} if arch is None else {"arch": arch}
        with torch.no_grad():
            for example in examples:
                logits = model(input_ids=example["input_ids"][None], attention_mask=example["attention_mask"][None],
                               **extra).logits[0]
                predicted = logits.argmax(-1)
                positions = (example["labels"] != -100).nonzero().flatten().tolist()
                for rank, position in enumerate(positions):
                    right = rank == 0 and len(positions) > 1
                    example["labels"][position] = predicted[position] if right else (predicted[position] + 1) % 1000
    return examples


def _loader(examples, batch_size=2):
    return DataLoader(examples, batch_size=batch_size, shuffle=False)


def _by_hand(model, loader, arch=None):
    """Masked logits and labels of every batch, concatenated (one forward per batch, like evaluate_mlm)."""
    extra = {} if arch is None else {"arch": arch}
    logits, labels, per_batch = [], [], []
    with torch.no_grad():
        for batch in loader:
            out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **extra).logits
            masked = batch["labels"] != -100
            logits.append(out[masked].double())
            labels.append(batch["labels"][masked])
            per_batch.append(F.cross_entropy(logits[-1], labels[-1]).item())
    return torch.cat(logits), torch.cat(labels), per_batch


def test_loss_is_token_weighted_mean_cross_entropy(model):
    examples = _examples(model=model)
    loader = _loader(examples)
    score = evaluate_mlm(model, loader)
    logits, labels, per_batch = _by_hand(model, loader)
    expected = F.cross_entropy(logits, labels).item()
    assert abs(score.loss - expected) <= 1e-6
    # The mean of per-batch means is a different number: the check above can tell them apart.
    assert len(per_batch) == 3
    assert abs(sum(per_batch) / len(per_batch) - expected) > 1e-3
    assert isinstance(score, MLMScore)


def test_accuracy_and_token_count(model):
    examples = _examples(model=model)
    loader = _loader(examples)
    score = evaluate_mlm(model, loader)
    logits, labels, _ = _by_hand(model, loader)
    assert score.num_tokens == sum(MASKED_COUNTS) == labels.numel()
    assert isinstance(score.num_tokens, int)
    correct = (logits.argmax(-1) == labels).sum().item()
    # By construction: one right label in each example with at least two masked tokens.
    assert correct == sum(count > 1 for count in MASKED_COUNTS) == 4
    assert score.accuracy == pytest.approx(correct / labels.numel(), abs=1e-12)
    assert score.perplexity == math.exp(score.loss)


def test_batch_size_does_not_change_the_score(model):
    examples = _examples(model=model)
    by_two, by_five = evaluate_mlm(model, _loader(examples, 2)), evaluate_mlm(model, _loader(examples, 5))
    assert by_two.num_tokens == by_five.num_tokens and by_two.accuracy == by_five.accuracy
    assert abs(by_two.loss - by_five.loss) <= 1e-5


def test_max_batches_scores_a_prefix(model):
    examples = _examples(model=model)
    score = evaluate_mlm(model, _loader(examples), max_batches=1)
    first = evaluate_mlm(model, _loader(examples[:2]))
    assert score.num_tokens == MASKED_COUNTS[0] + MASKED_COUNTS[1]
    assert score.loss == pytest.approx(first.loss, abs=1e-6) and score.accuracy == first.accuracy


def test_token_type_ids_are_passed(model):
    examples = _examples()
    plain = evaluate_mlm(model, _loader(examples))
    for example in examples:
        example["token_type_ids"] = torch.ones(SEQ, dtype=torch.long)
    typed = evaluate_mlm(model, _loader(examples))
    assert abs(plain.loss - typed.loss) > 1e-4


def test_supernet_arch_equals_exported_child(supernet):
    examples = _examples(model=supernet, arch=ARCH)
    loader = _loader(examples)
    score = evaluate_mlm(supernet, loader, arch=ARCH)
    child = evaluate_mlm(supernet.export(ARCH), loader)
    assert abs(score.loss - child.loss) <= 1e-6
    assert score.accuracy == child.accuracy and score.num_tokens == child.num_tokens
    logits, labels, _ = _by_hand(supernet, loader, arch=ARCH)
    assert abs(score.loss - F.cross_entropy(logits, labels).item()) <= 1e-6
    other = evaluate_mlm(supernet, loader, arch=OTHER_ARCH)
    assert abs(other.loss - score.loss) > 1e-4  # the arch is what runs


def test_supernet_without_arch_fails(supernet):
    with pytest.raises(ValueError, match="arch"):
        evaluate_mlm(supernet, _loader(_examples()))


@pytest.mark.parametrize("training", [True, False])
def test_mode_is_restored(training):
    # Dropout on: the score is deterministic only if the model is switched to eval mode while scoring.
    config = MagicBertConfig.from_preset("tiny", hidden_dropout_prob=0.3, attention_probs_dropout_prob=0.3)
    torch.manual_seed(0)
    model = MagicBertForMaskedLM(config.with_arch(ARCH)).train(training)
    loader = _loader(_examples())
    first, second = evaluate_mlm(model, loader), evaluate_mlm(model, loader)
    assert model.training is training
    assert all(module.training is training for module in model.modules())
    assert first == second
    model.eval()
    logits, labels, _ = _by_hand(model, loader)
    assert abs(first.loss - F.cross_entropy(logits, labels).item()) <= 1e-6


def test_mode_is_restored_after_an_error(model):
    def broken():
        yield next(iter(_loader(_examples())))
        raise RuntimeError("loader broke")

    model.train()
    with pytest.raises(RuntimeError, match="loader broke"):
        evaluate_mlm(model, broken())
    assert model.training


def test_no_masked_tokens(model):
    examples = _examples(counts=[0, 0, 0])
    with pytest.raises(ValueError, match="no masked tokens"):
        evaluate_mlm(model, _loader(examples))
    with pytest.raises(ValueError, match="no masked tokens"):
        evaluate_mlm(model, [])


def test_gathered_sums_are_what_is_scored(model):
    class DropLast:
        """Stands in for an accelerator whose gather drops the duplicated padding sample of the last batch."""

        def __init__(self):
            self.shapes = []

        def gather_for_metrics(self, tensor):
            self.shapes.append(tuple(tensor.shape))
            return tensor[:-1] if len(self.shapes) == 3 else tensor

    examples = _examples(model=model)
    duplicated = examples + [examples[-1]]
    accelerator = DropLast()
    score = evaluate_mlm(model, _loader(duplicated), accelerator=accelerator)
    assert accelerator.shapes == [(2, 3), (2, 3), (2, 3)]
    plain = evaluate_mlm(model, _loader(examples))
    assert score.num_tokens == plain.num_tokens == sum(MASKED_COUNTS)
    assert abs(score.loss - plain.loss) <= 1e-6 and score.accuracy == plain.accuracy


def test_as_dict_and_perplexity():
    score = MLMScore(loss=2.0, accuracy=0.25, num_tokens=8)
    assert score.as_dict() == {"eval_loss": 2.0, "eval_accuracy": 0.25, "eval_num_tokens": 8,
                               "eval_perplexity": math.exp(2.0)}
    assert list(score.as_dict()) == ["eval_loss", "eval_accuracy", "eval_num_tokens", "eval_perplexity"]
    assert set(score.as_dict("search_")) == {"search_loss", "search_accuracy", "search_num_tokens",
                                             "search_perplexity"}
    assert MLMScore(loss=800.0, accuracy=0.0, num_tokens=1).perplexity == math.inf


def test_as_dict_of_a_real_score(model):
    score = evaluate_mlm(model, _loader(_examples(model=model)))
    values = score.as_dict()
    assert set(values) == {"eval_loss", "eval_accuracy", "eval_num_tokens", "eval_perplexity"}
    assert values["eval_loss"] == score.loss and values["eval_num_tokens"] == sum(MASKED_COUNTS)
    assert values["eval_perplexity"] == math.exp(score.loss)


def test_progress_bar_only_when_asked_and_only_on_the_main_process(model, capsys):
    loader = _loader(_examples(model=model))
    quiet = evaluate_mlm(model, loader)
    assert "Held-out MLM" not in capsys.readouterr().err  # off by default: search scores thousands of children
    shown = evaluate_mlm(model, loader, progress=True, desc="Final held-out MLM")
    err = capsys.readouterr().err
    assert "Final held-out MLM" in err and "/3" in err  # three batches
    assert shown == quiet

    class OtherRank:
        is_local_main_process = False

        def gather_for_metrics(self, tensor):
            return tensor

    evaluate_mlm(model, loader, accelerator=OtherRank(), progress=True)
    assert "Held-out MLM" not in capsys.readouterr().err


def test_unigram_baseline_is_the_most_frequent_token_with_add_one_probabilities():
    import datasets

    from magic_bert.evaluation import unigram_baseline

    train = datasets.Dataset.from_dict({"input_ids": [[5, 5, 6, 7], [5, 6, 6, 5]]})  # 5 ×4, 6 ×3, 7 ×1
    held_out = datasets.Dataset.from_dict({"labels": [[5, -100, 6, -100], [-100, 7, 5, -100]]})
    score = unigram_baseline(train, held_out, vocab_size=8)
    counts = torch.tensor([1, 1, 1, 1, 1, 5, 4, 2], dtype=torch.float64)  # add-one over 8 ids, 16 in all
    log_p = counts.log() - counts.sum().log()
    assert score.accuracy == pytest.approx(2 / 4)  # predicts 5: right for the two 5s
    assert score.loss == pytest.approx(-(2 * log_p[5] + log_p[6] + log_p[7]).item() / 4)
    assert score.num_tokens == 4
