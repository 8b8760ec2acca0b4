"""Plug & Play, measured: chains conditioned on a classifier of the user's own (or on one unit of E) against the
same chains with epsilon2 = 0 (same G, seeds and starts: the prior term alone), judged by the condition itself
(the classifier's probability of the requested class, the unit's activation) and by the evaluation classifier,
which says whether the images are still digits. The `evaluate` program's library for --condition_model and
--condition_layer, and for an export that conditions on a baked-in classifier."""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np
import tensorflow as tf
from absl import logging

from ppgn_tf import files
from ppgn_tf import plots
from ppgn_tf import random_streams
from ppgn_tf.data import datasets as data_lib
from ppgn_tf.data.idx_format import IMAGE_SHAPE
from ppgn_tf.evaluation import eval_classifier
from ppgn_tf.evaluation import evaluate_lib
from ppgn_tf.evaluation import metrics
from ppgn_tf.evaluation.evaluation_plan import Plan
from ppgn_tf.sampling import condition_model
from ppgn_tf.sampling import condition_spec
from ppgn_tf.sampling import export_layout
from ppgn_tf.sampling import sample_lib
from ppgn_tf.sampling import trained_run

CONFIDENT = 0.9  # The evaluation classifier's top probability above which it calls an image a digit "confidently".


def _chains(plan: Plan, config, spec: condition_spec.ConditionSpec):
  """(condition record, the settings that ran, run(epsilon2) -> ((targets, seeds) -> numpy outputs), G(E(x)) of
  images in [0, 1] (the copy test's and the ceiling's), source info)."""
  if plan.workdir is not None:
    model = trained_run.load_trained(plan.workdir)
    condition = condition_model.resolve(spec, model.encoder)
    prior = trained_run.load_code_prior(plan.workdir, model) if config.needs_code_prior else None
    samplers = {}

    def run(epsilon2):
      if epsilon2 not in samplers:
        samplers[epsilon2] = sample_lib.model_sampler(model, dataclasses.replace(config, epsilon2=epsilon2), prior,
                                                      condition=condition)
      return lambda targets, seeds: {k: v.numpy() for k, v in samplers[epsilon2].sample(targets, seeds).items()}
    info = {"workdir": os.path.abspath(plan.workdir), "generator_steps": int(model.generator_steps.numpy())}
    return condition.record(), config, run, evaluate_lib.library_reconstruct(model), info
  record = sample_lib.saved_model_condition(plan.saved_model, spec.unit)
  if record["kind"] != condition_spec.CLASSIFIER:
    raise ValueError("with --saved_model, the condition evaluation runs an export conditioned on a classifier "
                     "(--unit: evaluate a --workdir; sample_unit has no epsilon2 for the unconditioned chains)")
  settings = config or export_layout.read_export_settings(plan.saved_model)
  signatures = tf.saved_model.load(plan.saved_model).signatures
  signature = signatures["sample"]
  max_batch = export_layout.read_max_batch(plan.saved_model)

  def reconstruct(images01):
    codes = sample_lib.call_in_requests(signatures["encode"], max_batch, images=tf.constant(images01, tf.float32))
    return sample_lib.call_in_requests(signatures["generate"], max_batch, codes=codes["codes"])["images"]

  def run(epsilon2):
    return lambda targets, seeds: sample_lib.call_in_requests(
        signature, max_batch, class_id=tf.constant(targets, tf.int32), seed=tf.constant(seeds, tf.int64),
        steps=tf.constant(settings.steps, tf.int32), epsilon1=tf.constant(settings.epsilon1, tf.float32),
        epsilon2=tf.constant(epsilon2, tf.float32), epsilon3=tf.constant(settings.epsilon3, tf.float32))
  return record, settings, run, reconstruct, {"saved_model": os.path.abspath(plan.saved_model), "signature": "sample"}


def _in_batches(run, targets, seeds, batch: int, what: str) -> dict:
  parts, start = [], time.time()
  for lo in range(0, len(targets), batch):
    parts.append(run(targets[lo:lo + batch], seeds[lo:lo + batch]))
    done = min(lo + batch, len(targets))
    logging.info("%s: %d/%d chains, %.0f s", what, done, len(targets), time.time() - start)
  return {k: np.concatenate([p[k] for p in parts]) for k in parts[0] if k != "trajectory_codes"}


