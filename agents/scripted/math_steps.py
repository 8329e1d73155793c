"""Worked solutions of integer arithmetic problems: one operation per step, innermost first.

``rlvr/Math-v0``'s arithmetic family asks to "Compute" or "Evaluate" an integer expression
such as ``\\left(5 - 9\\right) \\times 9``. :func:`worked_steps` reads it with the usual
precedence (parentheses, then ``\\times`` and ``\\div`` left to right, then ``+`` and ``-``)
and writes each operation with its result::

    5 - 9 = -4. (-4) \\times 9 = -36.

It reads only what that family writes at the lower levels (non-negative integer literals,
unary minus, ``+ - \\times \\div``, parentheses); anything else (powers, fractions, words)
gives ``None`` and the solver answers directly. Division must be exact.
"""

from __future__ import annotations

import re

_EXPRESSION = re.compile(r"^\s*(?:Compute|Evaluate) \$(?P<tex>[^$]+)\$\.\s*$")
_TOKEN = re.compile(r"\s*(\\left\(|\\right\)|\\times|\\div|\d+|[-+()])")
_OPEN = ("\\left(", "(")
_CLOSE = ("\\right)", ")")


class _Unreadable(ValueError):
    """The expression uses something this reader does not handle."""


def _tokens(tex: str) -> list[str]:
    tokens, position = [], 0
    while position < len(tex):
        if tex[position:].isspace():
            break
        match = _TOKEN.match(tex, position)
        if match is None:
            raise _Unreadable(tex[position:])
        tokens.append(match.group(1))
        position = match.end()
    return tokens


def _operand(value: int) -> str:
    return f"({value})" if value < 0 else str(value)


class _Reader:
    """Recursive descent over the tokens, recording each operation as it is evaluated."""

    def __init__(self, tokens: list[str]):
        self.tokens = tokens
        self.position = 0
        self.steps: list[str] = []

    def peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise _Unreadable("unexpected end")
        self.position += 1
        return token

    def apply(self, left: int, operator: str, right: int) -> int:
        if operator == "+":
            value = left + right
        elif operator == "-":
            value = left - right
        elif operator == "\\times":
            value = left * right
        else:
            if right == 0 or left % right:
                raise _Unreadable("inexact division")
            value = left // right
        self.steps.append(f"{_operand(left)} {operator} {_operand(right)} = {value}")
        return value

    def atom(self) -> int:
        token = self.take()
        if token == "-":
            return -self.atom()
        if token in _OPEN:
            value = self.sum()
            if self.take() not in _CLOSE:
                raise _Unreadable("unbalanced parentheses")
            return value
        if token.isdigit():
            return int(token)
        raise _Unreadable(token)

    def product(self) -> int:
        value = self.atom()
        while self.peek() in ("\\times", "\\div"):
            operator = self.take()
            value = self.apply(value, operator, self.atom())
        return value

    def sum(self) -> int:
        value = self.product()
        while self.peek() in ("+", "-"):
            operator = self.take()
            value = self.apply(value, operator, self.product())
        return value


def worked_steps(problem: str) -> tuple[list[str], int] | None:
    """The operations of an integer arithmetic problem and its value, or ``None`` when the
    problem is not one (or uses something this reader does not handle)."""
    match = _EXPRESSION.match(problem)
    if match is None:
        return None
    try:
        reader = _Reader(_tokens(match.group("tex")))
        value = reader.sum()
    except _Unreadable:
        return None
    if reader.peek() is not None:
        return None
    return reader.steps, value
