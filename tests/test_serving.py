"""The exported sampler SavedModel: loading without the package (TF2 and the TF1
session path), agreement with the library, bad inputs, REST bodies, versioned
writes, and the export / sample command lines."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from ppgn_tf.data import datasets as data
from ppgn_tf.sampling import export_layout
from ppgn_tf.sampling import sampler_config
from ppgn_tf.sampling import serving
from ppgn_tf.sampling import trained_run
from ppgn_tf.sampling.mala_sampler import MalaSampler, SamplerConfig, initial_codes

from conftest import REPO
from serving_requests import NO_PACKAGE_PREAMBLE, rest_to_tensors
from tiny_networks import made_up_code_prior, tiny_encoder

STEPS = 10
SIGNATURES = {"serving_default", "sample", "inpaint", "inpaint_varied", "inpaint_from_codes", "generate",
              "encode"}


@pytest.fixture(scope="module")
def model(trained_workdir):
  return trained_run.load_trained(trained_workdir)


@pytest.fixture(scope="module")
def code_prior(model, trained_workdir):
  return trained_run.load_code_prior(trained_workdir, model)


@pytest.fixture(scope="module")
def exported(model, code_prior, tmp_path_factory):
  """(archive, base path D, version path D/1) of the trained run's sampler, steps=10."""
  archive = serving.build_archive(model.generator, model.encoder, SamplerConfig(steps=STEPS), "fc1", code_prior)
  base = str(tmp_path_factory.mktemp("export") / "ppgn")
  path = serving.write(archive, base)
  return archive, base, path


@pytest.fixture(scope="module")
def loaded(exported):
  return tf.saved_model.load(exported[2])


def _run(args, cwd, timeout=300):
  return subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=cwd)


def _program_lines(stderr):
  """stderr without TensorFlow's C++ start-up log lines (which TF_CPP_MIN_LOG_LEVEL leaves in)."""
  tf_log = re.compile(r"^([IWEF]\d{4} |WARNING: All log messages before absl::InitializeLog)")
  return [line for line in stderr.splitlines() if line.strip() and not tf_log.match(line)]


def _last_json(stdout):
  return json.loads(stdout.strip().splitlines()[-1])


def _serve(signature, class_id, seed, **scalars):
  out = signature(class_id=tf.constant(class_id, tf.int32), seed=tf.constant(seed, tf.int64), **scalars)
  return {k: v.numpy() for k, v in out.items()}


# --- Loading without the package --------------------------------------------------------------

STANDALONE = NO_PACKAGE_PREAMBLE + r'''import numpy as np
import tensorflow as tf

path = sys.argv[1]
class_id, seed = np.array([0, 3, 7, 9], np.int32), np.array([5, 6, 7, 8], np.int64)
model = tf.saved_model.load(path)
out = model.signatures["serving_default"](class_id=tf.constant(class_id), seed=tf.constant(seed))
result = {"sys_path": sys.path, "signatures": sorted(model.signatures.keys()),
          "tf2": {k: v.numpy().tolist() for k, v in out.items()}}

graph = tf.Graph()
with graph.as_default(), tf.compat.v1.Session(graph=graph) as sess:
  meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], path)
  sig = meta.signature_def["serving_default"]
  feed = {sig.inputs["class_id"].name: class_id, sig.inputs["seed"].name: seed}
  fetch = {k: v.name for k, v in sig.outputs.items()}
  result["tf1"] = {k: v.tolist() for k, v in sess.run(fetch, feed).items()}
  result["tf1_signatures"] = sorted(k for k in meta.signature_def if not k.startswith("__"))
result["modules"] = sorted(m for m in sys.modules if m.startswith("ppgn"))
print(json.dumps(result))
'''


@pytest.fixture(scope="module")
def standalone(exported, tmp_path_factory):
  """Runs STANDALONE under `python -I` (no project on sys.path) once; returns its JSON."""
  tmp = tmp_path_factory.mktemp("standalone")
  script = tmp / "load_sampler.py"
  script.write_text(STANDALONE)
  out = _run([sys.executable, "-I", str(script), exported[2]], cwd=str(tmp))
  assert out.returncode == 0, out.stderr[-3000:]
  return _last_json(out.stdout)


def test_standalone_tf2_load(standalone, loaded):
  assert not any(os.path.abspath(p or ".") == REPO for p in standalone["sys_path"])
  assert standalone["modules"] == []
  assert SIGNATURES <= set(standalone["signatures"])
  out = {k: np.array(v) for k, v in standalone["tf2"].items()}
  assert set(out) == {"images", "codes", "class_probs"}
  assert out["images"].shape == (4, 28, 28, 1)
  assert out["images"].min() >= 0 and out["images"].max() <= 1
  assert out["codes"].shape == (4, 64)
  assert out["class_probs"].shape == (4, 10)
  np.testing.assert_allclose(out["class_probs"].sum(1), 1.0, atol=1e-5)
  # Same numbers as this process gets from the same SavedModel.
  here = _serve(loaded.signatures["serving_default"], [0, 3, 7, 9], [5, 6, 7, 8])
  for k in out:
    np.testing.assert_allclose(out[k], here[k], atol=1e-4, err_msg=k)


