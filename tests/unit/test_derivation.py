"""RAT-1..RAT-3: deriving the initial summary rating from element levels and weights."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.errors import RuleViolation
from ledger.policies.common import (
    RAT_1_POINTS,
    Derivation,
    derive_summary,
    rat_3_level_for_score,
)
from tests.unit.domain_builders import BASIC_WEIGHTS

CODES = list(BASIC_WEIGHTS)


def _derive(weights: tuple[int, ...], levels: tuple[int, ...]) -> Derivation:
    return derive_summary(
        dict(zip(CODES, levels, strict=True)), dict(zip(CODES, weights, strict=True))
    )


def test_rat_3_seed_worked_example_gives_400_level_4() -> None:
    """Seed 003: levels 4,5,3,4,4 x weights 15,15,15,15,40 = 60+75+45+60+160 = 400, Level 4."""
    assert _derive((15, 15, 15, 15, 40), (4, 5, 3, 4, 4)) == Derivation(400, 4)


@pytest.mark.parametrize(
    ("weights", "levels", "score", "level"),
    [
        ((5, 5, 5, 5, 80), (2, 3, 5, 5, 5), 475, 5),
        ((12, 12, 12, 14, 50), (4, 5, 5, 4, 5), 474, 4),
        ((15, 15, 15, 15, 40), (2, 4, 5, 5, 4), 400, 4),
        ((11, 13, 17, 19, 40), (2, 4, 4, 3, 5), 399, 3),
        ((15, 15, 15, 15, 40), (2, 2, 3, 5, 3), 300, 3),
        ((11, 13, 17, 19, 40), (2, 2, 2, 3, 4), 299, 2),
        ((15, 15, 15, 15, 40), (2, 2, 2, 2, 2), 200, 2),
        ((15, 15, 15, 15, 40), (5, 5, 5, 5, 5), 500, 5),
    ],
)
def test_rat_3_score_thresholds(
    weights: tuple[int, ...], levels: tuple[int, ...], score: int, level: int
) -> None:
    """RAT-3: 475-500 L5, 400-474 L4, 300-399 L3, 200-299 L2, at each boundary."""
    assert _derive(weights, levels) == Derivation(score, level)


@pytest.mark.parametrize(
    ("score", "level"),
    [
        (500, 5),
        (475, 5),
        (474, 4),
        (400, 4),
        (399, 3),
        (300, 3),
        (299, 2),
        (200, 2),
        (199, 1),
        (0, 1),
    ],
)
def test_rat_3_level_for_score_boundaries(score: int, level: int) -> None:
    """RAT-3; below 200 rules.md is silent and the model system gives Level 1."""
    assert rat_3_level_for_score(score) == level


@pytest.mark.parametrize("position", range(5))
def test_rat_2_any_element_at_level_1_gives_level_1(position: int) -> None:
    """RAT-2: one Level 1 element makes the summary Level 1, however high the score."""
    levels = [5, 5, 5, 5, 5]
    levels[position] = 1
    derived = _derive((15, 15, 15, 15, 40), tuple(levels))
    assert derived.summary_level == 1
    assert derived.score == 500 - 5 * (15, 15, 15, 15, 40)[position]


@pytest.mark.parametrize("bad", [0, 6, -1, True, "3", 3.0])
def test_rat_1_refuses_levels_outside_1_to_5(bad: object) -> None:
    levels: dict[str, object] = dict.fromkeys(CODES, 3)
    levels["leading_people"] = bad
    with pytest.raises(RuleViolation, match="RAT-1: the level of leading_people"):
        derive_summary(levels, BASIC_WEIGHTS)  # type: ignore[arg-type]


def test_rat_1_refuses_missing_and_unknown_elements() -> None:
    levels = dict.fromkeys(CODES[:-1], 3) | {"faithful_administration": 3}
    with pytest.raises(RuleViolation, match="RAT-1.*missing results_driven.*faithful_admin"):
        derive_summary(levels, BASIC_WEIGHTS)


def test_rat_1_refuses_an_element_not_in_the_plan_when_none_is_missing() -> None:
    """RAT-1: every plan element rated, plus one the plan does not have: refused."""
    levels = dict.fromkeys(CODES, 3) | {"faithful_administration": 3}
    with pytest.raises(RuleViolation, match="RAT-1.*not in the plan: faithful_administration"):
        derive_summary(levels, BASIC_WEIGHTS)


def test_rat_1_points_table() -> None:
    """RAT-1: L5=5, L4=4, L3=3, L2=2, L1=0."""
    assert dict(RAT_1_POINTS) == {5: 5, 4: 4, 3: 3, 2: 2, 1: 0}


@st.composite
def _weights(draw: st.DrawFn) -> tuple[int, ...]:
    """Five non-negative integer weights summing to 100."""
    cuts = sorted(draw(st.lists(st.integers(0, 100), min_size=4, max_size=4)))
    bounds = [0, *cuts, 100]
    return tuple(b - a for a, b in zip(bounds, bounds[1:], strict=False))


_LEVELS = st.tuples(*[st.integers(1, 5)] * 5)


@given(weights=_weights(), levels=_LEVELS)
def test_rat_1_to_3_derivation_properties(
    weights: tuple[int, ...], levels: tuple[int, ...]
) -> None:
    """RAT-1..RAT-3: score in 0..500; any L1 -> Level 1; otherwise the level of the score."""
    derived = _derive(weights, levels)
    assert 0 <= derived.score <= 500
    assert derived.score == sum(RAT_1_POINTS[lv] * w for lv, w in zip(levels, weights, strict=True))
    if 1 in levels:
        assert derived.summary_level == 1
    else:
        assert derived.score >= 200
        assert derived.summary_level == rat_3_level_for_score(derived.score)


@given(weights=_weights(), levels=_LEVELS, position=st.integers(0, 4))
def test_rat_3_derivation_is_monotonic_in_each_element(
    weights: tuple[int, ...], levels: tuple[int, ...], position: int
) -> None:
    """Raising one element's level never lowers the score or the summary level."""
    if levels[position] == 5:
        return
    better = list(levels)
    better[position] += 1
    before, after = _derive(weights, levels), _derive(weights, tuple(better))
    assert after.score >= before.score
    assert after.summary_level >= before.summary_level
