"""Pre-train a MagicBert supernet (SPOS / MAGIC-T / MAGIC-A / MAGIC-AT) or one fixed architecture with masked-LM.

    accelerate launch recipes/pretrain.py --output_dir outputs/tiny                      # embedded default, minutes
    accelerate launch recipes/pretrain.py --preset 60m --sampler magic-at --max_params 60e6 \\
        --dataset_name wikitext --dataset_config_name wikitext-103-raw-v1 --output_dir outputs/supernet-60m
    accelerate launch recipes/pretrain.py --arch outputs/search/arch.json --output_dir outputs/child   # fixed arch

The same command is installed as `magic-bert-pretrain`. Options follow transformers' run_mlm_no_trainer.py;
`--config FILE.yaml` holds any of them. Outputs in --output_dir: the model (save_pretrained) and tokenizer,
train_log.jsonl, anchor_history.jsonl, all_results.json, and step_N/ checkpoints (--checkpointing_steps; continue
with --resume_from_checkpoint latest). The phases are in magic_bert/training/recipe.py.
"""

from magic_bert.training.command import main

if __name__ == "__main__":
    main()
