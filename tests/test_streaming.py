"""--streaming pre-training: ranks see disjoint documents, the stream is read pass after pass, a resumed run equals an
uninterrupted one bit for bit (1 and 2 processes), the tokenizer is trained on the first N documents, bad
combinations are refused before anything is written."""

import json
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from transformers import AutoTokenizer

import magic_bert.training.recipe as pretraining
from magic_bert.data import train_wordpiece_tokenizer
from magic_bert.errors import InputError
from magic_bert.streaming import StreamingBatches, load_streaming_text, rank_blocks
from magic_bert.synthetic_corpus import generate_corpus
from magic_bert.training.arguments import parse_pretrain_args
from magic_bert.training.checkpointing import TrainingState, list_checkpoints

from .conftest import make_word_tokenizer, run_two_processes, run_until_first_checkpoint

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """120 synthetic documents, one per line (about 30 blocks of 64 tokens: a run of a few dozen micro-batches
    crosses passes)."""
    path = tmp_path_factory.mktemp("stream") / "corpus.txt"
    path.write_text("\n".join(generate_corpus(120, seed=3)) + "\n")
    return path


def data_args(corpus, **overrides):
    values = {"dataset_name": None, "dataset_config_name": None, "train_file": str(corpus), "validation_file": None,
              "held_out_documents": 10, "text_column_name": None}
    return SimpleNamespace(**(values | overrides))


def run(*argv):
    return pretraining.pretrain(parse_pretrain_args([str(a) for a in argv]))


class RecordingTokenizer:
    """The word tokenizer, noting every text it is asked to tokenise (what a rank trains on)."""

    def __init__(self):
        self.tokenizer, self.texts = make_word_tokenizer(), []

    def __call__(self, texts, **kwargs):
        self.texts += texts
        return self.tokenizer(texts, **kwargs)


def test_ranks_train_on_disjoint_blocks_and_never_on_held_out_documents(corpus):
    raw = load_streaming_text(data_args(corpus))
    lines = corpus.read_text().splitlines()
    assert raw["validation"]["text"] == lines[:10]
    tokenizer = RecordingTokenizer()
    every = list(rank_blocks(raw, tokenizer, 64, seed=0, shuffle_buffer_size=16, rank=0, world_size=1))
    assert sorted(tokenizer.texts) == sorted(lines[10:])  # every training document, no held-out one
    assert tokenizer.texts != lines[10:]  # shuffled
    assert every and all(len(block["input_ids"]) == 64 for block in every)
    assert set(every[0]) == {"input_ids", "attention_mask", "special_tokens_mask"}
    shares = [[tuple(block["input_ids"]) for block in rank_blocks(raw, make_word_tokenizer(), 64, seed=0,
                                                                   shuffle_buffer_size=16, rank=rank, world_size=2)]
              for rank in (0, 1)]
    # Split by examples (one file is one shard): the ranks' blocks are disjoint parts of the one-process stream.
    assert abs(len(shares[0]) - len(shares[1])) <= 1
    assert sorted(shares[0] + shares[1]) == sorted(tuple(block["input_ids"]) for block in every)


def test_batches_resume_exactly_inside_a_pass_and_across_passes(corpus):
    raw = load_streaming_text(data_args(corpus))
    blocks = rank_blocks(raw, make_word_tokenizer(), 64, seed=0, shuffle_buffer_size=16, rank=0, world_size=1)
    reader = iter(straight := StreamingBatches(blocks, 4))
    reference, positions = [], []
    while straight.passes < 2:
        positions.append((straight.passes, straight.batches))
        reference.append(next(reader)["input_ids"])
    per_pass = sum(1 for passes, _ in positions if passes == 0)
    assert straight.passes == 2 and 5 < per_pass < len(reference)
    # The second pass is reshuffled (seed + pass), so it is not the first one again.
    assert not torch.equal(torch.cat(reference[:3]), torch.cat(reference[per_pass:per_pass + 3]))
    for taken in (3, per_pass, per_pass + 2):
        resumed = StreamingBatches(blocks, 4)
        resumed.resume_at(*positions[taken])
        rest = iter(resumed)
        assert all(torch.equal(next(rest)["input_ids"], expected) for expected in reference[taken:])


def test_training_state_keeps_positions_as_plain_ints():
    state = TrainingState(stream_passes=[1, 0], stream_batches=[3, 7])
    saved = json.loads(json.dumps(state.state_dict()))
    restored = TrainingState()
    restored.load_state_dict(saved)
    assert (restored.stream_passes, restored.stream_batches) == ([1, 0], [3, 7])
    del saved["stream_passes"], saved["stream_batches"]  # a checkpoint of a run before --streaming
    restored.load_state_dict(saved)
    assert restored.stream_passes == restored.stream_batches == []


