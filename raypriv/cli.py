"""The `raypriv` command line: parse, validate, call one library function, print.

Heavy imports (torch, torchvision, Ray, MLflow) happen inside the commands, so `raypriv --help`
is instant.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

PRESET_NAMES = ("tiny", "laptop", "paper")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="raypriv")
def cli() -> None:
    """raypriv: learn privacy-preserving video degradations and search their trade-offs on Ray."""


_experiment = click.argument("experiment", type=click.Choice(["sbu"]))
_synthetic = click.option("--synthetic", is_flag=True, help="Use the embedded procedurally generated stand-in.")
_root = click.option("--root", default=None, help="Real data folder or s3://bucket/prefix (default: $RAYPRIV_SBU_ROOT).")
_profile = click.option("--profile", type=click.Choice(["smoke", "quick", "full"]), default="quick", show_default=True,
                        help="Profile of the search-space YAML: smoke (seconds), quick (laptop), full (GPU).")
_config = click.option("--config", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
                       help="Search-space YAML (default: search_spaces/EXPERIMENT.yaml).")
_set = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                    help="Override a config value, e.g. --set adversarial.gamma=2 or --set M=4 (repeatable).")


def _run_options(command):
    """EXPERIMENT, --synthetic, --root, --profile, --config and --set: what every run command takes."""
    for option in reversed((_experiment, _synthetic, _root, _profile, _config, _set)):
        command = option(command)
    return command


@cli.command("data")
@click.argument("dataset", type=click.Choice(["sbu"]))
@_synthetic
@click.option("--preset", type=click.Choice(PRESET_NAMES), default="laptop", show_default=True,
              help="Clip size (frames x height x width) and, for --synthetic, clips per split.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the clips' nuisances.")
@_root
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write a PNG contact sheet (one row per action) to this file.")
def data_command(dataset: str, synthetic: bool, preset: str, seed: int, root: str | None, out: Path | None) -> None:
    """Build every split of DATASET and summarise it (sizes, class balance, build time)."""
    from raypriv.data import SPLITS, build_dataset
    from raypriv.data.summary import contact_sheet, summarise

    first = None
    for split in SPLITS:
        start = time.perf_counter()
        try:
            ds = build_dataset(dataset, split, synthetic=synthetic, preset=preset, seed=seed, root=root)
            summary = summarise(ds)
        except (FileNotFoundError, ValueError) as err:
            raise click.ClickException(str(err)) from None
        click.echo(f"{split:5s} {summary}  built in {time.perf_counter() - start:.1f} s")
        first = first or ds
    if out is not None:
        contact_sheet(first, out)
        click.echo(f"contact sheet: {out}")


@cli.command("models")
@click.option("--role", type=click.Choice(["degrader", "target", "budget"]), default=None,
              help="Only list this role.")
@click.option("--pattern", default="*", show_default=True, help="Glob pattern on the model name.")
@click.option("--preset", type=click.Choice(PRESET_NAMES), default="laptop", show_default=True,
              help="Frame size used to check each model's forward pass.")
def models_command(role: str | None, pattern: str, preset: str) -> None:
    """List registered models: role, family, parameter count, output shape at the preset's size."""
    from raypriv.models.summary import model_table

    click.echo(model_table(role=role, pattern=pattern, preset=preset))


def _space_path(experiment: str, config: Path | None) -> Path:
    """The search-space YAML: --config, else search_spaces/<experiment>.yaml beside the package."""
    if config is not None:
        return config
    for base in (Path.cwd(), Path(__file__).resolve().parent.parent):
        candidate = base / "search_spaces" / f"{experiment}.yaml"
        if candidate.exists():
            return candidate
    raise click.ClickException(f"no search_spaces/{experiment}.yaml found; pass --config PATH")


def _load_config(experiment: str, config: Path | None, profile: str, overrides: tuple[str, ...]):
    from raypriv.config import ConfigError, load_run_config

    try:
        return load_run_config(_space_path(experiment, config), profile, overrides)
    except ConfigError as err:
        raise click.ClickException(str(err)) from None


@cli.command("train")
@_run_options
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for degrader.pt2, weights.safetensors, config.yaml, metrics.json, samples.png.")
def train_command(experiment, synthetic, root, profile, config, overrides, out) -> None:
    """Train one degrader with Algorithm 1 (no Ray) and evaluate it two-fold."""
    cfg = _load_config(experiment, config, profile, overrides)
    from raypriv.train import run_training

    try:
        metrics = run_training(cfg, out, synthetic=synthetic, root=root, progress=sys.stderr.isatty(), log=click.echo)
    except (FileNotFoundError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    click.echo(
        f"A_T {100 * metrics['target_acc']:.1f} %  A_T fresh {100 * metrics['target_acc_fresh']:.1f} %  "
        f"A_B^N {100 * metrics['privacy_acc']:.1f} % (worst: {metrics['worst_attacker']}; "
        f"chance {100 * metrics['chance_privacy']:.1f} %)  in {metrics['seconds']['total']:.0f} s -> {out}"
    )


@cli.command("evaluate")
@_run_options
@click.option("--degrader", "degrader_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="An exported degrader (degrader.pt2).")
@click.option("--budget-families", default=None,
              help="Comma-separated families the degrader was trained against (attackers avoid them); "
                   "default: read from metrics.json beside the degrader, else none.")
def evaluate_command(experiment, synthetic, root, profile, config, overrides, degrader_path, budget_families) -> None:
    """Two-fold evaluation of an exported degrader: fresh f_T (A_T) and N fresh attackers (A_B^N)."""
    cfg = _load_config(experiment, config, profile, overrides)
    import json

    from raypriv.train import evaluate_exported

    families = None if budget_families is None else {f for f in budget_families.split(",") if f}
    try:
        result = evaluate_exported(cfg, degrader_path, synthetic=synthetic, root=root, budget_families=families,
                                   log=click.echo)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        raise click.ClickException(str(err)) from None
    click.echo(json.dumps(result.as_dict(), indent=2))


@cli.command("baselines")
@_experiment
@_synthetic
@_profile
@_config
@_set
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for baselines.csv and baselines.png.")
def baselines_command(experiment, synthetic, profile, config, overrides, out) -> None:
    """The paper's baselines (raw, downsampling, face / body cropping, silhouette) through the two-fold protocol."""
    if not synthetic:
        raise click.ClickException("baselines need the synthetic set's face and body masks: pass --synthetic")
    cfg = _load_config(experiment, config, profile, overrides)
    from raypriv.evaluation.baselines import run_baselines

    rows = run_baselines(
        cfg.data.preset, seed=cfg.data.seed, attackers=list(cfg.evaluation.attackers or []) or None,
        video_attacker=cfg.evaluation.video_attacker, fresh_target=cfg.models.target,
        epochs=cfg.evaluation.epochs, patience=cfg.evaluation.patience, out_dir=out,
        on_row=lambda row: click.echo(
            f"{row.method:15s} A_T {100 * row.target_acc:5.1f} %  A_B^N {100 * row.privacy_acc:5.1f} % "
            f"(worst: {row.worst_attacker})"
        ),
    )
    click.echo(f"{len(rows)} baselines -> {out / 'baselines.csv'}, {out / 'baselines.png'}")


def main() -> None:
    cli(prog_name="raypriv")


if __name__ == "__main__":
    sys.exit(main())
