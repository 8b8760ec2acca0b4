"""Statistics over seeds for `ppgn_tf.report`: grouping runs, intervals, seed-paired claims. Pure (no TensorFlow).

A configuration trained at several seeds is a *group*. Each metric of a group is its mean over seeds with a
95% Student-t interval of that mean. A claim compares two groups through the seed-paired differences
(run b at seed s minus run a at seed s: the seed fixes the initialisation, the data order and every draw, so
pairing removes what the two runs share), and is decided from the t interval of their mean:

  a difference claim ("b's FD is above a's")        holds when the interval lies above 0, does not hold when
                                                    it lies below, and is undecided when it contains 0;
  an equivalence claim ("b comparable to a")        holds when the interval lies inside +-margin, does not
                                                    hold when it lies outside, and is undecided otherwise.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re

import numpy as np

CONFIDENCE = 0.95
# t_{0.975, df} for df = 1..30 (two-sided 95%); above 30 the Cornish-Fisher expansion below is within 1e-3.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
_Z975 = 1.959964

HOLDS = "holds"
DOES_NOT_HOLD = "does not hold"
UNDECIDED = "undecided at this scale"
MISSING = "not run"


def t_quantile_975(df: int) -> float:
  """The 0.975 quantile of Student's t with `df` degrees of freedom (the half-width factor of a 95% interval)."""
  if df < 1:
    raise ValueError(f"a t interval needs at least 1 degree of freedom, got {df}")
  if df <= len(_T975):
    return _T975[df - 1]
  z = _Z975
  return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


@dataclasses.dataclass(frozen=True)
class Interval:
  """Mean of n values with a 95% t interval [low, high]; low = high = mean's bounds unknown (None) when n < 2."""
  mean: float
  low: float | None
  high: float | None
  std: float | None  # Sample standard deviation (n - 1).
  n: int

  def as_dict(self) -> dict:
    return dataclasses.asdict(self)


def mean_interval(values) -> Interval:
  """Mean and 95% t interval of the mean of `values` (finite numbers; NaN and None are left out)."""
  values = np.asarray([v for v in values if v is not None], np.float64)
  values = values[np.isfinite(values)]
  if values.size == 0:
    raise ValueError("mean_interval: no finite value")
  mean = float(values.mean())
  if values.size < 2:
    return Interval(mean, None, None, None, int(values.size))
  std = float(values.std(ddof=1))
  half = t_quantile_975(values.size - 1) * std / math.sqrt(values.size)
  return Interval(mean, mean - half, mean + half, std, int(values.size))


def negated(interval: Interval) -> Interval:
  """The interval of minus the values."""
  flip = lambda v: None if v is None else -v
  return Interval(-interval.mean, flip(interval.high), flip(interval.low), interval.std, interval.n)


def paired_differences(a: dict, b: dict) -> dict:
  """{seed: b[seed] - a[seed]} over the seeds both have a finite value for."""
  return {s: b[s] - a[s] for s in sorted(set(a) & set(b))
          if a[s] is not None and b[s] is not None and math.isfinite(a[s]) and math.isfinite(b[s])}


def decide_above(interval: Interval | None, threshold: float = 0.0) -> str:
  """Is the mean difference above `threshold`? From its interval."""
  if interval is None or interval.low is None:
    return UNDECIDED
  if interval.low > threshold:
    return HOLDS
  if interval.high < threshold:
    return DOES_NOT_HOLD
  return UNDECIDED


def decide_within(interval: Interval | None, margin: float) -> str:
  """Is the mean difference within +-margin (equivalence)? From its interval."""
  if interval is None or interval.low is None:
    return UNDECIDED
  if -margin < interval.low and interval.high < margin:
    return HOLDS
  if interval.low > margin or interval.high < -margin:
    return DOES_NOT_HOLD
  return UNDECIDED


def combine_all(verdicts: list[str]) -> str:
  """A claim that is the conjunction of parts: holds if all do, does not hold if any does not."""
  if any(v == DOES_NOT_HOLD for v in verdicts):
    return DOES_NOT_HOLD
  if verdicts and all(v == HOLDS for v in verdicts):
    return HOLDS
  return UNDECIDED


