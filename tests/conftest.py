"""Shared test settings."""

import pytest
import torch

# One thread: the suite's tiny tensors gain nothing from more, and two threads on a busy 2-core
# machine made some backward passes 50x slower (measured on test_models.py).
torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """Files with `slow` tests first, most slow tests first, each file's tests kept together.

    xdist's loadfile hands out files in this order (pyproject.toml sets --no-loadscope-reorder): the
    minutes-long end-to-end files start at once, and the many short files fill the gaps, instead of
    the long ones starting last and running alone at the end."""
    slow: dict[str, int] = {}
    for item in items:
        slow[item.fspath.strpath] = slow.get(item.fspath.strpath, 0) + ("slow" in item.keywords)
    first_seen = {path: i for i, path in reversed(list(enumerate(item.fspath.strpath for item in items)))}
    items.sort(key=lambda item: (-slow[item.fspath.strpath], first_seen[item.fspath.strpath]))


@pytest.fixture(scope="module")
def moto_endpoint():
    """An S3 API (moto) on 127.0.0.1 and a free port, for one test module; stopped after it."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
