"""Parameter count, inputs and outputs of every model config in config/models/ (the README's family table).

    .venv/bin/python bench/family_params.py
"""

from pathlib import Path

from kmervae.vae import config as cfg
from kmervae.vae.files import build_model

MODELS = Path(__file__).resolve().parents[1] / "config" / "models"


def main() -> None:
    print("model\tinput groups read\tinput width\toutputs\tlatent\tparameters")
    for path in sorted(MODELS.glob("*.yaml")):
        model = build_model(cfg.load(path))
        outputs = model.outputs
        params = sum(p.numel() for p in model.parameters())
        ks = ",".join(str(k) for k in model.input_ks)
        print(f"{path.stem}\t{ks}\t{model.input_width}\t{'+'.join(outputs)}\t{model.latent_dim}\t{params:,}")


if __name__ == "__main__":
    main()