def test_standalone_tf1_session_matches_tf2(standalone):
  assert SIGNATURES <= set(standalone["tf1_signatures"])
  assert set(standalone["tf1"]) == {"images", "codes", "class_probs"}
  for k, v in standalone["tf2"].items():
    np.testing.assert_allclose(np.array(standalone["tf1"][k]), np.array(v), atol=1e-5, err_msg=k)


# --- Agreement with the library, determinism, bad inputs ---------------------------------------

def test_signatures_match_the_library_sampler(model, loaded):
  class_id, seed = np.array([2, 4, 8], np.int32), np.array([21, 22, 23], np.int64)
  served = _serve(loaded.signatures["serving_default"], class_id, seed)
  lib = MalaSampler(model.generator, model.encoder, SamplerConfig(steps=STEPS)).sample(class_id, seed)
  np.testing.assert_allclose(served["images"], lib["images"], atol=1e-4)
  np.testing.assert_allclose(served["codes"], lib["codes"].numpy(), atol=1e-4)
  np.testing.assert_allclose(served["class_probs"], lib["class_probs"].numpy(), atol=1e-5)

  settings = dict(epsilon1=tf.constant(1e-2), epsilon2=tf.constant(1.0), epsilon3=tf.constant(1e-15))
  same = _serve(loaded.signatures["sample"], class_id, seed, steps=tf.constant(STEPS), **settings)
  np.testing.assert_allclose(same["images"], served["images"], atol=1e-5)
  zero = _serve(loaded.signatures["sample"], class_id, seed, steps=tf.constant(0), **settings)
  h0 = initial_codes(tf.constant(seed), [64])
  np.testing.assert_allclose(zero["codes"], h0.numpy(), atol=1e-6)
  np.testing.assert_allclose(zero["images"], data.denormalize(model.generator(h0, training=False)).numpy(),
                             atol=1e-5)
  assert np.abs(zero["codes"] - served["codes"]).max() > 1e-4  # The 10 steps did move the codes.


def test_rows_are_deterministic_across_batches(loaded):
  sig = loaded.signatures["serving_default"]
  a = _serve(sig, [3, 5, 1], [7, 1, 2])["images"]
  b = _serve(sig, [9, 3, 0, 5, 1], [4, 7, 0, 1, 2])["images"]
  np.testing.assert_allclose(b[[1, 3, 4]], a, atol=1e-3)
  single = _serve(sig, [5], [1])["images"]
  np.testing.assert_allclose(single[0], a[1], atol=1e-3)
  codes = _serve(sig, [3, 3], [7, 8])["codes"]
  assert np.abs(codes[0] - codes[1]).max() > 1e-2  # Another seed is another chain.


@pytest.mark.parametrize("signature, args, name", [
    ("serving_default", dict(class_id=[10, 1], seed=[1, 2]), "class_id"),
    ("serving_default", dict(class_id=[0, -1], seed=[1, 2]), "class_id"),
    ("serving_default", dict(class_id=[1, 2, 3], seed=[1, 2]), "seed"),
    ("sample", dict(class_id=[1, 2], seed=[1, 2], steps=-1), "steps"),
    ("sample", dict(class_id=[1, 2], seed=[1, 2], steps=3, epsilon2=-1.0), "epsilon2"),
])
def test_invalid_inputs_name_the_input(loaded, signature, args, name):
  kwargs = {"class_id": tf.constant(args["class_id"], tf.int32), "seed": tf.constant(args["seed"], tf.int64)}
  if signature == "sample":
    kwargs.update(steps=tf.constant(args["steps"], tf.int32), epsilon1=tf.constant(0.01),
                  epsilon2=tf.constant(args.get("epsilon2", 1.0)), epsilon3=tf.constant(0.0))
  with pytest.raises(tf.errors.InvalidArgumentError, match=name):
    loaded.signatures[signature](**kwargs)


def test_rest_row_and_columnar_bodies(loaded):
  sig = loaded.signatures["serving_default"]
  rows = json.loads('{"instances": [{"class_id": 3, "seed": 7}, {"class_id": 5, "seed": 1}]}')
  columns = json.loads('{"inputs": {"class_id": [3, 5], "seed": [7, 1]}}')
  from_rows = {k: v.numpy() for k, v in sig(**rest_to_tensors(rows, sig)).items()}
  from_columns = {k: v.numpy() for k, v in sig(**rest_to_tensors(columns, sig)).items()}
  np.testing.assert_array_equal(from_rows["images"], from_columns["images"])
  direct = _serve(sig, [3, 5], [7, 1])
  np.testing.assert_allclose(from_rows["images"], direct["images"], atol=1e-6)
  assert from_rows["images"].shape == (2, 28, 28, 1)


