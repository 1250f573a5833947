"""A segment's own conversion drop (issue 9): planted cases found on the scan day, and segment
drops raised on calm companies replayed daily. Prints both figures, so a rule can be judged by
its trade-off.

    python benchmarks/seg_drop.py planted --seeds 0-31 --volumes 250,400   # ~20 s
    python benchmarks/seg_drop.py calm --seeds 11-100                      # ~30 s once written
    python benchmarks/seg_drop.py planted --set fdr=0.1                    # a ConversionDropSpec key
    python benchmarks/seg_drop.py calm --seeds 11-190 --interaction z,lr   # both tests, same exports
    python benchmarks/seg_drop.py planted --seeds 80-159 --kinds uniform,source,mix,confound \
        --volumes 400 --against main                                        # before/after, one run

planted: the tests' Instagram drop (12% of deals, 70% -> 14% at Квалификация, 35 days before the
scan), scanned as `scan --data` does (the default calendar: Asia/Almaty, KZ); per seed, found or
missed and the gate that stopped it (floor, q, material, newest: they say the dip is over) with
the segment's counts, p, q (of p / lr, at segment_fdr) and its newest deals (lr: their likelihood
ratio for the dip, capped). calm: the calm companies of test_daily_replays_of_thirty_calm_companies_...
replayed daily for 123 days (calendar without days off, as that test does); the companies and
days with a segment's own drop. Exports are written once into --cache and reused. --interaction
runs each listed segment-vs-rest test on the same exports (lr: the detector's; z: the z-tests it
replaced), and planted also lists every other segment named (a false driver or segment drop).

--kinds: the four kinds of planted drop of test_real_export_scenarios (DROPS) besides "own" (the
Instagram drop above): uniform (every deal's chance x0.65: a drop, nobody named), source (Сайт,
35% of deals, 60% -> 20%: Сайт named, nothing else), mix (Выставка converts at 15% throughout,
its share 8% -> 45%: worded as a mix shift naming it, nobody said to fall), confound (Instagram,
30%, 60% -> 20%, and m1 got 70% of its deals: Instagram named, m1 never). Per variant, kind and
volume: found, false segments (named but drove nothing) and insights on untouched pairs.
--against REV also runs conversion_drop as of git revision REV on the same exports, so a change
is measured before/after in one run. A missed drop says the gate that stopped it (gate(): for
uniform and source drops, which part of the newest deals' confirmation);
calm says the days whose overall drop only the newest deals' mix confirmed ("+mix") and the
drivers it named ("+Сайт": on a calm company, each one is a false driver).
"""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
from scipy.special import ndtr

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "scenarios")]

from _export_factory import STAGES, Effect, ExportSpec, write_export  # noqa: E402

from crm.load import load_folder  # noqa: E402
from detectors import conversion_drop as cd  # noqa: E402
from detectors.registry import REGISTRY  # noqa: E402
from detectors.working_hours import WorkCalendar  # noqa: E402

UTC = timezone.utc
END = datetime(2026, 11, 20, 5, 0, tzinfo=UTC)
NOW = END + timedelta(hours=1)
AT = NOW - timedelta(days=35)
STAGE = 1


def z_interaction_pvalues(seg, total) -> np.ndarray:
    """The segment-vs-rest test before the likelihood-ratio one, kept to compare (--interaction z).

    Two one-sided z-tests (difference of the two drops; difference of the two log rate
    ratios), the larger p counts (intersection-union), so a drop that is uniform in either
    sense names nobody. Rates are smoothed by half a deal; the variance of the segment's recent
    rate is taken at the rate the null implies (its baseline rate moved like the rest's), as a
    score test does: with 2 won of 20 the observed rate would make the log scale powerless.
    """
    rest = cd.Counts(total.bx - seg.bx, total.bn - seg.bn, total.rx - seg.rx, total.rn - seg.rn)
    with np.errstate(invalid="ignore", divide="ignore"):
        def sm(x, n):
            return (x + 0.5) / (n + 1.0)
        ps_b, ps_r, pr_b, pr_r = sm(seg.bx, seg.bn), sm(seg.rx, seg.rn), sm(rest.bx, rest.bn), sm(rest.rx, rest.rn)
        n_sb, n_sr, n_rb, n_rr = seg.bn + 1.0, seg.rn + 1.0, rest.bn + 1.0, rest.rn + 1.0
        floor = 0.5 / n_sr

        def var_diff(p, n):
            return p * (1 - p) / n

        def var_log(p, n):
            return (1 - p) / (n * p)

        null_diff = np.clip(ps_b - (pr_b - pr_r), floor, 1 - floor)
        z1 = ((ps_b - ps_r) - (pr_b - pr_r)) / np.sqrt(
            var_diff(ps_b, n_sb) + var_diff(null_diff, n_sr) + var_diff(pr_b, n_rb) + var_diff(pr_r, n_rr))
        null_ratio = np.clip(ps_b * pr_r / pr_b, floor, 1 - floor)
        z2 = (np.log(pr_r / pr_b) - np.log(ps_r / ps_b)) / np.sqrt(
            var_log(ps_b, n_sb) + var_log(null_ratio, n_sr) + var_log(pr_b, n_rb) + var_log(pr_r, n_rr))
        p = np.maximum(ndtr(-z1), ndtr(-z2))
    ok = (rest.bn > 0) & (rest.rn > 0) & (seg.bn > 0) & (seg.rn > 0)
    return np.where(ok & np.isfinite(p), p, 1.0)


