"""The standalone sampler SavedModel (TensorFlow Serving layout), written with keras.export.

Signatures (all graph functions, so the TF1 session loader used by TensorFlow
Serving's C++ path runs them as well as `tf.saved_model.load`):
  serving_default  class_id int32 [N], seed int64 [N] -> images, codes, class_probs
  sample           the same plus steps, epsilon1, epsilon2, epsilon3 (scalars)
  inpaint          images float32 [N, 28, 28, 1] in [0, 1], mask float32 [N, 28, 28, 1] (1: known pixel),
                   class_id, seed -> images (known pixels kept), generated, codes, class_probs, start_codes:
                   the `inpaint` preset, deterministic (the seed changes nothing)
  inpaint_varied   the same inputs and outputs, the `inpaint_varied` preset: the seed changes the completion
  inpaint_from_codes  the same inputs plus codes float32 [N, *code shape] (where the chains start) and scalars
                   steps, epsilon1..epsilon4: the `inpaint` preset's chains with those overrides
  generate         codes float32 [N, *code shape] -> images
  encode           images float32 [N, 28, 28, 1] in [0, 1] -> codes, class_probs
  sample_unit      (with a `unit_layer`) unit int32 [N], seed int64 [N] -> images, codes, class_probs, activation:
                   chains conditioned on unit[i] of that layer of E
Plug & Play: serving_default, sample and inpaint condition on E's classes, or on the classes of a classifier
baked into the graph (`condition_model`, a `condition_model.ConditionClassifier`): then class_id ranges over its
K classes and they also return condition_probs [N, K], its probabilities for the images. class_probs are E's
either way. The prior term of every chain is E(G(h)).
serving_default and sample run the sampler settings given at export
(h_0 mode, clipping, step normalisation and schedule, restarts); `sample`
overrides steps and epsilons. The in-painting signatures run the in-painting
presets (`sampler_config.INPAINT_PRESETS`, recorded in sampler.json), each chain
starting from E's code of its image with the unknown pixels drawn by G from a code of
the requested class (the class' mean code; in `inpaint_varied` one drawn from the class'
mixture per seed). What those settings read of the
training codes the SavedModel holds once, among its variables: by default only summary statistics
(per-class means and covariances, per-unit ranges), never a training example's
code; the h_0 modes that start from stored training codes are exported only when
asked for (`embed_training_codes`), and `assets.extra/sampler.json` says what is
embedded, and names the condition. Images leave in pixel space, clipped to [0, 1]. Bad inputs fail
with an InvalidArgument error naming the input (a class_id outside [0, K), a unit outside its layer), and so do
requests past the archive's limits (`max_batch` rows to any signature, `max_steps` to `sample`; sample_unit runs
the export's own steps, which are at most `max_steps`), before any work. The directory layout and the JSON files
beside the graph: `export_layout`.
"""

from __future__ import annotations

import dataclasses
import os

import keras
import tensorflow as tf
from absl import logging

from ppgn_tf import files
from ppgn_tf import precision as precision_lib
from ppgn_tf.data import datasets as data_lib
from ppgn_tf.data.idx_format import IMAGE_SHAPE
from ppgn_tf.model import encoder as encoder_lib
from ppgn_tf.sampling import condition_model as condition_lib
from ppgn_tf.sampling import condition_spec
from ppgn_tf.sampling import export_layout
from ppgn_tf.sampling import mala_sampler
from ppgn_tf.sampling import sampler_config


@dataclasses.dataclass(frozen=True)
class SamplerArchive:
  """What `build_archive` makes and `write` writes: the graph, and what it was built with, recorded beside it."""
  archive: keras.export.ExportArchive
  settings: mala_sampler.SamplerConfig  # serving_default's, to assets.extra/sampler.json.
  embedded: dict  # `embedded_data`: what of the training data the graph holds, to sampler.json too.
  conditions: dict  # What the chains are conditioned on (export_layout's condition keys), to sampler.json too.
  precision: str  # What G and E compute in inside the graph, to assets.extra/export.json.
  limits: dict  # The request limits, max_batch and max_steps, to export.json too.


