"""A full scan against the floor, on a big synthetic company (target: ratio <= 3, peak < 4 GiB).

Data: 1,000,000 deals, 5,000,000 stage-history rows, 10,000,000 email opens, 300 managers (plus
clients, emails, activities and leads so every detector runs), written once as Parquet to
benchmarks/.cache/scan-<size>/ and reused.

  floor = read the same Parquet files into pandas + one groupby pass over the largest table
  scan  = crm.load.load_folder + detectors.run_detectors with every detector on defaults

Each is measured in a fresh child process (so peak memory is its own), and the script prints
both times, their ratio, peak memory, and the time of each detector inside the scan.
`--before REV` also scans with crm/, detectors/ and predict/ as of git revision REV, in the
same run (with `--model` too), so a change is judged by ratios measured under the same load on
a shared machine.
`--model` switches on the level-3 detectors (deal_risk, win_forecast; off by default) and scans
twice in one process, as the running bot does: the first scan fits the win model (cold), the
second loads the data again and reuses the fit (predict.model.fitted: no deal closed since).
Both are reported against the floor; a one-shot `crm-pulse scan` pays the cold figure. The
company's source moves the chance of winning (WIN_BY_SOURCE), so its model beats the stage-only
baseline and is used: the open deals are scored, and the seconds of each part of the model
inside each scan (prepare, fit, features, predict, explain) are printed.
Run: .venv/bin/python benchmarks/scan.py [--scale 0.1] [--repeat 2] [--before HEAD~3] [--model]
"""
from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
# A child measuring an older revision imports crm/, detectors/ and predict/ from CRM_PULSE_CODE first.
sys.path.insert(0, str(ROOT))
if os.environ.get("CRM_PULSE_CODE"):
    sys.path.insert(0, os.environ["CRM_PULSE_CODE"])

NOW = datetime(2026, 11, 18, 6, 30, tzinfo=timezone.utc)
STAGES = ["new", "qualified", "meeting", "proposal", "negotiation", "contract"]
FULL = {"managers": 300, "deals": 1_000_000, "stage_history": 5_000_000, "email_opens": 10_000_000,
        "emails": 2_500_000, "clients": 200_000, "activities": 2_000_000, "leads": 300_000}
DAY = np.int64(86_400 * 10**9)
SOURCES = ["website", "referral", "cold call", "partner", "exhibition"]
WIN_BY_SOURCE = np.array([0.6, 0.9, 0.3, 0.75, 0.45])
DATA_VERSION = 2  # bump when generate() changes: a cached company of an older version is not reused


def _ids(prefix: str, n: int) -> pa.Array:
    width = len(str(max(n - 1, 1)))
    return pa.array(pd.Series(np.arange(n)).astype(str).str.zfill(width).radd(prefix), type=pa.string())


def _ts(ns: np.ndarray) -> pa.Array:
    mask = ns == np.iinfo(np.int64).min
    return pa.array(ns, type=pa.timestamp("ns", tz="UTC"), mask=mask)


def _pick(rng, values, n, p=None) -> pa.Array:
    return pa.array(np.asarray(values, dtype=object)[rng.choice(len(values), n, p=p)], type=pa.string())