def _judge(out: dict, targets: np.ndarray, record: dict, reference: evaluate_lib.Reference) -> dict:
  """The condition's verdict and the evaluation classifier's (are they digits, how far from real ones)."""
  rows = np.arange(len(targets))
  probs, feats = reference.predict(out["images"])
  top = probs.max(1)
  # What the evaluation classifier calls the images: the share of each digit.
  digit_shares = lambda of: (np.bincount(probs[of].argmax(1), minlength=probs.shape[1]) / np.sum(of)).tolist()
  verdict = {}
  if record["kind"] == condition_spec.CLASSIFIER:
    condition_probs = out["condition_probs"]
    verdict.update(mean_requested_probability=float(np.mean(condition_probs[rows, targets])),
                   accuracy=float(np.mean(condition_probs.argmax(1) == targets)),
                   per_class=[{"class": int(c),
                               "mean_requested_probability": float(np.mean(condition_probs[targets == c, c])),
                               "accuracy": float(np.mean(condition_probs[targets == c].argmax(1) == c)),
                               "eval_classifier_digit_shares": digit_shares(targets == c)}
                              for c in np.unique(targets)])
  else:
    # Units after a ReLU: a chain whose unit is 0 gets no gradient from it, so the share that fires says how many
    # chains the condition reached at all.
    verdict.update(mean_activation=float(np.mean(out["objective"])),
                   median_activation=float(np.median(out["objective"])),
                   active_share=float(np.mean(out["objective"] > 0)))
  fd = reference.frechet(feats, targets)
  verdict.update(
      eval_classifier_mean_top_probability=float(np.mean(top)),
      eval_classifier_confident_share=float(np.mean(top >= CONFIDENT)),
      eval_classifier_digit_shares=digit_shares(np.ones(len(probs), bool)),
      frechet_distance=fd, frechet_vs_floor=metrics.ratio(fd, reference.floor),
      diversity=float(np.mean([metrics.mean_pairwise_distance(out["images"][targets == t])
                               for t in np.unique(targets)])),
      encoder_mean_top_probability=float(np.mean(out["class_probs"].max(1))))
  return verdict


def evaluate_condition(plan: Plan, config, spec: condition_spec.ConditionSpec, *, seed: int = 0,
                       command: str | None = None) -> dict:
  """plan.per_class chains for each class of the condition (or for its unit), conditioned and with epsilon2 = 0,
  judged (`_judge`); writes plan.output (JSON) and its _samples.png (per row of the condition: the conditioned
  chains, then the same chains unconditioned); returns the JSON's contents. `config` None: an export's own
  settings."""
  start = time.time()
  record, settings, run, reconstruct, info = _chains(plan, config, spec)
  targets, row_labels = condition_spec.grid_targets(record, plan.per_class)
  seeds = random_streams.chain_seeds(seed, len(targets))
  reference = evaluate_lib.Reference(plan, len(targets))
  conditioned = _in_batches(run(settings.epsilon2), targets, seeds, plan.batch, "conditioned")
  unconditioned = _in_batches(run(0.0), targets, seeds, plan.batch, "unconditioned (epsilon2 = 0)")
  for out in (conditioned, unconditioned):
    evaluate_lib.check_finite_samples(out["images"])
  # G's ceiling, its reconstructions of held-out digits, and the copy test against those of the training digits.
  _, heldout, ceiling = reference.reconstructions(reconstruct)
  judged = {}
  for name, out in (("conditioned", conditioned), ("unconditioned", unconditioned)):
    copying = reference.copying(out["images"], heldout, reconstruct)
    judged[name] = {**_judge(out, targets, record, reference),
                    **{k: copying[k] for k in ("copy_ratio", "near_copy_share", "exact_duplicate_pairs",
                                               "near_duplicate_pairs", "heldout_near_duplicate_pairs")}}
  real_probs = eval_classifier.predict(reference.classifier, data_lib.normalize(reference.test.images).numpy())
  result = {
      "source": info, "dataset": plan.dataset, "condition": record, "per_class": plan.per_class,
      "num_samples": int(len(targets)), "seed": seed,
      "sampler": {k: v for k, v in dataclasses.asdict(settings).items() if k != "keep_every"},
      "eval_classifier": {"dir": os.path.abspath(plan.eval_classifier_dir), **reference.classifier_metrics},
      **judged,
      "G(E(x_test))": {"images": int(len(heldout)), "accuracy": ceiling["accuracy"],
                       "frechet_distance": ceiling["frechet_distance"],
                       "frechet_vs_floor": metrics.ratio(ceiling["frechet_distance"], reference.floor),
                       "diversity": ceiling["diversity"]},
      # The yardstick of "still digits": the evaluation classifier on the real test digits.
      "real_digits": {"eval_classifier_mean_top_probability": float(np.mean(real_probs.max(1))),
                      "eval_classifier_confident_share": float(np.mean(real_probs.max(1) >= CONFIDENT)),
                      "frechet_real_floor": reference.floor, "frechet_yardstick": reference.yardstick()},
      "confident": CONFIDENT,
  }
  columns = min(plan.per_class, evaluate_lib.GRID_COLUMNS)
  rows = len(row_labels)
  shown = lambda images: images.reshape(rows, plan.per_class, *IMAGE_SHAPE)[:, :columns]
  grid = np.stack([shown(conditioned["images"]), shown(unconditioned["images"])], 1).reshape(-1, *IMAGE_SHAPE)
  grid_path = os.path.splitext(plan.output)[0] + "_samples.png"
  os.makedirs(os.path.dirname(os.path.abspath(grid_path)), exist_ok=True)
  plots.save_image_grid(grid, grid_path, nrow=columns,
                        row_labels=[label for r in row_labels for label in (r, f"{r}, eps2=0")],
                        title=f"conditioned on {condition_spec.describe(record)}, {settings.steps} MALA steps; "
                              "each second row: epsilon2 = 0")
  result.update(samples_png=os.path.basename(grid_path), seconds=time.time() - start, command=command)
  files.write_json(plan.output, result)
  return result


