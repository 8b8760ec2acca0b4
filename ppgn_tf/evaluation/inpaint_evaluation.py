"""How well in-painting fills in, per mask, judged by the evaluation classifier: the `evaluate --inpaint_mask`
program's library. The same measures run on a workdir (the library sampler) and on an export (its signatures).

The digits: each class' test digits are split in halves; the first half tuned the in-painting presets
(docs/reports/inpainting_study.py), the second is reported on here (`report_rows`). For each mask (the part known):
  - accuracy of the completed digits, each asked for its true class, in the deterministic setting (preset
    `inpaint`) and the varied one (`inpaint_varied`), against two baselines: the unknown part filled with the
    training set's per-pixel mean image (no model at all), and the deterministic chain started from the
    sampler's own h_0 (a start that ignores the image: the random start);
  - the unknown part's squared error against the real digit, for each;
  - the spread of completions over 4 seeds (mean pairwise distance of the unknown part), against the spread of
    real digits of one class in that part;
  - class steering: every digit asked for every class, how often the completion is judged the requested class;
    against the same chains with epsilon2 = 0 (no class gradient), and against what the known part allows,
    estimated by completing it with the unknown part of the training digit of the requested class whose known
    part is nearest (a real completion of that class that fits the context);
  - a grid: per class one digit, its masked input, the real digit, the completions and the baselines.
"""

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
from ppgn_tf.data.idx_format import IMAGE_SHAPE, NUM_CLASSES
from ppgn_tf.evaluation import metrics
from ppgn_tf.evaluation.evaluate_lib import Reference
from ppgn_tf.evaluation.evaluation_plan import Plan
from ppgn_tf.sampling import export_layout
from ppgn_tf.sampling import mala_sampler
from ppgn_tf.sampling import sample_lib
from ppgn_tf.sampling import sampler_config as sampler_config_lib
from ppgn_tf.sampling import trained_run

SPREAD_SEEDS = 4  # Completions per digit whose spread is measured.
DETERMINISTIC, VARIED = "inpaint", "inpaint_varied"  # The presets, and the export's signatures, of the two settings.


