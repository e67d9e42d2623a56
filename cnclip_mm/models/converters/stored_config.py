"""The model config a checkpoint carries, written and read as plain data, never executed.

New files hold ``meta['model_cfg']``: a dict of str / int / float / bool / None / list / tuple / dict only.
Older files hold only mmengine's config text (``meta['cfg']``); from it the ``model = ...`` assignment is
read by walking its syntax tree, accepting literals and ``dict(key=value)`` calls and nothing else. Any
other construct is refused with a message saying to pass the config explicitly.
"""
import ast
from typing import Any, Optional

PLAIN_SCALARS = (str, int, float, bool, type(None))


class StoredConfigError(ValueError):
    """The config stored in a checkpoint is not plain data; the message says what to pass instead."""


def is_plain(value: Any) -> bool:
    """Whether ``value`` is built of dicts (str keys), lists, tuples and JSON scalars only."""
    if isinstance(value, PLAIN_SCALARS):
        return True
    if isinstance(value, (list, tuple)):
        return all(is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_plain(v) for k, v in value.items())
    return False


def plain_model_cfg(model_cfg: Any) -> Optional[dict]:
    """``model_cfg`` (a ``ConfigDict`` or dict) as a plain dict for ``meta['model_cfg']``; None if it holds objects."""
    def convert(value):
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(convert(v) for v in value)
        return value

    if not isinstance(model_cfg, dict):
        return None
    plain = convert(model_cfg)
    return plain if is_plain(plain) else None


def stored_model_cfg(meta: Optional[dict], source: str = 'checkpoint') -> Optional[dict]:
    """The model config of a checkpoint's meta, read as data; None when it stores none.

    Raises:
        StoredConfigError: the stored config is not plain data (``model_cfg``) or its text is not made of
            literals (``cfg``); nothing of it has been run.
    """
    meta = meta or {}
    hint = 'pass the model config explicitly (--config / init_model(config=...))'
    if 'model_cfg' in meta:
        cfg = meta['model_cfg']
        if not (isinstance(cfg, dict) and is_plain(cfg) and isinstance(cfg.get('type'), str)):
            raise StoredConfigError(f'{source}: meta["model_cfg"] is not a plain model config dict; {hint}')
        return cfg
    text = meta.get('cfg')
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        return parse_model_assignment(text)
    except StoredConfigError as err:
        raise StoredConfigError(f'{source}: the config text stored in meta["cfg"] is not read: {err}. It is '
                                f'never executed; {hint}') from None


def parse_model_assignment(text: str) -> Optional[dict]:
    """Evaluate the ``model = ...`` assignment of a config text as a literal; other statements are ignored.

    Raises:
        StoredConfigError: the text does not parse, or the value uses anything beyond literals and
            ``dict(key=value, ...)``.
    """
    try:
        tree = ast.parse(text, mode='exec')
    except SyntaxError as err:
        raise StoredConfigError(f'not Python syntax (line {err.lineno})') from None
    value = None
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id == 'model'):
            value = _literal(node.value)
    if value is not None and not isinstance(value, dict):
        raise StoredConfigError(f'"model" is a {type(value).__name__}, not a dict')
    return value


def _literal(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, PLAIN_SCALARS):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _literal(node.operand)
        if isinstance(operand, (int, float)) and not isinstance(operand, bool):
            return -operand if isinstance(node.op, ast.USub) else operand
    elif isinstance(node, (ast.List, ast.Tuple)):
        items = [_literal(item) for item in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    elif isinstance(node, ast.Dict):
        if all(isinstance(k, ast.Constant) and isinstance(k.value, str) for k in node.keys):
            return {k.value: _literal(v) for k, v in zip(node.keys, node.values)}
    elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == 'dict'
          and not node.args and all(kw.arg is not None for kw in node.keywords)):
        return {kw.arg: _literal(kw.value) for kw in node.keywords}
    raise StoredConfigError(f'line {getattr(node, "lineno", "?")} holds {type(node).__name__} '
                            f'"{ast.unparse(node)[:60]}", which is not a literal')
