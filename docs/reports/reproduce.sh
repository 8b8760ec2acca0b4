#!/usr/bin/env bash
# The reproduction of the thesis' experiments (Fig. 3a-3f) and a three-critic run at the scale of
# flags/hour_scale.cfg, over seeds: trains what is missing, evaluates it, keeps each finished run's small files in
# the repository and rebuilds docs/reports/reproduction.md from them.
#   bash docs/reports/reproduce.sh                 # the whole campaign: resumes, skips what is done
#   REPORT_ONLY=1 bash docs/reports/reproduce.sh   # only the report, from the committed run files
#   ONLY="3a_vanilla:0 3e_combined:0" bash docs/reports/reproduce.sh   # some runs only
# From the repository root, in the README's venv. Every run trains and is evaluated by the code of one commit,
# $PIN, checked out in a git worktree at $RUNS/code, whatever the repository holds now; E and the evaluation
# classifier are the committed ones in $RESULTS (their SHA-256 are checked). Runs checkpoint and resume: stop the
# script at any time and start it again, on any CPU. JOBS=2 runs two at a time (one trains while one is
# evaluated; measured in docs/reports/reproduction.md). COMMIT=1 commits each finished run's files at once.
set -euo pipefail
REPO=$(git rev-parse --show-toplevel)
PIN=${PIN:-fe796784dc7a89a559136c5d969d4a06e1b350b7}  # The campaign's commit: training and evaluation code.
RUNS=${RUNS:-$REPO/runs/repro_hour}  # Checkpoints and everything large (never committed).
RESULTS=$REPO/docs/reports/reproduction_runs  # Each finished run's small files, committed.
JOBS=${JOBS:-2}
PER_CLASS=${PER_CLASS:-100}  # Chains per class of each evaluation.
ENCODER_SHA256=98598138c86f7fb4d9d641bdc7902d43c38a3f05e0f14484244e415d63454d72  # Checked, not trusted.
EVAL_CLASSIFIER_SHA256=b79eb548353c312a3622685174cbac9118372a160be0f80294227f576a6fec66

# name, flagfile, extra flags: each experiment's own flagfile, then the scale. L_gan is weighted 0.1 wherever the
# experiment has one (3d has none and keeps 0), as in the small-scale report: at this length and Adam step,
# beta_gan = 1 lets the critics dominate G before it has learned to reconstruct.
declare -A FLAGFILE=([3a_vanilla]=vanilla [3c_fc1_full]=fc1_full [3d_fc1_no_gan]=fc1_no_gan
                     [3e_combined]=combined [3f_randomized]=randomized [3g_three_critics]=combined)
declare -A EXTRA=([3a_vanilla]="--beta_gan=0.1" [3c_fc1_full]="--beta_gan=0.1" [3d_fc1_no_gan]=""
                  [3e_combined]="--beta_gan=0.1" [3f_randomized]="--beta_gan=0.1"
                  [3g_three_critics]="--beta_gan=0.1 --latent_critics=fc1,conv3")
# The central claims rest on 3a, 3e and 3f: five seeds each, and they go first. 3b is decided (the small-scale
# report); it is not rerun.
QUEUE="3a_vanilla:0 3e_combined:0 3f_randomized:0 3a_vanilla:1 3e_combined:1 3f_randomized:1
       3a_vanilla:2 3e_combined:2 3f_randomized:2 3a_vanilla:3 3e_combined:3 3f_randomized:3
       3a_vanilla:4 3e_combined:4 3f_randomized:4
       3c_fc1_full:0 3d_fc1_no_gan:0 3g_three_critics:0 3c_fc1_full:1 3d_fc1_no_gan:1 3g_three_critics:1
       3c_fc1_full:2 3d_fc1_no_gan:2 3g_three_critics:2"
# The first seed of 3a and of 3e also judges every kept checkpoint: the curve that chose the scale's G steps.
CURVES="3a_vanilla:0 3e_combined:0"
# What is kept of a run: everything the report reads, nothing large.
SMALL_FILES="summary.json config.json options.json history.json losses.png wasserstein.png evaluation.json
             evaluation_samples.png evaluation_default.json evaluation_default_samples.png quality_vs_time.json
             quality_vs_time.png"

TITLE="Reproducing the thesis' experiments where G draws digits (DIM 16, 2,000 G steps), over seeds"

