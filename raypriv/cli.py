"""The `raypriv` command line: parse, validate, call one library function, print.

Heavy imports (torch, torchvision, Ray, MLflow) happen inside the commands, so `raypriv --help`
is instant.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

PRESET_NAMES = ("tiny", "small", "laptop", "paper")
# Experiments: one search-space YAML each (search_spaces/EXPERIMENT.yaml), which names its data sets.
EXPERIMENTS = ("sbu", "ucf101-vispr")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="raypriv")
def cli() -> None:
    """raypriv: learn privacy-preserving video degradations and search their trade-offs on Ray."""


_experiment = click.argument("experiment", type=click.Choice(EXPERIMENTS))
_synthetic = click.option("--synthetic", is_flag=True, help="Use the embedded procedurally generated stand-in.")
_root = click.option("--root", default=None,
                     help="Real data folder or s3://bucket/prefix (default: $RAYPRIV_SBU_ROOT, $RAYPRIV_UCF101_ROOT, "
                          "$RAYPRIV_VISPR_ROOT); ucf101-vispr reads ROOT/ucf101 and ROOT/vispr.")
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
@click.argument("dataset", type=click.Choice(["sbu", "ucf101", "vispr"]))
@_synthetic
@click.option("--preset", type=click.Choice(PRESET_NAMES), default="laptop", show_default=True,
              help="Clip size (frames x height x width) and, for --synthetic, clips per split.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the clips' nuisances.")
@_root
@click.option("--fold", type=click.IntRange(1, 3), default=1, show_default=True, help="UCF-101's official split.")
@click.option("--subset", type=click.Choice(["vispr17", "vispr7", "all"]), default="vispr17", show_default=True,
              help="VISPR's privacy attributes.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write a PNG contact sheet (one row per action, or a grid of images) to this file.")
def data_command(dataset: str, synthetic: bool, preset: str, seed: int, root: str | None, fold: int, subset: str,
                 out: Path | None) -> None:
    """Build every split of DATASET and summarise it (sizes, class balance, build time)."""
    from raypriv.method.data import SPLITS, build_dataset
    from raypriv.method.data.summary import contact_sheet, summarise

    first = None
    for split in SPLITS:
        start = time.perf_counter()
        try:
            ds = build_dataset(dataset, split, synthetic=synthetic, preset=preset, seed=seed, root=root, fold=fold,
                               subset=subset)
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
    from raypriv.method.models.summary import model_table

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


def _load_config(experiment: str, config: Path | None, profile: str, overrides: tuple[str, ...],
                 sweep_trial: bool = False):
    from raypriv.method.config import ConfigError
    from raypriv.method.run import resolve_run_config

    try:
        return resolve_run_config(_space_path(experiment, config), profile, overrides, sweep_trial=sweep_trial)
    except ConfigError as err:
        raise click.ClickException(str(err)) from None


@cli.command("train")
@_run_options
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for degrader.pt2, weights.safetensors, config.yaml, metrics.json, samples.png.")
def train_command(experiment, synthetic, root, profile, config, overrides, out) -> None:
    """Train one degrader with Algorithm 1 (no Ray) and evaluate it two-fold."""
    cfg = _load_config(experiment, config, profile, overrides)
    from raypriv.method.run import run_training
    from raypriv.report.confirmed import privacy_label

    try:
        result = run_training(cfg, out, synthetic=synthetic, root=root, progress=sys.stderr.isatty(), log=click.echo)
    except (FileNotFoundError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    except FloatingPointError as err:
        raise click.ClickException(f"training diverged: {err}; lower the learning rates or gamma") from None
    ev = result.evaluation
    click.echo(
        f"A_T {100 * ev.target_acc:.1f} %  A_T fresh {100 * ev.target_acc_fresh:.1f} %  "
        f"{privacy_label(ev.privacy_metric)} {100 * ev.privacy_acc:.1f} % (worst: {ev.worst_attacker}; "
        f"chance {100 * ev.chance_privacy:.1f} %)  in {result.seconds['total']:.0f} s -> {out}"
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

    from raypriv.method.run import evaluate_exported

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
@_root
@_profile
@_config
@_set
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for baselines.csv and baselines.png.")
@click.option("--methods", default=None, metavar="NAME,…",
              help="Comma-separated subset of: raw, downsample_s2, downsample_s4, downsample_s8, downsample_s16, "
                   "face_crop, body_crop, silhouette (default: all; ucf101-vispr has no masks: raw and "
                   "downsample_s* only).")
@click.option("--sweep-trial", is_flag=True,
              help="Use the profile's `trial:` fidelity (data, epochs, attackers) as a sweep's trials do, so the "
                   "baselines can be overlaid on that sweep's Pareto plot (`raypriv sweep --baselines`).")
def baselines_command(experiment, synthetic, root, profile, config, overrides, out, methods, sweep_trial) -> None:
    """The paper's baselines (raw, downsampling, face / body cropping, silhouette) through the two-fold protocol.

    On SBU they need the synthetic set's masks (--synthetic); on ucf101-vispr, raw and downsampling run
    on the real data or the stand-in alike."""
    cfg = _load_config(experiment, config, profile, overrides, sweep_trial)
    cross = cfg.data.privacy_dataset is not None
    if not synthetic and not cross:
        raise click.ClickException("baselines need the synthetic set's face and body masks: pass --synthetic")
    from raypriv.method.baselines import run_baselines
    from raypriv.method.data import load_run_data
    from raypriv.method.models import budget_model_names, families_of
    from raypriv.method.run import evaluation_workers, run_attackers
    from raypriv.report.confirmed import privacy_label

    # The attackers a degrader trained with this config would face, so the points compare.
    families = families_of(budget_model_names(cfg.budget))
    try:
        rows = run_baselines(
            cfg.data.preset, seed=cfg.seed, data_seed=cfg.data.seed, methods=methods.split(",") if methods else None,
            attackers=run_attackers(cfg, families),
            video_attacker=cfg.evaluation.video_attacker, fresh_target=cfg.models.target, budget_families=families,
            epochs=cfg.evaluation.epochs, patience=cfg.evaluation.patience, min_epochs=cfg.evaluation.min_epochs,
            train_frames=cfg.evaluation.train_frames,
            workers=evaluation_workers(cfg),
            out_dir=out,
            on_row=lambda row: click.echo(
                f"{row.method:15s} A_T {100 * row.target_acc:5.1f} %  {privacy_label(row.result.privacy_metric)} "
                f"{100 * row.privacy_acc:5.1f} % (worst: {row.worst_attacker})"
            ),
            data=load_run_data(cfg.data, synthetic=synthetic, root=root) if cross else None,
        )
    except (FileNotFoundError, ValueError) as err:  # e.g. an unknown method name, missing data
        raise click.ClickException(str(err)) from None
    if rows:
        from raypriv.report.render import Point, baseline_kind, plot_tradeoff

        chance = (rows[0].result.chance_target, rows[0].result.chance_privacy)
        plot_tradeoff([Point(r.method, baseline_kind(r.method), r.target_acc, r.privacy_acc) for r in rows],
                      out / "baselines.png",
                      title=f"Baselines ({experiment}, profile {profile})", chance=chance)
    click.echo(f"{len(rows)} baselines -> {out / 'baselines.csv'}, {out / 'baselines.png'}")


_home = click.option("--home", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="Folder of the embedded stores: MLflow sqlite + artifacts, Optuna sqlite, Ray experiment "
                          "state, reports (default: $RAYPRIV_HOME, else ./.raypriv).")
_baselines = click.option("--baselines", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
                          help="A baselines.csv from `raypriv baselines`, overlaid on pareto.png / pareto.html.")


@cli.command("sweep")
@_run_options
@click.option("--trials", type=click.IntRange(min=1), default=None, help="Trials in the sweep (default: the profile's).")
@click.option("--concurrency", type=click.IntRange(min=1), default=None,
              help="Trials running at once (default: the profile's); must fit the cluster's CPUs.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Ray Train workers per trial, data-parallel ranks of the loop (default: the profile's); "
                   "concurrency x (trial_cpus + workers x cpus_per_worker) must fit the cluster's CPUs.")
@click.option("--sampler", type=click.Choice(["tpe", "nsga2", "random"]), default=None,
              help="Optuna's multi-objective sampler (default: the profile's, tpe).")
@click.option("--seed", type=int, default=None, help="The sampler's seed (default: the profile's, 0); part of the sweep id.")
@click.option("--confirm", type=click.IntRange(min=0), default=None, metavar="K",
              help="After screening, re-run the K best configurations at the full protocol (the profile without "
                   "its trial: fidelity), beside the control arm and the baselines; 0: screening only "
                   "(default: the profile's sweep.confirm).")
@click.option("--replicates", type=click.IntRange(min=1), default=None, metavar="R",
              help="Seeds of each confirmation run (default: the profile's sweep.replicates).")
@click.option("--resume", is_flag=True, help="Continue the sweep with this id (same profile, --set, --sampler, --seed), "
                                             "in whichever stage it stopped.")
@click.option("--resume-if-exists", is_flag=True,
              help="Continue the sweep if it exists, else start it: safe to submit again (RayJob retries).")
@_home
@click.option("--optuna-storage", default=None, metavar="URL",
              help="Optuna RDB storage URL (default: $RAYPRIV_OPTUNA_STORAGE, else sqlite under --home).")
@click.option("--ray-storage", default=None, metavar="DIR|URI",
              help="Ray Tune / Train storage, e.g. s3://bucket/prefix; on a cluster every node must reach it "
                   "(default: $RAYPRIV_RAY_STORAGE, else --home/ray).")
@_baselines
def sweep_command(experiment, synthetic, root, profile, config, overrides, trials, concurrency, workers, sampler, seed,
                  confirm, replicates, resume, resume_if_exists, home, optuna_storage, ray_storage, baselines) -> None:
    """Search the trade-off: Ray Tune + Optuna (maximise A_T, minimise A_B^N) over Ray Train trials,
    then confirm the best configurations at the full protocol with several seeds (--confirm).

    Every trial trains and evaluates one degrader; MLflow gets one parent run per sweep and one child
    run per trial. With no RAY_ADDRESS a local Ray starts on 127.0.0.1; with no MLFLOW_TRACKING_URI
    the runs go to a sqlite store under --home. Ends with the Pareto front and where to browse it.
    """
    from raypriv.method.config import ConfigError
    from raypriv.sweep.config import load_sweep_config

    settings = {"trials": trials, "concurrency": concurrency, "workers": workers, "sampler": sampler, "seed": seed,
                "confirm": confirm, "replicates": replicates}
    try:
        sweep_cfg = load_sweep_config(_space_path(experiment, config), profile, overrides, settings)
    except ConfigError as err:
        raise click.ClickException(str(err)) from None
    from raypriv.sweep.driver import SweepError, run_sweep
    from raypriv.sweep.tracking import locations, redact

    if resume and resume_if_exists:
        raise click.UsageError("pass --resume or --resume-if-exists, not both")
    where = locations(home, optuna_storage, ray_storage)
    try:
        outcome = run_sweep(sweep_cfg, synthetic=synthetic, root=root, locations=where, resume=resume,
                            resume_if_exists=resume_if_exists, baselines=baselines, echo=click.echo)
    except SweepError as err:
        raise click.ClickException(str(err)) from None
    report = outcome.report
    click.echo(f"\nsweep {outcome.sweep_id}: {len(report.records)} trials, {len(report.complete)} complete "
               f"({outcome.study_complete} COMPLETE in the Optuna study), {len(outcome.errored)} failed, "
               f"{len(outcome.diverged)} diverged, in {outcome.seconds:.0f} s")
    click.echo("wall time per stage: " + ", ".join(f"{k} {v:.0f} s" for k, v in outcome.stage_seconds.items()))
    stages = [("screening", outcome), ("confirmation", outcome.confirmation)]
    for stage, result in stages:
        if result and result.diverged:
            click.echo(f"diverged in {stage} (loss became NaN/inf; FAILED in MLflow with the reason in tag "
                       f"raypriv.failure, FAIL in Optuna, left out of the Pareto front): {', '.join(result.diverged)}")
        if result and result.overhead_seconds:
            overheads = sorted(result.overhead_seconds.values())
            click.echo(f"Ray + MLflow overhead per {stage} trial (trial wall time minus training): median "
                       f"{overheads[len(overheads) // 2]:.1f} s, max {overheads[-1]:.1f} s")
    _echo_report(report, list(sweep_cfg.space), where, outcome.sweep_id, sweep_cfg.name, outcome.ui_path,
                 outcome.registered)
    click.echo(f"Optuna:  optuna-dashboard {redact(where.optuna_storage)}   (study {outcome.sweep_id}; "
               f"pip install optuna-dashboard)")
    if outcome.status == "KILLED":
        raise click.ClickException(f"sweep {outcome.sweep_id} was interrupted before all its trials ended; the same "
                                   f"command with --resume continues it")
    failed = [name for _, result in stages if result for name in result.errored]
    if failed:
        raise click.ClickException(f"{len(failed)} trial(s) failed: {', '.join(failed)} "
                                   f"(their errors are in the Tune output above; Ray Train retried each "
                                   f"{sweep_cfg.sweep.max_failures} time(s), see sweep.max_failures)")


def _int_list(ctx, param, value: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from None


@cli.command("compare")
@_run_options
@click.option("--arms", required=True, metavar="A,B,…",
              help="Comma-separated arms from the YAML's `arms:` (e.g. game,no_game); the first is the reference.")
@click.option("--seeds", default="0,1,2", show_default=True, callback=_int_list, metavar="S,…",
              help="Seeds every arm runs with (model initialisation, batch order, attacker draw).")
@click.option("--concurrency", type=click.IntRange(min=1), default=None,
              help="Runs at once (default: the profile's sweep.concurrency); must fit the cluster's CPUs.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Ray Train workers (data-parallel ranks) per run (default: the profile's).")
@click.option("--resume", is_flag=True, help="Continue the comparison with these arms, seeds and --set; "
                                             "finished runs are not run again.")
@click.option("--resume-if-exists", is_flag=True, help="Continue the comparison if it exists, else start it.")
@_home
@click.option("--ray-storage", default=None, metavar="DIR|URI",
              help="Ray Tune / Train storage (default: $RAYPRIV_RAY_STORAGE, else --home/ray).")
@_baselines
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for runs.csv, summary.csv, compare.png and compare.html.")
def compare_command(experiment, synthetic, root, profile, config, overrides, arms, seeds, concurrency, workers,
                    resume, resume_if_exists, home, ray_storage, baselines, out) -> None:
    """Replicated, paired evidence: every arm x seed as one full-protocol run on Ray (MLflow child runs
    under one parent run), then the mean ± std of each arm and its paired difference to the first arm."""
    from raypriv.method.config import ConfigError
    from raypriv.sweep.config import load_compare_config

    if resume and resume_if_exists:
        raise click.UsageError("pass --resume or --resume-if-exists, not both")
    settings = {"concurrency": concurrency, "workers": workers}
    try:
        cfg = load_compare_config(_space_path(experiment, config), profile, tuple(a for a in arms.split(",") if a),
                                  seeds, overrides, settings)
    except ConfigError as err:
        raise click.ClickException(str(err)) from None
    from raypriv.sweep.compare import run_compare, summary_markdown
    from raypriv.sweep.driver import SweepError
    from raypriv.sweep.tracking import locations

    where = locations(home, None, ray_storage)
    try:
        outcome = run_compare(cfg, synthetic=synthetic, root=root, locations=where, out_dir=out, resume=resume,
                              resume_if_exists=resume_if_exists, baselines=baselines, echo=click.echo)
    except SweepError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"\ncomparison {outcome.sweep_id}: {len(outcome.rows)} runs in {outcome.seconds:.0f} s\n")
    click.echo(summary_markdown(outcome.summary, outcome.privacy))
    click.echo(f"\nfiles: {', '.join(str(p) for p in outcome.files)} (also on the MLflow parent run {outcome.sweep_id})")
    click.echo(f"MLflow:  {where.mlflow_ui_command()}   (experiment {cfg.name})")
    if outcome.interrupted or outcome.errored or outcome.diverged:
        raise click.ClickException(f"{len(outcome.errored)} run(s) failed, {len(outcome.diverged)} diverged"
                                   + (", interrupted" if outcome.interrupted else "") +
                                   "; the same command with --resume runs what is missing")


@cli.command("pareto")
@_experiment
@click.option("--sweep", "sweep", default=None, metavar="ID", help="Sweep id (default: the latest sweep).")
@_home
@_baselines
def pareto_command(experiment, sweep, home, baselines) -> None:
    """Rebuild a sweep's Pareto report from MLflow alone and log it on the sweep's parent run."""
    from raypriv.sweep.tracking import locations, rebuild_report, ui_path

    where = locations(home)
    try:
        report, parent, registered = rebuild_report(experiment, sweep, where, baselines=baselines)
    except LookupError as err:
        raise click.ClickException(str(err.args[0])) from None
    names = sorted({k for r in report.records for k in r.params})
    _echo_report(report, names, where, report.sweep, experiment, ui_path(parent.experiment_id, parent.run_id),
                 registered)


def _echo_report(report, param_names, where, sweep: str, experiment: str, path: str, registered=None) -> None:
    from raypriv.report.confirmed import format_confirmed
    from raypriv.report.front import format_front
    from raypriv.sweep.registry import KNEE_ALIAS

    click.echo(f"\nPareto front (A_T up, A_B^N down) over {len(report.complete)} complete full-budget trials:")
    click.echo(format_front(report, param_names) if report.front else "(no complete trial yet)")
    if report.confirmation:
        click.echo("\nConfirmed at the full protocol (mean ± std over seeds):")
        click.echo(format_confirmed(report.confirmation, report.privacy))
    if registered and registered.error:
        click.echo(f"\nModel Registry: the front was not registered as {registered.name}: {registered.error}")
    elif registered:
        click.echo(f"\nModel Registry: {registered.name} versions "
                   f"{', '.join(f'{v} ({t})' for t, v in registered.versions.items())}; "
                   f"mlflow.pyfunc.load_model('models:/{registered.name}@{KNEE_ALIAS}') is version {registered.knee}")
    click.echo(f"\nReport:  {where.report_dir(sweep)}/pareto.png, pareto.html, pareto.csv, front/*.yaml "
               f"(also on the MLflow parent run {sweep})")
    click.echo(f"MLflow:  {where.mlflow_ui_command()}   (experiment {experiment}, parent run {sweep})")
    click.echo(f"         then {where.mlflow_ui_address(path)}   (the parent run, in the model-training view)")


def main() -> None:
    cli(prog_name="raypriv")


if __name__ == "__main__":
    sys.exit(main())