# --interaction: which segment-vs-rest test the detector uses (each variant runs on the same exports)
INTERACTIONS = {"lr": cd._interaction_pvalues, "z": z_interaction_pvalues}


def use(variant: str) -> None:
    cd._interaction_pvalues = INTERACTIONS[variant]


def seeds(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b or a) + 1))
    return out


def export(cache: Path, name: str, spec: ExportSpec) -> Path:
    folder = cache / name
    if not (folder / "deals.csv").exists():
        write_export(folder, spec)
    return folder


# kind -> (the plant, the segment it drives: the one to name, None: nobody)
KINDS = {
    "own": (Effect(kind="source", stage=STAGE, at=AT, source="Instagram", share=0.12, before=0.7, after=0.14),
            ("source", "Instagram")),
    "uniform": (Effect(kind="uniform", stage=STAGE, at=AT, factor=0.65), None),
    "source": (Effect(kind="source", stage=STAGE, at=AT, source="Сайт", share=0.35, before=0.6, after=0.2),
               ("source", "Сайт")),
    "mix": (Effect(kind="mix", stage=STAGE, at=AT, source="Выставка", before=0.15, share_after=0.45), None),
    "confound": (Effect(kind="confound", stage=STAGE, at=AT, source="Instagram", share=0.3, before=0.6, after=0.2,
                        manager="m1", manager_share=0.7), ("source", "Instagram")),
}


def planted_folder(cache: Path, seed: int, volume: int, kind: str = "own") -> Path:
    return export(cache, f"{kind}{volume}_{seed}", ExportSpec(seed=seed, deals_per_month=volume, end=END,
                                                              effect=KINDS[kind][0]))


def module_at(rev: str, cache: Path):
    """detectors/conversion_drop.py as of git revision `rev`, loaded beside the current one."""
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", rev], capture_output=True, text=True,
                         check=True).stdout.strip()
    path = cache / f"conversion_drop_{sha}.py"
    cache.mkdir(parents=True, exist_ok=True)
    path.write_text(subprocess.run(["git", "-C", str(ROOT), "show", f"{sha}:detectors/conversion_drop.py"],
                                   capture_output=True, text=True, check=True).stdout, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"conversion_drop_{sha}", path)
    mod = sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # dataclasses look it up
    saved = REGISTRY.pop(cd.NAME)  # the old module registers the same name
    try:
        spec.loader.exec_module(mod)
    finally:
        REGISTRY[cd.NAME] = saved
    return mod


def named(insights) -> list[tuple[str, str, str]]:
    """(from stage, dimension, segment id) of every segment said to fall: drivers and own drops."""
    out = []
    for i in insights:
        f = i.facts
        out += [(f["from_stage"], d["dimension"], str(d["segment_id"])) for d in f.get("drivers") or []]
        if f["kind"] == "segment_drop":
            out.append((f["from_stage"], f["segment"]["dimension"], str(f["segment"]["segment_id"])))
    return out


