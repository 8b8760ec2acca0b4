"""The report's library: a markdown report across training runs (metrics, sample grids as Fig. 3, Wasserstein
curves as Fig. 4), runs grouped by seed with t intervals and seed-paired claims (`seed_statistics`). The
program, and what a WORKDIR must hold: ppgn_tf/cli/report.py.
"""

from __future__ import annotations

import collections
import json
import os
import re
import shlex

import numpy as np

from ppgn_tf import files
from ppgn_tf import plots
from ppgn_tf import hardware
from ppgn_tf.data.idx_format import NUM_CLASSES
from ppgn_tf.evaluation import metrics
from ppgn_tf.evaluation import tables
from ppgn_tf.evaluation import seed_statistics as stats
from ppgn_tf.evaluation.evaluation_plan import EVALUATION_FILE
from ppgn_tf.training import run_files
from ppgn_tf.training.run_files import CONFIG_FILE, HISTORY_FILE, OPTIONS_FILE, SUMMARY_FILE

PICTURES_PER_ROW = 3  # Pictures per row of the side-by-side tables.


def run_names(workdirs: list[str]) -> list[str]:
  """Basenames, or parent/basename where basenames repeat."""
  base = [os.path.basename(os.path.normpath(w)) for w in workdirs]
  return [b if base.count(b) == 1 else os.path.join(os.path.basename(os.path.dirname(os.path.normpath(w))), b)
          for w, b in zip(workdirs, base)]


def check_workdirs(workdirs: list[str], evaluate_missing: bool) -> None:
  """Cheap checks before any work; raises ValueError with one line."""
  if not workdirs:
    raise ValueError("give at least one WORKDIR")
  for w in workdirs:
    if not os.path.isdir(w):
      raise ValueError(f"{w}: no such workdir")
    if not os.path.isfile(os.path.join(w, SUMMARY_FILE)):
      raise ValueError(f"{w}/{SUMMARY_FILE}: missing (not a finished run)")
    if not evaluate_missing and not os.path.isfile(os.path.join(w, EVALUATION_FILE)):
      raise ValueError(f"{w}/{EVALUATION_FILE}: missing (run python -m ppgn_tf.evaluate "
                       f"--workdir={w}, or pass --evaluate)")
  stats.group_runs([run_identity(w, name) for w, name in zip(workdirs, run_names(workdirs))])  # One run twice?


def run_identity(workdir: str, name: str) -> dict:
  """What groups a run: its name, seed and configuration without the seed (config.json, options.json, both
  kept in the result)."""
  config = run_files.read_json(os.path.join(workdir, CONFIG_FILE)) or {}
  options = run_files.read_json(os.path.join(workdir, OPTIONS_FILE)) or {}
  return {"name": name, "path": os.path.normpath(os.path.abspath(workdir)), "seed": config.get("seed", 0),
          "key": stats.configuration_key(config, options), "config": config, "options": options}


def format_seconds(seconds: float | None) -> str:
  if seconds is None:
    return "-"
  seconds = int(round(seconds))
  if seconds < 60:
    return f"{seconds} s"
  if seconds < 3600:
    return f"{seconds // 60} min {seconds % 60} s"
  return f"{seconds // 3600} h {seconds % 3600 // 60} min"


_num = tables.number


def _copy(source: str, destination: str) -> None:
  with open(source, "rb") as f:
    content = f.read()
  files.atomic_write(destination, lambda out: out.write(content))


def _picture_table(names: list[str], links: list[str | None]) -> list[str]:
  """Markdown tables of pictures, PICTURES_PER_ROW per row, names as headers."""
  lines = []
  for lo in range(0, len(names), PICTURES_PER_ROW):
    chunk = list(zip(names[lo:lo + PICTURES_PER_ROW], links[lo:lo + PICTURES_PER_ROW]))
    lines += ["| " + " | ".join(n for n, _ in chunk) + " |", "|" + " --- |" * len(chunk),
              "| " + " | ".join(f"![{n}]({l})" if l else "(none)" for n, l in chunk) + " |", ""]
  return lines


