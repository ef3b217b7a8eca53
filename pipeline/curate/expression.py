"""A safe filter language over index columns, evaluated on a pandas DataFrame.

Python expression syntax, parsed with `ast` and walked by a whitelist (nothing is `eval`ed):
column names, numbers, strings, True/False, comparisons (`< <= > >= == !=`, chained too),
`in` / `not in` a list of constants, `and` / `or` / `not`, `+ - * /` and parentheses.
Comparisons with a null score are false (a clip without an aesthetic head score never
matches `aesthetic >= 4.5`).
"""
from __future__ import annotations

import ast
import operator
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import UserError

_COMPARE = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
            ast.Eq: operator.eq, ast.NotEq: operator.ne}
_ARITHMETIC = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


class ExpressionError(UserError):
    pass


def _fail(expression: str, message: str) -> ExpressionError:
    return ExpressionError(f"--where {expression!r}: {message}",
                           hint='write e.g. "motion > 0.3 and aesthetic >= 4.5" using index column names')


def parse(expression: str) -> ast.Expression:
    try:
        return ast.parse(expression.strip(), mode="eval")
    except SyntaxError as error:
        raise _fail(expression, f"syntax error at column {error.offset}") from None


def evaluate(expression: str, frame: pd.DataFrame) -> pd.Series:
    """Boolean mask over `frame`'s rows."""
    tree = parse(expression)

    def constant_list(node: ast.AST) -> list[Any]:
        if not isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            raise _fail(expression, "`in` needs a list of constants, e.g. domain in ['real', 'procedural']")
        values = []
        for item in node.elts:
            if not isinstance(item, ast.Constant):
                raise _fail(expression, "`in` lists may hold only constants")
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
            for op, right_node in zip(node.ops, node.comparators):
                if isinstance(op, (ast.In, ast.NotIn)):
                    if not isinstance(left, pd.Series):
                        raise _fail(expression, "the left side of `in` must be a column")
                    part = left.isin(constant_list(right_node))
                    part = ~part if isinstance(op, ast.NotIn) else part
                    right = None
                elif type(op) in _COMPARE:
                    right = visit(right_node)
                    part = as_mask(_COMPARE[type(op)](left, right))
                else:
                    raise _fail(expression, f"operator {type(op).__name__} is not allowed")
                result = part if result is None else (result & part)
                left = right
            return result
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
            return _ARITHMETIC[type(node.op)](visit(node.left), visit(node.right))
        if isinstance(node, ast.Name):
            if node.id in ("True", "False"):
                return node.id == "True"
            if node.id not in frame.columns:
                columns = ", ".join(c for c in frame.columns if c not in ("embedding", "score_names", "params_json"))
                raise _fail(expression, f"unknown column {node.id!r}; columns are: {columns}")
            return frame[node.id]
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool)):
            return node.value
        raise _fail(expression, f"{type(node).__name__} is not allowed (only columns, constants, comparisons, and/or/not, + - * /)")

    def as_mask(value: Any) -> pd.Series:
        if isinstance(value, pd.Series):
            if value.dtype == bool:
                return value
            if pd.api.types.is_numeric_dtype(value):
                return value.fillna(0).astype(bool)
            raise _fail(expression, "a text column cannot be used as true/false; compare it, e.g. domain == 'real'")
        return pd.Series(np.full(len(frame), bool(value)), index=frame.index)

    try:
        return as_mask(visit(tree)).fillna(False).astype(bool)
    except TypeError as error:
        raise _fail(expression, f"type mismatch ({error})") from None
