"""The MALA-approx sampler (Eq. 8), batched: many chains in one computation.

  d_t     = eps1 (R_h(h_t) - h_t) + eps2 d/dh log C_c(G(h_t)) + eps4 d/dh log p(known pixels | h_t)
            + N(0, eps3^2)
  h_{t+1} = clip(h_t + lr_t * d_t)                (or lr_t * d_t / mean|d_t| with step normalisation)

with R_h(h) = E_code(G(h)). With lr_t = 1, no clipping and no in-painting this is
the thesis' Eq. 8 exactly (`SamplerConfig()`, the `thesis` preset). The rest is
the original PPGN sampler's toolbox, which the thesis' settings leave out and
which keeps the variety G can draw:
  - h_0 from the distribution of real codes E(x) (`h0`), not only N(0, 1);
  - clipping h to the per-unit range real codes take (`clip_percentile`);
  - step normalisation and a linear step-size schedule (`lr_t`);
  - noise (eps3) and restarts every N steps (`reset_every`), so chains can leave a mode;
  - in-painting: known pixels are pasted into G(h) before E sees it, and eps4
    pulls G(h) towards them.

One forward pass G -> E per step gives both R_h and the conditioning
objective. Plug & Play: the prior term is always R_h = E_code(G(h)); the condition
is E's class (log-softmax of fc2), a classifier of the user's own (`condition_model`:
log C_c of the images G draws, pixels in [0, 1]) or any unit of any encoder layer.
Randomness is stateless and keyed per row by the row's seed (`random_streams`: its
h_0, prior-pick and noise streams), so a chain's result depends only on its own seed and target, whatever
batch it runs in.

The functions here take plain Keras models (or anything callable the same way,
like the layers restored from a SavedModel) and tensors, so the exported sampler
and the library run the same code.
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import tensorflow as tf

from ppgn_tf import batching
from ppgn_tf import files
from ppgn_tf import random_streams
from ppgn_tf.data import datasets as data_lib
from ppgn_tf.data.idx_format import NUM_CLASSES
from ppgn_tf.model import encoder as encoder_lib
# The in-painting checks and the settings live in modules without TensorFlow (re-exported for the sampler's users).
from ppgn_tf.sampling.inpaint_inputs import check_inpaint_inputs
from ppgn_tf.sampling.condition_spec import CLASS  # Condition on E's classes (the library's name for it).
from ppgn_tf.sampling.sampler_config import (H0_CLASS_CODES, H0_CLASS_GAUSSIAN, H0_CLASS_MEAN,  # noqa: F401
                                             H0_CODES, H0_FROM_STATISTICS, H0_MARGINALS, H0_MODES, H0_NORMAL,
                                             INPAINT_START_H0_FILL, MIN_CODES_PER_COMPONENT, PRESETS, SamplerConfig,
                                             STOP_PROBABILITY_NEEDS_CLASSES, named_mask, preset, NAMED_MASKS)

# ---- the real codes -------------------------------------------------------------------------------

CODE_PRIOR_FILE = "code_prior.npz"
# The covariance's shrinkage towards its diagonal's mean: keeps it positive definite when some units are almost
# always 0 (ReLU codes) or there are fewer codes of a class than units.
COVARIANCE_SHRINKAGE = 1e-3


@dataclasses.dataclass(frozen=True)
class CodeStatistics:
  """Summary statistics of the real codes, and nothing per example: what an export may hold.

  Per class c, a mixture of M Gaussians fitted to the codes E(x) of the training images of that class (M = 1: one
  Gaussian), over the code flattened to D units: each component's weight, mean and a Cholesky factor L of its
  covariance (L L^T); each class' share of the codes (the mixture over every class, for chains whose condition is
  no class of E); and each unit's range over all codes. Every component summarises at least
  MIN_CODES_PER_COMPONENT codes (a class with fewer codes gets fewer components: weight 0 for the rest).
  """
  class_weights: np.ndarray  # [K, M] float32, each row summing to 1.
  class_means: np.ndarray  # [K, M, D] float32.
  class_scales: np.ndarray  # [K, M, D, D] float32, lower triangular.
  unit_low: np.ndarray  # [D] float32: the smallest value each unit takes over the codes.
  unit_high: np.ndarray  # [D] float32: the largest.
  class_shares: np.ndarray  # [K] float32, summing to 1: the share of the codes each class holds.

  def held_in(self, hold) -> "CodeStatistics":
    """These statistics with every array replaced by hold(array): e.g. one tf.Variable each, which the graphs of
    an export then share (as constants, each graph would hold its own copy)."""
    return dataclasses.replace(self, **{f.name: hold(getattr(self, f.name)) for f in dataclasses.fields(self)})


def _k_means(points: np.ndarray, k: int, rng: np.random.Generator, iterations: int = 25) -> np.ndarray:
  """Cluster labels of `points` [N, D] from k-means with k-means++ starts; each cluster keeps at least
  MIN_CODES_PER_COMPONENT points (k is lowered until it does)."""
  while k > 1:
    centres = [points[rng.integers(len(points))]]
    for _ in range(k - 1):  # k-means++: far points are likelier starts.
      d2 = np.min([np.sum((points - c) ** 2, 1) for c in centres], axis=0)
      centres.append(points[rng.choice(len(points), p=d2 / d2.sum())] if d2.sum() > 0 else points[0])
    centres = np.asarray(centres)
    for _ in range(iterations):
      labels = np.argmin(((points[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
      centres = np.asarray([points[labels == j].mean(0) if np.any(labels == j) else centres[j] for j in range(k)])
    if np.bincount(labels, minlength=k).min() >= MIN_CODES_PER_COMPONENT:
      return labels
    k -= 1
  return np.zeros(len(points), np.int64)


def _gaussian(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Mean and Cholesky factor of the covariance (shrunk towards its diagonal's mean) of `points` [N, D]."""
  covariance = np.cov(points, rowvar=False) if len(points) > 1 else np.zeros((points.shape[1],) * 2)
  ridge = COVARIANCE_SHRINKAGE * max(float(np.mean(np.diag(covariance))), 1e-6)
  return points.mean(0), np.linalg.cholesky(covariance + ridge * np.eye(points.shape[1]))