# The metrics of a run, with their labels and digits in the tables.
METRICS = (
    ("accuracy", "accuracy", 3),
    ("mean_requested_probability", "mean p", 3),
    ("frechet_distance", "FD", 1),
    ("frechet_vs_floor", "FD / floor", 2),
    ("diversity", "diversity", 3),
    ("copy_ratio", "copy ratio", 2),
    ("reconstruction_mse", "recon MSE", 4),
    ("recon_accuracy", "G(E(x)) accuracy", 3),
    ("recon_frechet_distance", "G(E(x)) FD", 1),
    ("recon_frechet_vs_floor", "G(E(x)) FD / floor", 2),
    ("recon_diversity", "G(E(x)) diversity", 3),
    ("seconds_per_generator_step", "s / G step", 2),
)
_LABELS = {name: (label, digits) for name, label, digits in METRICS}
# The figures of a second evaluation of each run shown beside the first (e.g. the default sampler's beside the
# thesis' sampler's, which decides the claims).
BESIDE_METRICS = (
    ("accuracy", "accuracy", 3),
    ("frechet_vs_floor", "FD / floor", 2),
    ("diversity", "diversity", 3),
    ("copy_ratio", "copy ratio", 2),
)
# The benchmark's experiment (`ppgn_tf.perf.bench.EXPERIMENTS`) that times each configuration's training step.
BENCH_EXPERIMENT_OF = {"3a": "vanilla", "3b": "fc1", "3c": "fc1", "3d": "fc1", "3e": "combined", "3f": "randomized",
                       "3g": "three_critics"}
# What the thesis says of each experiment (its Sec. 5), beside the measured figures in the report's picture.
THESIS_READINGS = {"3a": "the baseline", "3b": "thesis: poor", "3c": "thesis: below 3a, not as sharp",
                   "3d": "thesis: mixed", "3e": "thesis: comparable to 3a, slower",
                   "3f": "thesis: comparable to 3a, faster than 3e", "3g": "no claim (the thesis' future work)"}

# The reproduction at paper scale on a GPU, at three seeds, with one E for every run.
PAPER_SCALE_COMMANDS = """```bash
python train.py --flagfile=flags/vanilla.cfg --workdir=runs/paper/encoder --encoder_only
for seed in 0 1 2; do
  for run in 3a_vanilla:vanilla 3b_fc1_gan_only:fc1_gan_only 3c_fc1_full:fc1_full 3d_fc1_no_gan:fc1_no_gan \\
             3e_combined:combined 3f_randomized:randomized; do
    python train.py --flagfile=flags/${run#*:}.cfg --encoder_dir=runs/paper/encoder/encoder --seed=$seed \\
      --workdir=runs/paper/${run%%:*}/seed$seed
  done
  python train.py --flagfile=flags/combined.cfg --latent_critics=fc1,conv3 --encoder_dir=runs/paper/encoder/encoder \\
    --seed=$seed --workdir=runs/paper/3g_three_critics/seed$seed
done
for d in runs/paper/3*/seed*; do
  python -m ppgn_tf.evaluate --workdir=$d --seed=${d##*seed} --sampler_preset=thesis \\
    --eval_classifier_dir=runs/paper/eval_classifier
done
python -m ppgn_tf.report runs/paper/3*/seed* --output=docs/reports/reproduction_paper.md
```"""


def run_device(summary: dict) -> str | None:
  """What the run's wall times measure: summary.json's CPU model, with its GPUs if it had any."""
  return hardware.compute_device(summary.get("cpu"), summary.get("gpus") or ())


