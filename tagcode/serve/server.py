"""Building the service from its settings and running it under uvicorn (in the foreground for ``tagcode serve``,
or in a background thread on a loopback port for the tests and the load benchmark)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tagcode.errors import TagcodeError
from tagcode.serve.app import create_app
from tagcode.serve.catalog import Catalog
from tagcode.serve.champions import load_champion
from tagcode.serve.engine import SearchService
from tagcode.serve.settings import Settings


def build_service(settings: Settings) -> SearchService:
    """Load the catalog and every champion; ``s3://`` inputs are fetched first (as the stages fetch them), and a
    missing input is a one-line error naming it."""
    from tagcode.io import fetch, is_s3

    local = {name: str(fetch(value)) for name in ("prepared", "features", "embed", "codes_root")
             if isinstance(value := getattr(settings, name), str) and is_s3(value)}
    settings = settings.model_copy(update=local)
    for name in ("embed", "features"):
        path = getattr(settings, name)
        if path is not None and not Path(path).is_dir():
            raise TagcodeError(f"{path}: no {name} output here (give its directory, or 'none' to turn off "
                               f"{'tag' if name == 'embed' else 'image upload'} search)")
    catalog = Catalog(settings.prepared, embed=settings.embed, features=settings.features,
                      backbone_weights=settings.backbone_weights,
                      backbone_allow_pickle=settings.backbone_allow_pickle, max_pixels=settings.max_pixels)
    champions = [load_champion(ref, codes_root=settings.codes_root, prepared=settings.prepared,
                               features=settings.features or "data/features") for ref in settings.champions]
    return SearchService(catalog, champions)


def limit_threads(n: int) -> None:
    """Process-wide thread counts of torch, faiss (OpenMP) and BLAS (threadpoolctl)."""
    import faiss
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(n)
    faiss.omp_set_num_threads(n)
    threadpool_limits(n)


def serve(settings: Settings) -> None:
    """Load everything, then answer on ``host:port`` until interrupted."""
    import uvicorn

    limit_threads(settings.threads)
    app = create_app(build_service(settings), max_upload=settings.max_upload)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info", access_log=False)


@contextmanager
def running(app: Any, host: str = "127.0.0.1", start_timeout: float = 30.0) -> Iterator[str]:
    """Run ``app`` under uvicorn in a background thread on a free port of ``host``; yields its base URL and
    stops the server on exit."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise TagcodeError(f"the service did not start on {host} within {start_timeout:.0f} s")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
