"""GPU check, one script: (1) bf16 supernet training steps (one sampled child per step, as SPOS pre-training) with
tokens/s and model-FLOPs utilisation, (2) a BERT-shaped exported child's forward (SDPA) against transformers'
``BertModel`` holding the same weights, (3) ``torch.compile`` of a sampled exported child against eager.

    python bench/gpu_check.py --output gpu_check.json          # CUDA: the 60m preset at batch 64 x 128
    python bench/gpu_check.py --quick --output /tmp/check.json  # the tiny preset, a few steps: seconds, CPU too

MFU = training FLOPs per token x tokens/s / ``peak_tflops`` (default: H200 dense bf16, 989). Training FLOPs per
token = 3 x the forward matmuls (backward = 2 x forward): the child's encoder by ``SearchSpace.flops`` plus the MLM
head (its dense layer and the decoder over the vocabulary, every position); embeddings, norms, softmax and the
optimizer are not counted, so the MFU is a slight underestimate. Training runs in fp32 weights under bf16 autocast
(what ``--mixed_precision bf16`` does) with fused AdamW on CUDA; inference and compile run bf16 weights on CUDA (fp32
on CPU, where bf16 is slow and not what is being checked).

Imports torch, transformers and magic_bert's model code only (no datasets / accelerate / evaluate), so a machine
with just torch and transformers runs it from a checkout (``PYTHONPATH=.``).
"""

from __future__ import annotations

import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import transformers

from magic_bert import MagicBertConfig, MagicBertSupernetForMaskedLM, to_bert
from magic_bert.cli import arg, parse_one, positive, run
from magic_bert.configuration_magic_bert import PRESETS
from magic_bert.errors import InputError
from magic_bert.io_utils import write_json_atomic
from magic_bert.optim import adamw_parameter_groups

sys.path.insert(0, str(Path(__file__).parent))
from timing import interleaved_medians, print_table  # noqa: E402

# What --quick replaces: a tiny run that only checks the script works.
QUICK = {"preset": "tiny", "batch": 8, "seq": 32, "train_steps": 3, "warmup_steps": 1, "rounds": 3}


@dataclass
class GpuCheckArguments:
    preset: str = arg("60m", "Search-space preset of the supernet.", choices=sorted(PRESETS))
    batch: int = arg(64, "Sequences per step.")
    seq: int = arg(128, "Tokens per sequence.")
    train_steps: int = arg(30, "Timed training steps (one sampled child each).")
    warmup_steps: int = arg(5, "Untimed training steps first (CUDA context, kernels, allocator).")
    rounds: int = arg(20, "Timed rounds of each inference candidate.")
    peak_tflops: float = arg(989.0, "Peak dense bf16 TFLOP/s of the device, for MFU (H200 / H100 SXM: 989).")
    compile_backend: str = arg("inductor", "torch.compile backend for the compiled child.")
    device: str = arg("auto", "cuda, cpu, or auto (cuda when available).")
    seed: int = arg(0, "Seed of weights, inputs and children.")
    quick: bool = arg(False, f"A tiny run to check the script: {QUICK}.")
    output: str = arg(None, "Write the results as JSON here.")

    def check(self) -> None:
        if self.quick:
            for name, value in QUICK.items():
                setattr(self, name, value)
        positive(batch=self.batch, seq=self.seq, train_steps=self.train_steps, rounds=self.rounds,
                 peak_tflops=self.peak_tflops)
        if self.warmup_steps < 0:
            raise InputError(f"`warmup_steps` must be at least 0, got {self.warmup_steps}.")
        if self.seq > PRESETS[self.preset]["max_position_embeddings"]:
            raise InputError(f"`seq` {self.seq} is longer than the {self.preset} preset's positions "
                             f"({PRESETS[self.preset]['max_position_embeddings']}).")
        if self.device not in ("auto", "cuda", "cpu"):
            raise InputError(f"`device` must be cuda, cpu or auto, got {self.device!r}.")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise InputError("`device` cuda: no CUDA device here.")
        if self.device == "auto":
            self.device = "cuda" if torch.cuda.is_available() else "cpu"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def synced(fn, device: torch.device):
    """``fn`` followed by a device sync, so host timers measure the kernels and not their launch."""
    def call():
        fn()
        synchronize(device)
    return call


