"""``magic-bert-pretrain`` (and ``recipes/pretrain.py``): parse the options, run every phase of the recipe."""

from __future__ import annotations

from ..cli import command_main, console_script
from .arguments import PretrainArguments
from .recipe import pretrain

main = command_main(PretrainArguments, pretrain, "Pre-train a MagicBert supernet or a fixed arch.")
console = console_script(main)  # magic-bert-pretrain: exits 0 on success (main returns the PretrainResult)

if __name__ == "__main__":
    main()
