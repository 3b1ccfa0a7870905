"""Shared test settings."""

import pytest
import torch

# One thread: the suite's tiny tensors gain nothing from more, and two threads on a busy 2-core
# machine made some backward passes 50x slower (measured on test_models.py).
torch.set_num_threads(1)


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the xdist_group marks
def pytest_collection_modifyitems(config, items):
    """Slow tests first, each one a unit of its own; every other test grouped with its file.

    With `--dist loadgroup --no-loadscope-reorder` (pyproject.toml) xdist hands out units in this
    order: the minutes-long end-to-end tests start at once and spread over both workers, even when
    one file holds several of them, and the many short files fill the gaps (their module fixtures
    built once per file, as with loadfile)."""
    slow: dict[str, int] = {}
    for item in items:
        slow[item.fspath.strpath] = slow.get(item.fspath.strpath, 0) + ("slow" in item.keywords)
        if "slow" not in item.keywords:
            item.add_marker(pytest.mark.xdist_group(item.fspath.basename))
    first_seen = {path: i for i, path in reversed(list(enumerate(item.fspath.strpath for item in items)))}
    items.sort(key=lambda item: ("slow" not in item.keywords, -slow[item.fspath.strpath],
                                 first_seen[item.fspath.strpath]))


@pytest.fixture(scope="module")
def moto_endpoint():
    """An S3 API (moto) on 127.0.0.1 and a free port, for one test module; stopped after it."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
