"""Fixtures shared by several test files."""
from __future__ import annotations

import pytest
import torch
import torch_fidelity.feature_extractor_inceptionv3 as tf_inception
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

from lsrs.evaluation.features import INCEPTION_WEIGHTS_NAME


@pytest.fixture(scope="session")
def random_inception_weights(tmp_path_factory):
    """A weights file in torch-fidelity's format (its own module's state dict) with random values:
    the module is built with its weight loading stubbed out, so nothing is downloaded."""
    mp = pytest.MonkeyPatch()
    mp.setattr(tf_inception, "load_state_dict_from_url", lambda *a, **k: {})
    mp.setattr(FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd, *a, **k: None)
    try:
        torch.manual_seed(0)
        net = FeatureExtractorInceptionV3("random", ["2048"])
    finally:
        mp.undo()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    path = tmp_path_factory.mktemp("inception") / INCEPTION_WEIGHTS_NAME
    torch.save(net.state_dict(), path)
    return path
