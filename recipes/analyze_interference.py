"""Gradient interference between children of a trained supernet, for one shared operator.

    python recipes/analyze_interference.py --supernet outputs/tiny-supernet --layer 1 --op ffn:256 \\
        --output_dir outputs/interference

Children that all use --op at --layer are run on the same held-out batches (eval mode, fixed masks). For each, the
gradient of its masked-LM loss with respect to that op's parameters, and the op's input and output, are kept.
Outputs in --output_dir:
  similarity_matrix.json / .png   pairwise gradient cosine (and input/output cosine) of --num_children children
                                  (or those of --children_file), averaged over --num_batches batches
  similarity_vs_m.json / .png     for m = 1..L-1 layers of difference: mean and std over --pairs_per_m random pairs
A table of similarity against m is printed.

The same command is installed as `magic-bert-interference`; the code is in magic_bert/analysis/command.py.
"""

from magic_bert.analysis.command import analyze, format_curve
from magic_bert.analysis.command import main_interference as main
from magic_bert.analysis.command import parse_interference_args as parse_args

__all__ = ["analyze", "format_curve", "main", "parse_args"]

if __name__ == "__main__":
    main()
