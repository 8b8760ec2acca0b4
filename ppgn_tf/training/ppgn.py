"""The PPGN-h trainer: one Keras model owning G, the critics and the frozen E.

As in keras.io's WGAN-GP example, `compile()` takes the optimizers and the loss form (a `losses.GanLoss`), and
`train_step` is the recipe: one critic iteration on one real minibatch, followed by a G step on that same
minibatch when the critic round is complete (the asymmetric WGAN-GP schedule of `critic_schedule`). Keras'
own `fit()` drives it, so Keras callbacks (progress, TensorBoard, checkpoints) work unchanged. The one
exception to Keras' public API is `keras_workaround`, which says why.

Distribution: Keras calls `train_step` once per replica (replica context). The step hands itself over to
cross-replica context at once (`ReplicaContext.merge_call`, public tf.distribute API) and from there calls
`strategy.run` for each update, because the round structure needs control flow around optimizer updates, and
control flow around a cross-replica synchronisation point is not allowed inside a replica function.
"""

from __future__ import annotations

import dataclasses
import json

import keras
import numpy as np
import tensorflow as tf

from ppgn_tf import checks
from ppgn_tf import random_streams
from ppgn_tf.model import encoder as encoder_lib
from ppgn_tf.model import losses
from ppgn_tf.model.critics import IMAGE, build_critics
from ppgn_tf.model.generator import build_generator
from ppgn_tf.training import critic_schedule as schedule_lib
from ppgn_tf.training import keras_workaround


@dataclasses.dataclass(frozen=True)
class PPGNConfig:
  """Everything that distinguishes one experiment from another."""
  dim: int = 64
  batch_size: int = 32  # Global batch: split across replicas.
  code_layer: str = encoder_lib.CODE_LAYER
  image_critic: bool = True
  latent_critics: tuple[str, ...] = ()
  critic_weights: tuple[float, ...] = ()  # lambda_k per critic (image first); empty: all 1.
  recon_layers: tuple[str, ...] = (encoder_lib.CODE_LAYER,)
  recon_weights: tuple[float, ...] = (1.0,)
  beta_x: float = 2.0
  beta_h: float = 0.1
  beta_gan: float = 1.0
  gan_loss: str = losses.WGAN_GP
  gp_weight: float = 10.0
  critic_selection: str = schedule_lib.ALL
  random_p: float = 0.5
  schedule: schedule_lib.CriticSchedule = schedule_lib.CriticSchedule()
  learning_rate: float = 1e-4
  adam_beta_1: float = 0.5
  adam_beta_2: float = 0.9
  seed: int = 0
  generator_ema: float = 0.0  # Decay of the moving average of G's weights used for sampling; 0: off.

  @property
  def critic_names(self) -> tuple[str, ...]:
    return ((IMAGE,) if self.image_critic else ()) + tuple(self.latent_critics)

  def __post_init__(self):
    self.validate()  # The one check: a PPGNConfig that exists is consistent.

  def validate(self) -> None:
    """Raises ValueError (one line naming the flag) for an inconsistent configuration."""
    for name in ("dim", "batch_size", "learning_rate"):
      checks.positive(name, getattr(self, name))
    for name in ("beta_x", "beta_h", "beta_gan", "gp_weight"):
      checks.at_least(name, getattr(self, name), 0)
    encoder_lib.check_layer_names([self.code_layer], "code_layer")
    encoder_lib.check_layer_names(self.latent_critics, "latent_critics")
    encoder_lib.check_layer_names(self.recon_layers, "recon_layers")
    if len(set(self.latent_critics)) != len(self.latent_critics):
      raise ValueError(f"--latent_critics names a layer twice: {','.join(self.latent_critics)}")
    if not self.critic_names:
      raise ValueError("no critic: set --image_critic=true or name --latent_critics")
    if len(self.recon_weights) != len(self.recon_layers):
      raise ValueError(f"--recon_weights has {len(self.recon_weights)} values for "
                       f"{len(self.recon_layers)} --recon_layers")
    if self.critic_weights and len(self.critic_weights) != len(self.critic_names):
      raise ValueError(f"--critic_weights has {len(self.critic_weights)} values for "
                       f"{len(self.critic_names)} critics ({','.join(self.critic_names)})")
    losses.gan_loss(self.gan_loss)
    checks.one_of("critic_selection", self.critic_selection, schedule_lib.SELECTIONS)
    checks.in_interval("random_p", self.random_p, 0, 1)
    checks.in_interval(FLAG_OF["adam_beta_1"], self.adam_beta_1, 0, 1, high_open=True)
    checks.in_interval(FLAG_OF["adam_beta_2"], self.adam_beta_2, 0, 1, high_open=True)
    checks.in_interval("generator_ema", self.generator_ema, 0, 1, high_open=True)


