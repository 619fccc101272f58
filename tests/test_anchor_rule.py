"""The robust anchor rule (own held-out blocks, paired standard error, swap margin) and the named alignment settings."""

import json
import math
import statistics
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from transformers import AutoTokenizer, default_data_collator

import magic_bert.training.recipe as pretraining
from magic_bert import MagicBertSupernetForMaskedLM
from magic_bert.data import held_out_blocks, synthetic_datasets
from magic_bert.errors import InputError
from magic_bert.evaluation import MLMScore, evaluate_mlm, paired_standard_error
from magic_bert.supernet_inputs import HeldOutArguments, held_out
from magic_bert.training.arguments import LossArguments, parse_pretrain_args
from magic_bert.training.losses import build_loss_terms

from .conftest import TOLERANCE

CHILD, ANCHOR = ["mha:2", "ffn:256", "conv:3", "identity"], ["mha:2", "ffn:128", "mha:1", "ffn:256"]


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


@pytest.fixture(scope="module")
def text_files(tmp_path_factory):
    """The synthetic corpus as local train / validation files (search and analysis read the same validation file)."""
    folder = tmp_path_factory.mktemp("anchor_text")
    corpus = synthetic_datasets(400, seed=7)
    for split in ("train", "validation"):
        (folder / f"{split}.txt").write_text("\n".join(corpus[split]["text"]) + "\n")
    return folder


def test_per_example_sums_and_the_paired_standard_error_match_a_direct_computation(tiny_config, word_tokenizer_dir,
                                                                                   text_files):
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(word_tokenizer_dir)
    tiny_config.vocab_size = len(tokenizer)
    model = MagicBertSupernetForMaskedLM(tiny_config).eval()
    text = synthetic_datasets(400, seed=7)["validation"]
    blocks = held_out_blocks(text, tokenizer, 32, 0.15, seed=3).select(range(12))
    loader = DataLoader(blocks, batch_size=5, collate_fn=default_data_collator)
    child = evaluate_mlm(model, loader, arch=CHILD, keep_examples=True)
    anchor = evaluate_mlm(model, loader, arch=ANCHOR, keep_examples=True)
    assert evaluate_mlm(model, loader, arch=CHILD).examples is None  # kept only when asked for

    # Per-token losses computed here, block by block, without evaluate_mlm.
    per_block = {name: [] for name in ("child", "anchor")}
    tokens = []
    with torch.no_grad():
        for row in blocks.with_format("torch"):
            labels = row["labels"]
            masked = labels != -100
            tokens.append(int(masked.sum()))
            for name, arch in (("child", CHILD), ("anchor", ANCHOR)):
                logits = model(input_ids=row["input_ids"][None], attention_mask=row["attention_mask"][None],
                               arch=arch).logits[0]
                per_block[name].append(F.cross_entropy(logits[masked], labels[masked], reduction="none").double())
    for score, name in ((child, "child"), (anchor, "anchor")):
        assert score.examples[:, 2].tolist() == tokens
        direct = torch.stack([losses.sum() for losses in per_block[name]])
        assert (score.examples[:, 0] - direct).abs().max() < 1e-4
        assert score.loss == pytest.approx(float(torch.cat(per_block[name]).mean()), abs=TOLERANCE)

    # The delta-method SE of a ratio of sums, from the per-token losses, by another route (means of blocks).
    differences = [float((c - a).sum()) for c, a in zip(per_block["child"], per_block["anchor"], strict=True)]
    total = sum(tokens)
    mean = sum(differences) / total
    variance = len(tokens) / (len(tokens) - 1) * sum((d - mean * n) ** 2 for d, n in zip(differences, tokens,
                                                                                     strict=True))
    se = paired_standard_error(child, anchor)
    assert se == pytest.approx(math.sqrt(variance) / total, rel=1e-4)
    assert 0 < se < abs(child.loss - anchor.loss) + 1  # finite and positive for two different children
    assert paired_standard_error(child, child) == 0.0
    with pytest.raises(ValueError, match="keep_examples"):
        paired_standard_error(child, evaluate_mlm(model, loader, arch=ANCHOR))


def test_with_equal_token_counts_the_paired_se_is_the_textbook_one():
    """Every block with n masked tokens: SE = stdev(per-block mean difference) / sqrt(B)."""
    child_sums, anchor_sums, n = [10.0, 12.5, 9.0, 11.0, 14.0], [11.0, 12.0, 10.5, 11.5, 13.0], 4.0

    def score(sums):
        examples = torch.tensor([[s, 0.0, n] for s in sums], dtype=torch.float64)
        return MLMScore(loss=sum(sums) / (n * len(sums)), accuracy=0.0, num_tokens=int(n * len(sums)),
                        examples=examples)

    per_block = [(c - a) / n for c, a in zip(child_sums, anchor_sums, strict=True)]
    expected = statistics.stdev(per_block) / math.sqrt(len(per_block))
    assert paired_standard_error(score(child_sums), score(anchor_sums)) == pytest.approx(expected, rel=1e-12)
    # Scores of different masked tokens cannot be paired.
    other = MLMScore(loss=0.0, accuracy=0.0, num_tokens=5, examples=torch.tensor([[1.0, 0.0, 5.0]] * 5,
                                                                                  dtype=torch.float64))
    with pytest.raises(ValueError, match="same masked tokens"):
        paired_standard_error(score(child_sums), other)


