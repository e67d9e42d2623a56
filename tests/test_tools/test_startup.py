"""Start-up: every tool answers --help without loading torch / mmengine, ``import cnclip_mm.apis`` loads no
optional engine, and ``init_model`` without a checkpoint keeps mmengine's per-parameter init report off the
console. One subprocess for all of it (timings are measured by benchmarks/startup.py, not tested)."""
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOOLS = sorted(str(p.relative_to(REPO)) for p in (REPO / 'tools').rglob('*.py'))

PROBE = r'''
import contextlib, io, json, runpy, sys
report = {'tools': {}}
for path in sys.argv[1:]:
    out, before = io.StringIO(), set(sys.modules)
    sys.argv = [path, '--help']
    code = 'no exit'
    with contextlib.redirect_stdout(out):
        try:
            runpy.run_path(path, run_name='__main__')
        except SystemExit as exc:
            code = exc.code
    heavy = sorted(m for m in ('torch', 'mmengine', 'transformers') if m in sys.modules and m not in before)
    report['tools'][path] = [code, out.getvalue(), heavy]
import cnclip_mm.apis
report['after_apis'] = sorted(m for m in ('gradio', 'onnx', 'onnxruntime', 'torch', 'matplotlib', 'fastapi')
                              if m in sys.modules)
from cnclip_mm.apis import init_model
buf = io.StringIO()
with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
    from mmengine.logging import MMLogger
    for handler in MMLogger.get_current_instance().handlers:
        handler.stream = buf
    init_model('configs/_base_/models/tiny.py')
report['init_output'] = buf.getvalue()
report['after_init'] = sorted(m for m in ('gradio', 'onnx', 'onnxruntime') if m in sys.modules)
print(json.dumps(report))
'''


def test_help_of_every_tool_lazy_imports_and_quiet_init():
    proc = subprocess.run([sys.executable, '-c', PROBE, *TOOLS], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(TOOLS) >= 20
    for tool, (code, text, _) in report['tools'].items():
        assert code == 0 and text.startswith('usage:'), (tool, code, text[:300])
    slow = {tool: heavy for tool, (_, _, heavy) in report['tools'].items() if heavy}
    assert not slow, f'tools that import these before parsing their arguments: {slow}'
    assert report['after_apis'] == []
    assert 'same before and after' not in report['init_output'] and len(report['init_output']) < 500, \
        report['init_output'][:500]
    assert report['after_init'] == []


def test_startup_benchmark_tiny(capsys):
    sys.path.insert(0, str(REPO / 'benchmarks'))
    import startup  # benchmarks/startup.py
    medians = startup.main(['--tiny'])
    out = capsys.readouterr().out
    assert set(medians) == {'python -c pass', 'import cnclip_mm.apis', 'tools/train.py --help',
                            'tools/test.py --help'}
    assert all(v > 0 for v in medians.values()) and 'slowest --help' in out
