"""Expressions are JMESPath, evaluated safely: a definition can never make the engine run code."""

import re
from pathlib import Path
from typing import Any

import pytest
from jmespath.functions import Functions

from sagas import DefinitionError, SagaError, parse_definition
from sagas.definitions import evaluate
from sagas.definitions.expressions import ExpressionError, compile_expression, is_truthy

ORDER = {
    "orderId": "o-1",
    "customer": {"name": "Ada", "address": {"city": "Zürich"}},
    "items": [{"sku": "a", "qty": 1, "price": 5}, {"sku": "b", "qty": 3, "price": 7}],
    "total": 26,
    "car": None,
}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("orderId", "o-1"),
        ("customer.address.city", "Zürich"),
        ("items[1].sku", "b"),
        ("items[?qty > `1`].sku", ["b"]),
        ("{orderId: orderId, skus: items[].sku}", {"orderId": "o-1", "skus": ["a", "b"]}),
        ("sum(items[].price)", 12),
        ("length(items)", 2),
        ("total > `2000`", False),
        ("car != null", False),
        ("missing", None),
        ("missing.deeper", None),
        ('`"literal"`', "literal"),
    ],
)
def test_expression_is_evaluated_as_jmespath(expression: str, expected: Any) -> None:
    assert evaluate(expression, ORDER) == expected


def test_an_expression_that_fails_on_its_data_names_the_expression() -> None:
    with pytest.raises(ExpressionError, match=r"^expression 'length\(total\)' failed: ") as raised:
        evaluate("length(total)", ORDER)
    assert isinstance(raised.value, SagaError)


@pytest.mark.parametrize(
    ("value", "truthy"),
    [
        (None, False),
        (False, False),
        ("", False),
        ([], False),
        ({}, False),
        (True, True),
        (0, True),
        (0.0, True),
        ("false", True),
        ([None], True),
        ({"a": None}, True),
    ],
)
def test_truthiness_follows_jmespath_not_python(value: Any, truthy: bool) -> None:
    assert is_truthy(value) is truthy


def test_a_when_condition_decides_by_jmespath_truthiness() -> None:
    assert not is_truthy(evaluate("car", ORDER))
    assert is_truthy(evaluate("items[?qty > `2`]", ORDER))
    assert not is_truthy(evaluate("items[?qty > `5`]", ORDER))


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("a[", "invalid expression 'a[': the expression ends too early at column 3"),
        ("amount >", "invalid expression 'amount >': the expression ends too early at column 9"),
        ("a b", "invalid expression 'a b': Unexpected token: b at column 3"),
        ("`foo", "invalid expression '`foo': Unclosed ` delimiter at column 1"),
        ("lenght(items)", "invalid expression 'lenght(items)': unknown function lenght()"),
    ],
)
def test_a_syntax_error_names_the_expression_and_where_it_is(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        compile_expression(expression)


@pytest.mark.parametrize("name", sorted(Functions().FUNCTION_TABLE))
def test_every_jmespath_function_is_allowed(name: str) -> None:
    assert compile_expression(f"{name}(@)").parsed["value"] == name


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os').system('touch pwned')",
        "eval('1')",
        'exec(`"import os"`)',
        'items[?open(`"pwned"`)]',
    ],
)
def test_a_python_call_in_an_expression_is_refused_when_the_definition_loads(
    expression: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    text = f"name: s\ntrigger: T\ncorrelation: {expression!r}\nsteps:\n  - name: w\n    delay: 1s\n"
    with pytest.raises(DefinitionError) as raised:
        parse_definition(text, "evil.yaml")
    [problem] = raised.value.problems
    assert (problem.line, problem.field) == (3, "correlation")
    assert problem.message.startswith(f"invalid expression {expression!r}: unknown function ")
    assert list(tmp_path.iterdir()) == []


def test_an_expression_sees_only_data_never_python_attributes() -> None:
    class Secret:
        password = "hunter2"

    assert evaluate("password", Secret()) is None
    assert evaluate("__class__", ORDER) is None
    assert evaluate("items.__len__", ORDER) is None


def test_an_empty_expression_is_refused() -> None:
    text = "name: s\ntrigger: T\ncorrelation: '  '\nsteps:\n  - name: w\n    delay: 1s\n"
    with pytest.raises(DefinitionError) as raised:
        parse_definition(text, "blank.yaml")
    assert [str(p) for p in raised.value.problems] == [
        "blank.yaml:3: correlation: an expression cannot be empty"
    ]