def generate(folder: Path, sizes: dict[str, int], seed: int = 11) -> None:
    """Write a consistent synthetic company (vectorised; about a minute at full size)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    now = np.int64(pd.Timestamp(NOW).value)
    span = 730 * DAY
    n_m, n_d, n_c = sizes["managers"], sizes["deals"], sizes["clients"]

    manager_ids = _ids("M", n_m)
    pq.write_table(pa.table({
        "manager_id": manager_ids, "name": _ids("Manager ", n_m),
        "team": pa.array([f"team{i // 10:02d}" for i in range(n_m)]),
        "region": pa.array([f"region{i // 50}" for i in range(n_m)]),
        "capacity": pa.array(np.where(rng.random(n_m) < 0.1, 0.5, 1.0)),
        "active": pa.array(rng.random(n_m) > 0.05),
    }), folder / "managers.parquet")
    pq.write_table(pa.table({"stage": pa.array(STAGES), "position": pa.array(np.arange(len(STAGES)))}), folder / "stages.parquet")

    client_ids = _ids("C", n_c)
    client_mgr = rng.integers(0, n_m, n_c)
    pq.write_table(pa.table({"client_id": client_ids, "name": _ids("Client ", n_c),
                             "manager_id": manager_ids.take(pa.array(client_mgr))}), folder / "clients.parquet")

    # Deals: how many stages each reached (mean ~5 so history has ~5M rows), gaps ~ 6 days.
    reach_p = np.array([0.04, 0.04, 0.07, 0.10, 0.25, 0.50])
    reach_p *= sizes["stage_history"] / n_d / float((np.arange(1, 7) * reach_p).sum())
    reach_p = np.clip(reach_p, 0, None)
    reach_p /= reach_p.sum()
    reached = rng.choice(np.arange(1, 7), n_d, p=reach_p)
    created = now - (rng.random(n_d) * span).astype(np.int64)
    gaps = (rng.exponential(6.0, (n_d, 6)) * DAY).astype(np.int64)
    gaps[:, 0] = 0
    entered = created[:, None] + np.cumsum(gaps, axis=1)
    last_entry = entered[np.arange(n_d), reached - 1]
    future = last_entry > now
    reached = np.where(future, np.maximum(1, (entered <= now).sum(axis=1)), reached)
    last_entry = entered[np.arange(n_d), reached - 1]
    close_at = last_entry + (rng.exponential(8.0, n_d) * DAY).astype(np.int64)
    closed = close_at < now - 3 * DAY
    # The source moves the chance of winning a deal that reached the contract (0.3 for a cold
    # call .. 0.9 for a referral; 0.6 overall): a signal the stage-only baseline cannot see, so
    # the level-3 model beats it and is used (scan --model measures a company it scores).
    source = rng.choice(len(SOURCES), n_d)
    won = closed & (reached == 6) & (rng.random(n_d) < WIN_BY_SOURCE[source])
    status = np.where(~closed, "open", np.where(won, "won", "lost"))
    deal_client = rng.integers(0, n_c, n_d)
    deal_ids = _ids("D", n_d)
    reasons = ["price", "timing", "competitor", "no budget", "other", None]
    loss = np.asarray(reasons, dtype=object)[rng.choice(len(reasons), n_d, p=[.3, .2, .2, .1, .1, .1])]
    loss = np.where(status == "lost", loss, None)
    pq.write_table(pa.table({
        "deal_id": deal_ids, "client_id": client_ids.take(pa.array(deal_client)),
        "manager_id": manager_ids.take(pa.array(client_mgr[deal_client])),
        "title": _ids("Deal ", n_d), "amount": pa.array(np.round(rng.lognormal(13, 1, n_d), 0)),
        "currency": pa.array(["KZT"] * n_d), "stage": pa.array(np.asarray(STAGES, dtype=object)[reached - 1], type=pa.string()),
        "status": pa.array(status.astype(object), type=pa.string()), "created_at": _ts(created),
        "closed_at": _ts(np.where(closed, close_at, np.iinfo(np.int64).min)),
        "loss_reason": pa.array(loss, type=pa.string()),
        "source": pa.array(np.asarray(SOURCES, dtype=object)[source], type=pa.string()),
        "region": _pick(rng, ["Almaty", "Astana", "Shymkent", "Karaganda"], n_d),
    }), folder / "deals.parquet")

    rows = np.repeat(np.arange(n_d), reached)
    step = np.arange(len(rows)) - np.repeat(np.cumsum(reached) - reached, reached)
    order = rng.permutation(len(rows))
    pq.write_table(pa.table({
        "deal_id": deal_ids.take(pa.array(rows[order])),
        "stage": pa.array(np.asarray(STAGES, dtype=object)[step[order]], type=pa.string()),
        "entered_at": _ts(entered[rows[order], step[order]]),
    }), folder / "stage_history.parquet")
    del rows, step, order, entered, gaps

    n_e = sizes["emails"]
    e_deal = rng.integers(0, n_d, n_e)
    e_sent = np.minimum(created[e_deal] + (rng.exponential(20, n_e) * DAY).astype(np.int64), now - 60 * 10**9)
    e_in = rng.random(n_e) < 0.3
    email_ids = _ids("E", n_e)
    pq.write_table(pa.table({
        "email_id": email_ids, "client_id": client_ids.take(pa.array(deal_client[e_deal])),
        "manager_id": manager_ids.take(pa.array(client_mgr[deal_client[e_deal]])), "deal_id": deal_ids.take(pa.array(e_deal)),
        "direction": pa.array(np.where(e_in, "in", "out").astype(object), type=pa.string()), "sent_at": _ts(e_sent),
        "subject": _pick(rng, ["Offer", "Follow-up", "Invoice", "Коммерческое предложение"], n_e),
    }), folder / "emails.parquet")

    n_o = sizes["email_opens"]
    out_idx = np.flatnonzero(~e_in)
    o_email = out_idx[rng.integers(0, len(out_idx), n_o)]
    delay = np.where(rng.random(n_o) < 0.2, rng.integers(1, 50, n_o) * 10**9, (rng.exponential(3, n_o) * DAY).astype(np.int64))
    pq.write_table(pa.table({"email_id": email_ids.take(pa.array(o_email)),
                             "opened_at": _ts(np.minimum(e_sent[o_email] + delay, now - 10**9))}), folder / "email_opens.parquet")
    del o_email, delay

    n_a = sizes["activities"]
    a_deal = rng.integers(0, n_d, n_a)
    a_due = np.minimum(created[a_deal] + (rng.exponential(15, n_a) * DAY).astype(np.int64), now + 5 * DAY)
    a_done = np.where((rng.random(n_a) < 0.8) & (a_due < now), a_due, np.iinfo(np.int64).min)
    pq.write_table(pa.table({
        "activity_id": _ids("A", n_a), "deal_id": deal_ids.take(pa.array(a_deal)),
        "client_id": client_ids.take(pa.array(deal_client[a_deal])),
        "manager_id": manager_ids.take(pa.array(client_mgr[deal_client[a_deal]])),
        "type": _pick(rng, ["call", "meeting", "task", "email", "note"], n_a), "due_at": _ts(a_due), "done_at": _ts(a_done),
    }), folder / "activities.parquet")

    n_l = sizes["leads"]
    l_created = now - (rng.random(n_l) * 180 * DAY).astype(np.int64)
    l_mgr = rng.integers(0, n_m, n_l)
    assigned = rng.random(n_l) < 0.95
    l_assigned = np.where(assigned, l_created + (rng.exponential(2, n_l) * 3600 * 10**9).astype(np.int64), np.iinfo(np.int64).min)
    l_resp = np.where(assigned & (rng.random(n_l) < 0.9), l_assigned + (rng.exponential(3, n_l) * 3600 * 10**9).astype(np.int64),
                      np.iinfo(np.int64).min)
    l_resp = np.where(l_resp > now, np.iinfo(np.int64).min, l_resp)
    l_assigned = np.where(l_assigned > now, np.iinfo(np.int64).min, l_assigned)
    pq.write_table(pa.table({
        "lead_id": _ids("L", n_l), "created_at": _ts(l_created),
        "source": _pick(rng, ["website", "referral", "cold call"], n_l), "region": _pick(rng, ["Almaty", "Astana"], n_l),
        "manager_id": manager_ids.take(pa.array(l_mgr, mask=~assigned)),
        "assigned_at": _ts(l_assigned), "first_response_at": _ts(l_resp),
        "status": pa.array(["new"] * n_l),
    }), folder / "leads.parquet")
    (folder / "READY").write_text(json.dumps(sizes))


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def phase_floor(folder: Path) -> dict:
    cpu = time.process_time()
    start = time.perf_counter()
    frames = {p.stem: pq.read_table(p).to_pandas(self_destruct=True, split_blocks=True) for p in sorted(folder.glob("*.parquet"))}
    largest = max(frames, key=lambda k: len(frames[k]))
    frames[largest].groupby(frames[largest].columns[0], sort=False).size()
    return {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu, "peak_mib": peak_mib(),
            "largest": largest, "rows": len(frames[largest])}


def _time_model_parts() -> dict[str, float]:
    """Seconds the level-3 detectors spend in each part of the model, summed over the scan:
    fit (predict.model.train), features (features_at outside a fit), predict (the model's
    chances outside a fit) and explain (similar deals, factors). Only the outermost timed call
    counts, so a fit's own features are the fit's, not the scoring's."""
    import predict.explain
    import predict.features
    import predict.model
    import predict.report

    parts: dict[str, float] = {}
    depth = [0]

    def timed(part, fn):
        def run(*args, **kwargs):
            if depth[0]:
                return fn(*args, **kwargs)
            depth[0] += 1
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                depth[0] -= 1
                parts[part] = parts.get(part, 0.0) + time.perf_counter() - t
        return run

    predict.features.prepare = timed("prepare", predict.features.prepare)
    for mod in (predict.model, predict.report):
        mod.train = timed("fit", mod.train)
    for mod in (predict.features, predict.model, predict.report):
        mod.features_at = timed("features", mod.features_at)
    predict.model.WinModel.proba = timed("predict", predict.model.WinModel.proba)
    for meth in ("__init__", "similar", "factors"):
        setattr(predict.explain.Explainer, meth, timed("explain", getattr(predict.explain.Explainer, meth)))
    return parts