def test_encode_then_generate_real_digits(model, loaded, small_idx_dir):
  _, test = data.load_arrays(f"idx:{small_idx_dir}")
  pixels = (test.images[:8] / 255.0).astype(np.float32)
  encoded = {k: v.numpy() for k, v in loaded.signatures["encode"](images=tf.constant(pixels)).items()}
  assert encoded["codes"].shape == (8, 64) and encoded["class_probs"].shape == (8, 10)
  np.testing.assert_allclose(encoded["class_probs"].sum(1), 1.0, atol=1e-5)
  features = model.encoder(data.normalize(pixels), training=False)
  np.testing.assert_allclose(encoded["codes"], features["fc1"].numpy(), atol=1e-4)
  np.testing.assert_allclose(encoded["class_probs"], tf.nn.softmax(features["fc2"]).numpy(), atol=1e-5)
  assert np.abs(encoded["codes"]).max() > 0

  images = loaded.signatures["generate"](codes=tf.constant(encoded["codes"]))["images"].numpy()
  assert images.shape == (8, 28, 28, 1)
  assert images.min() >= 0 and images.max() <= 1
  expected = data.denormalize(model.generator(tf.constant(encoded["codes"]), training=False)).numpy()
  np.testing.assert_allclose(images, expected, atol=1e-5)


# --- Versioned writes ---------------------------------------------------------------------------

def _snapshot(directory):
  files = {}
  for root, _, names in os.walk(directory):
    for n in names:
      p = os.path.join(root, n)
      with open(p, "rb") as f:
        files[os.path.relpath(p, directory)] = (os.stat(p).st_mtime_ns, f.read())
  return files


def test_the_export_log_reads_and_the_signatures_keep_their_input_names(exported, tmp_path, caplog):
  """Writing an export logs no line about renamed inputs (TensorFlow's names for the variables the graph captures),
  and each signature takes the inputs by the names serving.md gives."""
  import logging

  from absl import logging as absl_logging
  verbosity = absl_logging.get_verbosity()
  absl_logging.set_verbosity(absl_logging.INFO)  # The lines are INFO, which the programs log.
  try:
    with caplog.at_level(logging.INFO, logger="absl"):
      path = serving.write(exported[0], str(tmp_path / "logged"))
  finally:
    absl_logging.set_verbosity(verbosity)
  assert any("Writing fingerprint" in r.getMessage() for r in caplog.records)  # The save's own INFO lines are kept.
  assert not [r.getMessage() for r in caplog.records if serving.CAPTURE_RENAME_LINE in r.getMessage()]
  signatures = tf.saved_model.load(path).signatures
  inputs = {name: sorted(f.structured_input_signature[1]) for name, f in signatures.items()}
  assert inputs == {"serving_default": ["class_id", "seed"],
                    "sample": ["class_id", "epsilon1", "epsilon2", "epsilon3", "seed", "steps"],
                    "inpaint": ["class_id", "images", "mask", "seed"],
                    "inpaint_varied": ["class_id", "images", "mask", "seed"],
                    "inpaint_from_codes": ["class_id", "codes", "epsilon1", "epsilon2", "epsilon3", "epsilon4",
                                           "images", "mask", "seed", "steps"],
                    "generate": ["codes"], "encode": ["images"]}


def test_versions_are_never_overwritten(exported, tmp_path):
  archive = exported[0]
  base = str(tmp_path / "models")
  assert serving.write(archive, base) == os.path.join(base, "1")
  before = _snapshot(os.path.join(base, "1"))
  assert "saved_model.pb" in before
  assert serving.write(archive, base) == os.path.join(base, "2")
  with pytest.raises(export_layout.ExportError, match="version 1 exists"):
    serving.write(archive, base, version=1)
  with pytest.raises(export_layout.ExportError, match=">= 1"):
    export_layout.check_export_dir(base, 0)
  assert _snapshot(os.path.join(base, "1")) == before
  assert sorted(os.listdir(base)) == ["1", "2"]  # No .tmp-* left behind.
  assert export_layout.existing_versions(base) == [1, 2]
  assert export_layout.check_export_dir(base, None) == 3
  assert serving.write(archive, base, version=7) == os.path.join(base, "7")
  assert sorted(os.listdir(base)) == ["1", "2", "7"]

  regular = tmp_path / "a_file"
  regular.write_text("not a directory")
  with pytest.raises(export_layout.ExportError, match="not a directory"):
    export_layout.check_export_dir(str(regular), None)
  with pytest.raises(export_layout.ExportError):
    serving.write(archive, str(regular))
  assert regular.read_text() == "not a directory"


# --- Command lines ------------------------------------------------------------------------------

