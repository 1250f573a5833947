"""OAuth tokens kept between syncs: a JSON file readable only by its owner, replaced atomically.

amoCRM hands out a new refresh token with every refresh and the old one stops working, so the
new one must be on disk before it is used: losing it means a person has to authorise the
integration again. The file sits next to the sync state (inside the store folder) with mode
0600; it is written to a temporary file (also 0600 from its first byte) and renamed over the
old one, so a crash leaves either the old or the new tokens, never half a file.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class Tokens:
    access_token: str
    refresh_token: str
    expires_at: float  # unix seconds; 0 = unknown (refresh on the first 401)


class TokenFile:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> Tokens | None:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return Tokens(str(raw["access_token"]), str(raw["refresh_token"]), float(raw.get("expires_at") or 0))

    def save(self, tokens: Tokens) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # an old .tmp left with wider bits
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(asdict(tokens), f)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, self.path)