report() {
  local workdirs=()
  for entry in $QUEUE; do
    local d="$RESULTS/${entry%%:*}/seed${entry##*:}"
    [[ -f "$d/evaluation.json" ]] && workdirs+=("$d")
  done
  if (( ${#workdirs[@]} == 0 )); then  # Nothing judged yet: the rules and the status, no table.
    { echo "# $TITLE"; echo; cat "$REPO/docs/reports/reproduction_notes.md"; echo
      echo "No run of this scale has been judged yet."; } > "$REPO/docs/reports/reproduction.md"
    return
  fi
  # The timing claims: the benchmark's interleaved rounds at this width (python -m ppgn_tf.bench --config=quickstart
  # --experiments=vanilla,combined,randomized,fc1,three_critics --precision=fp32 --repeats=20 --sampler_steps=2).
  (cd "$REPO" && python -m ppgn_tf.report "${workdirs[@]}" --output=docs/reports/reproduction.md \
    --notes=docs/reports/reproduction_notes.md --beside_evaluation=evaluation_default.json \
    --bench=docs/reports/bench/hour_scale.json \
    --title="$TITLE")
}

check_sha256() {  # file, expected
  local got
  got=$(sha256sum "$1" | cut -d' ' -f1)
  [[ "$got" == "$2" ]] || { echo "reproduce.sh: error: $1 has SHA-256 $got, not the campaign's $2" >&2; exit 2; }
}

one_run() {  # NAME:SEED -> trained, evaluated, its small files in $RESULTS/NAME/seedSEED
  local name=${1%%:*} seed=${1##*:}
  local workdir="$RUNS/$name/seed$seed" kept="$RESULTS/$name/seed$seed"
  if [[ -f "$kept/evaluation.json" && -f "$kept/evaluation_default.json" ]]; then echo "$name seed $seed: done"; return; fi
  cd "$RUNS/code"
  echo "$name seed $seed: training ($(date -u +%H:%M))"
  [[ -f "$workdir/summary.json" ]] || python train.py --flagfile="flags/${FLAGFILE[$name]}.cfg" --flagfile=flags/hour_scale.cfg \
    --encoder_dir="$RESULTS/encoder" --seed="$seed" --workdir="$workdir" --verbose=2 --precision=fp32 \
    ${EXTRA[$name]} > "$RUNS/logs/${name}_seed$seed.log" 2>&1
  local evaluate=(python -m ppgn_tf.evaluate --workdir="$workdir" --per_class="$PER_CLASS" --seed="$seed"
                  --eval_classifier_dir="$RESULTS/eval_classifier")
  echo "$name seed $seed: evaluating ($(date -u +%H:%M))"
  # First, for the runs that chose the scale's G steps: every kept checkpoint judged (G(E(x_test)) and the
  # default sampler's samples, in sets of 250 as every other figure: 25 chains per class).
  if [[ " $CURVES " == *" $1 "* && ! -f "$workdir/quality_vs_time.json" ]]; then
    "${evaluate[@]/--per_class=$PER_CLASS/--per_class=25}" --checkpoints \
      --output="$workdir/quality_vs_time.json" >> "$RUNS/logs/${name}_seed$seed.log" 2>&1
  fi
  # The thesis' sampler decides the claims; the default one's figures stand beside them.
  [[ -f "$workdir/evaluation.json" ]] || "${evaluate[@]}" --sampler_preset=thesis \
    --output="$workdir/evaluation.json" >> "$RUNS/logs/${name}_seed$seed.log" 2>&1
  [[ -f "$workdir/evaluation_default.json" ]] || "${evaluate[@]}" --sampler_preset=default \
    --output="$workdir/evaluation_default.json" >> "$RUNS/logs/${name}_seed$seed.log" 2>&1
  mkdir -p "$kept.tmp"
  for f in $SMALL_FILES; do [[ -f "$workdir/$f" ]] && cp "$workdir/$f" "$kept.tmp/"; done
  # The kept options.json names E by its place in the repository (the report groups runs by it), once E's bytes
  # are checked to be the committed ones: the same E, wherever the run found it.
  python - "$kept.tmp/options.json" "$ENCODER_SHA256" <<'PY'
import hashlib, json, os, sys
path, expected = sys.argv[1:]
with open(path) as f:
  options = json.load(f)
with open(os.path.join(options["encoder_dir"], "encoder.keras"), "rb") as f:
  got = hashlib.sha256(f.read()).hexdigest()
if got != expected:
  sys.exit(f"reproduce.sh: error: {options['encoder_dir']} is not the campaign's E (SHA-256 {got})")
options["encoder_dir"] = "docs/reports/reproduction_runs/encoder"
with open(path, "w") as f:
  json.dump(options, f, indent=2)
PY
  rm -rf "$kept" && mv "$kept.tmp" "$kept"  # Whole or not at all.
  echo "$name seed $seed: kept in $kept ($(date -u +%H:%M))"
  if [[ "${COMMIT:-0}" == 1 ]]; then
    # One commit at a time (two runs may finish together); only these paths, whatever else is staged.
    (flock 9
     git -C "$REPO" add "$kept"
     git -C "$REPO" commit -q -m "Reproduction at hour scale: $name seed $seed (trained and evaluated at $PIN)" \
       -- "$kept" || echo "reproduce.sh: warning: could not commit $kept (commit it by hand)" >&2
    ) 9> "$RUNS/commit.lock"
  fi
}

if [[ "${REPORT_ONLY:-0}" == 1 ]]; then report; exit 0; fi
if [[ "${1:-}" == --one ]]; then one_run "$2"; exit 0; fi

check_sha256 "$RESULTS/encoder/encoder.keras" "$ENCODER_SHA256"
check_sha256 "$RESULTS/eval_classifier/eval_classifier.keras" "$EVAL_CLASSIFIER_SHA256"
mkdir -p "$RUNS/logs"
if ! git -C "$RUNS/code" rev-parse HEAD > /dev/null 2>&1; then  # Absent, or left by a clone that is gone.
  rm -rf "$RUNS/code"
  git -C "$REPO" worktree prune
  git -C "$REPO" worktree add --detach "$RUNS/code" "$PIN"
fi
[[ "$(git -C "$RUNS/code" rev-parse HEAD)" == "$(git -C "$REPO" rev-parse "$PIN^{commit}")" ]] || {
  echo "reproduce.sh: error: $RUNS/code is not at the campaign's commit $PIN" >&2; exit 2; }
export RUNS RESULTS PIN PER_CLASS ENCODER_SHA256
echo ${ONLY:-$QUEUE} | tr ' ' '\n' | grep . | xargs -P "$JOBS" -I{} bash "$0" --one {}
report