def embedded_data(config: mala_sampler.SamplerConfig, prior: mala_sampler.CodePrior | None) -> dict:
  """What of the training data an export of `config` holds, for assets.extra/sampler.json."""
  parts = {}
  if prior is not None and config.reads_training_codes:
    parts["training_codes"] = (f"{len(prior.codes)} codes E(x) of training images, one per image"
                               + (", with their classes" if config.h0 == sampler_config.H0_CLASS_CODES else ""))
  if prior is not None and config.h0 in sampler_config.H0_FROM_STATISTICS:
    parts["class_statistics"] = ("per class, the mean and covariance (Cholesky factor) of the training codes; "
                                 "per unit, their smallest and largest value")
  if config.clip_percentile is not None:
    parts["clip_range"] = f"per unit, the {config.clip_percentile} and {100 - config.clip_percentile} percentiles " \
                          "of the training codes"
  return parts


def build_archive(generator: keras.Model, encoder: keras.Model, config: mala_sampler.SamplerConfig,
                  code_layer: str = encoder_lib.CODE_LAYER, prior: mala_sampler.CodePrior | None = None,
                  precision: str = precision_lib.FP32,
                  embed_training_codes: bool = False, max_batch: int = export_layout.DEFAULT_MAX_BATCH,
                  max_steps: int = export_layout.DEFAULT_MAX_STEPS,
                  condition_model: condition_lib.ConditionClassifier | None = None,
                  unit_layer: str | None = None, inpaint_configs: dict | None = None) -> SamplerArchive:
  """An ExportArchive holding G, E and the signatures (see the module docstring), with what `write` records.

  `condition_model` (a classifier of the user's own, baked into the graph) replaces E's classes in the class
  signatures; `unit_layer` (a layer of E) adds `sample_unit`, whose chains run `config` without its
  stop_probability (a unit has no probability to stop at).

  `inpaint_configs` ({"inpaint": SamplerConfig, "inpaint_varied": SamplerConfig}; default the in-painting presets)
  are what the in-painting signatures run.

  `prior` (the real codes) is needed when `config` reads them (h0 from codes or their statistics, percentile
  clipping); only their statistics go into the graph unless `embed_training_codes` (`check_export_embedding`).
  `precision` (fp32 or bf16) is what G and E compute in inside the graph; every input and output is float32
  (or integer) either way, and TensorFlow has CPU kernels for every bfloat16 op used (oneDNN's, or Eigen's
  where oneDNN is off or the CPU lacks bfloat16), so a bf16 export runs on any machine, emulated and slower
  where the hardware has no bfloat16.
  """
  generator = precision_lib.in_precision(generator, precision)
  encoder = precision_lib.in_precision(encoder, precision)
  config.validate()
  sampler_config.check_export_embedding(config, embed_training_codes)
  export_layout.check_limits(max_batch, max_steps, config.steps)
  mala_sampler.check_prior(config, prior)
  inpaint_configs = dict(inpaint_configs or sampler_config.INPAINT_PRESETS)
  sampler_config.check_inpaint_configs(inpaint_configs)
  for name, settings in inpaint_configs.items():
    settings.validate()
    export_layout.check_limits(max_batch, max_steps, settings.steps)
    if settings.needs_code_prior and prior is None:
      raise ValueError(f"the {name} signature starts from statistics of the real codes (--h0={settings.h0}): "
                       "pass the run's code prior (trained_run.load_code_prior)")
    mala_sampler.check_prior(settings, prior)
  # What the signatures read of the prior, each array one variable: several signatures often read the same
  # statistics, and each graph would hold its own copy of a constant.
  held = {}

  def hold(array):
    if id(array) not in held:
      held[id(array)] = tf.Variable(array, trainable=False)
    return held[id(array)]

  def shared(parts):
    return {key: None if part is None else part.held_in(hold) if isinstance(part, mala_sampler.CodeStatistics)
            else hold(part) for key, part in parts.items()}

  inpaint_clips = {name: mala_sampler.clip_bounds(settings, prior) for name, settings in inpaint_configs.items()}
  inpaint_parts = {name: shared(mala_sampler.prior_parts(settings, prior))
                   for name, settings in inpaint_configs.items()}
  units = None if unit_layer is None else condition_lib.check_layer(encoder, unit_layer)
  code_shape = [int(d) for d in generator.input.shape[1:]]
  clip_min, clip_max = mala_sampler.clip_bounds(config, prior)
  prior_parts = shared(mala_sampler.prior_parts(config, prior))
  condition = condition_lib.Condition(classifier=condition_model)
  num_classes = condition.num_targets
  archive = keras.export.ExportArchive()
  archive.track(generator)
  archive.track(encoder)
  if condition_model is not None:
    archive.track(condition_model.model)  # Baked in: the SavedModel needs neither its file nor this package.

  def check_batch(rows, name):
    # Refused before any work: a request of more rows than this would hold a server thread for too long.
    return tf.debugging.assert_less_equal(
        rows, max_batch, message=f"{name} has more rows than this export allows (max_batch {max_batch})")

  def check_rows(targets, seed, name="class_id", count=num_classes, of=""):
    return [
        check_batch(tf.size(targets), name),
        tf.debugging.assert_non_negative(targets, message=f"{name} must be in [0, {count}){of}"),
        tf.debugging.assert_less(targets, count, message=f"{name} must be in [0, {count}){of}"),
        tf.debugging.assert_equal(tf.size(seed), tf.size(targets), message=f"seed must have one value per {name}"),
    ]

  def chains(targets, seed, settings, checks=(), inpaint=None, layer=mala_sampler.CLASS, h0=None, clip=None,
             parts=None):
    on_classes = layer == mala_sampler.CLASS
    rows = check_rows(targets, seed) if on_classes else check_rows(targets, seed, "unit", units, f" ({layer})")
    with tf.control_dependencies(list(checks) + rows):
      targets = tf.identity(targets)
    classifier = condition_model if on_classes else None
    parts = parts or prior_parts
    if h0 is None and inpaint is None:
      h0 = mala_sampler.initial_codes(seed, code_shape, settings.h0,
                                      targets=mala_sampler.start_targets(targets, layer, classifier), **parts)
    elif h0 is None:  # Where the settings' in-painting starts (the library's inpaint_start).
      h0 = mala_sampler.inpaint_start(settings, inpaint, targets, seed, generator, encoder, code_layer=code_layer,
                                      condition_layer=layer, condition_model=classifier, **parts)
    low, high = clip or (clip_min, clip_max)
    out = mala_sampler.run_chains(
        h0, targets, seed, generator, encoder, config=settings, code_layer=code_layer, condition_layer=layer,
        condition_model=classifier, clip_min=low, clip_max=high, inpaint=inpaint, **parts)
    return {**out, "start_codes": h0}

  def outputs(out, *extra):
    keys = ("images", "codes", "class_probs", *extra) + (("condition_probs",) if "condition_probs" in out else ())
    return {k: out[k] for k in keys}

  def sample(class_id, seed, settings, checks=()):
    return outputs(chains(class_id, seed, settings, checks))

  def serving_default(class_id, seed):
    return sample(class_id, seed, config)

  def sample_with_settings(class_id, seed, steps, epsilon1, epsilon2, epsilon3):
    checks = [
        tf.debugging.assert_non_negative(steps, message="steps must be >= 0"),
        tf.debugging.assert_less_equal(steps, max_steps,
                                       message=f"steps is more than this export allows (max_steps {max_steps})"),
        tf.debugging.assert_non_negative(epsilon1, message="epsilon1 must be >= 0"),
        tf.debugging.assert_non_negative(epsilon2, message="epsilon2 must be >= 0"),
        tf.debugging.assert_non_negative(epsilon3, message="epsilon3 must be >= 0"),
    ]
    settings = dataclasses.replace(config, steps=steps, epsilon1=epsilon1, epsilon2=epsilon2, epsilon3=epsilon3)
    return sample(class_id, seed, settings, checks)

  def inpaint_inputs(images, mask, class_id, extra_checks=()):
    checks = list(extra_checks) + [
        tf.debugging.assert_all_finite(images, message="images must be finite"),
        tf.debugging.assert_greater_equal(images, 0.0, message="images must be in [0, 1]"),
        tf.debugging.assert_less_equal(images, 1.0, message="images must be in [0, 1]"),
        tf.debugging.assert_equal(tf.shape(mask), tf.shape(images),
                                  message="mask must have the shape of images"),
        tf.debugging.assert_equal(tf.reduce_all(tf.logical_or(tf.equal(mask, 0.0), tf.equal(mask, 1.0))), True,
                                  message="mask values must be 0 (fill in) or 1 (known)"),
        tf.debugging.assert_equal(tf.shape(images)[0], tf.size(class_id),
                                  message="images must have one row per class_id"),
    ]
    with tf.control_dependencies(checks):  # Every input the chain reads waits for the checks.
      return data_lib.normalize(images), tf.identity(mask), tf.identity(class_id)

  def inpaint_with(name):
    def run(images, mask, class_id, seed):
      known, mask, class_id = inpaint_inputs(images, mask, class_id)
      return outputs(chains(class_id, seed, inpaint_configs[name], inpaint=(known, mask), clip=inpaint_clips[name],
                            parts=inpaint_parts[name]), "generated", "start_codes")
    return run

  def inpaint_from_codes(images, mask, class_id, seed, codes, steps, epsilon1, epsilon2, epsilon3, epsilon4):
    checks = [
        tf.debugging.assert_all_finite(codes, message="codes must be finite"),
        tf.debugging.assert_equal(tf.shape(codes)[0], tf.size(class_id),
                                  message="codes must have one row per class_id"),
        tf.debugging.assert_non_negative(steps, message="steps must be >= 0"),
        tf.debugging.assert_less_equal(steps, max_steps,
                                       message=f"steps is more than this export allows (max_steps {max_steps})"),
    ] + [tf.debugging.assert_non_negative(value, message=f"epsilon{i} must be >= 0")
         for i, value in enumerate((epsilon1, epsilon2, epsilon3, epsilon4), 1)]
    known, mask, class_id = inpaint_inputs(images, mask, class_id, checks)
    settings = dataclasses.replace(inpaint_configs["inpaint"], steps=steps, epsilon1=epsilon1, epsilon2=epsilon2,
                                   epsilon3=epsilon3, epsilon4=epsilon4)
    return outputs(chains(class_id, seed, settings, inpaint=(known, mask), h0=codes, clip=inpaint_clips["inpaint"],
                          parts=inpaint_parts["inpaint"]), "generated")

  unit_settings = sampler_config.for_unit_condition(config)

  def sample_unit(unit, seed):
    out = chains(unit, seed, unit_settings, layer=unit_layer)
    return {**outputs(out), "activation": out["objective"]}

  def generate(codes):
    with tf.control_dependencies([check_batch(tf.shape(codes)[0], "codes")]):
      codes = tf.identity(codes)
    return {"images": data_lib.denormalize(generator(codes, training=False))}

  def encode(images):
    checks = [tf.debugging.assert_all_finite(images, message="images must be finite"),
              check_batch(tf.shape(images)[0], "images")]
    with tf.control_dependencies(checks):
      features = encoder(data_lib.normalize(images), training=False)
    return {"codes": tf.cast(features[code_layer], tf.float32),
            "class_probs": tf.nn.softmax(tf.cast(features["fc2"], tf.float32), axis=-1)}

  rows = [tf.TensorSpec([None], tf.int32, name="class_id"), tf.TensorSpec([None], tf.int64, name="seed")]
  archive.add_endpoint("serving_default", serving_default, input_signature=rows)
  archive.add_endpoint("sample", sample_with_settings, input_signature=rows + [
      tf.TensorSpec([], tf.int32, name="steps"), tf.TensorSpec([], tf.float32, name="epsilon1"),
      tf.TensorSpec([], tf.float32, name="epsilon2"), tf.TensorSpec([], tf.float32, name="epsilon3")])
  image_spec = lambda name: tf.TensorSpec([None, *IMAGE_SHAPE], tf.float32, name=name)
  inpaint_spec = [image_spec("images"), image_spec("mask")] + rows
  for name in inpaint_configs:  # inpaint (deterministic) and inpaint_varied.
    archive.add_endpoint(name, inpaint_with(name), input_signature=inpaint_spec)
  archive.add_endpoint("inpaint_from_codes", inpaint_from_codes, input_signature=inpaint_spec + [
      tf.TensorSpec([None, *code_shape], tf.float32, name="codes"), tf.TensorSpec([], tf.int32, name="steps")] + [
      tf.TensorSpec([], tf.float32, name=f"epsilon{i}") for i in range(1, 5)])
  archive.add_endpoint("generate", generate,
                       input_signature=[tf.TensorSpec([None, *code_shape], tf.float32, name="codes")])
  archive.add_endpoint("encode", encode,
                       input_signature=[image_spec("images")])
  records = {export_layout.CONDITION_KEY: condition.record(),
             export_layout.INPAINT_KEY: {name: sampler_config.to_json(c) for name, c in inpaint_configs.items()}}
  if unit_layer is not None:
    archive.add_endpoint("sample_unit", sample_unit, input_signature=[
        tf.TensorSpec([None], tf.int32, name="unit"), tf.TensorSpec([None], tf.int64, name="seed")])
    records[export_layout.UNIT_CONDITION_KEY] = {
        "kind": condition_spec.UNIT, "layer": unit_layer, "units": units, "signature": "sample_unit",
        "settings": sampler_config.to_json(unit_settings)}
  # What every signature's settings hold of the training data (the in-painting starts may read statistics too).
  embedded = {key: text for settings in (config, *inpaint_configs.values())
              for key, text in embedded_data(settings, prior).items()}
  return SamplerArchive(archive, config, embedded, records, precision,
                        {"max_batch": max_batch, "max_steps": max_steps})


