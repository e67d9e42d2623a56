"""The package's layering, read from every import statement (lazy ones inside functions included).

utils/ and cpu/ are leaves, the model never imports the CPU package, engine/ and models/ never import apis/,
and no two modules import each other, directly or around a longer loop (the scripts under benchmarks/ and
tools/, which import their siblings by bare name, included).
"""
import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / 'cnclip_mm'


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def _sibling(path: Path, name: str) -> str:
    """A script's bare ``import name`` of a file beside it (benchmarks and tools put their folder on the path)."""
    if path.parts[len(REPO.parts)] in ('benchmarks', 'tools') and (path.parent / f'{name}.py').is_file():
        return _module_name(path.parent / f'{name}.py')
    return name


def _imports(path: Path) -> set:
    """The cnclip_mm modules ``path`` imports (``from x import y`` counts ``x.y`` when that is a module)."""
    module = _module_name(path)
    package = module if path.name == '__init__.py' else module.rpartition('.')[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
        if isinstance(node, ast.Import):
            found.update(_sibling(path, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')
                base = base[:len(base) - node.level + 1]
                source = '.'.join(base + ([node.module] if node.module else []))
            else:
                source = _sibling(path, node.module)
            found.add(source)
            found.update(f'{source}.{alias.name}' for alias in node.names)
    return {name for name in found if name in MODULES}


SCRIPTS = [p for folder in ('benchmarks', 'tools') for p in (REPO / folder).rglob('*.py')]
MODULES = {_module_name(p): p for p in [*PACKAGE.rglob('*.py'), *SCRIPTS]}
GRAPH = {name: _imports(path) for name, path in MODULES.items()}


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + '.')


@pytest.mark.parametrize('layer, forbidden', [
    ('cnclip_mm.utils', ('cnclip_mm.models', 'cnclip_mm.apis', 'cnclip_mm.engine', 'cnclip_mm.datasets',
                         'cnclip_mm.evaluation', 'cnclip_mm.deployment', 'cnclip_mm.cpu')),
    ('cnclip_mm.cpu', ('cnclip_mm.models', 'cnclip_mm.apis', 'cnclip_mm.engine', 'cnclip_mm.datasets')),
    ('cnclip_mm.models', ('cnclip_mm.cpu', 'cnclip_mm.apis', 'cnclip_mm.engine')),
    ('cnclip_mm.engine', ('cnclip_mm.apis',)),
])
def test_layers_import_only_downwards(layer, forbidden):
    wrong = sorted(f'{name} -> {target}' for name, targets in GRAPH.items() if _under(name, layer)
                   for target in targets if any(_under(target, f) for f in forbidden))
    assert not wrong, wrong


def test_no_import_cycles_between_modules():
    """Package ``__init__`` files re-export their children, so edges into a package's own ``__init__``
    from its children are left out; every other loop is a cycle."""
    def edges(name):
        return {t for t in GRAPH[name] if not (_under(name, t) and MODULES[t].name == '__init__.py')}

    state, cycles = {}, []

    def visit(name, stack):
        state[name] = 'open'
        stack.append(name)
        for target in sorted(edges(name)):
            if state.get(target) == 'open':
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target, stack)
        stack.pop()
        state[name] = 'done'

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [])
    assert not cycles, [' -> '.join(c) for c in cycles]


def test_the_checker_sees_lazy_and_relative_imports():
    """The graph holds imports made inside functions and relative ones, so the tests above can fail."""
    assert 'cnclip_mm.deployment.ort_backend' in GRAPH['cnclip_mm.deployment.onnx_export']
    assert 'cnclip_mm.models.zoo' in GRAPH['cnclip_mm.engine.runner.clip_runner']  # inside a function
    assert 'benchmarks.train_step' in GRAPH['benchmarks.compile_step']  # a script's bare sibling import
