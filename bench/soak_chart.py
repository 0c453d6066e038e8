"""The soak's chart: RSS, latency, lag and Redis memory over time, faults marked.

    python bench/soak_chart.py OUT_DIR      # writes OUT_DIR/soak.svg from samples.jsonl

An SVG written by hand rather than a PNG from matplotlib: matplotlib brings numpy, Pillow,
fonttools and more (well over 100 MB installed) for four line charts, and any browser shows
an SVG. ``bench/soak.py --chart`` writes it at the end of a run.
"""

from __future__ import annotations

import json
import sys
from html import escape
from pathlib import Path

WIDTH, PANEL, MARGIN = 900, 170, 60
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd")
FAULT_COLORS = {"relay-kill": "#d62728", "relay-term": "#ff7f0e", "worker-kill": "#9467bd",
                "redis-restart": "#8c564b", "redis-failover": "#8c564b"}  # fmt: skip
# (title, unit divisor, series chosen by name)
PANELS = (
    ("RSS of the never-faulted processes (MB)", 1024, lambda name: name.endswith(":rss_kb")),
    ("Sender: p99 of recent 200 answers (ms)", 1, lambda name: name == "sender:p99_ms"),
    ("Groups: lag + pending (entries)", 1, lambda name: name.endswith(("lag", "pending"))),
    ("Redis used_memory (MB)", 1024 * 1024, lambda name: name == "redis:redis_used_memory"),
)


def lag_series(samples: list[dict[str, float]]) -> list[dict[str, float]]:
    """Each sample with ``<group>:lag`` = entries not yet read + read and not acknowledged."""
    rows = []
    for sample in samples:
        row = dict(sample)
        for key in sample:
            if key.endswith(":lag_entries"):
                group = key.split(":", 1)[0]
                row[f"{group}:lag"] = sample[key] + sample.get(f"{group}:pending", 0)
        rows.append({k: v for k, v in row.items() if not k.endswith((":lag_entries", ":pending"))})
    return rows


def chart(samples: list[dict[str, float]], faults: list[dict[str, object]], path: Path) -> None:
    rows = lag_series(samples)
    end = max((row["t"] for row in rows), default=1.0) or 1.0
    height = len(PANELS) * (PANEL + 40) + 40
    plot_width = WIDTH - 2 * MARGIN
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
             f'font-family="sans-serif" font-size="11"><rect width="100%" height="100%" '
             f'fill="white"/>']  # fmt: skip
    for index, (title, divisor, chosen) in enumerate(PANELS):
        top = 30 + index * (PANEL + 40)
        names = sorted({k for row in rows for k in row if k != "t" and chosen(k)})
        values = [row[n] / divisor for row in rows for n in names if n in row]
        low, high = (min(values), max(values)) if values else (0.0, 1.0)
        if high - low < 1e-9:
            low, high = low - 1, high + 1
        parts.append(f'<text x="{MARGIN}" y="{top - 8}" font-weight="bold">{escape(title)}</text>')
        parts.append(f'<rect x="{MARGIN}" y="{top}" width="{plot_width}" height="{PANEL}" '
                     f'fill="none" stroke="#999"/>')  # fmt: skip
        for value, y in ((high, top + 4), (low, top + PANEL)):
            parts.append(f'<text x="{MARGIN - 4}" y="{y}" text-anchor="end">{value:.4g}</text>')
        for fault in faults:
            x = MARGIN + float(fault["t"]) / end * plot_width  # type: ignore[arg-type]
            color = FAULT_COLORS.get(str(fault["fault"]), "#777")
            parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + PANEL}" '
                         f'stroke="{color}" stroke-opacity="0.35"/>')  # fmt: skip
        for n, name in enumerate(names):
            points = " ".join(
                f"{MARGIN + row['t'] / end * plot_width:.1f},"
                f"{top + PANEL - (row[name] / divisor - low) / (high - low) * PANEL:.1f}"
                for row in rows
                if name in row
            )
            color = COLORS[n % len(COLORS)]
            parts.append(f'<polyline points="{points}" fill="none" stroke="{color}"/>')
            parts.append(f'<text x="{MARGIN + 8 + n * 170}" y="{top + 14}" fill="{color}">'
                         f"{escape(name)}</text>")  # fmt: skip
        parts.append(f'<text x="{WIDTH - MARGIN}" y="{top + PANEL + 14}" text-anchor="end">'
                     f"{end / 60:.0f} min</text>")  # fmt: skip
    legend = "  ".join(f"{name}" for name in FAULT_COLORS if name != "redis-failover")
    parts.append(f'<text x="{MARGIN}" y="{height - 10}">faults (vertical lines): '
                 f"{escape(legend)}, redis-failover as redis-restart</text></svg>")  # fmt: skip
    path.write_text("\n".join(parts) + "\n")


def main() -> None:
    out = Path(sys.argv[1])
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    faults_file = out / "faults.jsonl"
    faults = (
        [json.loads(line) for line in faults_file.read_text().splitlines()]
        if faults_file.exists()
        else []
    )
    chart(samples, faults, out / "soak.svg")
    print(out / "soak.svg")


if __name__ == "__main__":
    main()