def run_metrics(evaluation: dict, summary: dict) -> dict:
  """A run's metrics by name (None where its evaluation did not measure one)."""
  recon = evaluation.get("reconstructions") or {}  # Absent from evaluations written before it was measured.
  steps, wall = summary.get("generator_steps"), summary.get("wall_seconds")
  return {
      "accuracy": evaluation.get("accuracy"),
      "mean_requested_probability": evaluation.get("mean_requested_probability"),
      "frechet_distance": evaluation.get("frechet_distance"),
      "frechet_vs_floor": evaluation.get("frechet_vs_floor"),
      "diversity": evaluation.get("diversity"),
      "copy_ratio": evaluation.get("copy_ratio"),  # Absent from evaluations written before it was measured.
      "reconstruction_mse": evaluation.get("reconstruction_mse"),
      "recon_accuracy": recon.get("accuracy"),
      "recon_frechet_distance": recon.get("frechet_distance"),
      "recon_frechet_vs_floor": metrics.ratio(recon.get("frechet_distance"), evaluation.get("frechet_real_floor")),
      "recon_diversity": recon.get("diversity"),
      "seconds_per_generator_step": wall / steps if wall and steps else None,
  }


def group_metrics(group: dict, key: str = "metrics", names=tuple(name for name, _, _ in METRICS)) -> dict:
  """{metric: {mean, low, high, std, n, values: {seed: value}}} over a group's seeds of each run's `key` dict
  (None: never measured)."""
  out = {}
  for name in names:
    values = {r["seed"]: r[key][name] for r in group["runs"] if (r.get(key) or {}).get(name) is not None}
    out[name] = {**stats.mean_interval(list(values.values())).as_dict(), "values": values} if values else None
  return out


def group_scale(group: dict) -> dict:
  """The scale a group was trained and judged at, each value as the runs have it (a list where they differ)."""
  def one(values):
    values = sorted({json.dumps(v, sort_keys=True) for v in values})
    return json.loads(values[0]) if len(values) == 1 else [json.loads(v) for v in values]
  runs = group["runs"]
  return {"dim": one(r["config"].get("dim") for r in runs),
          "batch_size": one(r["config"].get("batch_size") for r in runs),
          "generator_steps": one(r["summary"].get("generator_steps") for r in runs),
          "dataset": one(r["options"].get("dataset") for r in runs),
          "precision": one(r["summary"].get("precision") or r["options"].get("precision") for r in runs),
          "chains_per_class": one(r["evaluation"].get("per_class") for r in runs),
          "sampler_steps": one(r["evaluation"]["sampler"].get("steps") for r in runs),
          "frechet_set_size": one((r["evaluation"].get("frechet_yardstick") or {}).get("set_size") for r in runs)}


def _interval_cell(metric: dict | None, digits: int) -> str:
  if metric is None:
    return "-"
  if metric["low"] is None:
    return f"{metric['mean']:.{digits}f}"
  return f"{metric['mean']:.{digits}f} [{metric['low']:.{digits}f}, {metric['high']:.{digits}f}]"


def _comparison_text(part: dict) -> str:
  """`FD 3c - 3a: +12.3 [+2.0, +22.6], 3 seeds` (and the margin of a 'comparable', the side of a 'mixed')."""
  label, digits = _LABELS[part["metric"]]
  head = f"{label} {part['b_group']} − {part['a_group']}"
  interval = part["interval"]
  if interval is None:
    return f"{head}: no seed in common"
  text = f"{head}: {interval['mean']:+.{digits}f}"
  if interval["low"] is not None:
    text += f" [{interval['low']:+.{digits}f}, {interval['high']:+.{digits}f}]"
  unit = part.get("paired_by", "seed")
  text += f", {interval['n']} {unit}{'s' if interval['n'] != 1 else ''}"
  if unit == "round":
    text += " of the benchmark"
  if part["margin"] is not None:
    text += f" (comparable: within ±{part['margin']:.{digits}f})"
  if part["test"] == "mixed":
    text += f": {part['verdict']}"
  if part.get("seeds_to_decide"):
    text += f"; about {part['seeds_to_decide']} {unit}s would decide it at this spread"
  elif part["verdict"] == stats.UNDECIDED and interval["n"] >= 2:
    text += f"; more than {stats.SEEDS_TO_DECIDE_CAP} {unit}s would be needed at this spread"
  for seed, cpus in (part.get("other_cpu_seeds") or {}).items():
    text += f" (seed {seed} left out: trained on different CPUs, {cpus})"
  return text


