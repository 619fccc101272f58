"""Search metrics that predict fine-tuned quality: distillation loss, embedding agreement, a task probe."""

import json
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

from magic_bert.compression import bert_layers_arch, space_from_bert, supernet_from_bert
from magic_bert.data import held_out_blocks, load_held_out_text
from magic_bert.errors import InputError
from magic_bert.search.proxies import TeacherReference, distillation_loss, embedding_agreement
from magic_bert.search.task_probe import load_probe_task, probe_data, probe_score, ridge_fit, ridge_predict

from .test_finetuning import write_glue_dir

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "recipes"))
import search as search_recipe  # noqa: E402

BERT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
            max_position_embeddings=128, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


@pytest.fixture(scope="module")
def folders(tmp_path_factory, word_tokenizer_dir):
    """A tiny BERT and the supernet around it (magnitude-inherited), each saved with the tokenizer."""
    root = tmp_path_factory.mktemp("proxies")
    tokenizer = AutoTokenizer.from_pretrained(word_tokenizer_dir)
    torch.manual_seed(0)
    BertForMaskedLM(BertConfig(vocab_size=len(tokenizer), **BERT)).save_pretrained(root / "bert")
    tokenizer.save_pretrained(root / "bert")
    supernet = supernet_from_bert(str(root / "bert"), space_from_bert(root / "bert"), method="magnitude")
    supernet.save_pretrained(root / "supernet")
    tokenizer.save_pretrained(root / "supernet")
    return root


@pytest.fixture(scope="module")
def reference(folders):
    from magic_bert import MagicBertSupernetForMaskedLM

    tokenizer = AutoTokenizer.from_pretrained(folders / "bert")
    blocks = held_out_blocks(load_held_out_text(synthetic_documents=300, seed=0), tokenizer, 32)
    batches = [{k: torch.as_tensor(blocks[i:i + 4][k]) for k in ("input_ids", "attention_mask")} for i in (0, 4)]
    teacher = BertForMaskedLM.from_pretrained(folders / "bert").eval()
    supernet = MagicBertSupernetForMaskedLM.from_pretrained(folders / "supernet").eval()
    return supernet, teacher, TeacherReference.compute(teacher, batches)


def test_the_teachers_own_arch_scores_a_perfect_distillation(reference):
    supernet, teacher, ref = reference
    own = bert_layers_arch(teacher.config, range(2))
    scores = distillation_loss(supernet, ref, own).proxies
    assert scores["distill"] == pytest.approx(0, abs=1e-6) and scores["embedding"] == pytest.approx(1, abs=1e-6)
    assert embedding_agreement(supernet, ref, own).proxies["embedding"] == pytest.approx(1, abs=1e-6)


def _hand_distill(supernet, teacher, batches, arch, pairs, attention_index):
    """The three terms written out for one arch: MSE per pair, relation KLs (4 heads) and 1 - cos, batch means."""
    child = supernet.export(arch).eval()
    totals = torch.zeros(3, dtype=torch.float64)
    for batch in batches:
        mask = batch["attention_mask"]
        with torch.no_grad():
            mine = child.bert(**batch, output_hidden_states=True).hidden_states
            theirs = teacher.bert(**batch, output_hidden_states=True).hidden_states
        real = mask.unsqueeze(-1).float()
        mse = torch.stack([((mine[s] - theirs[t]) ** 2 * real).sum() / (real.sum() * 32) for s, t in pairs]).mean()
        op = child.bert.encoder.layer[attention_index]
        attention = teacher.bert.encoder.layer[-1].attention.self
        kls = []
        for name in ("query", "key", "value"):
            with torch.no_grad():
                s, t = getattr(op, name)(mine[attention_index]), getattr(attention, name)(theirs[-2])
            rel = [F.log_softmax((x.view(*x.shape[:2], 4, -1).transpose(1, 2) @ x.view(*x.shape[:2], 4, -1)
                                  .permute(0, 2, 3, 1)) / (x.shape[-1] // 4) ** 0.5
                                 + (1 - mask[:, None, None, :]) * torch.finfo(torch.float32).min, -1)
                   for x in (s, t)]
            rows = (torch.exp(rel[1]) * (rel[1] - rel[0])).sum(-1) * mask[:, None, :]
            kls.append(rows.sum() / (mask.sum() * 4))
        pooled = [(h[-1] * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True) for h in (mine, theirs)]
        cosine = (1 - F.cosine_similarity(*pooled, dim=-1)).mean()
        totals += torch.stack([mse, torch.stack(kls).mean(), cosine]).double() / len(batches)
    return totals.tolist()


def test_distillation_loss_of_a_cut_equals_a_hand_computation(reference):
    supernet, teacher, ref = reference
    arch = ["heads:2", "ffn:32", "identity", "identity"]  # its one layer ends at hidden_states[2], matched with 2
    scores = distillation_loss(supernet, ref, arch).proxies
    hidden, attention, embedding = _hand_distill(supernet, teacher, ref.batches, arch, [(2, 2)], 0)
    assert scores["distill_hidden"] == pytest.approx(hidden, rel=1e-5)
    assert scores["distill_attention"] == pytest.approx(attention, rel=1e-4)
    assert scores["distill_embedding"] == pytest.approx(embedding, rel=1e-5)
    assert scores["distill"] == pytest.approx(hidden + attention + embedding, rel=1e-5)
    assert scores["embedding"] == pytest.approx(embedding_agreement(supernet, ref, arch).proxies["embedding"])


def test_children_with_nothing_to_compare_are_not_rewarded(reference):
    supernet, _, ref = reference
    no_attention = distillation_loss(supernet, ref, ["ffn:64", "ffn:64", "ffn:64", "ffn:64"]).proxies
    empty = distillation_loss(supernet, ref, ["identity"] * 4).proxies
    assert no_attention["distill_attention"] > 0  # the KL of the teacher's relations to uniform ones, not 0
    # An empty child's output (its embeddings) is matched with the teacher's last layer.
    expected = 0.0
    for batch, targets in zip(ref.batches, ref.hidden_states, strict=True):
        with torch.no_grad():
            output = supernet.bert(**batch, arch=["identity"] * 4).last_hidden_state
        real = batch["attention_mask"].unsqueeze(-1)
        expected += float(((output - targets[-1]) ** 2 * real).sum() / (real.sum() * 32)) / len(ref.batches)
    assert empty["distill_hidden"] == pytest.approx(expected, rel=1e-5) and expected > 0


def test_ridge_is_the_normal_equations():
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 5, generator=generator, dtype=torch.float64), torch.randn(40, 2, generator=generator,
                                                                                    dtype=torch.float64)
    weights = ridge_fit(x, y, 0.5)
    design = torch.cat([x, torch.ones(40, 1, dtype=x.dtype)], 1)
    gradient = design.T @ (design @ weights - y) + 0.5 * torch.cat([weights[:-1], torch.zeros(1, 2,
                                                                                              dtype=x.dtype)])
    assert gradient.abs().max() < 1e-9  # the penalised least-squares optimum (the bias is not penalised)
    assert torch.allclose(ridge_predict(x, weights), design @ weights)


