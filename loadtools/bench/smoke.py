"""BENCH_SMOKE=1, the bench in CI: one short round whose timings mean
nothing, so it checks only what a short run can show. Every planned run is
there and served requests, every process logged access lines, every target
has its row measured, and nothing failed. No timing is asserted."""

from loadtools.bench.targets import NOT_MEASURED


def problems(doc, planned_ids):
    """What makes the smoke fail, one line each (empty: it passed)."""
    out = []
    measured = {r["id"].split("@")[0]: r for r in doc["runs"]}
    out += [f"run {rid} missing from the results" for rid in planned_ids if rid not in measured]
    for rid, r in measured.items():
        if not r["completed"]:
            out.append(f"run {rid}: no request completed")
        if r["errors"]:
            out.append(f"run {rid}: {r['errors']} errors")
        out += [f"run {rid}: {p['process']} wrote no access log line" for p in r["processes"]
                if not p["access_lines"]]
    out += [f"target not measured: {t['target']} [{t['run']}]" for t in doc["targets"]
            if t["status"] == NOT_MEASURED]
    if not doc["targets"]:
        out.append("no targets checked")
    return out
