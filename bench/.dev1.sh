timeout 200 vitest run test/cuda/attention.test.ts 2>&1 | grep -E "✓|×|Error|passed|failed|against" | head -40
node --import tsx bench/charlm-step.ts --device cuda --steps 30 --only "reference regular bf16" 2>&1 | tail -7
c="large reference regular bf16"
ncu --profile-from-start off --cache-control none --clock-control none --metrics gpu__time_duration.sum,dram__bytes.sum,launch__grid_size,launch__block_size --csv node --import tsx bench/ncu-step.ts --only "$c" > $OUT/large_bf16.csv 2> $OUT/large_bf16.err
