"""Shared fixtures: tiny configs and inputs made here, never downloaded."""

import os
import tempfile

# Tests never touch the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# evaluate copies metric scripts into a modules cache and makes a metrics folder: both in a temporary place, not ~.
_CACHE = tempfile.mkdtemp(prefix="magic_bert_tests_")
os.environ["HF_MODULES_CACHE"] = os.path.join(_CACHE, "modules")
os.environ["HF_METRICS_CACHE"] = os.path.join(_CACHE, "metrics")

import pytest  # noqa: E402
import torch  # noqa: E402

from magic_bert import MagicBertConfig  # noqa: E402

TOLERANCE = 1e-5

# The first lines of a subprocess script that must run without magic_bert (remote code, a stock tokenizer).
BLOCK_MAGIC_BERT = """import importlib.abc, sys

class BlockMagicBert(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "magic_bert" or name.startswith("magic_bert."):
            raise ImportError("magic_bert is blocked in this process")

sys.meta_path.insert(0, BlockMagicBert())
try:
    import magic_bert  # noqa: F401
    raise SystemExit("magic_bert should not be importable here")
except ImportError:
    pass
"""


@pytest.fixture
def tiny_config() -> MagicBertConfig:
    """The `tiny` preset with dropout off, so outputs are deterministic in train mode too."""
    return MagicBertConfig.from_preset("tiny", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def make_batch(vocab_size: int = 1000, batch: int = 3, seq: int = 12, seed: int = 0, pad_from: int = 7):
    """Random ids with the last sequence right-padded from position `pad_from` (pad id 0)."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, vocab_size, (batch, seq), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[-1, pad_from:] = 0
    input_ids[-1, pad_from:] = 0
    return input_ids, attention_mask


@pytest.fixture
def batch():
    return make_batch()


def max_diff(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Max abs difference, over real tokens only when `mask` (batch, seq) is given."""
    if mask is not None:
        keep = mask.bool()
        a, b = a[keep], b[keep]
    return (a - b).abs().max().item()


def make_word_tokenizer():
    """A BERT tokenizer for the synthetic corpus: specials, its words, punctuation (whole words: no training, so
    tests share it and it is fast)."""
    from transformers import BertTokenizer

    from magic_bert.synthetic_corpus import vocabulary

    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", *sorted(vocabulary())]
    return BertTokenizer(vocab={token: index for index, token in enumerate(tokens)})


@pytest.fixture(scope="session")
def word_tokenizer_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("word_tokenizer")
    make_word_tokenizer().save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def trained_supernet_dir(tmp_path_factory, word_tokenizer_dir):
    """A tiny supernet pre-trained for a few dozen steps by the recipe (shared by search, export and analysis tests)."""
    from magic_bert.training.arguments import parse_pretrain_args
    from magic_bert.training.recipe import pretrain

    out = tmp_path_factory.mktemp("trained") / "supernet"
    pretrain(parse_pretrain_args([
        "--output_dir", str(out), "--tokenizer_name", word_tokenizer_dir, "--synthetic_documents", "300",
        "--max_seq_length", "64", "--per_device_train_batch_size", "8", "--max_train_steps", "40",
        "--learning_rate", "2e-3", "--sampler", "magic-t"]))
    return out


def run_until_first_checkpoint(start, monkeypatch) -> None:
    """``start()`` a pre-training run that stops, as if killed, right after its first checkpoint is saved."""
    import magic_bert.training.recipe as recipe

    real_save = recipe.save_checkpoint

    def save_then_crash(*args, **kwargs):
        real_save(*args, **kwargs)
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(recipe, "save_checkpoint", save_then_crash)
        with pytest.raises(KeyboardInterrupt):
            start()


def run_two_processes(worker_source: str, worker: "os.PathLike | str", *args: str, port: int,
                      env: dict | None = None) -> None:
    """Write ``worker_source`` to ``worker`` and run it under torchrun as 2 CPU processes (gloo, one thread each,
    the repository first on the path); a failure shows the end of its stderr."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    Path(worker).write_text(worker_source)
    environment = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1",
                   "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")]), **(env or {})}
    completed = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                                "--master_port", str(port), str(worker), *map(str, args)],
                               capture_output=True, text=True, cwd=repo, env=environment, timeout=600)
    assert completed.returncode == 0, completed.stderr[-4000:]


def run_quick_study(study, arguments, out) -> tuple[dict, dict]:
    """A staged bench's ``--quick`` run twice in ``out`` (the second only reports), its generated GLUE dev files
    deleted first: a study that reads held-out slices of the training files must never need dev."""
    study.make_plan(arguments(quick=True, output_dir=str(out)))  # the quick inputs
    for dev in (out / "quick_inputs" / "glue").glob("*/dev.tsv"):
        dev.unlink()
    argv = ["--quick", "--output_dir", str(out)]
    return study.main(argv), study.main(argv)
