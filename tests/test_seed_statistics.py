"""ppgn_tf.seed_statistics on made-up metrics with known means and spreads."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ppgn_tf.evaluation import seed_statistics as st


@pytest.mark.parametrize("df,expected", [(1, 12.706), (2, 4.303), (4, 2.776), (30, 2.042), (40, 2.021),
                                         (60, 2.000), (120, 1.980), (10_000, 1.960)])
def test_t_quantile(df, expected):
  assert st.t_quantile_975(df) == pytest.approx(expected, abs=1.5e-3)


def test_mean_interval_by_hand():
  got = st.mean_interval([1.0, 2.0, 3.0])  # Mean 2, sd 1, half-width t_2 / sqrt(3).
  half = 4.303 / math.sqrt(3)
  assert (got.mean, got.std, got.n) == (2.0, 1.0, 3)
  assert got.low == pytest.approx(2 - half) and got.high == pytest.approx(2 + half)
  one = st.mean_interval([5.0, None, float("nan")])
  assert (one.mean, one.low, one.high, one.n) == (5.0, None, None, 1)  # One seed: no interval.
  with pytest.raises(ValueError, match="no finite value"):
    st.mean_interval([])


def test_interval_covers_the_true_mean_95_percent_of_the_time():
  rng = np.random.default_rng(0)
  trials, covered = 4000, 0
  for _ in range(trials):
    got = st.mean_interval(rng.normal(10.0, 3.0, size=3))
    covered += got.low <= 10.0 <= got.high
  assert abs(covered / trials - 0.95) < 0.015


def test_paired_differences_pair_by_seed_and_remove_what_seeds_share():
  # Each seed moves both runs alike (a seed effect of +-50); b is 5 above a at every seed.
  a = {0: 100.0, 1: 150.0, 2: 50.0, 3: 120.0}
  b = {0: 105.0, 1: 155.0, 2: 55.2, 5: 1.0}  # Seed 3 missing from b, seed 5 from a: left out.
  diff = st.paired_differences(a, b)
  assert set(diff) == {0, 1, 2} and diff[2] == pytest.approx(5.2)
  paired = st.mean_interval(diff.values())
  assert paired.low > 0 and st.decide_above(paired) == st.HOLDS
  # Unpaired, the seed effect hides the difference.
  unpaired_a, unpaired_b = st.mean_interval([a[s] for s in diff]), st.mean_interval([b[s] for s in diff])
  assert unpaired_a.high > unpaired_b.low


@pytest.mark.parametrize("values,verdict", [
    ([3.0, 4.0, 5.0], st.HOLDS),
    ([-3.0, -4.0, -5.0], st.DOES_NOT_HOLD),
    ([-1.0, 1.0, 2.0], st.UNDECIDED),
    ([4.0], st.UNDECIDED),  # One seed decides nothing.
])
def test_decide_above(values, verdict):
  assert st.decide_above(st.mean_interval(values)) == verdict


@pytest.mark.parametrize("values,margin,verdict", [
    ([-0.5, 0.0, 0.5], 5.0, st.HOLDS),
    ([9.0, 10.0, 11.0], 5.0, st.DOES_NOT_HOLD),
    ([-10.0, 0.0, 10.0], 5.0, st.UNDECIDED),
    ([1.0], 5.0, st.UNDECIDED),
])
def test_decide_within(values, margin, verdict):
  assert st.decide_within(st.mean_interval(values), margin) == verdict


def test_combine_all_and_mixed():
  assert st.combine_all([st.HOLDS, st.HOLDS]) == st.HOLDS
  assert st.combine_all([st.HOLDS, st.UNDECIDED]) == st.UNDECIDED
  assert st.combine_all([st.UNDECIDED, st.DOES_NOT_HOLD]) == st.DOES_NOT_HOLD
  H, N, U = st.HOLDS, st.DOES_NOT_HOLD, st.UNDECIDED
  assert st.decide_mixed([H, N], [N, H]) == H  # Better on one, worse on another.
  assert st.decide_mixed([H, H], [N, N]) == N  # Better on both.
  assert st.decide_mixed([H, U], [N, U]) == U  # The second could go either way.


@pytest.mark.parametrize("name,group", [("3a_vanilla/seed0", "3a_vanilla"), ("runs/3a_vanilla/seed_12", "3a_vanilla"),
                                        ("3a_vanilla_s1", "3a_vanilla"), ("3e_combined-seed2", "3e_combined"),
                                        ("quickstart", "quickstart")])
def test_group_name(name, group):
  assert st.group_name(name) == group


def _run(name, seed, **config):
  key = st.configuration_key({"dim": 8, "seed": seed, **config}, {"dataset": "mnist_offline", "workdir": name})
  return {"name": name, "seed": seed, "key": key}


def test_group_runs_that_differ_only_in_seed():
  runs = [_run("3a/seed1", 1), _run("3e/seed0", 0, latent_critics=["fc1"]), _run("3a/seed0", 0),
          _run("3e/seed1", 1, latent_critics=["fc1"]), _run("3a_wide/seed0", 0, dim=16)]
  groups = st.group_runs(runs)
  assert [g["name"] for g in groups] == ["3a", "3e", "3a_wide"]
  assert [[r["seed"] for r in g["runs"]] for g in groups] == [[0, 1], [0, 1], [0]]
  # The workdir (an option of where, not what) does not split a group; the seed is left out of the key.
  assert "seed" not in json.loads(groups[0]["key"]) and "options.workdir" not in json.loads(groups[0]["key"])
  with pytest.raises(ValueError, match="3a/seed0 and 3a_again/seed0 are the same configuration and seed 0"):
    st.group_runs([_run("3a/seed0", 0), _run("3a_again/seed0", 0)])
  # A lone run reported by its basename is still grouped by its path.
  lone = dict(_run("seed0", 0), path="/runs/3a_vanilla/seed0")
  assert [g["name"] for g in st.group_runs([lone])] == ["3a_vanilla"]
  # Two configurations under one name: each is named by its first run.
  named = st.group_runs([_run("x/seed0", 0), _run("x/seed1", 1, dim=4)])
  assert [g["name"] for g in named] == ["x/seed0", "x/seed1"]


def _groups(values: dict) -> tuple[list[dict], callable]:
  """Groups 3a, 3b, ... with per-seed metric values {group: {metric: [v_seed0, v_seed1, ...]}}."""
  groups = [{"name": f"{gid}_run", "runs": []} for gid in values]

  def metric_values(group, metric):
    gid = group["name"].split("_")[0]
    return dict(enumerate(values[gid].get(metric, [])))

  return groups, metric_values


def test_claims_decided_from_seed_paired_differences():
  seed_effect = np.array([0.0, 40.0, -30.0])  # Shared by all runs of a seed.
  fd = lambda base, noise: list(base + seed_effect + np.array(noise))
  values = {
      "3a": {"frechet_distance": fd(300, [0, 1, -1]), "accuracy": [0.95, 0.96, 0.94],
             "recon_frechet_distance": fd(100, [0, 0, 0]), "diversity": [3.5, 3.4, 3.6],
             "seconds_per_generator_step": [0.6, 0.62, 0.61]},
      "3b": {"frechet_distance": fd(400, [2, -2, 0]), "recon_frechet_distance": fd(300, [1, 2, 3])},
      "3c": {"frechet_distance": fd(300, [-20, 25, 3])},  # Could be either side: undecided.
      "3d": {"frechet_distance": fd(360, [0, 2, 1]), "accuracy": [1.0, 1.0, 0.99],  # Worse FD, better accuracy.
             "diversity": [2.4, 2.5, 2.4], "recon_frechet_distance": fd(90, [0, 1, 2])},
      "3e": {"frechet_distance": fd(305, [0, 1, 2]), "accuracy": [0.96, 0.95, 0.95],
             "seconds_per_generator_step": [1.1, 1.08, 1.09]},
      "3f": {"frechet_distance": fd(250, [0, 1, 2]), "accuracy": [0.9, 0.91, 0.92],
             "seconds_per_generator_step": [0.95, 0.96, 0.95]},
  }
  groups, metric_values = _groups(values)
  verdicts = {c.name.split(" (")[0]: st.decide_claim(c, groups, metric_values) for c in st.thesis_claims()}
  assert verdicts["3b poor"]["verdict"] == st.HOLDS
  assert verdicts["3c below 3a"]["verdict"] == st.UNDECIDED
  assert verdicts["3d mixed"]["verdict"] == st.HOLDS
  assert {p["metric"]: p["verdict"] for p in verdicts["3d mixed"]["parts"]} == {
      "accuracy": "better", "frechet_distance": "worse", "diversity": "worse", "recon_frechet_distance": "better"}
  assert verdicts["3e comparable to 3a"]["verdict"] == st.HOLDS  # FD +5 of 300, accuracy within 10%.
  assert verdicts["3e slower than 3a"]["verdict"] == st.HOLDS
  assert verdicts["3f comparable to 3a"]["verdict"] == st.DOES_NOT_HOLD  # FD 50 lower: more than 10% of 300.
  assert verdicts["3f faster than 3e"]["verdict"] == st.HOLDS
  assert verdicts["three critics"]["verdict"] == st.MISSING and verdicts["three critics"]["missing"] == ["3g"]
  fd_part = verdicts["3b poor"]["parts"][0]
  assert fd_part["differences"] == pytest.approx({0: 102.0, 1: 97.0, 2: 101.0})  # The seed effect cancels.
  assert fd_part["interval"]["mean"] == pytest.approx(100.0) and fd_part["interval"]["n"] == 3


def test_one_seed_leaves_every_claim_undecided():
  groups, metric_values = _groups({"3a": {"frechet_distance": [300.0], "accuracy": [0.9]},
                                   "3c": {"frechet_distance": [500.0]}})
  claim = next(c for c in st.thesis_claims() if c.name.startswith("3c"))
  assert st.decide_claim(claim, groups, metric_values)["verdict"] == st.UNDECIDED


def test_timings_pair_only_runs_on_one_cpu():
  # Seed 2's 3e ran on a slower CPU: with it, 3e looks slower than 3a; paired on one CPU, it is not.
  groups, metric_values = _groups({"3a": {"seconds_per_generator_step": [1.0, 1.0, 1.0]},
                                   "3e": {"seconds_per_generator_step": [1.0, 1.01, 3.0]}})
  cpus = {("3a", 2): "Fast CPU", ("3e", 2): "Slow CPU"}
  run_cpu = lambda group, seed: cpus.get((group["name"][:2], seed), "Fast CPU" if seed == 1 else None)
  claim = next(c for c in st.thesis_claims() if c.name == "3e slower than 3a")
  unchecked = st.decide_claim(claim, groups, metric_values)["parts"][0]
  assert set(unchecked["differences"]) == {0, 1, 2} and unchecked["other_cpu_seeds"] == {}
  part = st.decide_claim(claim, groups, metric_values, run_cpu)["parts"][0]
  assert part["differences"] == pytest.approx({0: 0.0, 1: 0.01})  # Seed 0: no CPU recorded by either, kept.
  assert part["other_cpu_seeds"] == {2: "Fast CPU vs Slow CPU"}
  assert part["interval"]["n"] == 2
  # Quality metrics are paired whatever the CPU.
  groups, metric_values = _groups({"3a": {"frechet_distance": [300.0, 310.0, 305.0], "accuracy": [0.9] * 3},
                                   "3e": {"frechet_distance": [301.0, 309.0, 306.0], "accuracy": [0.9] * 3}})
  comparable = next(c for c in st.thesis_claims() if c.name == "3e comparable to 3a")
  assert st.decide_claim(comparable, groups, metric_values, run_cpu)["parts"][0]["interval"]["n"] == 3


def test_seeds_to_decide_is_the_first_seed_count_whose_interval_clears_the_boundary():
  # Differences with mean 1 and standard deviation 2: n seeds give the half-width t(n-1) * 2 / sqrt(n).
  interval = st.Interval(mean=1.0, low=None, high=None, std=2.0, n=3)
  n = st.seeds_to_decide(interval, "above")
  assert st.t_quantile_975(n - 1) * 2 / math.sqrt(n) < 1 <= st.t_quantile_975(n - 2) * 2 / math.sqrt(n - 1)
  assert n == 18
  # 'within' a margin of 1.5: the room is 0.5, so four times as many seeds, about.
  assert st.seeds_to_decide(interval, "within", 1.5) > 4 * (n - 3)
  assert st.seeds_to_decide(interval, "within", 1.0) is None  # The mean on the margin: no count decides it.
  assert st.seeds_to_decide(st.Interval(1.0, None, None, None, 1), "above") is None  # One seed: no spread known.
  assert st.seeds_to_decide(st.Interval(1e-3, None, None, 5.0, 3), "above") is None  # Beyond the cap.


def test_an_undecided_comparison_says_how_many_seeds_would_decide_it():
  part = st.Comparison("3a", "3e", "frechet_distance", "above")
  undecided = st.decide_comparison(part, {0: 10.0, 1: 10.0, 2: 10.0}, {0: 11.0, 1: 13.0, 2: 9.0})
  assert undecided["verdict"] == st.UNDECIDED and undecided["seeds_to_decide"] == 18
  decided = st.decide_comparison(part, {0: 10.0, 1: 10.0, 2: 10.0}, {0: 12.0, 1: 12.5, 2: 11.5})
  assert decided["verdict"] == st.HOLDS and decided["seeds_to_decide"] is None