def decide_mixed(better: list[str], worse: list[str]) -> str:
  """"Mixed": better on some metric and worse on another. `better[i]` / `worse[i]`: the verdicts of "better on
  metric i" / "worse on metric i"."""
  if HOLDS in better and HOLDS in worse:
    return HOLDS
  undecided = [i for i in range(len(better)) if better[i] != HOLDS and worse[i] != HOLDS
               and UNDECIDED in (better[i], worse[i])]
  if not undecided:  # Every metric is decided, and they do not go both ways.
    return DOES_NOT_HOLD
  return UNDECIDED


# ---- grouping -------------------------------------------------------------------------------------

_SEED_DIR = re.compile(r"^seed[_-]?(\d+)$")
_SEED_SUFFIX = re.compile(r"[_-](?:s|seed)(\d+)$")


def group_name(run_name: str) -> str:
  """The name of a run's group: `3a_vanilla/seed0` -> `3a_vanilla`, `3a_vanilla_s0` -> `3a_vanilla`."""
  parts = run_name.replace("\\", "/").split("/")
  if len(parts) > 1 and _SEED_DIR.match(parts[-1]):
    return parts[-2]
  return _SEED_SUFFIX.sub("", parts[-1])


def configuration_key(config: dict, options: dict) -> str:
  """What makes two runs the same experiment: the trained configuration without its seed, the data and the
  bounds of the run (not where it ran, how often it saved, or how it was logged)."""
  relevant = {k: v for k, v in config.items() if k != "seed"}
  for key in ("dataset", "data_dir", "epochs", "max_generator_steps", "precision", "encoder_dir"):
    relevant[f"options.{key}"] = options.get(key)
  return json.dumps(relevant, sort_keys=True, default=str)


def group_runs(runs: list[dict]) -> list[dict]:
  """Groups runs (dicts with name, seed, key = configuration_key, and optionally path, whose group_name names the
  group; else the name's) that differ only in seed.

  Returns groups in the order of their first run: {name, key, runs: [run, ...] sorted by seed}. Raises
  ValueError when two runs of one group have the same seed (the same run twice).
  """
  groups: dict[str, dict] = {}
  for run in runs:
    name = group_name(run.get("path") or run["name"])
    group = groups.setdefault(run["key"], {"name": name, "key": run["key"], "runs": []})
    clash = next((r for r in group["runs"] if r["seed"] == run["seed"]), None)
    if clash:
      raise ValueError(f"{clash['name']} and {run['name']} are the same configuration and seed {run['seed']}")
    group["runs"].append(run)
  names = [g["name"] for g in groups.values()]
  for g in groups.values():
    g["runs"].sort(key=lambda r: r["seed"])
    if names.count(g["name"]) > 1:  # Same name, other configuration: name it by its first run.
      g["name"] = g["runs"][0]["name"]
  return list(groups.values())


# ---- the thesis' claims ---------------------------------------------------------------------------

# Metrics where lower is better; the rest (accuracy, mean p, diversity) are better higher.
LOWER_IS_BETTER = {"frechet_distance", "reconstruction_mse", "recon_frechet_distance", "seconds_per_generator_step"}
# Timings: a seed pair compares them only when both runs name one CPU model (summary.json's "cpu").
TIMED_METRICS = frozenset({"seconds_per_generator_step"})
# "Comparable": the paired difference stays within this share of the reference group's mean.
COMPARABLE_SHARE = 0.10
MIXED_METRICS = ("accuracy", "frechet_distance", "diversity", "recon_frechet_distance")


@dataclasses.dataclass(frozen=True)
class Comparison:
  """One part of a claim: b's metric minus a's, seed-paired, tested as `test` ('above', 'below', 'within')."""
  a: str  # Group id (the group name's prefix, e.g. "3a").
  b: str
  metric: str
  test: str


@dataclasses.dataclass(frozen=True)
class Claim:
  name: str  # As the thesis puts it.
  parts: tuple[Comparison, ...]
  mixed: bool = False  # 'Mixed' over MIXED_METRICS instead of a conjunction of parts.
  needs_paper_scale: str = ""  # Why this scale cannot decide it, if known in advance.


