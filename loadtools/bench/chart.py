"""latency.svg: p50/p90/p99/p99.9 of every run as bars, log scale, with the
p99 target as a dashed line. Hand-written SVG (standard library only)."""

import math

from loadtools.bench.report import load_desc
from loadtools.bench.targets import PAIR_NAMES, TARGET_P99_MS

KEYS = [("p50", "#4e79a7"), ("p90", "#59a14f"), ("p99", "#f28e2b"), ("p99.9", "#e15759")]
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 60, 110
GROUP_W, BAR_W = 112, 20
HEIGHT = 460
PLOT_H = HEIGHT - TOP - BOTTOM


def esc(text):
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Scale:
    """The y axis: whole decades from below the fastest to above the slowest
    latency (and the target)."""

    def __init__(self, runs):
        vals = [r["latency_ms"][k] for r in runs for k, _ in KEYS if r["latency_ms"][k]]
        self.lo = 10 ** math.floor(math.log10(max(min(vals), 1e-3))) if vals else 0.01
        self.hi = 10 ** math.ceil(math.log10(max(max(vals), TARGET_P99_MS * 1.01))) if vals else 10
        if self.hi <= self.lo:
            self.hi = self.lo * 10

    def y(self, v):
        lo, hi = self.lo, self.hi
        v = min(max(v, lo), hi)
        return TOP + PLOT_H * (1 - (math.log10(v) - math.log10(lo))
                               / (math.log10(hi) - math.log10(lo)))


def title_lines(width, title):
    return [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{HEIGHT}" '
            f'viewBox="0 0 {width} {HEIGHT}" font-family="sans-serif" font-size="11">',
            f'<rect width="{width}" height="{HEIGHT}" fill="white"/>',
            f'<text x="{LEFT}" y="22" font-size="15" font-weight="bold">{esc(title)}</text>',
            f'<text x="{LEFT}" y="40" fill="#555">latency percentiles per run, ms, log scale; '
            f'dashed: p99 target at the fixed rate with 3 replicas ({TARGET_P99_MS:g} ms)</text>']


def grid(scale, width):
    """A line at 1, 2 and 5 of every decade, the decades stronger."""
    s = []
    decade = scale.lo
    while decade <= scale.hi * 1.0001:
        for mult in (1, 2, 5):
            v = decade * mult
            if v > scale.hi * 1.0001:
                break
            yy = scale.y(v)
            strong = mult == 1
            s.append(f'<line x1="{LEFT}" x2="{width - RIGHT}" y1="{yy:.1f}" y2="{yy:.1f}" '
                     f'stroke="{"#bbb" if strong else "#eee"}"/>')
            s.append(f'<text x="{LEFT - 6}" y="{yy + 4:.1f}" text-anchor="end" '
                     f'fill="{"#333" if strong else "#999"}">{v:g}</text>')
        decade *= 10
    return s


def bars(scale, gi, r):
    """One run's group: a bar per percentile, and its label below."""
    s = []
    x0 = LEFT + gi * GROUP_W + (GROUP_W - BAR_W * len(KEYS)) / 2
    for ki, (k, color) in enumerate(KEYS):
        v = r["latency_ms"][k]
        if not v:
            continue
        yy = scale.y(v)
        s.append(f'<rect x="{x0 + ki * BAR_W:.1f}" y="{yy:.1f}" width="{BAR_W - 2}" '
                 f'height="{TOP + PLOT_H - yy:.1f}" fill="{color}">'
                 f'<title>{esc(r["id"])} {k}: {v:.3f} ms</title></rect>')
    cx = LEFT + gi * GROUP_W + GROUP_W / 2
    pair = r.get("pair", "ours")
    what = r["target"] if pair == "ours" else f"{PAIR_NAMES[pair]} {r['target']}"
    lines = [what, f"{r['replicas']}× service1", load_desc(r)]
    for li, text in enumerate(lines):
        s.append(f'<text x="{cx:.1f}" y="{TOP + PLOT_H + 16 + 13 * li}" '
                 f'text-anchor="middle">{esc(text)}</text>')
    return s


def target_axis_legend(scale, width):
    ty = scale.y(TARGET_P99_MS)
    s = [f'<line x1="{LEFT}" x2="{width - RIGHT}" y1="{ty:.1f}" y2="{ty:.1f}" '
         f'stroke="#e15759" stroke-dasharray="6,4"/>',
         f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{TOP + PLOT_H}" stroke="#333"/>']
    lx = LEFT
    for k, color in KEYS:
        s.append(f'<rect x="{lx}" y="{HEIGHT - 28}" width="12" height="12" fill="{color}"/>')
        s.append(f'<text x="{lx + 16}" y="{HEIGHT - 18}">{k}</text>')
        lx += 70
    return s


def svg_chart(runs, title):
    scale = Scale(runs)
    width = LEFT + RIGHT + GROUP_W * max(len(runs), 1)
    s = title_lines(width, title) + grid(scale, width)
    for gi, r in enumerate(runs):
        s += bars(scale, gi, r)
    s += target_axis_legend(scale, width)
    s.append("</svg>")
    return "\n".join(s) + "\n"