def test_tokenizer_trained_on_the_first_training_documents(tmp_path, corpus):
    recipe = pretraining.PretrainRecipe(parse_pretrain_args([
        "--streaming", "--train_file", str(corpus), "--held_out_documents", "10", "--tokenizer_train_documents", "40",
        "--vocab_size", "200", "--max_train_steps", "2", "--max_seq_length", "64", "--output_dir",
        str(tmp_path / "o")]))
    recipe.setup_inputs()
    expected = train_wordpiece_tokenizer(corpus.read_text().splitlines()[10:50], 200)
    assert recipe.tokenizer.get_vocab() == expected.get_vocab()
    assert len(recipe.held_out) > 0 and not (tmp_path / "o").exists()


def test_validation_split_of_a_streamed_dataset(tmp_path, word_tokenizer_dir):
    data = tmp_path / "my_dataset"
    data.mkdir()
    (data / "train.jsonl").write_text("".join(json.dumps({"id": i, "body": text}) + "\n"
                                              for i, text in enumerate(generate_corpus(40, seed=1))))
    (data / "validation.jsonl").write_text("".join(json.dumps({"id": i, "body": text}) + "\n"
                                                   for i, text in enumerate(generate_corpus(12, seed=2))))
    raw = load_streaming_text(data_args(None, train_file=None, dataset_name=str(data), held_out_documents=None,
                                        text_column_name="body"))
    assert raw["column"] == "body" and raw["validation"]["body"] == generate_corpus(12, seed=2)
    result = run("--streaming", "--dataset_name", data, "--text_column_name", "body", "--tokenizer_name",
                 word_tokenizer_dir, "--max_seq_length", 64, "--per_device_train_batch_size", 4,
                 "--max_train_steps", 3, "--output_dir", tmp_path / "out")
    assert result.results["train_steps"] == 3 and result.results["eval_num_tokens"] > 0
    assert 0 < result.results["unigram_accuracy"] < 1
    (data / "validation.jsonl").unlink()
    with pytest.raises(InputError, match="has no validation split: pass `validation_file` or `held_out_documents`"):
        run("--streaming", "--dataset_name", data, "--text_column_name", "body", "--tokenizer_name",
            word_tokenizer_dir, "--max_train_steps", 3, "--output_dir", tmp_path / "out2")
    assert not (tmp_path / "out2").exists()


@pytest.mark.parametrize("change, message", [
    ({"--max_train_steps": None}, "`streaming` needs `max_train_steps`"),
    ({"--held_out_documents": None}, "needs held-out text"),
    ({"--train_file": None}, "needs `dataset_name` or `train_file`"),
    ({"--checkpointing_steps": "epoch"}, "'epoch' does not apply"),
    ({"--preprocessing_num_workers": 2}, "does not apply with `streaming`"),
    ({"--validation_file": "CORPUS"}, "either `validation_file` or `held_out_documents`"),
    ({"--streaming": None}, "`held_out_documents` applies with `streaming` only"),
    ({"--shuffle_buffer_size": 0}, "`shuffle_buffer_size` must be at least 1"),
    ({"--held_out_documents": 500}, "leaves nothing to train on"),
])
def test_bad_combinations_fail_before_writing_anything(tmp_path, corpus, word_tokenizer_dir, change, message):
    args = {"--streaming": "", "--train_file": corpus, "--held_out_documents": 10, "--max_train_steps": 2,
            "--tokenizer_name": word_tokenizer_dir, "--output_dir": tmp_path / "out"}
    args |= {key: corpus if value == "CORPUS" else value for key, value in change.items()}
    argv = [item for key, value in args.items() if value is not None for item in (key, value) if item != ""]
    with pytest.raises(InputError, match=message):
        run(*argv)
    assert not (tmp_path / "out").exists()


def streamed_args(corpus, tokenizer_dir) -> list[str]:
    """MAGIC-AT, accumulation 2, 8 steps = 16 micro-batches of 4 blocks per process, a checkpoint after 8. One pass
    holds 48 blocks of 128 tokens (12 micro-batches; 6 per process on two): the resumed part crosses into the second
    pass on one process, and on two the checkpoint itself is inside the second pass."""
    return ["--streaming", "--train_file", str(corpus), "--held_out_documents", "10", "--tokenizer_name",
            tokenizer_dir, "--shuffle_buffer_size", "16", "--max_seq_length", "128", "--per_device_train_batch_size",
            "4", "--gradient_accumulation_steps", "2", "--max_train_steps", "8", "--checkpointing_steps", "4",
            "--sampler", "magic-at", "--anchor_eval_steps", "2", "--anchor_eval_samples", "8",
            "--max_eval_samples", "8", "--learning_rate", "2e-3"]


