"""The MALA-approx sampler (Eq. 8), batched: many chains in one computation.

  h_{t+1} = h_t + eps1 (R_h(h_t) - h_t) + eps2 d/dh log C_c(G(h_t)) + N(0, eps3^2)

with R_h(h) = E_code(G(h)). One forward pass G -> E per step gives both R_h
and the conditioning objective. Conditioning is on a class (log-softmax of
fc2) or on any unit of any encoder layer (the original PPGN's hidden-unit
conditioning). Randomness is stateless and keyed per row by (seed, step), so a
chain's result depends only on its own seed and target, whatever batch it runs in.

The functions here take plain Keras models (or anything callable the same way,
like the layers restored from a SavedModel), so the exported sampler and the
library run the same code.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from ppgn_tf import data as data_lib

CLASS = "class"  # Condition on log C_c: the log-softmax of fc2.
_INIT_STREAM = -1  # Step index of the stream that draws h_0.


@dataclasses.dataclass(frozen=True)
class SamplerConfig:
  """Eq. 8's settings; the defaults are the thesis' (Sec. 4.1)."""
  steps: int = 200
  epsilon1: float = 1e-2
  epsilon2: float = 1.0
  epsilon3: float = 1e-15
  clip_min: float | None = None  # Clip h to [clip_min, clip_max] after each step.
  clip_max: float | None = None
  keep_every: int = 0  # Keep every N-th state of each chain (0: none).

  def validate(self) -> None:
    if self.steps < 0:
      raise ValueError(f"--steps must be >= 0, got {self.steps}")
    for name in ("epsilon1", "epsilon2", "epsilon3"):
      if getattr(self, name) < 0:
        raise ValueError(f"--{name} must be >= 0, got {getattr(self, name)}")
    if self.keep_every < 0:
      raise ValueError(f"--keep_every must be >= 0, got {self.keep_every}")
    if self.clip_min is not None and self.clip_max is not None and self.clip_min > self.clip_max:
      raise ValueError(f"--clip_min ({self.clip_min}) is above --clip_max ({self.clip_max})")


def row_normal(seeds, step, shape) -> tf.Tensor:
  """One N(0, 1) draw of `shape` per row, keyed by (seeds[i], step): independent of the batch."""
  seeds = tf.cast(seeds, tf.int64)
  step = tf.cast(step, tf.int64)
  return tf.map_fn(
      lambda s: tf.random.stateless_normal(shape, seed=tf.stack([s, step])),
      seeds, fn_output_signature=tf.TensorSpec(shape, tf.float32))


def initial_codes(seeds, code_shape) -> tf.Tensor:
  """h_0 ~ N(0, 1), one row per seed; `code_shape` is one code's shape (e.g. [64] for fc1)."""
  return row_normal(seeds, _INIT_STREAM, list(code_shape))


def conditioning_objective(features: dict, layer: str, targets) -> tf.Tensor:
  """Per-row objective: log C_c (layer 'class') or the activation of unit targets[i] of `layer`."""
  targets = tf.cast(targets, tf.int32)
  if layer == CLASS:
    values = tf.nn.log_softmax(tf.cast(features["fc2"], tf.float32), axis=-1)
  else:
    values = tf.cast(features[layer], tf.float32)
    values = tf.reshape(values, [tf.shape(values)[0], -1])
  return tf.gather(values, targets, axis=1, batch_dims=1)


def mala_step(h, targets, seeds, step, generator, encoder, *, code_layer: str = "fc1",
              condition_layer: str = CLASS, epsilon1=1e-2, epsilon2=1.0, epsilon3=1e-15,
              clip_min=None, clip_max=None):
  """One step of Eq. 8 for every row. Returns (h_next, images G(h), objective)."""
  with tf.GradientTape() as tape:
    tape.watch(h)
    images = generator(h, training=False)
    features = encoder(images, training=False)
    objective = conditioning_objective(features, condition_layer, targets)
    # Rows are independent, so the gradient of the sum is each row's own gradient.
    total = tf.reduce_sum(objective)
  grad = tape.gradient(total, h)
  reconstruction = tf.stop_gradient(tf.cast(features[code_layer], tf.float32))
  noise = row_normal(seeds, step, h.shape[1:])
  h_next = h + epsilon1 * (reconstruction - h) + epsilon2 * grad + epsilon3 * noise
  if clip_min is not None or clip_max is not None:
    h_next = tf.clip_by_value(h_next, -1e30 if clip_min is None else clip_min,
                              1e30 if clip_max is None else clip_max)
  return h_next, images, objective


