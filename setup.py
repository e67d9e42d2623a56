"""Install cnclip-mm: ``pip install -c requirements/constraints.txt -e .`` (extras: ``[tests]``,
``[deploy]`` ONNX Runtime, ``[demo]`` Gradio, ``[adapters]`` peft, ``[serve]`` FastAPI + uvicorn, ``[index]`` faiss,
``[milvus]`` pymilvus + Milvus Lite).

``install_requires`` holds compatible ranges (a user's own torch stays); the tested exact versions are
``requirements/constraints.txt``.
"""
import re
import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).parent


class BuildWithConfigs(build_py):
    """Copy ``configs/`` (leaf and base configs, the model index metafile.yml) into the built package as
    ``cnclip_mm/.mim/configs`` (mmpretrain's layout), so a wheel or ``pip install .`` finds models by name.
    ``configs/`` at the repository root stays the one source; an editable install reads it in place."""

    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False):
            return
        target = Path(self.build_lib) / 'cnclip_mm' / '.mim' / 'configs'
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(HERE / 'configs', target, ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))


def read_requirements(name: str) -> list:
    lines = (HERE / 'requirements' / name).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith('#')]


def read_version() -> str:
    text = (HERE / 'cnclip_mm' / 'version.py').read_text()
    return re.search(r"__version__ = '([^']+)'", text).group(1)


setup(
    name='cnclip-mm',
    version=read_version(),
    description='Config-driven training and evaluation of Chinese CLIP on MMEngine',
    long_description=(HERE / 'README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['cnclip_mm', 'cnclip_mm.*']),
    package_data={'cnclip_mm': ['models/vocab/vocab.txt', 'datasets/*.txt', 'evaluation/*.txt', '**/*.txt', 'visualization/cjk_font/*']},
    python_requires='>=3.9',
    install_requires=read_requirements('runtime.txt'),
    extras_require={
        'deploy': read_requirements('deploy.txt'),  # ONNX export and ONNX Runtime
        'demo': read_requirements('demo.txt'),  # Gradio web demo
        'fast': read_requirements('fast.txt'),  # libjpeg-turbo decoding
        'adapters': read_requirements('adapters.txt'),  # LoRA and other adapters through peft
        'serve': read_requirements('serve.txt'),  # the embeddings service (FastAPI + uvicorn)
        'index': read_requirements('index.txt'),  # the vector index (faiss)
        'milvus': read_requirements('milvus.txt'),  # the same index API on a Milvus server or Milvus Lite file
        # the suite tests every optional part too
        'tests': read_requirements('tests.txt') + read_requirements('deploy.txt') + read_requirements('demo.txt')
        + read_requirements('fast.txt') + read_requirements('adapters.txt') + read_requirements('serve.txt')
        + read_requirements('index.txt') + read_requirements('milvus.txt'),
    },
    license='Apache-2.0',
    cmdclass={'build_py': BuildWithConfigs},
)
