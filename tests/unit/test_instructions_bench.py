"""The instruction benchmark's reading of callgrind's dumps and its table."""

from __future__ import annotations

from pathlib import Path

from benchmarks.instructions_bench import dumped_instructions, rows


def test_each_dump_of_the_function_is_read_and_other_files_are_not(tmp_path: Path) -> None:
    """One dump per process of the function (master and worker), by its ``summary``
    line; the end-of-run files without a part number and other functions' are ignored."""
    (tmp_path / "callgrind.forward.101.1").write_text("version: 1\nsummary: 2750\n")
    (tmp_path / "callgrind.forward.102.1").write_text("events: Ir\ntotals: 512000000\n")
    (tmp_path / "callgrind.forward.102").write_text("summary: 999999999999\n")
    (tmp_path / "callgrind.resolve.103.1").write_text("summary: 7\n")
    totals = dumped_instructions(tmp_path, "callgrind.forward")
    assert sorted(totals) == [2750, 512_000_000]


def test_each_function_is_compared_with_the_framework_floor() -> None:
    result = {
        "floor": {"millions_per_event": 1.5},
        "resolve": {"millions_per_event": 4.5},
        "forward": {"millions_per_event": 3.0},
    }
    table = {row.figure.split(",")[0]: row for row in rows(result)}
    assert (table["resolve function"].baseline, table["resolve function"].ours) == (1.5, 4.5)
    assert table["resolve function"].ratio == 3.0
    assert table["forward function"].ratio == 2.0


def test_a_machine_without_valgrind_gets_a_row_that_says_so() -> None:
    (row,) = rows({"skipped": "valgrind is not installed"})
    assert row.figure == "valgrind is not installed"
