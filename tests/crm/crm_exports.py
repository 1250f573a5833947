"""Small hand-written CRM exports for the data-layer tests (a uniquely named module: `from
conftest import` would find whichever conftest pytest loaded first)."""
from __future__ import annotations

from pathlib import Path

MANAGERS = "manager_id,name,team\nm1,Анна Петрова,Алматы\nm2,Boris Lee,Астана\n"
DEALS = (
    "deal_id,manager_id,stage,status,created_at,amount,currency\n"
    "d1,m1,Квалификация,open,2026-03-02 10:00,1000,KZT\n"
    "d2,m2,КП,won,2026-03-03 11:30,2500.5,KZT\n"
    "d3,m1,КП,lost,2026-03-04 09:15,,KZT\n"
)
HISTORY = (
    "deal_id,stage,entered_at\n"
    "d1,Квалификация,2026-03-02 10:00\n"
    "d2,Квалификация,2026-03-03 11:30\n"
    "d2,КП,2026-03-05 12:00\n"
    "d3,Квалификация,2026-03-04 09:15\n"
    "d3,КП,2026-03-06 16:00\n"
)


def write(folder: Path, files: dict[str, str | bytes], encoding: str = "utf-8") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = folder / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_bytes(content.encode(encoding))
    return folder
