"""Config that check-config accepts must not crash later: every number finite and within bounds
(inf, nan, 1e309, 1e308 and 20-digit integers refused with their key path), deeply nested TOML a
config error (not RecursionError), the state URL checked (dialect, driver) before `run`."""
from __future__ import annotations

import argparse
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import MAX_NESTING, MAX_NUMBER, ConfigError, parse_config
from detectors import REGISTRY

HOSTILE_NUMBERS = ["inf", "+inf", "-inf", "nan", "1e309", "-1e309", "1e308", "99999999999999999999",
                   "-9223372036854775808", "1e16"]
KEYS = [("delivery", "repeat_interval_days"), ("delivery.worse", "points"), ("delivery.worse", "ratio"),
        ("detectors.manager_load", "band_high"), ("detectors.lead_sla", "response_sla_hours"),
        ("detectors.silent_client", "min_seconds_after_send"), ("detectors.stalled_deal", "default_limit_days"),
        ("detectors.conversion_drop", "max_evidence")]


@pytest.mark.parametrize("value", HOSTILE_NUMBERS)
@pytest.mark.parametrize("section, key", KEYS)
def test_hostile_numbers_are_refused_with_the_key_path(section, key, value):
    with pytest.raises(ConfigError) as e:
        parse_config(f"[{section}]\n{key} = {value}\n")
    assert len(e.value.problems) == 1, e.value.problems
    assert e.value.problems[0].startswith(f"{section}.{key}: "), e.value.problems
    assert "(line 2)" in e.value.problems[0]


@pytest.mark.parametrize("value", ["inf", "nan", "1e12", "-inf"])
def test_numbers_inside_tables_and_lists_are_checked_too(value):
    with pytest.raises(ConfigError) as e:
        parse_config(f'[detectors.stalled_deal]\nstage_limits = {{"Переговоры" = {value}}}\n')
    assert e.value.problems[0].startswith("detectors.stalled_deal.stage_limits.Переговоры: ")


@pytest.mark.parametrize("depth", [MAX_NESTING + 2, 300, 600, 5000, 100_000])
@pytest.mark.parametrize("opening, closing", [("[", "]"), ("{a = ", "}")])
def test_deeply_nested_toml_is_a_config_error(depth, opening, closing):
    inner = "1"
    text = "[source]\nfill = " + opening * depth + inner + closing * depth + "\n"
    with pytest.raises(ConfigError) as e:
        parse_config(text)
    assert any("nested" in p for p in e.value.problems)


def _numeric_fields():
    """(section, key, spec field) for every number a detector's section takes (not the fields the
    config fills from elsewhere, excluded from dumps: active_window_days is manager_load's)."""
    out = []
    for name, det in REGISTRY.items():
        for key, field in det.spec.model_fields.items():
            if field.annotation in (int, float) and not field.exclude:
                out.append((f"detectors.{name}", key, field))
    return out


def _limits(field):
    lo, hi = -math.inf, math.inf
    for m in field.metadata:
        lo = max(lo, getattr(m, "ge", None) if getattr(m, "ge", None) is not None else lo)
        lo = max(lo, getattr(m, "gt", None) if getattr(m, "gt", None) is not None else lo)
        hi = min(hi, getattr(m, "le", None) if getattr(m, "le", None) is not None else hi)
        hi = min(hi, getattr(m, "lt", None) if getattr(m, "lt", None) is not None else hi)
    return lo, hi


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(_numeric_fields()), st.floats(allow_nan=True, allow_infinity=True) | st.integers())
def test_any_number_is_either_accepted_finite_and_bounded_or_a_config_error(field, value):
    section, key, spec_field = field
    if spec_field.annotation is int and isinstance(value, float):
        value = int(value) if math.isfinite(value) else value
    literal = {math.inf: "inf", -math.inf: "-inf"}.get(value, repr(value)) if not (
        isinstance(value, float) and math.isnan(value)) else "nan"
    try:
        cfg = parse_config(f"[{section}]\n{key} = {literal}\n")
    except ConfigError as e:
        # the key itself, or a cross-key rule of its section (max_horizon_days >= min_horizon_days)
        assert all(p.startswith(f"{section}.{key}: ") or p.startswith(f"{section}: ") for p in e.problems), e.problems
        return
    got = getattr(cfg.detectors[section.split(".")[1]], key)
    assert math.isfinite(got) and abs(got) <= MAX_NUMBER


