"""The quickstart demo on the embedded dataset."""

from stconv import demo


def test_demo_runs(capsys):
    demo.main(["--steps", "2", "--batch-size", "2", "--num-layers", "1", "--hidden-dim", "2"])
    out = capsys.readouterr().out
    assert "air_temperature" in out and "135 training windows of 5 -> 5 years" in out
    assert "forward: (2, 5, 37, 49, 1) -> (2, 5, 37, 49, 1)" in out
    assert "train step   2: loss" in out
