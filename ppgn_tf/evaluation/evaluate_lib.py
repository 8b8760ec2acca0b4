"""Quantitative evaluation of a sampler by a classifier independent of E: sample, judge, write EVALUATION.json
and its sample grid, as an `evaluation_plan.Plan` says; the `evaluate` program's library (also run by report and
sweep)."""

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
from ppgn_tf.evaluation import eval_classifier
from ppgn_tf.evaluation.evaluation_plan import Plan  # Made and checked there, with no TensorFlow.
from ppgn_tf.evaluation import metrics
from ppgn_tf.evaluation import tables
from ppgn_tf.model import encoder as encoder_lib
from ppgn_tf.sampling import condition_spec
from ppgn_tf.sampling import export_layout
from ppgn_tf.sampling import sample_lib
from ppgn_tf.sampling import sampler_config as sampler_config_lib
from ppgn_tf.sampling import trained_run
from ppgn_tf.training import run_files

REAL_DIVERSITY_PER_CLASS = 500  # Mean pairwise distance does not depend on the count; this bounds the cost.
GRID_COLUMNS = 10  # Samples per class in EVALUATION_samples.png and in each setting's picture of the sweep.


def _same_dataset(a: str, b: str) -> bool:
  def canonical(name):
    return "idx:" + os.path.realpath(name[4:]) if name.startswith("idx:") else name
  return canonical(a) == canonical(b)


def load_eval_classifier(directory: str, dataset: str, data_dir: str | None):
  """The cached classifier (trained now if absent); refuses one trained on another data set."""
  cached_metrics = run_files.read_json(os.path.join(directory, eval_classifier.METRICS_FILE))
  if cached_metrics is not None:
    cached = cached_metrics.get("dataset")
    if cached and not _same_dataset(cached, dataset):
      raise ValueError(f"{directory}: holds an evaluation classifier trained on {cached}, not {dataset}")
  else:
    logging.info("Training the evaluation classifier on %s into %s", dataset, directory)
  model, clf_metrics = eval_classifier.ensure_eval_classifier(directory, dataset, data_dir)
  logging.info("Evaluation classifier: held-out accuracy %.4f", clf_metrics["test_accuracy"])
  return model, clf_metrics


def library_calls(sampler):
  """(sample, start_codes) of a library MalaSampler as `sample_chains` takes them: (classes, seeds) -> (images,
  E's probabilities, codes h_T), and (classes, seeds) -> h_0."""
  def sample(classes, seeds):
    out = sampler.sample(classes, seeds)
    return out["images"].numpy(), out["class_probs"].numpy(), out["codes"].numpy()

  def start_codes(classes, seeds):
    return sampler.initial_codes(seeds, tf.constant(classes, tf.int32)).numpy()
  return sample, start_codes


def library_reconstruct(model):
  """G(E(x)) of a trained PPGN (its sampling G) for images with pixels in [0, 1], pixels in [0, 1]."""
  return lambda images01: data_lib.denormalize(model.reconstruct(data_lib.normalize(images01))).numpy()


