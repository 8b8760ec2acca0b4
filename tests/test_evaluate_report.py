"""ppgn_tf.evaluate and ppgn_tf.report on tiny finished runs (dim 2, 2 G steps), 2 chains per class."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import numpy as np
import pytest

from ppgn_tf.evaluation import evaluate_lib as evaluate
from ppgn_tf.evaluation import evaluation_plan
from ppgn_tf.evaluation import inpaint_evaluation
from ppgn_tf.evaluation import metrics
from ppgn_tf.sampling import mala_sampler
from ppgn_tf.sampling import sampler_config
from ppgn_tf.sampling.run_end import RunEnd

from conftest import REPO

KEYS = {"accuracy", "mean_requested_probability", "encoder_accuracy", "frechet_distance", "frechet_real_floor",
        "diversity", "real_diversity", "reconstruction_mse", "per_class_table", "eval_classifier", "source",
        "num_samples", "samples_png", "dataset", "sampler", "command"}
# G's ceiling, added later: evaluations written before lack these.
CEILING_KEYS = {"reconstructions", "diversity_vs_reconstructions", "frechet_vs_reconstructions", "frechet_vs_floor",
                "diversity_vs_real"}
# The tiny data's test set: 128 digits, 6 of each class held out for G's ceiling and the floor, 68 the reference.
HELDOUT = 60
# Copying, added later still.
COPY_KEYS = {"copying", "copy_ratio", "median_code_move"}
RECONSTRUCTION_KEYS = {"images", "accuracy", "mean_requested_probability", "frechet_distance", "diversity",
                       "frechet_distance_of_each_set",
                       "per_class_table"}


def _run(args):
  return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO, timeout=600)


def _error_lines(stderr: str, program: str) -> list[str]:
  return [l for l in stderr.splitlines() if l.startswith(f"{program}: error:")]


@pytest.fixture(scope="module")
def shared_classifier_dir(tmp_path_factory) -> str:
  return str(tmp_path_factory.mktemp("eval_clf") / "eval_classifier")


@pytest.fixture(scope="module")
def evaluated_run(tmp_path_factory, trained_workdir, shared_classifier_dir):
  """A copy of the tiny run, evaluated (training the shared evaluation classifier on the way)."""
  workdir = str(tmp_path_factory.mktemp("eval") / "run_a")
  shutil.copytree(trained_workdir, workdir)
  plan = evaluation_plan.make_plan(workdir=workdir, eval_classifier_dir=shared_classifier_dir, per_class=2, batch=8)
  result = evaluate.evaluate(plan, mala_sampler.SamplerConfig(steps=2), command="cmd a")
  return workdir, result


def test_evaluate_workdir_writes_metrics_in_range(evaluated_run, small_idx_dir, shared_classifier_dir):
  workdir, result = evaluated_run
  with open(os.path.join(workdir, "evaluation.json")) as f:
    on_disk = json.load(f)
  assert on_disk == json.loads(json.dumps(result))
  assert KEYS <= set(result)
  assert result["dataset"] == f"idx:{small_idx_dir}" and result["num_samples"] == 20
  assert result["source"]["generator_steps"] == 2
  assert result["eval_classifier"]["dir"] == os.path.abspath(shared_classifier_dir)
  assert result["eval_classifier"]["test_accuracy"] > 0.6  # Real digits: the classifier works.
  for key in ("accuracy", "mean_requested_probability", "encoder_accuracy"):
    assert 0.0 <= result[key] <= 1.0
  assert np.isfinite(result["frechet_distance"]) and result["frechet_distance"] > 0
  # Two G steps make noise, nothing like digits: farther from real images than real images are from each other.
  assert 0 <= result["frechet_real_floor"] < result["frechet_distance"]
  assert result["real_diversity"] > 1.0  # Distinct real digits (L2 over 784 pixels in [0, 1]).
  assert 0 < result["reconstruction_mse"] < 1 and result["reconstruction_images"] == HELDOUT
  table = result["per_class_table"]
  # Two chains per class from distinct seeds give distinct images: each class' diversity is positive, and the
  # figure is their mean.
  assert all(row["diversity"] > 0 for row in table)
  assert result["diversity"] == pytest.approx(np.mean([row["diversity"] for row in table]))
  assert [row["class"] for row in table] == list(range(10)) and all(row["samples"] == 2 for row in table)
  assert np.mean([row["accuracy"] for row in table]) == pytest.approx(result["accuracy"])
  assert os.path.isfile(os.path.join(workdir, result["samples_png"]))
  text = evaluate.format_tables(result)
  assert "Frechet distance" in text and len(text.splitlines()) == 15 + 10
  assert "sets of 20 images against the same 68 real test digits" in text
  assert text.splitlines()[0].split() == ["metric", "samples", "G(E(x))", "real"]
  assert "copy ratio" in text and "exact duplicate pairs" in text


def test_evaluate_measures_copying_and_how_far_chains_moved(evaluated_run):
  """The copy test: distances to G(E(x)) of the training images, against held-out images' distances."""
  _, result = evaluated_run
  copying = result["copying"]
  assert result["copy_ratio"] == copying["copy_ratio"] == pytest.approx(
      copying["median_nearest_training_distance"] / copying["heldout_median_nearest_training_distance"])
  assert copying["copy_ratio"] > 0 and 0 <= copying["near_copy_share"] <= 1
  assert copying["exact_duplicate_pairs"] == 0  # 20 chains from distinct seeds: no two images are equal.
  assert copying["heldout_images_for_pairs"] == 20  # As many held-out images as samples.
  assert result["median_code_move"] > 0  # Two MALA steps from N(0, 1) move every chain.


def test_evaluate_finds_copies_of_training_digits(evaluated_run, tmp_path, shared_classifier_dir):
  """Chains of 0 steps that start at training digits' codes are G(E(x_train)) itself: copy ratio 0, no move."""
  workdir, _ = evaluated_run
  plan = evaluation_plan.make_plan(workdir=workdir, eval_classifier_dir=shared_classifier_dir, per_class=3, batch=30,
                                   output=str(tmp_path / "copies.json"))
  result = evaluate.evaluate(plan, mala_sampler.SamplerConfig(h0="class_codes", steps=0))
  # Not exactly 0: the sampler's and the copy test's G(E(x)) run in batches of other sizes (float round-off), and
  # this 2-step G draws nearly the same picture for every code, so held-out digits lie close to training ones too.
  assert result["copy_ratio"] < 0.1 and result["copying"]["near_copy_share"] == 1.0
  assert result["median_code_move"] == 0.0