def test_the_resume_runs_cross_passes(corpus):
    raw = load_streaming_text(data_args(corpus))
    per_process = [len(list(rank_blocks(raw, make_word_tokenizer(), 128, seed=0, shuffle_buffer_size=16, rank=rank,
                                        world_size=world))) for rank, world in ((0, 1), (0, 2), (1, 2))]
    assert per_process == [48, 24, 24]


@pytest.mark.slow
def test_resume_equals_an_uninterrupted_run(tmp_path, corpus, word_tokenizer_dir, monkeypatch):
    args = streamed_args(corpus, word_tokenizer_dir)
    straight = run(*args, "--output_dir", tmp_path / "straight")
    run_until_first_checkpoint(lambda: run(*args, "--output_dir", tmp_path / "resumed"), monkeypatch)
    assert [p.name for p in list_checkpoints(tmp_path / "resumed")] == ["step_4"]
    resumed = run(*args, "--output_dir", tmp_path / "resumed", "--resume_from_checkpoint", "latest")
    files = [(tmp_path / name / "model.safetensors").read_bytes() for name in ("straight", "resumed")]
    assert files[0] == files[1]  # bit-identical weights
    assert resumed.archs == straight.archs[4:]
    logs = [[json.loads(line) for line in (tmp_path / name / "train_log.jsonl").read_text().splitlines()]
            for name in ("straight", "resumed")]
    assert logs[0] == logs[1]  # same losses, lr and children at every step
    assert resumed.results["train_tokens"] == straight.results["train_tokens"] > 0
    assert AutoTokenizer.from_pretrained(tmp_path / "resumed").get_vocab() == make_word_tokenizer().get_vocab()


RESUME_WORKER = textwrap.dedent("""
    import hashlib, json, os, sys
    import magic_bert.training.recipe as pretraining
    from magic_bert.training.arguments import parse_pretrain_args

    out, args = sys.argv[1], json.loads(sys.argv[2])
    straight = pretraining.pretrain(parse_pretrain_args(args + ["--output_dir", f"{out}/straight"]))
    real_save = pretraining.save_checkpoint

    def save_then_stop(*a, **k):
        real_save(*a, **k)
        raise KeyboardInterrupt

    pretraining.save_checkpoint = save_then_stop
    try:
        pretraining.pretrain(parse_pretrain_args(args + ["--output_dir", f"{out}/resumed"]))
    except KeyboardInterrupt:
        pass
    pretraining.save_checkpoint = real_save
    resumed = pretraining.pretrain(parse_pretrain_args(args + ["--output_dir", f"{out}/resumed",
                                                              "--resume_from_checkpoint", "latest"]))

    def digest(result):
        state = result.model.state_dict()
        return hashlib.sha256(b"".join(state[k].contiguous().numpy().tobytes() for k in sorted(state))).hexdigest()

    with open(f"{out}/rank{os.environ['RANK']}.json", "w") as f:
        json.dump({"straight": digest(straight), "resumed": digest(resumed), "archs": [straight.archs, resumed.archs],
                   "tokens": [straight.results["train_tokens"], resumed.results["train_tokens"]],
                   "num_processes": resumed.results["num_processes"]}, f)
""")


@pytest.mark.slow
def test_two_process_resume_equals_an_uninterrupted_run(tmp_path, corpus, word_tokenizer_dir):
    run_two_processes(RESUME_WORKER, tmp_path / "worker.py", tmp_path / "runs",
                      json.dumps(streamed_args(corpus, word_tokenizer_dir)), port=29542)
    ranks = [json.loads((tmp_path / "runs" / f"rank{r}.json").read_text()) for r in (0, 1)]
    for report in ranks:
        assert report["num_processes"] == 2
        assert report["straight"] == report["resumed"]  # bit-identical weights
        assert report["archs"][0][4:] == report["archs"][1]
        assert report["tokens"][0] == report["tokens"][1] > 0
    assert ranks[0]["resumed"] == ranks[1]["resumed"]
    saved = [(tmp_path / "runs" / name / "model.safetensors").read_bytes() for name in ("straight", "resumed")]
    assert saved[0] == saved[1]
