"""pip-audit is in the dev extra, `make audit` runs it on the exact installed versions, and
`make test` does not depend on it (no network for the tests)."""
from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _make_n(target: str) -> str:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    done = subprocess.run(["make", "-n", "-B", target, f"VENV={Path(sys.executable).parents[1]}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_pip_audit_is_in_the_dev_extra():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    assert any(d.startswith("pip-audit") for d in extras["dev"])
    assert set(extras["test"]) <= set(extras["dev"])  # dev is test plus the audit
    assert not any(d.startswith("pip-audit") for d in extras["test"])


def test_make_audit_audits_the_pinned_versions_and_make_test_does_not():
    audit = _make_n("audit")
    assert "pip freeze --exclude-editable" in audit and "pip-audit --no-deps --disable-pip" in audit
    assert "audit" not in _make_n("test").replace("pytest", "")


def test_the_pinned_list_is_auditable_without_installing(tmp_path):
    """What `make audit` feeds pip-audit: collected without network (--dry-run stops before
    the advisory look-up, which is the only part that needs PyPI)."""
    exe = Path(sys.executable).with_name("pip-audit")
    if not exe.exists():
        pytest.skip("pip-audit is not installed (pip install -e '.[dev]')")
    reqs = tmp_path / "audit-requirements.txt"
    frozen = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
                            capture_output=True, text=True, timeout=120)
    reqs.write_text(frozen.stdout, encoding="utf-8")
    assert "pandas==" in frozen.stdout
    done = subprocess.run([str(exe), "--dry-run", "--no-deps", "--disable-pip", "--progress-spinner", "off",
                           "-r", str(reqs)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Dry run: would have audited" in done.stderr + done.stdout
