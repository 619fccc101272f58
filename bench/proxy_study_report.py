"""The proxy study's report: Kendall's tau of every proxy against the reference, with bootstrap intervals over archs,
the primary contrast (distill - loss on the MAGIC-AT supernet), per-task taus, SPOS vs MAGIC-AT and the exploratory
E-MAGIC-AT vs MAGIC-AT, a scatter plot.
Written from results/*.json alone (docs/search_study.md and docs/results/search_study/)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from magic_bert.analysis.rank_bootstrap import sign_matrix, weighted_tau
from magic_bert.io_utils import save_figure, write_json_atomic, write_text_atomic
from magic_bert.search.algorithms import LOWER_IS_BETTER

PRIMARY = ("distill", "loss")  # the pre-registered contrast, on the MAGIC-AT supernet
# Supernet pairs compared per proxy (secondary; E-MAGIC-AT vs MAGIC-AT is issue 32's exploratory comparison).
COMPARED = (("magic", "spos"), ("emagic", "magic"))
NAMES = {"spos": "SPOS", "magic": "MAGIC-AT", "emagic": "E-MAGIC-AT"}
SAMPLES, LEVEL = 2000, 0.95


def load_results(results: Path) -> tuple[dict, dict, dict]:
    archs = json.loads((results / "archs.json").read_text())["archs"]
    proxies = {json.loads(f.read_text())["supernet"]: json.loads(f.read_text())
               for f in sorted(results.glob("proxies_*.json"))}
    references = {}
    for file in sorted(results.glob("reference_*.json")):
        record = json.loads(file.read_text())
        references[record["arch_name"]] = record
    return archs, proxies, references


def oriented(proxy: str, values) -> np.ndarray:
    """Higher is better for every proxy (losses negated)."""
    values = np.asarray(values, dtype=float)
    return -values if proxy.split("_")[0] in LOWER_IS_BETTER else values


def tau_with_interval(runs: np.ndarray, reference: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Point tau of each run (rows of ``runs``) and the bootstrap taus over archs, ``(samples, runs)``."""
    signs = np.stack([sign_matrix(run) for run in runs])
    reference_signs = sign_matrix(reference)
    n = len(reference)
    point = weighted_tau(signs, reference_signs, np.ones((1, n)))[0]
    weights = np.random.default_rng(seed).multinomial(n, np.full(n, 1 / n), size=SAMPLES)
    return point, weighted_tau(signs, reference_signs, weights)


def _interval(samples: np.ndarray) -> list[float]:
    tail = (1 - LEVEL) / 2 * 100
    return [float(x) for x in np.nanpercentile(samples, [tail, 100 - tail])]


def analyse(archs: dict, proxies: dict, references: dict) -> dict:
    names = [name for name in archs if name in references]
    out = {"archs_with_reference": len(names), "archs": len(archs), "taus": {}, "per_task": {}}
    if len(names) < 3:
        return out
    targets = {"reference": np.array([references[n]["reference"] for n in names])}
    tasks = sorted(next(iter(references.values()))["tasks"])
    targets |= {task: np.array([references[n]["tasks"][task]["score"] for n in names]) for task in tasks}
    for supernet, record in proxies.items():
        scores = record["scores"]
        proxy_names = list(next(iter(scores.values())))
        runs = np.stack([oriented(p, [scores[n][p] for n in names]) for p in proxy_names])
        point, samples = tau_with_interval(runs, targets["reference"])
        out["taus"][supernet] = {p: {"tau": float(point[i]), "interval": _interval(samples[:, i])}
                                 for i, p in enumerate(proxy_names)}
        if supernet == "magic" and all(p in proxy_names for p in PRIMARY):  # pre-registered on MAGIC-AT only
            a, b = (proxy_names.index(p) for p in PRIMARY)
            out.setdefault("primary", {})[supernet] = {
                "contrast": f"tau({PRIMARY[0]}) - tau({PRIMARY[1]})", "difference": float(point[a] - point[b]),
                "interval": _interval(samples[:, a] - samples[:, b])}
        out["per_task"][supernet] = {task: {p: float(t) for p, t in zip(proxy_names, tau_with_interval(
            runs, targets[task])[0], strict=True)} for task in tasks}
        out.setdefault("seconds_per_child", {})[supernet] = record.get("seconds_per_child")
    out |= _secondary(names, proxies, targets["reference"], out["taus"])
    out["reference"] = {n: references[n]["reference"] for n in names}
    return out


def _secondary(names: list[str], proxies: dict, reference: np.ndarray, taus: dict) -> dict:
    """The design's decision rule, the supernet pairs of ``COMPARED`` per proxy (paired over the same arch
    resamples), and where the hand-designed students rank by the reference and by each proxy on the MAGIC-AT
    supernet (1 = best)."""
    out: dict = {}
    magic = {p: v for p, v in taus.get("magic", {}).items() if not np.isnan(v["tau"])}
    if magic:
        best = max(magic, key=lambda p: magic[p]["tau"])
        out["best_proxy_on_magic"] = best
        scores = proxies["magic"]["scores"]
        if best != "loss" and "loss" in magic:
            point, samples = tau_with_interval(np.stack([oriented(p, [scores[n][p] for n in names])
                                                         for p in (best, "loss")]), reference)
            low, high = _interval(samples[:, 0] - samples[:, 1])
            out["decision"] = {"best": best, "versus_loss": float(point[0] - point[1]), "interval": [low, high],
                               "default": best if low > 0 else "loss"}
        else:
            out["decision"] = {"best": best, "default": "loss"}
        ranks = {p: _ranks(oriented(p, [scores[n][p] for n in names])) for p in magic}
        hand = [i for i, n in enumerate(names) if not n.startswith(("random_", "searched_"))]
        reference_ranks = _ranks(reference)
        out["hand_designed_ranks"] = {names[i]: {"reference": int(reference_ranks[i]),
                                                 **{p: int(r[i]) for p, r in ranks.items()}} for i in hand}
    for first, second in COMPARED:
        if {first, second} <= set(proxies):
            out[f"{first}_minus_{second}"] = _tau_difference(names, proxies[first], proxies[second], reference)
    return out


