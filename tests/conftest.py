"""Fixtures shared by the test modules."""

import pytest
import torch


@pytest.fixture
def one_thread():
    """Tiny models train fastest on one thread, and two OpenMP threads crawl when other jobs share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """Six training and two validation scenes of 32 px from the embedded dataset's generator: the VOC-layout
    folder (``--dataset voc --train-split train``) that the command-line tests train on in seconds."""
    from ranlib.data import make_mixed_boundary_dataset

    return make_mixed_boundary_dataset(tmp_path_factory.mktemp("data"), n_train=6, n_val=2, size=32, seed=3,
                                       progress=False)
