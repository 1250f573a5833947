"""config.example.toml is the admin's manual: it must parse, and show every detector key
with the value the code really uses by default, so reading it never misleads."""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from bot.config import parse_config
from detectors.registry import REGISTRY

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.toml"


def test_example_config_is_valid():
    config = parse_config(EXAMPLE.read_text(encoding="utf-8"), source_name=str(EXAMPLE), base_dir=EXAMPLE.parent)
    assert set(config.detector_specs()) == set(REGISTRY)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_example_shows_every_detector_key_with_its_default(name):
    shown = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))["detectors"][name]
    spec = REGISTRY[name].spec()
    defaults = spec.model_dump()
    # a detector's `timezone` left out follows the top-level one (Config.detector_specs): the
    # example shows it commented out, so copying the file never pins a company to Almaty's days
    missing = sorted(set(defaults) - set(shown) - {"timezone"})
    assert not missing, f"config.example.toml [detectors.{name}] does not document: {missing}"
    if "timezone" in defaults and "timezone" not in shown:
        section = EXAMPLE.read_text(encoding="utf-8").split(f"[detectors.{name}]")[1].split("\n[")[0]
        assert "# timezone =" in section, f"[detectors.{name}] does not mention its timezone"
    # Compare through the spec so lists/tuples and int/float spellings agree.
    assert REGISTRY[name].spec(**shown).model_dump() == defaults, f"[detectors.{name}] shows values that differ from the defaults"


def test_the_example_ships_inside_the_package_for_init():
    """`crm-pulse init` from a non-editable install reads bot/config.example.toml (a link to
    the root file, packaged as package data), so the two must be one text."""
    shipped = EXAMPLE.parent / "bot" / "config.example.toml"
    assert shipped.read_text(encoding="utf-8") == EXAMPLE.read_text(encoding="utf-8")


def test_readme_names_every_column_a_detector_needs():
    """The README's table of needs is what the registry declares: a Need added without a word
    for the admin fails here."""
    from pathlib import Path

    from detectors import REGISTRY

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    needs_table = readme.split("What each detector needs", 1)[1].split("\n\n| detector |", 1)[1].split("\n\n", 1)[0]
    for name, det in REGISTRY.items():
        row = next(line for line in needs_table.splitlines() if line.startswith(f"| `{name}` | "))
        for need in det.needs:
            for column in need.columns:
                assert f"`{column}`" in row, f"README's needs table: {name} does not name {column}"
        for table in det.requires:
            assert table in row, f"README's needs table: {name} does not name the {table} table"
