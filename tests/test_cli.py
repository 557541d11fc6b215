"""The `optimlab` command: list, explain, compare, and one-line errors with exit code 2."""

import subprocess
import sys

import pytest

from optimlab.cli import main


def test_list_prints_every_class(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("adam (amsgrad)", "lamb", "lion", "schedulefreeadamw", "ScheduleFreeAdamW"):
        assert name in out


def test_explain_shows_rule_defaults_and_advice(capsys):
    assert main(["explain", "adam"]) == 0
    out = capsys.readouterr().out
    assert "Kingma & Ba" in out and "https://arxiv.org/abs/1412.6980" in out
    assert "lr=0.001" in out and "betas=(0.9, 0.999)" in out
    assert "\\frac" in out and "typical use" in out


def test_compare_is_the_tutorial_table(capsys):
    assert main(["compare", "sgd", "adagrad", "rmsprop", "adam"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0]
    for column in ("year", "adaptive", "momentum", "extra memory", "bias", "sparse data",
                   "typical use"):
        assert column in out
    lines = out.splitlines()
    separator = next(i for i, line in enumerate(lines) if line.startswith("---"))
    rows = [line.split()[0] for line in lines[separator + 1:] if line and not line.startswith(" ")]
    assert rows == ["sgd", "adagrad", "rmsprop", "adam"], header


def test_compare_markdown(capsys):
    assert main(["compare", "adam", "lion", "--markdown"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| optimizer | year") and len(lines) == 4


@pytest.mark.parametrize("argv", [["explain", "adamm"], ["compare", "sgd", "nope"]])
def test_unknown_optimizer_is_one_error_line(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("optimlab: error: unknown optimizer")


def test_console_entry_point_runs():
    done = subprocess.run([sys.executable, "-m", "optimlab", "explain", "nag"],
                          capture_output=True, text=True, check=True)
    assert "nesterov" in done.stdout
