"""`kmervae train`: train the VAE of a model config on a dataset store."""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("--config", metavar="MODEL.yaml", help="model config (default: the paper's model)")
    parser.add_argument(
        "--data", required=True, metavar="DATASET.zarr", help="dataset store from `kmervae merge`"
    )
    parser.add_argument("-o", "--output", required=True, metavar="MODEL_DIR", help="model directory to write")
    parser.add_argument(
        "--resume", action="store_true", help="continue from MODEL_DIR/checkpoint.pt if present"
    )
    parser.add_argument(
        "--work-dir",
        metavar="DIR",
        help="train in DIR (resuming its checkpoint after an interruption) and move the result to "
        "MODEL_DIR when finished; for workflow managers that delete unfinished outputs",
    )
    parser.add_argument(
        "--device", default="auto", choices=("auto", "cpu", "cuda"), help="default: CUDA if present"
    )
    parser.add_argument(
        "--threads", type=int, metavar="N", help="torch intra-op threads (default: torch's choice)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set training.epochs=3 (value read as YAML; repeatable)",
    )


def run(args) -> int:
    from kmervae.vae import config
    from kmervae.train import train, train_in_work_dir

    cfg = config.load(args.config, args.overrides)
    if args.work_dir:
        train_in_work_dir(cfg, args.data, args.output, args.work_dir, device=args.device, threads=args.threads)
    else:
        train(cfg, args.data, args.output, resume=args.resume, device=args.device, threads=args.threads)
    return 0
