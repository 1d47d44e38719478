"""stress.md: the checks with PASS/FAIL, then the figures of each phase."""

from datetime import datetime, timezone

from loadtools.common import fmt
from loadtools.stress.checks import ejection_reasons
from loadtools.stress.limits import GRAY_REPLICAS, GRAY_WARMUP_S, REPLICAS


def counts(d, sort=True):
    """`k: v, …` with thousands separators."""
    items = sorted(d.items()) if sort else d.items()
    return ", ".join(f"{k}: {v:,}" for k, v in items)


def header(doc):
    m, fd = doc["machine"], doc["fd_limit"]
    out = [f"# Stress {doc['timestamp']}", "",
           f"- Machine: {m['nproc']} CPUs, {m['cpu_model']}, {m['mem_total']}, {m['kernel']}; "
           f"load average at start {' '.join(m['loadavg_at_start'])}",
           f"- Commit: `{m['git_commit'][:12]}`"
           f"{' (uncommitted changes)' if m['git_dirty'] else ''}; {m['oha_version']}",
           f"- Open-file limit: soft {fd['soft_before']} → {fd['soft']} (hard {fd['hard']}), "
           f"inherited by the services and oha"]
    if fd.get("warning"):
        out.append(f"- **WARNING: {fd['warning']}**")
    phases = doc["settings"].get("phases", [])
    out.append(f"- Phases: {', '.join(phases)}")
    out.append(f"- Services as shipped (release, mTLS, `LOG_FORMAT=json` to files, default limits; "
               f"`DRAIN_DELAY=0s`): service1 ×{REPLICAS} on 127.0.0.2–.{1 + REPLICAS}, service2 on "
               f"127.0.0.1 (`static:///`); exhaustion, soak and gray each on fresh processes"
               f" (gray: service1 ×{GRAY_REPLICAS}, 127.0.0.2–.{1 + GRAY_REPLICAS}).")
    return out


def checks_table(checks):
    passed = sum(c["pass"] for c in checks)
    out = ["", f"## Checks: {passed} passed, {len(checks) - passed} failed", "",
           "| phase | check | measured | target | result |", "|---|---|---|---|---|"]
    for c in checks:
        out.append(f"| {c['phase']} | {c['check']} | {c['measured']} | {c['limit']} | "
                   f"{'PASS' if c['pass'] else '**FAIL**'} |")
    return out


# ------------------------------------------------------------------- storm


def flood_lines(doc, storm):
    f, m = storm["flood"], doc["machine"]
    out = ["", f"## Storm ({storm['seconds']:g} s; host busy {fmt(storm['host_busy_pct'], 0)} %, "
           f"steal {fmt(storm['host_steal_pct'], 0)} %, load average before "
           f"{' '.join(storm['loadavg_before'])})", ""]
    out.append(f"**Flood** (oha, {doc['fd_limit']['connections_used']:,} connections, HTTP/1.1 "
               f"keep-alive): {f['completed']:,} responses ({f['rps']:,.0f}/s): "
               + counts(f["status_codes"])
               + "; connection errors/timeouts: "
               + (counts(f["connection_errors"], sort=False) or "none")
               + f". Served (200) {f['served_pct']:.1f} % of attempts; latency p50 "
               f"{fmt(f['latency_ms']['p50'], 1)} ms, p99 {fmt(f['latency_ms']['p99'], 1)} ms, "
               f"max {fmt(f['latency_ms']['max'], 0)} ms.")
    out += ["", "CPU seconds used during the storm: "
            + ", ".join(f"{k} {v:.1f}" for k, v in storm["cpu_s"].items())
            + f" (of {2 * storm['wall_s']:.0f} s on {m['nproc']} CPUs; other work on the host "
            "counts too)."]
    mb, ma = storm.get("metrics_before"), storm.get("metrics_after")
    if mb and ma:
        delta = {k: v - mb["say_hello_by_status"].get(k, 0)
                 for k, v in ma["say_hello_by_status"].items()}
        out.append("")
        out.append("service2's own count of say-hello responses during the storm (`/metrics`): "
                   + ", ".join(f"{k}: {v:,}" for k, v in sorted(delta.items()) if v)
                   + f"; log lines dropped: {ma.get('log_lines_dropped')}.")
    return out


