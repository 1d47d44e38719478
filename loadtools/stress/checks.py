"""The stress check's verdicts: the figures of each phase, and every check
as {phase, check, measured, limit, pass}, in the order stress.md lists them."""

from loadtools.common import fmt
from loadtools.procfs import series_of
from loadtools.stress.limits import (CAP_SLACK, CHART_MEMORY_MIB, CUTOFF_SLACK_S, FLOOD_ERROR_PCT,
                                     GRAY_LONGEST_S, HEADER_READ_TIMEOUT_S, HEALTH_MAX_WATCHES,
                                     HOSTILE_SLACK_S, IDLE_SLACK_S, IDLE_TIMEOUT_S, SHUTDOWN_GRACE_S,
                                     SHUTDOWN_LIMIT_S,
                                     TLS_HANDSHAKE_TIMEOUT_S, WRITE_TIMEOUT_S)


class Checks(list):
    def add(self, name, measured, limit, ok, phase):
        self.append({"phase": phase, "check": name, "measured": measured, "limit": limit,
                     "pass": bool(ok)})


def pctl(values, p):
    if not values:
        return None
    v = sorted(values)
    k = min(len(v) - 1, max(0, int(round(p / 100.0 * (len(v) - 1)))))
    return v[k]


def slope_mib_per_hour(points):
    """Least-squares slope of [(t s, KiB)], in MiB per hour."""
    if len(points) < 3:
        return None
    n = len(points)
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    den = sum((t - mx) ** 2 for t, _ in points)
    if den == 0:
        return None
    return sum((t - mx) * (v - my) for t, v in points) / den * 3600 / 1024


def summarize(doc, cfg):
    """Adds each phase's figures to `doc`; returns the checks."""
    checks = Checks()
    if doc.get("storm") is not None:
        storm_memory_checks(doc, cfg, checks)
        good_client_checks(doc["storm"]["good"], cfg, checks)
        flood_checks(doc["storm"]["flood"], checks)
        slowloris_checks(doc["storm"], cfg, checks)
        if cfg["oversized"]:
            oversized_checks(doc["storm"]["oversized"], cfg, checks)
    if doc.get("recovery") is not None:
        recovery_checks(doc["recovery"], cfg, checks)
    if doc.get("exhaust") is not None:
        exhaustion_checks(doc["exhaust"], cfg, checks)
    if doc.get("hostile") is not None:
        hostile_checks(doc["hostile"], checks)
    if doc.get("soak") is not None:
        soak_checks(doc, cfg, checks)
    if doc.get("gray") is not None:
        gray_checks(doc["gray"], cfg, checks)
    return list(checks)


# ------------------------------------------------------------------- storm


def storm_client_conns(doc, cfg):
    """Client connections each kind of process holds at once in the storm
    (service1's only client is service2)."""
    return {"service1": 1,
            "service2": doc["fd_limit"]["connections_used"] + cfg["slowloris"]
            + (2 * cfg["variant_conns"] if cfg["variants"] else 0)
            + cfg["oversized"] + cfg["good_clients"]}


def storm_memory_checks(doc, cfg, checks):
    """Peak RSS per process ≤ a fixed base + a budget per client connection."""
    storm = doc["storm"]
    client_conns = storm_client_conns(doc, cfg)
    rss = {}
    for label in [p["process"] for p in doc["processes"]["storm"]]:
        kind = label.split("[")[0]
        limit = cfg["rss_base_mib"] + cfg["rss_per_conn_kib"] * client_conns[kind] / 1024
        series = [v for _, v in series_of(storm["samples"], label, "rss_kib")]
        hwm = [v for _, v in series_of(storm["samples"], label, "hwm_kib")]
        fds = [v for _, v in series_of(storm["samples"], label, "fds")]
        rss[label] = {"start_mib": series[0] / 1024 if series else None,
                      "peak_sampled_mib": max(series) / 1024 if series else None,
                      "hwm_mib": max(hwm) / 1024 if hwm else None,
                      "last_mib": series[-1] / 1024 if series else None,
                      "peak_fds": max(fds) if fds else None,
                      "client_connections": client_conns[kind], "limit_mib": limit}
        v = rss[label]["hwm_mib"]
        checks.add(f"storm: {label} peak RSS (VmHWM)", f"{fmt(v, 1)} MiB",
                   f"≤ {limit:.0f} MiB ({cfg['rss_base_mib']:g} MiB + {cfg['rss_per_conn_kib']:g} "
                   f"KiB × {client_conns[kind]:,} connection{'s' if client_conns[kind] != 1 else ''})",
                   v is not None and v <= limit, "storm")
    storm["rss"] = rss


