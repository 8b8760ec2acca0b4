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

from ppgn_tf import data, serving, train_lib
from ppgn_tf.mala_sampler import MalaSampler, SamplerConfig, initial_codes

from conftest import REPO

STEPS = 10
SIGNATURES = {"serving_default", "sample", "generate", "encode"}


@pytest.fixture(scope="module")
def model(trained_workdir):
  return train_lib.load_trained(trained_workdir)


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
  """(archive, base path D, version path D/1) of the trained run's sampler, steps=10."""
  archive = serving.build_archive(model.generator, model.encoder, SamplerConfig(steps=STEPS), "fc1")
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

STANDALONE = r'''
import json, sys
try:
  import ppgn_tf
except ImportError:
  pass
else:
  sys.exit("ppgn_tf is importable: " + ppgn_tf.__file__)
import numpy as np
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


def _rest_to_tensors(body: dict, signature) -> dict:
  """A TF Serving REST predict body (row or columnar form) as the signature's input tensors."""
  specs = signature.structured_input_signature[1]
  if "instances" in body:
    rows = body["instances"]
    columns = {name: [row[name] for row in rows] for name in rows[0]}
  else:
    columns = body["inputs"]
  assert set(columns) == set(specs)
  return {name: tf.constant(values, specs[name].dtype) for name, values in columns.items()}


def test_rest_row_and_columnar_bodies(loaded):
  sig = loaded.signatures["serving_default"]
  rows = json.loads('{"instances": [{"class_id": 3, "seed": 7}, {"class_id": 5, "seed": 1}]}')
  columns = json.loads('{"inputs": {"class_id": [3, 5], "seed": [7, 1]}}')
  from_rows = {k: v.numpy() for k, v in sig(**_rest_to_tensors(rows, sig)).items()}
  from_columns = {k: v.numpy() for k, v in sig(**_rest_to_tensors(columns, sig)).items()}
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


def test_versions_are_never_overwritten(exported, tmp_path):
  archive = exported[0]
  base = str(tmp_path / "models")
  assert serving.write(archive, base) == os.path.join(base, "1")
  before = _snapshot(os.path.join(base, "1"))
  assert "saved_model.pb" in before
  assert serving.write(archive, base) == os.path.join(base, "2")
  with pytest.raises(serving.ExportError, match="version 1 exists"):
    serving.write(archive, base, version=1)
  with pytest.raises(serving.ExportError, match=">= 1"):
    serving.check_export_dir(base, 0)
  assert _snapshot(os.path.join(base, "1")) == before
  assert sorted(os.listdir(base)) == ["1", "2"]  # No .tmp-* left behind.
  assert serving.existing_versions(base) == [1, 2]
  assert serving.check_export_dir(base, None) == 3
  assert serving.write(archive, base, version=7) == os.path.join(base, "7")
  assert sorted(os.listdir(base)) == ["1", "2", "7"]

  regular = tmp_path / "a_file"
  regular.write_text("not a directory")
  with pytest.raises(serving.ExportError, match="not a directory"):
    serving.check_export_dir(str(regular), None)
  with pytest.raises(serving.ExportError):
    serving.write(archive, str(regular))
  assert regular.read_text() == "not a directory"


# --- Command lines ------------------------------------------------------------------------------

def test_export_cli(trained_workdir, loaded, tmp_path):
  export_dir = str(tmp_path / "m")
  out = _run([sys.executable, "export.py", f"--workdir={trained_workdir}", f"--export_dir={export_dir}",
              "--steps=5"], cwd=REPO)
  assert out.returncode == 0, out.stderr[-3000:]
  path = os.path.join(export_dir, "1")
  assert out.stdout.strip().splitlines()[-1] == path
  assert os.path.isfile(os.path.join(path, "saved_model.pb"))
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
  out = _run([sys.executable, "-m", "ppgn_tf.sample", f"--workdir={trained_workdir}", *common,
              f"--output_dir={from_workdir}"], cwd=REPO)
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
  from ppgn_tf import encoder as encoder_lib
  from ppgn_tf.generator import build_generator
  encoder = encoder_lib.build_encoder()
  generator = build_generator(encoder_lib.layer_shapes(encoder)["conv3"], dim=2)
  path = serving.write(serving.build_archive(generator, encoder, SamplerConfig(steps=1), "conv3"),
                       str(tmp_path / "m"))
  out = tf.saved_model.load(path).signatures["serving_default"](class_id=tf.constant([1], tf.int32),
                                                                seed=tf.constant([1], tf.int64))
  assert out["codes"].shape == (1, 2, 2, 256)
