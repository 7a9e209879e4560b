"""Boolean expressions over attribute names, e.g. "Smiling & ~(Eyeglasses | Male)", that select
the images of a domain from an attribute table: "~" (not) binds tighter than "&" (and), which binds
tighter than "|" (or)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from typing import NoReturn

import numpy as np

from datamodules.celeba import CELEBA_ATTRIBUTES

Mask = Callable[[np.ndarray], np.ndarray]
_TOKENS = re.compile(r"\s*(?:([A-Za-z0-9_]+)|(\S))")  # a name, or any other single character
_OPERATORS = frozenset("~&|()")


class _ExpressionParser:
    """Recursive descent over the tokens of one expression; each rule returns a mask function."""

    def __init__(self, expression: str, names: Sequence[str]) -> None:
        self.expression, self.names = expression, list(names)
        self.tokens: list[tuple[str, int]] = []  # (text, position)
        for match in _TOKENS.finditer(expression):
            name, symbol = match.groups()
            if symbol is not None and symbol not in _OPERATORS:
                self.fail(f"unexpected character {symbol!r} at position {match.start(2)}")
            self.tokens.append((name or symbol, match.start(1) if name else match.start(2)))
        self.position = 0

    def fail(self, problem: str) -> NoReturn:
        raise ValueError(f"attribute expression {self.expression!r}: {problem}")

    def peek(self) -> str | None:
        return self.tokens[self.position][0] if self.position < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        self.position += 1
        return token

    def describe_next(self) -> str:
        if self.position >= len(self.tokens):
            return "end of the expression"
        text, where = self.tokens[self.position]
        return f"{text!r} at position {where}"

    def parse(self) -> Mask:
        if not self.tokens:
            self.fail("it is empty; expected attribute names joined by ~ (not), & (and), | (or) and parentheses")
        mask = self.parse_or()
        if self.peek() == ")":
            self.fail(f"unbalanced parentheses: ')' at position {self.tokens[self.position][1]} has no matching '('")
        if self.peek() is not None:
            self.fail(f"unexpected {self.describe_next()}; expected '&', '|' or the end of the expression")
        return mask

    def parse_or(self) -> Mask:
        terms = [self.parse_and()]
        while self.peek() == "|":
            self.take()
            terms.append(self.parse_and())
        return terms[0] if len(terms) == 1 else lambda values: np.logical_or.reduce([t(values) for t in terms])

    def parse_and(self) -> Mask:
        factors = [self.parse_not()]
        while self.peek() == "&":
            self.take()
            factors.append(self.parse_not())
        return factors[0] if len(factors) == 1 else lambda values: np.logical_and.reduce([f(values) for f in factors])

    def parse_not(self) -> Mask:
        if self.peek() == "~":
            self.take()
            operand = self.parse_not()
            return lambda values: ~operand(values)
        return self.parse_atom()

    def parse_atom(self) -> Mask:
        token = self.peek()
        if token == "(":
            opening = self.tokens[self.position][1]
            self.take()
            inner = self.parse_or()
            if self.peek() is None:
                self.fail(f"unbalanced parentheses: '(' at position {opening} is never closed")
            if self.peek() != ")":
                self.fail(f"unexpected {self.describe_next()}; expected '&', '|' or ')'")
            self.take()
            return inner
        if token is None or token in _OPERATORS:
            self.fail(f"unexpected {self.describe_next()}; expected an attribute name, '~' or '('")
        if token not in self.names:
            close = difflib.get_close_matches(token, self.names, n=3, cutoff=0.6)
            hint = f"did you mean {', '.join(close)}?" if close else f"expected one of {', '.join(self.names)}"
            self.fail(f"unknown attribute {token!r}; {hint}")
        self.take()
        column = self.names.index(token)
        return lambda values: values[:, column]


def parse_attribute_expression(expression: str, names: Sequence[str] = CELEBA_ATTRIBUTES) -> Mask:
    """Compile a boolean expression over attribute names, e.g. "Smiling & ~(Eyeglasses | Male)".

    Operators: ~ (not), & (and), | (or), with that precedence, and parentheses; names are
    [A-Za-z0-9_]+ from `names`. Returns a function mapping bool values [N, len(names)] to a
    bool mask [N]. Raises ValueError naming the expression and the problem.
    """
    mask = _ExpressionParser(expression, names).parse()

    def evaluate(values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=bool)
        if values.ndim != 2 or values.shape[1] != len(names):
            raise ValueError(f"{expression!r}: values of shape {values.shape}; expected [N, {len(names)}]")
        return np.asarray(mask(values), dtype=bool)

    return evaluate