@dataclasses.dataclass(frozen=True)
class CodePrior:
  """Codes E(x) of real training images, and their classes: where chains start, and the range they are
  kept in."""
  codes: np.ndarray  # [N, *code shape], float32.
  labels: np.ndarray | None = None  # [N] int32 classes of the images; None in files written before them.
  # `statistics` by its arguments: an export's signatures often read the same mixture (k-means runs once).
  _statistics: dict = dataclasses.field(default_factory=dict, init=False, repr=False, compare=False)

  @classmethod
  def from_encoder(cls, encoder, images, labels=None, code_layer: str = encoder_lib.CODE_LAYER, max_codes: int = 10_000,
                   seed: int = 0, batch: int = 500) -> "CodePrior":
    """Codes of at most `max_codes` of `images` (normalised, a random subset when there are more)."""
    images = np.asarray(images)
    if labels is not None:
      labels = np.asarray(labels, np.int32)
    if len(images) > max_codes:
      rng = random_streams.numpy_generator(seed, random_streams.CODE_PRIOR_SUBSET)
      keep = np.sort(rng.choice(len(images), max_codes, replace=False))
      images = images[keep]
      labels = None if labels is None else labels[keep]
    encode = tf.function(lambda x: encoder(x, training=False)[code_layer])
    codes = [encode(tf.constant(images[part], tf.float32)).numpy() for part in batching.row_slices(len(images), batch)]
    return cls(np.concatenate(codes).astype(np.float32), labels)

  def statistics(self, num_classes: int = NUM_CLASSES, components: int = 1, seed: int = 0) -> CodeStatistics:
    """Per-class Gaussian mixtures of `components` Gaussians, and per-unit ranges of the codes (CodeStatistics)."""
    key = (num_classes, components, seed)
    if key not in self._statistics:
      self._statistics[key] = self._fit_statistics(num_classes, components, seed)
    return self._statistics[key]

  def _fit_statistics(self, num_classes: int, components: int, seed: int) -> CodeStatistics:
    self.check_classes(num_classes, "--h0=class_gaussian")
    flat = self.codes.reshape(len(self.codes), -1).astype(np.float64)
    rng = random_streams.numpy_generator(seed, random_streams.CODE_MIXTURE)
    weights = np.zeros((num_classes, components))
    means = np.zeros((num_classes, components, flat.shape[1]))
    scales = np.zeros((num_classes, components, flat.shape[1], flat.shape[1]))
    for c in range(num_classes):
      of_class = flat[self.labels == c]
      labels = _k_means(of_class, components, rng) if components > 1 else np.zeros(len(of_class), np.int64)
      for j in range(components):
        # Fewer components than asked for: the rest copy the first, with weight 0 (never drawn).
        members = of_class[labels == (j if np.any(labels == j) else 0)]
        weights[c, j] = np.mean(labels == j)
        means[c, j], scales[c, j] = _gaussian(members)
    shares = np.bincount(self.labels, minlength=num_classes)[:num_classes] / len(self.labels)
    return CodeStatistics(weights.astype(np.float32), means.astype(np.float32), scales.astype(np.float32),
                          flat.min(0).astype(np.float32), flat.max(0).astype(np.float32),
                          (shares / shares.sum()).astype(np.float32))

  def bounds(self, percentile: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-unit [p, 100 - p] percentiles of the codes, each of one code's shape."""
    low, high = np.percentile(self.codes, [percentile, 100 - percentile], axis=0)
    return low.astype(np.float32), high.astype(np.float32)

  def check_classes(self, num_classes: int, what: str = "--h0=class_codes") -> None:
    """Raises ValueError unless every class in [0, num_classes) has codes (the per-class h0 modes read them)."""
    if self.labels is None:
      raise ValueError(f"{what} needs the classes of the real codes, and this code prior has none")
    missing = sorted(set(range(num_classes)) - set(np.unique(self.labels).tolist()))
    if missing:
      raise ValueError(f"{what}: the real codes hold no image of class {missing[0]}")

  def save(self, path: str) -> None:
    def write(out):
      buffer = io.BytesIO()
      arrays = {"codes": self.codes} if self.labels is None else {"codes": self.codes, "labels": self.labels}
      np.savez_compressed(buffer, **arrays)
      out.write(buffer.getvalue())
    files.atomic_write(path, write)

  @classmethod
  def load(cls, path: str) -> "CodePrior":
    with np.load(path) as f:
      labels = f["labels"].astype(np.int32) if "labels" in f else None
      return cls(f["codes"].astype(np.float32), labels)


def clip_bounds(config: SamplerConfig, prior: CodePrior | None):
  """(low, high) for tf.clip_by_value: the fixed range, the real codes' percentile range, or both
  (the tighter one); None where nothing clips."""
  low = config.clip_min
  high = config.clip_max
  if config.clip_percentile is not None:
    if prior is None:
      raise ValueError("--clip_percentile needs the real codes (a CodePrior)")
    p_low, p_high = prior.bounds(config.clip_percentile)
    low = p_low if low is None else np.maximum(p_low, low)
    high = p_high if high is None else np.minimum(p_high, high)
  return low, high


def check_prior(config: SamplerConfig, prior: CodePrior | None) -> None:
  """Raises ValueError (one line) unless `prior` has what `config` reads from the real codes."""
  if config.needs_code_prior and prior is None:
    raise ValueError(f"--h0={config.h0}, --clip_percentile={config.clip_percentile}: these settings "
                     "need the real codes (a CodePrior)")
  if config.needs_code_labels:
    prior.check_classes(NUM_CLASSES, f"--h0={config.h0}")


def conditions_on_encoder_classes(condition_layer: str = CLASS, condition_model=None) -> bool:
  """Whether the chains' targets are classes of E (digits), which the per-class h0 modes start from."""
  return condition_layer == CLASS and condition_model is None


def start_targets(targets, condition_layer: str = CLASS, condition_model=None):
  """What the h0 modes read as each row's class: the targets when they are classes of E; None otherwise (another
  classifier's labels or a unit), and the per-class modes then draw from the codes of every class."""
  return targets if conditions_on_encoder_classes(condition_layer, condition_model) else None


def prior_parts(config: SamplerConfig, prior: CodePrior | None) -> dict:
  """What the chains of `config` read of `prior`, as arrays: `prior_codes` and `prior_labels` (stored training
  codes: only the modes that start from them) and `statistics` (CodeStatistics: h0=class_gaussian, class_mean).
  The keyword arguments of `initial_codes` and `run_chains`; all None where `config` reads nothing."""
  parts = {"prior_codes": None, "prior_labels": None, "statistics": None}
  if prior is None:
    return parts
  if config.reads_training_codes:
    parts["prior_codes"] = prior.codes
    parts["prior_labels"] = prior.labels if config.h0 == H0_CLASS_CODES else None
  if config.h0 in H0_FROM_STATISTICS:
    parts["statistics"] = prior.statistics(NUM_CLASSES, config.h0_components)
  return parts


# ---- per-row randomness ---------------------------------------------------------------------------

def row_normal(seeds, step, shape) -> tf.Tensor:
  """One N(0, 1) draw of `shape` per row from the row's noise stream at `step`: independent of the batch."""
  keys = random_streams.row_draw_keys(seeds, random_streams.MALA_NOISE, step)
  return tf.map_fn(lambda k: tf.random.stateless_normal(shape, seed=k), keys,
                   fn_output_signature=tf.TensorSpec(shape, tf.float32))


def initial_codes(seeds, code_shape, mode: str = H0_NORMAL, prior_codes=None, draw=0, *, targets=None,
                  prior_labels=None, statistics: CodeStatistics | None = None) -> tf.Tensor:
  """h_0, one row per seed; `code_shape` is one code's shape (e.g. [64] for fc1).

  `draw` numbers the restarts of a chain (0: its start), so each restart draws anew.
  `prior_codes` [M, *code_shape] are the real codes for the modes that read them; `class_codes` also
  reads their classes `prior_labels` [M] and each row's requested class of E `targets` [N]. `class_gaussian` and
  `class_mean` read `statistics` and `targets`. Without `targets` (a condition that is no class of E:
  `start_targets`) the per-class modes draw from every class: `class_codes` any real code, `class_gaussian` the
  mixture of every class' Gaussians weighted by the class' share of the codes, `class_mean` their weighted mean.
  """
  code_shape = [int(d) for d in code_shape]
  if statistics is not None:  # Arrays, or an export's variables (serving.build_archive), as tensors.
    statistics = statistics.held_in(lambda array: tf.convert_to_tensor(array, tf.float32))
  if mode == H0_CLASS_MEAN:
    if statistics is None:
      raise ValueError("--h0=class_mean needs the codes' statistics")
    # Each class' mixture mean (the mean of its codes); without classes, every class' weighted by its share.
    means = tf.einsum("km,kmd->kd", statistics.class_weights, statistics.class_means)
    if targets is None:
      rows = tf.broadcast_to(tf.linalg.matvec(means, statistics.class_shares, transpose_a=True),
                             [tf.size(seeds), tf.shape(means)[1]])
    else:
      rows = tf.gather(means, tf.cast(targets, tf.int32))
    return tf.reshape(rows, [-1, *code_shape])
  if mode in (H0_NORMAL, H0_CLASS_GAUSSIAN):
    keys = random_streams.row_draw_keys(seeds, random_streams.MALA_H0, draw)
    normal = tf.map_fn(lambda k: tf.random.stateless_normal(code_shape, seed=k), keys,
                       fn_output_signature=tf.TensorSpec(code_shape, tf.float32))
    if mode == H0_NORMAL:
      return normal
    if statistics is None:
      raise ValueError("--h0=class_gaussian needs the codes' statistics")
    # A component j of the row's class c by its weight, then h_0 = mean_cj + L_cj z, z ~ N(0, I): N(mean_cj,
    # covariance_cj); then into the range real codes take. Without classes, (c, j) is one component of every
    # class' mixture, weighted by share_c * weight_cj.
    pick_keys = random_streams.row_draw_keys(seeds, random_streams.MALA_PRIOR_PICK, draw)
    uniform = tf.map_fn(lambda k: tf.random.stateless_uniform([], seed=k), pick_keys,
                        fn_output_signature=tf.TensorSpec([], tf.float32))
    weights = statistics.class_weights
    components = tf.shape(weights)[1]
    if targets is None:
      weights = tf.reshape(statistics.class_shares[:, None] * weights, [1, -1])
    cumulative = tf.gather(tf.math.cumsum(weights, axis=1),
                           tf.zeros_like(seeds, tf.int32) if targets is None else tf.cast(targets, tf.int32))
    last = tf.shape(cumulative)[1] - 1
    picked = tf.minimum(tf.reduce_sum(tf.cast(cumulative <= uniform[:, None], tf.int32), axis=1), last)
    if targets is None:
      index = tf.stack([picked // components, picked % components], axis=1)
    else:
      index = tf.stack([tf.cast(targets, tf.int32), picked], axis=1)
    means = tf.gather_nd(statistics.class_means, index)
    scales = tf.gather_nd(statistics.class_scales, index)
    flat = means + tf.linalg.matvec(scales, tf.reshape(normal, [-1, int(np.prod(code_shape))]))
    flat = tf.clip_by_value(flat, statistics.unit_low, statistics.unit_high)
    return tf.reshape(flat, [-1, *code_shape])
  if prior_codes is None:
    raise ValueError(f"--h0={mode} needs the real codes (a CodePrior)")
  prior_codes = tf.convert_to_tensor(prior_codes, tf.float32)
  count = tf.shape(prior_codes, out_type=tf.int64)[0]
  keys = random_streams.row_draw_keys(seeds, random_streams.MALA_PRIOR_PICK, draw)
  if mode == H0_CODES or (mode == H0_CLASS_CODES and targets is None):
    picks = tf.map_fn(lambda k: tf.random.stateless_uniform([], seed=k, minval=0, maxval=count, dtype=tf.int64),
                      keys, fn_output_signature=tf.TensorSpec([], tf.int64))
    return tf.gather(prior_codes, picks)
  if mode == H0_CLASS_CODES:
    if prior_labels is None:
      raise ValueError("--h0=class_codes needs the classes of the real codes")
    prior_labels = tf.cast(prior_labels, tf.int64)

    def pick(args):
      # The row's class' codes, then one of them uniformly (the classes' counts are checked when the prior
      # is loaded, so none is empty).
      key, target = args
      of_class = tf.where(tf.equal(prior_labels, target))[:, 0]
      return tf.gather(of_class, tf.random.stateless_uniform(
          [], seed=key, minval=0, maxval=tf.size(of_class, out_type=tf.int64), dtype=tf.int64))
    picks = tf.map_fn(pick, (keys, tf.cast(targets, tf.int64)), fn_output_signature=tf.TensorSpec([], tf.int64))
    return tf.gather(prior_codes, picks)
  if mode == H0_MARGINALS:
    units = int(np.prod(code_shape))
    flat = tf.reshape(prior_codes, [-1, units])
    picks = tf.map_fn(lambda k: tf.random.stateless_uniform([units], seed=k, minval=0, maxval=count,
                                                            dtype=tf.int64),
                      keys, fn_output_signature=tf.TensorSpec([units], tf.int64))
    # Unit j of row i is unit j of real code picks[i, j].
    values = tf.gather_nd(flat, tf.stack([picks, tf.broadcast_to(tf.range(units, dtype=tf.int64),
                                                                 tf.shape(picks))], axis=-1))
    return tf.reshape(values, [-1, *code_shape])
  raise ValueError(f"--h0={mode}: choose from {', '.join(H0_MODES)}")


# ---- one step and a chain -------------------------------------------------------------------------

def conditioning_objective(features: dict, layer: str, targets, images=None, condition_model=None) -> tf.Tensor:
  """Per-row objective: log C_c of class targets[i], C being E's softmax (layer CLASS) or `condition_model`'s
  classifier (a `condition_model.ConditionClassifier`) on `images` (normalised, as E saw them; the classifier sees
  them as the pixels in [0, 1] the sampler returns); or the activation of unit targets[i] of `layer`."""
  targets = tf.cast(targets, tf.int32)
  if condition_model is not None:
    values = condition_model.log_probabilities(data_lib.denormalize(images))
  elif layer == CLASS:
    values = tf.nn.log_softmax(tf.cast(features["fc2"], tf.float32), axis=-1)
  else:
    values = tf.cast(features[layer], tf.float32)
    values = tf.reshape(values, [tf.shape(values)[0], -1])
  return tf.gather(values, targets, axis=1, batch_dims=1)


def paste_known(generated, inpaint):
  """The known pixels of `inpaint` = (images, mask) pasted into `generated` (all normalised)."""
  if inpaint is None:
    return generated
  known, mask = inpaint
  return mask * known + (1.0 - mask) * generated


def masked_image_codes(encoder, inpaint, code_layer: str = encoder_lib.CODE_LAYER, fill=None) -> tf.Tensor:
  """The code of the masked image: its unknown pixels filled by `fill` (normalised images), or neutrally without
  one (0 in normalised space: the data's mean intensity, the original PPGN's start)."""
  known, mask = inpaint
  image = mask * known if fill is None else paste_known(fill, inpaint)
  return tf.cast(encoder(image, training=False)[code_layer], tf.float32)


def inpaint_start_codes(encoder, inpaint, seeds, start_noise=0.0, code_layer: str = encoder_lib.CODE_LAYER,
                        fill=None) -> tf.Tensor:
  """Where an in-painting chain starts: the code of the masked image (`masked_image_codes`, its unknown pixels
  filled by `fill` or at the data's mean) plus N(0, start_noise^2) noise per unit, drawn from each row's seed
  (`start_noise` 0: the same start for every seed of one image and fill)."""
  h0 = masked_image_codes(encoder, inpaint, code_layer, fill)
  keys = random_streams.row_draw_keys(seeds, random_streams.INPAINT_START_NOISE, 0)
  code_shape = h0.shape[1:]
  noise = tf.map_fn(lambda k: tf.random.stateless_normal(code_shape, seed=k), keys,
                    fn_output_signature=tf.TensorSpec(code_shape, tf.float32))
  return h0 + tf.cast(start_noise, tf.float32) * noise


def inpaint_start(config: SamplerConfig, inpaint, targets, seeds, generator, encoder, *,
                  code_layer: str = encoder_lib.CODE_LAYER, condition_layer: str = CLASS, condition_model=None,
                  prior_codes=None, prior_labels=None, statistics: CodeStatistics | None = None) -> tf.Tensor:
  """Where `config`'s in-painting chains start (its `inpaint_start`): the code of the masked image, its unknown
  pixels at the data's mean or, with h0_fill, drawn by G from the settings' h_0 for each row's class (the start then
  holds the requested class and the known pixels both); then the settings' start_noise."""
  fill = None
  if config.inpaint_start == INPAINT_START_H0_FILL:
    drawn = initial_codes(seeds, generator.input.shape[1:], config.h0, prior_codes,
                          targets=start_targets(targets, condition_layer, condition_model), prior_labels=prior_labels,
                          statistics=statistics)
    fill = tf.cast(generator(drawn, training=False), tf.float32)
  return inpaint_start_codes(encoder, inpaint, seeds, config.start_noise, code_layer, fill)


def known_pixels_log_likelihood(generated, inpaint) -> tf.Tensor:
  """Per row -1/2 sum over known pixels of (G(h) - x)^2: a unit-variance Gaussian on the known pixels."""
  known, mask = inpaint
  error = mask * (tf.cast(generated, tf.float32) - known)
  return -0.5 * tf.reduce_sum(tf.reshape(tf.square(error), [tf.shape(error)[0], -1]), axis=1)


def mala_step(h, targets, seeds, step, generator, encoder, *, code_layer: str = encoder_lib.CODE_LAYER,
              condition_layer: str = CLASS, condition_model=None, epsilon1=1e-2, epsilon2=1.0, epsilon3=1e-15,
              epsilon4=1.0, clip_min=None, clip_max=None, step_size=1.0, normalize_step=False, inpaint=None,
              stop_probability=None):
  """One step for every row. Returns (h_next, images E saw (normalised), objective).

  clip_min/clip_max are scalars or per-unit tensors of one code's shape.
  `condition_model` (a ConditionClassifier) replaces E's classes in the conditioning term; the prior term stays
  R_h = E_code(G(h)).
  `inpaint` is None or (images, mask), normalised images and a {0, 1} mask of known pixels.
  With `stop_probability` (class conditioning, E's or `condition_model`'s), rows whose class probability at h has
  reached it stay at h.
  """
  with tf.GradientTape() as tape:
    tape.watch(h)
    generated = generator(h, training=False)
    images = paste_known(tf.cast(generated, tf.float32), inpaint)
    features = encoder(images, training=False)
    objective = conditioning_objective(features, condition_layer, targets, images, condition_model)
    # Rows are independent, so the gradient of the sum is each row's own gradient.
    total = epsilon2 * tf.reduce_sum(objective)
    if inpaint is not None:
      total += epsilon4 * tf.reduce_sum(known_pixels_log_likelihood(generated, inpaint))
  grad = tape.gradient(total, h)
  reconstruction = tf.stop_gradient(tf.cast(features[code_layer], tf.float32))
  noise = row_normal(seeds, step, h.shape[1:])
  direction = epsilon1 * (reconstruction - h) + grad + epsilon3 * noise
  if normalize_step:
    axes = list(range(1, len(h.shape)))
    mean_abs = tf.reduce_mean(tf.abs(direction), axis=axes, keepdims=True)
    direction = tf.math.divide_no_nan(direction, mean_abs)
  h_next = h + step_size * direction
  if clip_min is not None or clip_max is not None:
    h_next = tf.clip_by_value(h_next, -1e30 if clip_min is None else clip_min,
                              1e30 if clip_max is None else clip_max)
  if stop_probability is not None:
    if condition_layer != CLASS:
      raise ValueError(STOP_PROBABILITY_NEEDS_CLASSES)
    arrived = tf.exp(objective) >= stop_probability
    h_next = tf.where(tf.reshape(arrived, [-1] + [1] * (len(h.shape) - 1)), h, h_next)
  return h_next, images, objective


def run_chains(h0, targets, seeds, generator, encoder, *, config: SamplerConfig,
               code_layer: str = encoder_lib.CODE_LAYER,
               condition_layer: str = CLASS, condition_model=None, clip_min=None, clip_max=None, prior_codes=None,
               prior_labels=None, statistics: CodeStatistics | None = None, inpaint=None):
  """Runs `config.steps` steps from h0 (graph-friendly: a tf.while_loop).

  `config`'s numbers may be tensors (the exported `sample` signature feeds them);
  the clip range is given resolved (`clip_bounds`), and `prior_parts(config, prior)` when `reset_every` restarts
  chains from what the h0 mode reads. Returns a dict: codes h_T,
  images G(h_T) as pixels in [0, 1] (with the known pixels pasted in when
  in-painting; then also `generated`, G(h_T) alone), class_probs E's C(images), the
  objective at h_T (with `condition_model` also `condition_probs`, its C(images) [N, K]), and with
  `keep_every` > 0 `trajectory_codes` [K, N, ...] holding h_0 and every keep_every-th state.
  """
  steps = tf.convert_to_tensor(config.steps, tf.int32)
  keep_every, reset_every = config.keep_every, config.reset_every
  start = tf.convert_to_tensor(config.step_size, tf.float32)
  end = start if config.step_size_end is None else tf.convert_to_tensor(config.step_size_end, tf.float32)
  code_shape = h0.shape[1:]
  h0_targets = start_targets(targets, condition_layer, condition_model)
  keep = tf.TensorArray(tf.float32, size=0, dynamic_size=True, element_shape=h0.shape)
  if keep_every:
    keep = keep.write(0, h0)

  def body(t, h, keep):
    # lr_t linear from start (t = 0) to end (t = steps - 1), as the original PPGN's lr -> lr_end.
    fraction = tf.cast(t, tf.float32) / tf.cast(tf.maximum(steps - 1, 1), tf.float32)
    h, _, _ = mala_step(h, targets, seeds, t, generator, encoder, code_layer=code_layer,
                        condition_layer=condition_layer, condition_model=condition_model, epsilon1=config.epsilon1,
                        epsilon2=config.epsilon2, epsilon3=config.epsilon3, epsilon4=config.epsilon4, clip_min=clip_min,
                        clip_max=clip_max, step_size=start + (end - start) * fraction,
                        normalize_step=config.normalize_step, inpaint=inpaint,
                        stop_probability=config.stop_probability)
    if reset_every:
      # A restart after every reset_every steps, but never after the last step: the sample is a chain's end.
      restart = tf.logical_and(tf.equal((t + 1) % reset_every, 0), t + 1 < steps)
      h = tf.cond(restart, lambda: initial_codes(seeds, code_shape, config.h0, prior_codes,
                                                 draw=(t + 1) // reset_every, targets=h0_targets,
                                                 prior_labels=prior_labels, statistics=statistics), lambda: h)
    if keep_every:
      keep = tf.cond(tf.equal((t + 1) % keep_every, 0),
                     lambda: keep.write(keep.size(), h), lambda: keep)
    return t + 1, h, keep

  _, h, keep = tf.while_loop(lambda t, h, k: t < steps, body, (tf.constant(0), h0, keep),
                             shape_invariants=(tf.TensorShape([]), h0.shape, None))
  generated = tf.cast(generator(h, training=False), tf.float32)
  images = paste_known(generated, inpaint)
  features = encoder(images, training=False)
  # Images leave the sampler as pixels in [0, 1].
  out = {"codes": h, "images": data_lib.denormalize(images),
         "class_probs": tf.nn.softmax(tf.cast(features["fc2"], tf.float32), axis=-1)}
  if condition_model is not None:
    log_probs = condition_model.log_probabilities(out["images"])
    out["condition_probs"] = tf.exp(log_probs)
    out["objective"] = tf.gather(log_probs, tf.cast(targets, tf.int32), axis=1, batch_dims=1)
  else:
    out["objective"] = conditioning_objective(features, condition_layer, targets)
  if inpaint is not None:
    out["generated"] = data_lib.denormalize(generated)
  if keep_every:
    out["trajectory_codes"] = keep.stack()
  return out


class MalaSampler:
  """Class-conditional (or unit-conditional) sampling and in-painting with a trained G and E.

  Plug & Play: the classes are E's, or those of any classifier plugged in as `condition_model` (a
  `condition_model.ConditionClassifier`: `condition_model.load_classifier(path)`); `condition_layer` names a layer
  of E whose units the targets then are. The prior term is E_code(G(h)) whatever the condition.
  """

  def __init__(self, generator, encoder, config: SamplerConfig = SamplerConfig(), *,
               code_layer: str = encoder_lib.CODE_LAYER, condition_layer: str = CLASS, prior: CodePrior | None = None,
               condition_model=None):
    config.validate()
    if condition_model is not None and condition_layer != CLASS:
      raise ValueError("give a condition_model or a condition_layer, not both")
    if condition_layer != CLASS and config.stop_probability is not None:
      raise ValueError(STOP_PROBABILITY_NEEDS_CLASSES)
    check_prior(config, prior)
    self.generator = generator
    self.encoder = encoder
    self.config = config
    self.code_layer = code_layer
    self.condition_layer = condition_layer
    self.condition_model = condition_model
    if condition_model is not None:
      self.num_targets = condition_model.num_classes
    elif condition_layer == CLASS:
      self.num_targets = int(encoder.output["fc2"].shape[-1]) if encoder is not None else NUM_CLASSES
    else:
      self.num_targets = int(np.prod(encoder.output[condition_layer].shape[1:]))
    self.prior = prior
    self.code_shape = [int(d) for d in generator.input.shape[1:]]
    low, high = clip_bounds(config, prior)
    self._clip = (None if low is None else tf.constant(low, tf.float32),
                  None if high is None else tf.constant(high, tf.float32))
    self._prior = prior_parts(config, prior)
    self._run = tf.function(self._run_impl, reduce_retracing=True)
    self._run_inpaint = tf.function(self._run_inpaint_impl, reduce_retracing=True)
    # The starts too are graphs: their per-row draws (map_fn) cost about 10 ms a row when run eagerly.
    self._initial = tf.function(self._initial_impl, reduce_retracing=True)
    self._inpaint_start = tf.function(self._inpaint_start_impl, reduce_retracing=True)

  def _chains(self, h0, targets, seeds, inpaint):
    return run_chains(h0, targets, seeds, self.generator, self.encoder, config=self.config,
                      code_layer=self.code_layer, condition_layer=self.condition_layer,
                      condition_model=self.condition_model, clip_min=self._clip[0], clip_max=self._clip[1],
                      inpaint=inpaint, **self._prior)

  def _run_impl(self, h0, targets, seeds):
    return self._chains(h0, targets, seeds, None)

  def _run_inpaint_impl(self, h0, targets, seeds, known, mask):
    return self._chains(h0, targets, seeds, (known, mask))

  def initial_codes(self, seeds, targets=None) -> tf.Tensor:
    """h_0 as the settings draw it, one row per seed (h0=class_codes: of each row's class in `targets`, when
    they are classes of E; see `start_targets`)."""
    targets = None if targets is None else start_targets(targets, self.condition_layer, self.condition_model)
    return self._initial(tf.convert_to_tensor(seeds, tf.int64),
                         None if targets is None else tf.convert_to_tensor(targets, tf.int32))

  def _initial_impl(self, seeds, targets):
    return initial_codes(seeds, self.code_shape, self.config.h0, targets=targets, **self._prior)

  def check_targets(self, targets) -> np.ndarray:
    """`targets` as int32; raises ValueError (one line) for a class (or unit) the condition does not have."""
    targets = np.asarray(targets, np.int32)
    if targets.size and (targets.min() < 0 or targets.max() >= self.num_targets):
      what = "unit" if self.condition_layer != CLASS else "class"
      bad = int(targets.min() if targets.min() < 0 else targets.max())
      raise ValueError(f"{what} {bad} requested: the condition has {self.num_targets} (0 to {self.num_targets - 1})")
    return targets

  def sample(self, targets, seeds, h0=None) -> dict:
    """Runs one chain per row; h0 defaults to the settings' draw keyed by the seeds."""
    seeds = tf.convert_to_tensor(seeds, tf.int64)
    targets = tf.convert_to_tensor(self.check_targets(targets), tf.int32)
    if h0 is None:
      h0 = self.initial_codes(seeds, targets)
    return self._run(tf.convert_to_tensor(h0, tf.float32), targets, seeds)

  def inpaint(self, images, mask, targets, seeds, h0=None) -> dict:
    """Fills in the unknown pixels of `images` (pixels in [0, 1], [N, 28, 28, 1]) where `mask` is 0,
    conditioned on `targets`; the known pixels (mask 1) are kept. See `check_inpaint_inputs`.

    Each chain starts where the settings' `inpaint_start` says (`inpaint_start`), unless `h0` is given (e.g.
    `initial_codes`, a start that ignores the image: the baseline a completion is measured against). The
    in-painting presets (`sampler_config.INPAINT_PRESETS`) are the settings chosen for it."""
    images, mask = check_inpaint_inputs(images, mask, len(np.asarray(targets)))
    seeds = tf.convert_to_tensor(seeds, tf.int64)
    targets = tf.convert_to_tensor(self.check_targets(targets), tf.int32)
    known, mask = data_lib.normalize(images), tf.constant(mask, tf.float32)
    if h0 is None:
      h0 = self._inpaint_start(known, mask, targets, seeds)
    return self._run_inpaint(tf.convert_to_tensor(h0, tf.float32), targets, seeds, known, mask)

  def _inpaint_start_impl(self, known, mask, targets, seeds) -> tf.Tensor:
    return inpaint_start(self.config, (known, mask), targets, seeds, self.generator, self.encoder,
                         code_layer=self.code_layer, condition_layer=self.condition_layer,
                         condition_model=self.condition_model, **self._prior)

  def inpaint_start_codes(self, images, mask, targets, seeds) -> tf.Tensor:
    """Where `inpaint` starts the chains of `images` (pixels in [0, 1]) with `mask` (1: known) for `targets`, one
    row per seed."""
    images, mask = check_inpaint_inputs(images, mask, len(np.asarray(seeds)))
    return self._inpaint_start(data_lib.normalize(images), tf.constant(mask, tf.float32),
                               tf.convert_to_tensor(self.check_targets(targets), tf.int32),
                               tf.convert_to_tensor(seeds, tf.int64))

  def codes_of(self, images) -> tf.Tensor:
    """h0 from images (normalised): start chains at the codes of given images."""
    return tf.cast(self.encoder(images, training=False)[self.code_layer], tf.float32)