def _pretrain(text_files, word_tokenizer_dir, out, *extra):
    argv = ["--train_file", text_files / "train.txt", "--validation_file", text_files / "validation.txt",
            "--tokenizer_name", word_tokenizer_dir, "--max_seq_length", 64, "--per_device_train_batch_size", 4,
            "--sampler", "magic-a", "--max_train_steps", 6, "--anchor_eval_steps", 2, "--learning_rate", 2e-3,
            "--output_dir", out, *extra]
    return pretraining.pretrain(parse_pretrain_args([str(a) for a in argv]))


def test_a_run_too_short_for_any_anchor_check_says_so(tmp_path, text_files, word_tokenizer_dir, capsys):
    _pretrain(text_files, word_tokenizer_dir, tmp_path / "a", "--max_train_steps", 2, "--anchor_eval_steps", 5,
              "--max_eval_samples", 2)
    out = capsys.readouterr().out
    assert "Note: --anchor_eval_steps 5 is more than the 2 training steps: no anchor check runs" in out
    assert json.loads((tmp_path / "a" / "all_results.json").read_text())["anchor_checks"] == 0


@pytest.mark.slow
def test_anchor_blocks_are_skipped_by_the_final_score_and_by_search(tmp_path, text_files, word_tokenizer_dir):
    out = tmp_path / "a"
    result = _pretrain(text_files, word_tokenizer_dir, out, "--anchor_eval_samples", 6, "--max_eval_samples", 5)
    results = json.loads((out / "all_results.json").read_text())
    assert results["anchor_eval_blocks"] == 6 and results["held_out_skipped_blocks"] == 6
    assert results["anchor_swap_margin"] == 2.0 and results["anchor_checks"] == 3
    assert results["anchor_swap_rate"] == results["anchor_swaps"] / 3

    # Every check logged with its scores, paired SE, margin and decision, replayed here under the default rule.
    tokenizer = AutoTokenizer.from_pretrained(out)
    checks = [r for r in read_jsonl(out / "train_log.jsonl") if "anchor_swapped" in r]
    assert [r["step"] for r in checks] == [2, 4, 6]
    for record in checks:
        threshold = record["anchor_eval_loss"] - 2.0 * record["anchor_paired_se"]
        assert record["anchor_swapped"] == (record["child_eval_loss"] < threshold and record["anchor_paired_se"] > 0)

    # Search and analysis read the same validation file: by default they skip the 6 anchor blocks, and the blocks
    # they keep are those of the final score (same masks), so the final anchor scores the same loss there.
    args = HeldOutArguments(validation_file=str(text_files / "validation.txt"), max_seq_length=64)
    everything = held_out(HeldOutArguments(validation_file=args.validation_file, max_seq_length=64,
                                           skip_held_out_blocks=0), tokenizer, seed=42, supernets=[out])
    kept = held_out(args, tokenizer, seed=42, supernets=[out])
    assert len(kept) == len(everything) - 6 and kept[0]["input_ids"] == everything[6]["input_ids"]
    loader = DataLoader(kept.select(range(5)), batch_size=4, collate_fn=default_data_collator)
    again = evaluate_mlm(result.model, loader, arch=results["eval_arch"])
    assert again.num_tokens == results["eval_num_tokens"]
    assert again.loss == pytest.approx(results["eval_loss"], abs=TOLERANCE)
    with pytest.raises(InputError, match="skip_held_out_blocks"):
        held_out(HeldOutArguments(validation_file=args.validation_file, max_seq_length=64,
                                  skip_held_out_blocks=len(everything)), tokenizer, seed=42)