def good_lines(g, cfg):
    return ["", f"**Well-behaved clients** ({cfg['good_clients']} keep-alive connections, "
            f"{cfg['good_rate']:g} req/s in all; up to {cfg['good_attempts']} attempts within "
            f"{cfg['good_deadline_s']:g} s, retrying only a 503 with `Retry-After`, after it): "
            f"{g['requests']:,} requests, {g['ok']:,} answered 200 ({g['success_pct']:.2f} %), "
            f"{g['ok_first_attempt']:,} at the first attempt ({g['first_attempt_pct']:.2f} %); "
            f"{g['attempts']:,} attempts answered "
            + counts(g["attempt_answers"])
            + f"; new connections {g['connects']}; requests ended "
            + counts(g["outcomes"])
            + f". Latency of a request, retries included: p50 {fmt(g['latency_ms']['p50'], 1)} ms, "
            f"p90 {fmt(g['latency_ms']['p90'], 1)}, p99 {fmt(g['latency_ms']['p99'], 1)}, max "
            f"{fmt(g['latency_ms']['max'], 1)} ms."]


def slowloris_lines(storm):
    out = ["", "**Slowloris** (closed by the server: EOF or reset seen by the client; time from "
           "connect to close):", "",
           "| group | connections | closed by server | late (> limit) | still open at end "
           "| censored | connect failed | close after s: min / p50 / max | server sent |",
           "|---|---|---|---|---|---|---|---|---|"]
    for kind, grp in storm["slowloris_summary"].items():
        c = grp["cutoff_s"]
        out.append(f"| {kind} | {grp['connections']:,} | {grp['closed_by_server']:,} "
                   f"| {grp['late']:,} | {grp['still_open_at_end']:,} | {grp['censored']:,} "
                   f"| {grp['connect_failed']:,} | {fmt(c['min'], 1)} / {fmt(c['p50'], 1)} / "
                   f"{fmt(c['max'], 1)} | "
                   + (", ".join(f"`{k!r}`: {v}" for k, v in grp["received"].items()) or "–")
                   + " |")
    out.append("")
    out.append("“censored”: still open at the end but younger than the limit, so not judged. "
               "A partial-head slot reconnects after each cut-off while a whole timeout still fits.")
    return out


def memory_lines(storm):
    out = ["", "**Memory and fds** (sampled every second; VmHWM is the process's peak since "
           "start, so it also catches peaks between samples):", "",
           "| process | RSS at start MiB | peak sampled | VmHWM | last | peak fds |",
           "|---|---|---|---|---|---|"]
    for label, r in storm["rss"].items():
        out.append(f"| {label} | {fmt(r['start_mib'], 1)} | {fmt(r['peak_sampled_mib'], 1)} "
                   f"| {fmt(r['hwm_mib'], 1)} | {fmt(r['last_mib'], 1)} | {r['peak_fds']} |")
    return out


def storm_section(doc, cfg):
    storm = doc["storm"]
    out = flood_lines(doc, storm) + good_lines(storm["good"], cfg) + slowloris_lines(storm)
    if cfg["oversized"]:
        out += ["", f"**Oversized headers** ({cfg['oversized']} clients, "
                f"{cfg['oversized_bytes']:,}-byte header, new connection each): "
                + counts(storm["oversized"]) + "."]
    return out + memory_lines(storm)


# ---------------------------------------------------------------- recovery