def good_client_checks(g, cfg, checks):
    pct = 100.0 * g["ok"] / g["requests"] if g["requests"] else 0.0
    g["success_pct"] = pct
    g["first_attempt_pct"] = 100.0 * g["ok_first_attempt"] / g["requests"] if g["requests"] else 0.0
    lat = g.pop("latencies")
    g.pop("t0", None)
    g["latency_ms"] = {k: (pctl(lat, p) * 1000 if lat else None)
                       for k, p in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))}
    checks.add("storm: well-behaved requests answered 200 (retrying 503 + Retry-After)",
               f"{pct:.2f} % of {g['requests']:,}", f"≥ {cfg['good_target_pct']:g} %",
               g["requests"] >= 10 and pct >= cfg["good_target_pct"], "storm")
    answers = g["attempt_answers"]
    n_att = sum(answers.values())
    n_doc = answers.get("200", 0) + answers.get("503 + Retry-After", 0)
    others = ", ".join(f"{k}: {v}" for k, v in answers.items()
                       if k not in ("200", "503 + Retry-After"))
    checks.add("storm: every well-behaved attempt answered 200 or 503 + Retry-After (no timeout, "
               "reset or other status)", f"{n_doc:,} of {n_att:,}"
               + (f" ({others})" if n_doc != n_att else ""), "all", n_att > 0 and n_doc == n_att,
               "storm")


def flood_checks(f, checks):
    other = {k: v for k, v in f["status_codes"].items() if k not in ("200", "503")}
    f["served_pct"] = 100.0 * f["ok"] / (f["completed"] + sum(f["connection_errors"].values())) \
        if f["completed"] else 0.0
    checks.add("storm: flood answered only 200 or 503 (no other status)",
               ", ".join(f"{k}: {v:,}" for k, v in sorted(f["status_codes"].items())) or "none",
               "{200, 503}", not other and f["completed"] > 0, "storm")
    n_err = sum(f["connection_errors"].values())
    n_tries = f["completed"] + n_err
    errors = ", ".join(f"{k}: {v:,}" for k, v in f["connection_errors"].items())
    checks.add("storm: flood requests lost to connection errors or timeouts",
               f"{n_err:,} of {n_tries:,}" + (f" ({errors})" if n_err else ""),
               f"≤ {FLOOD_ERROR_PCT:g} %",
               n_tries > 0 and 100.0 * n_err / n_tries <= FLOOD_ERROR_PCT, "storm")


# --------------------------------------------------------------- slowloris

SLOWLORIS_LIMIT_S = HEADER_READ_TIMEOUT_S + CUTOFF_SLACK_S


def new_group():
    return {"connections": 0, "closed_by_server": 0, "still_open_at_end": 0, "censored": 0,
            "connect_failed": 0, "late": 0, "times": [], "received": {}}


def add_connection(grp, r):
    """Counts one slowloris connection into its group."""
    if r["outcome"] and r["outcome"].startswith("connect failed"):
        grp["connect_failed"] += 1
        return
    grp["connections"] += 1
    if r["outcome"] == "closed by the server":
        grp["closed_by_server"] += 1
        grp["times"].append(r["open_s"])
        if r["open_s"] > SLOWLORIS_LIMIT_S:
            grp["late"] += 1
        key = r["received"][:40] or "(nothing)"
        grp["received"][key] = grp["received"].get(key, 0) + 1
    elif r["outcome"] == "still open at the end":
        grp["still_open_at_end"] += 1
    else:
        grp["censored"] += 1


