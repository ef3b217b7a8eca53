"""A safe filter language over index columns, evaluated on a pandas DataFrame.

Python expression syntax, parsed with `ast` and walked by a whitelist (nothing is `eval`ed):
column names, numbers, strings, True/False, comparisons (`< <= > >= == !=`, chained too),
`in` / `not in` a list of constants, `and` / `or` / `not`, `+ - * /` and parentheses.
Comparisons with a null score are false (a clip without an aesthetic head score never
matches `aesthetic >= 4.5`).

The expression is user input, so it is bounded before it is parsed or evaluated: at most
`MAX_EXPRESSION_CHARS` characters and `MAX_DEPTH` levels of nesting (a deep `not not ... x`
would overflow the parser's or this walker's stack), `*` only between numbers (`'x' * 3000000000`
would build a 3 GB string), and any arithmetic error (`1/0`) is a one-line UserError.
"""
from __future__ import annotations

import ast
import difflib
import operator
from typing import Any

import numpy as np
import pandas as pd

from contract.errors import UserError

_COMPARE = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
            ast.Eq: operator.eq, ast.NotEq: operator.ne}
MAX_EXPRESSION_CHARS = 2_000
MAX_DEPTH = 40
_HIDDEN_COLUMNS = ("embedding", "score_names", "params_json")
# `motion`: datasets curated before issue 10 (pixel_motion is the one motion score now)
_EXAMPLE_PREFERENCE = ("pixel_motion", "motion", "sharpness", "aesthetic", "clip_text_similarity", "frames")
_EXAMPLE_RULE = {"pixel_motion": "pixel_motion > 0.01", "frames": "frames >= 16"}
_ARITHMETIC = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_SYMBOL = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}


class ExpressionError(UserError):
    pass


def _shown(expression: str) -> str:
    return repr(expression) if len(expression) <= 80 else repr(expression[:77] + "...")


def example_for(columns: list[str] | None) -> str:
    """A --where example that uses columns this index really has (never one it lacks)."""
    if not columns:
        return "pixel_motion > 0.01"
    numeric = [name for name in _EXAMPLE_PREFERENCE if name in columns]
    if not numeric:
        return f"{columns[0]} == ..."
    parts = [_EXAMPLE_RULE.get(name, f"{name} > 0.3") for name in numeric[:2]]
    return " and ".join(parts)


def _fail(expression: str, message: str, columns: list[str] | None = None) -> ExpressionError:
    return ExpressionError(f"--where {_shown(expression)}: {message}",
                           hint=f'write e.g. "{example_for(columns)}" using index column names')


def _depth(tree: ast.AST) -> int:
    """Nesting depth, walked without recursion (the tree may be deeper than Python's stack)."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            break
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


def parse(expression: str, columns: list[str] | None = None) -> ast.Expression:
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise _fail(expression, f"is {len(expression)} characters long; the limit is {MAX_EXPRESSION_CHARS}", columns)
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as error:
        raise _fail(expression, f"syntax error at column {error.offset}", columns) from None
    except (RecursionError, MemoryError, ValueError):  # "too many nested parentheses" and friends
        raise _fail(expression, f"nests too deeply; the limit is {MAX_DEPTH} levels", columns) from None
    if _depth(tree) > MAX_DEPTH:
        raise _fail(expression, f"nests too deeply; the limit is {MAX_DEPTH} levels", columns)
    return tree


def _is_text(value: Any) -> bool:
    if isinstance(value, (str, bytes)):
        return True
    return isinstance(value, pd.Series) and not (pd.api.types.is_numeric_dtype(value) or pd.api.types.is_bool_dtype(value))


def evaluate(expression: str, frame: pd.DataFrame) -> pd.Series:
    """Boolean mask over `frame`'s rows."""
    columns = [str(c) for c in frame.columns if c not in _HIDDEN_COLUMNS]
    tree = parse(expression, columns)

    def fail(message: str) -> ExpressionError:
        return _fail(expression, message, columns)

    def constant_list(node: ast.AST) -> list[Any]:
        if not isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            raise fail("`in` needs a list of constants, e.g. domain in ['real', 'procedural']")
        values = []
        for item in node.elts:
            if not isinstance(item, ast.Constant):
                raise fail("`in` lists may hold only constants")
            values.append(item.value)
        return values

    def visit(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return visit(node.body)
        if isinstance(node, ast.BoolOp):
            values = [as_mask(visit(v)) for v in node.values]
            combined = values[0]
            for value in values[1:]:
                combined = (combined & value) if isinstance(node.op, ast.And) else (combined | value)
            return combined
        if isinstance(node, ast.UnaryOp):
            operand = visit(node.operand)
            if isinstance(node.op, ast.Not):
                return ~as_mask(operand)
            if isinstance(node.op, ast.USub):
                return -operand
            if isinstance(node.op, ast.UAdd):
                return operand
        if isinstance(node, ast.Compare):
            left = visit(node.left)
            result = None
            for op, right_node in zip(node.ops, node.comparators, strict=False):
                if isinstance(op, (ast.In, ast.NotIn)):
                    if not isinstance(left, pd.Series):
                        raise fail("the left side of `in` must be a column")
                    part = left.isin(constant_list(right_node))
                    part = ~part if isinstance(op, ast.NotIn) else part
                    right = None
                elif type(op) in _COMPARE:
                    right = visit(right_node)
                    part = as_mask(_COMPARE[type(op)](left, right))
                else:
                    raise fail(f"operator {type(op).__name__} is not allowed")
                result = part if result is None else (result & part)
                left = right
            return result
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
            left, right = visit(node.left), visit(node.right)
            if type(node.op) is not ast.Add and (_is_text(left) or _is_text(right)):
                raise fail(f"`{_SYMBOL[type(node.op)]}` works on numbers only, not text (repeating text is refused)")
            return _ARITHMETIC[type(node.op)](left, right)
        if isinstance(node, ast.Name):
            if node.id in ("True", "False"):
                return node.id == "True"
            if node.id not in frame.columns:
                close = difflib.get_close_matches(node.id, columns, n=1)
                guess = f"did you mean {close[0]!r}? " if close else ""
                raise fail(f"unknown column {node.id!r}; {guess}columns are: {', '.join(columns)}")
            return frame[node.id]
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool)):
            return node.value
        raise fail(f"{type(node).__name__} is not allowed (only columns, constants, comparisons, and/or/not, + - * /)")

    def as_mask(value: Any) -> pd.Series:
        if isinstance(value, pd.Series):
            if value.dtype == bool:
                return value
            if pd.api.types.is_numeric_dtype(value):
                return value.fillna(0).astype(bool)
            raise fail("a text column cannot be used as true/false; compare it, e.g. domain == 'real'")
        return pd.Series(np.full(len(frame), bool(value)), index=frame.index)

    try:
        return as_mask(visit(tree)).fillna(False).astype(bool)
    except TypeError as error:
        raise fail(f"type mismatch ({' '.join(str(error).split())[:200]})") from None
    except (ArithmeticError, ValueError) as error:  # 1/0, an overflowing constant, ...
        raise fail(f"cannot be evaluated ({type(error).__name__}: {' '.join(str(error).split())[:200]})") from None
