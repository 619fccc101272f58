"""Supernet and fixed-arch pre-training under Accelerate: arguments, setup, sampler strategies, loss terms, loop."""
