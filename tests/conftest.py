"""Shared test settings."""

import pytest
import torch

# One thread: the suite's tiny tensors gain nothing from more, and two threads on a busy 2-core
# machine made some backward passes 50x slower (measured on test_models.py).
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def moto_endpoint():
    """An S3 API (moto) on 127.0.0.1 and a free port, for one test module; stopped after it."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
