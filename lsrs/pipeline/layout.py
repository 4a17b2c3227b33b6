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
    shared: Path | None = None  # where data.json, the evaluator and the reference live (the profile root)

    @classmethod
    def at(cls, root: str | Path) -> "Layout":
        return cls(Path(root))

    def family(self, name: str) -> "Layout":
        """The layout of a second model family (runs/<profile>/<name>/...: its tokenizer, models, token
        stores, scorers and sweeps), sharing this root's data manifest, evaluator and reference."""
        return Layout(self.root / name, shared=self.shared or self.root)

    @property
    def _shared(self) -> Path:
        return self.shared or self.root

    @property
    def data_manifest(self) -> Path:
        return self._shared / "data.json"

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
        return self._shared / "evaluator"

    @property
    def reference(self) -> Path:
        return self._shared / "reference.npz"

    def baseline(self, var: str) -> Path:
        return self.root / "eval" / "baseline" / var

    @property
    def main_eval(self) -> Path:
        return self.root / "eval" / "main"

    def sweep(self, name: str) -> Path:
        return self.root / "sweeps" / name
