"""Every random draw of a run, derived from one root seed through named streams.

  root key      = fold_in(ROOT_KEY, seed)                      one per seed (a run's --seed, or a chain's seed)
  stream key    = fold_in(root key, STREAMS[name])             one per (seed, stream)
  draw key      = fold_in(stream key, index)                   one per (seed, stream, step / epoch / draw)
  critic's key  = fold_in(fold_in(stream key, CRITIC_IDS[critic]), critic step)     the gradient penalty

`tf.random.experimental.stateless_fold_in(key, data)` is [a 64-bit hash of key, data]: keys of one stream
differ in their index, and keys of different streams or seeds in the hash, so no two draws share a key (the
stream ids are one table here; `tests/test_random_streams.py` enumerates the keys). Everything is stateless
and made of standard TensorFlow ops, so replicas, workers, a resumed run and the exported sampler (TF
Serving's C++ loader) all make the same draws. Draws not made by TensorFlow ops (Keras' initialisers, NumPy
subsets, `tf.data`'s shuffle) get an integer or a NumPy generator drawn from their own stream.

The gradient penalty's interpolation weight (u = w x + (1 - w) x~, w ~ U[0, 1]) is called the "mix" here, to
keep it apart from MALA's epsilons.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

# The key every root key is folded from: fixed, so a seed names the same draws in every version.
ROOT_KEY = (0x5050474E, 0x74665F72)  # "PPGN", "tf_r"

# Training (a run's --seed).
DATA_ORDER = "data_order"  # The training minibatch order, per epoch.
CRITIC_CHOICE = "critic_choice"  # --critic_selection=random: which critic trains, per critic step.
GRADIENT_PENALTY_MIX = "gradient_penalty_mix"  # WGAN-GP's interpolation weight, per critic and critic step.
NETWORK_INITIALISATION = "network_initialisation"  # G and the critics.
ENCODER_INITIALISATION = "encoder_initialisation"  # E, when a run pre-trains it.
ENCODER_DATA_ORDER = "encoder_data_order"  # E's pre-training minibatch order.
CODE_PRIOR_SUBSET = "code_prior_subset"  # Which training codes the sampler's real-code prior keeps.
CODE_MIXTURE = "code_mixture"  # k-means' first centres of the per-class mixtures of the codes (h0=class_gaussian).
# Sampling (ppgn_tf.sample / evaluate / sweep --seed; then each chain's own seed).
CHAIN_SEEDS = "chain_seeds"  # The seed of each chain of a grid or an evaluation.
MALA_H0 = "mala_h0"  # A chain's h_0 ~ N(0, 1), per draw (its start and each restart).
MALA_PRIOR_PICK = "mala_prior_pick"  # Which real codes a chain's h_0 takes, per draw.
MALA_NOISE = "mala_noise"  # A chain's N(0, eps3^2) noise, per MALA step.
INPAINT_START_NOISE = "inpaint_start_noise"  # An in-painting chain's N(0, start_noise^2) noise at its start.
# Evaluation (ppgn_tf.evaluate --seed; the evaluation classifier's own seed).
EVALUATION_FLOOR_SPLIT = "evaluation_floor_split"  # The halves of the test set behind the real-vs-real FD floor.
EVAL_CLASSIFIER_INITIALISATION = "eval_classifier_initialisation"
EVAL_CLASSIFIER_AUGMENTATION = "eval_classifier_augmentation"  # Its random shifts.
EVAL_CLASSIFIER_DATA_ORDER = "eval_classifier_data_order"
# A classifier of another task trained to plug in as the sampler's condition (ppgn_tf.cli.train_classifier --seed).
TASK_CLASSIFIER_INITIALISATION = "task_classifier_initialisation"
TASK_CLASSIFIER_DATA_ORDER = "task_classifier_data_order"
# The benchmark (python -m ppgn_tf.bench).
BENCH_IMAGES = "bench_images"  # Its stand-in training images and labels (speed does not depend on pixel values).

# Stable ids: never renumber or reuse one (the draws of a seed would change).
STREAMS = {
    DATA_ORDER: 1,
    CRITIC_CHOICE: 2,
    GRADIENT_PENALTY_MIX: 3,
    NETWORK_INITIALISATION: 4,
    ENCODER_INITIALISATION: 5,
    ENCODER_DATA_ORDER: 6,
    CODE_PRIOR_SUBSET: 7,
    CHAIN_SEEDS: 8,
    MALA_H0: 9,
    MALA_PRIOR_PICK: 10,
    MALA_NOISE: 11,
    EVALUATION_FLOOR_SPLIT: 12,
    EVAL_CLASSIFIER_INITIALISATION: 13,
    EVAL_CLASSIFIER_AUGMENTATION: 14,
    EVAL_CLASSIFIER_DATA_ORDER: 15,
    CODE_MIXTURE: 16,
    TASK_CLASSIFIER_INITIALISATION: 17,
    TASK_CLASSIFIER_DATA_ORDER: 18,
    BENCH_IMAGES: 19,
    INPAINT_START_NOISE: 20,
}
# Sub-streams of GRADIENT_PENALTY_MIX, by critic name (the image critic, or the encoder layer it reads), so a
# critic draws the same mixes in every experiment that has it, whatever other critics are trained beside it.
CRITIC_IDS = {"image": 1, "conv1": 2, "conv2": 3, "conv3": 4, "fc1": 5, "fc2": 6}

_INT31 = 2**31 - 1  # Seeds of Keras, NumPy's legacy API and tf.data are taken below this.


def _fold(key, data) -> tf.Tensor:
  return tf.random.experimental.stateless_fold_in(tf.cast(key, tf.int64), tf.cast(data, tf.int64))


def root_key(seed) -> tf.Tensor:
  """[2] int64: the key every stream of `seed` is folded from."""
  return _fold(tf.constant(ROOT_KEY, tf.int64), seed)


def stream_key(seed, stream: str) -> tf.Tensor:
  """[2] int64: the key of stream `stream` of `seed`."""
  if stream not in STREAMS:
    raise ValueError(f"unknown random stream '{stream}' (known: {', '.join(STREAMS)})")
  return _fold(root_key(seed), STREAMS[stream])


def draw_key(seed, stream: str, index) -> tf.Tensor:
  """[2] int64: the key of draw `index` (a step, an epoch, a restart) of a stream."""
  return _fold(stream_key(seed, stream), index)


def gradient_penalty_key(seed, critic: str, critic_step) -> tf.Tensor:
  """[2] int64: the key of critic `critic`'s interpolation weights at critic step `critic_step`."""
  if critic not in CRITIC_IDS:
    raise ValueError(f"no gradient-penalty stream for critic '{critic}' (known: {', '.join(CRITIC_IDS)})")
  return _fold(_fold(stream_key(seed, GRADIENT_PENALTY_MIX), CRITIC_IDS[critic]), critic_step)


