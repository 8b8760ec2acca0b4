"""Why in-painting filled in worse than the mean image, and which settings fix it (issue 33).

  python docs/reports/inpainting_study.py --workdir=runs/quickstart --out=docs/reports/inpainting

Runs the library sampler's in-painting on the first 25 offline test digits of each class (the tuning digits; the
other 25 are left for `ppgn_tf.evaluate --inpaint_mask`), the left half known, each asked for its true class,
for a list of settings, and judges each by the evaluation classifier (accuracy of the completed digit), the
unknown half's squared error, E's verdict when every class is asked (steering) and the spread over 4 seeds.
Writes OUT/study.json and OUT/chains.png (the chain's images over its steps for a few inputs).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time

import numpy as np
import tensorflow as tf

from ppgn_tf import plots
from ppgn_tf import random_streams
from ppgn_tf.data import datasets as data_lib
from ppgn_tf.evaluation import eval_classifier
from ppgn_tf.evaluation import evaluate_lib
from ppgn_tf.sampling import mala_sampler
from ppgn_tf.sampling import sample_lib
from ppgn_tf.sampling import sampler_config as sc
from ppgn_tf.sampling import trained_run

TUNE_PER_CLASS = 25


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--out", required=True)
  parser.add_argument("--mask", default="left")
  parser.add_argument("--only_output", default="study_extra.json", help="with --only: the JSON written in OUT")
  parser.add_argument("--precision", default="bf16", help="what G and E compute in (the export's: bf16 on AMX)")
  parser.add_argument("--only", default="", help="|-separated names of settings to run")
  parser.add_argument("--chains", default="", help="|-separated names of settings whose chains to draw "
                      "(OUT/chains.png) instead of the study")
  args = parser.parse_args()
  os.makedirs(args.out, exist_ok=True)
  model = trained_run.load_trained(args.workdir)
  prior = trained_run.load_code_prior(args.workdir, model)
  train, test = data_lib.load_arrays("mnist_offline")
  classifier, _ = evaluate_lib.load_eval_classifier(os.path.join(args.workdir, "eval_classifier"), "mnist_offline",
                                                    None)
  rows = np.concatenate([np.flatnonzero(test.labels == c)[:TUNE_PER_CLASS] for c in range(10)])
  images = test.images[rows].astype(np.float32) / 255.0
  labels = test.labels[rows].astype(np.int32)
  mask = sc.named_mask(args.mask)
  masks = np.repeat(mask[None], len(rows), 0)
  unknown = masks == 0
  mean_image = train.images.astype(np.float32).mean(0) / 255.0

  def judge(completed, asked=labels):
    probs = eval_classifier.predict(classifier, data_lib.normalize(completed).numpy())
    err = ((completed - images[:len(completed)]) ** 2)[unknown[:len(completed)]].reshape(len(completed), -1)
    return {"accuracy": float(np.mean(probs.argmax(1) == asked)), "unknown_mse": float(err.mean())}

  def sampler_for(config):
    return sample_lib.model_sampler(model, config, prior, args.precision)

  def starts(kind, sampler, x, m, c, s):
    known = data_lib.normalize(x)
    if kind == "masked":
      return None
    if kind == "mean_image":
      filled = np.where(m > 0, x, mean_image)
      return sampler.codes_of(data_lib.normalize(filled))
    if kind.startswith("mean_image+"):
      sigma = float(kind.split("+")[1])
      filled = np.where(m > 0, x, mean_image)
      h = sampler.codes_of(data_lib.normalize(filled))
      return h + sigma * mala_sampler.row_normal(tf.constant(s, tf.int64), 10_000, h.shape[1:])
    if kind == "sampler":
      return sampler.initial_codes(s, c)
    raise ValueError(kind)

  def complete(config, kind, x, m, c, s, batch=250):
    sampler = sampler_for(config)
    outs = []
    for lo in range(0, len(x), batch):
      part = slice(lo, lo + batch)
      h0 = starts(kind, sampler, x[part], m[part], c[part], s[part])
      outs.append(sampler.inpaint(x[part], m[part], c[part], s[part], h0=h0)["images"].numpy())
    return np.concatenate(outs)

  base = dict(steps=20, epsilon1=1e-5, epsilon2=1.0, epsilon3=0.0, epsilon4=1e-9, normalize_step=True,
              step_size=1.0, step_size_end=1e-2)
  mean_fill = {"clip_min": 0.0, "inpaint_start": sc.INPAINT_START_H0_FILL, "h0": sc.H0_CLASS_MEAN}
  draw_fill = {"clip_min": 0.0, "inpaint_start": sc.INPAINT_START_H0_FILL, "h0": sc.H0_CLASS_GAUSSIAN,
               "h0_components": 4}
  settings = {
      "current (default preset)": (sc.PRESETS["default"], "masked"),
      "default, no early stop": (dataclasses.replace(sc.PRESETS["default"], stop_probability=None), "masked"),
      "default, no stop, eps4 1e-9": (dataclasses.replace(sc.PRESETS["default"], stop_probability=None,
                                                          epsilon4=1e-9), "masked"),
      "original PPGN (anchor)": (sc.SamplerConfig(**base), "masked"),
      "anchor, clipped to the codes' 1-99%": (sc.SamplerConfig(**{**base, "clip_percentile": 1.0}), "masked"),
      "anchor, clipped at 0": (sc.SamplerConfig(**{**base, "clip_min": 0.0}), "masked"),
      "anchor, eps4 0.01": (sc.SamplerConfig(**{**base, "epsilon4": 1e-2}), "masked"),
      "anchor, mean-image start": (sc.SamplerConfig(**base), "mean_image"),
      "anchor, step 3": (sc.SamplerConfig(**{**base, "step_size": 3.0}), "masked"),
      "anchor, 40 steps": (sc.SamplerConfig(**{**base, "steps": 40}), "masked"),
      "anchor, random start": (sc.SamplerConfig(**{**base, "h0": sc.H0_CLASS_GAUSSIAN, "h0_components": 4}),
                               "sampler"),
      "anchor + eps3 1": (sc.SamplerConfig(**{**base, "epsilon3": 1.0}), "masked"),
      "anchor, start noise 2": (sc.SamplerConfig(**{**base, "start_noise": 2.0}), "masked"),
      "anchor, start noise 2, eps3 1": (sc.SamplerConfig(**{**base, "start_noise": 2.0, "epsilon3": 1.0}),
                                        "masked"),
      # The second round, around the best of the first (clipped at 0).
      "clip0, eps4 1e-3": (sc.SamplerConfig(**{**base, "clip_min": 0.0, "epsilon4": 1e-3}), "masked"),
      "clip0, eps4 3e-3": (sc.SamplerConfig(**{**base, "clip_min": 0.0, "epsilon4": 3e-3}), "masked"),
      "clip0, step 0.5": (sc.SamplerConfig(**{**base, "clip_min": 0.0, "step_size": 0.5}), "masked"),
      "clip0, eps1 0.3": (sc.SamplerConfig(**{**base, "clip_min": 0.0, "epsilon1": 0.3}), "masked"),
      "clip0, start noise 4": (sc.SamplerConfig(**{**base, "clip_min": 0.0, "start_noise": 4.0}), "masked"),
      "clip0, start noise 3, eps3 0.3": (sc.SamplerConfig(**{**base, "clip_min": 0.0, "start_noise": 3.0,
                                                              "epsilon3": 0.3}), "masked"),
      # The third round: smaller steps, so that the start (the masked image's code) is not forgotten.
      "clip0, step 0.2": (sc.SamplerConfig(**{**base, "clip_min": 0.0, "step_size": 0.2}), "masked"),
      "clip0, step 0.1": (sc.SamplerConfig(**{**base, "clip_min": 0.0, "step_size": 0.1}), "masked"),
      "clip0, start noise 3, eps3 0.1": (sc.SamplerConfig(**{**base, "clip_min": 0.0, "start_noise": 3.0,
                                                              "epsilon3": 0.1}), "masked"),
      "clip0, start noise 3, eps3 0.01": (sc.SamplerConfig(**{**base, "clip_min": 0.0, "start_noise": 3.0,
                                                               "epsilon3": 0.01}), "masked"),
      "clip0, start noise 3, eps3 0.03": (sc.SamplerConfig(**{**base, "clip_min": 0.0, "start_noise": 3.0,
                                                               "epsilon3": 0.03}), "masked"),
      # The fifth round: starts that know the requested class, the unknown pixels drawn by G from a code of it
      # (inpaint_start=h0_fill): the class' mean code, or a draw of the default preset's mixture.
      "clip0, step 0.2, class-mean fill": (sc.SamplerConfig(**{**base, **mean_fill, "step_size": 0.2}), "masked"),
      "clip0, class-mean fill": (sc.SamplerConfig(**{**base, **mean_fill}), "masked"),
      "clip0, step 0.2, class-draw fill": (sc.SamplerConfig(**{**base, **draw_fill, "step_size": 0.2}), "masked"),
      "clip0, class-draw fill": (sc.SamplerConfig(**{**base, **draw_fill}), "masked"),
      "clip0, step 0.5, class-draw fill": (sc.SamplerConfig(**{**base, **draw_fill, "step_size": 0.5}), "masked"),
      "clip0, class-draw fill, eps3 0.01": (sc.SamplerConfig(**{**base, **draw_fill, "epsilon3": 0.01}), "masked"),
      # The sixth round: varied completions from the class-aware starts.
      "clip0, class-draw fill, eps3 0.003": (sc.SamplerConfig(**{**base, **draw_fill, "epsilon3": 0.003}), "masked"),
      "clip0, class-draw fill, start noise 2": (sc.SamplerConfig(**{**base, **draw_fill, "start_noise": 2.0}),
                                                "masked"),
      "clip0, class-draw fill, start noise 3": (sc.SamplerConfig(**{**base, **draw_fill, "start_noise": 3.0}),
                                                "masked"),
      "clip0, class-mean fill, start noise 3": (sc.SamplerConfig(**{**base, **mean_fill, "start_noise": 3.0}),
                                                "masked"),
      "clip0, class-mean fill, start noise 3, eps3 0.01": (
          sc.SamplerConfig(**{**base, **mean_fill, "start_noise": 3.0, "epsilon3": 0.01}), "masked"),
      "clip0, step 0.5, class-draw fill, eps3 0.01": (
          sc.SamplerConfig(**{**base, **draw_fill, "step_size": 0.5, "epsilon3": 0.01}), "masked"),
      # The seventh round: around the best of the sixth (a smaller step keeps more of the start).
      "clip0, step 0.1, class-mean fill": (sc.SamplerConfig(**{**base, **mean_fill, "step_size": 0.1}), "masked"),
      "clip0, step 0.3, class-mean fill": (sc.SamplerConfig(**{**base, **mean_fill, "step_size": 0.3}), "masked"),
      "clip0, step 0.2, class-draw fill, eps3 0.01": (
          sc.SamplerConfig(**{**base, **draw_fill, "step_size": 0.2, "epsilon3": 0.01}), "masked"),
      "clip0, step 0.3, class-draw fill, eps3 0.01": (
          sc.SamplerConfig(**{**base, **draw_fill, "step_size": 0.3, "epsilon3": 0.01}), "masked"),
      "clip0, step 0.5, class-draw fill, eps3 0.005": (
          sc.SamplerConfig(**{**base, **draw_fill, "step_size": 0.5, "epsilon3": 0.005}), "masked"),
      "clip0, step 0.5, class-mean fill, eps3 0.01": (
          sc.SamplerConfig(**{**base, **mean_fill, "step_size": 0.5, "epsilon3": 0.01}), "masked"),
  }
  if args.only:
    keep = args.only.split("|")
    settings = {k: v for k, v in settings.items() if k in keep}
  seeds = random_streams.chain_seeds(0, len(rows))
  if args.chains:
    # Per setting, 4 digits (classes 2, 4, 7, 9), each asked for its class: the masked input, then the image E
    # sees (the known pixels pasted into G(h_t)) at 11 points of the chain, h_0 first.
    shown = np.array([np.flatnonzero(labels == c)[0] for c in (2, 4, 7, 9)])
    pictures, row_labels = [], []
    for name in args.chains.split("|"):
      config, kind = settings[name]
      frames = 10
      config = dataclasses.replace(config, keep_every=1)
      sampler = sampler_for(config)
      x, m, c, s_ = images[shown], masks[shown], labels[shown], seeds[shown]
      out = sampler.inpaint(x, m, c, s_, h0=starts(kind, sampler, x, m, c, s_))
      codes = out["trajectory_codes"].numpy()
      picks = np.linspace(0, len(codes) - 1, frames + 1).round().astype(int)
      for i in range(len(shown)):
        row = [np.where(m[i] > 0, x[i], 0.5)]
        for t in picks:
          g = data_lib.denormalize(sampler.generator(tf.constant(codes[t][i:i + 1]), training=False)).numpy()[0]
          row.append(np.where(m[i] > 0, x[i], g))
        pictures.extend(row)
        row_labels.append(f"{name[:22]}")
    plots.save_image_grid(np.stack(pictures), os.path.join(args.out, "chains.png"), nrow=frames + 2,
                          row_labels=row_labels, title="masked input, then the chain's image at 11 points, h_0 first")
    return
  results = {"mean image fill": judge(np.where(masks > 0, images, mean_image)),
             "scalar mean fill": judge(np.where(masks > 0, images, data_lib.MEAN))}
  print(results)
  # Steering (every class asked of 1 digit per class) and spread (2 per class, 4 seeds) on subsets.
  sub = np.concatenate([np.flatnonzero(labels == c)[:1] for c in range(10)])
  spread_rows = np.concatenate([np.flatnonzero(labels == c)[:2] for c in range(10)])
  for name, (config, kind) in settings.items():
    t0 = time.time()
    completed = complete(config, kind, images, masks, labels, seeds)
    r = judge(completed)
    if kind == "masked":  # The same chains from the sampler's own h_0 (the default preset's): the random start.
      free = sampler_for(sc.PRESETS["default"])
      random_start = np.concatenate([sampler_for(config).inpaint(
          images[lo:lo + 250], masks[lo:lo + 250], labels[lo:lo + 250], seeds[lo:lo + 250],
          h0=free.initial_codes(seeds[lo:lo + 250], labels[lo:lo + 250]))["images"].numpy()
          for lo in range(0, len(images), 250)])
      r["random_start"] = judge(random_start)
    # Every class asked of the subset's digits.
    ask = np.tile(np.arange(10, dtype=np.int32), len(sub))
    xs, ms = np.repeat(images[sub], 10, 0), np.repeat(masks[sub], 10, 0)
    steered = complete(config, kind, xs, ms, ask, random_streams.chain_seeds(1, len(ask)))
    probs = eval_classifier.predict(classifier, data_lib.normalize(steered).numpy())
    r["steering"] = float(np.mean(probs.argmax(1) == ask))
    # Spread over 4 seeds.
    spreads = []
    outs = [complete(config, kind, images[spread_rows], masks[spread_rows], labels[spread_rows],
                     random_streams.chain_seeds(k, len(spread_rows))) for k in range(4)]
    for i in range(len(spread_rows)):
      region = np.stack([o[i][unknown[0]] for o in outs])
      spreads.append(np.mean([np.linalg.norm(region[a] - region[b]) for a in range(4) for b in range(a + 1, 4)]))
    r["seed_spread"] = float(np.mean(spreads))
    r["seconds"] = time.time() - t0
    results[name] = r
    print(f"{name:<50} acc {r['accuracy']:.3f} mse {r['unknown_mse']:.4f} steer {r['steering']:.3f} "
          f"spread {r['seed_spread']:.2f} ({r['seconds']:.0f}s) random start {r.get('random_start')}", flush=True)
  # The real same-class spread of the unknown region.
  real = []
  for c in range(10):
    region = images[labels == c][:, unknown[0]]
    real.append(evaluate_lib.metrics.mean_pairwise_distance(region))
  results["real same-class spread"] = float(np.mean(real))
  print("real spread", results["real same-class spread"])
  with open(os.path.join(args.out, "study.json" if not args.only else args.only_output), "w") as f:
    json.dump(results, f, indent=1)


if __name__ == "__main__":
  main()