def mlm_batch(vocab_size: int, batch: int, seq: int, generator: torch.Generator, device) -> dict:
    """Random ids, 15 % of positions masked ([MASK] = 4) and predicted, the rest -100."""
    input_ids = torch.randint(5, vocab_size, (batch, seq), generator=generator)
    masked = torch.rand(batch, seq, generator=generator) < 0.15
    labels = torch.where(masked, input_ids, -100)
    input_ids = torch.where(masked, 4, input_ids)
    return {k: v.to(device) for k, v in (("input_ids", input_ids), ("attention_mask", torch.ones_like(input_ids)),
                                         ("labels", labels))}


def train_flops_per_token(config: MagicBertConfig, arch, seq: int) -> float:
    """3 x forward matmul FLOPs per token: the encoder (``SearchSpace.flops``) and the MLM head over every position."""
    hidden, vocab = config.hidden_size, config.vocab_size
    head = 2 * (hidden * hidden + hidden * vocab)
    return 3 * (config.search_space.flops(arch, seq_len=seq) / seq + head)


def train_check(args: GpuCheckArguments, device: torch.device) -> tuple[MagicBertSupernetForMaskedLM, dict]:
    """bf16-autocast supernet steps, a new child each step; tokens/s and MFU over the timed steps."""
    torch.manual_seed(args.seed)
    config = MagicBertConfig.from_preset(args.preset)
    supernet = MagicBertSupernetForMaskedLM(config).to(device).train()
    optimizer = torch.optim.AdamW(adamw_parameter_groups(supernet, 0.01), lr=1e-4, fused=device.type == "cuda")
    generator, rng = torch.Generator().manual_seed(args.seed), random.Random(args.seed)
    batch = mlm_batch(config.vocab_size, args.batch, args.seq, generator, device)
    archs = [config.search_space.sample(rng) for _ in range(args.warmup_steps + args.train_steps)]

    def step(arch) -> float:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = supernet(**batch, arch=arch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(supernet.parameters(), 1.0)
        optimizer.step()
        return loss.detach()

    for arch in archs[:args.warmup_steps]:
        step(arch)
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    losses = [step(arch) for arch in archs[args.warmup_steps:]]
    synchronize(device)
    seconds = time.perf_counter() - start
    tokens = args.train_steps * args.batch * args.seq
    flops = sum(train_flops_per_token(config, a, args.seq) for a in archs[args.warmup_steps:]) / args.train_steps
    tflops = flops * tokens / seconds / 1e12
    return supernet, {
        "supernet_params": supernet.num_parameters(), "steps": args.train_steps, "tokens": tokens,
        "seconds": seconds, "step_ms": seconds / args.train_steps * 1e3, "tokens_per_second": tokens / seconds,
        "train_flops_per_token": flops, "achieved_tflops": tflops, "mfu": tflops / args.peak_tflops,
        "final_loss": float(losses[-1]), "finite_losses": all(torch.isfinite(x).item() for x in losses),
        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None}


def bert_shaped_arch(config: MagicBertConfig) -> list[str]:
    """``[mha:<most heads>, ffn:<inner nearest 4 x hidden>] * (layers / 2)`` from the space's own ops."""
    mha = max((s for s in config.op_specs if s.kind == "mha"), key=lambda s: s.size)
    ffn = min((s for s in config.op_specs if s.kind == "ffn"), key=lambda s: abs(s.size - 4 * config.hidden_size))
    return [mha.name, ffn.name] * (config.num_hidden_layers // 2)


def inference_check(args, supernet, device: torch.device, dtype: torch.dtype) -> dict:
    """Exported BERT-shaped child vs ``BertModel`` with its weights (``to_bert``), SDPA both, timed interleaved."""
    arch = bert_shaped_arch(supernet.config)
    magic = supernet.export(arch).bert.to(dtype).eval()
    bert = to_bert(supernet.export(arch)).bert.to(dtype).eval()
    ids = torch.randint(5, supernet.config.vocab_size, (args.batch, args.seq),
                        generator=torch.Generator().manual_seed(args.seed)).to(device)
    padded = torch.ones_like(ids)
    padded[0, args.seq // 2:] = 0  # some padding, so both build a real mask
    rows = {"arch": arch, "attn_implementation": [magic.config._attn_implementation,
                                                  bert.config._attn_implementation]}
    with torch.inference_mode():
        diff = (magic(ids, attention_mask=padded).last_hidden_state
                - bert(ids, attention_mask=padded).last_hidden_state)[padded.bool()].abs().max().item()
        for label, mask in (("padded", padded), ("no mask", None)):
            times = interleaved_medians(
                {"magic": synced(lambda m=mask: magic(ids, attention_mask=m), device),
                 "bert": synced(lambda m=mask: bert(ids, attention_mask=m), device)}, rounds=args.rounds)
            rows[label] = {"magic_ms": times["magic"] * 1e3, "bert_ms": times["bert"] * 1e3,
                           "ratio": times["magic"] / times["bert"]}
    rows["max_abs_diff"] = diff
    return rows


def compile_check(args, supernet, device: torch.device, dtype: torch.dtype) -> dict:
    """A sampled exported child (convolutions included when sampled), eager vs ``torch.compile``, forward only."""
    arch = supernet.config.search_space.sample(random.Random(args.seed + 1))
    child = supernet.export(arch).bert.to(dtype).eval()
    compiled = torch.compile(child, backend=args.compile_backend)
    ids = torch.randint(5, supernet.config.vocab_size, (args.batch, args.seq),
                        generator=torch.Generator().manual_seed(args.seed + 1)).to(device)
    with torch.inference_mode():
        eager_out = child(ids).last_hidden_state
        start = time.perf_counter()
        compiled_out = compiled(ids).last_hidden_state
        synchronize(device)
        first_call = time.perf_counter() - start
        times = interleaved_medians({"eager": synced(lambda: child(ids), device),
                                     "compiled": synced(lambda: compiled(ids), device)}, rounds=args.rounds)
    return {"arch": arch, "backend": args.compile_backend, "first_call_s": first_call,
            "eager_ms": times["eager"] * 1e3, "compiled_ms": times["compiled"] * 1e3,
            "speedup": times["eager"] / times["compiled"],
            "max_abs_diff": (eager_out - compiled_out).abs().max().item()}


def gpu_check(args: GpuCheckArguments) -> dict:
    args.check()
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    supernet, train = train_check(args, device)
    supernet.eval()
    result = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "transformers": transformers.__version__,
              "inference_dtype": str(dtype).removeprefix("torch."), "settings": asdict(args), "train": train,
              "inference": inference_check(args, supernet, device, dtype),
              "compile": compile_check(args, supernet, device, dtype)}
    report(result)
    if args.output:
        write_json_atomic(args.output, result)
    return result


def report(result: dict) -> None:
    s, t, i, c = result["settings"], result["train"], result["inference"], result["compile"]
    print(f"{result['device']}, torch {result['torch']}, transformers {result['transformers']}; preset {s['preset']}, "
          f"batch {s['batch']} x {s['seq']}")
    print_table([("train (bf16 autocast)", f"{t['tokens_per_second']:,.0f} tokens/s", f"{t['step_ms']:.1f} ms/step",
                  f"MFU {t['mfu']:.1%} ({t['achieved_tflops']:.1f} of {s['peak_tflops']:.0f} TFLOP/s)"),
                 *[(f"inference {label}", f"magic {i[label]['magic_ms']:.2f} ms", f"bert {i[label]['bert_ms']:.2f} ms",
                    f"ratio {i[label]['ratio']:.3f}") for label in ("padded", "no mask")],
                 (f"compile ({c['backend']})", f"eager {c['eager_ms']:.2f} ms", f"compiled {c['compiled_ms']:.2f} ms",
                  f"speedup {c['speedup']:.2f}x, first call {c['first_call_s']:.1f} s")],
                ("check", "a", "b", "result"))
    print(f"max |diff|: magic vs bert {i['max_abs_diff']:.2e}, compiled vs eager {c['max_abs_diff']:.2e}; "
          f"train loss {t['final_loss']:.3f}" + (f", peak memory {t['peak_memory_gib']:.1f} GiB"
                                                  if t["peak_memory_gib"] is not None else ""))


def main(argv: list[str] | None = None) -> dict:
    return run(gpu_check, parse_one(GpuCheckArguments, argv, __doc__))


if __name__ == "__main__":
    main()
