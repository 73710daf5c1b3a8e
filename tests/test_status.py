"""`scaling-train status`: an unreadable record is one line, not a traceback."""

import pytest

from scaling import results
from scaling.status import main


@pytest.mark.parametrize(
    "content", [b'{"status": "compl', b"", b"\xff\xfe\x00", b'[{"status": "completed"}]']
)
def test_status_over_an_unreadable_summary_says_which_file_in_one_line(tmp_path, capsys, content):
    sweep = tmp_path / "smoke"
    results.write_summary(sweep / "0123456789ab", {"status": "completed", "final_val_loss": 2.0})
    (sweep / "ba9876543210").mkdir()
    (sweep / "ba9876543210" / "summary.json").write_bytes(content)

    assert main([str(sweep)]) == 1
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and out.out == ""
    assert str(sweep / "ba9876543210" / "summary.json") in lines[0]
    assert "delete it to retrain this run" in lines[0]


def test_status_of_readable_records_still_prints_the_table(tmp_path, capsys):
    sweep = tmp_path / "smoke"
    results.write_summary(sweep / "0123456789ab", {"status": "completed", "final_val_loss": 2.0})
    assert main([str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "0123456789ab  completed" in out and "2.0000" in out and "1 completed" in out