def _claims_section(claims: list[dict], bench: dict | None = None) -> list[str]:
  lines = ["## The thesis' claims, from seed-paired differences", "",
           "Each claim compares two configurations through the differences of their runs at the same seed, "
           "with the 95% t interval of the mean difference. A difference holds when its interval excludes 0 on "
           f"the claimed side; 'comparable' holds when the interval lies within ±{stats.COMPARABLE_SHARE:.0%} "
           "of the reference configuration's mean, and does not hold when it lies outside; 'mixed' holds when "
           "the configuration is decidedly better than 3a on one metric and decidedly worse on another. "
           "Otherwise the claim is undecided at this scale.", "",
           "| claim | seed-paired differences (mean [95% interval]) | verdict |", "| --- | --- | --- |"]
  for claim in claims:
    if claim["verdict"] == stats.MISSING:
      evidence = "no runs of " + ", ".join(claim["missing"])
    else:
      evidence = "; ".join(_comparison_text(p) for p in claim["parts"])
    lines.append(f"| {claim['claim']} | {evidence} | **{claim['verdict']}** |")
  if bench:
    cpu = (bench.get("cpu") or {}).get("model_name") or "a CPU not recorded"
    lines += ["", f"Timing claims are decided by the benchmark, not by the runs' wall times: `{bench.get('command')}` "
              f"on {cpu} (DIM {bench['bench']['dim']}, {bench['precisions'][0]}), each configuration's training step "
              "timed in interleaved rounds and paired by round."]
  open_claims = [c for c in claims if c["verdict"] == stats.UNDECIDED or c["needs_paper_scale"]]
  if open_claims:
    lines += ["", "### Claims that need paper scale", ""]
    for claim in open_claims:
      reason = claim["needs_paper_scale"] or "undecided here: more seeds, or the thesis' scale"
      lines.append(f"- {claim['claim']} ({claim['verdict']}): {reason}.")
    lines += ["", "At the thesis' scale (DIM 64, 15 epochs of the 60,000 tfds digits), three seeds, on a GPU:", "",
              PAPER_SCALE_COMMANDS]
  return lines + [""]


def _wasserstein_band_picture(group: dict, path: str) -> bool:
  """Fig. 4 for a group: each critic's mean Wasserstein estimate over seeds with its 95% band."""
  curves = {}
  for critic in group["runs"][0]["summary"].get("critics", []):
    per_seed = [r["history"].get(f"w_{critic}") for r in group["runs"]]
    if per_seed and all(per_seed):
      steps, mean, low, high = stats.mean_band([(np.array(h)[:, 0], np.array(h)[:, 1]) for h in per_seed])
      if len(steps):
        curves[critic] = (steps, mean, low, high)
  if not curves:
    return False
  seeds = len(group["runs"])
  plots.save_band_curves(curves, path, title=f"{group['name']}: Wasserstein estimate, mean of {seeds} seed"
                         f"{'s' if seeds != 1 else ''}" + (" (95% band)" if seeds > 1 else ""), ylabel="estimate")
  return True


def _beside_section(groups: list[dict], beside: str, runs: list[dict]) -> list[str]:
  """The second evaluation's figures per configuration (mean [95% interval] over seeds)."""
  samplers = sorted({json.dumps(r["beside_sampler"], sort_keys=True) for r in runs if r["beside_sampler"]})
  lines = [f"### Beside: `{beside}`", "",
           f"The same runs judged by a second evaluation (`{beside}` in each run; its sampler: "
           + "; ".join(f"`{s}`" for s in samplers) + "). The claims are decided on the first.", "",
           "| configuration | seeds | " + " | ".join(label for _, label, _ in BESIDE_METRICS) + " |",
           "|" + " --- |" * (2 + len(BESIDE_METRICS))]
  for group in groups:
    seeds = ", ".join(str(r["seed"]) for r in group["runs"])
    lines.append(f"| {group['name']} | {seeds} | " + " | ".join(
        _interval_cell(group["beside_metrics"][name], digits) for name, _, digits in BESIDE_METRICS) + " |")
  return lines + [""]