def _chances_digest() -> str | None:
    """A hash of the open deals' ids and win chances the scan scored (predict.model keeps the
    last scoring), so --before tells whether a change moved a single chance."""
    import hashlib

    import predict.model

    last = getattr(predict.model, "_scored", None)
    if last is None:
        return None
    frame = last[3]
    h = hashlib.blake2b(digest_size=16)
    h.update("\x1f".join(map(str, frame["deal_id"])).encode())
    h.update(frame["p_win"].to_numpy(float).tobytes())
    h.update(frame["p_stage"].to_numpy(float).tobytes())
    return h.hexdigest()


def phase_scan(folder: Path, model: bool = False) -> dict:
    import dataclasses

    from crm.load import load_folder
    from detectors import REGISTRY, run_detectors

    specs: dict = {}
    if model:
        from detectors.deal_risk import DealRiskSpec
        from detectors.win_forecast import WinForecastSpec

        specs = {"deal_risk": DealRiskSpec(enabled=True), "win_forecast": WinForecastSpec(enabled=True)}
    per: dict[str, float] = {}

    def timed(name, fn):
        def run(data, spec, now):
            t = time.perf_counter()
            try:
                return fn(data, spec, now)
            finally:
                per[name] = time.perf_counter() - t
        return run

    for name, det in list(REGISTRY.items()):
        REGISTRY[name] = dataclasses.replace(det, detect=timed(name, det.detect))
    parts = _time_model_parts() if model else {}

    def once() -> dict:
        per.clear()
        parts.clear()
        cpu = time.process_time()
        start = time.perf_counter()
        loaded = load_folder(folder, now=NOW)
        loaded_at = time.perf_counter()
        result = run_detectors(loaded.data, specs, NOW)
        end = time.perf_counter()
        counts: dict[str, int] = {}
        for i in result.insights:
            counts[i.detector] = counts.get(i.detector, 0) + 1
        return {"seconds": end - start, "cpu_seconds": time.process_time() - cpu, "load_seconds": loaded_at - start,
                "detect_seconds": end - loaded_at, "peak_mib": peak_mib(), "per_detector": dict(per), "insights": counts,
                "skipped": result.skipped, "model_parts": dict(parts), "chances": _chances_digest() if model else None}

    first = once()
    if model:
        first["warm"] = once()  # the next scheduled scan: a fresh load, the fit reused
    return first