def test_export_cli(trained_workdir, loaded, tmp_path):
  export_dir = str(tmp_path / "m")
  out = _run([sys.executable, "export.py", f"--workdir={trained_workdir}", f"--export_dir={export_dir}",
              "--sampler_preset=thesis", "--steps=5", "--precision=fp32"], cwd=REPO)  # fp32: compared at 1e-5.
  assert out.returncode == 0, out.stderr[-3000:]
  path = os.path.join(export_dir, "1")
  assert out.stdout.strip().splitlines()[-1] == path
  assert os.path.isfile(os.path.join(path, "saved_model.pb"))
  assert export_layout.read_sampler_settings(path) == SamplerConfig(steps=5)  # The thesis' Eq. 8, 5 steps.
  assert export_layout.read_export_precision(path) == "fp32"
  assert "export: precision fp32 (--precision=fp32)" in out.stderr
  # --steps reached serving_default: it equals the fixture export's `sample` at 5 steps.
  cli = _serve(tf.saved_model.load(path).signatures["serving_default"], [1, 6], [3, 4])
  five = _serve(loaded.signatures["sample"], [1, 6], [3, 4], steps=tf.constant(5), epsilon1=tf.constant(1e-2),
                epsilon2=tf.constant(1.0), epsilon3=tf.constant(1e-15))
  np.testing.assert_allclose(cli["images"], five["images"], atol=1e-5)


def test_export_cli_missing_workdir(tmp_path):
  missing = str(tmp_path / "no_such_run")
  export_dir = tmp_path / "m"
  export_dir.mkdir()
  out = _run([sys.executable, "export.py", f"--workdir={missing}", f"--export_dir={export_dir}"], cwd=REPO)
  assert out.returncode != 0
  lines = _program_lines(out.stderr)
  assert len(lines) == 1, out.stderr[-3000:]
  assert lines[0].startswith("export.py: error:") and missing in lines[0], lines
  assert os.listdir(export_dir) == []


def _check_sample_outputs(output_dir, per_class, frames):
  with Image.open(os.path.join(output_dir, "samples.png")) as png:
    assert png.size[0] > 28 * per_class and png.size[1] > 28 * 10
  with Image.open(os.path.join(output_dir, "chains.gif")) as gif:
    assert gif.n_frames == frames
  with open(os.path.join(output_dir, "samples.json")) as f:
    stats = json.load(f)
  assert stats["per_class"] == per_class
  assert 0 <= stats["encoder_accuracy"] <= 1
  assert 0 < stats["mean_requested_probability"] < 1
  return stats


def test_sample_cli_from_workdir_and_saved_model(trained_workdir, exported, tmp_path):
  common = ["--steps=4", "--per_class=2", "--gif_frames=2"]
  from_workdir = str(tmp_path / "from_workdir")
  # The export's settings are the thesis' (with --steps over them): the workdir is sampled with the same.
  out = _run([sys.executable, "-m", "ppgn_tf.sample", f"--workdir={trained_workdir}", *common,
              "--sampler_preset=thesis", f"--output_dir={from_workdir}", "--precision=fp32"], cwd=REPO)  # As exported.
  assert out.returncode == 0, out.stderr[-3000:]
  assert out.stdout.strip().splitlines()[-1] == os.path.join(from_workdir, "samples.png")
  a = _check_sample_outputs(from_workdir, 2, 3)  # keep_every 2: h_0, h_2, h_4.

  from_saved = str(tmp_path / "from_saved_model")
  out = _run([sys.executable, "-m", "ppgn_tf.sample", f"--saved_model={exported[1]}", *common,
              f"--output_dir={from_saved}"], cwd=REPO)
  assert out.returncode == 0, out.stderr[-3000:]
  b = _check_sample_outputs(from_saved, 2, 3)  # Chains of 0, 2 and 4 steps.
  # The same chains (seeds 0..19, 4 steps) through the library and the SavedModel.
  assert b["mean_requested_probability"] == pytest.approx(a["mean_requested_probability"], abs=1e-4)


@pytest.mark.parametrize("which", ["both", "neither"])
def test_sample_cli_needs_exactly_one_source(which, trained_workdir, exported, tmp_path):
  sources = {"both": [f"--workdir={trained_workdir}", f"--saved_model={exported[1]}"], "neither": []}[which]
  output_dir = tmp_path / "out"
  out = _run([sys.executable, "-m", "ppgn_tf.sample", *sources, f"--output_dir={output_dir}", "--steps=1"],
             cwd=REPO)
  assert out.returncode != 0
  assert _program_lines(out.stderr) == ["sample: error: give exactly one of --workdir and --saved_model"]
  assert not output_dir.exists()


def test_export_with_a_spatial_code_layer(tmp_path):
  """Codes of a conv layer ([rows, columns, channels]) go through every signature (E at tiny widths)."""
  from ppgn_tf.model import encoder as encoder_lib
  from ppgn_tf.model.generator import build_generator
  encoder = tiny_encoder()
  code_shape = tuple(encoder_lib.layer_shapes(encoder)["conv3"])
  assert len(code_shape) == 3
  generator = build_generator(code_shape, dim=2)
  path = serving.write(serving.build_archive(generator, encoder, SamplerConfig(steps=1), "conv3",
                                             made_up_code_prior(code_shape)), str(tmp_path / "m"))
  loaded = tf.saved_model.load(path).signatures
  out = loaded["serving_default"](class_id=tf.constant([1], tf.int32), seed=tf.constant([1], tf.int64))
  assert out["codes"].shape == (1, *code_shape)
  mask = tf.constant(sampler_config.named_mask("left")[None])
  filled = loaded["inpaint"](images=tf.zeros([1, 28, 28, 1]), mask=mask, class_id=tf.constant([1], tf.int32),
                             seed=tf.constant([1], tf.int64))
  assert filled["start_codes"].shape == (1, *code_shape)


