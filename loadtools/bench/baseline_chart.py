"""baseline.svg: CPU per request of ours and of the baseline pair at each
load, side by side, with ours ÷ baseline and its target above each pair.
Hand-written SVG (standard library only)."""

from loadtools.bench.chart import esc
from loadtools.bench.report import load_desc
from loadtools.bench.targets import TARGET_VS_BASELINE

COLORS = {"ours": "#4e79a7", "baseline": "#bab0ac"}
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 60, 80
GROUP_W, BAR_W = 130, 36
HEIGHT = 380
PLOT_H = HEIGHT - TOP - BOTTOM


def frame(width, title, top_value):
    """Title, axis and a line every fifth of the highest value."""
    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{HEIGHT}" '
         f'viewBox="0 0 {width} {HEIGHT}" font-family="sans-serif" font-size="11">',
         f'<rect width="{width}" height="{HEIGHT}" fill="white"/>',
         f'<text x="{LEFT}" y="22" font-size="15" font-weight="bold">{esc(title)}</text>',
         f'<text x="{LEFT}" y="40" fill="#555">CPU µs per request (both services; name: '
         f'service1), same run; above each pair: ours ÷ baseline (target)</text>']
    for k in range(6):
        v = top_value * k / 5
        yy = TOP + PLOT_H * (1 - k / 5)
        s.append(f'<line x1="{LEFT}" x2="{width - RIGHT}" y1="{yy:.1f}" y2="{yy:.1f}" '
                 f'stroke="{"#333" if k == 0 else "#eee"}"/>')
        s.append(f'<text x="{LEFT - 6}" y="{yy + 4:.1f}" text-anchor="end">{v:.0f}</text>')
    return s


def pair_bars(gi, r, twin, top_value):
    """One load: ours and the baseline's bar, the ratio above, the label below."""
    s = []
    x0 = LEFT + gi * GROUP_W + (GROUP_W - 2 * BAR_W) / 2
    for k, run in enumerate((r, twin)):
        v = run["cpu_us_per_req"]["total"] or 0
        h = PLOT_H * v / top_value
        s.append(f'<rect x="{x0 + k * BAR_W:.1f}" y="{TOP + PLOT_H - h:.1f}" '
                 f'width="{BAR_W - 4}" height="{h:.1f}" fill="{COLORS[run["pair"]]}">'
                 f'<title>{esc(run["id"])}: {v:.1f} µs</title></rect>')
    cx = LEFT + gi * GROUP_W + GROUP_W / 2
    ratio = r["vs_baseline"]["cpu"]
    limit = TARGET_VS_BASELINE[r["target"]]
    color = "#333" if ratio is not None and ratio <= limit else "#e15759"
    text = f"{ratio:.2f}× (≤ {limit:g})" if ratio is not None else "–"
    s.append(f'<text x="{cx:.1f}" y="{TOP - 6}" text-anchor="middle" fill="{color}" '
             f'font-weight="bold">{esc(text)}</text>')
    for li, label in enumerate((r["target"], load_desc(r))):
        s.append(f'<text x="{cx:.1f}" y="{TOP + PLOT_H + 16 + 13 * li}" '
                 f'text-anchor="middle">{esc(label)}</text>')
    return s


def legend():
    s, lx = [], LEFT
    for pair, color in COLORS.items():
        s.append(f'<rect x="{lx}" y="{HEIGHT - 28}" width="12" height="12" fill="{color}"/>')
        s.append(f'<text x="{lx + 16}" y="{HEIGHT - 18}">{pair}</text>')
        lx += 90
    return s


def baseline_chart(runs, title):
    """The SVG, or None when the run had no baseline."""
    by_id = {r["id"]: r for r in runs}
    pairs = [(r, by_id[r["vs_baseline"]["run"]]) for r in runs if r.get("vs_baseline")]
    if not pairs:
        return None
    values = [x["cpu_us_per_req"]["total"] or 0 for p in pairs for x in p]
    top_value = max(max(values) * 1.1, 1.0)
    width = max(LEFT + RIGHT + GROUP_W * len(pairs), 640)
    s = frame(width, title, top_value)
    for gi, (r, twin) in enumerate(pairs):
        s += pair_bars(gi, r, twin, top_value)
    s += legend()
    s.append("</svg>")
    return "\n".join(s) + "\n"