def judge(kind: str, insights) -> tuple[bool, list, list]:
    """(found as a user should see it, segments named that drove nothing, insights on other pairs),
    as test_real_export_scenarios.judge_drop."""
    truth = KINDS[kind][1]
    pair = STAGES[STAGE]
    here = [i for i in insights if i.facts["from_stage"] == pair]
    false = [n for n in named(insights) if (n[1], n[2]) != truth or n[0] != pair]
    other = [(i.facts["from_stage"], i.facts["kind"]) for i in insights if i.facts["from_stage"] != pair]
    if kind == "uniform":
        found = any(i.facts["kind"] == "drop" for i in here)
    elif kind == "mix":
        found = any(i.facts["kind"] == "mix_shift" and (i.facts.get("mix") or {}).get("segment_id") == "Выставка"
                    for i in here)
        false += [(pair, "not worded as mix", i.facts["kind"]) for i in here if i.facts["kind"] != "mix_shift"]
    else:
        found = any((n[1], n[2]) == truth for n in named(here))
    if kind != "mix":  # "more deals come from X" where rates fell: a false cause
        false += [(pair, "mix", str((i.facts.get("mix") or {}).get("segment_id"))) for i in here
                  if i.facts["kind"] == "mix_shift"]
    return found, false, other


def pair_counts(mod, data, spec) -> str:
    """The planted pair's baseline and recent counts as the scan saw them."""
    state = mod.prepare(data, spec, as_of=int(NOW.timestamp() * 1e9))
    p = mod._pair_at(STAGE, state.pairs[STAGE], state, state.clock(NOW), segments=False)
    t = p.total
    return f"{int(t.bx[0])}/{int(t.bn[0])} -> {int(t.rx[0])}/{int(t.rn[0])}"


def gate(mod, data, spec, kind: str = "mix") -> str:
    """Why a planted drop was not said as the user should see it: the first gate of detect_at
    that stops the planted pair. q: its overall test missed `fdr` (with the other pairs' in the
    family); material; unconfirmed: neither its newest deals' moves nor (where the revision
    has it, for a mix shift) their mix confirmed it, with the gate of the moves' confirmation
    (today: today's newest deals, clear: q <= clear_q but today's lean the other way, looks:
    a weekly look back failed) and each look's p; then for a mix shift: no mix (no segment
    gained share and converts worse), within (the within-segment drop held, CMH: worded as a
    drop); for a drop: said as a mix shift; for a segment's drop: said, but it is not named, with the first
    step of its driver test (driver_why)."""
    state = mod.prepare(data, spec, as_of=int(NOW.timestamp() * 1e9))
    now_ns = state.clock(NOW)
    pairs = [mod._pair_at(i, c, state, now_ns) for i, c in enumerate(state.pairs)]
    testable = [p for p in pairs if p.total.bn[0] >= spec.min_deals and p.total.rn[0] >= spec.min_deals]
    p = pairs[STAGE]
    if p not in testable:
        return "few deals"
    ps = mod.proportion_drop_pvalues(*(np.concatenate([getattr(mod._deflate(t.total, t.phi), a) for t in testable])
                                       for a in ("bx", "bn", "rx", "rn")))
    p.p, p.q = (float(x[testable.index(p)]) for x in (ps, mod.bh_qvalues(ps)))
    br, rr = p.total.rates()
    if p.q > spec.fdr:
        return f"q {p.q:.2g}"
    if not mod._material(br, rr, p.total.rn, spec)[0]:
        return "not material"
    newest = mod._newest_check(p, now_ns)
    mix, explains = mod._mix_shift(p, state, spec)
    today = mod._confirmed(p.q, newest, spec)
    ok = today and mod._persists(p, state, now_ns, newest)
    if not ok and mix is not None and explains and hasattr(mod, "_mix_persists"):
        ok = mod._mix_persists(p, state, now_ns, newest, mix["dim"])
    if not ok:
        looks = [x["p_value"] and round(x["p_value"], 3) for x in newest.get("weeks_before", [])]
        which = "looks" if today else "clear" if p.q <= spec.clear_q else "today"
        return (f"unconfirmed: {which} (q {p.q:.2g}, newest {newest['moved_on']}/{newest['deals']} exp "
                f"{newest['expected']} p {newest['p_value'] and round(newest['p_value'], 3)}, looks {looks})")
    if kind == "mix":
        if mix is None:
            return "no mix"
        if not explains:
            return f"within (CMH p {mix['p_within']:.2g}, mix part {mix['mix_part'] / (br[0] - rr[0]):.2f})"
    elif mix is not None and explains:
        return f"said as a mix shift ({mix['dim']} {mix['seg']}, CMH p {mix['p_within']:.2g})"
    elif KINDS[kind][1] is not None:
        return f"said, not named ({driver_why(mod, p, state, now_ns, *KINDS[kind][1])})"
    return "said"