def slowloris_groups(connections):
    """Per kind: how its connections ended, and how long the server took to cut them off."""
    groups = {}
    for r in connections:
        add_connection(groups.setdefault(r["kind"], new_group()), r)
    for grp in groups.values():
        t = grp.pop("times")
        grp["cutoff_s"] = {"min": min(t) if t else None, "p50": pctl(t, 50),
                           "p99": pctl(t, 99), "max": max(t) if t else None}
    return groups


def slowloris_checks(storm, cfg, checks):
    groups = slowloris_groups(storm["slowloris"])
    storm["slowloris_summary"] = groups
    names = {"partial-head": "slowloris (partial request head, 1 byte per "
                             f"{cfg['slowloris_interval_s']:g} s)",
             "silent": "slowloris variant: connect and send nothing",
             "h2-preface": "slowloris variant: HTTP/2 preface, 1 byte per 2 s"}
    kinds = (["partial-head"] if cfg["slowloris"] else []) \
        + (["silent", "h2-preface"] if cfg["variants"] else [])
    for kind in kinds:
        grp = groups.get(kind, {"closed_by_server": 0, "late": 0, "still_open_at_end": 0,
                                "cutoff_s": {"max": None}})
        in_time = grp["closed_by_server"] - grp["late"]
        judged = grp["closed_by_server"] + grp["still_open_at_end"]
        checks.add(f"storm: {names[kind]} cut off within {SLOWLORIS_LIMIT_S:g} s",
                   f"{in_time:,} of {judged:,} ("
                   + (f"slowest {fmt(grp['cutoff_s']['max'], 1)} s, " if grp["closed_by_server"]
                      else "none closed, ")
                   + f"{grp['still_open_at_end']} still open at the end)",
                   f"all, ≤ {HEADER_READ_TIMEOUT_S:g} s + {CUTOFF_SLACK_S:g} s",
                   judged > 0 and in_time == judged, "storm")


def oversized_checks(o, cfg, checks):
    got = {k: v for k, v in o.items() if not k.startswith("connect failed")}
    n431 = got.get("431", 0)
    others = ", ".join(f"{k}: {v}" for k, v in got.items() if k != "431")
    checks.add(f"storm: {cfg['oversized_bytes'] // 1024} KiB header answered 431",
               f"{n431:,} of {sum(got.values()):,}"
               + (f" (others: {others})" if len(got) > (1 if n431 else 0) else ""),
               "all", n431 > 0 and n431 == sum(got.values()), "storm")


# ---------------------------------------------------------------- recovery


def recovery_checks(rec, cfg, checks):
    ra = rec["ready_after_s"]
    checks.add("recovery: /readyz 200 on all (service2: 2 replicas ready)",
               f"after {fmt(ra, 1)} s" if ra is not None else "not ready",
               f"≤ {cfg['recovery_timeout_s']:g} s", ra is not None, "recovery")
    ok = rec["sequential_statuses"].get("200", 0)
    checks.add("recovery: 100 sequential say-hello answered 200",
               f"{ok} of 100" + (f" ({rec['sequential_statuses']})" if ok != 100 else ""),
               "100", ok == 100, "recovery")
    same = all(p["alive"] and p["start_ticks_after"] == p["start_ticks_before"]
               for p in rec["processes"])
    checks.add("recovery: no restart (same pids, same start times, alive)",
               ", ".join(f"{p['process']} {p['pid']}{'' if p['alive'] else ' DEAD'}"
                         for p in rec["processes"]), "unchanged", same, "recovery")
    checks.add("recovery: service2's open fds back near the baseline",
               f"{rec['fds_service2']} (baseline {rec['fds_service2_baseline']})",
               f"≤ {rec['fds_service2_limit']}", rec["fds_service2"] is not None
               and rec["fds_service2"] <= rec["fds_service2_limit"], "recovery")


# -------------------------------------------------------------- exhaustion


def exhaustion_checks(ex, cfg, checks):
    idle_h2_checks(ex["idle_h2"], checks)
    watch_checks(ex["watches"], checks)
    probe_checks(ex["probes"], checks)
    exhaustion_memory_checks(ex, cfg, checks)
    shutdown_checks(ex["shutdown"], checks)