def child(phase: str, folder: Path, code: Path | None = None, model: bool = False) -> dict:
    env = dict(os.environ, CRM_PULSE_CODE=str(code)) if code else None
    out = subprocess.run([sys.executable, __file__, "--phase", phase, "--folder", str(folder), *(["--model"] if model else [])],
                         capture_output=True, text=True, check=False, env=env)
    if out.returncode != 0:
        raise SystemExit(f"{phase} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def checkout(rev: str, into: Path) -> Path:
    """crm/, detectors/ and predict/ as of `rev`, extracted into `into` (the working tree is not touched)."""
    try:
        blob = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "crm", "detectors", "predict"],
                              capture_output=True, check=True).stdout
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"--before {rev}: git archive failed: {exc.stderr.decode().strip()}") from None
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(into, filter="data")
    return into


def report(label: str, scan: dict, floor: dict) -> None:
    print(f"{label}: {scan['seconds']:.2f} s (load {scan['load_seconds']:.2f} s, detect {scan['detect_seconds']:.2f} s), "
          f"peak {scan['peak_mib']:.0f} MiB")
    print(f"  ratio to floor: {scan['seconds'] / floor['seconds']:.2f} wall (target <= 3); CPU seconds "
          f"{scan['cpu_seconds']:.1f} / {floor['cpu_seconds']:.1f} = {scan['cpu_seconds'] / floor['cpu_seconds']:.2f} "
          "(a busy shared machine inflates wall time, not CPU time)")


