#!/usr/bin/env bash
# Device check of the recsys package (issue 5). Installs nothing.
#
#   OUT=/some/dir bash scripts/gpu_check.sh          # PYTHON=... to pick the interpreter
#
# 1. env.txt          python / torch versions, CUDA device (or why none)
# 2. agreement.json   CPU vs CUDA: item hashing (exact), and the loss and every parameter
#                     gradient of each method on one fixed batch (same weights, same
#                     negatives); fails if a relative difference exceeds 1e-4
# 3. throughput.json  training examples/second per method, one epoch of the synthetic
#                     default data on the device (and a short CPU run for comparison)
# 4. compare/         `python -m recsys compare` on the synthetic default data on the device
#                     (3 seeds, 1 epoch, sampled/inbatch/mixed/full): results.json, .md, .png
# Without CUDA every step runs on the CPU with small sizes (the fallback path), so the
# script itself can be tested anywhere. Total budget: about 8 minutes on an H200; each
# step has its own timeout (60 + 90 + 120 + 200 s at most).
# Exit status: 0 if every step passed, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
status=0
log() { echo "[gpu_check] $*" | tee -a "$OUT/summary.txt" >&2; }

log "python: $PYTHON; output: $OUT"
if ! timeout 60 "$PYTHON" - > "$OUT/env.txt" 2>&1 <<'PY'
import importlib, platform, sys
print("python", sys.version.split()[0], platform.machine())
missing = []
for name in ("numpy", "scipy", "pandas", "torch", "tqdm", "matplotlib"):
    try:
        mod = importlib.import_module(name)
        print(name, getattr(mod, "__version__", "?"))
    except Exception as exc:  # report, do not install
        missing.append(name)
        print(name, "MISSING:", exc)
