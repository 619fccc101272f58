"""A tiny end-to-end tour of the models (offline, seconds on a CPU).

Builds the `tiny` supernet, samples children inside a parameter budget, exports one as a standalone
`MagicBertForMaskedLM`, saves it as an HF checkpoint, reloads it through `AutoModelForMaskedLM`, and turns a
BERT-shaped child into a plain transformers `BertForMaskedLM`; every step is checked against the supernet's logits.

    python recipes/demo.py [--preset tiny] [--output_dir outputs/demo] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
from pathlib import Path

import torch
from transformers import AutoModelForMaskedLM

import magic_bert
from magic_bert import MagicBertConfig, MagicBertSupernetForMaskedLM, to_bert
from magic_bert.errors import InputError
from magic_bert.io_utils import check_output_dir


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny", choices=sorted(magic_bert.PRESETS))
    parser.add_argument("--output_dir", default="outputs/demo", help="where the exported child checkpoint goes")
    parser.add_argument("--overwrite_output_dir", action="store_true", help="replace a non-empty --output_dir")
    parser.add_argument("--num_children", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    try:
        output_dir = check_output_dir(args.output_dir, args.overwrite_output_dir)
    except InputError as error:
        raise SystemExit(f"error: {error.as_flags()}") from None
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)

    config = MagicBertConfig.from_preset(args.preset)
    space = config.search_space
    supernet = MagicBertSupernetForMaskedLM(config).eval()
    print(f"{space}\nsupernet parameters: {supernet.num_parameters():,}")
    budget = (space.min_params + space.max_params) / 2
    input_ids = torch.randint(5, config.vocab_size, (2, 16))
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 10:] = 0

    rows = []
    with torch.no_grad():
        for _ in range(args.num_children):
            arch = space.sample(rng, max_params=budget)
            child = supernet.export(arch).eval()
            diff = (supernet(input_ids, attention_mask=attention_mask, arch=arch).logits
                    - child(input_ids, attention_mask=attention_mask).logits)[attention_mask.bool()].abs().max()
            rows.append({"arch": arch, "params": space.num_params(arch), "flops@128": space.flops(arch),
                         "export_max_abs_diff": diff.item()})

        print(f"\nchildren sampled under max_params={budget:,.0f}:")
        for row in rows:
            print(f"  {' '.join(row['arch']):<40} params={row['params']:>9,}  FLOPs@128={row['flops@128']:>12,}  "
                  f"|supernet - export|={row['export_max_abs_diff']:.1e}")

        # Save the first child as a standard checkpoint (temporary folder, renamed when complete) and reload it.
        arch = rows[0]["arch"]
        output_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".demo-", dir=output_dir.parent))
        supernet.export(arch).save_pretrained(staging / "child")
        reloaded = AutoModelForMaskedLM.from_pretrained(staging / "child").eval()
        reload_diff = (supernet(input_ids, attention_mask=attention_mask, arch=arch).logits
                       - reloaded(input_ids, attention_mask=attention_mask).logits)[attention_mask.bool()].abs().max()

        # A BERT-shaped child is a plain transformers BERT.
        half = config.num_hidden_layers // 2
        heads = next(op for op in config.candidate_ops if op.startswith("mha"))
        inner = [op for op in config.candidate_ops if op.startswith("ffn")][-1]
        bert_arch = [heads, inner] * half
        bert = to_bert(supernet.export(bert_arch)).eval()
        bert_diff = (supernet(input_ids, attention_mask=attention_mask, arch=bert_arch).logits
                     - bert(input_ids, attention_mask=attention_mask).logits)[attention_mask.bool()].abs().max()

    results = {"preset": args.preset, "children": rows, "saved_arch": arch,
               "auto_reload_max_abs_diff": reload_diff.item(), "bert_arch": bert_arch,
               "to_bert_max_abs_diff": bert_diff.item(), "bert_class": type(bert).__name__}
    (staging / "demo_results.json").write_text(json.dumps(results, indent=2))
    if output_dir.exists():
        shutil.rmtree(output_dir)
    shutil.move(str(staging), output_dir)
    print(f"\nsaved child {' '.join(arch)} to {output_dir / 'child'}; AutoModelForMaskedLM reload "
          f"|diff|={reload_diff.item():.1e}")
    print(f"BERT-shaped child {' '.join(bert_arch)} -> {type(bert).__name__}: |diff|={bert_diff.item():.1e}")
    print(f"results: {output_dir / 'demo_results.json'}")


if __name__ == "__main__":
    main()
