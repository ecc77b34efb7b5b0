"""Typed run config and secrets: coercion from --set text, checks, and where secrets come from."""

from __future__ import annotations

from typing import Any

import pytest
from wavecrest.core import ConfigError, parse_workflow
from wavecrest.core._config import parse_assignments, resolve_config, resolve_secrets

WF = parse_workflow(
    """---
name: typed
config:
  text: {type: string, default: hi}
  count: {type: integer, default: 2}
  ratio: {type: number, default: 0.5}
  flag: {type: boolean, default: false}
  items: {type: list, default: []}
  opts: {type: object, default: {}}
  anything: {type: any}
  needed: {type: integer, required: true}
secrets: [API_TOKEN, OTHER]
---
<workflow>
  <transform id="a" type="template" template="x"/>
</workflow>
"""
)


@pytest.mark.parametrize(
    ("key", "text", "value"),
    [
        ("text", "42", "42"),
        ("count", " 7 ", 7),
        ("ratio", "3", 3),
        ("ratio", "2.5", 2.5),
        ("flag", "yes", True),
        ("flag", "OFF", False),
        ("items", "[1, two]", [1, "two"]),
        ("opts", "{a: 1}", {"a": 1}),
        ("anything", "3.0", 3.0),
        ("anything", "free text", "free text"),
    ],
)
def test_set_values_are_coerced_to_the_declared_type(key: str, text: str, value: Any) -> None:
    config = resolve_config(WF, {key: text, "needed": "1"})
    assert config[key] == value
    assert type(config[key]) is type(value)


def test_defaults_fill_what_is_not_given() -> None:
    config = resolve_config(WF, {"needed": 5})
    assert config == {
        "text": "hi",
        "count": 2,
        "ratio": 0.5,
        "flag": False,
        "items": [],
        "opts": {},
        "anything": None,
        "needed": 5,
    }


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (
            {},
            r"missing required config 'needed' \(integer\) for workflow 'typed'; "
            r"give it with --set needed=VALUE",
        ),
        (
            {"needed": 1, "count": "two"},
            "invalid value 'two' for config 'count': expected an integer",
        ),
        (
            {"needed": 1, "flag": "maybe"},
            "invalid value 'maybe' for config 'flag': expected a boolean",
        ),
        ({"needed": 1, "ratio": True}, "invalid value True for config 'ratio': expected a number"),
        ({"needed": 1, "items": "{a: 1}"}, "expected a list"),
        (
            {"needed": 1, "nope": 1},
            "unknown config key 'nope' for workflow 'typed'; known keys: anything, count",
        ),
    ],
)
def test_bad_config_is_refused_with_a_clear_message(given: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_config(WF, given)


def test_assignments_split_on_the_first_equals_sign() -> None:
    assert parse_assignments(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(ConfigError, match="invalid --secret 'oops': expected KEY=VALUE"):
        parse_assignments(["oops"], option="--secret")


def test_secrets_come_from_arguments_first_then_the_environment() -> None:
    env = {"API_TOKEN": "from-env", "OTHER": "o"}
    assert resolve_secrets(WF, {"API_TOKEN": "given"}, env) == {"API_TOKEN": "given", "OTHER": "o"}
    assert resolve_secrets(WF, {}, env) == {"API_TOKEN": "from-env", "OTHER": "o"}
    with pytest.raises(
        ConfigError, match="missing secret 'OTHER': set the environment variable OTHER"
    ):
        resolve_secrets(WF, {}, {"API_TOKEN": "x"})
    with pytest.raises(ConfigError, match="unknown secret 'NOPE' for workflow 'typed'"):
        resolve_secrets(WF, {"NOPE": "x"}, env)