def _top(field):
    """The largest value the config accepts for this field."""
    from bot.config import _unit_limit

    lo, hi = _limits(field[2])
    unit = _unit_limit(field[1])
    top = min(hi, unit[1] if unit else MAX_NUMBER)
    if top == hi and any(getattr(m, "lt", None) is not None for m in field[2].metadata):
        top = hi - 1e-9
    return int(top) if field[2].annotation is int else top


@pytest.fixture(scope="module")
def demo():
    from crm.demo import generate_demo

    return generate_demo(7)


@pytest.mark.parametrize("detector", sorted(REGISTRY))
def test_a_scan_survives_every_number_at_the_top_of_what_is_accepted(detector, demo):
    from bot import pipeline

    fields = [f for f in _numeric_fields() if f[0] == f"detectors.{detector}"]
    body = "".join(f"{key} = {_top((s, key, fld))!r}\n" for s, key, fld in fields)
    spec = parse_config(f"[detectors.{detector}]\n" + body).detectors[detector]  # accepted
    cfg = parse_config(demo.config_toml)
    cfg = cfg.model_copy(update={"detectors": {**cfg.detectors, detector: spec}})
    pipeline.scan(cfg, demo.now, data=demo.data)  # must not raise


@pytest.mark.parametrize("url, says", [
    ("sqlit:///state.db", "must be SQLite or PostgreSQL, got 'sqlit' (did you mean sqlite?)"),
    ("mysql://bot@db/state", "must be SQLite or PostgreSQL, got 'mysql'"),
    ("postgresql+nosuch://bot@db/state", "no SQLAlchemy driver 'postgresql+nosuch'"),
    ("not a url", "must be an SQLAlchemy URL"),
])
def test_the_state_url_is_checked_by_check_config(url, says):
    with pytest.raises(ConfigError) as e:
        parse_config(f'[state]\nurl = "{url}"\n')
    assert e.value.problems[0].startswith("state.url: ") and says in e.value.problems[0]


@pytest.mark.parametrize("value", ["postgresql://bot:s3cr3t-pw@db:notaport/crm", "sqlit:///x.db",
                                   "s3cr3t-pw-only", "mysql://bot:s3cr3t-pw@db/x"])
def test_an_unusable_url_in_url_env_names_the_variable_not_the_value(value, tmp_path, capsys, monkeypatch):
    from bot.app import run

    monkeypatch.setenv("MY_STATE_URL", value)
    f = tmp_path / "config.toml"
    f.write_text('[state]\nurl_env = "MY_STATE_URL"\n', encoding="utf-8")
    assert run(argparse.Namespace(config=str(f), log_level="ERROR")) == 2
    err = capsys.readouterr().err
    assert "state.url_env: environment variable MY_STATE_URL: " in err
    assert "s3cr3t" not in err and "Traceback" not in err


def test_check_config_exits_2_not_4_for_inf(tmp_path, capsys):
    from bot.cli import main

    f = tmp_path / "config.toml"
    f.write_text("[delivery]\nrepeat_interval_days = inf\n[detectors.manager_load]\nband_high = inf\n",
                 encoding="utf-8")
    assert main(["check-config", str(f)]) == 2
    err = capsys.readouterr().err
    assert "delivery.repeat_interval_days: must be a finite number, got inf" in err
    assert "detectors.manager_load.band_high: must be a finite number, got inf" in err