# train.py's flag for each field of PPGNConfig whose flag has another name (the others' flags are the field's name;
# `schedule`'s fields have critic_schedule.FLAG_OF), so a bad value's error names what the user typed.
FLAG_OF = {"adam_beta_1": "adam_beta1", "adam_beta_2": "adam_beta2"}


def config_to_json(config: PPGNConfig) -> dict:
  """config.json's content: the configuration as JSON values (tuples as lists)."""
  return json.loads(json.dumps(dataclasses.asdict(config)))


def with_config_defaults(saved: dict) -> dict:
  """A saved config.json with every field it lacks at PPGNConfig's default.

  A run's config.json predates the fields added since (e.g. generator_ema):
  such a run had them at their defaults, so it resumes and loads as before.
  """
  return {**config_to_json(PPGNConfig()), **saved}


def config_from_json(obj: dict) -> PPGNConfig:
  """The PPGNConfig a config.json holds (the fields it lacks at their defaults)."""
  fields = with_config_defaults(obj)
  fields["schedule"] = schedule_lib.CriticSchedule(**fields["schedule"])
  for key in ("latent_critics", "critic_weights", "recon_layers", "recon_weights"):
    fields[key] = tuple(fields[key])
  return PPGNConfig(**fields)


def gradient_penalty_mix(seed: int, critic: str, critic_step, batch_size: int) -> tf.Tensor:
  """[batch_size] interpolation weights w ~ U[0, 1] of critic `critic`'s gradient penalty at `critic_step`
  (u = w real + (1 - w) fake), drawn for the global batch from the critic's own stream."""
  return tf.random.stateless_uniform([batch_size],
                                     seed=random_streams.gradient_penalty_key(seed, critic, critic_step))


def adam_optimizers(config: PPGNConfig) -> tuple[keras.optimizers.Optimizer, dict[str, keras.optimizers.Optimizer]]:
  """The configuration's optimizers: Adam(learning_rate, adam_beta_1, adam_beta_2) for G and for each critic.

  Create them under the strategy's scope (their state is distributed like the networks').
  """
  adam = lambda name: keras.optimizers.Adam(config.learning_rate, beta_1=config.adam_beta_1,
                                            beta_2=config.adam_beta_2, name=name)
  return adam("generator_adam"), {n: adam(f"critic_{n}_adam") for n in config.critic_names}


def compile_as_configured(model: "PPGN", **keras_args) -> "PPGN":
  """`model.compile()` with what its configuration names: `adam_optimizers` and the --gan_loss form."""
  generator_optimizer, critic_optimizers = adam_optimizers(model.config)
  model.compile(generator_optimizer, critic_optimizers, losses.gan_loss(model.config.gan_loss), **keras_args)
  return model