def _tau_difference(names: list[str], first: dict, second: dict, reference: np.ndarray) -> dict:
    """tau on ``first``'s supernet minus on ``second``'s, per proxy both have, paired over the same arch resamples."""
    common = [p for p in first["scores"][names[0]] if p in second["scores"][names[0]]]
    runs = np.stack([oriented(p, [record["scores"][n][p] for n in names]) for record in (first, second)
                     for p in common])
    point, samples = tau_with_interval(runs, reference)
    k = len(common)
    return {p: {"difference": float(point[i] - point[k + i]), "interval": _interval(samples[:, i] - samples[:, k + i])}
            for i, p in enumerate(common)}


def _ranks(values: np.ndarray) -> np.ndarray:
    """1 = the highest value."""
    order = np.argsort(-np.asarray(values), kind="stable")
    ranks = np.empty(len(order), dtype=int)
    ranks[order] = np.arange(1, len(order) + 1)
    return ranks


def _table(analysis: dict) -> str:
    lines = ["| proxy | " + " | ".join(f"τ on {s} [95 % interval]" for s in analysis["taus"]) + " |",
             "|---|" + "---|" * len(analysis["taus"])]
    proxies = list(next(iter(analysis["taus"].values())))

    def cell(entry: dict) -> str:
        if np.isnan(entry["tau"]):
            return "n/a (every arch tied)"
        return f"{entry['tau']:+.2f} [{entry['interval'][0]:+.2f}, {entry['interval'][1]:+.2f}]"

    for proxy in proxies:
        cells = [cell(t[proxy]) for t in analysis["taus"].values()]
        lines.append(f"| `{proxy}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _plot(archs: dict, proxies: dict, references: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    record = proxies.get("magic") or next(iter(proxies.values()))
    names = [n for n in archs if n in references]
    proxy_names = list(next(iter(record["scores"].values())))
    fig, axes = plt.subplots(1, len(proxy_names), figsize=(3.0 * len(proxy_names), 3.0), squeeze=False)
    for ax, proxy in zip(axes[0], proxy_names, strict=True):
        ax.scatter([record["scores"][n][proxy] for n in names], [references[n]["reference"] for n in names], s=14)
        ax.set_xlabel(proxy, fontsize=8)
        ax.set_ylabel("reference (held-out)", fontsize=8)
    fig.suptitle(f"Proxies on the {record['supernet']} supernet vs the reference", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def write_report(results: Path, docs: Path) -> dict:
    archs, proxies, references = load_results(results)
    analysis = analyse(archs, proxies, references)
    target = docs / "results" / "search_study"
    target.mkdir(parents=True, exist_ok=True)
    for file in results.glob("*.json"):
        shutil.copyfile(file, target / file.name)
    if (results / "tasks").is_dir():  # each reference task as it finished: a later session resumes from them
        shutil.copytree(results / "tasks", target / "tasks", dirs_exist_ok=True)
    write_json_atomic(target / "summary.json", analysis)
    lines = ["# Proxy study: which search score predicts a student's quality", "",
             "Design and primary comparison written before the runs: [search_study/design.md](search_study/design.md)."
             " Generated by `python bench/proxy_study.py --stages report` from `docs/results/search_study/`.", "",
             f"Archs with a reference so far: {analysis['archs_with_reference']} of {analysis['archs']}.", ""]
    if analysis["taus"]:
        lines += [_table(analysis), ""]
        for supernet, primary in analysis.get("primary", {}).items():
            lines.append(f"- Primary contrast on {supernet}: {primary['contrast']} = {primary['difference']:+.2f} "
                         f"[{primary['interval'][0]:+.2f}, {primary['interval'][1]:+.2f}].")
        if "decision" in analysis:
            decision = analysis["decision"]
            detail = (f" (τ minus τ(loss) {decision['versus_loss']:+.2f} [{decision['interval'][0]:+.2f}, "
                      f"{decision['interval'][1]:+.2f}])" if "interval" in decision else "")
            lines.append(f"- Highest τ on the MAGIC-AT supernet: `{decision['best']}`{detail}; by the design's rule "
                         f"the default `--metric` is `{decision['default']}`.")
        for first, second in COMPARED:
            for proxy, gap in analysis.get(f"{first}_minus_{second}", {}).items():
                lines.append(f"- `{proxy}`: τ on {NAMES[first]} minus {NAMES[second]} {gap['difference']:+.2f} "
                             f"[{gap['interval'][0]:+.2f}, {gap['interval'][1]:+.2f}].")
        for name, ranks in analysis.get("hand_designed_ranks", {}).items():
            lines.append(f"- `{name}` ranks {ranks['reference']} of {analysis['archs_with_reference']} by the "
                         "reference; by the proxies: " + ", ".join(f"{p} {r}" for p, r in ranks.items()
                                                                   if p != "reference") + ".")
        _plot(archs, proxies, references, target / "proxies.png")
        lines += ["", "![proxies vs reference](results/search_study/proxies.png)"]
    else:
        lines.append("Not enough archs have a reference yet for any τ.")
    write_text_atomic(docs / "search_study.md", "\n".join(lines) + "\n")
    return {"report": str(docs / "search_study.md"), **{k: analysis[k] for k in ("archs_with_reference", "archs")}}


__all__ = ["analyse", "load_results", "oriented", "tau_with_interval", "write_report"]
