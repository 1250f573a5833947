"""The daily volume on every export shape we read (issue 9: "at most 5 items a day on average for
any recipient", on real exports).

Each builder in tests/scenarios/ writes its CRM's export for a company of realistic size (a year of
history), the admin's config from the README's recipe beside it, with a chat for the director and
for every manager the data names; `backtest --fail-on-budget` then replays the 120 days ending at
the export's last day. Nobody may average more than the daily budget (5 full items a digest day);
an export that cannot say when a deal was last touched gives no stalled items at all, and one read
with README's touches recipe (one latest touch per deal) is said to overstate the replayed past.

Run as a script (`python tests/scenarios/test_budget_across_exports.py [sizes] [-s shapes]
[--seed N] [--same-names]`) it prints the table: shape x size -> busiest manager's and director's
items a digest day, alerts, the detector most alerts come from.
"""
from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import _activity_exports as activity  # noqa: E402
import _amocrm_export as amo  # noqa: E402
import _bitrix24_export as b24  # noqa: E402
import _export_factory as factory  # noqa: E402
import _lead_exports as leads  # noqa: E402
import _odoo_export as odoo  # noqa: E402
import _salesforce_export as sf  # noqa: E402
import _sheet_exports as sheets  # noqa: E402
import _web_exports as web  # noqa: E402
import _zoho_export as zoho  # noqa: E402
from _cli import run_cli  # noqa: E402
from _export_factory import (DIRECTOR, ExportSpec, files, head, read_rows, touches_recipe,  # noqa: E402
                             write_export, write_rows)

UTC = timezone.utc
DAYS = 365   # a year of history
REPLAY = 120  # days replayed, ending at the export's last day
# size -> (deals a month, managers, more of the company's habits)
SLOPPY = {"touch_every": (1.0, 14.0), "departed": 1, "abandoned_days": (20, 280)}
SIZES = {"small": (60, 5, {}), "mid": (250, 12, {}), "big": (1000, 30, {}),
         # open deals touched every 1-14 days, one person left 60 days ago, m2 left deals behind
         "sloppy": (400, 12, SLOPPY | {"abandoned": ("m2", 60)}),
         "sloppy-big": (1000, 30, SLOPPY | {"abandoned": ("m2", 150)})}


def _crossed(names: tuple[str, ...]) -> tuple[str, ...]:
    """The builder's names, then every other first name with every other surname: the builders
    name manager k names[k % 12], so 30 managers were 12 people each with 2-3 managers' deals
    (the busiest "manager" was 2-3 of them). Same order in every list, so a translated list stays
    aligned with its original."""
    first = [n.split()[0] for n in names]
    last = [n.split()[-1] for n in names]
    return tuple(names) + tuple(f"{first[i]} {last[j]}" for i in range(len(names))
                                for j in range(len(names)) if i != j)


def many_people(set_attr: Callable[[object, str, object], None] = setattr) -> None:
    """Give every builder enough distinct names for 30 managers (pytest: monkeypatch.setattr)."""
    for mod in (activity, amo, b24, odoo, sf, sheets, web, zoho):
        set_attr(mod, "NAMES", _crossed(mod.NAMES))
    set_attr(amo, "EN_NAMES", _crossed(amo.EN_NAMES))
    set_attr(leads, "NAMES", {crm: _crossed(names) for crm, names in leads.NAMES.items()})
    # a sheet names people by first name: a second Алия is «Алия Б.»
    set_attr(factory, "FIRST", factory.FIRST + tuple(f"{n} {c}." for c in "БВК" for n in factory.FIRST))


def _spec(end: datetime, size: str, seed: int, make: Callable[..., ExportSpec] = ExportSpec, **kw) -> ExportSpec:
    deals, managers, habits = SIZES[size]
    return make(**{"seed": seed, "end": end, "days": DAYS, "n_managers": managers, "deals_per_month": deals,
                   "leads_per_month": deals, "with_emails": False, **habits, **kw})


def _write_config(root: Path, name: str, text: str) -> Path:
    path = root / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


# --- one function per export shape: (root, size, seed) -> (config, the export's last moment) -------

def _odoo(root, size, seed):
    end = datetime(2026, 11, 20, 11, 0, tzinfo=UTC)
    o = odoo.OdooExport(_spec(end, size, seed, odoo.odoo_spec))
    odoo.write(root / "odoo", o)
    return _write_config(root, "odoo", head(o.lang, o.tz, "KZT", "odoo") + files(deals=odoo.file_name(o))
                         + odoo.deals_recipe(o) + "\n" + DIRECTOR), end