def test_the_task_probe_scores_a_held_out_slice_of_the_train_file(reference, folders, tmp_path):
    supernet, _, _ = reference
    glue = write_glue_dir(tmp_path / "glue", tasks=["sst2"], n_train=40)
    (glue / "SST-2" / "dev.tsv").unlink()  # never read
    task, rows, held = load_probe_task("sst2", str(glue), None, None)
    assert held is None and len(rows) == 40
    tokenizer = AutoTokenizer.from_pretrained(folders / "bert")
    data = probe_data(task, rows, None, tokenizer, 30, 10, 32, 8, 0, "cpu")
    assert len(data.train_labels) == 30 and len(data.held_out_labels) == 10
    arch = ["mha:4", "ffn:64", "identity", "identity"]
    score = probe_score(supernet, data, arch, 1.0).proxies
    child = supernet.export(arch).eval()

    def features(batches):
        with torch.no_grad():
            return torch.cat([(child.bert(**b).last_hidden_state.double() * b["attention_mask"][..., None]).sum(1)
                              / b["attention_mask"].sum(1, keepdim=True) for b in batches])

    weights = ridge_fit(features(data.train), F.one_hot(data.train_labels, 2).double(), 1.0)
    predicted = ridge_predict(features(data.held_out), weights).argmax(1)
    assert score["task"] == pytest.approx((predicted == data.held_out_labels).double().mean().item())


def test_probe_batches_in_order_of_length_score_as_in_the_drawn_order(reference, folders, tmp_path):
    supernet, _, _ = reference
    glue = write_glue_dir(tmp_path / "glue", tasks=["stsb"], n_train=60)
    task, rows, _ = load_probe_task("stsb", str(glue), None, None)
    tokenizer = AutoTokenizer.from_pretrained(folders / "bert")
    drawn, by_length = (probe_data(task, rows, None, tokenizer, 40, 20, 32, 8, 0, "cpu", by_length=flag)
                        for flag in (False, True))
    for part in ("train", "held_out"):
        sorted_lengths = [int(n) for b in getattr(by_length, part) for n in b["attention_mask"].sum(1)]
        assert sorted_lengths == sorted(sorted_lengths)
        tokens = [sum(b["input_ids"].numel() for b in getattr(data, part)) for data in (drawn, by_length)]
        assert tokens[1] < tokens[0]  # less padding
        labels = [getattr(data, f"{part}_labels") for data in (drawn, by_length)]
        assert sorted(labels[0].tolist()) == sorted(labels[1].tolist()) and not torch.equal(*labels)
    arch = ["mha:4", "ffn:64", "conv:3", "identity"]
    scores = [probe_score(supernet, data, arch, 1.0).proxies for data in (drawn, by_length)]
    assert scores[1] == pytest.approx(scores[0], abs=1e-6)  # float32 forwards of other batch shapes


