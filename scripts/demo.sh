#!/usr/bin/env bash
# `make demo`: prepare the offline digits data, train the quickstart recipe, test it and run inference.
set -euo pipefail
VENV="${1:-.venv}"
CLSCTL="$VENV/bin/clsctl"
RUN=runs/quickstart

if [ ! -d data/digits/train ]; then
  "$CLSCTL" prepare-data digits data/digits
fi
rm -rf "$RUN"  # a fresh run each time, so the log and plots describe this run only

start=$(date +%s)
"$CLSCTL" train recipes/quickstart.yaml --overwrite  # a previous demo run is moved to runs/quickstart.old-<time>
"$CLSCTL" test "$RUN/best.pt" --out "$RUN/predictions.json" --no-per-class
three=$(ls -d data/digits/val/3/*.png | head -n 1)
seven=$(ls -d data/digits/val/7/*.png | head -n 1)
"$CLSCTL" infer "$three" "$seven" --checkpoint "$RUN/best.pt" --topk 3
end=$(date +%s)

plots=()
if "$CLSCTL" analyze-logs --help >/dev/null 2>&1; then
  "$CLSCTL" analyze-logs plot-curve "$RUN/metrics.jsonl" --keys loss --out "$RUN/loss.png" >/dev/null
  "$CLSCTL" analyze-logs plot-curve "$RUN/metrics.jsonl" --keys accuracy/top1 --out "$RUN/top1.png" >/dev/null
  plots+=("$RUN/loss.png" "$RUN/top1.png")
fi
if "$CLSCTL" confusion-matrix --help >/dev/null 2>&1; then
  "$CLSCTL" confusion-matrix "$RUN/predictions.json" --out "$RUN/confusion.png" >/dev/null
  plots+=("$RUN/confusion.png")
fi

echo
echo "train + test + infer took $((end - start)) s"
echo "run folder:  $RUN"
echo "checkpoint:  $RUN/best.pt (and $RUN/last.pt)"
echo "metrics log: $RUN/metrics.jsonl"
echo "predictions: $RUN/predictions.json"
for plot in "${plots[@]}"; do echo "plot:        $plot"; done
