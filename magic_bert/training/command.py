"""``magic-bert-pretrain`` (and ``recipes/pretrain.py``): parse the options, run every phase of the recipe."""

from __future__ import annotations

from ..cli import run
from .arguments import parse_pretrain_args
from .recipe import PretrainResult, pretrain


def main(argv: list[str] | None = None) -> PretrainResult:
    return run(pretrain, parse_pretrain_args(argv))


if __name__ == "__main__":
    main()
