"""baseline.svg: CPU per request of ours and of the other pairs (tonic + axum,
Go) at each load, side by side, with both ratios (ours ÷ each) and their
targets above each group. Hand-written SVG (standard library only)."""

from loadtools.bench.chart import esc
from loadtools.bench.report import load_desc
from loadtools.bench.targets import PAIR_NAMES, TARGET_CPU_VS

COLORS = {"ours": "#4e79a7", "baseline": "#bab0ac", "go": "#76b7b2"}
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 76, 80
GROUP_W, BAR_W = 200, 36  # wide enough for "÷ tonic + axum: 0.50× (≤ 0.55)"
HEIGHT = 380
PLOT_H = HEIGHT - TOP - BOTTOM


def frame(width, title, top_value):
    """Title, axis and a line every fifth of the highest value."""
    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{HEIGHT}" '
         f'viewBox="0 0 {width} {HEIGHT}" font-family="sans-serif" font-size="11">',
         f'<rect width="{width}" height="{HEIGHT}" fill="white"/>',
         f'<text x="{LEFT}" y="22" font-size="15" font-weight="bold">{esc(title)}</text>',
         f'<text x="{LEFT}" y="40" fill="#555">CPU µs per request (both services; name: '
         f'service1), same run; above each group: ours ÷ each other pair (target)</text>']
    for k in range(6):
        v = top_value * k / 5
        yy = TOP + PLOT_H * (1 - k / 5)
        s.append(f'<line x1="{LEFT}" x2="{width - RIGHT}" y1="{yy:.1f}" y2="{yy:.1f}" '
                 f'stroke="{"#333" if k == 0 else "#eee"}"/>')
        s.append(f'<text x="{LEFT - 6}" y="{yy + 4:.1f}" text-anchor="end">{v:.0f}</text>')
    return s


def pair_bars(gi, r, twins, top_value):
    """One load: a bar per pair, each ratio above, the label below."""
    s = []
    runs = [r] + twins
    x0 = LEFT + gi * GROUP_W + (GROUP_W - len(runs) * BAR_W) / 2
    for k, run in enumerate(runs):
        v = run["cpu_us_per_req"]["total"] or 0
        h = PLOT_H * v / top_value
        s.append(f'<rect x="{x0 + k * BAR_W:.1f}" y="{TOP + PLOT_H - h:.1f}" '
                 f'width="{BAR_W - 4}" height="{h:.1f}" fill="{COLORS[run["pair"]]}">'
                 f'<title>{esc(run["id"])}: {v:.1f} µs</title></rect>')
    cx = LEFT + gi * GROUP_W + GROUP_W / 2
    for li, twin in enumerate(twins):
        ratio = r["vs"][twin["pair"]]["cpu"]
        limit = TARGET_CPU_VS.get((r["target"], twin["pair"]))
        ok = ratio is not None and (limit is None or ratio <= limit)
        text = f"÷ {PAIR_NAMES[twin['pair']]}: " + (f"{ratio:.2f}×" if ratio is not None else "–")
        text += f" (≤ {limit:g})" if limit is not None and r["concurrency"] and not r["rate"] else ""
        s.append(f'<text x="{cx:.1f}" y="{TOP - 22 + 13 * li}" text-anchor="middle" '
                 f'fill="{"#333" if ok else "#e15759"}" font-weight="bold">{esc(text)}</text>')
    for li, label in enumerate((r["target"], load_desc(r))):
        s.append(f'<text x="{cx:.1f}" y="{TOP + PLOT_H + 16 + 13 * li}" '
                 f'text-anchor="middle">{esc(label)}</text>')
    return s


def legend():
    s, lx = [], LEFT
    for pair, color in COLORS.items():
        s.append(f'<rect x="{lx}" y="{HEIGHT - 28}" width="12" height="12" fill="{color}"/>')
        s.append(f'<text x="{lx + 16}" y="{HEIGHT - 18}">{PAIR_NAMES[pair]}</text>')
        lx += 110
    return s


def baseline_chart(runs, title):
    """The SVG, or None when the run had no other pair."""
    by_id = {r["id"]: r for r in runs}
    groups = [(r, [by_id[v["run"]] for _, v in sorted(r["vs"].items())])
              for r in runs if r.get("vs")]
    if not groups:
        return None
    values = [x["cpu_us_per_req"]["total"] or 0 for r, twins in groups for x in [r] + twins]
    top_value = max(max(values) * 1.1, 1.0)
    width = max(LEFT + RIGHT + GROUP_W * len(groups), 640)
    s = frame(width, title, top_value)
    for gi, (r, twins) in enumerate(groups):
        s += pair_bars(gi, r, twins, top_value)
    s += legend()
    s.append("</svg>")
    return "\n".join(s) + "\n"