import torch
print("cuda_available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("device", torch.cuda.get_device_name(0), "torch.version.cuda", torch.version.cuda)
if missing:
    sys.exit(f"missing packages: {missing} (this script installs nothing)")
PY
then
    log "environment check FAILED (see env.txt)"; cat "$OUT/env.txt" >&2; exit 1
fi
cat "$OUT/env.txt" >&2
if grep -q "cuda_available True" "$OUT/env.txt"; then DEVICE=cuda; else DEVICE=cpu; fi
log "device for the checks: $DEVICE"

# ------------------------------------------------------------------ 2. CPU/CUDA agreement
if timeout 90 "$PYTHON" - "$OUT/agreement.json" "$DEVICE" <<'PY'
import json, sys
import torch
from recsys.model import TwoTower, hash_ids
from recsys.negatives import (full_softmax_candidates, in_batch_candidates,
                              mixed_candidates, sampled_softmax_candidates)
from recsys.losses import sampled_softmax_loss

out_path, device = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
n_items, batch, n_neg, tau = 500, 64, 32, 0.05
gen = torch.Generator().manual_seed(1)
history = torch.randint(-1, n_items, (batch, 30), generator=gen)
target = torch.randint(0, n_items, (batch,), generator=gen)
negatives = torch.randint(0, n_items, (n_neg,), generator=gen)
p = torch.rand(n_items, generator=gen, dtype=torch.float64) + 0.1
p = p / p.sum()

def run(dev):
    model = TwoTower(rng=0).to(dev)
    h, t, neg, pp = history.to(dev), target.to(dev), negatives.to(dev), p.to(dev)
    out = {}
    for method in ("full", "sampled", "inbatch", "mixed"):
        model.zero_grad()
        u = model.user_vector(h)
        if method == "full":
            cs = full_softmax_candidates(t, model.item_vector(torch.arange(n_items, device=dev)))
        elif method == "sampled":
            both = model.item_vector(torch.cat([t, neg]))
            cs = sampled_softmax_candidates(t, both[:batch], neg, both[batch:], catalog_size=n_items)
        elif method == "inbatch":
            cs = in_batch_candidates(t, model.item_vector(t), pp[t])
        else:
            both = model.item_vector(torch.cat([t, neg]))
            cs = mixed_candidates(t, both[:batch], pp[t], neg, both[batch:], pp[neg],
                                  catalog_size=n_items)
        loss = sampled_softmax_loss(u, cs.candidates, cs.labels, cs.log_q, mask=cs.mask,
                                    temperature=tau, q_unit=cs.q_unit)
        loss.backward()
        out[method] = (loss.detach().cpu(), [q.grad.detach().cpu().clone() for q in model.parameters()])
    rows = torch.stack([hash_ids(torch.arange(-5, 100_000, device=dev), s, 1000) for s in model.salts])
    return out, rows.cpu()

ref, ref_rows = run("cpu")
report = {"device": device, "tolerance_relative": 1e-4, "methods": {}}
ok = True
if device == "cuda":
    dev_out, dev_rows = run("cuda")
    report["hash_rows_identical"] = bool(torch.equal(ref_rows, dev_rows))
    ok &= report["hash_rows_identical"]
    for method, (loss, grads) in ref.items():
        dloss, dgrads = dev_out[method]
        loss_rel = float((loss - dloss).abs() / loss.abs().clamp_min(1e-12))
        grad_rel = max(float((a - b).norm() / a.norm().clamp_min(1e-12)) for a, b in zip(grads, dgrads))
        passed = loss_rel <= 1e-4 and grad_rel <= 1e-4
        ok &= passed
        report["methods"][method] = {"loss_cpu": float(loss), "loss_cuda": float(dloss),
                                     "loss_rel_diff": loss_rel, "max_grad_rel_diff": grad_rel,
                                     "passed": passed}
else:
    report["skipped"] = "no CUDA device: CPU losses only (fallback path)"
    for method, (loss, grads) in ref.items():
        finite = bool(torch.isfinite(loss)) and all(bool(torch.isfinite(g).all()) for g in grads)
        ok &= finite
        report["methods"][method] = {"loss_cpu": float(loss), "finite": finite}
report["passed"] = bool(ok)
json.dump(report, open(out_path, "w"), indent=1)
print(json.dumps(report, indent=1))
sys.exit(0 if ok else 1)
PY
then log "agreement: passed"; else log "agreement: FAILED"; status=1; fi

# ------------------------------------------------------------------------ 3. throughput
if [ "$DEVICE" = cuda ]; then SIZE="3000 1500 80"; else SIZE="400 300 40"; fi
if timeout 120 "$PYTHON" - "$OUT/throughput.json" "$DEVICE" $SIZE <<'PY'
import json, sys, time
import torch
from recsys.data import make_examples, synthetic_movielens
from recsys.model import TwoTower
from recsys.train import TrainConfig, train_model

out_path, device = sys.argv[1], sys.argv[2]
n_users, n_items, mean = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
torch.set_num_threads(1)
data = synthetic_movielens(n_users, n_items, mean_ratings=mean, rng=0)
ex = make_examples(data)
report = {"device": device, "n_examples": ex.n_examples, "n_items": data.n_items, "runs": []}
short = ex.take(torch.randperm(ex.n_examples, generator=torch.Generator().manual_seed(0))[:5120].numpy())
for dev, examples in ((device, ex), ("cpu", short)):
    for method in ("sampled", "inbatch", "mixed", "full"):
        model = TwoTower(rng=0)
        t0 = time.perf_counter()
        res = train_model(model, examples, data.n_items, TrainConfig(method=method), rng=0,
                          device=dev, progress=False)
        row = {"device": dev, "method": method, "examples": res.n_examples_seen,
               "examples_per_second": res.examples_per_second,
               "wall_seconds": time.perf_counter() - t0, "final_loss": res.epoch_loss[-1]}
        report["runs"].append(row)
        print(row, flush=True)
    if dev == "cpu":
        break
json.dump(report, open(out_path, "w"), indent=1)
PY
then log "throughput: done"; else log "throughput: FAILED"; status=1; fi

# ------------------------------------------------------------------------ 4. comparison
if [ "$DEVICE" = cuda ]; then
    ARGS=(--seeds 3 --epochs 1)
else
    ARGS=(--seeds 2 --epochs 1 --synthetic-users 300 --synthetic-items 200
          --synthetic-ratings 40 --threads 1 --folds 4)
fi
if timeout 200 "$PYTHON" -m recsys compare --data synthetic \
        --methods sampled,inbatch,mixed,full --device "$DEVICE" --no-progress \
        "${ARGS[@]}" --out "$OUT/compare" > "$OUT/compare.txt" 2>&1; then
    log "comparison: done"; cat "$OUT/compare.txt" >&2
else
    log "comparison: FAILED"; tail -20 "$OUT/compare.txt" >&2; status=1
fi
log "exit status $status"
exit $status