def run_chains(h0, targets, seeds, generator, encoder, *, steps, code_layer: str = "fc1",
               condition_layer: str = CLASS, epsilon1=1e-2, epsilon2=1.0, epsilon3=1e-15,
               clip_min=None, clip_max=None, keep_every: int = 0):
  """Runs `steps` MALA steps from h0 (graph-friendly: a tf.while_loop).

  Returns a dict: codes h_T, images G(h_T) as pixels in [0, 1], class_probs
  C(G(h_T)), the objective at h_T, and with `keep_every` > 0
  `trajectory_codes` [K, N, ...] holding h_0 and every keep_every-th state.
  """
  steps = tf.convert_to_tensor(steps, tf.int32)
  keep = tf.TensorArray(tf.float32, size=0, dynamic_size=True, element_shape=h0.shape)
  if keep_every:
    keep = keep.write(0, h0)

  def body(t, h, keep):
    h, _, _ = mala_step(h, targets, seeds, t, generator, encoder, code_layer=code_layer,
                        condition_layer=condition_layer, epsilon1=epsilon1, epsilon2=epsilon2,
                        epsilon3=epsilon3, clip_min=clip_min, clip_max=clip_max)
    if keep_every:
      keep = tf.cond(tf.equal((t + 1) % keep_every, 0),
                     lambda: keep.write(keep.size(), h), lambda: keep)
    return t + 1, h, keep

  _, h, keep = tf.while_loop(lambda t, h, k: t < steps, body, (tf.constant(0), h0, keep),
                             shape_invariants=(tf.TensorShape([]), h0.shape, None))
  images = generator(h, training=False)
  features = encoder(images, training=False)
  # Images leave the sampler as pixels in [0, 1].
  out = {"codes": h, "images": data_lib.denormalize(images),
         "class_probs": tf.nn.softmax(tf.cast(features["fc2"], tf.float32), axis=-1),
         "objective": conditioning_objective(features, condition_layer, targets)}
  if keep_every:
    out["trajectory_codes"] = keep.stack()
  return out


class MalaSampler:
  """Class-conditional (or unit-conditional) sampling with a trained G and E."""

  def __init__(self, generator, encoder, config: SamplerConfig = SamplerConfig(), *,
               code_layer: str = "fc1", condition_layer: str = CLASS):
    config.validate()
    self.generator = generator
    self.encoder = encoder
    self.config = config
    self.code_layer = code_layer
    self.condition_layer = condition_layer
    self.code_shape = [int(d) for d in generator.input.shape[1:]]
    self._run = tf.function(self._run_impl, reduce_retracing=True)

  def _run_impl(self, h0, targets, seeds):
    c = self.config
    return run_chains(h0, targets, seeds, self.generator, self.encoder, steps=c.steps,
                      code_layer=self.code_layer, condition_layer=self.condition_layer,
                      epsilon1=c.epsilon1, epsilon2=c.epsilon2, epsilon3=c.epsilon3,
                      clip_min=c.clip_min, clip_max=c.clip_max, keep_every=c.keep_every)

  def sample(self, targets, seeds, h0=None) -> dict:
    """Runs one chain per row; h0 defaults to N(0, 1) draws keyed by the seeds."""
    seeds = tf.convert_to_tensor(seeds, tf.int64)
    targets = tf.convert_to_tensor(targets, tf.int32)
    if h0 is None:
      h0 = initial_codes(seeds, self.code_shape)
    return self._run(tf.convert_to_tensor(h0, tf.float32), targets, seeds)

  def codes_of(self, images) -> tf.Tensor:
    """h_0 from images (normalised): start chains at the codes of given images."""
    return tf.cast(self.encoder(images, training=False)[self.code_layer], tf.float32)