def recovery_section(rec):
    out = ["", "## Recovery (same processes)", ""]
    out.append(f"Ready after {fmt(rec['ready_after_s'], 2)} s; 100 sequential say-hello: "
               + ", ".join(f"{k}: {v}" for k, v in rec["sequential_statuses"].items())
               + f" in {rec['sequential_s']} s; service2 open fds {rec['fds_service2']} "
               f"(baseline {rec['fds_service2_baseline']}).")
    out += ["", "| process | pid | alive | RSS MiB | VmHWM MiB | fds | threads |",
            "|---|---|---|---|---|---|---|"]
    for p in rec["processes"]:
        out.append(f"| {p['process']} | {p['pid']} | {p['alive']} | "
                   f"{fmt((p['rss_kib'] or 0) / 1024, 1)} | {fmt((p['hwm_kib'] or 0) / 1024, 1)} "
                   f"| {p['fds']} | {p['threads']} |")
    return out


# -------------------------------------------------------------- exhaustion


def idle_h2_line(idle):
    closed = [r["closed_after_s"] for r in idle if r["closed_after_s"] is not None]
    return (f"**Idle HTTP/2** ({len(idle):,} connections to service2's REST port, one "
            f"say-hello each, then a PING every 5 s): {sum(r['served'] for r in idle):,} "
            f"served, {len(closed):,} closed by the server (GOAWAY on "
            f"{sum(r['goaway'] for r in idle):,}) after {fmt(min(closed) if closed else None, 1)}"
            f"–{fmt(max(closed) if closed else None, 1)} s of idleness; errors: "
            f"{sum(1 for r in idle if r['error'])}.")