def thesis_claims() -> tuple[Claim, ...]:
  C = Comparison
  return (
      Claim("3b poor (D_fc1 and L_gan alone: degraded digits)",
            (C("3a", "3b", "frechet_distance", "above"), C("3a", "3b", "recon_frechet_distance", "above"))),
      Claim("3c below 3a (not as sharp)", (C("3a", "3c", "frechet_distance", "above"),)),
      Claim("3d mixed (better than 3a on some metrics, worse on others)",
            tuple(C("3a", "3d", m, "mixed") for m in MIXED_METRICS), mixed=True),
      Claim("3e comparable to 3a", (C("3a", "3e", "frechet_distance", "within"),
                                    C("3a", "3e", "accuracy", "within"))),
      Claim("3e slower than 3a", (C("3a", "3e", "seconds_per_generator_step", "above"),),
            needs_paper_scale="at the thesis' DIM 64 the image critic's share of the step grows (822 MFLOP per "
                              "image forward, docs/reports/bench/paper.json), so 3e's extra work weighs less there: "
                              "python -m ppgn_tf.bench --config=paper --experiments=vanilla,combined decides it "
                              "at that scale"),
      Claim("3f comparable to 3a", (C("3a", "3f", "frechet_distance", "within"),
                                    C("3a", "3f", "accuracy", "within"))),
      Claim("3f faster than 3e", (C("3e", "3f", "seconds_per_generator_step", "below"),)),
      Claim("three critics (3g) closer to real digits than 3a (lower FD)",
            (C("3a", "3g", "frechet_distance", "below"),)),
      Claim("three critics (3g) closer to real digits than 3e (lower FD)",
            (C("3e", "3g", "frechet_distance", "below"),)),
  )


def find_group(groups: list[dict], group_id: str) -> dict | None:
  """The group whose name starts with `group_id` (e.g. "3a" finds "3a_vanilla")."""
  return next((g for g in groups if re.match(rf"{re.escape(group_id)}(?![0-9a-z])", g["name"])), None)


SEEDS_TO_DECIDE_CAP = 1000  # Beyond this many seeds "more than" is all a report needs to say.


def seeds_to_decide(interval: Interval | None, test: str, margin: float | None = None) -> int | None:
  """How many seeds would make an undecided comparison decided, if the paired differences kept their measured
  mean and spread: the smallest n whose 95% t half-width t(n-1) s / sqrt(n) is below the distance from the mean
  to the boundary that decides (0 for 'above' and 'below'; the nearer of +-margin for 'within'). None when the
  spread is unknown (fewer than 2 seeds), the mean sits on the boundary, or more than SEEDS_TO_DECIDE_CAP."""
  if interval is None or interval.std is None or interval.n < 2:
    return None
  if test == "within":
    if margin is None:
      return None
    room = abs(margin - abs(interval.mean))
  else:
    room = abs(interval.mean)
  if room <= 0:
    return None
  if interval.std == 0:
    return interval.n
  for n in range(2, SEEDS_TO_DECIDE_CAP + 1):
    if t_quantile_975(n - 1) * interval.std / math.sqrt(n) < room:
      return n
  return None


def decide_comparison(part: Comparison, a_values: dict, b_values: dict) -> dict:
  """The seed-paired difference b - a of one metric, its interval and the verdict of `part.test`."""
  differences = paired_differences(a_values, b_values)
  interval = mean_interval(list(differences.values())) if differences else None
  reference = mean_interval(list(a_values.values())).mean if a_values else None
  margin = None
  if part.test == "within":
    margin = COMPARABLE_SHARE * abs(reference)
    verdict = decide_within(interval, margin)
  elif part.test == "above":
    verdict = decide_above(interval)
  elif part.test == "below":
    verdict = decide_above(None if interval is None else negated(interval))
  elif part.test == "mixed":
    verdict = None
  else:
    raise ValueError(f"unknown comparison test '{part.test}'")
  return {"a": part.a, "b": part.b, "metric": part.metric, "test": part.test, "margin": margin,
          "differences": differences, "interval": None if interval is None else interval.as_dict(),
          "verdict": verdict,
          "seeds_to_decide": seeds_to_decide(interval, part.test, margin) if verdict == UNDECIDED else None}


