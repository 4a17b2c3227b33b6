"""Where every artefact of a pipeline run lives, under one root folder (runs/<profile>).

dvc.yaml spells the same paths for its deps and outs; the stage CLIs take the root and ask this
module, so a stage can never read from a folder DVC does not know about.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    root: Path

    @classmethod
    def at(cls, root: str | Path) -> "Layout":
        return cls(Path(root))

    @property
    def data_manifest(self) -> Path:
        return self.root / "data.json"

    @property
    def tokenizer(self) -> Path:
        return self.root / "tokenizer"

    def var(self, name: str) -> Path:
        return self.root / "var" / name

    @property
    def real_tokens(self) -> Path:
        return self.root / "tokens" / "real"

    def generated_tokens(self, var: str) -> Path:
        return self.root / "tokens" / "generated" / var

    def scorer(self, name: str) -> Path:
        return self.root / "scorers" / name

    @property
    def evaluator(self) -> Path:
        return self.root / "evaluator"

    @property
    def reference(self) -> Path:
        return self.root / "reference.npz"

    def baseline(self, var: str) -> Path:
        return self.root / "eval" / "baseline" / var

    @property
    def main_eval(self) -> Path:
        return self.root / "eval" / "main"

    def sweep(self, name: str) -> Path:
        return self.root / "sweeps" / name
