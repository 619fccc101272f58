"""Fine-tune on GLUE (one task or all eight), with the paper's practice available: distillation from a fine-tuned
teacher, RTE/MRPC/STS-B from an MNLI checkpoint, a small learning-rate grid.

    accelerate launch recipes/finetune_glue.py --model_name_or_path outputs/model --task_name mrpc --output_dir out/
    python recipes/finetune_glue.py --model_name_or_path outputs/model --task_name all --data_dir glue_data/ ...
    python recipes/finetune_glue.py ... --task_name rte --init_from_mnli out/mnli/mnli/best_model \\
        --teacher_name_or_path bert-rte --kd_alpha 0.5 --learning_rates 1e-5,2e-5,3e-5

Data: `nyu-mll/glue` from the Hub by default, or --train_file/--validation_file/--test_file (csv/tsv/json, the Hub's
column names or the original GLUE .tsv layouts), or --data_dir holding the original GLUE folders (MRPC/train.tsv ...).
Without --task_name, --train_file/--validation_file are your own data (--text_columns, --label_column).
Outputs: eval_results.json, all_results.json, train_log.jsonl (every epoch), submission/*.tsv (GLUE server format),
results.md (the paper's table), <task>/best_model/.
"""

from magic_bert.glue.command import main

if __name__ == "__main__":
    main()