def _sheet(root, size, seed):
    end = datetime(2026, 11, 20, 5, 0, tzinfo=UTC)
    s = sheets.SheetCRM(_spec(end, size, seed, sheets.sheet_spec), with_year=True, colour_only=0.0)
    sheets.write_sheet_csv(root / "sheet", s)
    return _write_config(root, "sheet", head("ru", sheets.TZ, "KZT", "sheet") + files(deals="crm.csv")
                         + sheets.SHEET_DEALS + "\n" + DIRECTOR), end


def _monday(root, size, seed):
    end = datetime(2026, 11, 20, 5, 0, tzinfo=UTC)
    b = sheets.MondayBoard(_spec(end, size, seed, sheets.monday_spec))
    name = "Deals_pipeline_1764500000.xlsx"
    sheets.write_monday(root / "monday", b, name)
    return _write_config(root, "monday", head("en", b.tz, "USD", "monday") + files(deals=name)
                         + sheets.MONDAY_DEALS + "\n" + DIRECTOR), end


def _activities(crm: str):
    def build(root, size, seed):
        end = datetime(2026, 11, 20, 11, 0, tzinfo=UTC)
        a = activity.ActivityExport(_spec(end, size, seed, **{"abandoned": ("m2", max(5, SIZES[size][0] // 20)),
                                                             **SIZES[size][2]}), crm=crm)
        activity.write(root / crm, a)
        return _write_config(root, crm, activity.config(crm, a)), end
    return build


def _monthly_files(root, size, seed):
    """HubSpot's calls and tasks apart and the deals cut into monthly files (a row-capped CRM)."""
    from test_several_files_export import _split

    config, end = _activities("hubspot")(root, size, seed)
    _split(root / "hubspot")
    text = config.read_text(encoding="utf-8")
    text = text.replace(f'activities = "{activity.FILES["hubspot"]}"', 'activities = ["calls.csv", "tasks.csv"]')
    text = text.replace('deals = "deals.csv"', 'deals = "deals_*.csv"') + '[source.fill.activities]\ntype = "call"\n'
    config.write_text(text, encoding="utf-8")
    return config, end


def _amocrm(root, size, seed):
    end = datetime(2026, 11, 20, 11, 0, tzinfo=UTC)
    w = amo.AmoExport(_spec(end, size, seed, inactive_flagged=1))
    amo.write(root / "amocrm", w)
    stages = '["Неразобранное", "Новая заявка", "Квалификация", "КП отправлено", "Переговоры", "Договор"]'
    source = f'pipelines = ["Продажи"]\nstages = {stages}\n'
    return _write_config(root, "amocrm", head("ru", "Asia/Almaty", "KZT", "amocrm", source=source)
                         + files(deals=amo.file_name(w)) + amo.DEALS + DIRECTOR), end


def _bitrix24(root, size, seed):
    end = datetime(2026, 11, 20, 11, 0, tzinfo=UTC)
    b24.write(root / "bitrix24", b24.Bitrix24Export(_spec(end, size, seed)))
    return _write_config(root, "bitrix24", head("ru", "Asia/Almaty", "KZT", "bitrix24")
                         + files(deals="DEAL_20261120.csv", leads="LEAD_20261120.csv")
                         + b24.DEALS + b24.OPEN_STAGES + b24.LEADS + DIRECTOR), end


def _web(crm: str):
    def build(root, size, seed):
        end = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
        w = web.WebExport(crm, _spec(end, size, seed))
        web.write(root / f"web-{crm}", w)
        if crm == "hubspot":
            text = (head("en", "America/New_York", "USD", f"web-{crm}") + files(deals=web.FILES[crm])
                    + web.recipe("hubspot", open_stages=True)
                    + f'[source.date_formats]\ndeals = "{web.DATE_FORMATS[w.dates]}"\n')
        else:
            text = head("ru", "Europe/Berlin", "EUR", f"web-{crm}") + files(deals=web.FILES[crm]) + web.recipe(crm)
        return _write_config(root, f"web-{crm}", text + DIRECTOR), end
    return build


def _salesforce(root, size, seed):
    end = datetime(2026, 11, 20, 22, 0, tzinfo=UTC)
    s = sf.SalesforceExport(_spec(end, size, seed, sf.sf_spec))
    sf.write(root / "salesforce", s)
    return _write_config(root, "salesforce", head("en", s.tz, "USD", "salesforce") + sf.recipe(s) + DIRECTOR), end


def _zoho(root, size, seed):
    end = datetime(2026, 11, 20, 20, 0, tzinfo=UTC)
    zoho.write(root / "zoho", zoho.ZohoExport(_spec(end, size, seed, zoho.zoho_spec)))
    return _write_config(root, "zoho", head("en", "America/New_York", "USD", "zoho") + files(deals=zoho.FILE)
                         + zoho.DEALS + "\n" + DIRECTOR), end


def _lead_export(crm: str):
    def build(root, size, seed):
        end = datetime(2026, 11, 20, 11, 0, tzinfo=UTC)
        x = leads.LeadExport(crm, _spec(end, size, seed))
        folder = root / crm
        leads.write(folder, x)
        if crm == "bitrix24":
            b24.write(folder, b24.Bitrix24Export(x.spec), leads=False)
        elif crm == "amocrm":
            amo.write(folder, amo.AmoExport(x.spec))
        else:
            web.write(folder, web.WebExport(crm, x.spec, tz=leads.ZONES[crm]))
        return _write_config(root, crm, head("ru", leads.ZONES[crm], "KZT", crm) + DIRECTOR + leads.recipe(crm)), end
    return build


def _nobody_owns(root, size, seed):
    """The canonical export with a fifth of the deals and leads owned by «Без ответственного»
    (test_owners_that_name_nobody): nobody works those deals."""
    import numpy as np

    end = datetime(2026, 11, 20, 5, 0, tzinfo=UTC)
    folder = write_export(root / "nobody", _spec(end, size, seed))
    rng = np.random.default_rng(seed + 1)
    nobody = {r["deal_id"] for r in read_rows(folder, "deals") if rng.random() < 0.2}
    for table in ("deals", "leads", "activities", "clients"):
        out = []
        for r in read_rows(folder, table):
            if table == "activities" and r["deal_id"] in nobody:
                continue
            if table == "deals" and r["deal_id"] in nobody or table == "leads" and rng.random() < 0.2:
                r = {**r, "manager_id": "Без ответственного"}
            out.append(r)
        write_rows(folder, table, out)
    return _write_config(root, "nobody", f'timezone = "Asia/Almaty"\n[source]\nkind = "files"\npath = "./nobody"\n'
                         + DIRECTOR), end


def _touched(build: Callable, deal_id: str, owner: str, done_at: str):
    """The shape with README's recipe for an export with no stage history: the deals file read
    again as activities, `done_at` each deal's latest touch (what the stalled_deal skip line says)."""
    def touched(root, size, seed):
        config, end = build(root, size, seed)
        text = config.read_text(encoding="utf-8")
        deals_file = _deals_file(text)
        text = text.replace("[source.files]\n", f'[source.files]\nactivities = "{deals_file}"\n', 1)
        text = re.sub(r'(\[source\.date_formats\]\ndeals = ("[^"]*")\n)', r"\1activities = \2\n", text)
        config.write_text(text + touches_recipe(deal_id, owner, done_at), encoding="utf-8")
        return config, end
    return touched


def _deals_file(text: str) -> str:
    return text.split("[source.files]\n")[1].split('deals = "')[1].split('"')[0]


SHAPES: dict[str, Callable] = {
    "odoo": _odoo, "sheet": _sheet, "monday": _monday,
    "bitrix24-activities": _activities("bitrix24"), "pipedrive-activities": _activities("pipedrive"),
    "hubspot-activities": _activities("hubspot"), "monthly-files": _monthly_files,
    "amocrm": _amocrm, "bitrix24": _bitrix24, "hubspot": _web("hubspot"), "pipedrive": _web("pipedrive"),
    "salesforce": _salesforce, "zoho": _zoho,
    "bitrix24-leads": _lead_export("bitrix24"), "amocrm-leads": _lead_export("amocrm"),
    "hubspot-leads": _lead_export("hubspot"), "pipedrive-leads": _lead_export("pipedrive"),
    "nobody-owns": _nobody_owns,
    # the same exports with the deals file read again as activities (no stage history otherwise)
    "odoo+touches": _touched(_odoo, "ID", "Salesperson", "Last Updated on"),
    "monday+touches": _touched(_monday, "Item ID", "Person", "Last updated"),
    "amocrm+touches": _touched(_amocrm, "ID", "Ответственный", "Дата изменения"),
    "bitrix24+touches": _touched(_bitrix24, "ID", "Ответственный", "Дата изменения"),
    "hubspot+touches": _touched(_web("hubspot"), "Record ID", "Deal owner", "Last Activity Date"),
    "zoho+touches": _touched(_zoho, "Record Id", "Deal Owner", "Last Activity Time"),
}


def with_every_manager(config: Path) -> list[str]:
    """Give every manager the loaded data names a chat beside the director's (as a company that
    wants everyone to read their digest would); returns their ids."""
    from bot.config import load_config
    from crm.load import load_crm

    cfg = load_config(config)
    data = load_crm(cfg.source, timezone=cfg.timezone, base_dir=config.parent).data
    ids = sorted({str(m) for m in data.managers["manager_id"]})
    text = "".join(f'\n[[recipients]]\nid = "r{k}"\nname = {json.dumps(m, ensure_ascii=False)}\nrole = "manager"\n'
                   f'manager_id = {json.dumps(m, ensure_ascii=False)}\ntelegram_id = {200000000 + k}\n'
                   for k, m in enumerate(ids))
    config.write_text(config.read_text(encoding="utf-8") + text, encoding="utf-8")
    return ids


def backtest(root: Path, shape: str, size: str, seed: int = 1) -> tuple[int, dict, str]:
    """(exit code, the JSON report, stderr) of a 120-day `backtest --fail-on-budget` on the shape."""
    config, end = SHAPES[shape](root, size, seed)
    with_every_manager(config)
    last = end.date()
    rc, out, err = run_cli("backtest", "--config", str(config), "--from", str(last - timedelta(days=REPLAY - 1)),
                           "--to", str(last), "--fail-on-budget", "--format", "json")
    assert rc in (0, 1), out[-3000:] + err
    return rc, json.loads(out), err


def summary(report: dict) -> dict:
    """What the table shows: the busiest manager's and the director's items a digest day, the
    alerts, and the detector with the most alerts and its share."""
    per_day = {who: r["items_per_day"] for who, r in report["recipients"].items()}
    managers = {who: v for who, v in per_day.items() if who != "director"}
    alerts = {d: x["alerts"] for d, x in report["detectors"].items()}
    total = sum(alerts.values())
    top = max(alerts, key=alerts.get) if total else "-"
    return {"busiest": max(managers.values(), default=0.0), "director": per_day.get("director", 0.0),
            "alerts": total, "top": top, "top_share": alerts.get(top, 0) / total if total else 0.0,
            "over": [w["recipient"] for w in report["budget"]["over"]]}


# exports with no stage history and no activities: when a deal was last touched is unknown there
UNTOUCHED = {"odoo", "sheet", "monday", "amocrm", "bitrix24", "hubspot", "pipedrive", "zoho",
             "bitrix24-leads", "amocrm-leads", "hubspot-leads", "pipedrive-leads"}


def _check(tmp_path: Path, shape: str, size: str, monkeypatch) -> None:
    many_people(monkeypatch.setattr)
    rc, report, err = backtest(tmp_path, shape, size)
    s = summary(report)
    assert rc == 0 and not s["over"], (shape, size, s, report["budget"]["over"])
    assert s["busiest"] <= 5 and s["director"] <= 5, s
    assert report["detectors"], "the replay ran no detector at all: the export was not read"
    if shape in UNTOUCHED:  # no stalled flood from a column the export does not have
        assert "stalled_deal" in report["skipped"] and "stalled_deal" not in report["detectors"], report["skipped"]
    if shape.endswith("+touches"):  # one latest touch per deal: a day before it does not judge the deal, and says so
        assert "stalled_deal judges only the deals whose touch is known by then" in err, err


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_a_small_company_stays_within_the_budget(tmp_path, shape, monkeypatch):
    _check(tmp_path, shape, "small", monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("size", ["mid", "big", "sloppy"])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_a_bigger_company_stays_within_the_budget(tmp_path, shape, size, monkeypatch):
    _check(tmp_path, shape, size, monkeypatch)


if __name__ == "__main__":  # the table: python tests/scenarios/test_budget_across_exports.py [size...] [-s a,b] [--seed N]
    import tempfile

    args = sys.argv[1:]
    if "--same-names" not in args:
        many_people()
    only = args[args.index("-s") + 1].split(",") if "-s" in args else list(SHAPES)
    sizes = [a for a in args if a in SIZES] or list(SIZES)
    seed = int(args[args.index("--seed") + 1]) if "--seed" in args else 1
    print(f"{'shape':22} {'size':5} {'busiest':>7} {'director':>8} {'alerts':>6}  top detector")
    for size in sizes:
        for shape in only:
            with tempfile.TemporaryDirectory() as tmp:
                _, rep, _ = backtest(Path(tmp), shape, size, seed)
                s = summary(rep)
                by = {d: x["alerts"] for d, x in rep["detectors"].items()}
                print(f"{shape:22} {size:5} {s['busiest']:7.2f} {s['director']:8.2f} {s['alerts']:6d}  "
                      f"{s['top']} {s['top_share']:.0%} {'OVER ' + ','.join(s['over']) if s['over'] else ''}  {by}",
                      flush=True)