# --- The original PPGN's settings and in-painting in the SavedModel ------------------------------

RICH = SamplerConfig(steps=STEPS, epsilon3=0.1, h0="class_gaussian", clip_percentile=1.0, normalize_step=True,
                     step_size=0.1, step_size_end=0.01, reset_every=4)


@pytest.fixture(scope="module")
def rich(model, trained_workdir, tmp_path_factory):
  """(version path, loaded SavedModel, library sampler) with every sampler option that reads the real codes."""
  from ppgn_tf.sampling import mala_sampler
  prior = trained_run.load_code_prior(trained_workdir, model)
  archive = serving.build_archive(model.generator, model.encoder, RICH, "fc1", prior)
  path = serving.write(archive, str(tmp_path_factory.mktemp("rich") / "ppgn"))
  return path, tf.saved_model.load(path), mala_sampler.MalaSampler(model.generator, model.encoder, RICH, prior=prior)


def _inpaint_inputs(small_idx_dir, rows=3):
  from ppgn_tf.sampling.mala_sampler import named_mask
  _, test = data.load_arrays(f"idx:{small_idx_dir}")
  images = (test.images[:rows] / 255.0).astype(np.float32)
  mask = np.stack([named_mask(n) for n in ("left", "top", "centre")][:rows])
  return images, mask, np.array([1, 5, 9][:rows], np.int32), np.array([4, 5, 6][:rows], np.int64)


def test_rich_settings_match_the_library_and_are_recorded(rich, small_idx_dir):
  path, loaded, sampler = rich
  assert export_layout.read_sampler_settings(path) == RICH  # assets.extra/sampler.json, for the programs.
  class_id, seed = np.array([0, 4, 7], np.int32), np.array([31, 32, 33], np.int64)
  served = _serve(loaded.signatures["serving_default"], class_id, seed)
  lib = {k: v.numpy() for k, v in sampler.sample(class_id, seed).items()}
  for k in ("images", "codes", "class_probs"):
    np.testing.assert_allclose(served[k], lib[k], atol=1e-4, err_msg=k)
  low, high = sampler.prior.bounds(1.0)
  assert (served["codes"] >= low - 1e-6).all() and (served["codes"] <= high + 1e-6).all()



def _inpaint_signature(loaded, name, images, mask, class_id, seed, **more):
  return {k: v.numpy() for k, v in loaded.signatures[name](
      images=tf.constant(images), mask=tf.constant(mask), class_id=tf.constant(class_id), seed=tf.constant(seed),
      **{k: tf.constant(v) for k, v in more.items()}).items()}


def test_inpaint_signatures_run_the_inpainting_presets(rich, model, small_idx_dir):
  """inpaint and inpaint_varied run the library's in-painting presets (recorded in sampler.json); the seed
  changes inpaint_varied's completions and not inpaint's; inpaint_from_codes runs inpaint's chains from given
  codes with given weights."""
  from ppgn_tf.sampling import mala_sampler
  path, loaded, sampler = rich
  recorded = export_layout.read_inpaint_settings(path)
  assert recorded == {n: sampler_config.to_json(c) for n, c in sampler_config.INPAINT_PRESETS.items()}
  images, mask, class_id, seed = _inpaint_inputs(small_idx_dir)
  for name, settings in sampler_config.INPAINT_PRESETS.items():
    filled = _inpaint_signature(loaded, name, images, mask, class_id, seed)
    library = mala_sampler.MalaSampler(model.generator, model.encoder, settings, prior=sampler.prior)
    lib = {k: v.numpy() for k, v in library.inpaint(images, mask, class_id, seed).items()}
    assert set(filled) == {"images", "generated", "codes", "class_probs", "start_codes"}
    np.testing.assert_allclose(filled["start_codes"], library.inpaint_start_codes(images, mask, class_id, seed).numpy(),
                               atol=1e-4)
    for k in ("images", "generated", "codes", "class_probs"):
      np.testing.assert_allclose(filled[k], lib[k], rtol=1e-3, atol=1e-4, err_msg=f"{name} {k}")
    np.testing.assert_allclose(filled["images"][mask > 0], images[mask > 0], atol=1e-6)  # Known pixels kept.
    other = _inpaint_signature(loaded, name, images, mask, class_id, seed + 100)
    moved = np.abs(other["images"] - filled["images"]).max(axis=(1, 2, 3))
    if name == "inpaint":
      assert not settings.inpaint_varies and moved.max() == 0.0
    else:
      assert settings.inpaint_varies and (moved > 1e-3).all(), moved
  deterministic = sampler_config.INPAINT_PRESETS["inpaint"]
  filled = _inpaint_signature(loaded, "inpaint", images, mask, class_id, seed)
  again = _inpaint_signature(loaded, "inpaint_from_codes", images, mask, class_id, seed, codes=filled["start_codes"],
                             steps=np.int32(deterministic.steps), epsilon1=np.float32(deterministic.epsilon1),
                             epsilon2=np.float32(deterministic.epsilon2), epsilon3=np.float32(deterministic.epsilon3),
                             epsilon4=np.float32(deterministic.epsilon4))
  np.testing.assert_allclose(again["images"], filled["images"], atol=1e-5)
  still = _inpaint_signature(loaded, "inpaint_from_codes", images, mask, class_id, seed, codes=filled["start_codes"],
                             steps=np.int32(0), epsilon1=np.float32(0), epsilon2=np.float32(0),
                             epsilon3=np.float32(0), epsilon4=np.float32(0))
  np.testing.assert_allclose(still["codes"], filled["start_codes"], atol=1e-6)  # 0 steps: where it started.
  with pytest.raises(tf.errors.InvalidArgumentError, match="epsilon4 must be >= 0"):
    _inpaint_signature(loaded, "inpaint_from_codes", images, mask, class_id, seed, codes=filled["start_codes"],
                       steps=np.int32(1), epsilon1=np.float32(0), epsilon2=np.float32(0),
                       epsilon3=np.float32(0), epsilon4=np.float32(-1))


