"""Export a supernet child as a standard HF checkpoint (safetensors, config with the arch, tokenizer, modeling code,
model card), optionally as a plain BERT and/or pushed to the Hub.

    python recipes/export.py --supernet outputs/tiny-supernet --arch outputs/search/arch.json --output_dir model/
    python recipes/export.py ... --head sequence_classification --num_labels 3 --init scratch
    python recipes/export.py ... --format bert          # BERT-shaped archs: a stock BertForMaskedLM, no remote code
    python recipes/export.py ... --glue_results glue/all_results.json --push_to_hub --hub_model_id me/magic-bert-60m

The same command is installed as `magic-bert-export`; the code is in magic_bert/search/command.py.
"""

from magic_bert.search.command import export, parse_export_args
from magic_bert.search.command import main_export as main

__all__ = ["export", "main", "parse_export_args"]

if __name__ == "__main__":
    main()
