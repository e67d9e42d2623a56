"""A loopback HTTP server (127.0.0.1, with Range support) and a tiny model index served through it."""
import hashlib
import http.server
import threading
from pathlib import Path
from typing import Dict, List, Optional

import pytest
import torch
from mmengine.config import Config

from cnclip_mm.models.converters import mm_to_official
from cnclip_mm.registry import MODELS

TINY_NAME = 'cn-clip_tiny_zeroshot-cls_test'


class LoopbackServer:
    """Serves ``files`` ({url path: bytes}) on 127.0.0.1; records each request's path and Range header."""

    def __init__(self, files: Dict[str, bytes]):
        self.files = files
        self.requests: List[tuple] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                rng = self.headers.get('Range')
                server.requests.append((self.path, rng))
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start = int(rng.split('=')[1].split('-')[0]) if rng else 0
                self.send_response(206 if rng else 200)
                self.send_header('Content-Length', str(len(data) - start))
                self.end_headers()
                self.wfile.write(data[start:])

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.thread: Optional[threading.Thread] = None

    @property
    def base_url(self) -> str:
        return f'http://127.0.0.1:{self.httpd.server_address[1]}'

    def start(self) -> 'LoopbackServer':
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def tiny_config_file(folder: Path, vocab_file: str) -> str:
    """A model config for the 64 px tiny Chinese CLIP with a local vocabulary."""
    path = folder / 'tiny_model.py'
    repo = Path(__file__).resolve().parents[2]
    path.write_text(f"_base_ = [{str(repo / 'configs/_base_/models/tiny.py')!r}]\n"
                    f"model = dict(tokenizer=dict(vocab_file={vocab_file!r}))\n", encoding='utf-8')
    return str(path)


def tiny_release(folder: Path, vocab_file: str, seed: int = 0):
    """Random tiny weights saved like an official release under a hashed name; returns (model, name, bytes)."""
    torch.manual_seed(seed)
    model = MODELS.build(Config.fromfile(tiny_config_file(folder, vocab_file)).model).eval()
    path = folder / 'release.pt'
    torch.save(dict(epoch=1, step=1, name='tiny', state_dict=mm_to_official(model.state_dict())), path)
    data = path.read_bytes()
    name = f'cn-clip_tiny_3rdparty-{hashlib.sha256(data).hexdigest()[:8]}.pth'
    return model, name, data


def write_index(folder: Path, url: str, vocab_file: str) -> str:
    """An extra model index naming the tiny model; its weights come from ``url``."""
    config = tiny_config_file(folder, vocab_file)
    path = folder / 'index.yml'
    path.write_text(f"""Models:
  - Name: {TINY_NAME}
    Alias: [tiny-test]
    Config: {Path(config).name}
    Weights: {url}
    Vocab: {vocab_file}
""", encoding='utf-8')
    return str(path)


@pytest.fixture
def zoo(tmp_path, vocab_file, monkeypatch):
    """A served tiny release, an index naming it, and an empty cache under tmp_path."""
    monkeypatch.setenv('CNCLIP_HOME', str(tmp_path / 'cache'))
    model, name, data = tiny_release(tmp_path, vocab_file)
    server = LoopbackServer({f'/weights/{name}': data}).start()
    url = f'{server.base_url}/weights/{name}'
    monkeypatch.setenv('CNCLIP_MODEL_INDEX', write_index(tmp_path, url, vocab_file))
    yield dict(model=model, name=name, data=data, server=server, url=url, cached=tmp_path / 'cache' / 'checkpoints' / name)
    if server.thread.is_alive():
        server.stop()
