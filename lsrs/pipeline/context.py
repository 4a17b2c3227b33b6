"""What one stage works with, made once when it starts: validated params, the run root's folders,
the model family it serves, the runtime (device, precision, torchrun rank) and its log.

Every step function takes a `StageContext`, so no step reads params.yaml or starts the runtime on
its own. The one rank convention: a step that splits work over torchrun ranks returns its result
on rank 0 and None on the others (`evaluate_model`: (None, None)), and only rank 0 writes shared files.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from lsrs.core.runtime import Runtime
from lsrs.pipeline.family import FamilySetup, family_setup
from lsrs.pipeline.layout import Layout
from lsrs.pipeline.params import Params, load_params


@dataclass(frozen=True)
class StageContext:
    params: Params
    layout: Layout  # the run root's folders (runs/<profile>); a family's own are `family.layout`
    family: FamilySetup  # the model family the stage serves (VAR unless the stage is a flex_* one)
    runtime: Runtime
    log: Callable[[str], None] = print

    @classmethod
    def create(cls, params: Params, root: str | Path, family: str = "var",
               log: Callable[[str], None] = print) -> "StageContext":
        layout = Layout.at(root)
        return cls(params, layout, family_setup(params, family, layout), Runtime.start(params.runtime), log)

    @classmethod
    def load(cls, params_file: str | Path, root: str | Path, family: str = "var",
             log: Callable[[str], None] = print) -> "StageContext":
        """Read and validate params_file (a bad value fails here, naming its key), then `create`."""
        return cls.create(load_params(params_file), root, family, log)

    def with_family(self, name: str) -> "StageContext":
        return replace(self, family=family_setup(self.params, name, self.layout))
