#!/usr/bin/env bash
# A Clothing_Shoes_and_Jewelry-sized raw review file (66,033,346 lines) from a smaller
# `mrs synth --format amazon2023` file, for bench_prepare_amazon2023.py at full size.
# `mrs synth` holds a whole dataset in memory, and at 66M lines it outgrew this 24 GB machine,
# so the full-size file is the SRC file repeated: copy 0 as is, copy k >= 1 with every user_id,
# asin and parent_asin suffixed "Zk" (new users and new items, same timestamps and text), the
# last copy cut to the line count. From the 20M-line synth file (6.85M users, 2.19M items) this
# gives ~22.6M users and ~7.2M items over 66.0M lines: Clothing's raw sizes.
#   bash experiments/scale/make_clothing_fullsize.sh /tmp/az12/raw20m/Synth_Fashion.jsonl /tmp/az66/Synth_Fashion.jsonl
set -euo pipefail
SRC=$1; OUT=$2; N=${3:-66033346}
mkdir -p "$(dirname "$OUT")"
n_src=$(wc -l < "$SRC")
tmp="$OUT.part"; : > "$tmp"
left=$N; k=0
while [ "$left" -gt 0 ]; do
  take=$(( left < n_src ? left : n_src ))
  if [ "$k" -eq 0 ]; then head -n "$take" "$SRC" >> "$tmp"
  else head -n "$take" "$SRC" | sed -e "s/\"asin\":\"\([^\"]*\)\",\"parent_asin\":\"\([^\"]*\)\"/\"asin\":\"\1Z$k\",\"parent_asin\":\"\2Z$k\"/" \
        -e "s/\"user_id\":\"\([^\"]*\)\"/\"user_id\":\"\1Z$k\"/" >> "$tmp"; fi
  left=$(( left - take )); k=$(( k + 1 ))
done
mv "$tmp" "$OUT"
echo "$OUT: $(wc -l < "$OUT") lines from $k copies of $SRC ($n_src lines)"
