"""Tables (markdown) and the latency-vs-streams plot from ``bench/gpu/results/*.json``.

Runs HERE (no GPU)::

    .venv/bin/python bench/gpu/report.py [--plot docs/benchmarks-gpu-latency.png]

Prints only what the JSON holds; a missing measurement prints as "not run".
"""

# ruff: noqa: PLR0912, PLR0915 - a report script, long by nature
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def row_for(rows: list[dict[str, Any]] | None, tokens: int) -> dict[str, Any] | None:
    for row in rows or []:
        if row.get("output_tokens") == tokens:
            return row
    return None


def fmt(value: float | None, digits: int = 2) -> str:
    return "not run" if value is None else f"{value:,.{digits}f}"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--plot", type=Path)
    args = ap.parse_args()
    off_bf16, off_fp8 = load("offline_bf16"), load("offline_fp8")
    wk_bf16, wk_fp8, wk_big = load("worker_bf16"), load("worker_fp8"), load("worker_fp8_mns512")

    print("### Throughput, one H200 (30 s windows, fixed output length)\n")
    print("| config | output tokens | mode | windows | wall s | windows/s | output tok/s |")
    print("|---|---|---|---|---|---|---|")
    configs = [
        ("BF16, max_num_seqs 256", off_bf16, wk_bf16),
        ("FP8, max_num_seqs 256", off_fp8, wk_fp8),
        ("FP8, max_num_seqs 512, max_num_batched_tokens 32768", None, wk_big),
    ]
    for label, off, wk in configs:
        for tokens in (512, 256):
            rows = [
                ("ceiling (offline LLM.generate)", row_for((off or {}).get("ceiling"), tokens)),
                ("earwitness (EngineWorker)", row_for((wk or {}).get("earwitness"), tokens)),
                ("naive (one window at a time)", row_for((off or {}).get("naive"), tokens)),
            ]
            for mode, r in rows:
                if r is None:
                    continue
                wall = r.get("wall_s") if "wall_s" in r else sum(r["latency_s"])
                print(
                    f"| {label} | {tokens} | {mode} | {r['windows']} | {fmt(wall, 1)} | "
                    f"{fmt(r['windows_per_s'])} | {fmt(r['output_tok_per_s'], 0)} |"
                )
    print()

    print("### Ratios (512-token captions)\n")

    def ratio(a: dict | None, b: dict | None) -> str:
        if a is None or b is None:
            return "not measured"
        return f"{a['windows_per_s'] / b['windows_per_s']:.3f}"

    for label, off, wk in configs[:2]:
        c = row_for((off or {}).get("ceiling"), 512)
        e = row_for((wk or {}).get("earwitness"), 512)
        n = row_for((off or {}).get("naive"), 512)
        print(
            f"- {label}: earwitness ÷ ceiling = {ratio(e, c)}; earwitness ÷ naive = {ratio(e, n)}"
        )
    print()

    lever = (wk_bf16 or {}).get("inflight_lever") or []
    if lever:
        print("### Lever: batcher max_inflight (BF16, max_num_seqs 256, 512 tokens)\n")
        print("| max_inflight | windows | wall s | windows/s | p95 window latency s |")
        print("|---|---|---|---|---|")
        main_row = row_for((wk_bf16 or {}).get("earwitness"), 512)
        if main_row:
            print(
                f"| {wk_bf16['batch_settings']['max_inflight']} | {main_row['windows']} | "
                f"{fmt(main_row['wall_s'], 1)} | {fmt(main_row['windows_per_s'])} | "
                f"{fmt(main_row['latency_p95_s'], 1)} |"
            )
        for r in lever:
            print(
                f"| {r['max_inflight']} | {r['windows']} | {fmt(r['wall_s'], 1)} | "
                f"{fmt(r['windows_per_s'])} | {fmt(r['latency_p95_s'], 1)} |"
            )
        print()

    print("### Capacity curve (512-token captions; 30 s windows closing every 10 s per stream)\n")
    print(
        "| config | streams | offered windows/s | measured windows | still pending at report |"
        " p50 s | p95 s | p99 s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    curves = [
        ("BF16, mns 256", wk_bf16),
        ("FP8, mns 256", wk_fp8),
        ("FP8, mns 512, mnbt 32768", wk_big),
    ]
    for label, wk in curves:
        for r in ((wk or {}).get("curve") or {}).get("levels", []):
            bound = "≥ " if r["pending_at_report"] else ""
            print(
                f"| {label} | {r['streams']} | {r['offered_windows_per_s']:.1f} | "
                f"{r['measured_windows']} | {r['pending_at_report']} | "
                f"{bound}{fmt(r['p50_s'], 1)} | {bound}{fmt(r['p95_s'], 1)} | "
                f"{bound}{fmt(r['p99_s'], 1)} |"
            )
    print()

    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4.2))
        for (label, wk), color in zip(curves, ("tab:blue", "tab:orange", "tab:green"), strict=True):
            rows = ((wk or {}).get("curve") or {}).get("levels", [])
            if not rows:
                continue
            xs = [r["streams"] for r in rows]
            ax.plot(xs, [r["p95_s"] for r in rows], "o-", color=color, label=f"{label} p95")
            ax.plot(
                xs, [r["p50_s"] for r in rows], "s--", color=color, alpha=0.6, label=f"{label} p50"
            )
            for r in rows:
                if r["pending_at_report"]:
                    ax.annotate(
                        "lower bound",
                        (r["streams"], r["p95_s"]),
                        fontsize=7,
                        xytext=(4, 4),
                        textcoords="offset points",
                    )
        ax.axhline(15.0, color="red", lw=1, ls=":", label="SLO p95 = 15 s")
        ax.set_xlabel("live streams (30 s window every 10 s each)")
        ax.set_ylabel("window close → caption, s")
        ax.set_title("earwitness on one H200, 512-token captions (measured points only)")
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=110)
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