def _frechet_picture(groups: list[dict], path: str) -> bool:
  """Each configuration's samples' and G(E(x))'s FD / floor with intervals, the thesis' reading beside."""
  rows = []
  for group in groups:
    series = {}
    for metric, label in (("frechet_vs_floor", "samples"), ("recon_frechet_vs_floor", "G(E(x_test))")):
      m = group["metrics"].get(metric)
      if m is not None:
        series[label] = (m["mean"], m["low"], m["high"])
    reading = next((text for gid, text in THESIS_READINGS.items() if stats.find_group([group], gid)), "")
    if series:
      rows.append((f"{group['name']} ({len(group['runs'])} seeds)", reading, series))
  if not rows:
    return False
  plots.save_interval_rows(rows, path, title="FD / real floor (mean, 95% t interval over seeds)",
                           xlabel="FD / floor (1: as close as held-out real digits)", reference=1.0)
  return True


def bench_rounds(bench: dict, precision: str | None = None) -> dict:
  """{experiment: {round: G iteration seconds}} of a `ppgn_tf.bench` JSON's interleaved rounds (its first
  precision unless `precision`)."""
  part = bench["by_precision"][precision or bench["precisions"][0]]
  rounds = (part.get("experiment_rounds") or {}).get("g_iteration_s")
  if not rounds:
    raise ValueError("the benchmark has no interleaved rounds of experiments (rerun python -m ppgn_tf.bench "
                     "with the experiments to compare)")
  return {name: dict(enumerate(seconds)) for name, seconds in rounds.items()}


