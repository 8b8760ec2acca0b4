"""The sweep's library: a grid of named sampler settings run on one trained run with the same chains, each
judged as evaluate judges, the choice rule, and the markdown write-up (the program: ppgn_tf/cli/sweep.py).
"""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np
from absl import logging

from ppgn_tf import files
from ppgn_tf import plots
from ppgn_tf.data.idx_format import IMAGE_SHAPE, NUM_CLASSES
from ppgn_tf.evaluation import evaluate_lib as evaluate
from ppgn_tf.evaluation.evaluation_plan import Plan
from ppgn_tf.evaluation import metrics
from ppgn_tf.evaluation.sweep_grid import GRID
from ppgn_tf.sampling import sampler_config as settings_lib
from ppgn_tf.sampling import trained_run
from ppgn_tf.training import run_files



MIN_COPY_RATIO = 0.95  # Samples must be about as far from the training digits as unseen digits are.


def draws_new_digits(row: dict) -> bool:
  """Whether a setting's samples are new digits: a copy ratio of at least MIN_COPY_RATIO, no two samples equal,
  and no more near-duplicate pairs than as many of G's reconstructions of unseen digits have."""
  return (row["copy_ratio"] is not None and row["copy_ratio"] >= MIN_COPY_RATIO
          and row["exact_duplicate_pairs"] == 0
          and row["near_duplicate_pairs"] <= row["heldout_near_duplicate_pairs"])


def choose(rows: list[dict], min_accuracy: float, min_diversity: float = 0.0) -> dict | None:
  """The choice rule: among settings that draw new digits (`draws_new_digits`), whose accuracy reaches
  `min_accuracy` and whose diversity reaches `min_diversity`, the lowest Fréchet distance; diversity breaks
  ties. None when no setting qualifies.

  The diversity floor is what keeps the rule from picking a sampler that draws one good digit per class; the copy
  test, one that returns G's pictures of training digits.
  """
  eligible = [r for r in rows if r["accuracy"] >= min_accuracy and r["diversity"] >= min_diversity
              and draws_new_digits(r)]
  if not eligible:
    return None
  return min(eligible, key=lambda r: (round(r["frechet_distance"], 6), -r["diversity"]))


def run_sweep(plan: Plan, names: list[str], seed: int, min_accuracy: float, min_diversity_ratio: float,
              min_real_diversity_ratio: float = 0.0) -> dict:
  """Samples and judges every setting of `names` (of GRID) with plan.per_class chains per class, plan.batch per
  call, on plan.workdir's run; returns the results (rows, ceiling, floor, choice, grids). `plan` comes from
  evaluation_plan.make_plan, which checked its sizes and workdir."""
  workdir, per_class = plan.workdir, plan.per_class
  reference = evaluate.Reference(plan, per_class * NUM_CLASSES)
  model = trained_run.load_trained(workdir)
  # G(E(x)) with the G the chains use (the averaged one when the run keeps it).
  reconstruct = evaluate.library_reconstruct(model)
  _, heldout, ceiling = reference.reconstructions(reconstruct)
  rows, grids = [], {}
  for i, name in enumerate(names):
    config = dataclasses.replace(settings_lib.SamplerConfig(), **GRID[name])
    sample, start_codes = evaluate.library_calls(trained_run.make_sampler(workdir, model, config))
    start = time.time()
    chains = evaluate.sample_chains(sample, per_class, seed, plan.batch, start_codes)  # evaluate's chains.
    images = chains.images
    evaluate.check_finite_samples(images)
    judged = reference.judge(images, chains.requested)
    copying = reference.copying(images, heldout, reconstruct)
    row = {"name": name, "settings": GRID[name], "seconds": time.time() - start,
           **{k: judged[k] for k in ("accuracy", "mean_requested_probability", "frechet_distance", "diversity")},
           **{k: copying[k] for k in ("copy_ratio", "near_copy_share", "exact_duplicate_pairs",
                                      "near_duplicate_pairs", "heldout_near_duplicate_pairs")},
           "median_code_move": metrics.median_code_move(chains.start_codes, chains.end_codes)}
    rows.append(row)
    grids[name] = images.reshape(NUM_CLASSES, per_class, *IMAGE_SHAPE)[:, :min(per_class, evaluate.GRID_COLUMNS)]
    logging.info("Setting %d/%d %s: accuracy %.3f, FD %.1f, diversity %.2f, copy ratio %.2f, %d duplicate pairs "
                 "(%.0f s)", i + 1, len(names), name, row["accuracy"], row["frechet_distance"], row["diversity"],
                 row["copy_ratio"], row["exact_duplicate_pairs"], row["seconds"])
  summary = run_files.read_json(os.path.join(workdir, run_files.SUMMARY_FILE)) or {}
  return {"workdir": os.path.abspath(workdir), "per_class": per_class, "seed": seed,
          "generator_steps": int(model.generator_steps.numpy()),
          # How the run was trained, so the report names it (the sweep itself samples in fp32).
          "training_precision": summary.get("precision"), "training_cpu": summary.get("cpu"),
          "averaged_generator": model.sampling_generator is not model.generator,
          "floor": reference.floor, "frechet_yardstick": reference.yardstick(), "real_diversity": judged["real_diversity"],
          "ceiling": {k: ceiling[k] for k in ("accuracy", "mean_requested_probability", "frechet_distance",
                                              "diversity")},
          "rows": rows, "choice": choose(rows, min_accuracy, max(min_diversity_ratio * ceiling["diversity"],
                                                                 min_real_diversity_ratio * judged["real_diversity"])),
          "min_accuracy": min_accuracy, "min_diversity_ratio": min_diversity_ratio,
          "min_real_diversity_ratio": min_real_diversity_ratio, "grids": grids}


