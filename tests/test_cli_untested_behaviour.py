"""What a mutation audit of ``cli.py`` found no test for: each test here fails with the
mutant it names applied (58 hand-made mutants; the ones that survived the suite and change
what a user sees), and two defects it found on the way (``slice --lr`` read names in one
case only; ``serve --host ::1`` printed ``http://::1:8000/`` and probed an IPv4 socket)."""

from __future__ import annotations

import argparse
import socket
import types

import pytest

from optimlab import cli
from optimlab.cli import main

pytestmark = pytest.mark.usefixtures("catalog_cache")


def _rows(out: str) -> list[str]:
    return [line.split()[0] for line in out.splitlines()[2:] if line.strip()]


def test_list_and_its_markdown_are_each_their_own(capsys):
    # mutant: the cache's "list" and "list_markdown" tables swapped
    assert main(["list"]) == 0
    plain = capsys.readouterr().out
    assert not plain.startswith("|") and plain.split()[0] == "name"
    assert main(["list", "--markdown"]) == 0
    markdown = capsys.readouterr().out
    assert markdown.startswith("| name | class |")
    # mutant: the paper's link dropped from the markdown table
    assert "](https://arxiv.org/abs/1412.6980)" in markdown


def test_list_shows_an_alias_in_its_optimizers_row_not_its_own(capsys):
    # mutant: aliases (gd, momentum, nag, amsgrad) listed as rows of their own
    assert main(["list"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert "adam" in rows and "sgd" in rows
    assert not {"gd", "momentum", "nag", "amsgrad"} & set(rows)


def test_the_catalog_commands_take_names_in_any_case_and_suggest_close_ones(capsys):
    # mutant: the cached lookup no longer lower-cases the name
    assert main(["explain", "Adam"]) == 0
    assert capsys.readouterr().out.startswith("adam: optimlab.Adam")
    assert main(["compare", "SGD", "Adam"]) == 0
    capsys.readouterr()
    # mutant: the "did you mean" hint dropped on the cached path
    assert main(["explain", "adamm"]) == 2
    assert "did you mean adam" in capsys.readouterr().err


def test_markdown_cells_escape_a_bar_and_a_missing_year_is_a_dash():
    # mutants: "|" left as it is (a plugin's text would split the row); "?" for no year
    assert "x\\|y" in cli.render_table(["a"], [["x|y"]], markdown=True)
    assert cli._year(types.SimpleNamespace(year=None)) == "-"
    assert cli._year(types.SimpleNamespace(year=2014)) == "2014"


def test_lrs_auto_is_read_in_any_case():
    # mutant: only "auto" exactly
    assert cli._lrs(" AUTO ", argparse.Namespace(no_limits=False)) is None


def test_a_target_of_zero_accuracy_is_allowed_and_below_zero_refused():
    accuracy = types.SimpleNamespace(metric="accuracy", name="t")
    cli._check_target(0.0, accuracy)  # mutant: 0 < target refused 0
    cli._check_target(1.0, accuracy)
    with pytest.raises(cli.CLIError, match="out of reach"):
        cli._check_target(-0.01, accuracy)


def test_a_point_of_six_coordinates_is_shown_whole_and_of_seven_cut():
    # mutant: len(values) >= most cut a six-coordinate start
    assert cli._point_text(range(6)) == "(0, 1, 2, 3, 4, 5)"
    assert "... 7 coordinates" in cli._point_text(range(7))


def test_address_without_the_ray_executor_is_refused(tmp_path, capsys):
    # mutant: --address ignored where --executor is local
    assert main(["bench", "digits", "--optimizers", "sgd", "--address", "h:1",
                 "--db", str(tmp_path / "r.db")]) == 2
    assert "needs --executor ray" in capsys.readouterr().err
    assert not (tmp_path / "r.db").exists()


def test_a_noisy_race_says_its_noise_in_its_heading(capsys):
    # mutant: ", noise 0.1" dropped from the heading
    assert main(["race", "rosenbrock", "--optimizers", "sgd", "--steps", "3",
                 "--noise", "0.1"]) == 0
    assert ", noise 0.1" in capsys.readouterr().out.splitlines()[0]


def test_the_race_path_bound_counts_the_start_point(monkeypatch, capsys):
    # mutant: steps x runs x dim, not (steps + 1): (15 + 1) x 1 x 2 = 32 > 30
    monkeypatch.setattr(cli, "RACE_MAX_VALUES", 30)
    assert main(["race", "rosenbrock", "--optimizers", "sgd", "--steps", "15"]) == 2
    assert "30" in capsys.readouterr().err
    assert main(["race", "rosenbrock", "--optimizers", "sgd", "--steps", "14"]) == 0  # 30


def test_a_tuned_race_path_bound_counts_the_grids_extension(monkeypatch, capsys):
    """--tune was counted as the 17 grid points, while each optimizer's grid may grow by 12
    rates past an edge (three rounds of four), all of whose paths are kept: (10 + 1) x 29 x 2
    = 638 path values, above a bound of 500 that 17 points (374) fit."""
    monkeypatch.setattr(cli, "RACE_MAX_VALUES", 500)
    assert main(["race", "rosenbrock", "--optimizers", "sgd", "--steps", "10", "--tune"]) == 2
    err = capsys.readouterr().err
    assert "(with --tune 29 runs an optimizer: its grid and the extension's rates)" in err
    assert "500" in err
    monkeypatch.setattr(cli, "RACE_MAX_VALUES", 638)
    assert main(["race", "rosenbrock", "--optimizers", "sgd", "--steps", "10", "--tune"]) == 0


def test_a_gif_to_a_device_is_refused(capsys):
    # mutant: a device, FIFO or descriptor written to as a file
    assert main(["race", "rosenbrock", "--optimizers", "sgd", "--steps", "2",
                 "--gif", "/dev/null"]) == 2
    assert "not a regular file" in capsys.readouterr().err


def test_slice_lr_names_optimizers_in_any_case_as_race_does(monkeypatch):
    """``optimlab slice digits --lr Adam=0.01`` said "--lr names Adam, not among the
    optimizers (sgd, momentum, adam, sam)"; ``race --lr Adam=0.01`` took it."""
    import optimlab.bench.slices as slices

    given = {}

    class Stop(Exception):
        pass

    def slice_landscape(task, model, optimizers, **kwargs):
        given.update(optimizers)
        raise Stop

    monkeypatch.setattr(slices, "slice_landscape", slice_landscape)
    # stopped where training would start (an "internal error" line: the stand-in's Stop)
    assert main(["slice", "digits", "--optimizers", "sgd,adam", "--lr", "Adam=0.01",
                 "--steps", "2"]) == 1
    assert given["adam"]["lr"] == 0.01


def test_serve_on_an_ipv6_host_probes_ipv6_and_prints_a_bracketed_url(monkeypatch, tmp_path,
                                                                     capsys):
    """``--host ::1`` probed the port with an IPv4 socket (refused as a bad address) and
    printed ``http://::1:8000/``, which no browser opens."""
    families = []

    class Probe:
        family = socket.AF_INET6

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def getsockname(self):
            return ("::1", 8123, 0, 0)

    def create_server(address, family=socket.AF_INET, **kwargs):
        families.append((address, family))
        return Probe()

    monkeypatch.setattr(socket, "create_server", create_server)
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [])
    monkeypatch.setattr("optimlab.web.server.serve", lambda **kw: None)
    assert main(["serve", "--host", "::1", "--port", "0", "--db", str(tmp_path / "r.db")]) == 0
    assert families == [(("::1", 0), socket.AF_INET6)]
    assert "http://[::1]:8123/" in capsys.readouterr().err


def test_race_refuses_a_standard_library_function_as_a_landscape_without_importing_it(capsys):
    """``optimlab race os:abort`` imported os and called abort (the process died), where
    ``optimlab bench os:abort`` refuses a standard module for a task."""
    for spec in ("os:abort", "antigravity:fly"):
        assert main(["race", spec, "--optimizers", "adam"]) == 2
        err = capsys.readouterr().err
        assert f"{spec} is in Python's standard library, not a landscape" in err
    assert "antigravity" not in __import__("sys").modules


def test_a_default_output_name_is_one_file_whatever_the_landscapes_name(tmp_path):
    """A landscape of one's own named "my/bowl:v2" made race-my/bowl:v2.png: a folder that
    does not exist (found after the race ran), and on Windows a colon's NTFS stream."""
    path = cli.out_file(str(tmp_path) + "/", "--out", "race-my/bowl:v2", (".png",))
    assert path == tmp_path / "race-my-bowl-v2.png"