class _Source:
  """A sampler and G(E(x)), from a workdir (library sampler, the averaged G if the run keeps one) or a
  SavedModel (its signatures: `serving_default` when `config` is None, else `sample` with config's steps and
  epsilons). `settings` are the sampler settings that run."""

  def __init__(self, plan: Plan, config):
    self.info = {}
    if plan.workdir is not None:
      if config is None:
        raise ValueError("a workdir needs sampler settings (a SamplerConfig)")
      model = trained_run.load_trained(plan.workdir)
      sampler = trained_run.make_sampler(plan.workdir, model, config)
      self.info = {"workdir": os.path.abspath(plan.workdir), "generator_steps": int(model.generator_steps.numpy()),
                   "averaged_generator": model.sampling_generator is not model.generator}
      self.settings = config

      run, start = library_calls(sampler)
      reconstruct = library_reconstruct(model)
    else:
      if export_layout.read_condition(plan.saved_model)["kind"] != condition_spec.ENCODER_CLASSES:
        raise ValueError(f"{plan.saved_model}: conditions on a classifier of its own, not on E's digits "
                         "(condition_evaluation.evaluate_condition measures it)")
      exported = export_layout.read_export_settings(plan.saved_model)
      if config is not None:
        config.validate()  # The workdir's MalaSampler checks its config; here the signature's inputs come from it.
        fixed = [f.name for f in dataclasses.fields(config)
                 if f.name not in export_layout.SIGNATURE_SETTINGS + ("keep_every",)
                 and getattr(config, f.name) != getattr(exported, f.name)]
        if fixed:
          raise ValueError(f"--{fixed[0]} applies to --workdir only (the SavedModel has the settings it was "
                           "exported with; only --steps and --epsilon1..3 can change)")
      signatures = tf.saved_model.load(plan.saved_model).signatures
      max_batch = export_layout.read_max_batch(plan.saved_model)
      call = lambda name, **inputs: sample_lib.call_in_requests(signatures[name], max_batch, **inputs)
      self.info = {"saved_model": os.path.abspath(plan.saved_model),
                   "signature": "serving_default" if config is None else "sample"}
      self.settings = exported if config is None else config

      def sample_signature(classes, seeds, steps):
        settings = self.settings
        return call(
            "sample", class_id=tf.constant(classes, tf.int32), seed=tf.constant(seeds, tf.int64),
            steps=tf.constant(steps, tf.int32), epsilon1=tf.constant(settings.epsilon1, tf.float32),
            epsilon2=tf.constant(settings.epsilon2, tf.float32), epsilon3=tf.constant(settings.epsilon3, tf.float32))

      def run(classes, seeds):
        if config is None:
          out = call("serving_default", class_id=tf.constant(classes, tf.int32), seed=tf.constant(seeds, tf.int64))
        else:
          out = sample_signature(classes, seeds, config.steps)
        return out["images"], out["class_probs"], out["codes"]

      def start(classes, seeds):  # A chain of 0 steps ends where it starts: its h_0.
        return sample_signature(classes, seeds, 0)["codes"]

      def reconstruct(images01):
        codes = call("encode", images=tf.constant(images01, tf.float32))["codes"]
        return call("generate", codes=codes)["images"]

    self.sample = run  # (classes, seeds) -> images, E's probabilities, codes h_T.
    self.start_codes = start  # (classes, seeds) -> h_0 of those chains.
    self.reconstruct = reconstruct


@dataclasses.dataclass
class Chains:
  """The chains of an evaluation: requested classes and seeds, end images, E's probabilities, start and end codes."""
  requested: np.ndarray
  seeds: np.ndarray
  images: np.ndarray
  encoder_probs: np.ndarray
  start_codes: np.ndarray | None
  end_codes: np.ndarray


def sample_chains(sample, per_class: int, seed: int, batch: int, start_codes=None) -> Chains:
  """All chains through `sample(classes, seeds) -> (images, E's probs, codes)`, `batch` per call, logging
  progress; with `start_codes(classes, seeds) -> h_0`, their starts too."""
  requested = np.repeat(np.arange(NUM_CLASSES), per_class).astype(np.int32)
  seeds = random_streams.chain_seeds(seed, len(requested))  # As sample.py: same chains.
  images, probs, codes, starts = [], [], [], []
  start = time.time()
  for lo in range(0, len(requested), batch):
    x, p, h = sample(requested[lo:lo + batch], seeds[lo:lo + batch])
    images.append(x)
    probs.append(p)
    codes.append(h)
    if start_codes is not None:
      starts.append(start_codes(requested[lo:lo + batch], seeds[lo:lo + batch]))
    done, elapsed = min(lo + batch, len(requested)), time.time() - start
    logging.info("Sampled %d/%d chains (%.0f%%), %.0f s, about %.0f s left", done, len(requested),
                 100 * done / len(requested), elapsed, elapsed * (len(requested) - done) / done)
  return Chains(requested, seeds, np.concatenate(images), np.concatenate(probs),
                np.concatenate(starts) if starts else None, np.concatenate(codes))