@pytest.mark.parametrize("extra, message", [
    (["--metric", "task"], "`metric` task needs labelled data"),
    (["--task_name", "sst2"], "`task_name` / `task_train_file` are read by `metric` task only"),
    (["--metric", "task", "--task_name", "sst2", "--task_data_dir", "nowhere"], "has no SST-2/train.tsv"),
    (["--metric", "distill", "--teacher_name_or_path", "TEACHER_OTHER_WIDTH"], "must match the supernet's hidden"),
    (["--metric", "task", "--task_train_file", "x.csv", "--task_train_samples", "1"], "`task_train_samples`"),
    (["--teacher_name_or_path", "x"], "`teacher_name_or_path` is read by `metric` distill and embedding only"),
    (["--metric", "task", "--task_train_file", "CSV", "--task_text_columns", "nope"],
     r"`text_columns` \['nope'\] are not columns of"),
])
def test_bad_metric_inputs_write_nothing(folders, tmp_path, extra, message):
    other = tmp_path / "other"
    BertForMaskedLM(BertConfig(vocab_size=100, **{**BERT, "hidden_size": 16})).save_pretrained(other)
    out = tmp_path / "out"
    argv = ["--supernet", str(folders / "supernet"), "--output_dir", str(out)]
    csv = tmp_path / "reviews.csv"
    csv.write_text("text,label\n" + "".join(f"sentence number {i},{i % 2}\n" for i in range(12)))
    argv += [str(other) if value == "TEACHER_OTHER_WIDTH" else str(csv) if value == "CSV" else value
             for value in extra]
    with pytest.raises(InputError, match=message):
        search_recipe.search(search_recipe.parse_args(argv))
    assert not out.exists()


@pytest.mark.parametrize("metric", ["distill", "embedding", "task"])
def test_search_by_a_proxy_records_it(folders, tmp_path, metric, capsys):
    out = tmp_path / "search"
    task = ["--task_name", "sst2", "--task_data_dir", str(write_glue_dir(tmp_path / "glue", tasks=["sst2"])),
            "--task_train_samples", "16", "--task_eval_samples", "8"] if metric == "task" else []
    search_recipe.search(search_recipe.parse_args([
        "--supernet", str(folders / "supernet"), "--output_dir", str(out), "--metric", metric,
        "--population_size", "4", "--generations", "2", "--num_eval_batches", "1", "--per_device_eval_batch_size",
        "4", "--max_seq_length", "32", "--seed_archs", "none", *task]))
    best = json.loads((out / "arch.json").read_text())
    rows = [json.loads(line) for line in (out / "candidates.jsonl").read_text().splitlines()]
    values = [row["proxies"][metric] for row in rows]
    assert best["metric"] == metric and best["score"] == (min(values) if metric == "distill" else max(values))
    assert len(rows) == 8
    assert best["proxies"][metric] == best["score"]
    assert best["eval_loss"] is None and all(row["loss"] is None for row in rows)  # not computed: null, not NaN
    assert f"{metric}" in capsys.readouterr().out.splitlines()[0]  # the table shows the metric ranked by


def test_bf16_scoring_runs_the_children_in_bf16_and_scores_close_to_fp32(folders, monkeypatch):
    from accelerate import Accelerator

    from magic_bert.search.arguments import SearchArguments
    from magic_bert.search.command import scoring_blocks
    from magic_bert.search.scoring import metric_score_fn
    from magic_bert.supernet_inputs import load_supernet, load_tokenizer

    tokenizer, accelerator = load_tokenizer(folders / "supernet"), Accelerator()
    arch = ["heads:2", "ffn:32", "mha:4", "ffn:64"]
    seen = []
    scores = {}
    for precision in ("fp32", "bf16"):
        args = search_recipe.parse_args(["--supernet", str(folders / "supernet"), "--output_dir", "unused",
                                         "--metric", "loss", "--scoring_precision", precision,
                                         "--num_eval_batches", "1", "--per_device_eval_batch_size", "4",
                                         "--max_seq_length", "32"])
        supernet = load_supernet(folders / "supernet")
        projection = supernet.bert.encoder.layer[0].ops["heads_2"].query  # a matmul: bf16 under the autocast
        projection.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
        score = metric_score_fn(args, supernet, scoring_blocks(args, tokenizer, folders / "supernet", accelerator),
                                tokenizer, accelerator)
        scores[precision] = score(arch).loss
        assert isinstance(args, SearchArguments)
    assert seen[0] == torch.float32 and seen[-1] == torch.bfloat16
    assert scores["bf16"] == pytest.approx(scores["fp32"], rel=0.01) and scores["bf16"] != scores["fp32"]
    with pytest.raises(InputError, match="`scoring_precision` 'fp16' is not a precision"):
        SearchArguments(supernet="x", output_dir="y", scoring_precision="fp16").check()