def cached_dataset(scale: float) -> tuple[Path, dict[str, int]]:
    """The synthetic company at `scale` of FULL, generated once under benchmarks/.cache/."""
    sizes = {k: max(1, int(v * scale)) if k != "managers" else v for k, v in FULL.items()}
    folder = ROOT / "benchmarks" / ".cache" / f"scan-v{DATA_VERSION}-{scale:g}"
    if not (folder / "READY").exists():
        t = time.perf_counter()
        print(f"generating {sizes} into {folder} ...", flush=True)
        generate(folder, sizes)
        print(f"generated in {time.perf_counter() - t:.1f} s", flush=True)
    return folder, sizes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full size (0.1 for a quick look)")
    parser.add_argument("--repeat", type=int, default=1, help="measure each phase this many times, keep the fastest")
    parser.add_argument("--before", metavar="REV", help="also scan with crm/ and detectors/ as of this git revision")
    parser.add_argument("--model", action="store_true",
                        help="switch on deal_risk and win_forecast; report the cold scan (fits) and the warm one (reuses the fit)")
    parser.add_argument("--phase", choices=["floor", "scan"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(phase_floor(args.folder) if args.phase == "floor" else phase_scan(args.folder, args.model)))
        return 0

    folder, sizes = cached_dataset(args.scale)
    for path in folder.glob("*.parquet"):  # warm the page cache so neither phase pays for a cold disk
        path.read_bytes()
    before = None
    with tempfile.TemporaryDirectory(prefix="scan-before-") as tmp:
        code = checkout(args.before, Path(tmp)) if args.before else None
        floor = min((child("floor", folder) for _ in range(args.repeat)), key=lambda r: r["seconds"])
        if code:
            before = min((child("scan", folder, code, model=args.model) for _ in range(args.repeat)),
                         key=lambda r: r["seconds"])
        scan = min((child("scan", folder, model=args.model) for _ in range(args.repeat)), key=lambda r: r["seconds"])
    print(f"data: {', '.join(f'{k} {v:,}' for k, v in sizes.items())}")
    print(f"floor (read Parquet + groupby over {floor['largest']}, {floor['rows']:,} rows): "
          f"{floor['seconds']:.2f} s, {floor['cpu_seconds']:.1f} CPU s, peak {floor['peak_mib']:.0f} MiB")
    if before:
        report(f"scan as of {args.before}", before, floor)
    report("scan  (load_folder + run_detectors, all detectors" + (", deal_risk + win_forecast on: cold, fits the model)"
                                                                  if args.model else ")"), scan, floor)
    if args.model:
        if before:
            report(f"scan  warm as of {args.before}", before["warm"], floor)
        report("scan  warm (a fresh load, the fit reused, as the running bot's next scan)", scan["warm"], floor)
        runs = [("cold", scan), ("warm", scan["warm"])]
        if before:
            runs = [(f"cold as of {args.before}", before), (f"warm as of {args.before}", before["warm"]), *runs]
        for label, run in runs:
            p = run["model_parts"]
            print(f"  model inside the {label} scan: " + ", ".join(f"{k} {v:.2f} s" for k, v in sorted(p.items()))
                  + f"; scoring (features + predict + explain) {sum(v for k, v in p.items() if k not in ('fit', 'prepare')):.2f} s")
    if before:
        pairs = [("", before, scan)] + ([(" (warm)", before["warm"], scan["warm"])] if args.model else [])
        for label, old, new in pairs:
            print(f"  speed-up over {args.before}{label}: {old['seconds'] / new['seconds']:.2f}x wall, "
                  f"{old['cpu_seconds'] / new['cpu_seconds']:.2f}x CPU"
                  + ("" if old["insights"] == new["insights"] else
                     f"; insight counts DIFFER: {old['insights']} before, {new['insights']} now")
                  + ("" if not args.model else "; the open deals' chances are "
                     + ("not known as of the revision" if not old.get("chances") or not new["chances"]
                        else "identical" if old["chances"] == new["chances"] else "NOT identical")))
    print(f"peak memory: {scan['peak_mib'] / 1024:.2f} GiB (target < 4)")
    for name, secs in sorted(scan["per_detector"].items(), key=lambda kv: -kv[1]):
        warm = f"  (warm {scan['warm']['per_detector'].get(name, 0):.2f} s)" if args.model else ""
        print(f"  {name:<16}{secs:>8.2f} s  {scan['insights'].get(name, 0):>7} insights{warm}")
    for name, why in scan["skipped"].items():
        print(f"  {name:<16} skipped: {why}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
