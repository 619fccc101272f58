"""Search a trained supernet for the best child under parameter / FLOPs / latency budgets.

    python recipes/search.py --supernet outputs/tiny-supernet --max_params 150e3 --output_dir outputs/search
    accelerate launch recipes/search.py --supernet outputs/supernet-60m --max_params 60e6 \\
        --dataset_name wikitext --dataset_config_name wikitext-103-raw-v1 --output_dir outputs/search-60m

Children are scored with the supernet's inherited weights on held-out masked-LM loss (or accuracy), on text from
--validation_file / --dataset_name (default: the text the supernet held out in pre-training, as its all_results.json
records it, in blocks of its length; the blocks its anchor checks used are skipped). Outputs in
--output_dir: arch.json (the best arch, its params, FLOPs and scores), candidates.jsonl (every evaluated arch),
pareto.png (params vs score, the front marked), latency_table.json (with --measure_latency); a top-k table is printed.
The same command is installed as `magic-bert-search`; the code is in magic_bert/search/command.py.
"""

from magic_bert.search.command import main_search as main
from magic_bert.search.command import parse_search_args as parse_args
from magic_bert.search.command import search

__all__ = ["main", "parse_args", "search"]

if __name__ == "__main__":
    main()
