"""Start-up times: fresh interpreters, each command run ``--repeats`` times, median and min printed.

What is timed, side by side in one run: ``python -c pass`` (the interpreter alone), ``import mmengine.model``
(torch + mmengine + what mmengine pulls in, e.g. transformers' trainer utilities), ``import cnclip_mm.apis``
(the names load on first use), ``from cnclip_mm.apis import get_model`` (what a first model build pays
before building) and ``python tools/X.py --help`` for every tool (arguments are parsed before the heavy
imports). The machine may be shared: run it twice and trust the lower numbers.

    python benchmarks/startup.py [--repeats 5]
    python benchmarks/startup.py --tiny        # 1 repeat, no torch import, 2 tools: proves the script works
"""
import argparse
import glob
import os.path as osp
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

IMPORTS = {
    'python -c pass': 'pass',
    'import mmengine.model': 'import mmengine.model',
    'import cnclip_mm.apis': 'import cnclip_mm.apis',
    'from cnclip_mm.apis import get_model': 'from cnclip_mm.apis import get_model',
}


def time_command(argv: List[str], repeats: int) -> List[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if proc.returncode != 0:
            raise RuntimeError(f'{" ".join(argv)} failed ({proc.returncode}): {proc.stderr[-2000:]}')
    return times


def main(argv: Optional[List[str]] = None) -> Dict[str, float]:
    parser = argparse.ArgumentParser(description='Start-up times of imports and tools --help')
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--tiny', action='store_true', help='1 repeat, the imports without torch, 2 tools')
    args = parser.parse_args(argv)
    repeats = 1 if args.tiny else args.repeats
    tools = sorted(osp.relpath(p, REPO) for p in glob.glob(osp.join(REPO, 'tools', '**', '*.py'), recursive=True))
    imports = dict(IMPORTS)
    if args.tiny:
        tools = ['tools/train.py', 'tools/test.py']
        imports = {k: v for k, v in IMPORTS.items() if k in ('python -c pass', 'import cnclip_mm.apis')}
    commands = {name: [sys.executable, '-c', code] for name, code in imports.items()}
    commands.update({f'{tool} --help': [sys.executable, tool, '--help'] for tool in tools})
    medians: Dict[str, float] = {}
    print(f'{"command":55s} {"median s":>9s} {"min s":>7s}  ({repeats} runs each, fresh interpreters)')
    for name, cmd in commands.items():
        times = time_command(cmd, repeats)
        medians[name] = statistics.median(times)
        print(f'{name:55s} {medians[name]:9.2f} {min(times):7.2f}', flush=True)
    slowest = max(v for k, v in medians.items() if k.endswith('--help'))
    if 'import mmengine.model' in medians:
        extra = medians['import cnclip_mm.apis'] - medians['import mmengine.model']
        print(f'\nimport cnclip_mm.apis minus import mmengine.model: {extra:+.2f} s; slowest --help: {slowest:.2f} s')
    else:
        print(f'\nslowest --help: {slowest:.2f} s')
    return medians


if __name__ == '__main__':
    main()