def test_evaluate_workdir_measures_the_reconstructions(evaluated_run):
  """G's ceiling on the tiny run: G(E(x)) of the held-out half of the test images, judged against their true
  labels, in sets as large as the samples' against the other half."""
  _, result = evaluated_run
  assert CEILING_KEYS <= set(result)
  recon = result["reconstructions"]
  assert set(recon) == RECONSTRUCTION_KEYS and recon["images"] == result["reconstruction_images"] == HELDOUT
  assert 0.0 <= recon["accuracy"] <= 1.0 and 0.0 <= recon["mean_requested_probability"] <= 1.0
  # Two G steps reconstruct no digit: farther from real images than real images are from each other.
  assert np.isfinite(recon["frechet_distance"]) and recon["frechet_distance"] > result["frechet_real_floor"]
  assert recon["diversity"] > 0
  table = recon["per_class_table"]
  assert [row["samples"] for row in table] == [HELDOUT // 10] * 10  # As many of each class.
  assert "real_diversity" not in table[0]  # The real images' are the samples' table's.
  assert np.mean([row["accuracy"] for row in table]) == pytest.approx(recon["accuracy"])
  # One yardstick: every FD from sets of the samples' size (20) against the 68 reference digits.
  assert result["frechet_yardstick"]["set_size"] == 20 and result["frechet_yardstick"]["reference_size"] == 68
  assert len(recon["frechet_distance_of_each_set"]) == HELDOUT // 20
  assert result["diversity_vs_reconstructions"] == pytest.approx(result["diversity"] / recon["diversity"])
  assert result["frechet_vs_reconstructions"] == pytest.approx(result["frechet_distance"] / recon["frechet_distance"])
  assert result["frechet_vs_floor"] == pytest.approx(result["frechet_distance"] / result["frechet_real_floor"])
  assert result["frechet_vs_floor"] > 1
  assert result["diversity_vs_real"] == pytest.approx(result["diversity"] / result["real_diversity"])
  text = evaluate.format_tables(result)
  assert f"{recon['frechet_distance']:.2f}" in text.splitlines()[4]  # The Frechet line's G(E(x)) column.


INPAINT_ENTRY_KEYS = {"deterministic", "varied", "mean_image_fill", "random_start", "real_same_class_spread",
                      "steering", "grid_png"}


def _check_inpainting(result, masks, output):
  assert list(result["masks"]) == list(masks) and result["images"] == 20
  assert set(result["settings"]) == {"inpaint", "inpaint_varied"}
  for name, entry in result["masks"].items():
    assert set(entry) == INPAINT_ENTRY_KEYS
    for key in ("deterministic", "varied", "mean_image_fill", "random_start"):
      assert 0 < entry[key]["unknown_mse"] < 1 and 0 <= entry[key]["accuracy"] <= 1
    # The deterministic setting ignores the seed; the varied one does not.
    assert entry["deterministic"]["seed_spread"] < 1e-4 and entry["varied"]["seed_spread"] > 1e-2
    assert entry["real_same_class_spread"] > 0
    assert entry["varied"]["spread_vs_real"] == pytest.approx(entry["varied"]["seed_spread"]
                                                              / entry["real_same_class_spread"])
    steering = entry["steering"]
    assert steering["digits"] == 10 and steering["chains"] == 100
    assert all(0 <= steering[k] <= 1 for k in ("deterministic", "varied", "epsilon2_zero", "nearest_real_digit"))
    assert (output.parent / entry["grid_png"]).stat().st_size > 1000
  assert json.loads(output.read_text()) == json.loads(json.dumps(result))
  assert len(inpaint_evaluation.format_inpainting(result).splitlines()) == 8 * len(masks)


def test_report_rows_are_the_second_half_of_each_class():
  labels = np.repeat(np.arange(10), 6)
  rows = inpaint_evaluation.report_rows(labels, 2)
  assert rows.tolist() == [r for c in range(10) for r in (6 * c + 3, 6 * c + 4)]


def test_nearest_real_completions_take_the_unknown_part_of_the_nearest_digit_of_the_class():
  from ppgn_tf.sampling.sampler_config import named_mask
  mask = named_mask("left")
  train = np.zeros((3, 28, 28, 1), np.float32)
  train[0, :, 14:] = 0.2  # Class 1, far on the known part.
  train[0, :, :14] = 1.0
  train[1, :, 14:] = 0.7  # Class 1, near.
  train[2, :, 14:] = 0.9  # Class 2.
  image = np.zeros((1, 28, 28, 1), np.float32)
  image[0, :, :14] = 0.1
  out = inpaint_evaluation.nearest_real_completions(
      np.repeat(image, 2, 0), mask, train, np.array([1, 1, 2]), np.array([1, 2]))
  np.testing.assert_array_equal(out[:, :, :14], np.repeat(image, 2, 0)[:, :, :14])  # The known part kept.
  assert out[0, 0, 20, 0] == pytest.approx(0.7) and out[1, 0, 20, 0] == pytest.approx(0.9)


def test_evaluate_inpainting_on_a_workdir_and_its_export(evaluated_run, tmp_path, shared_classifier_dir):
  """Every measure of the issue, per mask, from the library sampler and from the export's signatures."""
  from ppgn_tf.sampling import trained_run
  workdir, _ = evaluated_run
  output = tmp_path / "inpainting.json"
  plan = evaluation_plan.make_plan(workdir=workdir, eval_classifier_dir=shared_classifier_dir, per_class=2, batch=50,
                                   output=str(output))
  masks = ("left", "centre")
  # The presets at 2 steps, in the library and in the export alike: what is measured, not how well.
  short = {name: dataclasses.replace(sampler_config.inpaint_preset(name), steps=2)
           for name in sampler_config.INPAINT_PRESETS}
  lib = inpaint_evaluation.evaluate_inpainting(plan, mala_sampler.SamplerConfig(steps=2), masks, steering_per_class=1,
                                               inpaint_configs=short)
  _check_inpainting(lib, masks, output)
  assert lib["settings"] == {name: sampler_config.to_json(c) for name, c in short.items()}
  with pytest.raises(ValueError, match="inpaint_configs: expected settings for inpaint, inpaint_varied"):
    inpaint_evaluation.evaluate_inpainting(plan, mala_sampler.SamplerConfig(steps=2), masks,
                                           inpaint_configs={"inpaint": short["inpaint"]})
  # The mean image fill depends on no model: the same figures whoever fills in.
  model = trained_run.load_trained(workdir)
  export = trained_run.export_sampler(model, mala_sampler.SamplerConfig(steps=2), str(tmp_path / "export"),
                                      trained_run.load_code_prior(workdir, model), max_batch=50,
                                      inpaint_configs=short)
  out = _run(["-m", "ppgn_tf.evaluate", f"--saved_model={export}", "--inpaint_mask=left,centre", "--per_class=2",
              "--batch=50", "--inpaint_steering_per_class=1", f"--eval_classifier_dir={shared_classifier_dir}",
              f"--dataset={plan.dataset}"])
  assert out.returncode == 0, out.stderr[-3000:]
  served_output = tmp_path / "export" / "inpainting.json"
  assert out.stdout.strip().splitlines()[-1] == str(served_output)
  served = json.loads(served_output.read_text())
  _check_inpainting(served, masks, served_output)
  assert served["settings"] == lib["settings"]  # The export records the settings it was built with.
  for name in masks:
    assert served["masks"][name]["mean_image_fill"] == lib["masks"][name]["mean_image_fill"]
    # The export runs the library's deterministic chains.
    assert served["masks"][name]["deterministic"]["unknown_mse"] == pytest.approx(
        lib["masks"][name]["deterministic"]["unknown_mse"], rel=1e-3)
  out = _run(["-m", "ppgn_tf.evaluate", f"--saved_model={export}", "--inpaint_mask=left,diagonal"])
  assert out.returncode == 1 and _error_lines(out.stderr, "evaluate") == [
      "evaluate: error: --inpaint_mask=diagonal: choose from all, left, right, top, bottom, centre"]


def test_checkpoints_kept_every_n_steps_give_quality_against_time(tmp_path, small_idx_dir, encoder_dir,
                                                                   shared_classifier_dir):
  """train.py --keep_checkpoint_every keeps one checkpoint per N G steps beside the rotating ones; evaluate
  --checkpoints judges each and plots the figures against G steps and minutes."""
  from conftest import tiny_config
  from ppgn_tf.training import checkpoints
  from ppgn_tf.training import train_lib
  workdir = str(tmp_path / "run")
  train_lib.train(tiny_config(), train_lib.RunOptions(
      workdir=workdir, dataset=f"idx:{small_idx_dir}", encoder_dir=encoder_dir, max_generator_steps=4, verbose=0,
      checkpoint_every=0, keep_checkpoints=1, keep_checkpoint_every=2), RunEnd(sample_per_class=0))
  kept = checkpoints.kept_checkpoints(workdir)
  assert [step for step, _ in kept] == [2, 4]  # Bounded: one per 2 G steps, not one per save.
  seconds = [checkpoints.checkpoint_elapsed_seconds(path) for _, path in kept]
  assert 0 < seconds[0] < seconds[1]
  output = tmp_path / "quality.json"
  out = _run(["-m", "ppgn_tf.evaluate", f"--workdir={workdir}", "--checkpoints", "--per_class=2", "--steps=2",
              f"--eval_classifier_dir={shared_classifier_dir}", f"--output={output}"])
  assert out.returncode == 0, out.stderr[-3000:]
  result = json.loads(output.read_text())
  points = result["checkpoints"]
  assert [p["generator_steps"] for p in points] == [2, 4]  # The rotating (latest) checkpoint is at step 4 too.
  for p in points:
    assert p["minutes"] > 0 and 0 <= p["samples"]["accuracy"] <= 1 and p["samples"]["frechet_vs_floor"] > 0
    assert p["G(E(x_test))"]["frechet_vs_floor"] > 0 and p["samples"]["copy_ratio"] > 0
  assert points[0]["minutes"] < points[1]["minutes"]
  assert (tmp_path / "quality.png").stat().st_size > 10_000
  assert "G steps" in out.stdout and len(out.stdout.strip().splitlines()) >= 3


def _stand_in_source(reconstruct, calls: list):
  """A _Source whose G(E(x)) is `reconstruct` (counting the images it is given) and whose samples are noise."""

  class StandIn:
    def __init__(self, plan, config):
      self.info = {"stand_in": True}
      self.settings = config

    def sample(self, classes, seeds):
      rng = np.random.default_rng(int(seeds[0]))
      images = rng.uniform(size=(len(classes), 28, 28, 1)).astype(np.float32)
      return images, np.full((len(classes), 10), 0.1, np.float32), np.ones((len(classes), 3), np.float32)

    def start_codes(self, classes, seeds):
      return np.zeros((len(classes), 3), np.float32)

    def reconstruct(self, images01):
      calls.append(len(images01))
      return reconstruct(images01)

  return StandIn


@pytest.mark.parametrize("kind,recon_images", [("identity", 0), ("gray", 30)])
def test_reconstruction_metrics_are_those_of_the_reconstructions(kind, recon_images, evaluated_run, monkeypatch,
                                                                 tmp_path, shared_classifier_dir):
  """With G(E(x)) = x, the ceiling is the real test images' own figures; with a constant gray G(E(x)), none of
  them (diversity 0, accuracy that of one label for all): the figures come from the reconstructions, once."""
  from ppgn_tf.data import datasets as data
  from ppgn_tf.evaluation import eval_classifier
  workdir, result = evaluated_run
  calls = []
  reconstruct = (lambda x: x) if kind == "identity" else (lambda x: np.full_like(x, 0.5))
  monkeypatch.setattr(evaluate, "_Source", _stand_in_source(reconstruct, calls))
  plan = evaluation_plan.make_plan(workdir=workdir, eval_classifier_dir=shared_classifier_dir,
                                   output=str(tmp_path / "stand_in.json"), per_class=2, batch=20,
                                   recon_images=recon_images)
  got = evaluate.evaluate(plan, mala_sampler.SamplerConfig(steps=2))
  recon = got["reconstructions"]
  train, test = data.load_arrays(got["dataset"])
  heldout, reference = evaluate.split_test_set(test.labels)
  assert len(heldout) == HELDOUT and not set(heldout) & set(reference) and len(heldout) + len(reference) == len(test)
  heldout = heldout[:recon_images or len(heldout)]
  n, labels = len(heldout), test.labels[heldout]
  # Test images reconstructed once, for the MSE, the metrics and the copy test; the training images once.
  assert calls == [min(256, n - lo) for lo in range(0, n, 256)] + [
      min(256, len(train) - lo) for lo in range(0, len(train), 256)] and n == recon["images"]
  assert got["median_code_move"] == pytest.approx(np.sqrt(3))
  assert [row["samples"] for row in recon["per_class_table"]] == np.bincount(labels, minlength=10).tolist()
  if kind == "identity":
    assert got["reconstruction_mse"] == 0.0
    # The held-out real digits, as the floor: G(E(x)) is judged against digits it was not made from.
    assert recon["frechet_distance"] == pytest.approx(got["frechet_real_floor"], rel=1e-3)
    real = test.images[heldout] / 255.0
    assert recon["diversity"] == pytest.approx(np.mean([metrics.mean_pairwise_distance(real[labels == c])
                                                        for c in range(10)]), rel=1e-5)
    assert got["frechet_vs_reconstructions"] == pytest.approx(got["frechet_vs_floor"], rel=1e-3)
    classifier, _ = evaluate.load_eval_classifier(shared_classifier_dir, got["dataset"], None)
    right = eval_classifier.predict(classifier, data.normalize(test.images).numpy()).argmax(1) == test.labels
    assert [row["accuracy"] for row in recon["per_class_table"]] == pytest.approx(
        [np.mean(right[heldout][labels == c]) for c in range(10)])
    assert recon["accuracy"] == pytest.approx(np.mean(right[heldout]))
  else:
    assert got["reconstruction_mse"] == pytest.approx(np.mean((test.images[heldout] / 255.0 - 0.5) ** 2), rel=1e-6)
    classifier, _ = evaluate.load_eval_classifier(shared_classifier_dir, got["dataset"], None)
    gray_label = eval_classifier.predict(classifier, data.normalize(np.full((1, 28, 28, 1), 0.5)).numpy()).argmax()
    assert recon["accuracy"] == pytest.approx(np.mean(labels == gray_label))
    assert recon["diversity"] == 0.0 and got["diversity_vs_reconstructions"] is None
    assert recon["frechet_distance"] > got["frechet_real_floor"]


def test_batching_does_not_change_the_samples(evaluated_run, tmp_path, shared_classifier_dir):
  workdir, result = evaluated_run
  plan = evaluation_plan.make_plan(workdir=workdir, eval_classifier_dir=shared_classifier_dir,
                                   output=str(tmp_path / "again.json"), per_class=2, batch=20, recon_images=40)
  again = evaluate.evaluate(plan, mala_sampler.SamplerConfig(steps=2))
  for key in ("accuracy", "mean_requested_probability", "frechet_distance", "diversity"):
    assert again[key] == pytest.approx(result[key], rel=1e-4, abs=1e-6), key
  assert again["reconstruction_images"] == again["reconstructions"]["images"] == 40
  assert [row["samples"] for row in again["reconstructions"]["per_class_table"]] == [4] * 10


def test_saved_model_gives_the_workdir_figures(evaluated_run, shared_classifier_dir):
  """The exported signatures (sample; encode then generate) give what the library gives."""
  from ppgn_tf.sampling import serving
  from ppgn_tf.sampling import trained_run
  workdir, result = evaluated_run
  model = trained_run.load_trained(workdir)
  export = serving.write(serving.build_archive(model.generator, model.encoder, mala_sampler.SamplerConfig(steps=2),
                                               model.config.code_layer, trained_run.load_code_prior(workdir, model)),
                         os.path.join(workdir, "export"))
  plan = evaluation_plan.make_plan(saved_model=os.path.join(workdir, "export"),
                                   eval_classifier_dir=shared_classifier_dir, per_class=2, batch=8)
  assert plan.dataset == result["dataset"]  # Found in the workdir above the export.
  assert plan.output == os.path.join(workdir, "export", "evaluation.json")
  from_export = evaluate.evaluate(plan, mala_sampler.SamplerConfig(steps=2))
  assert from_export["source"]["saved_model"] == os.path.abspath(export)
  assert from_export["reconstruction_mse"] == pytest.approx(result["reconstruction_mse"], rel=1e-4)
  for key in ("accuracy", "frechet_distance", "diversity"):
    assert from_export[key] == pytest.approx(result[key], rel=1e-3, abs=1e-5), key
    assert from_export["reconstructions"][key] == pytest.approx(result["reconstructions"][key], rel=1e-3, abs=1e-5), key


def test_classifier_of_another_dataset_is_refused(shared_classifier_dir, evaluated_run):
  with pytest.raises(ValueError, match="trained on idx:.*not mnist_offline"):
    evaluate.load_eval_classifier(shared_classifier_dir, "mnist_offline", None)


def _record_seed(workdir: str, seed: int) -> None:
  """Rewrites a copied run's config.json as if it had been trained at `seed` (the report reads only files)."""
  path = os.path.join(workdir, "config.json")
  with open(path) as f:
    config = json.load(f)
  with open(path, "w") as f:
    json.dump({**config, "seed": seed}, f)


def test_report_builds_from_two_tiny_runs(evaluated_run, trained_workdir, tmp_path, shared_classifier_dir):
  """run_a is evaluated already; run_b is not: the CLI's --evaluate evaluates it, then writes the report."""
  run_a, _ = evaluated_run
  run_b = str(tmp_path / "run_b")
  shutil.copytree(trained_workdir, run_b)
  _record_seed(run_b, 1)  # Two copies of one run at one seed would be refused as the same run twice.
  output = tmp_path / "docs" / "report.md"
  notes = tmp_path / "notes.md"
  notes.write_text("## Findings\n\nLatent critics: see below.\n")
  out = _run(["-m", "ppgn_tf.report", run_a, run_b, f"--output={output}", "--title=Tiny runs", "--evaluate",
              f"--notes={notes}",
              "--per_class=2", "--steps=2", f"--eval_classifier_dir={shared_classifier_dir}"])
  assert out.returncode == 0, out.stderr[-3000:]
  with open(os.path.join(run_b, "evaluation.json")) as f:
    evaluation_b = json.load(f)
  assert evaluation_b["per_class"] == 2 and "--workdir=" in evaluation_b["command"]
  markdown = output.read_text()
  assert markdown.startswith("# Tiny runs")
  assert markdown.index("## Findings\n\nLatent critics: see below.") < markdown.index("## Metrics")
  metrics_section = markdown.split("## Metrics")[1].split("### Accuracy per class")[0]
  rows = {l.split("|")[1].strip(): l for l in metrics_section.splitlines() if l.startswith("| run_")}
  assert set(rows) >= {"run_a", "run_b"}
  with open(os.path.join(trained_workdir, "summary.json")) as f:
    summary = json.load(f)
  cells = [c.strip() for c in rows["run_b"].split("|")[1:-1]]
  assert cells[1] == ", ".join(summary["critics"]) and cells[2] == f"{evaluation_b['accuracy']:.3f}"
  recon_b = evaluation_b["reconstructions"]
  assert cells[6:8] == [f"{evaluation_b['copy_ratio']:.2f}", str(evaluation_b["copying"]["exact_duplicate_pairs"])]
  assert cells[9:12] == [f"{recon_b['accuracy']:.3f}", f"{recon_b['frechet_distance']:.2f}",
                         f"{recon_b['diversity']:.3f}"]
  assert cells[12:14] == [str(summary["generator_steps"]), str(summary["critic_steps"])]
  per_class = markdown.split("### Accuracy per class")[1].split("## Samples")[0]
  assert "| run_b G(E(x)) | " + " | ".join(f"{row['accuracy']:.2f}" for row in recon_b["per_class_table"]) in per_class
  images = [cell.split("](")[1].rstrip(") |") for line in markdown.splitlines() for cell in line.split("| ")
            if "![" in cell]
  # The sample grid of each run, the Wasserstein band of their configuration, the FD picture of configurations.
  assert len(images) == 4
  for image in images:
    path = output.parent / image
    assert path.is_file() and not path.is_symlink() and path.stat().st_size > 0, image
  assert "## Commands" in markdown and "cmd a" in markdown and "python -m ppgn_tf.evaluate" in markdown


@pytest.fixture(scope="module")
def two_seed_runs(tmp_path_factory, trained_workdir, small_idx_dir, encoder_dir, shared_classifier_dir):
  """Tiny runs of two configurations (3a: D; 3e: D and D_fc1) at seeds 0 and 1, evaluated; 3e at seed 0 is the
  shared tiny run."""
  from conftest import tiny_config
  from ppgn_tf.training import train_lib
  root = tmp_path_factory.mktemp("seeds")
  workdirs = []
  for name, latent_critics in (("3a_vanilla", ()), ("3e_combined", ("fc1",))):
    for seed in (0, 1):
      workdir = str(root / name / f"seed{seed}")
      if name == "3e_combined" and seed == 0:
        shutil.copytree(trained_workdir, workdir)
      else:
        train_lib.train(tiny_config(latent_critics=latent_critics, seed=seed),
                        train_lib.RunOptions(workdir=workdir, dataset=f"idx:{small_idx_dir}", encoder_dir=encoder_dir,
                                             max_generator_steps=2, verbose=0, checkpoint_every=0),
                        RunEnd(sample_per_class=0))
      plan = evaluation_plan.make_plan(workdir=workdir, eval_classifier_dir=shared_classifier_dir, per_class=2,
                                       batch=20, recon_images=16)
      evaluate.evaluate(plan, mala_sampler.SamplerConfig(steps=2))
      workdirs.append(workdir)
  return workdirs


def test_report_groups_seeds_and_decides_claims_from_paired_differences(two_seed_runs, tmp_path):
  from ppgn_tf.evaluation import report_lib as report
  from ppgn_tf.evaluation import seed_statistics
  output = tmp_path / "docs" / "report.md"
  markdown = report.build_report(two_seed_runs, str(output), title="Two seeds")
  with open(tmp_path / "docs" / "report.json") as f:
    numbers = json.load(f)
  evaluations = {}
  for w in two_seed_runs:
    with open(os.path.join(w, "evaluation.json")) as f:
      evaluations[(os.path.basename(os.path.dirname(w)), int(w[-1]))] = json.load(f)
  # Grouped by configuration without the seed: two groups of seeds 0 and 1.
  assert [(g["name"], g["seeds"]) for g in numbers["groups"]] == [("3a_vanilla", [0, 1]), ("3e_combined", [0, 1])]
  for group in numbers["groups"]:
    fd = group["metrics"]["frechet_distance"]
    per_seed = [evaluations[(group["name"], seed)]["frechet_distance"] for seed in (0, 1)]
    assert [fd["values"][str(seed)] for seed in (0, 1)] == per_seed  # Each seed's value is kept.
    expected = seed_statistics.mean_interval(per_seed)  # Two seeds: mean +- 12.706 * sd / sqrt(2).
    assert fd["mean"] == pytest.approx(np.mean(per_seed)) and fd["n"] == 2
    assert (fd["low"], fd["high"]) == pytest.approx((expected.low, expected.high))
    assert fd["high"] - fd["low"] == pytest.approx(2 * 12.706 * np.std(per_seed, ddof=1) / np.sqrt(2), rel=1e-4)
    recon = group["metrics"]["recon_frechet_distance"]  # G's reconstructions beside the samples.
    assert recon["values"]["1"] == evaluations[(group["name"], 1)]["reconstructions"]["frechet_distance"]
  over_seeds = markdown.split("## Over seeds")[1].split("## ")[0]
  row = next(l for l in over_seeds.splitlines() if l.startswith("| 3a_vanilla |"))
  fd = numbers["groups"][0]["metrics"]["frechet_distance"]
  assert "| 0, 1 | image |" in row and f"{fd['mean']:.1f} [{fd['low']:.1f}, {fd['high']:.1f}]" in row
  # The claims: those between 3a and 3e from their seed-paired differences, the rest not run.
  claims = {c["claim"]: c for c in numbers["claims"]}
  comparable = claims["3e comparable to 3a"]
  assert comparable["verdict"] in (seed_statistics.HOLDS, seed_statistics.DOES_NOT_HOLD, seed_statistics.UNDECIDED)
  fd_part = comparable["parts"][0]
  assert fd_part["metric"] == "frechet_distance" and set(fd_part["differences"]) == {"0", "1"}
  assert fd_part["differences"]["1"] == pytest.approx(evaluations[("3e_combined", 1)]["frechet_distance"]
                                                      - evaluations[("3a_vanilla", 1)]["frechet_distance"])
  assert claims["3c below 3a (not as sharp)"]["verdict"] == seed_statistics.MISSING
  section = markdown.split("## The thesis' claims, from seed-paired differences")[1].split("\n## ")[0]
  assert "| 3e comparable to 3a | FD 3e_combined − 3a_vanilla: " in section and "2 seeds" in section
  assert "| 3c below 3a (not as sharp) | no runs of 3c | **not run** |" in section
  assert "### Claims that need paper scale" in section and "--seed=$seed" in section  # "3e slower" always is.
  from ppgn_tf import hardware
  slower = claims["3e slower than 3a"]["parts"][0]  # Every run here trained on this machine's CPU: all pairs.
  assert set(slower["differences"]) == {"0", "1"} and slower["other_cpu_seeds"] == {}
  assert f"Trained on {hardware.cpu_model()}: 4 runs." in markdown
  wall = [json.loads(open(os.path.join(w, "summary.json")).read())["wall_seconds"] for w in two_seed_runs]
  assert numbers["compute"]["training_seconds"] == pytest.approx(sum(wall))
  assert numbers["compute"]["evaluation_seconds"] == pytest.approx(sum(e["seconds"] for e in evaluations.values()))
  assert f"Compute, summed over the runs: {report.format_seconds(sum(wall))} of training" in markdown
  # Fig. 4: one band picture per configuration.
  figure = markdown.split("## Wasserstein estimates (Fig. 4)")[1].split("## Commands")[0]
  for name in ("3a_vanilla", "3e_combined"):
    assert f"![{name}](report_images/{name}_wasserstein_band.png)" in figure
    assert (tmp_path / "docs" / "report_images" / f"{name}_wasserstein_band.png").stat().st_size > 1000
  # Only what the markdown links is copied: each run's samples grid and each group's band picture.
  copied = {p.name for p in (tmp_path / "docs" / "report_images").iterdir()}
  assert copied == {os.path.basename(link) for link in re.findall(r"\]\((report_images/[^)]+)\)", markdown)}


def test_report_shows_a_second_evaluation_beside_and_each_configurations_scale(two_seed_runs, tmp_path):
  """The claims' evaluation and, beside it, another one of the same runs (e.g. the default sampler's); each group's
  scale in the JSON; the FD picture with the thesis' reading of each configuration."""
  from ppgn_tf.evaluation import report_lib as report
  workdirs = []
  for w in two_seed_runs:
    copy = tmp_path / "runs" / os.path.basename(os.path.dirname(w)) / os.path.basename(w)
    shutil.copytree(w, copy)
    with open(copy / "evaluation.json") as f:
      other = json.load(f)
    other["accuracy"], other["sampler"] = 0.5 + 0.1 * int(w[-1]), {"steps": 25, "h0": "class_gaussian"}
    (copy / "evaluation_default.json").write_text(json.dumps(other))
    workdirs.append(str(copy))
  output = tmp_path / "docs" / "report.md"
  markdown = report.build_report(workdirs, str(output), beside="evaluation_default.json")
  numbers = json.loads((tmp_path / "docs" / "report.json").read_text())
  group = numbers["groups"][0]
  assert group["beside"]["file"] == "evaluation_default.json"
  assert group["beside"]["metrics"]["accuracy"]["mean"] == pytest.approx(0.55)
  trained_in = json.loads((tmp_path / "runs" / "3a_vanilla" / "seed0" / "summary.json").read_text())["precision"]
  assert group["scale"] == {"dim": 2, "batch_size": 8, "generator_steps": 2, "dataset": group["scale"]["dataset"],
                            "precision": trained_in, "chains_per_class": 2, "sampler_steps": 2, "frechet_set_size": 10}
  assert group["scale"]["dataset"].startswith("idx:") and trained_in in ("fp32", "bf16")
  section = markdown.split("### Beside: `evaluation_default.json`")[1].split("\n## ")[0]
  assert '"h0": "class_gaussian"' in section and "| 3a_vanilla | 0, 1 | 0.550 [" in section
  assert "![FD by configuration](report_images/frechet_by_configuration.png)" in markdown
  assert (tmp_path / "docs" / "report_images" / "frechet_by_configuration.png").stat().st_size > 1000
  os.remove(os.path.join(workdirs[0], "evaluation_default.json"))
  with pytest.raises(ValueError, match="evaluation_default.json: missing"):
    report.build_report(workdirs, str(tmp_path / "again.md"), beside="evaluation_default.json")
  assert not (tmp_path / "again.md").exists()


def test_report_decides_timing_claims_from_the_benchmarks_interleaved_rounds(two_seed_runs, tmp_path):
  """With a benchmark, "3e slower than 3a" pairs the benchmark's rounds, not the runs' wall times."""
  from ppgn_tf.evaluation import report_lib as report
  from ppgn_tf.evaluation import seed_statistics
  bench = {"command": "python -m ppgn_tf.bench --config=quickstart", "precisions": ["fp32"], "config": "quickstart",
           "bench": {"dim": 16}, "cpu": {"model_name": "Test CPU"},
           "by_precision": {"fp32": {"experiment_rounds": {"g_iteration_s": {
               "vanilla": [1.0, 1.2, 0.9, 1.1], "combined": [1.5, 1.8, 1.3, 1.6]}}}}}
  markdown = report.build_report(two_seed_runs, str(tmp_path / "report.md"), bench=bench)
  claims = {c["claim"]: c for c in json.loads((tmp_path / "report.json").read_text())["claims"]}
  slower = claims["3e slower than 3a"]
  assert slower["verdict"] == seed_statistics.HOLDS
  part = slower["parts"][0]
  assert part["paired_by"] == "round" and part["differences"] == {"0": 0.5, "1": pytest.approx(0.6),
                                                                  "2": pytest.approx(0.4), "3": 0.5}
  assert "+0.50 [" in markdown and "4 rounds of the benchmark" in markdown and "on Test CPU (DIM 16, fp32)" in markdown
  assert claims["3e comparable to 3a"]["parts"][0]["paired_by"] == "seed"
  without_rounds = {**bench, "by_precision": {"fp32": {}}}
  with pytest.raises(ValueError, match="no interleaved rounds"):
    report.build_report(two_seed_runs, str(tmp_path / "again.md"), bench=without_rounds)


def test_report_writes_into_its_first_workdir_by_default(evaluated_run, tmp_path):
  """Without --output the report lands beside the runs it reads, never over a report the repository ships."""
  workdir, _ = evaluated_run
  run = tmp_path / "run_a"
  shutil.copytree(workdir, run)
  out = _run(["-m", "ppgn_tf.report", str(run)])
  assert out.returncode == 0, out.stderr[-3000:]
  assert out.stdout.strip().endswith(str(run / "report.md"))
  assert (run / "report.md").read_text().startswith("# PPGN runs") and (run / "report.json").is_file()


def test_report_shows_a_long_command_and_a_configurations_seeds_once():
  """A report of 21 runs opened with a screen-long command, and its commands section held 21 near-identical pairs."""
  from ppgn_tf.evaluation import report_lib as report
  workdirs = [f"runs/repro/{name}/seed{seed}" for name in ("3a_vanilla", "3e_combined", "3f_randomized")
              for seed in (0, 1, 2)]
  command = shlex.join(["python", "-m", "ppgn_tf.report", *workdirs, "--output=docs/reports/reproduction.md",
                        "--title=The thesis' experiments"])
  assert report.shown_command(command, workdirs) == \
      "python -m ppgn_tf.report RUN... --output=docs/reports/reproduction.md '--title=The thesis'\"'\"' experiments'"
  assert report.shown_command("python -m ppgn_tf.report a b", ["a", "b"]) == "python -m ppgn_tf.report a b"

  def run(seed, workdir, seed_flag=True):
    train = f"python train.py --flagfile=flags/vanilla.cfg {f'--seed={seed} ' if seed_flag else ''}--workdir={workdir}"
    return {"name": workdir, "seed": seed, "options": {"workdir": workdir, "command": train},
            "evaluation": {"command": f"python -m ppgn_tf.evaluate --workdir={workdir} --seed={seed}"}}

  seeds = {"name": "3a_vanilla", "runs": [run(0, "runs/3a/seed0"), run(1, "runs/3a/seed1")]}
  unlike = {"name": "3e_combined", "runs": [run(0, "runs/3e/seed0", seed_flag=False), run(1, "runs/3e/seed1")]}
  section = "\n".join(report.commands_section([seeds, unlike]))
  assert section.count("### ") == 3  # Once for 3a's seeds; 3e's runs differ in more than the seed, so each.
  assert "# SEED=0 RUN=runs/3a/seed0; SEED=1 RUN=runs/3a/seed1" in section
  assert "python train.py --flagfile=flags/vanilla.cfg --seed=$SEED --workdir=$RUN" in section
  assert "python -m ppgn_tf.evaluate --workdir=$RUN --seed=$SEED" in section
  assert "### runs/3e/seed0" in section
  assert "python train.py --flagfile=flags/vanilla.cfg --workdir=runs/3e/seed0" in section


def test_report_tells_runs_on_gpus_from_runs_on_their_host_cpu():
  """A run's wall time is the GPUs' when it had any: its seed pairs with a CPU run's are left out."""
  from ppgn_tf.evaluation import report_lib, seed_statistics
  cpu = "Intel(R) Xeon(R) Processor (family 6, model 207)"
  on_cpu, on_gpus = {"cpu": cpu, "gpus": []}, {"cpu": cpu, "gpus": ["NVIDIA L4"] * 2}
  assert report_lib.run_device(on_cpu) == cpu == report_lib.run_device({"cpu": cpu})  # Older summaries: no "gpus".
  assert report_lib.run_device(on_gpus) == f"2 × NVIDIA L4 (host: {cpu})"
  devices = {0: on_cpu, 1: on_gpus}
  kept, left_out = seed_statistics.same_cpu_pairs({0: 10.0, 1: 11.0}, {0: 12.0, 1: 2.0},
                                                  lambda s: report_lib.run_device(on_cpu),
                                                  lambda s: report_lib.run_device(devices[s]))
  assert kept == {0: 12.0} and left_out == {1: f"{cpu} vs 2 × NVIDIA L4 (host: {cpu})"}


def test_report_refuses_one_run_twice(evaluated_run, tmp_path):
  from ppgn_tf.evaluation import report_lib as report
  run_a, _ = evaluated_run
  again = str(tmp_path / "again")
  shutil.copytree(run_a, again)
  with pytest.raises(ValueError, match="same configuration and seed 0"):
    report.build_report([run_a, again], str(tmp_path / "report.md"))
  out = _run(["-m", "ppgn_tf.report", run_a, again, "--evaluate", f"--output={tmp_path / 'cli.md'}"])
  assert out.returncode == 1  # Refused before evaluating anything.
  errors = _error_lines(out.stderr, "report")
  assert len(errors) == 1 and "same configuration and seed 0" in errors[0], out.stderr[-2000:]
  assert sorted(os.listdir(tmp_path)) == ["again"]  # Nothing written, no images directory either.


def test_report_and_tables_build_from_an_evaluation_without_reconstructions(evaluated_run, tmp_path):
  """evaluation.json written before G's ceiling and copying were measured: "-" where their figures would be."""
  from ppgn_tf.evaluation import report_lib as report
  workdir, result = evaluated_run
  old = {k: v for k, v in json.loads(json.dumps(result)).items()
         if k not in CEILING_KEYS | COPY_KEYS | {"frechet_yardstick"}}
  run = tmp_path / "old_run"
  run.mkdir()
  shutil.copy(os.path.join(workdir, "summary.json"), run / "summary.json")
  (run / "evaluation.json").write_text(json.dumps(old))
  markdown = report.build_report([str(run)], str(tmp_path / "report.md"))
  per_run = markdown.split("## Metrics")[1].split("### Accuracy per class")[0]
  row = next(l for l in per_run.splitlines() if l.startswith("| old_run |"))
  cells = [c.strip() for c in row.split("|")[1:-1]]
  assert cells[2] == f"{old['accuracy']:.3f}" and cells[6:8] == ["-", "-"] and cells[9:12] == ["-", "-", "-"]
  assert "| old_run | " in markdown.split("### Accuracy per class")[1] and "old_run G(E(x))" not in markdown
  lines = evaluate.format_tables(old).splitlines()
  assert len(lines) == 9 + 10
  assert lines[1].split()[-2:] == ["-", f"{old['eval_classifier']['test_accuracy']:.3f}"]  # No G(E(x)) accuracy.
  assert all(line.split()[-2:] == ["-", "-"] for line in lines[9:])


@pytest.mark.parametrize("program,args,message", [
    ("evaluate", ["--workdir=/tmp", "--saved_model=/tmp"], "give exactly one of --workdir and --saved_model"),
    ("evaluate", ["--workdir=/no/such/run"], "/no/such/run: no such workdir"),
    ("evaluate", ["--workdir=/tmp", "--per_class=1"], "--per_class must be >= 2"),
    ("report", ["/no/such/run"], "/no/such/run: no such workdir"),
    ("report", [], "give at least one WORKDIR"),
    ("report", ["/tmp", "--notes=/no/such/notes.md"], "no such file"),
])
def test_bad_input_exits_1_with_one_line(program, args, message):
  out = _run(["-m", f"ppgn_tf.{program}", *args])
  assert out.returncode == 1
  errors = _error_lines(out.stderr, program)
  assert len(errors) == 1 and message in errors[0], out.stderr[-2000:]


def test_report_without_evaluation_names_the_fix(trained_workdir):
  out = _run(["-m", "ppgn_tf.report", trained_workdir, "--output=/tmp/never-written.md"])
  assert out.returncode == 1
  errors = _error_lines(out.stderr, "report")
  assert len(errors) == 1 and "evaluation.json: missing" in errors[0] and "--evaluate" in errors[0]


# --- Sampler settings at evaluation time, and the sweep ------------------------------------------

def test_evaluate_overrides_sampler_settings_without_retraining(evaluated_run, tmp_path, shared_classifier_dir):
  workdir, thesis = evaluated_run
  plan = evaluation_plan.make_plan(workdir=workdir, eval_classifier_dir=shared_classifier_dir,
                                   output=str(tmp_path / "codes.json"), per_class=2, batch=20)
  config = mala_sampler.SamplerConfig(steps=2, h0="codes", clip_percentile=1.0, stop_probability=0.5)
  result = evaluate.evaluate(plan, config)
  assert result["sampler"]["h0"] == "codes" and result["sampler"]["stop_probability"] == 0.5
  assert result["frechet_distance"] != thesis["frechet_distance"]  # Other chains, same run.
  for key in ("accuracy", "frechet_distance", "diversity"):  # The same G: the same ceiling.
    assert result["reconstructions"][key] == pytest.approx(thesis["reconstructions"][key], rel=1e-5)


def test_sweep_writes_the_table_plot_grids_and_choice(trained_workdir, tmp_path, shared_classifier_dir):
  from ppgn_tf.evaluation import sweep_lib as sweep
  output = tmp_path / "docs" / "sampler.md"
  out = _run(["-m", "ppgn_tf.sweep", f"--workdir={trained_workdir}", "--grid=thesis,class_gaussian_clip_10_steps,class_codes_clip_50_steps",
              "--per_class=2", "--best=1", "--min_accuracy=0", "--min_diversity_ratio=0", "--min_real_diversity_ratio=0", f"--eval_classifier_dir={shared_classifier_dir}",
              f"--output={output}"])
  assert out.returncode == 0, out.stderr[-3000:]
  text = output.read_text()
  for name in ("thesis", "class_gaussian_clip_10_steps", "class_codes_clip_50_steps"):
    assert f"| {name} |" in text
  assert "Eq. 8, the thesis' values" in text and ("Chosen: **" in text or "No setting passed the rule." in text)
  for picture in ("settings.png", "best_settings.png"):
    assert (tmp_path / "docs" / "sampler_images" / picture).stat().st_size > 1000
  with open(tmp_path / "docs" / "sampler.json") as f:
    result = json.load(f)
  with open(os.path.join(trained_workdir, "summary.json")) as f:
    summary = json.load(f)
  # The report names how its run was trained (a reader compares it with other runs by these).
  assert (result["training_precision"], result["training_cpu"]) == (summary["precision"], summary["cpu"])
  assert f"The run trained in {summary['precision']} on {summary['cpu']}; every setting samples in fp32." in text
  assert [r["name"] for r in result["rows"]] == ["thesis", "class_gaussian_clip_10_steps", "class_codes_clip_50_steps"]
  assert result["choice"] == sweep.choose(result["rows"], 0.0)  # With no threshold: the lowest FD of new digits.
  new = [r for r in result["rows"] if sweep.draws_new_digits(r)]
  assert result["choice"] == (min(new, key=lambda r: r["frechet_distance"]) if new else None)
  for r in result["rows"]:
    assert {"copy_ratio", "near_copy_share", "exact_duplicate_pairs", "near_duplicate_pairs", "median_code_move"} <= set(r)
  assert "| copy ratio |" in text
  assert result["ceiling"]["frechet_distance"] > 0 and result["floor"] > 0


def test_sweep_choice_rule():
  from ppgn_tf.evaluation import sweep_lib as sweep
  new = dict(copy_ratio=1.0, exact_duplicate_pairs=0, near_duplicate_pairs=0, heldout_near_duplicate_pairs=0)
  rows = [{"name": "a", "accuracy": 0.99, "frechet_distance": 50.0, "diversity": 2.0},
          {"name": "b", "accuracy": 0.90, "frechet_distance": 10.0, "diversity": 3.0},  # Best FD, too inaccurate.
          {"name": "c", "accuracy": 0.96, "frechet_distance": 40.0, "diversity": 1.0},
          {"name": "d", "accuracy": 0.97, "frechet_distance": 40.0, "diversity": 2.5}]  # Ties c, more diverse.
  rows = [{**r, **new} for r in rows]
  assert sweep.choose(rows, 0.95)["name"] == "d"
  assert sweep.choose(rows, 0.0)["name"] == "b"
  assert sweep.choose(rows, 0.995) is None
  assert sweep.choose(rows, 0.95, min_diversity=2.2)["name"] == "d"
  assert sweep.choose(rows, 0.0, min_diversity=2.2)["name"] == "b"
  assert sweep.choose(rows, 0.95, min_diversity=3.0) is None  # Only b is that diverse, and it is inaccurate.
  # The copy test: a setting that returns near-copies of training digits, or equal samples, is never chosen.
  new = dict(copy_ratio=1.0, exact_duplicate_pairs=0, near_duplicate_pairs=1, heldout_near_duplicate_pairs=1)
  rows = [{**r, **new} for r in rows]
  rows[3]["copy_ratio"] = 0.6
  assert sweep.choose(rows, 0.95)["name"] == "c"
  rows[2]["exact_duplicate_pairs"] = 2
  assert sweep.choose(rows, 0.95)["name"] == "a"
  rows[0]["near_duplicate_pairs"] = 5  # More close pairs than as many held-out digits have.
  assert sweep.choose(rows, 0.95) is None


def test_sweep_refuses_an_unknown_setting(trained_workdir, tmp_path):
  out = _run(["-m", "ppgn_tf.sweep", f"--workdir={trained_workdir}", "--grid=thesis,best_guess",
              f"--output={tmp_path / 'sampler.md'}"])
  assert out.returncode != 0
  errors = _error_lines(out.stderr, "sweep")
  assert len(errors) == 1 and "unknown setting best_guess" in errors[0], out.stderr[-2000:]
  assert not (tmp_path / "sampler.md").exists()
