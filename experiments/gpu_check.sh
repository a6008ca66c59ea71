#!/usr/bin/env bash
# Accelerator check (issue 5, part 7): a reduced experiments/bench_scale.py on a GPU, in float64 and in float32,
# written to ONE JSON file. Installs nothing: it runs the checkout with PYTHONPATH=. and needs only jax (GPU build),
# numpy, scipy and scikit-learn. The runs are each bounded by `timeout` and by a common deadline 450 s after the
# start, so the whole script ends within 8 minutes; results of a run cut short are kept part by part.
#
#   bash experiments/gpu_check.sh [OUT.json]     # default: $OUT/gpu_check.json if $OUT is set, else ./gpu_check.json
#
# Runs (in this order, each also cut at the common deadline):
#   float64             KSSL_ENABLE_X64=1: parts a (structured vs dense, N = 4000; the dense path now is
#                       "dense-krylov": jnp Cholesky of K + lam I, triangular solves and the block Krylov
#                       eigensolver, all on the device, against "dense-eigh"),
#                       b (Nystrom m = 2000 at N = 100,000: statistics reduced in kernel columns, block moments
#                       as jnp products on the GPU where the CPU uses BLAS syrk through a callback,
#                       exact vs Nystrom at N = 8000), d (Gram, N = 10,000), f (float32 vs float64 of each path, N = 2000)
#   float32             KSSL_ENABLE_X64=0: parts a, b, d in JAX's float32 with the default matmul precision
#   float32_highest     part f with JAX_DEFAULT_MATMUL_PRECISION=highest: the float32 error without TF32 products
#                       (compare with part f of the float64 run, which uses the default precision)
#   dense_solve         experiments/bench_solve.py at N = 2000: dense-krylov, dense-cholesky (on an accelerator a
#                       jnp Cholesky reduction + eigh), dense-eigh against scikit-learn KernelPCA on the host CPU
#   conv_kernels        experiments/bench_conv_kernels.py: Gram throughput of cnngp / cntk, flatten and gap, N = 2000
#                       digits, float64
#   float64_vs_sklearn  part c, reduced: kssl against scikit-learn KernelPCA / Nystroem + PCA (on the host CPU) at
#                       N = 8000, time to the best scikit-learn accuracy
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_FILE="${1:-${OUT:-.}/gpu_check.json}"
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
START=$(date +%s)

python - <<'EOF'
import jax
print("jax", jax.__version__, "backend", jax.default_backend(), "devices", jax.devices(), flush=True)
EOF

DEADLINE=450  # seconds after START by which every run has ended (8 min = 480 s, minus the merge and margins)
EXTRA="${BENCH_ARGS:-}"  # e.g. BENCH_ARGS="--quick" for a smoke run; appended last, so it overrides the sizes

run() {  # name, seconds, env..., -- bench_scale arguments...
  local name="$1" limit="$2"; shift 2
  local envs=()
  while [[ "$1" != "--" ]]; do envs+=("$1"); shift; done
  shift
  local left=$(( DEADLINE - ($(date +%s) - START) ))
  (( limit > left )) && limit=$left
  if (( limit < 20 )); then echo "=== $name skipped: ${left}s left"; return; fi
  echo "=== $name (limit ${limit}s, elapsed $(( $(date +%s) - START ))s)"
  # shellcheck disable=SC2086  # EXTRA is a list of arguments
  env "${envs[@]}" timeout --kill-after=5 "$limit" \
    python experiments/bench_scale.py "$@" --timeout "$limit" --json "$TMP/$name.json" $EXTRA
  echo "=== $name exit $? after $(( $(date +%s) - START ))s"
}

# Most important first: a run cut by the deadline loses only what comes last (part c: scikit-learn on the host).
run float64 200 KSSL_ENABLE_X64=1 -- --parts a b d f --f-sources 500 --f-views 4 --repeats 2
run float32 100 KSSL_ENABLE_X64=0 -- --parts a b d --repeats 2
run float32_highest 50 KSSL_ENABLE_X64=1 JAX_DEFAULT_MATMUL_PRECISION=highest -- --parts f --f-sources 500 --f-views 4
# The dense closed form against KernelPCA (issue 14): one size, two repeats; printed, not merged into the JSON.
left=$(( DEADLINE - ($(date +%s) - START) )); limit=$(( left < 60 ? left : 60 ))
if (( limit >= 20 )); then
  echo "=== dense_solve (limit ${limit}s)"
  KSSL_ENABLE_X64=1 timeout --kill-after=5 "$limit" python experiments/bench_solve.py --sizes 2000 --repeats 2
  echo "=== dense_solve exit $? after $(( $(date +%s) - START ))s"
fi
# Convolutional kernels (issue 12): pairs of images per second at N = 2000 digits.
left=$(( DEADLINE - ($(date +%s) - START) )); limit=$(( left < 60 ? left : 60 ))
if (( limit >= 20 )); then
  echo "=== conv_kernels (limit ${limit}s)"
  KSSL_ENABLE_X64=1 timeout --kill-after=5 "$limit" python experiments/bench_conv_kernels.py --n 2000 --repeats 1 \
    --json "$TMP/conv_kernels.json"
  echo "=== conv_kernels exit $? after $(( $(date +%s) - START ))s"
fi
# Part c reduced to the configurations that decided the CPU comparison (docs/scaling.md); the full sweep takes 20 min.
run float64_vs_sklearn 120 KSSL_ENABLE_X64=1 -- --parts c --repeats 2 --c-kssl-m 200 500 --c-kssl-dims 128 \
  --c-kssl-dims-m 500 --c-nystroem-m 100 --c-nystroem-dims 256 --c-nystroem-dims-m 1000 --c-kpca-dims 128 \
  --c-kpca-fit 2000

python - "$TMP" "$OUT_FILE" "$START" <<'EOF'
import json, os, sys, time
tmp, out, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
merged = {"script": "experiments/gpu_check.sh", "wall_seconds": time.time() - start, "runs": {}}
for name in ("float64", "float32", "float32_highest", "conv_kernels", "float64_vs_sklearn"):
    path = os.path.join(tmp, name + ".json")
    merged["runs"][name] = json.load(open(path)) if os.path.exists(path) else {"error": "no result (timed out early?)"}
os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
json.dump(merged, open(out, "w"), indent=1)
print("wrote", out, "after", round(merged["wall_seconds"]), "s")
EOF