STANDALONE_INPAINT = r'''
import json, sys
try:
  import ppgn_tf
except ImportError:
  pass
else:
  sys.exit("ppgn_tf is importable")
import numpy as np
import tensorflow as tf

path, inputs = sys.argv[1], np.load(sys.argv[2])
graph = tf.Graph()
with graph.as_default(), tf.compat.v1.Session(graph=graph) as sess:
  meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], path)
  sig = meta.signature_def["inpaint"]
  feed = {sig.inputs[name].name: inputs[name] for name in ("images", "mask", "class_id", "seed")}
  fetch = {k: v.name for k, v in sig.outputs.items()}
  out = {k: v.tolist() for k, v in sess.run(fetch, feed).items()}
  bad = dict(feed)
  bad[sig.inputs["mask"].name] = np.full_like(inputs["mask"], 0.5)
  try:
    sess.run(fetch, bad)
    error = None
  except tf.errors.InvalidArgumentError as e:
    error = e.message
print(json.dumps({"tf1": out, "bad_mask_error": error, "inputs": sorted(sig.inputs)}))
'''


def test_inpaint_signature_through_the_tf1_session_path(rich, small_idx_dir, tmp_path):
  """TensorFlow Serving's C++ loader path, from a process that cannot import ppgn_tf."""
  path, loaded, _ = rich
  images, mask, class_id, seed = _inpaint_inputs(small_idx_dir)
  np.savez(tmp_path / "inputs.npz", images=images, mask=mask, class_id=class_id, seed=seed)
  script = tmp_path / "inpaint.py"
  script.write_text(STANDALONE_INPAINT)
  out = _run([sys.executable, "-I", str(script), path, str(tmp_path / "inputs.npz")], cwd=str(tmp_path))
  assert out.returncode == 0, out.stderr[-3000:]
  result = _last_json(out.stdout)
  assert result["inputs"] == ["class_id", "images", "mask", "seed"]
  assert "mask values must be 0" in result["bad_mask_error"]  # InvalidArgument naming the input.
  here = {k: v.numpy() for k, v in loaded.signatures["inpaint"](
      images=tf.constant(images), mask=tf.constant(mask), class_id=tf.constant(class_id),
      seed=tf.constant(seed)).items()}
  for k, v in result["tf1"].items():
    np.testing.assert_allclose(np.array(v), here[k], atol=1e-5, err_msg=k)


@pytest.mark.parametrize("change, message", [
    (dict(images=1.5), "images must be in"), (dict(images=-0.1), "images must be in"),
    (dict(mask=0.5), "mask values must be 0"), (dict(mask_rows=2), "mask must have the shape"),
    (dict(class_rows=2), "images must have one row per class_id"), (dict(class_id=10), "class_id")])
def test_invalid_inpaint_inputs_name_the_input(rich, small_idx_dir, change, message):
  images, mask, class_id, seed = _inpaint_inputs(small_idx_dir)
  if "images" in change:
    images = np.full_like(images, change["images"])
  if "mask" in change:
    mask = np.full_like(mask, change["mask"])
  if "mask_rows" in change:
    mask = mask[:change["mask_rows"]]
  if "class_rows" in change:
    class_id, seed = class_id[:2], seed[:2]
  if "class_id" in change:
    class_id = np.full_like(class_id, change["class_id"])
  with pytest.raises(tf.errors.InvalidArgumentError, match=message):
    rich[1].signatures["inpaint"](images=tf.constant(images), mask=tf.constant(mask),
                                  class_id=tf.constant(class_id), seed=tf.constant(seed))


