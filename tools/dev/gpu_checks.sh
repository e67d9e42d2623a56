#!/usr/bin/env bash
# The GPU checks in one prepared run: the device-parametrised tests on CUDA, then the GPU benchmarks
# (benchmarks/gpu_train.py, benchmarks/gpu_extract.py, benchmarks/serve_load.py). Logs go to
# ${OUT:-work_dirs/gpu_checks}.
#   tools/dev/gpu_checks.sh eager      # tests + eager benchmarks (about 2 minutes on an H200)
#   tools/dev/gpu_checks.sh serve      # the embeddings service with the model on the GPU (about 4 minutes)
#   tools/dev/gpu_checks.sh compiled   # torch.compile'd benchmarks (about 5 minutes, mostly compilation)
# Needs ../shared beside the repo (the tests' vocab), as CI does. Each step has its own time limit, so
# one that hangs does not take the others' results with it.
set -u
stage=${1:-eager}
out=${OUT:-work_dirs/gpu_checks}
mkdir -p "$out"
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

step() {  # step NAME SECONDS COMMAND...: run, log to $out/NAME.log, say how it ended
    local name=$1 limit=$2; shift 2
    local start=$SECONDS
    timeout "$limit" "$@" > "$out/$name.log" 2>&1
    local rc=$?
    echo "== $name rc=$rc $((SECONDS - start))s" | tee -a "$out/summary.txt"
    tail -n 25 "$out/$name.log"
}

if [ "$stage" = eager ]; then
    { nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
      python3 -c 'import sys, torch, transformers; print(sys.version.split()[0], torch.__version__, transformers.__version__)'
      nproc; } > "$out/machine.txt" 2>&1
    cat "$out/machine.txt"
    step tests 120 python3 -m pytest -q -p no:cacheprovider -k "cuda or meta" \
        tests/test_models/test_device_general.py tests/test_models/test_text_encoder.py \
        tests/test_models/test_text_tower_compile.py tests/test_serving/test_serving_endpoints.py
    step train_eager 100 python3 benchmarks/gpu_train.py --modes eager
    step extract_eager 80 python3 benchmarks/gpu_extract.py --modes eager
elif [ "$stage" = serve ]; then
    step serve_image 170 python3 benchmarks/serve_load.py --device cuda --kind image --requests 1024 \
        --max-seconds 10 --soak 2000 --soak-seconds 10
    step serve_text 150 python3 benchmarks/serve_load.py --device cuda --kind text --requests 2048 \
        --max-seconds 10 --soak 2000 --soak-seconds 10
else
    step train_compiled 240 python3 benchmarks/gpu_train.py --modes compiled
    step extract_compiled 120 python3 benchmarks/gpu_extract.py --modes compiled
fi
