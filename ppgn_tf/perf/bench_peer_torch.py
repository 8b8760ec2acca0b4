"""The thesis' training step and one-chain sampler restated in PyTorch: the peer `python -m ppgn_tf.bench
--peer=torch` times in the same run as this project, at the same shapes, widths and batch.

Written from the thesis (Sec. 4, its WGAN-GP PyTorch base) and ../shared/spec.md, the way that code does it:
NCHW tensors, fp32, one critic call each on the real, the fake and the interpolated images, the gradient
penalty through `torch.autograd.grad(create_graph=True)`, the critics' parameters frozen during the G step,
E(x) computed for every minibatch, and the sampler one chain at a time.

A critic iteration: h = E_fc1(x), fake = G(h) (no gradient), for every critic
L_D = mean D(fake) - mean D(real) + 10 (||grad_u D(u)||_2 - 1)^2, one Adam step.
A G step on the round's last minibatch: L_G = 2 L_x + 0.1 L_h - sum_k mean D_k(fake), one Adam step.
The sampler (Eq. 8): h += 1e-2 (E_fc1(G(h)) - h) + grad_h log C_c(G(h)) + 1e-15 N(0, 1).

PyTorch is an optional dependency of the benchmark only (pip install torch, or the project's `peer` extra).
"""

from __future__ import annotations

import statistics
import time

from ppgn_tf.data.idx_format import NUM_CLASSES

INSTALL_HINT = "pip install torch  (or: pip install '.[peer]'; a CPU-only wheel is enough)"
# The experiments whose critics this restatement has: the image critic D and D_fc1, every iteration.
CRITICS_OF = {"vanilla": ("image",), "fc1": ("fc1",), "combined": ("image", "fc1")}


class PeerUnavailable(RuntimeError):
  """PyTorch is not installed; one line naming the install command."""


def import_torch():
  try:
    import torch
  except ImportError:
    raise PeerUnavailable(f"--peer=torch needs PyTorch, which is not installed: {INSTALL_HINT}") from None
  return torch


def _networks(torch, dim: int, encoder_widths: tuple[int, int, int], critics: tuple[str, ...]):
  nn = torch.nn

  class Encoder(nn.Module):
    def __init__(self):
      super().__init__()
      c1, c2, c3 = encoder_widths
      self.conv1, self.conv2, self.conv3 = nn.Conv2d(1, c1, 7), nn.Conv2d(c1, c2, 7), nn.Conv2d(c2, c3, 7)
      self.fc1, self.fc2 = nn.Linear(c3, 64), nn.Linear(64, NUM_CLASSES)  # conv3 pooled to 1x1

    def forward(self, x):
      x = torch.relu(self.conv1(x))
      x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
      x = nn.functional.max_pool2d(torch.relu(self.conv3(x)), 2)
      fc1 = torch.relu(self.fc1(x.flatten(1)))
      return {"fc1": fc1, "fc2": self.fc2(fc1)}

  class Generator(nn.Module):
    def __init__(self):
      super().__init__()
      self.fc1 = nn.Linear(64, 5 * 5 * dim)
      self.deconv2 = nn.ConvTranspose2d(dim, 8 * dim, 5)
      self.deconv3 = nn.ConvTranspose2d(8 * dim, 4 * dim, 5)
      self.deconv4 = nn.ConvTranspose2d(4 * dim, 4 * dim, 7)
      self.deconv5 = nn.ConvTranspose2d(4 * dim, 1, 10)

    def forward(self, h):
      x = torch.relu(self.fc1(h)).view(-1, dim, 5, 5)
      x = torch.relu(self.deconv2(x))
      x = torch.relu(self.deconv3(x))
      x = torch.relu(self.deconv4(x))
      return self.deconv5(x)

  def critic(in_channels, plan, side_after):
    layers, channels = [], in_channels
    for step in plan:
      if step == "pool":
        layers.append(nn.MaxPool2d(2))
      else:
        out, kernel = step
        layers += [nn.Conv2d(channels, out, kernel), nn.ReLU()]
        channels = out
    layers += [nn.Flatten(), nn.Linear(channels * side_after * side_after, 1)]
    return nn.Sequential(*layers)

  nets = {"encoder": Encoder(), "generator": Generator(), "critics": {}}
  for name in critics:
    if name == "image":  # 28 -> 26 -> 24 -> 12 -> 10 -> 5 -> 3 -> 1
      nets["critics"][name] = critic(1, [(4 * dim, 3), (4 * dim, 3), "pool", (4 * dim, 3), "pool", (8 * dim, 3),
                                         "pool"], 1)
    else:  # fc1 as 8x8x1: 8 -> 7 -> 6 -> 3 -> 2 -> 1
      nets["critics"][name] = critic(1, [(4 * dim, 2), (4 * dim, 2), "pool", (8 * dim, 2), "pool"], 1)
  return nets


