"""Progress bars: drawn on a terminal, never into a log file."""

import io

from stconv import cli
from stconv.outputs import progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_is_drawn_on_a_terminal_only(monkeypatch):
    for stream, drawn in ((Terminal(), True), (io.StringIO(), False)):
        monkeypatch.setattr("sys.stderr", stream)
        assert list(progress_bar(range(3), desc="counting")) == [0, 1, 2]
        assert ("\r" in stream.getvalue()) is drawn
        assert ("counting" in stream.getvalue()) is drawn
    stream = Terminal()
    monkeypatch.setattr("sys.stderr", stream)
    assert list(progress_bar(range(3), show=False)) == [0, 1, 2]
    assert stream.getvalue() == ""


def test_a_log_file_gets_one_line_per_epoch_and_no_frames(tmp_path, capsys):
    """Training with its output redirected (here captured: no terminal)."""
    argv = [
        "train", "--workdir", str(tmp_path / "run"), "--dataset", "synthetic",
        "--num-layers", "1", "--hidden-dim", "2", "--kernel-size", "3", "--batch-size", "16",
        "--forecast-samples", "0", "--no-maps", "--epochs", "2",
    ]  # fmt: skip
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    log = captured.out + captured.err
    assert "\r" not in log
    epochs = [line for line in log.splitlines() if line.startswith("epoch ")]
    assert [line.split(":")[0].split() for line in epochs] == [["epoch", "1"], ["epoch", "2"]]
