"""Export a supernet child as a standard HF checkpoint (safetensors, config with the arch, tokenizer, modeling code,
model card), optionally as a plain BERT and/or pushed to the Hub.

    python recipes/export.py --supernet outputs/tiny-supernet --arch outputs/search/arch.json --output_dir model/
    python recipes/export.py ... --head sequence_classification --num_labels 3 --init scratch
    python recipes/export.py ... --format bert          # BERT-shaped archs: a stock BertForMaskedLM, no remote code
    python recipes/export.py ... --glue_results glue/all_results.json --push_to_hub --hub_model_id me/magic-bert-60m
"""

from __future__ import annotations

import argparse
import sys

from magic_bert.search.export import FORMATS, HEADS, INITS, export_checkpoint, push_to_hub


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--supernet", required=True, help="a pre-training output folder")
    parser.add_argument("--arch", required=True, help="arch.json from search, a JSON list, or op names")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--overwrite_output_dir", action="store_true")
    parser.add_argument("--head", default="masked_lm", choices=HEADS)
    parser.add_argument("--num_labels", type=int, default=2, help="with --head sequence_classification")
    parser.add_argument("--init", default="inherit", choices=INITS, help="supernet weights, or fresh ones")
    parser.add_argument("--format", default="magic_bert", choices=FORMATS)
    parser.add_argument("--glue_results", help="JSON of GLUE dev results for the card's model-index")
    parser.add_argument("--model_name", help="name in the model card (default: the hub id or the folder name)")
    parser.add_argument("--seed", type=int, default=42, help="initialisation of fresh weights")
    parser.add_argument("--push_to_hub", action="store_true")
    parser.add_argument("--hub_model_id")
    parser.add_argument("--hub_token")
    parser.add_argument("--hub_private_repo", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        if args.push_to_hub and not args.hub_model_id:
            raise ValueError("--push_to_hub needs --hub_model_id.")
        output = export_checkpoint(args.supernet, args.arch, args.output_dir, head=args.head, init=args.init,
                                   format=args.format, num_labels=args.num_labels, glue_results=args.glue_results,
                                   overwrite_output_dir=args.overwrite_output_dir,
                                   model_name=args.model_name or args.hub_model_id, seed=args.seed)
    except ValueError as error:  # bad input: one clear message, nothing written
        sys.exit(f"error: {error}")
    print(f"exported to {output}")
    if args.push_to_hub:
        push_to_hub(output, args.hub_model_id, args.hub_token, args.hub_private_repo)
        print(f"pushed to https://huggingface.co/{args.hub_model_id}")


if __name__ == "__main__":
    main()