def _reconstruct_all(reconstruct, images_uint8: np.ndarray, batch: int = 256) -> np.ndarray:
  """G(E(x)) of every image through `reconstruct(pixels in [0, 1])`, `batch` per call."""
  out = [reconstruct(images_uint8[lo:lo + batch].astype(np.float32) / 255.0)
         for lo in range(0, len(images_uint8), batch)]
  return np.concatenate(out).astype(np.float32, copy=False)


def _reconstruction_mse(reconstructions: np.ndarray, images_uint8: np.ndarray) -> float:
  """Mean squared error of G(E(x)) against x, pixels in [0, 1]."""
  x = images_uint8.astype(np.float32) / 255.0  # As G(E(x)) was given them.
  return float(np.mean((reconstructions.astype(np.float64) - x) ** 2))


def split_test_set(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """The test set's two fixed parts (row indices): the held-out digits G reconstructs and whose real images give
  the floor, as many of each class (the rarest class' half), and the reference, every other test digit, against
  which every Fréchet distance is measured. The split does not depend on any seed, so every evaluation of one
  data set is judged against the same reference digits."""
  rng = random_streams.numpy_generator(0, random_streams.EVALUATION_FLOOR_SPLIT)
  per_class = min(int(np.sum(labels == c)) for c in range(NUM_CLASSES)) // 2
  heldout = []
  for c in range(NUM_CLASSES):
    heldout.append(rng.permutation(np.flatnonzero(labels == c))[:per_class])
  heldout = np.stack(heldout, 1).reshape(-1)  # Class by class in turn: 0, 1, ..., 9, 0, 1, ...
  return heldout, np.setdiff1d(np.arange(len(labels)), heldout)


class Reference:
  """What every set of images is judged against: the evaluation classifier and the real test images.

  The yardstick of every Fréchet distance (FD): sets of one size, `set_size` images with the classes in equal
  shares, each measured against one reference set of real test digits that none of them was made from. The
  test set is split once (`split_test_set`) into held-out digits and the reference. The floor is the held-out
  real digits, G's ceiling is G(E(x)) of those same held-out digits, and samples are judged in disjoint sets of
  `set_size` (the FD their mean). The set size is the samples' count, at most the held-out digits' count.
  Built once per evaluation (or once for a whole sweep of sampler settings).
  """

  def __init__(self, plan: Plan, sample_count: int):
    self.train, self.test = data_lib.load_arrays(plan.dataset, plan.data_dir)
    self._train_reconstructions = (None, None)  # (the `reconstruct` they were made with, G(E(x_train)))
    self.classifier, self.classifier_metrics = load_eval_classifier(plan.eval_classifier_dir, plan.dataset,
                                                                    plan.data_dir)
    self.heldout_rows, reference_rows = split_test_set(self.test.labels)
    if plan.recon_images:  # Fewer held-out digits to reconstruct, still as many of each class.
      self.heldout_rows = self.heldout_rows[:max(NUM_CLASSES, plan.recon_images // NUM_CLASSES * NUM_CLASSES)]
    test_feats = eval_classifier.features(self.classifier, data_lib.normalize(self.test.images).numpy())
    self.reference_feats = test_feats[reference_rows]
    self.set_size = min(sample_count, len(self.heldout_rows)) // NUM_CLASSES * NUM_CLASSES
    if self.set_size < 2:
      raise ValueError(f"{plan.dataset}: too few test digits for a Frechet distance "
                       f"({len(self.heldout_rows)} held out, {sample_count} samples)")
    self.floor, _ = metrics.frechet_over_subsets(test_feats[self.heldout_rows], self.test.labels[self.heldout_rows],
                                                 self.reference_feats, self.set_size)
    keep = np.concatenate([np.flatnonzero(self.test.labels == c)[:REAL_DIVERSITY_PER_CLASS]
                           for c in range(NUM_CLASSES)])
    self._real_pixels = self.test.images[keep].astype(np.float32) / 255.0
    self._real_labels = self.test.labels[keep]

  def yardstick(self) -> dict:
    """How FDs were measured, for the JSON."""
    return {"set_size": self.set_size, "reference_size": len(self.reference_feats),
            "heldout_digits": len(self.heldout_rows), "floor": self.floor,
            "rule": "sets of set_size images (classes in equal shares) against one fixed reference half of the "
                    "test digits; the floor is the other half's real digits, G(E(x)) is of those same digits, "
                    "samples are the mean over their disjoint sets of set_size"}

  def frechet(self, feats: np.ndarray, groups: np.ndarray) -> float:
    """FD of a set of features in sets of `set_size`, rows grouped by `groups` (classes in equal shares)."""
    return metrics.frechet_over_subsets(feats, groups, self.reference_feats, self.set_size)[0]

  def predict(self, images01: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The evaluation classifier's class probabilities and features of images with pixels in [0, 1]."""
    normalised = data_lib.normalize(images01).numpy()
    return eval_classifier.predict(self.classifier, normalised), eval_classifier.features(self.classifier, normalised)

  def judge(self, images01: np.ndarray, labels: np.ndarray, real_diversity: bool = True) -> dict:
    """metrics.image_set_metrics of images meant to show `labels` (with the real images' diversity)."""
    probs, feats = self.predict(images01)
    real = (self._real_pixels, self._real_labels) if real_diversity else (None, None)
    return metrics.image_set_metrics(images01, labels, probs, feats, self.reference_feats, self.set_size, *real)

  def reconstructions(self, reconstruct) -> tuple[np.ndarray, np.ndarray, dict]:
    """G's ceiling: (the held-out test images, G(E(x)) of them by `reconstruct`, their metrics against the
    true labels)."""
    originals = self.test.images[self.heldout_rows]
    logging.info("Reconstructing %d held-out test images", len(originals))
    reconstructions = _reconstruct_all(reconstruct, originals)
    bad = _non_finite_rows(reconstructions)
    if bad:
      raise ValueError(f"G(E(x)) is not finite for {bad} of {len(reconstructions)} test images")
    return originals, reconstructions, self.judge(reconstructions, self.test.labels[self.heldout_rows],
                                                  real_diversity=False)

  def copying(self, samples01: np.ndarray, heldout_reconstructions: np.ndarray, reconstruct) -> dict:
    """metrics.copy_metrics of the samples against G(E(x)) of every training image (computed once per
    `reconstruct`, i.e. per G), with G(E(x)) of held-out images as the yardstick."""
    made_with, train_reconstructions = self._train_reconstructions
    if made_with is not reconstruct:
      logging.info("Reconstructing the %d training images (the copy test's reference)", len(self.train))
      train_reconstructions = _reconstruct_all(reconstruct, self.train.images)
      self._train_reconstructions = (reconstruct, train_reconstructions)
    return metrics.copy_metrics(samples01, heldout_reconstructions, train_reconstructions)


def _non_finite_rows(images: np.ndarray) -> int:
  return int(np.sum(~np.isfinite(images.reshape(len(images), -1)).all(1)))


def check_finite_samples(samples: np.ndarray) -> None:
  bad = _non_finite_rows(samples)
  if bad:
    raise ValueError(f"{bad} of {len(samples)} samples are not finite (the chains diverged; try a smaller "
                     "--epsilon2, --normalize_step or --clip_percentile)")


def evaluate(plan: Plan, sampler_config=None, *, seed: int = 0, command: str | None = None) -> dict:
  """Samples plan.per_class chains per class, judges them with the evaluation classifier, writes plan.output
  (JSON) and its _samples.png grid; returns the JSON's contents. `plan` comes from evaluation_plan.make_plan,
  which checked its sizes and source."""
  per_class = plan.per_class
  start = time.time()
  source = _Source(plan, sampler_config)  # First: it refuses settings a SavedModel cannot run.
  reference = Reference(plan, per_class * NUM_CLASSES)

  chains = sample_chains(source.sample, per_class, seed, plan.batch, source.start_codes)
  samples, encoder_probs, requested = chains.images, chains.encoder_probs, chains.requested
  check_finite_samples(samples)
  judged = reference.judge(samples, requested)
  # G's ceiling: its reconstructions of the test images, judged against their true labels exactly as the
  # samples are against the requested ones. Computed once, for the MSE and the copy test too.
  originals, reconstructions, recon_judged = reference.reconstructions(source.reconstruct)
  mse = _reconstruction_mse(reconstructions, originals)
  copying = reference.copying(samples, reconstructions, source.reconstruct)
  real_floor, clf_metrics = reference.floor, reference.classifier_metrics

  grid_path = os.path.splitext(plan.output)[0] + "_samples.png"
  columns = min(per_class, GRID_COLUMNS)
  grid = samples.reshape(NUM_CLASSES, per_class, *IMAGE_SHAPE)[:, :columns].reshape(-1, *IMAGE_SHAPE)
  os.makedirs(os.path.dirname(os.path.abspath(grid_path)), exist_ok=True)
  plots.save_image_grid(grid, grid_path, nrow=columns, row_labels=[str(c) for c in range(NUM_CLASSES)],
                        title=f"evaluation samples, {source.settings.steps} MALA steps")

  result = {
      "source": source.info,
      "dataset": plan.dataset,
      "per_class": per_class,
      "num_samples": int(len(samples)),
      "seed": seed,
      "sampler": {k: v for k, v in dataclasses.asdict(source.settings).items() if k != "keep_every"},
      "eval_classifier": {"dir": os.path.abspath(plan.eval_classifier_dir), **clf_metrics},
      "accuracy": judged["accuracy"],
      "mean_requested_probability": judged["mean_requested_probability"],
      "encoder_accuracy": metrics.conditional_accuracy(encoder_probs, requested),  # Biased upward; for contrast.
      "frechet_distance": judged["frechet_distance"],
      "frechet_real_floor": real_floor,
      "frechet_yardstick": reference.yardstick(),
      "diversity": judged["diversity"],  # Mean over classes of the mean pairwise L2 distance, pixels in [0, 1].
      "real_diversity": judged["real_diversity"],
      "reconstruction_mse": mse,
      "reconstruction_images": int(len(originals)),
      # The same metrics of G(E(x)) against the true labels (mean_requested_probability: mean p(true class);
      # per-class "samples": reconstructions of that class): the best a sampler can reach with this G.
      "reconstructions": {"images": int(len(originals)), **recon_judged},
      # The samples' figures as ratios of the ceiling's and of real images' (FD: the floor): near 1, the sampler
      # gets all that G (or the data) allows.
      "diversity_vs_reconstructions": metrics.ratio(judged["diversity"], recon_judged["diversity"]),
      "frechet_vs_reconstructions": metrics.ratio(judged["frechet_distance"], recon_judged["frechet_distance"]),
      "frechet_vs_floor": metrics.ratio(judged["frechet_distance"], real_floor),
      "diversity_vs_real": metrics.ratio(judged["diversity"], judged["real_diversity"]),
      # New digits or copies: distances to G(E(x)) of the training images, against held-out images' (metrics).
      "copying": copying,
      "copy_ratio": copying["copy_ratio"],
      "median_code_move": metrics.median_code_move(chains.start_codes, chains.end_codes),
      "per_class_table": judged["per_class_table"],
      "samples_png": os.path.basename(grid_path),
      "seconds": time.time() - start,
      "command": command,
  }
  files.write_json(plan.output, result)
  return result


_num = tables.number


def format_tables(result: dict) -> str:
  """The summary and the per-class table as plain text; G(E(x)), G's ceiling, beside the samples."""
  recon = result.get("reconstructions") or {}  # Absent from results written before it was measured.
  recon_rows = {row["class"]: row for row in recon.get("per_class_table", [])}

  def line(name, samples="", ceiling="", real=""):
    return f"{name:<34}{samples:>10}{ceiling:>10}{real:>10}".rstrip()

  lines = [
      line("metric", "samples", "G(E(x))", "real"),
      line("accuracy (evaluation classifier)", _num(result["accuracy"]), _num(recon.get("accuracy")),
           _num(result["eval_classifier"]["test_accuracy"])),
      line("mean p(requested / true class)", _num(result["mean_requested_probability"]),
           _num(recon.get("mean_requested_probability"))),
      line("accuracy (E, biased)", _num(result["encoder_accuracy"])),
      line("Frechet distance (features)", _num(result["frechet_distance"], 2), _num(recon.get("frechet_distance"), 2),
           _num(result["frechet_real_floor"], 2)),
      line("diversity (pixels, within class)", _num(result["diversity"]), _num(recon.get("diversity")),
           _num(result["real_diversity"])),
      line("reconstruction MSE G(E(x))", "", _num(result["reconstruction_mse"], 4)),
  ]
  yardstick = result.get("frechet_yardstick")  # Absent from results written before sets were of one size.
  if yardstick:
    lines.append(f"(Frechet distances: sets of {yardstick['set_size']} images against the same "
                 f"{yardstick['reference_size']} real test digits, none of which any set was made from)")
  copying = result.get("copying")  # Absent from results written before it was measured.
  if copying:
    lines += [
        line("copy ratio (1: as new as unseen)", _num(copying["copy_ratio"]), "1.000"),
        line(f"share nearer than {metrics.NEAR_PERCENTILE:g}% of unseen", _num(copying["near_copy_share"]),
             _num(metrics.NEAR_PERCENTILE / 100)),
        line("exact duplicate pairs", str(copying["exact_duplicate_pairs"])),
        line("near-duplicate pairs", str(copying["near_duplicate_pairs"]),
             str(copying["heldout_near_duplicate_pairs"])),
        line("median code move |h_T - h_0|", _num(result["median_code_move"])),
    ]
  lines += [
      "",
      f"{'class':>5}{'n':>6}{'accuracy':>10}{'mean p':>10}{'diversity':>11}{'real div.':>11}"
      f"{'G(E(x)) acc.':>14}{'G(E(x)) div.':>14}",
  ]
  for row in result["per_class_table"]:
    recon_row = recon_rows.get(row["class"], {})
    lines.append(f"{row['class']:>5}{row['samples']:>6}{_num(row['accuracy']):>10}"
                 f"{_num(row['mean_requested_probability']):>10}{_num(row['diversity']):>11}"
                 f"{_num(row.get('real_diversity')):>11}{_num(recon_row.get('accuracy')):>14}"
                 f"{_num(recon_row.get('diversity')):>14}")
  return "\n".join(lines)




# ---- quality against training time: every kept checkpoint of one run -----------------------------

# The thesis' own code (its PyTorch, unchanged) at paper scale on a GPU, 4,954 G steps of the vanilla experiment
# on the 4,500 offline digits, about 7 minutes; judged by a classifier outside this project (issue 25's anchor).
THESIS_VANILLA_GPU_RUN = {
    "thesis vanilla, samples": {"accuracy": 0.83, "diversity_vs_real": 0.68, "frechet_vs_floor": 6.1},
    "thesis vanilla, G(E(x_test))": {"accuracy": 0.91, "diversity_vs_real": 0.81, "frechet_vs_floor": 2.2},
}
CURVE_METRICS = (("accuracy", "accuracy"), ("diversity_vs_real", "diversity / real digits'"),
                 ("frechet_vs_floor", "FD / real floor"))


def evaluate_checkpoints(plan: Plan, sampler_config, *, seed: int = 0, command: str | None = None) -> dict:
  """Evaluates every checkpoint kept by --keep_checkpoint_every and the rotating ones, as `evaluate` does (the
  samples, G(E(x_test)) and the copy test), and writes plan.output (JSON) and its PNG of quality against G steps
  and minutes, with the thesis' GPU run as horizontal lines. Minutes are E's pre-training plus the training
  seconds each checkpoint holds."""
  start_time = time.time()
  checkpoints = [path for _, path in trained_run.kept_checkpoints(plan.workdir)]
  latest = trained_run.check_checkpoints(os.path.join(plan.workdir, run_files.CHECKPOINTS_DIR))
  if latest:  # The rotating checkpoints too (--keep_checkpoints of them), the latest last.
    state = tf.train.get_checkpoint_state(os.path.join(plan.workdir, run_files.CHECKPOINTS_DIR))
    checkpoints += [p for p in (list(state.all_model_checkpoint_paths) if state else []) if p != latest] + [latest]
  if not checkpoints:
    raise ValueError(f"{plan.workdir}/checkpoints: no checkpoint (train first)")
  encoder_metrics = run_files.read_json(os.path.join(run_files.encoder_dir(plan.workdir),
                                                    encoder_lib.METRICS_FILE)) or {}
  encoder_seconds = encoder_metrics.get("train_seconds", 0.0)
  reference = Reference(plan, plan.per_class * NUM_CLASSES)
  points = []
  for i, path in enumerate(checkpoints):
    model = trained_run.load_trained(plan.workdir, path)
    if int(model.generator_steps.numpy()) in [p["generator_steps"] for p in points]:
      continue  # A rotating checkpoint at a kept one's G step.
    sample, _ = library_calls(trained_run.make_sampler(plan.workdir, model, sampler_config))
    reconstruct = library_reconstruct(model)  # A new G: the copy test reconstructs the training images anew.
    chains = sample_chains(sample, plan.per_class, seed, plan.batch)
    check_finite_samples(chains.images)
    judged = reference.judge(chains.images, chains.requested)
    _, heldout, recon = reference.reconstructions(reconstruct)
    copying = reference.copying(chains.images, heldout, reconstruct)
    elapsed = trained_run.checkpoint_elapsed_seconds(path)

    def figures(of):
      return {"accuracy": of["accuracy"], "diversity": of["diversity"], "frechet_distance": of["frechet_distance"],
              "diversity_vs_real": metrics.ratio(of["diversity"], judged["real_diversity"]),
              "frechet_vs_floor": metrics.ratio(of["frechet_distance"], reference.floor)}
    point = {"checkpoint": os.path.relpath(path, plan.workdir), "generator_steps": int(model.generator_steps.numpy()),
             "training_seconds": elapsed,
             "minutes": None if elapsed is None else (encoder_seconds + elapsed) / 60,
             "samples": {**figures(judged), "copy_ratio": copying["copy_ratio"],
                         "exact_duplicate_pairs": copying["exact_duplicate_pairs"]},
             "G(E(x_test))": figures(recon)}
    points.append(point)
    logging.info("Checkpoint %d/%d (G step %d): accuracy %.3f, FD %.1f x floor, diversity %.2f x real, copy ratio "
                 "%.2f; G(E(x_test)) FD %.2f x floor", i + 1, len(checkpoints), point["generator_steps"],
                 point["samples"]["accuracy"], point["samples"]["frechet_vs_floor"],
                 point["samples"]["diversity_vs_real"], copying["copy_ratio"], point["G(E(x_test))"]["frechet_vs_floor"])
  points.sort(key=lambda p: p["generator_steps"])
  png = os.path.splitext(plan.output)[0] + ".png"
  plots.save_quality_over_time(points, CURVE_METRICS, png, THESIS_VANILLA_GPU_RUN,
                               title=f"{os.path.basename(os.path.abspath(plan.workdir))}: {plan.per_class} chains per "
                                     f"class, {sampler_config.steps} MALA steps")
  result = {"workdir": os.path.abspath(plan.workdir), "dataset": plan.dataset, "per_class": plan.per_class,
            "seed": seed, "sampler": {k: v for k, v in dataclasses.asdict(sampler_config).items() if k != "keep_every"},
            "frechet_real_floor": reference.floor, "encoder_seconds": encoder_seconds,
            "thesis_anchor": THESIS_VANILLA_GPU_RUN, "checkpoints": points, "png": os.path.basename(png),
            "seconds": time.time() - start_time, "command": command}
  files.write_json(plan.output, result)
  return result


def format_checkpoints(result: dict) -> str:
  lines = [f"{'G steps':>8}{'minutes':>9}{'accuracy':>10}{'div/real':>10}{'FD/floor':>10}{'copy':>7}"
           f"{'G(E(x)) FD/floor':>18}"]
  for p in result["checkpoints"]:
    s = p["samples"]
    lines.append(f"{p['generator_steps']:>8}{_num(p['minutes'], 1):>9}{_num(s['accuracy']):>10}"
                 f"{_num(s['diversity_vs_real']):>10}{_num(s['frechet_vs_floor'], 2):>10}{_num(s['copy_ratio'], 2):>7}"
                 f"{_num(p['G(E(x_test))']['frechet_vs_floor'], 2):>18}")
  return "\n".join(lines)