def driver_why(mod, p, state, now_ns, dim: str, value: str) -> str:
    """The first step of the driver test for segment (dim, value): its counts and the rest's, the
    two one-sided likelihood-ratio p's (points, log ratio), q in its family and the family's size,
    its share of the drop, and the gate that stopped it (q, share, newest: its newest deals show
    the dip over, or "passed" when a later rule, e.g. _unconfounded, chose another)."""
    spec = state.spec
    s = int(np.flatnonzero(np.asarray(state.seg_dims[dim][1]) == value)[0])
    fam = [(d, int(k)) for d, sc in p.segs.items() for k in np.flatnonzero(
        (sc.bn[:-1] >= spec.min_segment_deals) & (sc.rn[:-1] >= spec.min_segment_deals))]
    if (dim, s) not in fam:
        return "below min_segment_deals"
    cells = np.array([[getattr(p.segs[d], a)[k] for a in ("bx", "bn", "rx", "rn")] for d, k in fam], dtype=float)
    t = p.total
    pv = mod._interaction_pvalues(mod.Counts(*cells.T), mod.Counts(*(np.repeat(getattr(t, a), len(fam))
                                                                     for a in ("bx", "bn", "rx", "rn"))))
    q = mod.bh_qvalues(pv)
    j = fam.index((dim, s))
    seg = cells[j]
    rest = [float(getattr(t, a)[0]) - x for a, x in zip(("bx", "bn", "rx", "rn"), seg)]
    g = [tuple(np.array([c[i] + add]) for i, add in enumerate((mod._PSEUDO, 2 * mod._PSEUDO, mod._PSEUDO, 2 * mod._PSEUDO)))
         for c in (seg, rest)]
    p_pts, p_rel = (float(mod.ndtr(-mod._equal_gap_z(g, ratio=r))[0]) for r in (False, True))
    drop = float(t.rates()[0][0] - t.rates()[1][0])
    share = seg[3] * (seg[0] / seg[1] - seg[2] / seg[3]) / (t.rn[0] * drop)
    newest_off = mod._gainsaid(mod._newest_check(p, now_ns, (dim, s)), spec)
    why = ("q" if q[j] > spec.segment_fdr else "share" if share < spec.min_driver_share
           else "newest" if newest_off else "passed")
    weaker = "points" if p_pts >= p_rel else "relative"
    return (f"{value} {int(seg[0])}/{int(seg[1])} -> {int(seg[2])}/{int(seg[3])} vs rest {int(rest[0])}/{int(rest[1])} -> "
            f"{int(rest[2])}/{int(rest[3])}; p pts {p_pts:.2g} rel {p_rel:.2g} (weaker: {weaker}); q {q[j]:.2g} of "
            f"{len(fam)}, rank {int((pv < pv[j]).sum()) + 1}; share {share:.2f}; stopped by {why}")


def calm_folder(cache: Path, seed: int) -> Path:
    return export(cache, f"calm{seed}", ExportSpec(seed=seed, end=END, days=260, n_managers=10,
                                                   deals_per_month=300, touch_every=(1.0, 7.0)))


def diagnose(state, now, dim="source", value="Instagram", pair_index=STAGE) -> dict:
    """Why the segment (dim, value) of one pair was or was not reported at `now`."""
    spec = state.spec
    now_ns = state.clock(now)
    pairs, blocks = [], []
    floor = cd._report_floor(spec)
    for i, c in enumerate(state.pairs):
        pair = cd._pair_at(i, c, state, now_ns)
        pairs.append(pair)
        for d, sc in pair.segs.items():
            k = len(sc.bn) - 1
            ok = np.flatnonzero((sc.bn[:k] >= floor) & (sc.rn[:k] >= floor))
            if len(ok):
                blocks.append((i, d, ok, cd.Counts(sc.bx[ok], sc.bn[ok], sc.rx[ok], sc.rn[ok])))
    rows = cd._SegmentRows.of(blocks, pairs)
    newest_of = cd._weigh_by_newest(rows, pairs, now_ns, spec)
    q = cd.bh_qvalues(rows.weighed) if len(rows.p) else np.array([])
    s = int(np.flatnonzero(np.asarray(state.seg_dims[dim][1]) == value)[0])
    p = pairs[pair_index]
    sc = p.segs[dim]
    out = {"bx": int(sc.bx[s]), "bn": int(sc.bn[s]), "rx": int(sc.rx[s]), "rn": int(sc.rn[s]), "phi": round(p.phi, 2),
           "family": len(rows.p)}
    r = [j for j in range(len(rows.p)) if rows.pair[j] == pair_index and rows.dim[rows.block[j]] == dim and rows.seg[j] == s]
    if not r:
        out["gate"] = "floor"
        return out
    j = r[0]
    out.update(p=float(rows.p[j]), q=float(q[j]))
    br, rr = sc.rates()
    out["material"] = bool(cd._material(br[s:s + 1], rr[s:s + 1], sc.rn[s:s + 1], spec)[0])
    newest = newest_of.get(j) or cd._newest_check(p, now_ns, (dim, s))
    out["newest"] = newest
    out["confirmed"] = not cd._gainsaid(newest, spec)  # the newest deals already weigh q
    out["gate"] = ("q" if out["q"] > spec.segment_fdr else "material" if not out["material"]
                   else "newest" if not out["confirmed"] else "pass")
    return out


