"""Fine-tune on GLUE (one task or all eight) or on your own csv/tsv/json files, with the paper's practice available:
distillation from a fine-tuned teacher, RTE/MRPC/STS-B from an MNLI checkpoint, a small learning-rate grid.

    accelerate launch recipes/finetune_glue.py --model_name_or_path outputs/model --task_name mrpc --output_dir out/
    python recipes/finetune_glue.py --model_name_or_path outputs/model --task_name all --data_dir glue_data/ ...
    python recipes/finetune_glue.py ... --task_name rte --init_from_mnli out/mnli/mnli/best_model \\
        --teacher_name_or_path bert-rte --kd_alpha 0.5 --learning_rates 1e-5,2e-5,3e-5
    python recipes/finetune_glue.py --model_name_or_path outputs/model --train_file reviews.csv \\
        --validation_file reviews_dev.csv --output_dir out/reviews   # your own data: no --task_name

Data: `nyu-mll/glue` from the Hub by default, or --train_file/--validation_file/--test_file (csv/tsv/json/jsonl, the
Hub's column names or the original GLUE .tsv layouts), or --data_dir holding the original GLUE folders (MRPC/train.tsv
...). Without --task_name the files are your own task: --text_columns (default: the columns other than the label and
idx, one or two) and --label_column (default: label; strings or integers are classes, floats regression).
Outputs: eval_results.json, all_results.json, train_log.jsonl (every epoch), submission/*.tsv (GLUE server format),
results.md, <task>/best_model/.
"""

from __future__ import annotations

from ..cli import command_main, console_script
from .arguments import FinetuneArguments
from .finetuning import finetune_glue

# Parse and check the arguments, then fine-tune; bad input exits with one message naming the flag.
main = command_main(FinetuneArguments, finetune_glue, __doc__)
console = console_script(main)  # magic-bert-glue: exits 0 on success (main returns the results)

__all__ = ["console", "main"]
