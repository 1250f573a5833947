"""The README's digest samples are what `make demo` prints today.

Each sample is a fenced block right after a marker comment naming where it comes from:

    <!-- demo-sample: lang=en recipient="Дмитрий Ковалёв" -->            the whole digest
    <!-- demo-sample: lang=ru recipient="Директор по продажам" item="Конверсия" -->  one item

When wording or the demo changes, `UPDATE_README=1 python -m pytest tests/test_readme_samples.py`
rewrites the blocks from the current demo; read the diff before committing it.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
from functools import lru_cache
from pathlib import Path

import pytest

from bot.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"
SAMPLE = re.compile(r"<!-- demo-sample: (?P<args>[^>]*?) -->\n```\n(?P<body>.*?)```", re.S)
TITLE = re.compile(r"^━━ (?P<name>.+) \((?P<role>[^()]+)\) ━━$", re.M)


@lru_cache(maxsize=None)
def demo_output(lang: str) -> str:
    """stdout of `crm-pulse demo --lang LANG`, as `make demo ARGS="--lang LANG"` prints it."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert main(["demo", "--lang", lang]) == 0
    return out.getvalue()


def section(output: str, recipient: str) -> str:
    """One recipient's digest from the demo output (between their title line and the next)."""
    titles = list(TITLE.finditer(output))
    for n, m in enumerate(titles):
        if m.group("name") == recipient:
            end = titles[n + 1].start() if n + 1 < len(titles) else len(output)
            return output[m.end():end].strip("\n") + "\n"
    raise AssertionError(f"no recipient {recipient!r} in the demo: {[m.group('name') for m in titles]}")


def item(digest: str, needle: str) -> str:
    """The numbered item of a digest whose title line contains `needle`."""
    for block in digest.split("\n\n"):
        first = block.split("\n", 1)[0]
        if re.match(r"^\d+\. ", first) and needle in first:
            return block.strip("\n") + "\n"
    raise AssertionError(f"no item with {needle!r} in its title in this digest:\n{digest}")


def expected(args: str) -> str:
    opts = dict(part.split("=", 1) for part in shlex.split(args))
    digest = section(demo_output(opts["lang"]), opts["recipient"])
    return item(digest, opts["item"]) if "item" in opts else digest


def samples(text: str) -> list[re.Match]:
    return list(SAMPLE.finditer(text))


def test_the_readme_has_a_manager_digest_and_a_director_item_sample():
    found = [m.group("args") for m in samples(README.read_text(encoding="utf-8"))]
    assert any("item=" not in a for a in found), "no whole-digest sample"
    assert any("item=" in a for a in found), "no single-item sample"


def test_readme_samples_match_the_current_demo():
    text = README.read_text(encoding="utf-8")
    if os.environ.get("UPDATE_README"):
        new = SAMPLE.sub(lambda m: f"<!-- demo-sample: {m.group('args')} -->\n```\n{expected(m.group('args'))}```", text)
        if new != text:
            README.write_text(new, encoding="utf-8")
        text = new
    for m in samples(text):
        assert m.group("body") == expected(m.group("args")), (
            f"README sample ({m.group('args')}) no longer matches `make demo`; run "
            "UPDATE_README=1 python -m pytest tests/test_readme_samples.py and read the diff")


def test_a_drifted_sample_is_caught():
    """The check itself can fail: a one-character change in a sample is a mismatch."""
    m = samples(README.read_text(encoding="utf-8"))[0]
    body = m.group("body")
    drifted = body.replace("1", "2", 1) if "1" in body else body + "x"
    assert drifted != expected(m.group("args"))


@pytest.mark.parametrize("needle", ["no such item title"])
def test_a_sample_naming_a_missing_item_fails_loudly(needle):
    with pytest.raises(AssertionError, match="no item with"):
        item(section(demo_output("ru"), "Директор по продажам"), needle)