# TensorFlow's save logs, for each signature whose graph reads variables inside its while loops, that "input name(s)
# input_7, ... [or resource] with unsupported characters will be renamed to while_input_7, ...": the names of the
# variables the graph captures, which TensorFlow makes and renames itself, not the signature's inputs (class_id,
# seed, ...: tests/test_serving.py checks them). Nothing a reader of the export's log can act on.
CAPTURE_RENAME_LINE = "with unsupported characters which will be renamed"


def _not_a_capture_rename(record) -> bool:
  return CAPTURE_RENAME_LINE not in record.getMessage()


def write(archive: SamplerArchive, export_dir: str, version: int | None = None) -> str:
  """Writes D/N atomically (files.write_atomically: a temporary directory renamed into place): the graph, and
  beside it, for the programs that read an export, the settings of serving_default, what of the training data
  the graph holds and the conditions in D/N/assets.extra/sampler.json, the precision and the request limits in
  D/N/assets.extra/export.json."""
  version = export_layout.check_export_dir(export_dir, version)
  final = os.path.join(export_dir, str(version))

  def make(temporary):
    absl_logger = logging.get_absl_logger()
    absl_logger.addFilter(_not_a_capture_rename)
    try:
      archive.archive.write_out(temporary, verbose=False)
    finally:
      absl_logger.removeFilter(_not_a_capture_rename)
    files.write_json(os.path.join(temporary, export_layout.SETTINGS_FILE),
                     {**sampler_config.to_json(archive.settings), export_layout.EMBEDDED_KEY: archive.embedded,
                      **archive.conditions})
    files.write_json(os.path.join(temporary, export_layout.EXPORT_INFO_FILE),
                     {"precision": archive.precision, **archive.limits})
    if os.path.exists(final):  # Appeared meanwhile (another export): never replace it.
      raise export_layout.ExportError(f"{final}: version {version} appeared during the export; nothing was "
                                      "replaced")

  # A full disk: TensorFlow reports ENOSPC as ResourceExhaustedError.
  files.write_atomically(final, make, what="export", failures=(OSError, tf.errors.OpError))
  return final