def idle_h2_checks(idle, checks):
    limit = IDLE_TIMEOUT_S + IDLE_SLACK_S
    closed = [r["closed_after_s"] for r in idle if r["closed_after_s"] is not None]
    in_time = [c for c in closed if c <= limit]
    served = sum(r["served"] for r in idle)
    checks.add(f"exhaustion: idle h2 connections (one request, then only PINGs) closed by the "
               f"server within HTTP_IDLE_TIMEOUT + {IDLE_SLACK_S:g} s",
               f"{len(in_time):,} of {len(idle):,} (served first: {served:,}; close after "
               f"{fmt(min(closed) if closed else None, 1)}–"
               f"{fmt(max(closed) if closed else None, 1)} s)",
               f"all, ≤ {limit:g} s", idle and len(in_time) == len(idle) == served, "exhaustion")


def watch_checks(per_process, checks):
    for label, w in per_process.items():
        checks.add(f"exhaustion: {label} Watch streams open ≤ HEALTH_MAX_WATCHES, the rest refused",
                   f"{w.get('watching', 0):,} open, {w.get('refused', 0):,} refused of "
                   f"{w.get('attempted', 0):,}",
                   f"≤ {HEALTH_MAX_WATCHES}, none unanswered",
                   w.get("watching", 0) <= HEALTH_MAX_WATCHES and w.get("attempted", 0) > 0
                   and w.get("unanswered_or_ended", 0) == 0, "exhaustion")


def probe_checks(results, checks, phase="exhaustion"):
    probe_rows = [(k, v) for k, v in results.items() if not k.endswith("say-hello")]
    failed = sum(v["failed"] for _, v in probe_rows)
    total = sum(v["ok"] + v["failed"] for _, v in probe_rows)
    checks.add(f"{phase}: probes answered (/livez, /readyz 200, gRPC Check SERVING; new "
               "connection, 1 s timeout, every admin port every second)",
               f"{total - failed:,} of {total:,}", "all", total > 0 and failed == 0, phase)
    hello = results.get("service2 say-hello", {"ok": 0, "failed": 0})
    checks.add(f"{phase}: say-hello served throughout", f"{hello['ok']:,} of "
               f"{hello['ok'] + hello['failed']:,}", "all",
               hello["ok"] > 0 and hello["failed"] == 0, phase)


def exhaustion_memory_checks(ex, cfg, checks):
    """Peak RSS ≤ the storm's bound plus a budget per stream held."""
    ex["rss"] = {}
    for label in ex["watches"]:
        w, h = ex["watches"][label], ex["held"][label]
        conns = w.get("connections", 0) + h.get("connections", 0) + 4  # + probes, service2's
        if label == "service2":
            conns += len(ex["idle_h2"])
        streams = h.get("peak_held", 0) + w.get("watching", 0)
        bound = (cfg["rss_base_mib"] + cfg["rss_per_conn_kib"] * conns / 1024
                 + cfg["rss_per_stream_kib"] * streams / 1024)
        hwm = [v for _, v in series_of(ex["samples"], label, "hwm_kib")]
        peak = max(hwm) / 1024 if hwm else None
        ex["rss"][label] = {"hwm_mib": peak, "bound_mib": bound, "connections": conns,
                            "streams": streams}
        checks.add(f"exhaustion: {label} peak RSS (VmHWM) ≤ {cfg['rss_base_mib']:g} MiB + "
                   f"{cfg['rss_per_conn_kib']:g} KiB × {conns:,} connections + "
                   f"{cfg['rss_per_stream_kib']:g} KiB × {streams:,} streams held",
                   f"{fmt(peak, 1)} MiB", f"≤ {bound:.1f} MiB", peak is not None and peak <= bound,
                   "exhaustion")


