"""bench/server_bench.py's report: the medians over the runs, and the table it prints."""

from __future__ import annotations

import os
from typing import Any

from _server_load import median


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the runs of each figure, and the spread of p99."""
    cases_ = [r["case"] for r in runs[0]["lists"]]
    lists = []
    for i, label in enumerate(cases_):
        rows = [run["lists"][i] for run in runs]
        lists.append({"case": label, "p50_ms": median([r["p50_ms"] for r in rows]),
                      "p99_ms": median([r["p99_ms"] for r in rows]),
                      "p99_min": min(r["p99_ms"] for r in rows),
                      "p99_max": max(r["p99_ms"] for r in rows),
                      "per_s": median([r["per_s"] for r in rows]),
                      "cpu_ms": median([r["cpu_ms"] for r in rows]),
                      "client_cpu_ms": median([r["client_cpu_ms"] for r in rows]),
                      "solo_p50_ms": median([r["solo_p50_ms"] for r in rows]),
                      "solo_p99_ms": median([r["solo_p99_ms"] for r in rows]),
                      "errors": sum(r["errors"] for r in rows),
                      "first_error": next((r["first_error"] for r in rows
                                           if r["first_error"]), "")})
    beats = [run["heartbeat"] for run in runs if run["heartbeat"]]
    if not beats:
        return {"lists": lists, "heartbeat": None}
    return {"lists": lists,
            "heartbeat": {"per_s": median([b["per_s"] for b in beats]),
                          "min": min(b["per_s"] for b in beats),
                          "max": max(b["per_s"] for b in beats),
                          "p99_ms": median([b["p99_ms"] for b in beats]),
                          "errors": sum(b["errors"] for b in beats),
                          "first_error": next((b["first_error"] for b in beats
                                               if b["first_error"]), "")}}


def show(result: dict[str, Any]) -> None:
    args = result["args"]
    print(f"server bench: {args['hospitals']} hospitals + {args['clinics']} clinics, "
          f"{args['systems']} systems, {args['jobs']} jobs, {args['agents']} agents; "
          f"{args['clients']} clients x {args['seconds']} s; median of {args['runs']} "
          f"runs; {os.cpu_count()} CPUs; seeding {result['seed_seconds']:.0f} s")
    print(f"load client for the {args['clients']} clients: {result['load_client']} "
          f"({result['load_client_note']}); 1 client: httpx")
    for shape in result["shapes"]:
        print(f"\n{shape['processes']} server process(es)")
        print(f"{'case':<62} {'p50 ms':>7} {'p99 ms':>7} {'(min-max)':>13} {'req/s':>6}"
              f" {'1 client p50/p99':>17} {'CPU ms/req':>10} {'client':>6}")
        for row in shape["summary"]["lists"]:
            print(f"{row['case']:<62} {row['p50_ms']:>7.1f} {row['p99_ms']:>7.1f} "
                  f"{row['p99_min']:>6.0f}-{row['p99_max']:<6.0f} {row['per_s']:>6.0f} "
                  f"{row['solo_p50_ms']:>8.1f}/{row['solo_p99_ms']:<8.1f} "
                  f"{row['cpu_ms']:>10.1f} {row['client_cpu_ms']:>6.1f}"
                  + (f"  errors {row['errors']}: {row['first_error']}"
                     if row["errors"] else ""))
        beat = shape["summary"]["heartbeat"]
        if beat:
            print(f"heartbeats/s ({args['agents']} agents back to back): {beat['per_s']:.0f} "
                  f"({beat['min']:.0f}-{beat['max']:.0f}), p99 {beat['p99_ms']:.0f} ms"
                  + (f"  errors {beat['errors']}: {beat['first_error']}"
                     if beat["errors"] else ""))
        starts = shape["job_starts"]
        if starts:
            print(f"run now -> started: median {starts['median_s']:.2f} s, max "
                  f"{starts['max_s']:.2f} s over {starts['runs']} runs")
