"""The model families LSRS runs on, behind one interface (`Family`): VAR and FlexVAR.

Everything above this layer (token stores, scorer training, sampling, evaluation, sweeps) is one
code path that asks the family what differs: which tokenizer and model to build or load, which
files the official checkpoints are, how to train the tokenizer, and the sampling schedule.
"""
from lsrs.families.base import Family, ModelFiles
from lsrs.families.flexvar import FlexFamily
from lsrs.families.var import VarFamily

__all__ = ["Family", "ModelFiles", "VarFamily", "FlexFamily"]