def admin_port_rows(ex):
    out = ["", "| process | Watch streams tried | open | refused | connections | held Check "
           "calls opened | peak held | VmHWM MiB | bound MiB | exit after SIGTERM |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for label, w in ex["watches"].items():
        h, r, sd = ex["held"][label], ex.get("rss", {}).get(label, {}), ex["shutdown"][label]
        out.append(f"| {label} | {w.get('attempted', 0):,} | {w.get('watching', 0):,} "
                   f"| {w.get('refused', 0):,} | {w.get('connections', 0) + h.get('connections', 0):,} "
                   f"| {h.get('opened', 0):,} | {h.get('peak_held', 0):,} "
                   f"| {fmt(r.get('hwm_mib'), 1)} | {fmt(r.get('bound_mib'), 1)} "
                   f"| {fmt(sd['exit_s'], 2)} s, exit {sd['exit_code']} |")
    return out


def exhaust_section(ex):
    out = ["", f"## Exhaustion ({ex['seconds']:g} s, fresh processes)", "",
           idle_h2_line(ex["idle_h2"])]
    out += admin_port_rows(ex)
    out += ["", "Probes (new connection each, 1 s timeout): "
            + "; ".join(f"{k}: {v['ok']:,} ok" + (f", {v['failed']} failed {v['answers']}"
                                                   if v["failed"] else "")
                        for k, v in sorted(ex["probes"].items())) + "."]
    return out


# ----------------------------------------------------------------- hostile


def hostile_section(h):
    load = h["load"]
    out = ["", f"## Hostile clients ({h['seconds']:g} s, fresh processes)", "",
           f"**Full load** (oha on say-hello, closed loop): {load['completed']:,} answers "
           f"({load['rps']:,.0f}/s): {counts(load['status_codes'])}; connection errors: "
           f"{counts(load['connection_errors'], sort=False) or 'none'}; p50 "
           f"{fmt(load['latency_ms']['p50'], 1)} ms, p99 {fmt(load['latency_ms']['p99'], 1)} ms.",
           "", "| group | rounds | released or closed after (s) | errors |", "|---|---|---|---|"]
    for key, field in (("zero_window_admin", "released_after_s"), ("zero_window_rest", "released_after_s"),
                       ("never_read", "closed_after_stall_s"), ("over_cap", "closed_after_s"),
                       ("half_handshakes", "closed_after_s"), ("no_preface", "closed_after_s")):
        times = [r[field] for r in h[key] if r.get(field) is not None]
        errors = sum(1 for r in h[key] if r.get("error"))
        out.append(f"| {key.replace('_', ' ')} | {len(h[key]):,} | "
                   f"{fmt(min(times) if times else None, 2)}–{fmt(max(times) if times else None, 1)} "
                   f"| {errors:,} |")
    out += ["", "Probes (new connection each, 1 s timeout): "
            + "; ".join(f"{k}: {v['ok']:,} ok" + (f", {v['failed']} failed {v['answers']}"
                                                   if v["failed"] else "")
                        for k, v in sorted(h["probes"].items())) + "."]
    return out


# -------------------------------------------------------------------- soak


def soak_section(soak, cfg):
    ld = soak["load"]
    out = ["", f"## Soak ({cfg['soak_s']:g} s, fresh processes)", ""]
    out.append(f"oha at {cfg['soak_rate']} req/s over {cfg['soak_concurrency']} connections: "
               f"{ld['completed']:,} responses ({ld['rps']:.0f}/s), errors {ld['errors']} ("
               + counts(ld["status_codes"])
               + (f"; {ld['connection_errors']}" if ld["connection_errors"] else "")
               + f"); latency p50 {fmt(ld['latency_ms']['p50'], 2)} ms, p99 "
               f"{fmt(ld['latency_ms']['p99'], 2)} ms, max {fmt(ld['latency_ms']['max'], 1)} ms.")
    out += ["", f"RSS every {cfg['soak_sample_s']:g} s; “start” is the first sample after the "
            f"{cfg['soak_warmup_s']:g} s warm-up, “end” the last, right after the load:", "",
            "| process | before load MiB | start | end | max | slope MiB/h | fds start → end |",
            "|---|---|---|---|---|---|---|"]
    for label, r in soak["rss"].items():
        out.append(f"| {label} | {fmt(r['before_load_mib'], 1)} | {fmt(r['start_mib'], 1)} "
                   f"| {fmt(r['end_mib'], 1)} | {fmt(r['max_mib'], 1)} "
                   f"| {fmt(r['slope_mib_per_hour'], 2)} | {r['fds_start']} → {r['fds_end']} |")
    return out


# -------------------------------------------------------------------- gray


def window_row(r):
    lat = r["latency_ms"]
    errs = r["errors"]
    return (f"| {r['window']} | {r['seconds']:g} | {r['completed']:,} | {r['rps']:,.0f} | {errs:,} "
            f"| {fmt(lat['p50'], 1)} | {fmt(lat['p99'], 1)} | {fmt(lat['p99.9'], 1)} "
            f"| {fmt(lat['max'], 0)} |")


WINDOW_HEAD = ["| window | s | requests | req/s | errors | p50 ms | p99 ms | p99.9 ms | longest ms |",
               "|---|---|---|---|---|---|---|---|---|"]


def frozen_lines(fr, cfg):
    out = ["", f"**Frozen replica**: oha closed loop, {cfg['gray_connections']} connections; "
           f"{fr['victim']} SIGSTOPped at {fr['stopped_s']:.1f} s for {fr['freeze_s']:g} s, "
           f"SIGCONTed at {fmt(fr['resumed_s'], 1)} s:", ""] + WINDOW_HEAD
    out += [window_row(r) for r in fr["windows"]]
    calls = fr["calls_by_window"].get("while frozen") or {}
    to_victim = sum(v for k, v in calls.items() if k.startswith(fr["victim_endpoint_prefix"]))
    m = fr["metrics_delta"]
    out += ["", f"In all {fr['requests']:,} requests, {fr['errors']:,} errors, the longest "
            f"{fmt(fr['longest_ms'], 0)} ms. service2 (`/metrics`, read every 0.25 s): ejected "
            f"{fmt(fr['ejected_after_stop_s'], 2)} s after SIGSTOP ("
            + (", ".join(f"{k}: {v}" for k, v in ejection_reasons(m).items()) or "none")
            + f"), taken back {fmt(fr['returned_after_resume_s'], 2)} s after SIGCONT; replicas "
            f"ready while frozen, at the fewest: {fmt(fr['ready_min_while_frozen'], 0)}; attempts "
            f"on the frozen replica from just before SIGSTOP to SIGCONT (those in flight at "
            f"SIGSTOP included): {to_victim:,}; over the phase "
            + ", ".join(f"`{k}` {v:,}" for k, v in sorted(m.items())
                        if not k.startswith("service1_calls_total"))
            + "."]
    return out + log_timeline(fr)


def log_timeline(fr):
    """service2's log about the frozen replica, in seconds after SIGSTOP
    (failed reconnections counted, not listed)."""
    events = (fr.get("service2_log") or {}).get("first", [])
    out, failed = [], 0
    for e in events:
        if not str(e.get("endpoint", "")).startswith(fr["victim_endpoint_prefix"]):
            continue
        msg = e["message"]
        if msg.startswith("cannot connect"):
            failed += 1
            continue
        if msg.endswith("replica added") or not e.get("timestamp"):
            continue
        try:
            t = datetime.strptime(e["timestamp"][:26], "%Y-%m-%dT%H:%M:%S.%f")
        except ValueError:
            continue
        at = t.replace(tzinfo=timezone.utc).timestamp() - fr["stopped_unix"]
        if at < 0:
            continue
        what = msg.split(":")[0].split(";")[0].removeprefix("service1 replica ")
        if e.get("reason"):
            what += f" ({e['reason']}, {e.get('ejected_for_ms', 0) / 1000:g} s)"
        out.append(f"+{at:.2f} s {what}")
    if not out:
        return []
    return ["", "service2's log, seconds after SIGSTOP: " + "; ".join(out)
            + f" (failed reconnections in between: {failed})."]


def slow_lines(sl, cfg):
    out = ["", f"**Slow replica**: {sl['slow_replica']} behind a relay that holds each of its "
           f"chunks to service2 for {sl['delay_ms']:g} ms from the second window on; oha closed "
           f"loop, {cfg['gray_connections']} connections:", ""]
    out += ["| window | s | requests | req/s | errors | p50 ms | p99 ms | p99.9 ms | longest ms "
            "| calls to the slow replica |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sl["windows"]:
        c = r["calls"]
        out.append(window_row(r) + f" {c['slow']:,} of {c['total']:,} ({fmt(c['slow_pct'], 3)} %) |")
    rl = sl["relay"]
    out += ["", f"Relay: {rl['connections']} connection(s), {rl['chunks_down_delayed']:,} chunks "
            f"delayed of {rl['chunks_down']:,} to service2."]
    return out


def gray_section(g, cfg):
    out = ["", f"## Gray failure (fresh processes, service1 ×{GRAY_REPLICAS}; the first "
           f"{GRAY_WARMUP_S:g} s a healthy warm-up)"]
    if g.get("frozen") is not None:
        out += frozen_lines(g["frozen"], cfg)
    if g.get("slow") is not None:
        out += slow_lines(g["slow"], cfg)
    return out


def markdown(doc, cfg):
    out = header(doc) + checks_table(doc["checks"])
    if doc.get("storm") is not None:
        out += storm_section(doc, cfg)
    if doc.get("recovery") is not None:
        out += recovery_section(doc["recovery"])
    if doc.get("exhaust") is not None:
        out += exhaust_section(doc["exhaust"])
    if doc.get("hostile") is not None:
        out += hostile_section(doc["hostile"])
    if doc.get("soak") is not None:
        out += soak_section(doc["soak"], cfg)
    if doc.get("gray") is not None:
        out += gray_section(doc["gray"], cfg)
    out += ["", "Raw figures, every sample and every slowloris connection: "
            "[stress.json](stress.json). Service logs: `logs/` (gzip)."]
    return "\n".join(out) + "\n"
