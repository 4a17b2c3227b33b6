"""Stage `grids`: fixed-seed sample grids over M and ST (Figures 4, 8, 9) and random scale replacement (Figure 1)."""
from pathlib import Path

import _stage

app = _stage.app(__doc__)


@app.command()
def main(params: Path = _stage.PARAMS, root: Path = _stage.ROOT):
    from lsrs.pipeline.grids import sample_grids

    _stage.run(lambda ctx: sample_grids(ctx, ctx.layout.root / "figures"), params, root)


if __name__ == "__main__":
    app()