def _settings_text(settings: dict) -> str:
  return ", ".join(f"{k}={v}" for k, v in settings.items()) or "Eq. 8, the thesis' values"


def write_report(result: dict, output: str, best: int, command: str) -> None:
  """The markdown, its plot and its sample grids (PNG, beside it in OUTPUT_STEM_images/)."""
  stem = os.path.splitext(output)[0]
  images_dir = stem + "_images"
  os.makedirs(images_dir, exist_ok=True)
  rows, ceiling, floor = result["rows"], result["ceiling"], result["floor"]
  plot = os.path.join(images_dir, "settings.png")
  plots.save_setting_bars([r["name"] for r in rows], {
      "accuracy": [r["accuracy"] for r in rows],
      "diversity / G(E(x))'s": [r["diversity"] / ceiling["diversity"] for r in rows],
      "FD / G(E(x))'s": [r["frechet_distance"] / ceiling["frechet_distance"] for r in rows]}, plot,
      title=f"{len(rows)} sampler settings, {result['per_class']} chains per class")
  ranked = sorted((r for r in rows if r["name"] != "thesis"),
                  key=lambda r: (r["accuracy"] < result["min_accuracy"], r["frechet_distance"]))[:best]
  shown = [r for r in rows if r["name"] == "thesis"] + ranked
  grid_rows = []
  for r in shown:  # One picture row per setting: the first sample of every class, then the second...
    grid = result["grids"][r["name"]]
    grid_rows.append(grid[:, :2].transpose(1, 0, 2, 3, 4).reshape(-1, *IMAGE_SHAPE))
  grids_png = os.path.join(images_dir, "best_settings.png")
  plots.save_image_grid(np.concatenate(grid_rows), grids_png, nrow=2 * NUM_CLASSES,
                        row_labels=[r["name"] for r in shown],
                        title="two chains per class (0-9, then 0-9 again) for each setting")

  def rel(path):
    return os.path.relpath(path, os.path.dirname(os.path.abspath(output)))

  lines = [
      "# Sampler settings on one trained run", "",
      f"Run: `{result['workdir']}` at generator step {result['generator_steps']}"
      f"{' (averaged G)' if result['averaged_generator'] else ''}; {result['per_class']} chains per class, seed "
      f"{result['seed']}, the same chains for every setting. Judged by `ppgn_tf.evaluate`'s independent classifier.",
      "", f"The run trained in {result.get('training_precision') or 'an unrecorded precision'} on "
      f"{result.get('training_cpu') or 'an unrecorded CPU'}; every setting samples in fp32.",
      "", f"Command: `{command}`", "",
      f"G's ceiling, its reconstructions G(E(x)) of the test images: accuracy {ceiling['accuracy']:.3f}, FD "
      f"{ceiling['frechet_distance']:.1f}, diversity {ceiling['diversity']:.2f}. Real test digits: FD floor "
      f"{floor:.1f}, diversity {result['real_diversity']:.2f}.", "",
      "Copy ratio: the median distance of a sample to its nearest G(E(x)) of a training digit, over the same "
      "median for G(E(x)) of held-out digits (1: as new as unseen digits; 0: copies). Near copies: the share of "
      f"samples nearer to a training digit's G(E(x)) than {metrics.NEAR_PERCENTILE:g}% of held-out digits are. "
      "Duplicate pairs: equal samples / samples that close to each other (held-out digits: "
      f"{rows[0]['heldout_near_duplicate_pairs'] if rows else '-'} such pairs). Move: the median |h_T - h_0| of "
      "the chains' codes.", "",
      "| setting | changes to Eq. 8 | accuracy | mean p | FD | FD / floor | FD / G(E(x)) | diversity "
      "| diversity / G(E(x)) | copy ratio | near copies | duplicate pairs (exact / near) | move | s |",
      "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
  ]
  for r in rows:
    lines.append(f"| {r['name']} | {_settings_text(r['settings'])} | {r['accuracy']:.3f} | "
                 f"{r['mean_requested_probability']:.3f} | {r['frechet_distance']:.1f} | "
                 f"{r['frechet_distance'] / floor:.1f} | {r['frechet_distance'] / ceiling['frechet_distance']:.2f} | "
                 f"{r['diversity']:.2f} | {r['diversity'] / ceiling['diversity']:.2f} | {r['copy_ratio']:.2f} | "
                 f"{r['near_copy_share']:.2f} | {r['exact_duplicate_pairs']} / {r['near_duplicate_pairs']} | "
                 f"{r['median_code_move']:.2f} | {r['seconds']:.0f} |")
  choice = result["choice"]
  lines += ["", f"![figures per setting]({rel(plot)})", "", f"![best settings]({rel(grids_png)})", "",
            f"Choice rule: among settings with accuracy >= {result['min_accuracy']} and diversity >= "
            f"{result['min_diversity_ratio']} x G(E(x))'s and >= {result.get('min_real_diversity_ratio', 0.0)} x "
            f"real digits', that draw new digits (copy ratio >= {MIN_COPY_RATIO}, no equal samples, no more "
            "near-duplicate pairs than held-out digits), the lowest FD (then the highest diversity)."]
  lines.append(f"Chosen: **{choice['name']}** ({_settings_text(choice['settings'])})." if choice else
               "No setting passed the rule.")
  files.atomic_write(output, lambda out: out.write(("\n".join(lines) + "\n").encode()))


