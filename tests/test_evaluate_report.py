"""ppgn_tf.evaluate and ppgn_tf.report on tiny finished runs (dim 2, 2 G steps), 2 chains per class."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from ppgn_tf import evaluate, mala_sampler

from conftest import REPO

KEYS = {"accuracy", "mean_requested_probability", "encoder_accuracy", "frechet_distance", "frechet_real_floor",
        "diversity", "real_diversity", "reconstruction_mse", "per_class_table", "eval_classifier", "source",
        "num_samples", "samples_png", "dataset", "sampler", "command"}


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
  plan = evaluate.make_plan(workdir=workdir, eval_classifier_dir=shared_classifier_dir)
  result = evaluate.evaluate(plan, mala_sampler.SamplerConfig(steps=2), per_class=2, batch=8, command="cmd a")
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
  assert result["diversity"] >= 0
  assert 0 < result["reconstruction_mse"] < 1 and result["reconstruction_images"] == 128
  table = result["per_class_table"]
  assert [row["class"] for row in table] == list(range(10)) and all(row["samples"] == 2 for row in table)
  assert np.mean([row["accuracy"] for row in table]) == pytest.approx(result["accuracy"])
  assert os.path.isfile(os.path.join(workdir, result["samples_png"]))
  text = evaluate.format_tables(result)
  assert "Frechet distance" in text and len(text.splitlines()) == 9 + 10


def test_batching_does_not_change_the_samples(evaluated_run, tmp_path, shared_classifier_dir):
  workdir, result = evaluated_run
  plan = evaluate.make_plan(workdir=workdir, eval_classifier_dir=shared_classifier_dir,
                            output=str(tmp_path / "again.json"))
  again = evaluate.evaluate(plan, mala_sampler.SamplerConfig(steps=2), per_class=2, batch=20, recon_images=16)
  for key in ("accuracy", "mean_requested_probability", "frechet_distance", "diversity"):
    assert again[key] == pytest.approx(result[key], rel=1e-4, abs=1e-6), key
  assert again["reconstruction_images"] == 16


def test_saved_model_gives_the_workdir_figures(evaluated_run, shared_classifier_dir):
  """The exported signatures (sample; encode then generate) give what the library gives."""
  from ppgn_tf import serving, train_lib
  workdir, result = evaluated_run
  model = train_lib.load_trained(workdir)
  export = serving.write(serving.build_archive(model.generator, model.encoder, mala_sampler.SamplerConfig(steps=2),
                                               model.config.code_layer), os.path.join(workdir, "export"))
  plan = evaluate.make_plan(saved_model=os.path.join(workdir, "export"), eval_classifier_dir=shared_classifier_dir)
  assert plan.dataset == result["dataset"]  # Found in the workdir above the export.
  assert plan.output == os.path.join(workdir, "export", "evaluation.json")
  from_export = evaluate.evaluate(plan, mala_sampler.SamplerConfig(steps=2), per_class=2, batch=8)
  assert from_export["source"]["saved_model"] == os.path.abspath(export)
  assert from_export["reconstruction_mse"] == pytest.approx(result["reconstruction_mse"], rel=1e-4)
  for key in ("accuracy", "frechet_distance", "diversity"):
    assert from_export[key] == pytest.approx(result[key], rel=1e-3, abs=1e-5), key


def test_classifier_of_another_dataset_is_refused(shared_classifier_dir, evaluated_run):
  with pytest.raises(ValueError, match="trained on idx:.*not mnist_offline"):
    evaluate.load_eval_classifier(shared_classifier_dir, "mnist_offline", None)


def test_report_builds_from_two_tiny_runs(evaluated_run, trained_workdir, tmp_path, shared_classifier_dir):
  """run_a is evaluated already; run_b is not: the CLI's --evaluate evaluates it, then writes the report."""
  run_a, _ = evaluated_run
  run_b = str(tmp_path / "run_b")
  shutil.copytree(trained_workdir, run_b)
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
  assert cells[7:9] == [str(summary["generator_steps"]), str(summary["critic_steps"])]
  images = [cell.split("](")[1].rstrip(") |") for line in markdown.splitlines() for cell in line.split("| ")
            if "![" in cell]
  assert len(images) == 4  # Sample grid and Wasserstein curves of each run.
  for image in images:
    path = output.parent / image
    assert path.is_file() and not path.is_symlink() and path.stat().st_size > 0, image
  assert "## Commands" in markdown and "cmd a" in markdown and "python -m ppgn_tf.evaluate" in markdown


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