def shutdown_checks(sd, checks):
    slow = {k: v for k, v in sd.items() if v["exit_code"] != 0 or v["exit_s"] is None
            or v["exit_s"] > SHUTDOWN_LIMIT_S}
    checks.add(f"exhaustion: SIGTERM with Watch streams open: every process exits 0 within "
               f"{SHUTDOWN_LIMIT_S:g} s (SHUTDOWN_GRACE is {SHUTDOWN_GRACE_S:g} s)",
               ", ".join(f"{k} {fmt(v['exit_s'], 2)} s (exit {v['exit_code']})"
                         for k, v in sd.items()),
               f"≤ {SHUTDOWN_LIMIT_S:g} s, exit 0", not slow, "exhaustion")


# ----------------------------------------------------------------- hostile


AT_ONCE_S = 1.0  # hostile.AT_ONCE_S: closed this soon means refused at the cap


def span(values):
    """`min–max` of the values, or `none`."""
    return f"{fmt(min(values), 1)}–{fmt(max(values), 1)}" if values else "none"


def released_in_time(records, key, limit):
    """(records released within `limit`, how many were judged, their times)."""
    times = [r[key] for r in records if r.get(key) is not None]
    return sum(t <= limit for t in times), len(records), times


def hostile_stream_checks(h, checks):
    limit = WRITE_TIMEOUT_S + HOSTILE_SLACK_S
    for key, what in (("zero_window_admin", "service1 admin port, /metrics"),
                      ("zero_window_rest", "service2 REST port, say-hello")):
        ok, n, times = released_in_time(h[key], "released_after_s", limit)
        streams = sum(r["streams"] for r in h[key])
        checks.add(f"hostile: zero-window HTTP/2 streams ({what}) released by the server within "
                   f"HTTP_WRITE_TIMEOUT + {HOSTILE_SLACK_S:g} s",
                   f"{ok:,} of {n:,} connections ({streams:,} streams, "
                   f"{sum(r['reset'] for r in h[key]):,} reset) after {span(times)} s",
                   f"all, ≤ {limit:g} s", n > 0 and ok == n, "hostile")
    ok, n, times = released_in_time(h["never_read"], "closed_after_stall_s", limit)
    checks.add(f"hostile: HTTP/1.1 connections that never read closed by the server within "
               f"HTTP_WRITE_TIMEOUT + {HOSTILE_SLACK_S:g} s of the writes stalling",
               f"{ok:,} of {n:,} after {span(times)} s from the last write the connection took",
               f"all, ≤ {limit:g} s", n > 0 and ok == n, "hostile")


def fds_held(samples, label):
    """(open fds at the first sample, the most open at any sample) of a process."""
    fds = [v for _, v in series_of(samples, label, "fds")]
    return (fds[0], max(fds)) if fds else (None, None)


def hostile_cap_checks(h, checks):
    groups = (("over_cap", "silent connections to service1[1]'s REST port", "service1[1]",
               HEADER_READ_TIMEOUT_S),
              ("half_handshakes", "half-finished TLS handshakes on service1[0]'s gRPC port",
               "service1[0]", TLS_HANDSHAKE_TIMEOUT_S))
    for key, what, label, timeout in groups:
        recs, bound = h[key], h["fd_bounds"][label]
        refused = sum(1 for r in recs if r["closed_after_s"] is not None
                      and r["closed_after_s"] < AT_ONCE_S)
        first, most = fds_held(h["samples"], label)
        extra = None if first is None else most - first
        limit = bound["cap"] + bound["others"] + CAP_SLACK
        checks.add(f"hostile: {what}: past the cap ({bound['cap']:,}) closed at once, and the "
                   f"process never holds more (its open fds, beyond {bound['others']:,} other "
                   f"connections)", f"{refused:,} of {len(recs):,} closed within {AT_ONCE_S:g} s; "
                   f"{label} at most {fmt(extra, 0)} fds more than at the start",
                   f"some refused, ≤ {limit:,} more", refused > 0 and extra is not None
                   and extra <= limit, "hostile")
        limit = timeout + HOSTILE_SLACK_S
        ok, n, times = released_in_time(recs, "closed_after_s", limit)
        checks.add(f"hostile: {what}: every one closed by the server within its timeout + "
                   f"{HOSTILE_SLACK_S:g} s", f"{ok:,} of {n:,} after {span(times)} s",
                   f"all, ≤ {limit:g} s", n > 0 and ok == n, "hostile")
    limit = 2 * TLS_HANDSHAKE_TIMEOUT_S + HOSTILE_SLACK_S
    ok, n, times = released_in_time(h["no_preface"], "closed_after_s", limit)
    checks.add("hostile: finished mTLS connections that never send the HTTP/2 preface closed "
               f"within TLS_HANDSHAKE_TIMEOUT (handshake, then preface) + {HOSTILE_SLACK_S:g} s",
               f"{ok:,} of {n:,} after {span(times)} s", f"all, ≤ {limit:g} s",
               n > 0 and ok == n, "hostile")