def report_rows(labels: np.ndarray, per_class: int) -> np.ndarray:
  """Rows of at most `per_class` test digits of each class from the second half of that class' test digits (the
  first half tunes the presets), class by class."""
  rows = []
  for c in range(NUM_CLASSES):
    of_class = np.flatnonzero(labels == c)
    rows.append(of_class[len(of_class) // 2:][:per_class])
  return np.concatenate(rows)


def pairwise_spread(region: np.ndarray) -> float:
  """Mean Euclidean distance over pairs of rows of `region` [n, pixels] (0 for identical rows)."""
  return metrics.mean_pairwise_distance(region) if len(region) > 1 else 0.0


def nearest_real_completions(images: np.ndarray, mask: np.ndarray, train_images: np.ndarray,
                             train_labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
  """For each image and requested class: the known part of the image, the unknown part of the training digit of
  that class whose known part is nearest (squared distance). What a real digit of the class that fits the context
  looks like: the yardstick of what the known part allows."""
  known = mask[..., 0] > 0
  flat_known = images[..., 0][:, known]
  out = np.empty_like(images)
  for c in np.unique(classes):
    pool = train_images[train_labels == c]
    pool_known = pool[..., 0][:, known]
    rows = np.flatnonzero(classes == c)
    d2 = (np.sum(flat_known[rows] ** 2, 1)[:, None] + np.sum(pool_known ** 2, 1)[None]
          - 2 * flat_known[rows] @ pool_known.T)
    nearest = pool[np.argmin(d2, 1)]
    out[rows] = np.where(mask > 0, images[rows], nearest)
  return out


class _InpaintSource:
  """The chains the evaluation runs, from a workdir (library samplers) or an export (its signatures):
  complete(setting, images, masks, classes, seeds) with setting DETERMINISTIC or VARIED;
  from_codes(images, masks, classes, seeds, codes, epsilon2): the deterministic setting's chains from given
  start codes with that epsilon2; start_codes(images, masks, classes, seeds): the deterministic setting's start;
  random_start_codes(classes, seeds): the sampler's own h_0 (`sampler_config`'s, for a workdir; the export's).
  A workdir's chains run `inpaint_configs` (default the presets); an export's, the settings it records."""

  def __init__(self, plan: Plan, sampler_config, inpaint_configs: dict | None = None):
    if plan.workdir is not None:
      model = trained_run.load_trained(plan.workdir)
      configs = dict(inpaint_configs or sampler_config_lib.INPAINT_PRESETS)
      needs_prior = any(c.needs_code_prior for c in (*configs.values(), sampler_config))
      prior = trained_run.load_code_prior(plan.workdir, model) if needs_prior else None
      samplers = {name: sample_lib.model_sampler(model, config, prior) for name, config in configs.items()}
      free = sample_lib.model_sampler(model, sampler_config, prior)
      self.settings = {name: sampler_config_lib.to_json(c) for name, c in configs.items()}
      self.info = {"workdir": os.path.abspath(plan.workdir), "generator_steps": int(model.generator_steps.numpy()),
                   "random_start": sampler_config.h0}
      by_epsilon2 = {}

      def complete(setting, x, m, c, s):
        return samplers[setting].inpaint(x, m, c, s)["images"].numpy()

      def from_codes(x, m, c, s, codes, epsilon2):
        if epsilon2 not in by_epsilon2:
          by_epsilon2[epsilon2] = sample_lib.model_sampler(
              model, dataclasses.replace(configs[DETERMINISTIC], epsilon2=epsilon2), prior)
        return by_epsilon2[epsilon2].inpaint(x, m, c, s, h0=codes)["images"].numpy()

      def start_codes(x, m, c, s):
        return samplers[DETERMINISTIC].inpaint_start_codes(x, m, c, s).numpy()

      def random_start_codes(c, s):
        return free.initial_codes(s, tf.constant(c, tf.int32)).numpy()
    else:
      signatures = tf.saved_model.load(plan.saved_model).signatures
      missing = [n for n in (DETERMINISTIC, VARIED, "inpaint_from_codes") if n not in signatures]
      if missing:
        raise ValueError(f"{plan.saved_model}: has no {missing[0]} signature (exported before in-painting was "
                         "fixed: export it again)")
      max_batch = export_layout.read_max_batch(plan.saved_model)
      call = lambda name, **inputs: sample_lib.call_in_requests(signatures[name], max_batch, **inputs)
      recorded = export_layout.read_inpaint_settings(plan.saved_model)
      self.settings = recorded
      self.info = {"saved_model": os.path.abspath(plan.saved_model),
                   "random_start": export_layout.read_export_settings(plan.saved_model).h0}
      deterministic = sampler_config_lib.from_json(recorded[DETERMINISTIC])
      images_in = lambda x, m: {"images": tf.constant(x, tf.float32), "mask": tf.constant(m, tf.float32)}

      def complete(setting, x, m, c, s):
        return call(setting, **images_in(x, m), class_id=tf.constant(c, tf.int32),
                    seed=tf.constant(s, tf.int64))["images"]

      def from_codes(x, m, c, s, codes, epsilon2):
        return call("inpaint_from_codes", **images_in(x, m), class_id=tf.constant(c, tf.int32),
                    seed=tf.constant(s, tf.int64), codes=tf.constant(codes, tf.float32),
                    steps=tf.constant(deterministic.steps, tf.int32),
                    epsilon1=tf.constant(deterministic.epsilon1, tf.float32),
                    epsilon2=tf.constant(epsilon2, tf.float32),
                    epsilon3=tf.constant(deterministic.epsilon3, tf.float32),
                    epsilon4=tf.constant(deterministic.epsilon4, tf.float32))["images"]

      def start_codes(x, m, c, s):
        # A chain of 0 steps ends where the deterministic setting starts.
        return call(DETERMINISTIC, **images_in(x, m), class_id=tf.constant(c, tf.int32),
                    seed=tf.constant(s, tf.int64))["start_codes"]

      def random_start_codes(c, s):  # The export's own h_0: a `sample` chain of 0 steps.
        settings = export_layout.read_export_settings(plan.saved_model)
        return call("sample", class_id=tf.constant(c, tf.int32), seed=tf.constant(s, tf.int64),
                    steps=tf.constant(0, tf.int32), epsilon1=tf.constant(settings.epsilon1, tf.float32),
                    epsilon2=tf.constant(settings.epsilon2, tf.float32),
                    epsilon3=tf.constant(settings.epsilon3, tf.float32))["codes"]

    self.complete, self.from_codes = complete, from_codes
    self.start_codes, self.random_start_codes = start_codes, random_start_codes


def _in_batches(function, batch: int, *arrays):
  """function(*parts) over row batches of `arrays`, concatenated."""
  rows = len(arrays[0])
  return np.concatenate([np.asarray(function(*(a[lo:lo + batch] for a in arrays))) for lo in range(0, rows, batch)])


def evaluate_inpainting(plan: Plan, sampler_config, masks=sampler_config_lib.NAMED_MASKS, *, seed: int = 0,
                        steering_per_class: int | None = None, command: str | None = None,
                        inpaint_configs: dict | None = None) -> dict:
  """Evaluates in-painting for each of `masks` (named masks) on plan.per_class report digits per class (see the
  module docstring); `sampler_config` gives the random start's h_0 (a workdir; an export uses its own).
  `steering_per_class` (default all) of them are asked for every class. `inpaint_configs` ({"inpaint": ...,
  "inpaint_varied": ...}, as serving.build_archive takes them; default the presets) are the settings a workdir's
  chains run. Writes plan.output (JSON) and a grid per mask beside it (OUTPUT_MASK.png); returns the JSON's
  contents."""
  start_time = time.time()
  masks = [masks] if isinstance(masks, str) else list(masks)
  for name in masks:
    sampler_config_lib.named_mask(name)  # Raises for an unknown name, before any work.
  if inpaint_configs is not None:
    sampler_config_lib.check_inpaint_configs(inpaint_configs)
  source = _InpaintSource(plan, sampler_config, inpaint_configs)
  reference = Reference(plan, plan.per_class * NUM_CLASSES)
  test, train = reference.test, reference.train
  rows = report_rows(test.labels, plan.per_class)
  images = test.images[rows].astype(np.float32) / 255.0
  labels = test.labels[rows].astype(np.int32)
  train01 = train.images.astype(np.float32) / 255.0
  mean_image = train01.mean(0)
  steer_rows = (np.arange(len(rows)) if steering_per_class is None else
                np.concatenate([np.flatnonzero(labels == c)[:steering_per_class] for c in range(NUM_CLASSES)]))
  classify = lambda x: reference.predict(x)[0]
  batch = plan.batch
  result = {"source": source.info, "dataset": plan.dataset, "images": int(len(rows)), "seed": seed,
            "digits": "the second half of each class' test digits (the first half tuned the presets)",
            "settings": source.settings, "masks": {}, "command": command}
  for name in masks:
    mask = sampler_config_lib.named_mask(name)
    ms = np.repeat(mask[None], len(rows), 0)
    unknown = mask[..., 0] == 0
    seeds = random_streams.chain_seeds(seed, len(rows))
    logging.info("In-painting, %s known: %d digits", name, len(rows))

    def judge(completed, asked=labels, truth=images):
      probs = classify(completed)
      error = ((completed - truth) ** 2)[..., 0][:, unknown]
      return {"accuracy": metrics.conditional_accuracy(probs, asked),
              "mean_true_class_probability": metrics.mean_requested_probability(probs, asked),
              "unknown_mse": float(error.mean())}

    deterministic = _in_batches(lambda *a: source.complete(DETERMINISTIC, *a), batch, images, ms, labels, seeds)
    runs = [_in_batches(lambda *a: source.complete(VARIED, *a), batch, images, ms, labels,
                        random_streams.chain_seeds(seed + k, len(rows))) for k in range(SPREAD_SEEDS)]
    repeat = [_in_batches(lambda *a: source.complete(DETERMINISTIC, *a), batch, images, ms, labels,
                          random_streams.chain_seeds(seed + 1, len(rows)))]  # Its spread is 0 when one differs.
    random_codes = _in_batches(source.random_start_codes, batch, labels, seeds)
    from_random = _in_batches(lambda x, m, c, s, h: source.from_codes(x, m, c, s, h, 1.0), batch, images, ms, labels,
                              seeds, random_codes)
    # The deterministic setting's epsilon2 may differ from 1: the random start runs the same chain as the completions.
    mean_fill = np.where(ms > 0, images, mean_image)

    def spread(outs):
      return float(np.mean([pairwise_spread(np.stack([o[i, ..., 0][unknown] for o in outs]))
                            for i in range(len(rows))]))
    real_spread = float(np.mean([pairwise_spread(images[labels == c][..., 0][:, unknown])
                                 for c in range(NUM_CLASSES)]))
    # Steering: each steered digit asked for every class.
    ask = np.tile(np.arange(NUM_CLASSES, dtype=np.int32), len(steer_rows))
    xs, mss = np.repeat(images[steer_rows], NUM_CLASSES, 0), np.repeat(ms[steer_rows], NUM_CLASSES, 0)
    ask_seeds = random_streams.chain_seeds(seed, len(ask))
    steered = _in_batches(lambda *a: source.complete(DETERMINISTIC, *a), batch, xs, mss, ask, ask_seeds)
    starts = _in_batches(source.start_codes, batch, xs, mss, ask, ask_seeds)
    no_class = _in_batches(lambda x, m, c, s, h: source.from_codes(x, m, c, s, h, 0.0), batch, xs, mss, ask,
                           ask_seeds, starts)
    steered_varied = _in_batches(lambda *a: source.complete(VARIED, *a), batch, xs, mss, ask, ask_seeds)
    real = nearest_real_completions(xs, mask, train01, train.labels, ask)
    steer = lambda x: metrics.conditional_accuracy(classify(x), ask)
    entry = {
        "deterministic": {**judge(deterministic),
                          "seed_spread": spread([deterministic, *repeat])},
        "varied": {**judge(runs[0]), "seed_spread": spread(runs)},
        "mean_image_fill": judge(mean_fill),
        "random_start": judge(from_random),
        "real_same_class_spread": real_spread,
        "steering": {"digits": int(len(steer_rows)), "chains": int(len(ask)),
                     "deterministic": steer(steered), "varied": steer(steered_varied),
                     "epsilon2_zero": steer(no_class), "nearest_real_digit": steer(real)},
    }
    entry["varied"]["spread_vs_real"] = metrics.ratio(entry["varied"]["seed_spread"], real_spread)
    grid_path = f"{os.path.splitext(plan.output)[0]}_{name}.png"
    shown = np.concatenate([np.flatnonzero(labels == c)[:1] for c in range(NUM_CLASSES)])
    columns = [np.where(ms > 0, images, 0.5), images, deterministic, *runs[:3], mean_fill, from_random]
    grid = np.stack([c[shown] for c in columns], 1).reshape(-1, *IMAGE_SHAPE)
    os.makedirs(os.path.dirname(os.path.abspath(grid_path)), exist_ok=True)
    plots.save_image_grid(grid, grid_path, nrow=len(columns), row_labels=[str(c) for c in range(NUM_CLASSES)],
                          title=f"{name} known: input, real, inpaint, inpaint_varied x3, mean image, random start")
    entry["grid_png"] = os.path.basename(grid_path)
    result["masks"][name] = entry
    logging.info("%s known: accuracy %.3f (mean image %.3f, random start %.3f), steering %.3f (epsilon2 = 0: "
                 "%.3f)", name, entry["deterministic"]["accuracy"], entry["mean_image_fill"]["accuracy"],
                 entry["random_start"]["accuracy"], entry["steering"]["deterministic"],
                 entry["steering"]["epsilon2_zero"])
  result["seconds"] = time.time() - start_time
  files.write_json(plan.output, result)
  return result


def format_inpainting(result: dict) -> str:
  """One table per mask: accuracy and unknown-part error of each completion, spread and steering."""
  lines = []
  for name, entry in result["masks"].items():
    lines.append(f"{name} known ({result['images']} digits)")
    lines.append(f"  {'filled by':<34}{'accuracy':>9}{'unknown MSE':>13}{'seed spread':>13}")
    for key, what in (("deterministic", "inpaint (deterministic)"), ("varied", "inpaint_varied"),
                      ("mean_image_fill", "the training mean image"), ("random_start", "a chain from a random start")):
      r = entry[key]
      spread = f"{r['seed_spread']:>13.2f}" if "seed_spread" in r else ""
      lines.append(f"  {what:<34}{r['accuracy']:>9.3f}{r['unknown_mse']:>13.4f}{spread}")
    lines.append(f"  {'real digits of one class':<34}{'':>9}{'':>13}{entry['real_same_class_spread']:>13.2f}")
    s = entry["steering"]
    lines.append(f"  steering (every class asked of {s['digits']} digits): inpaint {s['deterministic']:.3f}, "
                 f"inpaint_varied {s['varied']:.3f}, epsilon2 = 0 {s['epsilon2_zero']:.3f}, nearest real digit "
                 f"of the class {s['nearest_real_digit']:.3f}")
  return "\n".join(lines)
