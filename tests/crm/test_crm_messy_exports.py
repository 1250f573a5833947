"""What hand-made exports of a real Kazakh admin tripped over: each case as the admin met it."""
from __future__ import annotations

import pytest
from crm_exports import DEALS, MANAGERS, write

from crm.errors import DataError
from crm.load import load_crm, load_folder
from crm.source_config import SourceConfig


# --- where the data folder is --------------------------------------------------------------

def test_source_path_naming_a_file_says_it_is_a_file_and_gives_its_folder(tmp_path):
    folder = write(tmp_path / "export", {"managers.csv": MANAGERS, "deals.csv": DEALS})
    with pytest.raises(DataError) as err:
        load_crm(SourceConfig(path="export/deals.csv"), base_dir=tmp_path)
    text = str(err.value)
    assert "is a file, not a folder" in text and "does not exist" not in text
    assert repr(str(folder)) in text  # the folder to give instead


def test_unset_path_says_the_config_folder_was_read(tmp_path):
    write(tmp_path, {"config.toml": "", "managers.csv": MANAGERS})
    with pytest.raises(DataError) as err:
        load_crm(SourceConfig(), base_dir=tmp_path)
    text = str(err.value)
    assert "no deals file" in text
    assert "[source] path is unset, so the folder of the config file itself was read" in text


def test_set_path_does_not_talk_about_an_unset_path(tmp_path):
    write(tmp_path / "export", {"managers.csv": MANAGERS})
    with pytest.raises(DataError) as err:
        load_crm(SourceConfig(path="export"), base_dir=tmp_path)
    assert "no deals file" in str(err.value) and "unset" not in str(err.value)


@pytest.mark.parametrize("content", [b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64,
                                     b"<html><body><table><tr><td>deal_id</td></tr></table></body></html>"])
def test_an_xls_deals_file_is_named_not_reported_missing(tmp_path, content):
    folder = write(tmp_path, {"managers.csv": MANAGERS, "deals.xls": content})
    with pytest.raises(DataError) as err:
        load_folder(folder)
    text = str(err.value)
    assert text.startswith("deals.xls: old Excel .xls files are not read")
    assert "save it as deals.xlsx or deals.csv" in text
    assert "no deals file" not in text