class PeerTrainer:
  """The thesis' PPGN-h training step with WGAN-GP critics, in PyTorch."""

  def __init__(self, dim: int, batch_size: int, encoder_widths, critics, images, seed: int = 0):
    torch = import_torch()
    self.torch = torch
    torch.manual_seed(seed)
    nets = _networks(torch, dim, tuple(encoder_widths), tuple(critics))
    self.encoder, self.generator, self.critics = nets["encoder"], nets["generator"], nets["critics"]
    for p in self.encoder.parameters():
      p.requires_grad_(False)
    adam = lambda params: torch.optim.Adam(params, lr=1e-4, betas=(0.5, 0.9))
    self.generator_adam = adam(self.generator.parameters())
    self.critic_adams = {n: adam(c.parameters()) for n, c in self.critics.items()}
    self.batch_size = batch_size
    # uint8 NHWC pixels -> normalised NCHW floats, as the thesis' data loader hands them over.
    pixels = torch.from_numpy(images).float().div(255.0).permute(0, 3, 1, 2).contiguous()
    self.images = (pixels - 0.1307) / 0.3081
    self.next_batch = 0

  def _batch(self):
    n = len(self.images) // self.batch_size
    start = (self.next_batch % n) * self.batch_size
    self.next_batch += 1
    return self.images[start:start + self.batch_size]

  def _critic_input(self, name, images, fc1):
    return images if name == "image" else fc1.view(-1, 1, 8, 8)

  def critic_iteration(self, real_images):
    torch = self.torch
    with torch.no_grad():
      h = self.encoder(real_images)["fc1"]
      fake_images = self.generator(h)
      fake_fc1 = self.encoder(fake_images)["fc1"] if "fc1" in self.critics else None
    losses = {}
    for name, critic in self.critics.items():
      for p in critic.parameters():
        p.requires_grad_(True)
      real = self._critic_input(name, real_images, h)
      fake = self._critic_input(name, fake_images, fake_fc1)
      critic.zero_grad()
      d_real = critic(real).mean()
      d_fake = critic(fake).mean()
      alpha = torch.rand(real.shape[0], 1, 1, 1)
      interpolates = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
      scores = critic(interpolates)
      grads = torch.autograd.grad(scores, interpolates, torch.ones_like(scores), create_graph=True,
                                  retain_graph=True)[0]
      penalty = ((grads.flatten(1).norm(2, dim=1) - 1) ** 2).mean() * 10.0
      loss = d_fake - d_real + penalty
      loss.backward()
      self.critic_adams[name].step()
      losses[f"d_loss_{name}"] = float(loss.detach())
    return losses

  def generator_step(self, real_images):
    torch = self.torch
    for critic in self.critics.values():
      for p in critic.parameters():
        p.requires_grad_(False)  # As the WGAN-GP code does: no critic weight gradients in the G step.
    self.generator.zero_grad()
    with torch.no_grad():
      h = self.encoder(real_images)["fc1"]
    fake_images = self.generator(h)
    fake_fc1 = self.encoder(fake_images)["fc1"]
    l_x = torch.nn.functional.mse_loss(fake_images, real_images)
    l_h = torch.nn.functional.mse_loss(fake_fc1, h)
    l_gan = sum(-critic(self._critic_input(name, fake_images, fake_fc1)).mean()
                for name, critic in self.critics.items())
    loss = 2.0 * l_x + 0.1 * l_h + 1.0 * l_gan
    loss.backward()
    self.generator_adam.step()
    return {"g_loss": float(loss.detach())}

  def one_round(self, critic_iterations: int):
    """critic_iterations critic iterations, the G step on the last one's minibatch: per-part seconds."""
    critic_times, logs = [], {}
    for _ in range(critic_iterations):
      batch = self._batch()
      start = time.perf_counter()
      logs.update(self.critic_iteration(batch))  # float() waits for the step.
      critic_times.append(time.perf_counter() - start)
    start = time.perf_counter()
    logs.update(self.generator_step(batch))
    return critic_times, time.perf_counter() - start, logs


def time_sampler(trainer: PeerTrainer, steps: int, repeats: int, target: int = 3) -> float:
  """Seconds for one chain of `steps` MALA steps (median of `repeats` after a warm-up), the thesis' loop."""
  torch = trainer.torch
  generator, encoder = trainer.generator, trainer.encoder
  for p in generator.parameters():
    p.requires_grad_(False)

  def chain():
    h = torch.randn(1, 64)
    for _ in range(steps):
      h = h.detach().requires_grad_(True)
      features = encoder(generator(h))
      log_prob = torch.log_softmax(features["fc2"], dim=1)[0, target]
      grad = torch.autograd.grad(log_prob, h)[0]
      with torch.no_grad():
        h = h + 1e-2 * (features["fc1"] - h) + 1.0 * grad + 1e-15 * torch.randn_like(h)
    return float(h.sum())

  chain()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    chain()
    times.append(time.perf_counter() - start)
  for p in generator.parameters():
    p.requires_grad_(True)
  return statistics.median(times)


def versions() -> dict:
  torch = import_torch()
  return {"torch": torch.__version__, "torch_threads": torch.get_num_threads(),
          "mkldnn": bool(torch.backends.mkldnn.is_available())}
