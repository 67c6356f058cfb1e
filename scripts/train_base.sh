#!/usr/bin/env bash
# Re-create the shipped pretrained base (the SD 1.5 stand-in; docs/REPRODUCTION.md "The pretrained base").
#
#   bash scripts/train_base.sh OUT [SHARDS] [VAE_STEPS] [UNET_STEPS]
#
# 1. SHARDS synthetic face sets of SUBJECTS (250) subjects x 2 frames at 64 px (seeds 1000 + shard), rendered in
#    parallel (the packaged ICT face model; JP_FACE_MODEL names another);
# 2. the VAE (configs/train/base_vae.yaml, RGB only) on the first quarter of the shards;
# 3. the UNet (configs/train/base_unet.yaml) on every shard over the frozen VAE;
# 4. the VAE decoder fine-tuned on RGB + depth, encoder frozen (configs/train/base_vae_decoder.yaml);
# 5. the fp16 pack (scripts/pack_base.py) in OUT/base and a sample sheet OUT/base_samples.png.
# JP (default: jointportrait) is the command; PYTHON (default: python) runs the pack script.
# Optional caps in minutes: VAE_MINUTES, UNET_MINUTES, DEC_MINUTES (train.max_minutes; the steps reached are
# logged), or in steps: VAE_STOP, UNET_STOP, DEC_STOP (train.stop_at_step; the LR schedule still spans the
# *_STEPS), which repeat a time-capped run on any machine. DEC_STEPS (6000), DEC_BATCH (64) set step 4.
set -euo pipefail
OUT=${1:?usage: train_base.sh OUT [SHARDS] [VAE_STEPS] [UNET_STEPS]}
SHARDS=${2:-14}
SUBJECTS=${SUBJECTS:-250}
VAE_STEPS=${3:-3000}
UNET_STEPS=${4:-20000}
JP=${JP:-jointportrait}
PYTHON=${PYTHON:-python}
FACE=${JP_FACE_MODEL:-ict}
HERE=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT/data"
start=$(date +%s)

for i in $(seq 0 $((SHARDS - 1))); do
  [ -f "$OUT/data/shard$i/manifest.jsonl" ] && continue
  rm -rf "$OUT/data/shard$i"
  $JP synth --out "$OUT/data/shard$i" --subjects "$SUBJECTS" --frames-per-subject 2 --size 64 --face-model "$FACE" \
    --seed $((1000 + i)) --threads 1 > "$OUT/data/shard$i.log" 2>&1 &
done
wait
echo "data: $(( $(date +%s) - start )) s"

sources() {  # YAML list of the shards [first, last)
  local s="[" i
  for i in $(seq "$1" $(($2 - 1))); do s="$s{root: $OUT/data/shard$i},"; done
  echo "${s%,}]"
}
VAE_SHARDS=$(( (SHARDS + 3) / 4 ))

resume() { [ -n "$(ls -d "$1"/checkpoint-* 2>/dev/null)" ] && echo "--resume latest" || true; }

t=$(date +%s)
if [ ! -f "$OUT/vae/final/config.json" ]; then
  $JP train --config "$HERE/configs/train/base_vae.yaml" --output-dir "$OUT/vae" $(resume "$OUT/vae") \
    --set "data.datasets=$(sources 0 $VAE_SHARDS)" --set train.max_steps="$VAE_STEPS" \
    --set train.max_minutes="${VAE_MINUTES:-null}" --set train.stop_at_step="${VAE_STOP:-null}"
fi
echo "vae: $(( $(date +%s) - t )) s"

t=$(date +%s)
if [ ! -f "$OUT/unet/final/model_index.json" ]; then
  $JP train --config "$HERE/configs/train/base_unet.yaml" --output-dir "$OUT/unet" $(resume "$OUT/unet") \
    --set model.vae="$OUT/vae" --set "data.datasets=$(sources 0 "$SHARDS")" \
    --set train.max_steps="$UNET_STEPS" --set train.max_minutes="${UNET_MINUTES:-null}" \
    --set train.stop_at_step="${UNET_STOP:-null}"
fi
echo "unet: $(( $(date +%s) - t )) s"

t=$(date +%s)
if [ ! -f "$OUT/vae_decoder/final/config.json" ]; then
  $JP train --config "$HERE/configs/train/base_vae_decoder.yaml" --output-dir "$OUT/vae_decoder" \
    $(resume "$OUT/vae_decoder") --set model.vae="$OUT/vae" --set "data.datasets=$(sources 0 $VAE_SHARDS)" \
    --set train.batch_size="${DEC_BATCH:-64}" --set train.max_steps="${DEC_STEPS:-6000}" \
    --set train.max_minutes="${DEC_MINUTES:-null}" --set train.stop_at_step="${DEC_STOP:-null}"
fi
echo "vae decoder: $(( $(date +%s) - t )) s"

$PYTHON "$HERE/scripts/pack_base.py" "$OUT/unet/final" "$OUT/base" --vae "$OUT/vae_decoder" \
  --sheet "$OUT/base_samples.png" \
  --device "$($PYTHON -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')"
echo "total: $(( $(date +%s) - start )) s"
