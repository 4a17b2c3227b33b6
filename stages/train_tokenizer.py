"""Stage `tokenizer`: train the multi-scale VQ-VAE on the profile's images (mini), or check and link
the checkpoint tokenizer.checkpoint (paper: the official vae_ch160v4096z32.pth, sha256 and keys).
With --family flexvar (stage flex_tokenizer) the same for the FlexVAE of the flexvar section."""
from pathlib import Path

import _stage

app = _stage.app(__doc__)


@app.command()
def main(params: Path = _stage.PARAMS, root: Path = _stage.ROOT, family: str = _stage.FAMILY):
    from lsrs.pipeline import flex
    from lsrs.pipeline.runs import link_tokenizer, train_tokenizer

    def step(p, layout):
        layout = _stage.family_layout(family, layout)
        if family == "flexvar":
            flex.train_tokenizer(p, layout.tokenizer, log=_stage.echo)
        elif p.tokenizer.checkpoint:
            link_tokenizer(p, layout.tokenizer, log=_stage.echo)
            return
        else:
            train_tokenizer(p, layout.tokenizer, log=_stage.echo)
        _stage.drop_scratch(layout.tokenizer, ("*.train.pth",))  # train_tokens.pt stays: every VAR reads it

    _stage.run(step, params, root)


if __name__ == "__main__":
    app()