def kinds(args) -> None:
    """The --kinds other than "own": found / false segments / other pairs, per variant."""
    variants = [("now", cd)] + [(rev, module_at(rev, args.cache)) for rev in args.against]
    tally: dict[tuple, list] = {}
    for kind in args.kinds:
        for volume in args.volumes:
            for seed in args.seeds:
                data = load_folder(planted_folder(args.cache, seed, volume, kind), timezone="Asia/Almaty", now=NOW).data
                for label, mod in variants:
                    spec = mod.ConversionDropSpec(**args.spec)
                    found, false, other = judge(kind, mod.detect(data, spec, NOW, with_evidence=False))
                    tally.setdefault((label, kind, volume), []).append((seed, found, false, other))
                    if not found or false or other:
                        why = f" gate: {gate(mod, data, spec, kind)}" if not found and kind != "own" else ""
                        print(f"{label:8s} {kind:8s} {volume} seed {seed:3d}: {'FOUND' if found else 'miss '} "
                              f"{pair_counts(mod, data, spec)} false={false} other={other}{why}", flush=True)
    print(f"\nseeds {args.seeds[0]}-{args.seeds[-1]}: found / false segments named (runs with any) / other pairs")
    for kind in args.kinds:
        for volume in args.volumes:
            for label, _m in variants:
                rs = tally[(label, kind, volume)]
                print(f"{kind:8s} {volume} {label:8s}: found {sum(r[1] for r in rs)}/{len(rs)}; false "
                      f"{sum(len(r[2]) for r in rs)} ({sum(bool(r[2]) for r in rs)} runs); other pairs "
                      f"{sum(len(r[3]) for r in rs)}; missed {[r[0] for r in rs if not r[1]]}")


def planted(args) -> None:
    if args.kinds != ["own"] or args.against:
        return kinds(args)
    spec = cd.ConversionDropSpec(**args.spec)
    found, false = {}, {}
    for volume in args.volumes:
        for seed in args.seeds:
            folder = planted_folder(args.cache, seed, volume)
            data = load_folder(folder, timezone="Asia/Almaty", now=NOW).data
            # the state a scan builds (all history read: the same cohorts), for the reasons
            state = cd.prepare(data, spec, as_of=int(NOW.timestamp() * 1e9))
            for variant in args.interaction:
                use(variant)
                insights = cd.detect(data, spec, NOW, with_evidence=False)
                hit = [i for i in insights if i.subject.get("segment") == "Instagram" or
                       any(d["segment"] == "Instagram" for d in i.facts.get("drivers", []))]
                other = [(i.subject.get("from_stage"), i.subject.get("segment"), i.facts["kind"]) for i in insights
                         if i not in hit]
                other += [(i.subject.get("from_stage"), d["segment"], "driver") for i in insights
                          for d in i.facts.get("drivers", []) if d["segment"] != "Instagram"]
                dg = diagnose(state, NOW)
                nw = dg.get("newest", {})
                print(f"{variant:3s} {volume} seed {seed:2d}: {'FOUND' if hit else 'miss '} gate={dg['gate']:8s} "
                      f"{dg['bx']}/{dg['bn']} -> {dg['rx']}/{dg['rn']} p={dg.get('p', float('nan')):.2g} "
                      f"q={dg.get('q', float('nan')):.3g} newest {nw.get('moved_on')}/{nw.get('deals')} "
                      f"exp {nw.get('expected')} p={nw.get('p_value')} lr={nw.get('dip_lr')} others={other}", flush=True)
                if not hit:
                    found.setdefault((variant, volume), []).append(seed)
                false.setdefault((variant, volume), []).extend((seed, o) for o in other)
    for variant in args.interaction:
        for volume in args.volumes:
            miss = found.get((variant, volume), [])
            print(f"{variant} {volume}/month: missed {len(miss)} of {len(args.seeds)}: {miss}; "
                  f"other segments named {len(false.get((variant, volume), []))}: {false.get((variant, volume), [])}")