def _direction_verdicts(result: dict) -> tuple[str, str]:
  """(verdict of "b better than a", verdict of "b worse than a") on the result's metric."""
  above = decide_above(None if result["interval"] is None else Interval(**result["interval"]))
  below = {HOLDS: DOES_NOT_HOLD, DOES_NOT_HOLD: HOLDS}.get(above, UNDECIDED)
  return (below, above) if result["metric"] in LOWER_IS_BETTER else (above, below)


def same_cpu_pairs(a_values: dict, b_values: dict, a_cpu, b_cpu) -> tuple[dict, dict]:
  """(b_values without the seeds whose two runs ran on different CPUs, {seed: "<a's CPU> vs <b's CPU>"}).

  `a_cpu(seed)`, `b_cpu(seed)`: the CPU model a run names, None when it names none (runs from before the
  summary recorded it): two such runs are kept, as they cannot be told apart.
  """
  left_out = {s: f"{a_cpu(s) or 'not recorded'} vs {b_cpu(s) or 'not recorded'}"
              for s in sorted(a_values.keys() & b_values.keys()) if a_cpu(s) != b_cpu(s)}
  return {s: v for s, v in b_values.items() if s not in left_out}, left_out


def decide_claim(claim: Claim, groups: list[dict], metric_values, run_cpu=None) -> dict:
  """The claim's parts and verdict. `metric_values(group, metric) -> {seed: value}`; `run_cpu(group, seed)`: the
  CPU model of that run, to pair timings only between runs on one CPU (None: no check)."""
  parts = []
  for part in claim.parts:
    a, b = find_group(groups, part.a), find_group(groups, part.b)
    if a is None or b is None:
      missing = [gid for gid, g in ((part.a, a), (part.b, b)) if g is None]
      return {"claim": claim.name, "verdict": MISSING, "missing": missing, "parts": [],
              "needs_paper_scale": claim.needs_paper_scale}
    a_values, b_values, left_out = metric_values(a, part.metric), metric_values(b, part.metric), {}
    if run_cpu is not None and part.metric in TIMED_METRICS:
      b_values, left_out = same_cpu_pairs(a_values, b_values, lambda s: run_cpu(a, s), lambda s: run_cpu(b, s))
    result = decide_comparison(part, a_values, b_values)
    result.update(a_group=a["name"], b_group=b["name"], other_cpu_seeds=left_out)
    parts.append(result)
  if claim.mixed:
    directions = [_direction_verdicts(p) for p in parts]
    for p, (better, worse) in zip(parts, directions):
      p["verdict"] = "better" if better == HOLDS else "worse" if worse == HOLDS else UNDECIDED
    verdict = decide_mixed([d[0] for d in directions], [d[1] for d in directions])
  else:
    verdict = combine_all([p["verdict"] for p in parts])
  return {"claim": claim.name, "verdict": verdict, "parts": parts, "needs_paper_scale": claim.needs_paper_scale}


# ---- curves ---------------------------------------------------------------------------------------

def mean_band(curves: list[tuple]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
  """Mean over seeds of curves [(steps, values), ...] at the steps every curve has, with the 95% t interval of
  that mean per step: (steps, mean, low, high); low and high are None for one curve."""
  if not curves:
    raise ValueError("mean_band: no curve")
  common = set(np.asarray(curves[0][0]).tolist())
  for steps, _ in curves[1:]:
    common &= set(np.asarray(steps).tolist())
  steps = np.array(sorted(common), np.float64)
  by_step = [dict(zip(np.asarray(s).tolist(), np.asarray(v, np.float64).tolist())) for s, v in curves]
  stacked = np.array([[values[t] for t in steps.tolist()] for values in by_step], np.float64).reshape(len(curves), -1)
  mean = stacked.mean(axis=0)
  if len(curves) < 2:
    return steps, mean, None, None
  half = t_quantile_975(len(curves) - 1) * stacked.std(axis=0, ddof=1) / math.sqrt(len(curves))
  return steps, mean, mean - half, mean + half