@pytest.mark.slow
def test_an_anchor_file_keeps_every_validation_block_for_the_final_score(tmp_path, text_files, word_tokenizer_dir):
    anchor_file = tmp_path / "anchor.txt"
    anchor_file.write_text("\n".join(synthetic_datasets(200, seed=99)["validation"]["text"]) + "\n")
    out = tmp_path / "f"
    _pretrain(text_files, word_tokenizer_dir, out, "--anchor_eval_file", anchor_file, "--anchor_eval_samples", 4,
              "--anchor_swap_margin", 0, "--alignment", "paper")
    results = json.loads((out / "all_results.json").read_text())
    assert results["anchor_eval_blocks"] == 4 and results["held_out_skipped_blocks"] == 0
    tokenizer = AutoTokenizer.from_pretrained(out)
    everything = held_out(HeldOutArguments(validation_file=str(text_files / "validation.txt"), max_seq_length=64),
                          tokenizer, seed=42, supernets=[out])
    assert results["eval_num_tokens"] == sum(sum(label != -100 for label in row) for row in everything["labels"])
    log = read_jsonl(out / "train_log.jsonl")
    for record in log:  # paper alignment: the hidden-state term alone, weighted 0.1
        assert "align_logits_loss" not in record
        assert record["loss"] == pytest.approx(record["mlm_loss"] + 0.1 * record["align_hidden_loss"], abs=1e-5)
    for record in (r for r in log if "anchor_swapped" in r):  # margin 0: any lower loss swaps
        assert record["anchor_swap_threshold"] == record["anchor_eval_loss"]
        assert record["anchor_swapped"] == (record["child_eval_loss"] < record["anchor_eval_loss"])


@pytest.mark.parametrize(("alignment", "hidden", "logits", "expected"), [
    (None, None, None, {"align_hidden_loss": 0.1, "align_logits_loss": 0.1}),
    ("full", None, None, {"align_hidden_loss": 0.1, "align_logits_loss": 0.1}),
    ("paper", None, None, {"align_hidden_loss": 0.1}),
    ("paper", 2.0, 0.0, {"align_hidden_loss": 2.0}),
    ("full", 0.5, 0.25, {"align_hidden_loss": 0.5, "align_logits_loss": 0.25}),
    (None, 1.0, 0.0, {"align_hidden_loss": 1.0}),  # logits weight 0 alone is the paper setting too
])
def test_named_alignment_settings_set_which_terms_are_on(alignment, hidden, logits, expected):
    args = LossArguments(alignment=alignment, align_hidden_weight=hidden, align_logits_weight=logits)
    assert build_loss_terms(args, lambda: ANCHOR).terms[-1].weights == expected


@pytest.mark.parametrize(("extra", "message"), [
    (["--alignment", "paper", "--align_logits_weight", "0.5"], "`alignment` paper contradicts `align_logits_weight`"),
    (["--alignment", "full", "--align_logits_weight", "0"], "`alignment` full contradicts `align_logits_weight`"),
    (["--alignment", "full", "--align_hidden_weight", "0"], "`alignment` full contradicts `align_hidden_weight`"),
    (["--anchor_swap_margin", "-1"], "`anchor_swap_margin` must be at least 0"),
    (["--anchor_eval_samples", "1"], "`anchor_eval_samples` must be at least 2"),
    (["--sampler", "spos", "--anchor_eval_file", "x.txt"], "`anchor_eval_file` needs `sampler` magic-a"),
    (["--sampler", "spos", "--alignment", "paper"], "`alignment` needs `sampler` magic-a"),
    (["--anchor_eval_file", "missing.txt"], "`anchor_eval_file`"),
])
def test_bad_anchor_and_alignment_settings_are_refused_before_anything_is_written(tmp_path, extra, message):
    out = tmp_path / "o"
    argv = ["--sampler", "magic-a", "--synthetic_documents", "200", "--output_dir", str(out), *extra]
    with pytest.raises(InputError, match=message):
        pretraining.pretrain(parse_pretrain_args(argv))
    assert not out.exists()


@pytest.mark.parametrize(("words", "message"), [
    (6, r"`anchor_eval_file` '.*one_block.txt' has fewer than max_seq_length=64 tokens"),
    (70, r"at least 2 held-out blocks with masked tokens; `anchor_eval_file` '.*one_block.txt' gives 1"),
])
def test_an_anchor_file_too_small_for_a_paired_se_is_refused(tmp_path, text_files, word_tokenizer_dir, words,
                                                             message):
    anchor_file = tmp_path / "one_block.txt"
    corpus_words = " ".join(synthetic_datasets(200, seed=5)["train"]["text"]).split()
    anchor_file.write_text(" ".join(corpus_words[:words]) + "\n")  # one line: fewer tokens than a block, or 1 block
    out = tmp_path / "o"
    with pytest.raises(InputError, match=message):
        _pretrain(text_files, word_tokenizer_dir, out, "--anchor_eval_file", anchor_file)
    assert not out.exists()


def test_a_validation_set_too_small_to_share_is_refused(tmp_path, text_files, word_tokenizer_dir):
    small = tmp_path / "two_blocks"
    small.mkdir()
    (small / "train.txt").write_text((text_files / "train.txt").read_text())
    words = " ".join(synthetic_datasets(200, seed=5)["train"]["text"]).split()
    (small / "validation.txt").write_text(" ".join(words[:135]) + "\n")  # 2 blocks of 64 tokens
    out = tmp_path / "o"
    with pytest.raises(InputError, match=r"validation set has 2 block\(s\): the anchor checks need 2"):
        _pretrain(small, word_tokenizer_dir, out)
    assert not out.exists()
