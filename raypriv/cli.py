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


@cli.command("data")
@click.argument("dataset", type=click.Choice(["sbu"]))
@click.option("--synthetic", is_flag=True, help="Use the embedded procedurally generated stand-in.")
@click.option("--preset", type=click.Choice(PRESET_NAMES), default="laptop", show_default=True,
              help="Clip size (frames x height x width) and, for --synthetic, clips per split.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the clips' nuisances.")
@click.option("--root", default=None, help="Real data folder or s3://bucket/prefix (default: $RAYPRIV_SBU_ROOT).")
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


def main() -> None:
    cli(prog_name="raypriv")


if __name__ == "__main__":
    sys.exit(main())
