"""Interaction state and continue-score rules (pure functions, injected time)."""

from __future__ import annotations

from persona_mcp.conversation import flow
from persona_mcp.personas.interest import NEUTRAL_INTEREST, topic_interest
from persona_mcp.personas.state import StateValues, after_exchange, mood, recovered


def fresh(**kw: float) -> StateValues:
    values = {
        "social_energy": 90.0,
        "available_time": 120.0,
        "interaction_fatigue": 0.0,
        "current_priority": "normal",
        "last_interaction": None,
        "rest_energy": 90.0,
        "rest_time": 120.0,
    }
    values.update(kw)
    return StateValues(**values)  # type: ignore[arg-type]


def test_an_exchange_costs_energy_and_time_and_adds_fatigue() -> None:
    after = after_exchange(fresh(), "a fairly ordinary message", 0.4, now=1000.0)
    assert after.social_energy < 90
    assert after.available_time < 120
    assert after.interaction_fatigue > 0
    assert after.last_interaction == 1000.0


def test_dull_topics_tire_more_than_loved_ones() -> None:
    dull = after_exchange(fresh(), "tell me about taxes", 0.0, now=1.0)
    loved = after_exchange(fresh(), "tell me about music", 1.0, now=1.0)
    assert loved.social_energy > dull.social_energy


def test_rest_recovers_state_towards_the_persona_resting_values() -> None:
    tired = fresh(social_energy=40.0, interaction_fatigue=60.0, available_time=10.0,
                  last_interaction=0.0)  # fmt: skip
    rested = recovered(tired, now=10 * 3600.0)
    assert rested.social_energy == 90.0
    assert rested.interaction_fatigue == 0.0
    assert rested.available_time == 120.0
    partly = recovered(tired, now=3600.0)
    assert 40.0 < partly.social_energy < 90.0


def test_continue_score_stays_in_range_and_falls_as_the_persona_tires() -> None:
    eager = flow.continue_score(fresh(), 0.9, turns=1)
    spent = flow.continue_score(
        fresh(social_energy=5.0, interaction_fatigue=95.0, available_time=0.0), 0.1, turns=80
    )
    assert 0.0 <= spent < eager <= 1.0
    assert flow.response_type(eager) == "continue"
    assert flow.response_type(spent) == "end"


def test_topic_interest_matches_related_words_and_defaults_to_neutral() -> None:
    prefs = {"music": 0.95, "stories": 0.9, "mathematics": 0.2}
    assert topic_interest("Play me a melody on your lute", prefs)[0] == 0.95
    assert topic_interest("I love a good story", prefs)[1] == ["stories"]
    assert topic_interest("what about the weather", prefs)[0] == NEUTRAL_INTEREST


def test_mood_reflects_energy_fatigue_and_tone() -> None:
    assert mood(fresh()) == "cheerful"
    assert mood(fresh(interaction_fatigue=80.0)) == "exhausted"
    assert mood(fresh(social_energy=50.0), valence=-0.8) == "concerned"
