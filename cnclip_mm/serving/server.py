"""Run the app with uvicorn: blocking (tools/serve.py) or in a background thread (tests, benchmarks)."""
import threading
import time
from typing import Optional

LOOPBACK = ('127.0.0.1', 'localhost', '::1')


class ServerThread:
    """uvicorn serving ``app`` in a daemon thread; ``port=0`` takes a free port (see :attr:`url`).

    ``with ServerThread(app) as server: httpx.get(server.url + '/health')``
    """

    def __init__(self, app, host: str = '127.0.0.1', port: int = 0, log_level: str = 'warning') -> None:
        import uvicorn
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level,
                                                   lifespan='on'))
        self.thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        return f'http://{host}:{port}'

    def start(self, timeout_s: float = 60.0) -> 'ServerThread':
        self.thread = threading.Thread(target=self.server.run, name='uvicorn', daemon=True)
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError('the server did not start (see the log above)')
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join()

    def __enter__(self) -> 'ServerThread':
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