def build_report(workdirs: list[str], output: str, title: str = "PPGN runs", images_dir: str | None = None,
                 command: str | None = None, notes: str | None = None, beside: str | None = None,
                 bench: dict | None = None) -> str:
  """Writes the markdown (atomically) and the copied pictures; returns the markdown.

  `notes`: markdown placed after the title (the reader's conclusions; numbers below it are generated).
  `beside`: the file name of a second evaluation in each workdir (e.g. evaluation_default.json) whose figures
  are shown beside the first's; the claims are decided on the first (evaluation.json).
  `bench`: a `ppgn_tf.bench` JSON whose interleaved rounds decide the timing claims (paired by round), instead
  of the runs' wall times (paired by seed).
  """
  check_workdirs(workdirs, evaluate_missing=False)
  if beside:
    missing = [w for w in workdirs if not os.path.isfile(os.path.join(w, beside))]
    if missing:
      raise ValueError(f"{missing[0]}/{beside}: missing (the evaluation shown beside)")
  out_dir = os.path.dirname(os.path.abspath(output))
  images_dir = images_dir or os.path.join(out_dir, os.path.splitext(os.path.basename(output))[0] + "_images")
  os.makedirs(images_dir, exist_ok=True)
  names = run_names(workdirs)
  runs = []
  for w, name in zip(workdirs, names):
    evaluation = run_files.read_json(os.path.join(w, EVALUATION_FILE))
    # Fig. 3: the grid written at the end of training, else the evaluation's. (Fig. 4 is drawn per group below.)
    grids = [os.path.join(w, run_files.SAMPLES_DIR, run_files.SAMPLES_GRID),
             os.path.join(w, evaluation.get("samples_png") or "")]
    pictures = {}
    found = next((p for p in grids if os.path.isfile(p)), None)
    if found:
      target = os.path.join(images_dir, f"{name.replace(os.sep, '_')}_samples.png")
      _copy(found, target)
      pictures["samples"] = os.path.relpath(target, out_dir).replace(os.sep, "/")
      pictures["samples_is_fallback"] = found != grids[0]
    summary = run_files.read_json(os.path.join(w, SUMMARY_FILE))
    beside_evaluation = run_files.read_json(os.path.join(w, beside)) if beside else None
    runs.append({**run_identity(w, name), "summary": summary, "evaluation": evaluation,
                 "beside": None if beside_evaluation is None else {
                     name_: beside_evaluation.get(name_) for name_, _, _ in BESIDE_METRICS},
                 "beside_sampler": None if beside_evaluation is None else beside_evaluation.get("sampler"),
                 "pictures": pictures,
                 "metrics": run_metrics(evaluation, summary),
                 "history": run_files.read_json(os.path.join(w, HISTORY_FILE)) or {}})
  groups = stats.group_runs(runs)
  for group in groups:
    group["metrics"] = group_metrics(group)
    group["scale"] = group_scale(group)
    if beside:
      group["beside_metrics"] = group_metrics(group, "beside", [name for name, _, _ in BESIDE_METRICS])
  def device_of(group, seed):
    return next(run_device(r["summary"]) for r in group["runs"] if r["seed"] == seed)

  rounds = bench_rounds(bench) if bench else None

  def values_of(group, metric):
    if rounds is not None and metric in stats.TIMED_METRICS:
      experiment = next((e for gid, e in BENCH_EXPERIMENT_OF.items() if stats.find_group([group], gid)), None)
      return rounds.get(experiment, {})
    return (group["metrics"][metric] or {}).get("values", {})

  claims = [stats.decide_claim(c, groups, values_of, None if rounds is not None else device_of)
            for c in stats.thesis_claims()]
  for claim in claims:
    for part in claim["parts"]:
      part["paired_by"] = "round" if rounds is not None and part["metric"] in stats.TIMED_METRICS else "seed"
  if all(c["verdict"] == stats.MISSING for c in claims):
    claims = []  # Not the thesis' experiments.

  lines = [f"# {title}", ""]
  if command:
    shown = shown_command(command, workdirs)
    lines += [f"Written by `{shown}`" + ("." if shown == command else
              f" (RUN...: the {len(workdirs)} runs of the per-run table; `{os.path.basename(_json_path(output))}` "
              "holds the whole command)."), ""]
  if notes:
    lines += [notes.strip(), ""]
  lines += ["## Over seeds", "",
            "Runs that differ only in seed form one configuration. Each cell: the mean over seeds and, in "
            "brackets, the 95% t interval of that mean (one seed: the value alone). Each seed's value is in the "
            f"per-run table below and in `{os.path.basename(_json_path(output))}`. The metrics are defined below "
            "the per-run table; s / G step: the run's wall time per G step (noisy where other jobs shared the "
            "machine).", "",
            "| configuration | seeds | critics | " + " | ".join(label for _, label, _ in METRICS) + " |",
            "|" + " --- |" * (3 + len(METRICS))]
  for group in groups:
    seeds = ", ".join(str(r["seed"]) for r in group["runs"])
    critics = ", ".join(group["runs"][0]["summary"].get("critics", []))
    lines.append(f"| {group['name']} | {seeds} | {critics} | "
                 + " | ".join(_interval_cell(group["metrics"][name], digits) for name, _, digits in METRICS) + " |")
  lines.append("")
  if beside:
    lines += _beside_section(groups, beside, runs)
  figure = os.path.join(images_dir, "frechet_by_configuration.png")
  if _frechet_picture(groups, figure):
    lines += ["### Distance to real digits, by configuration", "",
              "Each configuration's FD over the floor (1: as close as held-out real digits), samples and G(E(x)), "
              "with the 95% t interval of the mean over seeds, and what the thesis says of it.", "",
              f"![FD by configuration]({os.path.relpath(figure, out_dir).replace(os.sep, '/')})", ""]
  if claims:
    lines += _claims_section(claims, bench)
  lines += ["## Metrics", "",
            "Each run (each seed). Judged by an evaluation classifier independent of E "
            "(`ppgn_tf/evaluation/eval_classifier.py`). Accuracy: share "
            "of samples labelled as the requested class; mean p: its mean probability of that class; FD: Fréchet "
            "distance of its features to the reference real test digits, in sets of one size (floor: held-out "
            "real digits, judged the same way; docs/evaluation.md, the FD yardstick); "
            "diversity: mean pairwise L2 distance within a class, pixels in [0, 1] (real test images in "
            "brackets); copy ratio: the median distance of a sample to its nearest G(E(x)) of a training "
            "image over the same median for G(E(x)) of test images (1: as new as unseen digits, 0: copies; "
            "duplicate pairs: equal samples); recon MSE: G(E(x)) vs x on test images, pixels in [0, 1]; G(E(x)) columns: the same "
            "metrics of those reconstructions, judged against the true labels: G's ceiling, the best a sampler "
            "can reach with this G (\"-\": not measured by the evaluation).", "",
            "| run | critics | accuracy | mean p | FD (floor) | diversity (real) | copy ratio | duplicate pairs "
            "| recon MSE | G(E(x)) accuracy | G(E(x)) FD | G(E(x)) diversity | G steps | critic steps | wall time |",
            "|" + " --- |" * 15]
  for r in runs:
    e, s = r["evaluation"], r["summary"]
    recon = e.get("reconstructions") or {}  # Absent from evaluations written before it was measured.
    lines.append(
        f"| {r['name']} | {', '.join(s.get('critics', []))} | {_num(e['accuracy'])} "
        f"| {_num(e['mean_requested_probability'])} "
        f"| {_num(e['frechet_distance'], 2)} ({_num(e['frechet_real_floor'], 2)}) "
        f"| {_num(e['diversity'])} ({_num(e['real_diversity'])}) | {_num(e.get('copy_ratio'), 2)} "
        f"| {(e.get('copying') or {}).get('exact_duplicate_pairs', '-')} | {_num(e['reconstruction_mse'], 4)} "
        f"| {_num(recon.get('accuracy'))} | {_num(recon.get('frechet_distance'), 2)} "
        f"| {_num(recon.get('diversity'))} "
        f"| {s.get('generator_steps', '-')} | {s.get('critic_steps', '-')} | {format_seconds(s.get('wall_seconds'))} |")
  settings = sorted({(e["per_class"], e["sampler"]["steps"], e["dataset"], e["eval_classifier"]["test_accuracy"])
                     for e in (r["evaluation"] for r in runs)}, key=str)
  lines.append("")
  for per_class, steps, dataset, clf_accuracy in settings:
    lines.append(f"Evaluated with {per_class} samples per class, {steps} MALA steps, on {dataset}; the evaluation "
                 f"classifier's held-out accuracy {clf_accuracy:.4f}.")
  if len(settings) > 1:
    lines.append("**The runs were evaluated with different settings: compare with care.**")
  devices = collections.Counter(run_device(r["summary"]) or "CPU not recorded" for r in runs)
  lines.append("Trained on " + "; ".join(f"{d}: {n} run{'s' if n != 1 else ''}" for d, n in devices.items())
               + ". Wall times compare only between runs on one CPU model and the same GPUs.")
  compute = {"training_seconds": sum(r["summary"].get("wall_seconds") or 0.0 for r in runs),
             "evaluation_seconds": sum(r["evaluation"].get("seconds") or 0.0 for r in runs)}
  lines.append(f"Compute, summed over the runs: {format_seconds(compute['training_seconds'])} of training and "
               f"{format_seconds(compute['evaluation_seconds'])} of evaluation (besides the shared encoder and "
               "evaluation classifier, trained once).")

  lines += ["", "### Accuracy per class", "",
            "Samples by requested class; below each run, where measured, G(E(x)) of the test images by true class.",
            "", "| run | " + " | ".join(str(c) for c in range(NUM_CLASSES)) + " |",
            "|" + " --- |" * (NUM_CLASSES + 1)]

  def accuracy_row(name, table):
    return f"| {name} | " + " | ".join(_num(row["accuracy"], 2) for row in table) + " |"

  for r in runs:
    lines.append(accuracy_row(r["name"], r["evaluation"]["per_class_table"]))
    recon_table = (r["evaluation"].get("reconstructions") or {}).get("per_class_table")
    if recon_table:  # Absent from evaluations written before it was measured.
      lines.append(accuracy_row(f"{r['name']} G(E(x))", recon_table))
  lines += ["", "## Samples (Fig. 3)", "",
            "One row per class: each run's `samples/samples.png` (written at the end of training), or, for a run "
            "without one, the grid `ppgn_tf.evaluate` wrote (marked \"evaluation grid\").", ""]
  headers = [n + (" (evaluation grid)" if r["pictures"].get("samples_is_fallback") else "") for n, r in zip(names, runs)]
  lines += _picture_table(headers, [r["pictures"].get("samples") for r in runs])
  lines += ["## Wasserstein estimates (Fig. 4)", "",
            "Each configuration's mean over seeds of each critic's estimate per G step, with the 95% t interval of "
            "that mean shaded (one seed: the run's own curve).", ""]
  band_links = []
  for group in groups:
    target = os.path.join(images_dir, f"{group['name'].replace(os.sep, '_')}_wasserstein_band.png")
    drawn = _wasserstein_band_picture(group, target)
    band_links.append(os.path.relpath(target, out_dir).replace(os.sep, "/") if drawn else None)
  lines += _picture_table([g["name"] for g in groups], band_links)
  lines += commands_section(groups)
  markdown = "\n".join(lines)
  files.write_json(_json_path(output), {"command": command,
      "groups": [{"name": g["name"], "seeds": [r["seed"] for r in g["runs"]], "runs": [r["name"] for r in g["runs"]],
                  "scale": g["scale"], "metrics": g["metrics"],
                  **({"beside": {"file": beside, "metrics": g["beside_metrics"]}} if beside else {})}
                 for g in groups],
      "claims": claims, "compute": compute,
      **({"bench": {k: bench.get(k) for k in ("command", "config", "precisions", "cpu", "load_start", "load_end")}}
         if bench else {})})
  files.atomic_write(output, lambda out: out.write(markdown.encode()))
  return markdown


