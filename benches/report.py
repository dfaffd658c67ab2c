#!/usr/bin/env python3
"""Writes BENCHMARKS.md from the JSON lines syncline-loadgen recorded (benches/compare.sh).

usage: report.py RESULTS.jsonl --out FILE.md --plots DIR [--no-plots] [--criterion DIR]

With --criterion, the criterion micro-benchmarks' estimates found under DIR (target/criterion)
are tabled too.

Plots (PNG, paths relative to the repository root) need matplotlib; without it, or with
--no-plots, the report says they were not drawn.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

SERVERS = ["syncline", "reference", "samod"]
NAMES = {
    "syncline": "Syncline",
    "reference": "reference JS server",
    "samod": "samod server",
}


def load(path):
    runs = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                r = json.loads(line)
                runs[(r["scenario"], r["label"])] = r
    return runs


def fmt(value, digits=0):
    if value is None:
        return "–"
    if isinstance(value, float) and digits == 0:
        return f"{value:,.0f}"
    if isinstance(value, (int, float)):
        return f"{value:,.{digits}f}"
    return str(value)


def ratio(ours, theirs, higher_is_better=True):
    if not ours or not theirs:
        return "–"
    r = ours / theirs if higher_is_better else theirs / ours
    return f"{r:.1f}×"


def mib(kib):
    return None if kib is None else kib / 1024


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kib = int(f.readline().split()[1])
            mem = f"{kib / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {mem}, Linux {platform.release()}; commit {commit}, "
        f"{time.strftime('%Y-%m-%d')}. Each server and the load generator run in their own "
        "processes on the same machine, so figures include their contention for the cores."
    )


def failed(runs, scenario, server):
    r = runs.get((scenario, server))
    if r is None:
        return "not run"
    return r.get("failed")


def server_rows(runs, scenario, columns, row):
    """One row per server: ROW(record) after the server's name (COLUMNS in all), or why the
    server could not run SCENARIO."""
    out = []
    for server in SERVERS:
        why = failed(runs, scenario, server)
        if why:
            out.append(f"| {NAMES[server]} | could not run: {why} " + "|" * (columns - 1))
        else:
            out.append(f"| {NAMES[server]} | " + row(server, runs[(scenario, server)]) + " |")
    return out


def server_cols(r):
    s = r.get("server") or {}
    return [fmt(s.get("cpu_percent")), fmt(mib(s.get("peak_kib")), 1)]


def cpu_per_change(r):
    """Server CPU milliseconds per acknowledged change: the cost of a change whatever the load
    generator managed to offer."""
    s = r.get("server") or {}
    if not s.get("cpu_s") or not r.get("acked"):
        return None
    return s["cpu_s"] * 1000 / r["acked"]


def collab_cells(r, ours):
    a, p = r["ack"], r["propagation"]
    mine = r["label"].startswith("syncline")
    per = cpu_per_change(r)
    return (
        f"{r['peers']} | {fmt(r['acked_per_s'])} | "
        f"{'1.0×' if mine else ratio(ours.get('acked_per_s'), r['acked_per_s'])} | "
        f"{fmt(a['p50_ms'], 1)} / {fmt(a['p99_ms'], 1)} | "
        f"{fmt(p['p50_ms'], 1)} / {fmt(p['p95_ms'], 1)} / {fmt(p['p99_ms'], 1)} / {fmt(p['max_ms'], 1)} | "
        f"{r['missed']} | {r['errors']} | " + " | ".join(server_cols(r))
        + f" | {fmt(per, 2)} | {fmt(r.get('generator_cpu_percent'))}"
    )


def collab_table(runs, scenario, title, intro):
    out = [f"## {title}", "", intro, ""]
    ours = runs.get((scenario, "syncline"), {})
    out.append(
        "| server | peers | acked changes/s | Syncline's ratio | ack p50 / p99 ms | "
        "propagation p50 / p95 / p99 / max ms | missed | errors | server CPU % | peak MiB | "
        "server CPU ms per acked change | load generator CPU % |"
    )
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    out += server_rows(runs, scenario, 12, lambda server, r: collab_cells(r, ours))
    paced = runs.get((scenario, "syncline-paced"))
    if paced and not paced.get("failed"):
        rate, seconds = paced["params"]["rate"], paced["params"]["seconds"]
        out.append(
            f"| Syncline, each editor paced at the reference server's rate ({rate} changes/s, "
            f"first changes spread over the interval, {seconds} s) | "
            + collab_cells(paced, ours) + " |"
        )
    floor = runs.get(("collab-floor", "automerge"))
    if scenario == "collab" and floor and not floor.get("failed"):
        out.append(
            f"| automerge crate in-process, one thread (the floor) | {floor['peers']} | "
            f"{fmt(floor['acked_per_s'])} | {ratio(ours.get('acked_per_s'), floor['acked_per_s'])} "
            "| – | – | – | – | – | – | – | – |"
        )
    out.append("")
    return out


def cold_table(runs):
    out = [
        "## Cold load",
        "",
        "A document with a generated text editing history (`benches/src/loadgen/history.rs`: "
        "typing with corrections and cursor jumps, 8 keystrokes per change) is uploaded, the "
        "server is stopped once its storage is written and started again on the same data, and "
        "a fresh peer asks for the document. *First data* is the time from asking to the first "
        "message carrying the document (the server read it from storage and encoded it); "
        "*complete* adds the peer applying it. The floor is `Automerge::load` of the same saved "
        "document in the load generator's process (median of 5). The operating system's page "
        "cache is not dropped between the upload and the load.",
        "",
        "| server | operations | saved KiB | first data ms | complete ms | floor ms | "
        "first data ÷ floor | reply KiB | server peak MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    out += server_rows(runs, "cold", 9, lambda server, r: (
        f"{fmt(r['params']['history_ops'])} | {fmt(r['saved_bytes'] / 1024, 0)} | "
        f"{fmt(r['first_data_ms'], 1)} | {fmt(r['complete_ms'], 1)} | {fmt(r['floor_ms'], 1)} | "
        f"{fmt(r['ratio_to_floor'], 2)}× | {fmt(r['reply_bytes'] / 1024, 0)} | "
        f"{fmt(mib((r.get('server') or {}).get('peak_kib')), 1)}"
    ))
    out.append("")
    return out


def criterion_estimates(directory):
    """(title, mean ns, throughput) of every benchmark criterion measured under DIRECTORY."""
    found = []
    for root, _, files in os.walk(directory):
        if os.path.basename(root) != "new" or "estimates.json" not in files:
            continue
        with open(os.path.join(root, "estimates.json")) as f:
            mean = json.load(f)["mean"]["point_estimate"]
        title, throughput = root, None
        try:
            with open(os.path.join(root, "benchmark.json")) as f:
                b = json.load(f)
            title = b.get("full_id") or title
            throughput = b.get("throughput")
        except (OSError, ValueError):
            pass
        found.append((title, mean, throughput))
    return sorted(found)


def micro_table(directory):
    rows = criterion_estimates(directory) if directory else []
    out = [
        "## Micro-benchmarks",
        "",
        "Criterion (`benches/benches/micro.rs`, `cargo bench -p syncline-benches --bench "
        "micro`): the wire codec on a sync message carrying one small edit; one sync round, a "
        "change from a writer through the server's document session to a reader (no network, "
        "no disk); and one group commit of 64 documents' writes in one durable redb "
        "transaction.",
        "",
    ]
    if not rows:
        return out + ["Not measured in this run.", ""]
    out += ["| benchmark | mean | per second |", "|---|---|---|"]
    for title, ns, throughput in rows:
        mean = f"{ns / 1000:,.2f} µs" if ns < 1_000_000 else f"{ns / 1e6:,.2f} ms"
        per = ""
        if throughput and "Bytes" in throughput:
            per = f"{throughput['Bytes'] / ns * 1e9 / 1024 / 1024:,.0f} MiB/s"
        elif throughput and "Elements" in throughput:
            per = f"{throughput['Elements'] / ns * 1e9:,.0f} writes/s"
        else:
            per = f"{1e9 / ns:,.0f} rounds/s"
        out.append(f"| {title} | {mean} | {per} |")
    out.append("")
    return out


def documents_table(runs):
    out = [
        "## Many documents",
        "",
        "Documents created (500 per connection, 8 connections at a time), then each read back "
        "once by a fresh connection; the server's resident memory is sampled every second, and "
        "for 15 s after the last read (Syncline unloads a document nobody has open after 5 s "
        "here; its default is 60 s).",
        "",
        "| server | documents | created/s | read back/s | peak MiB | MiB at the end | unavailable |",
        "|---|---|---|---|---|---|---|",
    ]
    def cells(server, r):
        s = r.get("server") or {}
        return (
            f"{r['documents']} | {fmt(r['created_per_s'])} | {fmt(r['read_per_s'])} | "
            f"{fmt(mib(s.get('peak_kib')), 1)} | {fmt(mib(s.get('rss_after_kib')), 1)} | "
            f"{r['unavailable']}"
        )

    out += server_rows(runs, "documents", 7, cells)
    out.append("")
    return out


def idle_table(runs):
    out = [
        "## Idle connections",
        "",
        "Joined WebSocket connections that then do nothing; memory per connection is the "
        "server's resident memory after they connected, minus before, over their number.",
        "",
        "| server | connections | KiB per connection | Syncline's ratio | connect time s | peak MiB |",
        "|---|---|---|---|---|---|",
    ]
    ours = runs.get(("idle", "syncline"), {})

    def cells(server, r):
        rat = "1.0×" if server == "syncline" else ratio(
            ours.get("kib_per_connection"), r.get("kib_per_connection"), higher_is_better=False
        )
        return (
            f"{r['connections']} | {fmt(r.get('kib_per_connection'), 1)} | {rat} | "
            f"{fmt(r.get('connect_s'), 2)} | {fmt(mib((r.get('server') or {}).get('peak_kib')), 1)}"
        )

    out += server_rows(runs, "idle", 6, cells)
    out.append("")
    return out


def durable_table(runs):
    floor = runs.get(("commit_floor", "redb"))
    ours = runs.get(("collab", "syncline"))
    out = [
        "## Durable writes",
        "",
        "redb's own rate of durable commits on this disk, one small write per transaction "
        "(`syncline-commit-floor`), beside the storage commits Syncline made during the "
        "collaboration run, where its group commit folds many changes into each.",
        "",
        "| | commits/s | changes per commit | durable changes/s |",
        "|---|---|---|---|",
    ]
    if floor:
        out.append(
            f"| redb, one write per transaction ({floor['commit_ms']} ms each) | "
            f"{fmt(floor['commits_per_s'])} | 1 | {fmt(floor['commits_per_s'])} |"
        )
    storage = (ours or {}).get("storage") or {}
    if ours and storage:
        out.append(
            f"| Syncline, collaboration run | {fmt(storage.get('commits_per_s'))} | "
            f"{fmt(storage.get('changes_per_commit'), 1)} | {fmt(ours.get('acked_per_s'))} |"
        )
    out.append("")
    return out


def goals(runs):
    """The targets set for the code, each with what this run measured."""

    def get(scenario, server):
        r = runs.get((scenario, server))
        return None if r is None or r.get("failed") else r

    rows = []
    ours, ref, sam = get("collab", "syncline"), get("collab", "reference"), get("collab", "samod")

    def against(other, times, name):
        if not ours or not other:
            return f"not measured ({name} did not run)"
        got = ours["acked_per_s"] / max(other["acked_per_s"], 1)
        verdict = "met" if got >= times else f"missed by {times / got:.1f}×"
        return f"{got:.1f}×: {verdict}"

    rows.append(("collaboration: ≥ 10× the reference server's acknowledged changes/s",
                 against(ref, 10, "the reference server")))
    if sam:
        rows.append(("collaboration: ≥ 2× the samod server's acknowledged changes/s",
                     against(sam, 2, "the samod server")))
    else:
        small_ours, small_sam = get("collab-small", "syncline"), get("collab-small", "samod")
        if small_ours and small_sam:
            got = small_ours["acked_per_s"] / max(small_sam["acked_per_s"], 1)
            verdict = "met" if got >= 2 else f"missed by {2 / got:.1f}×"
            rows.append(("collaboration: ≥ 2× the samod server's acknowledged changes/s",
                         f"{got:.1f}× at 10 × 10 (the samod server cannot set up 100 × 10): "
                         + verdict))
        else:
            rows.append(("collaboration: ≥ 2× the samod server's acknowledged changes/s",
                         "not measured (the samod server did not run)"))
    paced = get("collab", "syncline-paced")
    if paced:
        p99 = paced["propagation"]["p99_ms"]
        rows.append(("collaboration: p99 propagation under 50 ms at the reference server's rate",
                     f"{p99} ms at {paced['params']['rate']} changes/s per editor: "
                     + ("met" if p99 is not None and p99 < 50 else f"missed by {p99 / 50:.1f}×")))
    elif ours:
        p99 = ours["propagation"]["p99_ms"]
        rows.append(("collaboration: p99 propagation under 50 ms",
                     f"{p99} ms in closed loop (the reference server's rate was not measured): "
                     + ("met" if p99 is not None and p99 < 50 else "missed")))
    docs = get("documents", "syncline")
    if docs and docs.get("memory"):
        peak = max(k for _, k in docs["memory"]) / 1024
        end = docs["memory"][-1][1] / 1024
        rows.append(("many documents: memory flat after idle documents unload",
                     f"peak {peak:,.0f} MiB, {end:,.0f} MiB at the end of the watch: "
                     + ("met" if end <= peak * 0.5 else "missed (memory stays near its peak)")))
    idle = get("idle", "syncline")
    if idle and idle.get("kib_per_connection") is not None:
        k = idle["kib_per_connection"]
        rows.append(("idle connections: under 30 KiB each",
                     f"{k:.1f} KiB: " + ("met" if k < 30 else "missed")))
    cold = get("cold", "syncline")
    if cold:
        r = cold["ratio_to_floor"]
        rows.append(("cold load: within 1.5× the in-process floor",
                     f"{cold['first_data_ms']:,.0f} ms against {cold['floor_ms']:,.0f} ms, "
                     f"{r:.2f}×: " + ("met" if r <= 1.5 else f"missed by {r / 1.5:.1f}×")))
    else:
        rows.append(("cold load: within 1.5× the in-process floor", "not measured"))
    out = ["## Goals", "", "| goal | this run |", "|---|---|"]
    out += [f"| {goal} | {result} |" for goal, result in rows]
    out.append("")
    return out


def plots(runs, directory):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(directory, exist_ok=True)
    drawn = []
    for scenario, title in [("collab", "Collaboration"), ("fanout", "Fan-out")]:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        labels = ["p50", "p95", "p99", "max"]
        width = 0.25
        any_bar = False
        for i, server in enumerate(SERVERS):
            r = runs.get((scenario, server))
            if not r or r.get("failed"):
                continue
            p = r["propagation"]
            values = [p.get(f"{k}_ms") or 0 for k in ["p50", "p95", "p99", "max"]]
            ax.bar([x + i * width for x in range(4)], values, width, label=NAMES[server])
            any_bar = True
        if not any_bar:
            plt.close(fig)
            continue
        ax.set_xticks([x + width for x in range(4)], labels)
        ax.set_ylabel("propagation latency, ms")
        ax.set_yscale("log")
        ax.set_title(f"{title}: propagation latency distribution")
        ax.legend()
        path = os.path.join(directory, f"{scenario}-latency.png")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        drawn.append((f"{title} propagation latency", path))
    fig, ax = plt.subplots(figsize=(7, 3.5))
    any_line = False
    for server in SERVERS:
        r = runs.get(("documents", server))
        if not r or r.get("failed") or not r.get("memory"):
            continue
        t = [s[0] for s in r["memory"]]
        m = [s[1] / 1024 for s in r["memory"]]
        ax.plot(t, m, label=NAMES[server])
        any_line = True
    if any_line:
        ax.set_xlabel("seconds since the first document")
        ax.set_ylabel("resident memory, MiB")
        ax.set_title("Many documents: server memory over time")
        ax.legend()
        path = os.path.join(directory, "documents-memory.png")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        drawn.append(("Many documents: memory over time", path))
    plt.close(fig)
    return drawn


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("results")
    parser.add_argument("--out", required=True)
    parser.add_argument("--plots", required=True)
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--criterion")
    args = parser.parse_args()
    runs = load(args.results)

    out = [
        "# Benchmarks",
        "",
        "Syncline beside the servers people would otherwise use, on one machine in one run: the "
        "reference JavaScript server (`@automerge/automerge-repo-sync-server`, from npm, pinned "
        "in `tests/js/package-lock.json`) and a minimal server on the `samod` crate "
        "(`benches/samod-server/`, pinned to samod 0.16.0). All three are bound to 127.0.0.1 and "
        "driven by the same load generator, `syncline-loadgen`, which speaks the automerge-repo "
        "protocol itself and runs in its own process.",
        "",
        f"**Machine:** {machine()}",
        "",
        "**Regenerate:** `benches/compare.sh` (release builds; every server is started fresh "
        "for each scenario and stopped by its pid). `benches/compare.sh --smoke` runs every "
        "scenario at a tiny size; the test command does that.",
        "",
        "Propagation latency is from the moment a peer made a change to the moment another "
        "peer of the document had it; acknowledged means the server advertised heads covering "
        "the change back to its author (for Syncline: durable on disk). \"Syncline's ratio\" "
        "is how many times better Syncline does: above 1× it is ahead, below 1× behind.",
        "",
    ]
    out += collab_table(
        runs,
        "collab",
        "Live collaboration",
        "100 documents with 10 editors each (1,000 connections); every editor changes its "
        "document in a closed loop (the next change once the server acknowledged the last), "
        "for 10 s. Ten of the documents start with 64 KiB of text, the rest with a title, so "
        "small edits land on small and large documents alike. The floor row is the same "
        "workload through the automerge crate alone, in one process on one thread, syncing each "
        "editor with a server replica (`syncline-loadgen --scenario collab-floor`).",
    )
    out += collab_table(
        runs,
        "collab-small",
        "Live collaboration, a tenth of the size",
        "10 documents with 10 editors each (100 connections), one starting with 64 KiB of text, "
        "closed loop for 10 s: a size at which the samod server sets up.",
    )
    out += collab_table(
        runs,
        "fanout",
        "Fan-out",
        "One document, one writer making 10 changes per second for 10 s, 1,000 subscribers.",
    )
    out += documents_table(runs)
    out += idle_table(runs)
    out += cold_table(runs)
    out += durable_table(runs)
    out += micro_table(args.criterion)
    out += goals(runs)

    if args.no_plots:
        out += ["## Plots", "", "Not drawn in this run.", ""]
    else:
        try:
            drawn = plots(runs, args.plots)
            out += ["## Plots", ""]
            for title, path in drawn:
                out.append(f"![{title}]({os.path.relpath(path, os.path.dirname(os.path.abspath(args.out)) or '.')})")
                out.append("")
        except ImportError:
            out += ["## Plots", "", "Not drawn: matplotlib is not installed.", ""]

    with open(args.out, "w") as f:
        f.write("\n".join(out))


if __name__ == "__main__":
    sys.exit(main())
