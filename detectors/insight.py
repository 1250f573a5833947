"""The Insight record: what every detector returns and every later layer consumes.

Identity is the detector plus the subject ids (like Alertmanager's label hash): numbers and
words change from day to day, the fingerprint must not, or dedup and snooze break.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Severity = Literal["info", "warning", "critical"]
Role = Literal["manager", "director"]
SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True)
class Audience:
    role: Role
    manager_id: str | None = None  # set when the insight concerns one manager's deals/clients


def make_fingerprint(detector: str, subject: dict[str, Any]) -> str:
    """Stable 16-hex id from the detector name and the subject ids only."""
    canonical = json.dumps(
        {"detector": detector, "subject": {k: str(v) for k, v in sorted(subject.items()) if v is not None}},
        sort_keys=True, ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


@dataclass
class Insight:
    detector: str
    severity: Severity
    audience: Audience
    subject: dict[str, Any]  # canonical ids: deal_id, client_id, manager_id, stage, from_stage, to_stage, segment...
    facts: dict[str, Any]  # the numbers (and CRM names) the words are made of; JSON-serialisable
    evidence: dict[str, list[str]] = field(default_factory=dict)  # {"deal_ids": [...], "email_ids": [...]}
    fingerprint: str = ""

    def __post_init__(self) -> None:
        if self.severity not in SEVERITY_RANK:
            raise ValueError(f"severity must be one of {list(SEVERITY_RANK)}, got {self.severity!r}")
        if not self.fingerprint:
            self.fingerprint = make_fingerprint(self.detector, self.subject)

    @property
    def severity_rank(self) -> int:
        return SEVERITY_RANK[self.severity]

    def to_dict(self, text: str | None = None) -> dict[str, Any]:
        """The JSON shape of `crm-pulse scan --format json` (DESIGN.md)."""
        out = {
            "detector": self.detector,
            "fingerprint": self.fingerprint,
            "severity": self.severity,
            "audience": asdict(self.audience),
            "subject": self.subject,
            "facts": self.facts,
            "evidence": self.evidence,
        }
        if text is not None:
            out["text"] = text
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Insight":
        return cls(
            detector=d["detector"], severity=d["severity"], audience=Audience(**d["audience"]),
            subject=dict(d["subject"]), facts=dict(d["facts"]), evidence={k: list(v) for k, v in d.get("evidence", {}).items()},
            fingerprint=d.get("fingerprint", ""),
        )
