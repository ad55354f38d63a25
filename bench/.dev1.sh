timeout 300 vitest run test/cuda 2>&1 | grep -E "×|Test Files|Tests |FAIL" | head -30
node --import tsx bench/attention.ts --reps 30 2>&1 | tail -5
node --import tsx bench/charlm-step.ts --device cuda --steps 30 2>&1 | tail -28
