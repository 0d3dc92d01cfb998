"""The design window on hand-built study tables: limits at both ends, empty, open at one end; criteria parsing."""

from __future__ import annotations

import pytest

from twinlab.design_window import design_window, make_criterion, parse_criterion, parse_value
from twinlab.errors import InputError

UNITS = {"density": "g/cm³", "electronic_conductivity": "S/m", "crackable_100_mpa": "%", "q_eff_fraction_2C": "1",
         "porosity": "1"}
X = (2.6, 2.8, 3.0, 3.2, 3.4)
SIGMA = (0.5, 0.9, 1.2, 1.5, 1.8)  # rises with density
CRACK = (0.0, 1.0, 3.0, 4.0, 9.0)  # rises with density
QEFF = (1.0, 1.0, 0.95, 0.85, 0.6)  # falls with density


def table(**overrides):
    rows = [{"density": x, "electronic_conductivity": s, "crackable_100_mpa": c, "q_eff_fraction_2C": q}
            for x, s, c, q in zip(X, SIGMA, CRACK, QEFF)]
    for key, values in overrides.items():
        for row, v in zip(rows, values):
            row[key] = v
    return rows[::-1]  # unsorted on purpose: the window sorts by x


def window(rows, *texts):
    return design_window(rows, [parse_criterion(t, UNITS) for t in texts], x_key="density", x_unit="g/cm³")


def test_criteria_limit_both_ends():
    w = window(table(), "electronic_conductivity>=1 S/m", "crackable_100_mpa<=5%")
    assert (w.low, w.high, w.members) == (3.0, 3.2, (3.0, 3.2))
    (low,), (high,) = w.low_limit, w.high_limit
    assert (low["key"], low["at"], low["value"]) == ("electronic_conductivity", 2.8, 0.9)
    assert low["deviation"] == pytest.approx(0.1)
    assert (high["key"], high["at"], high["value"]) == ("crackable_100_mpa", 3.4, 9.0)
    assert high["deviation"] == pytest.approx(4.0)
    line = w.line()
    assert "\n" not in line
    assert line.startswith("design window: 3–3.2 g/cm³ (2 of 5 members)")
    assert "low end limited by electronic_conductivity ≥ 1 S/m (0.9 at 2.8)" in line
    assert "high end limited by crackable_100_mpa ≤ 5 % (9 at 3.4)" in line


def test_two_criteria_fail_at_the_same_end():
    w = window(table(), "crackable_100_mpa<=5", "q_eff_fraction_2C>=0.9")
    assert (w.low, w.high) == (2.6, 3.0)
    assert {r["key"] for r in w.high_limit} == {"q_eff_fraction_2C"}  # at 3.2 only Q_eff fails (crack 4 ≤ 5)
    w = window(table(), "crackable_100_mpa<=3.5", "q_eff_fraction_2C>=0.9")
    assert {r["key"] for r in w.high_limit} == {"crackable_100_mpa", "q_eff_fraction_2C"}


def test_empty_window():
    w = window(table(), "electronic_conductivity>=1", "crackable_100_mpa<=0.5")
    assert w.empty and w.low is None and w.members == ()
    assert w.line() == ("design window: empty — no member meets every criterion (electronic_conductivity ≥ 1 S/m "
                        "holds on 3 of 5, crackable_100_mpa ≤ 0.5 % holds on 1 of 5)")


def test_window_open_at_one_end():
    w = window(table(), "crackable_100_mpa<=5 %")
    assert (w.low, w.high) == (2.6, 3.2)
    assert w.low_limit is None and w.high_limit[0]["key"] == "crackable_100_mpa"
    assert "low end open" in w.line()
    w = window(table(), "electronic_conductivity>=1")
    assert (w.low, w.high, w.high_limit) == (3.0, 3.4, None)
    assert "high end open" in w.line()


def test_longest_run_wins_and_the_rest_is_noted():
    w = window(table(q_eff_fraction_2C=(0.95, 0.5, 0.95, 0.95, 0.95)), "q_eff_fraction_2C>=0.9")
    assert (w.low, w.high) == (3.0, 3.4)
    assert w.low_limit[0]["at"] == 2.8 and "also pass at density = 2.6" in w.note


def test_a_value_not_computed_fails_its_criterion():
    w = window(table(electronic_conductivity=(None, 1.5, 1.5, 1.5, 1.5)), "electronic_conductivity>=1")
    assert (w.low, w.high) == (2.8, 3.4)
    assert w.low_limit[0]["value"] is None and "not computed at 2.6" in w.line()


def test_inf_and_nan_values():
    w = window(table(electronic_conductivity=(float("nan"), 2, 2, 2, 2)), "electronic_conductivity>=1")
    assert w.low == 2.8
    w = design_window([{"density": 1.0, "tortuosity_factor": float("inf")}, {"density": 2.0, "tortuosity_factor": 3}],
                      [make_criterion("tortuosity_factor", "max", 5, {"tortuosity_factor": "1"})],
                      x_key="density", x_unit="g/cm³")
    assert (w.low, w.high) == (2.0, 2.0) and "2 g/cm³ only" in w.line()


def test_values_with_units():
    assert parse_value("90%", "1", what="x") == pytest.approx(0.9)
    assert parse_value("0.9", "1", what="x") == 0.9
    assert parse_value("5", "%", what="x") == 5.0
    assert parse_value("10 mS/cm", "S/m", what="x") == pytest.approx(1.0)
    assert parse_value("1 S m⁻¹", "S/m", what="x") == 1.0
    assert parse_value("2 um", "µm", what="x") == 2.0


def test_unknown_quantity():
    with pytest.raises(InputError, match="unknown quantity 'crackable'.*crackable_100_mpa"):
        parse_criterion("crackable<=5", UNITS)


def test_wrong_unit():
    with pytest.raises(InputError, match=r"unit 'S/m' does not fit this quantity, which is in %"):
        parse_criterion("crackable_100_mpa<=5 S/m", UNITS)


def test_bad_criterion_syntax():
    with pytest.raises(InputError, match="must read QUANTITY<=VALUE"):
        parse_criterion("crackable_100_mpa < 5", UNITS)
    with pytest.raises(InputError, match="is not a number"):
        parse_criterion("porosity>=lots", UNITS)
