"""Tables (markdown) and the latency-vs-streams plot from one session's raw results.

Runs HERE (no GPU)::

    .venv/bin/python bench/gpu/report.py [--results bench/gpu/results/session3 ...] \
        [--plot docs/benchmarks-gpu-latency.png]

Prints only what the JSON holds; a phase that did not run is left out, never estimated.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "session3"

CONFIGS = [
    ("BF16, mns 256", "offline_bf16", "worker_bf16"),
    ("BF16, mns 256, 4 renderer threads", None, "worker_bf16_rw4"),
    ("FP8, mns 256", "offline_fp8", "worker_fp8"),
    ("FP8, mns 512, mnbt 32768", "offline_fp8_mns512", "worker_fp8_mns512"),
    ("FP8, mns 256, 2 replicas", None, "worker_fp8_x2"),
    (
        "FP8, mns 512, mnbt 32768, graphs ≤ 1024",
        "offline_fp8_mns512_cg1024",
        "worker_fp8_mns512_cg1024",
    ),
    ("FP8, mns 512, mnbt 32768, graphs ≤ 1024 (2nd start)", None, "worker_fp8_mns512_cg1024_fine"),
    (
        "BF16, mns 512, mnbt 32768, graphs ≤ 1024",
        "offline_bf16_mns512_cg1024",
        "worker_bf16_mns512_cg1024",
    ),
    # Session 4: default-tile ceiling; engine path and end to end with the tuned MoE tiles.
    ("FP8, mns 512, graphs ≤ 1024, default MoE tiles", "offline_fp8_default", None),
    ("FP8, mns 512, graphs ≤ 1024, tuned MoE tiles, engine only", None, "worker_fp8_tuned"),
    ("FP8, mns 512, graphs ≤ 1024, tuned MoE tiles, end to end", None, "e2e_fp8_tuned"),
]
COLORS = (
    "tab:blue",
    "tab:purple",
    "tab:orange",
    "tab:green",
    "tab:gray",
    "tab:red",
    "tab:brown",
    "tab:cyan",
    "tab:olive",
    "tab:pink",
    "black",
)


def load(results: Path, name: str | None) -> dict[str, Any]:
    path = results / f"{name}.json"
    return json.loads(path.read_text()) if name and path.exists() else {}


def fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def throughput_rows(label: str, off: dict[str, Any], wk: dict[str, Any]) -> list[str]:
    batch = wk.get("batch_settings", {})
    modes = [
        ("ceiling: offline `LLM.generate`", off.get("ceiling", [])),
        (
            f"earwitness: EngineWorker, max_batch {batch.get('max_batch', '?')}",
            wk.get("earwitness", []),
        ),
        ("earwitness, max_batch 1 (trickle)", wk.get("trickle", [])),
        ("naive: one window at a time", off.get("naive", [])),
    ]
    lines = []
    for mode, rows in modes:
        for r in rows:
            wall = r["wall_s"] if "wall_s" in r else sum(r["latency_s"])
            lines.append(
                f"| {label} | {r['output_tokens']} | {mode} | {r['windows']} | {fmt(wall, 1)} | "
                f"**{fmt(r['windows_per_s'])}** | {fmt(r['output_tok_per_s'], 0)} |"
            )
    return lines


def by_tokens(rows: list[dict[str, Any]], tokens: int) -> dict[str, Any] | None:
    return next((r for r in rows if r.get("output_tokens") == tokens), None)


def ratio_lines(results: Path) -> list[str]:
    lines = []
    for label, off_name, wk_name in CONFIGS:
        off, wk = load(results, off_name), load(results, wk_name)
        for tokens in (512, 256):
            ceiling = by_tokens(off.get("ceiling", []), tokens)
            ours = by_tokens(wk.get("earwitness", []), tokens)
            naive = by_tokens(off.get("naive", []), tokens)
            if ours and ceiling:
                value = ours["windows_per_s"] / ceiling["windows_per_s"]
                lines.append(f"- {label}, {tokens} tokens: earwitness ÷ ceiling = {value:.3f}")
            if ours and naive:
                value = ours["windows_per_s"] / naive["windows_per_s"]
                lines.append(f"- {label}, {tokens} tokens: earwitness ÷ naive = {value:.1f} times")
    return lines


def curve_rows(label: str, wk: dict[str, Any]) -> list[str]:
    lines = []
    for r in (wk.get("curve") or {}).get("levels", []):
        bound = "≥ " if r["pending_at_report"] else ""
        ok = "yes" if r["p95_s"] is not None and r["p95_s"] <= 15.0 and not r["errors"] else "no"
        lines.append(
            f"| {label} | {r['streams']} | {r['offered_windows_per_s']:.1f} | "
            f"{r['measured_windows']} | {bound}{fmt(r['p50_s'], 1)} | "
            f"{bound}{fmt(r['p95_s'], 1)} | {ok} |"
        )
    return lines


def plot(folders: list[Path], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.8))
    for results in folders:
        suffix = f" ({results.name})" if len(folders) > 1 else ""
        for (label, _, wk_name), color in zip(CONFIGS, COLORS, strict=True):
            rows = (load(results, wk_name).get("curve") or {}).get("levels", [])
            if not rows:
                continue
            xs = [r["streams"] for r in rows]
            name = f"{label}{suffix}"
            ax.plot(xs, [r["p95_s"] for r in rows], "o-", color=color, label=f"{name} p95")
            ax.plot(
                xs, [r["p50_s"] for r in rows], "s--", color=color, alpha=0.5, label=f"{name} p50"
            )
    ax.axhline(15.0, color="red", lw=1, ls=":", label="SLO p95 = 15 s")
    ax.set_xlabel("live streams (a 30 s window every 10 s each)")
    ax.set_ylabel("window close → caption, s")
    ax.set_title("earwitness on one H200, 512-token captions (measured points)")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"plot: {out}")


def report(res: Path) -> None:
    """Print one session's tables."""
    print(f"### Throughput, one H200 ({res.name}; 30 s windows, fixed output length)\n")
    print("| config | output tokens | mode | windows | wall s | windows/s | output tok/s |")
    print("|---|---|---|---|---|---|---|")
    for label, off_name, wk_name in CONFIGS:
        for line in throughput_rows(label, load(res, off_name), load(res, wk_name)):
            print(line)
    print("\n### Ratios\n")
    print("\n".join(ratio_lines(res)) or "- none measured")
    prepared = [(label, load(res, wk).get("prepare_only")) for label, _, wk in CONFIGS]
    if any(p for _, p in prepared):
        print("\n### Preprocessing alone (`CaptionEngine.prepare`, 128 concurrent, engine idle)\n")
        print("| config | windows/s | ms per window |")
        print("|---|---|---|")
        for label, p in prepared:
            if p:
                print(f"| {label} | {fmt(p['windows_per_s'], 1)} | {fmt(p['ms_per_window'], 1)} |")
    print("\n### Capacity curve (512-token captions; a 30 s window every 10 s per stream)\n")
    print(
        "| config | streams | offered windows/s | windows measured | p50 s | p95 s | p95 ≤ 15 s |"
    )
    print("|---|---|---|---|---|---|---|")
    for label, _, wk_name in CONFIGS:
        for line in curve_rows(label, load(res, wk_name)):
            print(line)
    print()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", type=Path, nargs="+", default=[RESULTS])
    ap.add_argument("--plot", type=Path, help="one plot of every given session's curves")
    args = ap.parse_args()
    for res in args.results:
        report(res)
    if args.plot:
        plot(args.results, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
