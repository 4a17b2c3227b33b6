"""Stage `tokenizer` (and `flex_tokenizer` with --family flexvar): train the family's tokenizer on the
profile's images (mini), or check and link its official checkpoint (paper: vae_ch160v4096z32.pth or
FlexVAE.pth, sha256 and keys)."""
from pathlib import Path

import _stage

app = _stage.app(__doc__)


@app.command()
def main(params: Path = _stage.PARAMS, root: Path = _stage.ROOT, family: str = _stage.FAMILY):
    from lsrs.pipeline.models import make_tokenizer

    def step(ctx):
        make_tokenizer(ctx)
        _stage.drop_scratch(ctx.family.layout.tokenizer, ("*.train.pth",))  # train_tokens.pt stays: models read it

    _stage.run(step, params, root, family)


if __name__ == "__main__":
    app()
