"""How fast and how lean `crm.load.load_folder` is on a big Parquet export.

Generates (once, cached under benchmarks/.cache/) 300 managers, 1,000,000 deals,
5,000,000 stage-history rows, 2,000,000 emails and 10,000,000 email opens, then loads them
in a fresh child process and prints rows per second and peak memory. Peak memory is the
child's peak resident set size (resource.getrusage RUSAGE_CHILDREN ru_maxrss), so it
includes the Python interpreter and libraries, not only the frames. For scale, the same run
also times a bare pyarrow read of the same files into pandas (no validation).

    .venv/bin/python benchmarks/load.py [--scale 0.1]   # --scale shrinks every table
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
CACHE = ROOT / ".cache"
LIMIT_GIB = 4.0
SIZES = {"managers": 300, "deals": 1_000_000, "stage_history": 5_000_000,
         "emails": 2_000_000, "email_opens": 10_000_000}
STAGES = ["Новый", "Квалификация", "Встреча", "КП отправлено", "Переговоры", "Договор"]


def generate(folder: Path, scale: float, seed: int = 7) -> None:
    """Write the canonical tables as Parquet with vectorised numpy/pyarrow (no row loops)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    n = {k: max(10, int(v * (scale if k != "managers" else 1))) for k, v in SIZES.items()}
    start = np.datetime64("2025-01-01T00:00:00", "s").astype("int64")
    year = 365 * 24 * 3600

    def ids(prefix: str, numbers) -> pa.Array:
        text = pc.utf8_lpad(pc.cast(pa.array(numbers, type=pa.int64()), pa.string()), 8, "0")
        return pc.binary_join_element_wise(prefix, text, "")

    def stamps(seconds) -> pa.Array:
        return pa.array(np.asarray(seconds, dtype="int64") * 1_000_000,
                        type=pa.timestamp("us", tz="UTC"))

    def pick(values: list[str], size: int, p=None) -> pa.Array:
        codes = rng.choice(len(values), size=size, p=p)
        return pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()),
                                              pa.array(values)).cast(pa.string())

    folder.mkdir(parents=True, exist_ok=True)
    m = n["managers"]
    pq.write_table(pa.table({
        "manager_id": ids("M", np.arange(m)), "name": ids("Менеджер ", np.arange(m)),
        "team": pick(["Алматы", "Астана", "Шымкент"], m),
        "capacity": pa.array(rng.choice([0.5, 1.0], size=m, p=[0.1, 0.9])),
    }), folder / "managers.parquet")
    pq.write_table(pa.table({"stage": pa.array(STAGES),
                             "position": pa.array(np.arange(1, len(STAGES) + 1))}),
                   folder / "stages.parquet")

    d = n["deals"]
    created = start + rng.integers(0, year, size=d)
    deal_manager = rng.integers(0, m, size=d)
    pq.write_table(pa.table({
        "deal_id": ids("D", np.arange(d)), "client_id": ids("C", rng.integers(0, d // 20, size=d)),
        "manager_id": ids("M", deal_manager), "amount": pa.array(rng.lognormal(14, 1, size=d).round(2)),
        "currency": pick(["KZT"], d), "stage": pick(STAGES, d),
        "status": pick(["open", "won", "lost"], d, p=[0.5, 0.2, 0.3]),
        "created_at": stamps(created), "source": pick(["сайт", "звонок", "выставка", "рекомендация"], d),
    }), folder / "deals.parquet", row_group_size=256_000)

    h = n["stage_history"]
    per_deal = h // d
    deal_of_row = np.repeat(np.arange(d), per_deal)
    step = np.tile(np.arange(per_deal), d)
    pq.write_table(pa.table({
        "deal_id": ids("D", deal_of_row),
        "stage": pa.DictionaryArray.from_arrays(pa.array(step % len(STAGES), pa.int32()),
                                                pa.array(STAGES)).cast(pa.string()),
        "entered_at": stamps(created[deal_of_row] + step * rng.integers(3600, 10 * 86400, size=len(step))),
    }), folder / "stage_history.parquet", row_group_size=1_000_000)

    e = n["emails"]
    sent = start + rng.integers(0, year, size=e)
    email_deal = rng.integers(0, d, size=e)
    pq.write_table(pa.table({
        "email_id": ids("E", np.arange(e)), "client_id": ids("C", email_deal // 20),
        "manager_id": ids("M", deal_manager[email_deal]), "deal_id": ids("D", email_deal),
        "direction": pick(["out", "in"], e, p=[0.7, 0.3]), "sent_at": stamps(sent),
        "subject": pick(["Коммерческое предложение", "Счёт на оплату", "Re: встреча"], e),
    }), folder / "emails.parquet", row_group_size=1_000_000)

    o = n["email_opens"]
    opened_email = rng.integers(0, e, size=o)
    pq.write_table(pa.table({
        "email_id": ids("E", opened_email),
        "opened_at": stamps(sent[opened_email] + rng.integers(60, 14 * 86400, size=o)),
    }), folder / "email_opens.parquet", row_group_size=1_000_000)
    (folder / "DONE").write_text(json.dumps(n))


def measure(folder: Path, mode: str) -> None:
    """Child process: load once, print seconds and row counts as JSON."""
    started = time.perf_counter()
    if mode == "baseline":
        import pyarrow.parquet as pq

        rows = {p.stem: len(pq.read_table(p).to_pandas()) for p in sorted(folder.glob("*.parquet"))}
        warnings: list[str] = []
    else:
        sys.path.insert(0, str(ROOT.parent))
        from crm.load import load_folder

        result = load_folder(folder)
        rows = {t: len(result.data.table(t)) for t in result.data.table_names()}
        warnings = [str(w) for w in result.warnings]
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "rows": rows, "warnings": warnings}))


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_child(folder: Path, mode: str) -> tuple[dict, float]:
    """Run one measurement in a fresh process; add its CPU seconds (imports included)."""
    cpu_before = _children_cpu()
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(folder)],
                         check=True, capture_output=True, text=True)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # max over children
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["cpu_seconds"] = _children_cpu() - cpu_before
    return result, peak_kib / 1024 / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="table size multiplier")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        measure(Path(args.child[1]), args.child[0])
        return 0

    folder = CACHE / f"load-x{args.scale:g}"
    if not (folder / "DONE").exists():
        print(f"generating {folder} (once) ...", flush=True)
        t = time.perf_counter()
        generate(folder, args.scale)
        print(f"  generated in {time.perf_counter() - t:.1f} s", flush=True)
    # The loader runs first so its peak RSS is not hidden by the baseline's (ru_maxrss of
    # children is the maximum over all children so far).
    loaded, peak = run_child(folder, "load_folder")
    base, _ = run_child(folder, "baseline")
    total = sum(loaded["rows"].values())
    print("crm.load.load_folder on Parquet:")
    for table, count in loaded["rows"].items():
        print(f"  {table:<14} {count:>12,} rows")
    print(f"  total          {total:>12,} rows in {loaded['seconds']:.1f} s "
          f"= {total / loaded['seconds']:,.0f} rows/s")
    print(f"  peak memory    {peak:.2f} GiB (child ru_maxrss), limit {LIMIT_GIB:g} GiB: "
          f"{'OK' if peak < LIMIT_GIB else 'OVER'}")
    print(f"  CPU time       {loaded['cpu_seconds']:.1f} s for the whole child process "
          "(wall time above also counts waiting on a busy machine)")
    print(f"  bare pyarrow read of the same files: {base['seconds']:.1f} s wall, "
          f"{base['cpu_seconds']:.1f} s CPU; the loader takes "
          f"{loaded['seconds'] / base['seconds']:.1f}x the wall time, "
          f"{loaded['cpu_seconds'] / base['cpu_seconds']:.1f}x the CPU (validation, timezones, checks)")
    for line in loaded["warnings"]:
        print(f"  warning: {line}")
    return 0 if peak < LIMIT_GIB else 1


if __name__ == "__main__":
    raise SystemExit(main())