def hostile_service_checks(h, checks):
    load = h["load"]
    errors = sum(load["connection_errors"].values())
    other = {k: v for k, v in load["status_codes"].items() if str(k) != "200"}
    checks.add("hostile: say-hello at full load (oha, closed loop) while every shape runs: only "
               "200s", f"{load['completed']:,} answers ({counts_text(load['status_codes'])}); "
               f"connection errors {errors:,}", "all 200, no errors",
               load["completed"] > 0 and not other and errors == 0, "hostile")
    probe_checks(h["probes"], checks, "hostile")
    dead = [k for k, alive in h["alive"].items() if not alive]
    for label in h["alive"]:
        hwm = [v for _, v in series_of(h["samples"], label, "hwm_kib")]
        peak = max(hwm) / 1024 if hwm else None
        checks.add(f"hostile: {label} peak RSS (VmHWM) under the chart's memory limit",
                   f"{fmt(peak, 1)} MiB", f"< {CHART_MEMORY_MIB:g} MiB",
                   peak is not None and peak < CHART_MEMORY_MIB, "hostile")
    checks.add("hostile: every process still up at the end", ", ".join(dead) or "all up", "all",
               not dead, "hostile")


def counts_text(d):
    return ", ".join(f"{k}: {v:,}" for k, v in sorted(d.items(), key=lambda kv: str(kv[0])))


def hostile_checks(h, checks):
    hostile_stream_checks(h, checks)
    hostile_cap_checks(h, checks)
    hostile_service_checks(h, checks)


# -------------------------------------------------------------------- soak


def soak_load_checks(ld, cfg, checks):
    checks.add("soak: zero errors (non-200 + connection errors)", f"{ld['errors']:,} of "
               f"{ld['completed'] + sum(ld['connection_errors'].values()):,}", "0",
               ld["errors"] == 0 and ld["completed"] > 0, "soak")
    want = cfg["soak_rate"] * cfg["soak_s"]
    checks.add("soak: the load was delivered", f"{ld['completed']:,} requests "
               f"({ld['rps']:.0f} req/s)", f"≥ 90 % of {want:,.0f}",
               ld["completed"] >= 0.9 * want, "soak")


def soak_rss(soak_doc, label, cfg):
    """One process's RSS over the soak: before the load, after the warm-up, at the end."""
    pts = [(t, v) for t, v in series_of(soak_doc["samples"], label, "rss_kib")]
    after = [(t, v) for t, v in pts if t >= cfg["soak_warmup_s"]]
    fds = [v for _, v in series_of(soak_doc["samples"], label, "fds")]
    return {
        "before_load_mib": soak_doc["before_load"][label]["rss_kib"] / 1024,
        "start_mib": after[0][1] / 1024 if after else None,
        "start_t_s": after[0][0] if after else None,
        "end_mib": pts[-1][1] / 1024 if pts else None,
        "max_mib": max(v for _, v in pts) / 1024 if pts else None,
        "slope_mib_per_hour": slope_mib_per_hour(after),
        "fds_start": fds[0] if fds else None, "fds_end": fds[-1] if fds else None,
    }, len(after)