def format_condition(result: dict) -> str:
  """The conditioned and unconditioned chains side by side, with the real digits' figures."""
  c, u, real = result["conditioned"], result["unconditioned"], result["real_digits"]
  on_classifier = result["condition"]["kind"] == condition_spec.CLASSIFIER
  line = lambda name, a, b, r="": f"{name:<44}{a:>13}{b:>15}{r:>8}".rstrip()
  num = lambda v, digits=3: "-" if v is None else f"{v:.{digits}f}"
  lines = [line("metric", "conditioned", "epsilon2 = 0", "real")]
  if on_classifier:
    lines += [line("condition: mean p(requested class)", num(c["mean_requested_probability"]),
                   num(u["mean_requested_probability"])),
              line("condition: accuracy", num(c["accuracy"]), num(u["accuracy"]))]
  else:
    lines += [line("condition: mean activation of the unit", num(c["mean_activation"]), num(u["mean_activation"])),
              line("condition: share of chains where it fires", num(c["active_share"]), num(u["active_share"]))]
  lines += [
      line("eval classifier: mean top probability", num(c["eval_classifier_mean_top_probability"]),
           num(u["eval_classifier_mean_top_probability"]), num(real["eval_classifier_mean_top_probability"])),
      line(f"eval classifier: share top p >= {result['confident']}", num(c["eval_classifier_confident_share"]),
           num(u["eval_classifier_confident_share"]), num(real["eval_classifier_confident_share"])),
      line("Frechet distance / real floor", num(c["frechet_vs_floor"], 2), num(u["frechet_vs_floor"], 2), "1.00"),
      line("diversity (pixels, within a row)", num(c["diversity"]), num(u["diversity"])),
      line("copy ratio (1: as new as unseen digits)", num(c["copy_ratio"]), num(u["copy_ratio"])),
      line("exact duplicate pairs", str(c["exact_duplicate_pairs"]), str(u["exact_duplicate_pairs"])),
      "",
      f"G(E(x_test)), G's ceiling: Frechet distance / real floor {num(result['G(E(x_test))']['frechet_vs_floor'], 2)}"
      f", diversity {num(result['G(E(x_test))']['diversity'])} (within a digit class)",
  ]
  if on_classifier:
    lines += ["", f"{'class':>5}{'p conditioned':>15}{'p eps2=0':>11}"]
    for a, b in zip(c["per_class"], u["per_class"]):
      lines.append(f"{a['class']:>5}{a['mean_requested_probability']:>15.3f}{b['mean_requested_probability']:>11.3f}")
  return "\n".join(lines)
