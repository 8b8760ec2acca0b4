"""A condition plugged into the sampler, loaded and checked against the networks before any chain runs: a
classifier of the user's own (a .keras file or a SavedModel mapping [N, 28, 28, 1] images in [0, 1] to logits or
probabilities over its own K classes), or one unit of a layer of E. See `condition_spec` for what the flags say.
"""

from __future__ import annotations

import dataclasses
import os

import keras
import numpy as np
import tensorflow as tf

from ppgn_tf.data.idx_format import IMAGE_SHAPE, NUM_CLASSES
from ppgn_tf.sampling import condition_spec
from ppgn_tf.sampling.condition_spec import CLASS, ConditionSpec

SAVED_MODEL_ENDPOINT = "serving_default"  # The signature of a SavedModel classifier that is called.
PROBE_ROWS = 8  # Images of the probe batch that checks a classifier's output before any work.
PROBABILITY_TOLERANCE = 1e-3  # How far from 1 a row of probabilities may sum.
# log(p) of a probability that underflowed to 0: finite, so the chain's gradient stays finite (and is 0 there).
MIN_PROBABILITY = 1e-30


class ConditionError(ValueError):
  """A condition that cannot be used; one line naming the flag."""


def _single_output(outputs, what: str) -> tf.Tensor:
  """The one tensor a classifier returns (a SavedModel's signature returns a dict of one)."""
  if isinstance(outputs, dict):
    if len(outputs) != 1:
      raise ConditionError(f"{what}: returns {len(outputs)} outputs ({', '.join(sorted(outputs))}); a classifier "
                           "returns one [N, K] tensor")
    outputs = next(iter(outputs.values()))
  if isinstance(outputs, (list, tuple)):
    if len(outputs) != 1:
      raise ConditionError(f"{what}: returns {len(outputs)} outputs; a classifier returns one [N, K] tensor")
    outputs = outputs[0]
  return outputs


@dataclasses.dataclass(frozen=True, eq=False)
class ConditionClassifier:
  """A classifier of the user's own as the chain's condition: log C_c(x) of its K classes, for images x with
  pixels in [0, 1]. Made (and checked) by `load_classifier`; `model` is a Keras model or a Keras layer wrapping a
  SavedModel, so an export tracks and bakes it in."""
  model: object
  num_classes: int
  outputs_probabilities: bool
  source: str  # The file or directory it was loaded from.

  def log_probabilities(self, pixels) -> tf.Tensor:
    """[N, K] float32 log C(x) for images [N, 28, 28, 1] with pixels in [0, 1]."""
    outputs = tf.cast(_single_output(self.model(pixels, training=False), self.source), tf.float32)
    if self.outputs_probabilities:
      return tf.math.log(tf.maximum(outputs, MIN_PROBABILITY))
    return tf.nn.log_softmax(outputs, axis=-1)

  def record(self) -> dict:
    """What an export's assets.extra/sampler.json says of it."""
    return {"kind": condition_spec.CLASSIFIER, "model": os.path.abspath(self.source),
            "num_classes": self.num_classes,
            "model_outputs": "probabilities" if self.outputs_probabilities else "logits"}


def _declared_inputs(model) -> list:
  """The input shapes a Keras model or a SavedModel's endpoint declares (empty when it declares none)."""
  if isinstance(model, keras.layers.TFSMLayer):
    args, kwargs = model.call_endpoint_fn.structured_input_signature
    return [tuple(spec.shape.as_list()) for spec in tf.nest.flatten((args, kwargs))]
  return [tuple(t.shape) for t in getattr(model, "inputs", None) or []]


def _check_inputs(model, what: str) -> None:
  shapes = _declared_inputs(model)
  if not shapes:
    return  # Nothing declared: the probe call decides.
  if len(shapes) != 1:
    raise ConditionError(f"{what}: takes {len(shapes)} inputs; a condition classifier takes one batch of "
                         "[N, 28, 28, 1] images")
  shape = shapes[0]
  if len(shape) != 4 or any(d is not None and d != want for d, want in zip(shape[1:], IMAGE_SHAPE)):
    raise ConditionError(f"{what}: takes inputs of shape {list(shape)}, not the sampler's [N, 28, 28, 1] images "
                         "(pixels in [0, 1])")


def probe_images() -> np.ndarray:
  """A fixed batch of images with pixels in [0, 1] (noise of several densities, a black and a white image)."""
  rng = np.random.default_rng(0)
  noise = rng.uniform(size=(PROBE_ROWS - 2, *IMAGE_SHAPE)) ** rng.uniform(0.5, 4.0, (PROBE_ROWS - 2, 1, 1, 1))
  return np.concatenate([noise, np.zeros((1, *IMAGE_SHAPE)), np.ones((1, *IMAGE_SHAPE))]).astype(np.float32)