def soak_checks(doc, cfg, checks):
    soak_doc = doc["soak"]
    soak_load_checks(soak_doc["load"], cfg, checks)
    flat = {}
    for label in [p["process"] for p in doc["processes"]["soak"]]:
        r, n_after = soak_rss(soak_doc, label, cfg)
        flat[label] = r
        start, end = r["start_mib"], r["end_mib"]
        checks.add(f"soak: {label} RSS flat (end ≤ start after warm-up + "
                   f"{cfg['soak_tolerance_mib']:g} MiB)",
                   f"{fmt(start, 1)} → {fmt(end, 1)} MiB",
                   f"≤ {fmt(start + cfg['soak_tolerance_mib'], 1) if start else '–'} MiB",
                   start is not None and n_after >= 2
                   and end <= start + cfg["soak_tolerance_mib"], "soak")
    soak_doc["rss"] = flat


# -------------------------------------------------------------------- gray


def gray_checks(g, cfg, checks):
    fr = g.get("frozen")
    if fr is not None:
        frozen_checks(fr, cfg, checks)
    sl = g.get("slow")
    if sl is not None:
        slow_checks(sl, cfg, checks)


def ejection_reasons(metrics):
    """{reason: count} from `service1_ejections_total{reason="…"}` series."""
    return {k.split('reason="')[1].split('"')[0]: v for k, v in metrics.items()
            if k.startswith("service1_ejections_total{") and 'reason="' in k}


def frozen_checks(fr, cfg, checks):
    tried = fr["requests"] + sum(sum(r["connection_errors"].values()) for r in fr["windows"])
    checks.add(f"gray: a replica frozen {fr['freeze_s']:g} s (SIGSTOP) at full load: zero errors "
               "(non-200 + connection errors)", f"{fr['errors']:,} of {tried:,}", "0",
               fr["errors"] == 0 and fr["requests"] > 0, "gray")
    worst = max(fr["windows"], key=lambda r: r["latency_ms"]["max"])
    checks.add("gray: frozen replica: the longest request", f"{fmt(fr['longest_ms'] / 1000, 2)} s "
               f"({worst['window']})", f"< {GRAY_LONGEST_S:g} s",
               fr["longest_ms"] < GRAY_LONGEST_S * 1000, "gray")
    ej = fr["ejected_after_stop_s"]
    reasons = ", ".join(f"{k}: {v}" for k, v in ejection_reasons(fr["metrics_delta"]).items())
    checks.add("gray: frozen replica ejected by service2 (service1_ejections_total)",
               f"{fmt(ej, 2)} s after SIGSTOP ({reasons})" if ej is not None else "not ejected",
               f"while frozen (≤ {fr['freeze_s']:g} s)",
               ej is not None and ej <= fr["freeze_s"], "gray")
    back = fr["returned_after_resume_s"]
    checks.add("gray: frozen replica taken back after SIGCONT (service1_ejection_returns_total)",
               f"{fmt(back, 2)} s after SIGCONT" if back is not None else "not taken back",
               f"within the after-window ({cfg['gray_s']:g} s)", back is not None, "gray")


def slow_checks(sl, cfg, checks):
    healthy, slowed = sl["windows"]
    tried = slowed["completed"] + sum(slowed["connection_errors"].values())
    checks.add(f"gray: a replica {sl['delay_ms']:g} ms slow at full load: zero errors",
               f"{slowed['errors']:,} of {tried:,}", "0",
               slowed["errors"] == 0 and slowed["completed"] > 0, "gray")
    p99 = slowed["latency_ms"]["p99"]
    checks.add("gray: slow replica: say-hello p99",
               f"{fmt(p99, 1)} ms (healthy control: {fmt(healthy['latency_ms']['p99'], 1)} ms)",
               f"≤ {cfg['gray_p99_ms']:g} ms", p99 is not None and p99 <= cfg["gray_p99_ms"],
               "gray")
    c = slowed["calls"]
    checks.add("gray: slow replica: its share of the calls (service1_calls_total)",
               f"{fmt(c['slow_pct'], 3)} % ({c['slow']:,} of {c['total']:,})",
               f"≤ {cfg['gray_slow_share_pct']:g} %",
               c["slow_pct"] is not None and c["slow_pct"] <= cfg["gray_slow_share_pct"], "gray")