# A report's command longer than this is shown with its workdirs as RUN... (the report's JSON keeps it whole).
COMMAND_SHOWN_CHARS = 300


def shown_command(command: str, workdirs: list[str]) -> str:
  """The command as the report's first line shows it: whole, or, when it would fill a screen, with its workdirs
  (the runs of the per-run table) as one RUN..."""
  words = shlex.split(command)
  listed = set(workdirs)
  if len(command) <= COMMAND_SHOWN_CHARS or not listed & set(words):
    return command
  first = next(i for i, w in enumerate(words) if w in listed)
  rest = [shlex.quote(w) for w in words if w not in listed]
  return " ".join(rest[:first] + ["RUN..."] + rest[first:])


def _run_commands(run: dict) -> list[str]:
  """The training and evaluation commands a run recorded."""
  commands = [run["options"].get("command") or "# (training command not recorded)"]
  if run["evaluation"].get("command"):
    commands.append(run["evaluation"]["command"])
  return commands


def _seed_template(command: str, run: dict) -> str:
  """`command` with the run's own workdir as $RUN and its seed as $SEED."""
  workdir = run["options"].get("workdir")
  if workdir:
    command = re.sub(rf"(?<=[=\s]){re.escape(workdir)}(?=\s|$)", "$RUN", command)
  return re.sub(rf"--seed={run['seed']}(?=\s|$)", "--seed=$SEED", command)


def commands_section(groups: list[dict]) -> list[str]:
  """## Commands: once per configuration when its seeds' commands differ only in the seed and the workdir (as $SEED
  and $RUN, each seed's values in a comment above them), else each run's own."""
  lines = ["## Commands", ""]
  for group in groups:
    runs = group["runs"]
    templates = [[_seed_template(c, r) for c in _run_commands(r)] for r in runs]
    if len(runs) > 1 and all(t == templates[0] for t in templates) and templates[0] != _run_commands(runs[0]):
      values = "; ".join(f"SEED={r['seed']} RUN={r['options'].get('workdir')}" for r in runs)
      lines += [f"### {group['name']}", "", "```bash", f"# {values}", *templates[0], "```", ""]
      continue
    for r in runs:
      lines += [f"### {r['name']}", "", "```bash", *_run_commands(r), "```", ""]
  return lines


def _json_path(output: str) -> str:
  """The report's numbers beside its markdown: every group's statistics, each seed's value, every claim."""
  return os.path.splitext(output)[0] + ".json"