def load_classifier(path: str) -> ConditionClassifier:
  """The classifier in `path` (a .keras file or a SavedModel directory, whose serving_default signature is
  called), checked on a probe batch; raises ConditionError (one line) for anything the sampler cannot use."""
  what = f"--condition_model={path}"
  if not os.path.exists(path):
    raise ConditionError(f"{what}: no such file or directory")
  try:
    if os.path.isdir(path):
      if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise ConditionError(f"{what}: a directory without saved_model.pb (expected a SavedModel or a .keras file)")
      model = keras.layers.TFSMLayer(path, call_endpoint=SAVED_MODEL_ENDPOINT)
    elif path.endswith(".keras"):
      model = keras.saving.load_model(path, compile=False)
    else:
      raise ConditionError(f"{what}: expected a Keras model file (.keras) or a SavedModel directory")
  except ConditionError:
    raise
  except Exception as e:  # Keras and TensorFlow raise many kinds on a damaged or foreign file.
    raise ConditionError(f"{what}: cannot be loaded ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
                         ) from e
  _check_inputs(model, what)
  probe = probe_images()
  try:
    outputs = _single_output(model(tf.constant(probe), training=False), what)
  except ConditionError:
    raise
  except Exception as e:
    raise ConditionError(f"{what}: cannot classify [N, 28, 28, 1] images ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''})") from e
  outputs = np.asarray(outputs, np.float64)
  if outputs.ndim != 2 or outputs.shape[0] != len(probe):
    raise ConditionError(f"{what}: returns shape {list(outputs.shape)} for {len(probe)} images; a classifier "
                         "returns [N, K] (logits or probabilities of K classes)")
  if outputs.shape[1] < 2:
    raise ConditionError(f"{what}: has K = {outputs.shape[1]} output; conditioning needs K >= 2 classes (a binary "
                         "classifier must return both classes' logits or probabilities)")
  if not np.all(np.isfinite(outputs)):
    raise ConditionError(f"{what}: returns values that are not finite on images in [0, 1]")
  # Probabilities or logits: rows that are non-negative and sum to 1 on every probe image are probabilities (the
  # chain takes their log); anything else is logits (it takes their log-softmax). Logits that passed this test on
  # noise of several densities, a black and a white image would be a coincidence, and log-softmax of them would
  # still order the classes alike.
  probabilities = bool(np.all(outputs >= 0) and np.all(np.abs(outputs.sum(1) - 1) <= PROBABILITY_TOLERANCE))
  return ConditionClassifier(model, int(outputs.shape[1]), probabilities, path)


def unit_count(encoder, layer: str) -> int:
  """The units of a layer of E: its output's size per example (a conv layer's rows x columns x channels)."""
  return int(np.prod(encoder.output[layer].shape[1:]))


def check_layer(encoder, layer: str) -> int:
  """The unit count of `layer`; raises ConditionError (one line, listing E's layers) when E has no such layer."""
  if layer not in encoder.output:
    raise ConditionError(f"--condition_layer={layer}: not a layer of the encoder (choose from "
                         f"{', '.join(encoder.output)})")
  return unit_count(encoder, layer)


@dataclasses.dataclass(frozen=True)
class Condition:
  """What chains are conditioned on, checked against the networks: E's classes (`layer` CLASS and no
  classifier), a plugged-in classifier's classes, or unit `unit` of `layer` (a unit of a conv layer is one
  position of one channel, numbered as the layer's output flattened: row, column, channel)."""
  classifier: ConditionClassifier | None = None
  layer: str = CLASS
  unit: int | None = None
  units: int | None = None  # How many units `layer` has (unit conditioning).

  @property
  def kind(self) -> str:
    if self.classifier is not None:
      return condition_spec.CLASSIFIER
    return condition_spec.ENCODER_CLASSES if self.layer == CLASS else condition_spec.UNIT

  @property
  def num_targets(self) -> int:
    """How many classes (or units) a chain may ask for."""
    if self.classifier is not None:
      return self.classifier.num_classes
    return NUM_CLASSES if self.layer == CLASS else self.units

  def sampler_arguments(self) -> dict:
    """MalaSampler's keyword arguments for this condition."""
    return {"condition_layer": self.layer, "condition_model": self.classifier}

  def record(self) -> dict:
    if self.classifier is not None:
      return self.classifier.record()
    if self.layer == CLASS:
      return {"kind": condition_spec.ENCODER_CLASSES, "num_classes": NUM_CLASSES}
    return {"kind": condition_spec.UNIT, "layer": self.layer, "unit": self.unit, "units": self.units}


def resolve(spec: ConditionSpec, encoder) -> Condition:
  """The Condition `spec` names, loaded and checked against E; raises ConditionError (one line)."""
  if spec.kind == condition_spec.CLASSIFIER:
    return Condition(classifier=load_classifier(spec.model_path))
  if spec.kind == condition_spec.UNIT:
    units = check_layer(encoder, spec.layer)
    if not 0 <= spec.unit < units:
      raise ConditionError(f"--unit={spec.unit}: layer {spec.layer} has {units} units (choose from 0 to "
                           f"{units - 1})")
    return Condition(layer=spec.layer, unit=spec.unit, units=units)
  return Condition()
