"""The ``zoo`` fixture: a tiny release served on 127.0.0.1, an index naming it, an empty cache."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from zoo_fixtures import LoopbackServer, tiny_release, write_index  # noqa: E402


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
