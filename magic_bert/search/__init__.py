"""Architecture search under parameter / FLOPs / latency budgets, and export of children as HF checkpoints."""
