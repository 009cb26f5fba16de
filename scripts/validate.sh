#!/usr/bin/env bash
# Long physics validations (minutes): the long versions of the acceptance claims whose CI-sized
# versions tests/acceptance.rs asserts. Prints each test's figures and one PASS/FAIL line per
# claim; exits non-zero if any claim fails. (The PIC-scale study, learned vs tracks vs theory on
# 3·10⁵-particle PIC runs, is scripts/pic-study.sh.)
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --tests --bins --quiet || exit 1

failed=0
# claim "description" test-binary filter [--ignored]: run the test, show its figures, judge it.
claim() {
  local what=$1 bin=$2 filter=$3
  shift 3
  local out
  if out=$(cargo test --release --test "$bin" -- "$filter" --exact "$@" --nocapture --test-threads=1 2>&1) \
    && grep -q "test result: ok. 1 passed" <<<"$out"; then
    verdict=PASS
  else
    verdict=FAIL
    failed=1
  fi
  grep -E "relative L2|rel L2|l1_norm|ratio|worst|s/epoch|panicked" <<<"$out" | sed 's/^/    /'
  echo "$verdict  $what"
}

claim "par-perp recovers the truth within 5% (noise-free) and beats tensor on the held-out ring" \
  recovery par_perp_recovers_the_truth_without_noise_and_generalises_better_than_tensor
claim "par-perp recovers the truth within 20% from 3e5-particle noisy counts" \
  recovery par_perp_recovers_the_truth_from_noisy_counts
claim "conservative scheme with nonnegative_d recovers the truth within 5%" \
  recovery conservative_scheme_and_nonnegative_d_recover_the_truth
claim "whole-run rollouts are at least as accurate as the curriculum" \
  recovery whole_run_rollout_is_at_least_as_accurate_as_the_curriculum
claim "3D par-perp recovers the truth within 5% over 0.5 <= |v| <= 3, noise-free (25^3, configs/synth3d.yaml + train3d.yaml)" \
  recovery_3d par_perp_recovers_a_3d_operator_without_noise_at_full_size --ignored
claim "3D par-perp recovers the truth within 20% from 3e5-particle noisy counts (25^3)" \
  recovery_3d par_perp_recovers_a_3d_operator_from_noisy_counts_at_full_size --ignored
claim "learned operator within 15% of the colop theory operator it was drawn from (3e5 particles)" \
  acceptance learned_operator_is_within_15_percent_of_the_theory_it_was_drawn_from
claim "learned operator beats the particle-track estimates on the same PIC run" \
  acceptance learned_operator_beats_the_particle_track_estimates_on_the_same_pic_run
claim "conditioned model on a held-out parameter within 1.5x of a single-run fit (41x41, width 32)" \
  validate_models conditioned_model_interpolates_to_a_held_out_parameter --ignored
claim "time-dependent model recovers linear growth within 10% (41x41, 4000 epochs)" \
  validate_models time_dependent_model_recovers_linear_growth --ignored
claim "kernel model within 2x of par-perp (51x51, 2300 epochs)" \
  validate_models kernel_model_is_within_twice_par_perp --ignored
exit $failed