def row_draw_keys(seeds, stream: str, index) -> tf.Tensor:
  """[N, 2] int64: draw_key(seeds[i], stream, index) for each row (each chain's own seed)."""
  return tf.map_fn(lambda s: draw_key(s, stream, index), tf.cast(seeds, tf.int64),
                   fn_output_signature=tf.TensorSpec([2], tf.int64))


def integer_seed(seed: int, stream: str) -> int:
  """A non-negative int below 2^31 drawn from a stream: for APIs that take an integer seed."""
  return int(tf.random.stateless_uniform([], seed=stream_key(seed, stream), minval=0, maxval=_INT31,
                                         dtype=tf.int64).numpy())


def numpy_generator(seed: int, stream: str) -> np.random.Generator:
  """A NumPy generator seeded by a stream's key (all 128 bits of it)."""
  return np.random.default_rng(stream_key(seed, stream).numpy().view(np.uint64).tolist())


def chain_seeds(seed: int, count: int) -> np.ndarray:
  """int64 [count]: the seeds of chains 0..count-1 of a grid or an evaluation with --seed=`seed`.

  Chain i's seed depends on (seed, i) only, so the first chains of a larger grid are those of a smaller one.
  """
  return _chain_seed_draws(stream_key(seed, CHAIN_SEEDS), tf.constant(count, tf.int64)).numpy()


@tf.function(reduce_retracing=True)  # A graph: a map_fn run eagerly costs about 10 ms a row.
def _chain_seed_draws(base, count):
  keys = tf.map_fn(lambda i: _fold(base, i), tf.range(count, dtype=tf.int64),
                   fn_output_signature=tf.TensorSpec([2], tf.int64))
  # A 64-bit value per chain: distinct chains, and their root keys apart from every run seed's.
  return tf.map_fn(lambda k: tf.random.stateless_uniform([], seed=k, minval=None, maxval=None, dtype=tf.int64),
                   keys, fn_output_signature=tf.TensorSpec([], tf.int64))


def seed_keras(seed: int, stream: str) -> None:
  """Seeds Keras' initialisers (and Python, NumPy, TensorFlow's global generators) from a stream."""
  keras.utils.set_random_seed(integer_seed(seed, stream))
