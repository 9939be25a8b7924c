#!/usr/bin/env bash
# Peak RSS and wall of `mrs prepare amazon2023` on a non-official benchmark csv (streamed in blocks,
# mrs/prep/csvstream.py) at full size and at a 5M-row prefix, and (given REF, a prepared dataset of
# the same csv made by an earlier version) whether the output is identical to it.
#   [SETS="--set memory_mb=512"] experiments/scale/csv_stream.sh CSV WORK [REF]
# e.g. experiments/scale/csv_stream.sh /tmp/az5c/Synth_Fashion.5core.csv /tmp/s16 /tmp/az5c/out
# SETS: extra arguments for both prepares (DuckDB's memory_limit; the default 2048 MB is filled
# before DuckDB spills, so below it the peak still rises with the data).
set -euo pipefail
CSV=$1 WORK=$2 REF=${3:-}
PY=${PY:-.venv/bin/python}
mkdir -p "$WORK"
head -n 5000001 "$CSV" > "$WORK/az5c_5m.csv"          # header + the first 5M rows
for name in full 5m; do
  src=$CSV; [ "$name" = 5m ] && src=$WORK/az5c_5m.csv
  out=$WORK/az5c_out_$name
  rm -rf "$out"
  echo "== $name: $(wc -l < "$src") lines ${SETS:-}; loadavg before: $(cat /proc/loadavg)"
  nice -n 10 /usr/bin/time -v "$PY" -m mrs prepare amazon2023 --reviews "$src" --out "$out" ${SETS:-} \
      > "$WORK/prepare_$name.log" 2>&1
  grep -E "users, .* items, .* interactions|Elapsed \(wall|Maximum resident|Exit status" "$WORK/prepare_$name.log"
  echo "loadavg after: $(cat /proc/loadavg)"
  if [ "$name" = full ] && [ -n "$REF" ]; then
    "$PY" experiments/scale/same_prepared.py "$REF" "$out" || echo "not identical to $REF"
  fi
  rm -rf "$out"
done
rm -f "$WORK/az5c_5m.csv"
