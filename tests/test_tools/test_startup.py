"""Start-up: every tool answers --help without loading torch / mmengine and ``import cnclip_mm.apis`` loads
no optional engine (one subprocess for both; timings are measured by benchmarks/startup.py, not tested), and
``init_model`` without a checkpoint keeps mmengine's per-parameter init report off the console."""
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
print(json.dumps(report))
'''


def test_help_of_every_tool_and_lazy_apis():
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


def test_init_model_reports_no_parameter_inits(tiny_model_cfg):
    """mmengine's per-parameter "The value is the same before and after calling `init_weights`" records stay
    off a logger without a log file (the console)."""
    import logging

    from mmengine.logging import MMLogger

    from cnclip_mm.apis import init_model

    class Records(logging.Handler):
        def __init__(self):
            super().__init__(logging.DEBUG)
            self.messages = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    logger, records = MMLogger.get_current_instance(), Records()
    logger.addHandler(records)
    try:
        init_model(tiny_model_cfg)
    finally:
        logger.removeHandler(records)
    reports = [m for m in records.messages if 'init_weights' in m]
    assert not reports, reports[:3]


def test_every_lazy_api_name_resolves():
    import cnclip_mm.apis
    assert all(callable(getattr(cnclip_mm.apis, name)) for name in cnclip_mm.apis.__all__)


def test_startup_benchmark_tiny(capsys):
    sys.path.insert(0, str(REPO / 'benchmarks'))
    import startup  # benchmarks/startup.py
    medians = startup.main(['--tiny'])
    out = capsys.readouterr().out
    assert set(medians) == {'python -c pass', 'import cnclip_mm.apis', 'tools/train.py --help',
                            'tools/test.py --help'}
    assert all(v > 0 for v in medians.values()) and 'slowest --help' in out


def test_init_model_after_a_finished_runner(tiny_model_cfg, tmp_path):
    """A Runner that finished closes its log file but leaves the handler on the current logger; a later
    ``init_model`` in the same process builds without writing into the closed file."""
    import logging

    from mmengine.logging import MMLogger

    from cnclip_mm.apis import init_model

    logger = MMLogger.get_instance(f'closed_{tmp_path.name}', log_file=str(tmp_path / 'run.log'))
    closed = next(h for h in logger.handlers if isinstance(h, logging.FileHandler))
    closed.close()
    assert MMLogger.get_current_instance() is logger and closed.stream is None
    init_model(tiny_model_cfg)
    assert closed in logger.handlers