def replay(folder: Path, spec, days: int = 123, first=None, mod=cd):
    data = load_folder(folder, timezone="Asia/Almaty", now=NOW).data
    first = first or datetime(2026, 7, 20, 9, tzinfo=ZoneInfo("Asia/Almaty"))
    spec = spec.model_copy(update={"calendar": WorkCalendar(country=None)})
    state = mod.prepare(data, spec, as_of=int(first.timestamp() * 1e9))
    overall, segments = [], []
    for d in (first + timedelta(days=k) for k in range(days)):
        day = d.date().isoformat()
        insights = mod.detect_at(state, d, with_evidence=False)
        said = [i for i in insights if i.facts["kind"] != "segment_drop"]
        if said:  # "+mix": confirmed only by the newest deals' mix (_mix_persists); "+D": names a driver
            overall.append(day + ("+mix" if any("mix" in (i.facts["newest"] or {}) for i in said) else "")
                           + "".join(f"+{d['segment_id']}" for i in said for d in i.facts.get("drivers") or []))
        segments += [(day, i.subject["dimension"], i.subject["segment"], round(i.facts["q_value"], 4),
                      i.facts["newest"]["p_value"] and round(i.facts["newest"]["p_value"], 3))
                     for i in insights if i.facts["kind"] == "segment_drop"]
    return overall, segments


def calm(args) -> None:
    mods = {rev: module_at(rev, args.cache) for rev in args.against}
    variants = list(args.interaction) + list(mods)  # --against REV: that revision's detector
    loud = {v: {} for v in variants}
    seg_loud = {v: {} for v in variants}
    for seed in args.seeds:
        for variant in variants:
            mod = mods.get(variant, cd)
            if variant not in mods:
                use(variant)
            overall, segs = replay(calm_folder(args.cache, seed), mod.ConversionDropSpec(**args.spec), mod=mod)
            if overall:
                loud[variant][seed] = overall
                print(f"{variant} calm seed {seed}: overall {overall}", flush=True)
            if segs:
                seg_loud[variant][seed] = segs
                print(f"{variant} calm seed {seed}: {segs}", flush=True)
    for variant in variants:
        lv, sv = loud[variant], seg_loud[variant]
        print(f"{variant} calm {args.seeds[0]}-{args.seeds[-1]}: overall drops {len(lv)} companies on "
              f"{sum(map(len, lv.values()))} days ({sum(d.endswith('+mix') for v in lv.values() for d in v)} "
              f"confirmed by the newest deals' mix alone; {sum(x != 'mix' for v in lv.values() for d in v for x in d.split('+')[1:])} "
              f"drivers named on them); segment drops {len(sv)} companies on "
              f"{len({(s, d[0]) for s, v in sv.items() for d in v})} days; "
              f"managers named on {len({(s, d[0]) for s, v in sv.items() for d in v if d[1] == 'manager'})} days")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=("planted", "calm"))
    ap.add_argument("--seeds", type=seeds, default=seeds("0-15"))
    ap.add_argument("--volumes", type=lambda t: [int(x) for x in t.split(",")], default=[250, 400])
    ap.add_argument("--cache", type=Path, default=Path("/tmp/seg_drop_cache"))
    ap.add_argument("--interaction", type=lambda t: t.split(","), default=["lr"],
                    help="segment-vs-rest test(s), comma-separated: lr (the detector's), z (the z-tests before it)")
    ap.add_argument("--set", action="append", default=[], help="spec key=value")
    ap.add_argument("--kinds", type=lambda t: t.split(","), default=["own"],
                    help=f"planted kinds, comma-separated: {', '.join(KINDS)} (own alone: the diagnosis above)")
    ap.add_argument("--against", action="append", default=[],
                    help="also run conversion_drop as of this git revision on the same exports (calm, --kinds)")
    args = ap.parse_args()
    args.spec = {}
    for kv in args.set:
        k, v = kv.split("=")
        args.spec[k] = float(v) if "." in v else int(v)
    {"planted": planted, "calm": calm}[args.what](args)


if __name__ == "__main__":
    main()
