"""CUDA smoke test: one DC, DSA and DM step and one evaluation epoch on ``cuda``.

Skipped without a GPU (CI has none); runs whenever ``torch.cuda.is_available()``.
"""

from __future__ import annotations

import pytest
import torch

from dc_plugins.condense import make_condenser
from dc_plugins.config import EvalConfig, MatchingConfig
from dc_plugins.data import load_dataset
from dc_plugins.evaluation import evaluate_set

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU: the CUDA smoke test needs one")


@pytest.fixture(scope="module")
def cuda_digits():
    return (load_dataset("digits", train=True, image_size=16, device="cuda"),
            load_dataset("digits", train=False, image_size=16, device="cuda"))


@pytest.mark.parametrize("method", ["dc", "dsa", "dm"])
def test_one_step_and_one_evaluation_epoch_on_cuda(cuda_digits, method):
    train, test = cuda_digits
    m = make_condenser(train, method, 2, net="convnet-w16-d2",
                       matching=MatchingConfig(batch_real=16, outer_loop=2, inner_loop=1), seed=0)
    start = m.synthetic_set().images
    syn = m.run(1, progress=False)
    assert syn.images.device.type == "cuda" and torch.isfinite(syn.images).all()
    assert m.iteration == 1 and not torch.equal(syn.images, start)
    res = evaluate_set(syn, test, config=EvalConfig(networks=1, epochs=1, net="convnet-w16-d2"), progress=False)
    assert res.epochs == 1 and 0.0 <= res.mean <= 1.0