class PPGN(keras_workaround.BuiltBeforeFit, keras.Model):
  """Noiseless Joint PPGN-h with an image critic and/or latent critics."""

  def __init__(self, encoder: keras.Model, config: PPGNConfig, **kwargs):
    super().__init__(name="ppgn", **kwargs)
    self.config = config
    self.schedule = config.schedule
    encoder.trainable = False
    self.encoder = encoder
    shapes = encoder_lib.layer_shapes(encoder)
    self.generator = build_generator(shapes[config.code_layer], config.dim)
    self.critic_names = config.critic_names
    self.critics = build_critics(self.critic_names, shapes, config.dim)
    weights = config.critic_weights or (1.0,) * len(self.critic_names)
    self.critic_weights = dict(zip(self.critic_names, weights))
    self.recon_weights = dict(zip(config.recon_layers, config.recon_weights))
    # Set by compile(), as keras.io's WGAN-GP sets its optimizers and loss functions.
    self.generator_optimizer = None
    self.critic_optimizers = {}
    self.gan_loss = None

    counter = lambda name: tf.Variable(0, dtype=tf.int64, trainable=False, name=name)
    self.generator_steps = counter("generator_steps")
    self.critic_steps = counter("critic_steps")
    self.round_iterations = counter("round_iterations")  # Critic iterations since the last G step.
    # The latest value of every logged quantity: G terms change only on G steps
    # and a critic's terms only when it is trained, yet each batch reports all.
    self.latest = {k: tf.Variable(0.0, trainable=False, name=k) for k in self.log_names()}
    # Built last: its (overwritten) random initialisation must not shift the draws of the
    # networks above, so a run with the EMA trains exactly as one without.
    self.generator_ema = None
    if config.generator_ema:
      self.generator_ema = build_generator(shapes[config.code_layer], config.dim, name="generator_ema")
      self.generator_ema.trainable = False
      for ema, weight in zip(self.generator_ema.weights, self.generator.weights):
        ema.assign(weight.value)
    self.built = True  # Every network is a built functional model.

  def compile(self, generator_optimizer: keras.optimizers.Optimizer,
              critic_optimizers: dict[str, keras.optimizers.Optimizer], gan_loss: losses.GanLoss, *,
              run_eagerly: bool = False, steps_per_execution: int = 1, jit_compile="auto"):
    """Sets the optimizers (G's, and one per critic by name) and the loss form; `compile_as_configured` passes
    the configuration's.

    `train_step` runs one critic iteration per call and hands every update to cross-replica context, which
    neither a multi-step loop nor XLA can hold: `steps_per_execution` must be 1 and `jit_compile` off ("auto"
    means off). Raises ValueError (one line) otherwise.
    """
    if set(critic_optimizers) != set(self.critic_names):
      raise ValueError(f"PPGN.compile: critic_optimizers names {','.join(sorted(critic_optimizers)) or 'none'}, "
                       f"the critics are {','.join(self.critic_names)}")
    if steps_per_execution != 1:
      raise ValueError(f"PPGN.compile: steps_per_execution must be 1 (one train_step per call), "
                       f"got {steps_per_execution}")
    if jit_compile not in ("auto", False):
      raise ValueError(f"PPGN.compile: jit_compile must be False (train_step is not XLA-compiled), got {jit_compile}")
    self.generator_optimizer = generator_optimizer
    self.critic_optimizers = dict(critic_optimizers)
    self.gan_loss = gan_loss
    # Slots exist before any checkpoint restore, so restoring never defers.
    generator_optimizer.build(self.generator.trainable_variables)
    for n in self.critic_names:
      self.critic_optimizers[n].build(self.critics[n].trainable_variables)
    # Keras' own optimizer slot is G's: callbacks that read `model.optimizer`
    # (learning-rate schedules) act on G, and no unused optimizer is built.
    super().compile(optimizer=generator_optimizer, run_eagerly=run_eagerly, steps_per_execution=1,
                    jit_compile=False)

  # ---- names ----------------------------------------------------------------

  def log_names(self) -> list[str]:
    names = ["g_loss", "l_x", "l_h", "l_gan"]
    for n in self.critic_names:
      names += [f"d_loss_{n}", f"w_{n}", f"gp_{n}"]
    return names

  def checkpoint_items(self) -> dict:
    """Everything a resumed run needs, for tf.train.Checkpoint: the networks, the step counters, and once
    compiled, the optimizers."""
    items = {
        "generator": self.generator,
        "generator_steps": self.generator_steps,
        "critic_steps": self.critic_steps,
        "round_iterations": self.round_iterations,
    }
    if self.generator_optimizer is not None:
      items["generator_optimizer"] = self.generator_optimizer
    for n in self.critic_names:
      items[f"critic_{n}"] = self.critics[n]
      if n in self.critic_optimizers:
        items[f"critic_{n}_optimizer"] = self.critic_optimizers[n]
    for k, v in self.latest.items():
      items[f"latest_{k}"] = v
    if self.generator_ema is not None:  # Absent when off: older checkpoints still match.
      items["generator_ema"] = self.generator_ema
    return items

  # ---- the algorithm --------------------------------------------------------

  def call(self, codes, training=False):
    return self.generator(codes, training=training)

  @property
  def sampling_generator(self) -> keras.Model:
    """The G that makes images after training: the moving average of G when it is kept."""
    return self.generator if self.generator_ema is None else self.generator_ema

  @property
  def real_feature_layers(self) -> tuple[str, ...]:
    """Encoder layers of real images the algorithm reads: G's input, L_h's layers, latent critics'."""
    return tuple(sorted({self.config.code_layer, *self.config.recon_layers, *self.config.latent_critics}))

  def cacheable_layers(self, max_values_per_example: int = 4096) -> tuple[str, ...]:
    """The layers of `real_feature_layers` small enough to precompute for a whole data set.

    E is frozen, so E(x) of a training image never changes: computing it once
    instead of in every critic iteration removes one encoder pass per batch.
    """
    shapes = encoder_lib.layer_shapes(self.encoder)
    return tuple(l for l in self.real_feature_layers if np.prod(shapes[l]) <= max_values_per_example)

  def train_step(self, data):
    """One critic iteration, then a G step if the round is complete.

    `data` is (images, labels) or (images, labels, features) where features
    holds precomputed E^j(x) for some layers (see `cacheable_layers`).
    Keras calls it in replica context; the iteration runs in cross-replica context (see the module's doc).
    """
    logs = tf.distribute.get_replica_context().merge_call(self._critic_iteration, args=(data,))
    return keras_workaround.logs_for_fit(logs, self.distribute_strategy)

  def _critic_iteration(self, strategy, data):
    """`train_step` in cross-replica context: `data` holds every replica's part of the global batch."""
    real_images = data[0] if isinstance(data, (tuple, list)) else data
    cached = data[2] if isinstance(data, (tuple, list)) and len(data) > 2 else {}
    long_round = self.schedule.is_long_round(self.generator_steps)
    trained = schedule_lib.select_critics(
        self.config.critic_selection, len(self.critic_names), long_round,
        self.critic_steps, self.config.seed, self.config.random_p)

    # E(x), G(E(x)) and E(G(E(x))) once per batch, shared by every update.
    real_features, fake_images, fake_features = strategy.run(self._reconstruct, args=(real_images, cached))

    for k, name in enumerate(self.critic_names):
      if name == IMAGE:
        real, fake = real_images, fake_images
      else:
        real, fake = real_features[name], fake_features[name]
      update = lambda name=name, real=real, fake=fake: self._critic_update(name, real, fake)
      if self.config.critic_selection == schedule_lib.ALL:
        update()
      else:
        tf.cond(trained[k] > 0, update, lambda: tf.constant(False))

    self.critic_steps.assign_add(1)
    self.round_iterations.assign_add(1)
    round_complete = self.round_iterations >= self.schedule.iterations_before(self.generator_steps)
    tf.cond(round_complete,
            lambda: self._generator_update(real_images, real_features, trained),
            lambda: tf.constant(False))
    logs = {k: v.read_value() for k, v in self.latest.items()}
    logs["g_steps"] = self.generator_steps.read_value()
    return logs

  def _reconstruct(self, real_images, cached):
    real_features = dict(cached)
    if any(l not in cached for l in self.real_feature_layers):
      real_features = {**self.encoder(real_images, training=False), **cached}
    fake_images = self.generator(real_features[self.config.code_layer], training=False)
    fake_features = {}
    if len(self.critic_names) > (1 if IMAGE in self.critic_names else 0):
      fake_features = self.encoder(fake_images, training=False)
    return real_features, fake_images, fake_features

  def _critic_update(self, name: str, real, fake):
    """One optimizer step of critic `name` (cross-replica context)."""
    strategy = self.distribute_strategy
    per_replica = strategy.run(self._critic_replica_step, args=(name, real, fake))
    self._record({f"{key}_{name}": v for key, v in self._mean(per_replica).items()})
    return tf.constant(True)

  def _critic_replica_step(self, name: str, real, fake):
    critic = self.critics[name]
    replicas = self.distribute_strategy.num_replicas_in_sync
    mix = self._replica_slice(gradient_penalty_mix(self.config.seed, name, self.critic_steps.read_value(),
                                                   self.config.batch_size), tf.shape(real)[0])
    with tf.GradientTape() as tape:
      real_scores = critic(real, training=True)
      fake_scores = critic(fake, training=True)
      loss = self.gan_loss.critic_loss(real_scores, fake_scores)
      gp = tf.constant(0.0)
      if self.config.gp_weight > 0:
        gp = losses.gradient_penalty(lambda u: critic(u, training=True), real, fake, mix)
      loss = loss + self.config.gp_weight * gp
      # Summed over replicas by the optimizer: the gradient of the global-batch mean.
      scaled_loss = loss / replicas
    grads = tape.gradient(scaled_loss, critic.trainable_variables)
    self.critic_optimizers[name].apply_gradients(zip(grads, critic.trainable_variables))
    return {"d_loss": loss, "w": losses.wasserstein_estimate(real_scores, fake_scores), "gp": gp}

  def _generator_update(self, real_images, real_features, trained):
    """One G step on the round's last minibatch (cross-replica context)."""
    per_replica = self.distribute_strategy.run(
        self._generator_replica_step, args=(real_images, real_features, trained))
    self._record(self._mean(per_replica))
    if self.generator_ema is not None:
      self._update_generator_ema()
    self.generator_steps.assign_add(1)
    self.round_iterations.assign(0)
    return tf.constant(True)

  def _update_generator_ema(self):
    """ema <- d * ema + (1 - d) * w for every weight of G, after its optimizer step.

    Cross-replica context: G's weights are the same on every replica, so
    assigning the mirrored EMA variable writes the same value to every copy.
    """
    decay = self.config.generator_ema
    for ema, weight in zip(self.generator_ema.weights, self.generator.weights):
      ema.assign(decay * ema.value + (1.0 - decay) * weight.value)

  def _generator_replica_step(self, real_images, real_features, trained):
    c = self.config
    replicas = self.distribute_strategy.num_replicas_in_sync
    with tf.GradientTape() as tape:
      fake_images = self.generator(real_features[c.code_layer], training=True)
      fake_features = self.encoder(fake_images, training=False)
      l_x = losses.image_reconstruction_loss(fake_images, real_images)
      l_h = losses.feature_reconstruction_loss(fake_features, real_features, self.recon_weights)
      scores, weights = {}, {}
      if c.beta_gan > 0:  # 3d tracks its critic but G never sees it: skip the forward pass.
        for k, name in enumerate(self.critic_names):
          critic_input = fake_images if name == IMAGE else fake_features[name]
          scores[name] = self.critics[name](critic_input, training=False)
          # Random selection: only the critic(s) trained last speak to G.
          weights[name] = self.critic_weights[name] * trained[k]
      l_gan = losses.adversarial_loss(self.gan_loss.generator_term, scores, weights)
      g_loss = losses.generator_loss(l_x, l_h, l_gan, c.beta_x, c.beta_h, c.beta_gan)
      scaled_loss = g_loss / replicas
    variables = self.generator.trainable_variables
    grads = tape.gradient(scaled_loss, variables)
    self.generator_optimizer.apply_gradients(zip(grads, variables))
    return {"g_loss": g_loss, "l_x": l_x, "l_h": l_h, "l_gan": l_gan}

  # ---- plumbing -------------------------------------------------------------

  def _replica_slice(self, global_values, local_batch):
    """This replica's rows of a per-example tensor drawn for the global batch.

    Drawing for the global batch and slicing makes a mirrored run use exactly
    the randomness of a single-device run with the same global batch.
    """
    replica = tf.distribute.get_replica_context().replica_id_in_sync_group
    start = tf.cast(replica, tf.int32) * local_batch
    return global_values[start:start + local_batch]

  def _mean(self, per_replica: dict) -> dict:
    strategy = self.distribute_strategy
    return {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None) for k, v in per_replica.items()}

  def _record(self, values: dict) -> None:
    for k, v in values.items():
      self.latest[k].assign(tf.cast(v, tf.float32))

  def reconstruct(self, real_images) -> tf.Tensor:
    """G(E(x)) for normalised images (the sampling G: the EMA when it is kept)."""
    return self.sampling_generator(self.encoder(real_images, training=False)[self.config.code_layer],
                                   training=False)
