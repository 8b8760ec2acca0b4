"""TensorBoard images of a tiny run, read back through a real `tensorboard` server's HTTP data API."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import numpy as np
from PIL import Image

from conftest import tiny_config

CHAINS_PER_CLASS = 2  # TensorBoardImages' default.
FIXED_TEST_IMAGES = 32  # train_lib's fixed reconstruction set: pairs, 8 tiles a row.


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _get(base, path, **query):
  url = f"{base}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
  with urllib.request.urlopen(url, timeout=30) as response:
    return response.read()


def _grid_size(tiles, columns, tile=28):
  rows = -(-tiles // columns)
  return rows * (tile + 1) - 1, columns * (tile + 1) - 1  # (height, width): 1-pixel separators.


def test_tensorboard_serves_the_reconstructions_and_sample_grids(tmp_path, small_idx_dir, encoder_dir):
  from ppgn_tf.sampling.run_end import RunEnd
  from ppgn_tf.training import train_lib
  workdir = str(tmp_path / "run")
  # Images at G steps 2 (every 2: the sampler runs) and 3 (the end: the grid comes from the end-of-run samples).
  train_lib.train(tiny_config(), train_lib.RunOptions(
      workdir=workdir, dataset=f"idx:{small_idx_dir}", encoder_dir=encoder_dir, max_generator_steps=3,
      image_every=2, verbose=0, checkpoint_every=0), RunEnd(sample_steps=5, sample_per_class=3))

  port = _free_port()
  server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", f"--logdir={workdir}/tensorboard",
                             "--host=127.0.0.1", f"--port={port}", "--reload_interval=1", "--load_fast=false"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  base = f"http://127.0.0.1:{port}"
  try:
    deadline = time.time() + 180
    tags = {}
    while time.time() < deadline:
      assert server.poll() is None, server.communicate()[1][-3000:]
      try:
        tags = json.loads(_get(base, "/data/plugin/images/tags"))
      except OSError:  # Not listening yet.
        pass
      if set(tags.get("images", {})) >= {"images/reconstructions", "images/samples"}:
        break
      time.sleep(0.5)
    assert set(tags.get("images", {})) == {"images/reconstructions", "images/samples"}, tags
    assert set(tags) == {"images"}  # Nothing else writes images.

    expected = {"images/reconstructions": _grid_size(2 * FIXED_TEST_IMAGES, 8),
                "images/samples": _grid_size(10 * CHAINS_PER_CLASS, CHAINS_PER_CLASS)}
    for tag, (height, width) in expected.items():
      entries = json.loads(_get(base, "/data/plugin/images/images", run="images", tag=tag, sample=0))
      assert [e["step"] for e in entries] == [2, 3], entries
      for entry in entries:
        png = _get(base, "/data/plugin/images/individualImage?" + entry["query"])
        image = Image.open(io.BytesIO(png))
        assert image.format == "PNG" and image.size == (width, height), (tag, image.size)
        pixels = np.asarray(image)
        assert pixels.min() < pixels.max(), tag  # A picture, not a blank.
  finally:
    server.terminate()
    server.communicate(timeout=60)