def test_sample_cli_inpaints_from_workdir_and_saved_model(trained_workdir, rich, tmp_path):
  mask = tmp_path / "mask.npy"
  np.save(mask, np.pad(np.ones((28, 10)), ((0, 0), (0, 18))))  # The left 10 columns are known.
  runs = {
      "workdir": [f"--workdir={trained_workdir}", "--steps=3", "--inpaint_image=test:5", "--inpaint_mask=bottom"],
      "saved_model": [f"--saved_model={rich[0]}", "--inpaint_image=test:5", f"--inpaint_mask={mask}"],
  }
  for name, args in runs.items():
    output_dir = tmp_path / name
    out = _run([sys.executable, "-m", "ppgn_tf.sample", *args, "--per_class=2", f"--output_dir={output_dir}"],
               cwd=REPO)
    if name == "saved_model":  # Outside a workdir the data set is unknown: test:N needs one.
      assert out.returncode != 0
      assert _program_lines(out.stderr)[-1].startswith("sample: error: --inpaint_image=test:5: the data set")
      image = tmp_path / "digit.png"
      Image.fromarray(np.tile(np.arange(28, dtype=np.uint8)[None] * 9, (28, 1))).save(image)
      args = [f"--saved_model={rich[0]}", f"--inpaint_image={image}", f"--inpaint_mask={mask}"]
      out = _run([sys.executable, "-m", "ppgn_tf.sample", *args, "--per_class=2", f"--output_dir={output_dir}"],
                 cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == str(output_dir / "inpaint.png")
    with Image.open(output_dir / "inpaint.png") as picture:
      deterministic_width = picture.size[0]
    with open(output_dir / "inpaint.json") as f:
      stats = json.load(f)
    # The deterministic default: one completion per class (never two identical columns).
    assert stats["per_class"] == 1 and 0 <= stats["encoder_accuracy"] <= 1
    varied_dir = tmp_path / f"{name}_varied"
    out = _run([sys.executable, "-m", "ppgn_tf.sample", *args, "--inpaint_preset=inpaint_varied", "--per_class=2",
                f"--output_dir={varied_dir}"], cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    with Image.open(varied_dir / "inpaint.png") as picture:
      assert picture.size[0] > deterministic_width  # Ten rows of three: the masked input and two completions.
    with open(varied_dir / "inpaint.json") as f:
      assert json.load(f)["per_class"] == 2


def test_inpaint_grid_of_the_varied_preset_differs_across_columns(model, code_prior, small_idx_dir):
  from ppgn_tf.sampling import inpaint_inputs, sample_lib
  _, test = data.load_arrays(f"idx:{small_idx_dir}")
  inputs = inpaint_inputs.InpaintInputs(source="x", mask=sampler_config.named_mask("left"),
                                        image=(test.images[0] / 255.0).astype(np.float32))
  grid, probs = sample_lib.inpaint_from_model(model, sampler_config.INPAINT_PRESETS["inpaint_varied"], inputs, 3,
                                              prior=code_prior)
  rows = grid.reshape(10, 4, 28, 28, 1)
  assert probs.shape == (30, 10)
  for row in rows:  # The masked input, then three completions that differ pairwise in the unknown half.
    completions = row[1:, :, 14:]
    assert min(np.abs(completions[i] - completions[j]).max() for i in range(3) for j in range(i + 1, 3)) > 1e-3


# --- What of the training data an export holds -----------------------------------------------------

def _arrays_in_saved_model(path):
  """Every constant of the graph (its functions included) and every variable of a SavedModel, as numpy arrays."""
  from tensorflow.core.protobuf import saved_model_pb2
  proto = saved_model_pb2.SavedModel()
  with open(os.path.join(path, "saved_model.pb"), "rb") as f:
    proto.ParseFromString(f.read())
  graph = proto.meta_graphs[0].graph_def
  nodes = list(graph.node) + [n for function in graph.library.function for n in function.node_def]
  arrays = [tf.make_ndarray(n.attr["value"].tensor) for n in nodes if n.op == "Const"]
  reader = tf.train.load_checkpoint(os.path.join(path, "variables", "variables"))
  arrays += [reader.get_tensor(name) for name in reader.get_variable_to_shape_map()]
  return arrays


def _training_code_rows_held(arrays, codes) -> int:
  """How many rows of float arrays equal a training code that is not all zeros, to 1% of a code's length (bf16
  rounds to 0.4%)."""
  codes = codes.reshape(len(codes), -1)
  codes = codes[np.abs(codes).sum(1) > 0]
  from ppgn_tf.evaluation import metrics
  tolerance = 1e-2 * float(np.median(np.linalg.norm(codes, axis=1)))
  held = 0
  for array in map(np.asarray, arrays):
    if array.dtype.kind != "f" or array.size < codes.shape[1] or array.size % codes.shape[1]:
      continue
    rows = array.astype(np.float32).reshape(-1, codes.shape[1])
    held += int(np.sum(metrics.nearest_distances(rows, codes) <= tolerance))
  return held


def test_the_default_export_holds_no_training_code(model, trained_workdir, tmp_path):
  """Only summary statistics reach the graph; the training_digit settings embed every code, and only when asked."""
  from ppgn_tf.sampling import sampler_config
  prior = trained_run.load_code_prior(trained_workdir, model)
  default = sampler_config.preset("default")
  path = serving.write(serving.build_archive(model.generator, model.encoder, default, "fc1", prior),
                       str(tmp_path / "default"))
  arrays = _arrays_in_saved_model(path)
  assert _training_code_rows_held(arrays, prior.codes) == 0
  # serving_default, sample and inpaint_varied read one mixture of 4 Gaussians per class: the graph holds it once.
  scales = prior.statistics(components=default.h0_components).class_scales
  assert sum(np.shape(a) == scales.shape for a in arrays) == 1
  recorded = json.loads(open(os.path.join(path, export_layout.SETTINGS_FILE)).read())[export_layout.EMBEDDED_KEY]
  assert set(recorded) == {"class_statistics", "clip_range"}
  assert export_layout.read_sampler_settings(path) == default

  copying = sampler_config.preset("training_digit")
  with pytest.raises(ValueError, match="--h0=class_codes starts chains from stored training codes.*"
                                       "--export_training_codes"):
    serving.build_archive(model.generator, model.encoder, copying, "fc1", prior)
  path = serving.write(serving.build_archive(model.generator, model.encoder, copying, "fc1", prior,
                                             embed_training_codes=True),
                       str(tmp_path / "copying"))
  # The check finds them where they are: every training code is a row of some constant.
  assert _training_code_rows_held(_arrays_in_saved_model(path), prior.codes) >= len(
      prior.codes[np.abs(prior.codes).sum(1) > 0])
  recorded = json.loads(open(os.path.join(path, export_layout.SETTINGS_FILE)).read())[export_layout.EMBEDDED_KEY]
  assert recorded["training_codes"].startswith(f"{len(prior.codes)} codes E(x) of training images")


def test_export_programs_refuse_training_codes_unless_asked(trained_workdir, tmp_path):
  out = _run([sys.executable, "export.py", f"--workdir={trained_workdir}", f"--export_dir={tmp_path / 'e'}",
              "--sampler_preset=training_digit"], cwd=REPO)
  assert out.returncode == 1 and not (tmp_path / "e").exists()
  assert _program_lines(out.stderr) == ["export.py: error: --h0=class_codes starts chains from stored training "
                                        "codes, so its export would hold the code of every training digit; pass "
                                        "--export_training_codes to embed them, or use --h0=class_gaussian "
                                        "(summary statistics only)"]


# --- Limits a server can live with -----------------------------------------------------------------

def test_requests_past_the_exports_limits_are_refused_before_any_work(model, code_prior, loaded, tmp_path):
  """--max_batch bounds every signature's rows, --max_steps the `sample` signature's steps: InvalidArgument naming
  the limit. The programs that read an export send their rows in requests within its limit, with the same
  result."""
  from ppgn_tf.sampling import sample_lib
  config = SamplerConfig(steps=STEPS)
  # max_steps at least every signature's own steps (the in-painting presets run 20).
  archive = serving.build_archive(model.generator, model.encoder, config, "fc1", code_prior, max_batch=3,
                                  max_steps=20)
  path = serving.write(archive, str(tmp_path / "limited"))
  assert json.loads(open(os.path.join(path, export_layout.EXPORT_INFO_FILE)).read())["max_batch"] == 3
  limited = tf.saved_model.load(path).signatures
  rows = dict(class_id=tf.constant([1, 2, 3, 4], tf.int32), seed=tf.constant([1, 2, 3, 4], tf.int64))
  with pytest.raises(tf.errors.InvalidArgumentError, match=r"class_id has more rows than this export allows \(max_batch 3\)"):
    limited["serving_default"](**rows)
  steps = dict(epsilon1=tf.constant(0.01), epsilon2=tf.constant(1.0), epsilon3=tf.constant(0.0))
  with pytest.raises(tf.errors.InvalidArgumentError, match=r"steps is more than this export allows \(max_steps 20\)"):
    limited["sample"](class_id=rows["class_id"][:2], seed=rows["seed"][:2], steps=tf.constant(21), **steps)
  with pytest.raises(tf.errors.InvalidArgumentError, match="codes has more rows"):
    limited["generate"](codes=tf.zeros([4, 64]))
  with pytest.raises(tf.errors.InvalidArgumentError, match="images has more rows"):
    limited["encode"](images=tf.zeros([4, 28, 28, 1]))
  within = limited["sample"](class_id=rows["class_id"][:3], seed=rows["seed"][:3], steps=tf.constant(20), **steps)
  assert within["images"].shape == (3, 28, 28, 1)
  # Four rows in two requests give what one request to an unlimited export gives.
  split = sample_lib.call_in_requests(limited["serving_default"], 3, **rows)
  whole = {k: v.numpy() for k, v in loaded.signatures["serving_default"](**rows).items()}
  for k in whole:
    np.testing.assert_allclose(split[k], whole[k], atol=1e-4, err_msg=k)
  with pytest.raises(ValueError, match="--max_steps=5 is below the sampler's own --steps=10"):
    serving.build_archive(model.generator, model.encoder, config, "fc1", code_prior, max_steps=5)
