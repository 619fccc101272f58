"""Rank correlation of one or more supernets with standalone training.

    python recipes/rank_correlation.py --supernet outputs/spos outputs/magic-at --num_children 16 \\
        --max_params 150e3 --standalone_steps 1000 --cache_dir outputs/standalone_cache --output_dir outputs/rank

--num_children children are drawn inside the budget (--children_seed). Each is scored on the same held-out blocks
with the weights it inherits from every supernet, and once more after training it alone from scratch: the fixed-arch
mode of recipes/pretrain.py, --standalone_steps steps on --train_file (default: the embedded corpus), with the
supernet's tokenizer and config. Standalone results are cached in --cache_dir by arch and schedule, so later calls
(other supernets, more children) train only what is missing. Outputs in --output_dir: rank_correlation.json (every
score, Kendall tau and Spearman rho per supernet) and rank_scatter.png; a table is printed.

The same command is installed as `magic-bert-rank-correlation`; the code is in magic_bert/analysis/command.py.
"""

from magic_bert.analysis.command import correlate
from magic_bert.analysis.command import format_rank_table as format_table
from magic_bert.analysis.command import main_rank_correlation as main
from magic_bert.analysis.command import parse_rank_correlation_args as parse_args

__all__ = ["correlate", "format_table", "main", "parse_args"]

if __name__ == "__main__":
    main()
