export NCCL_NVLS_ENABLE=0
QERL_BUILD_TARGETS="engine_bench qerl_generate_tests qerl_kernels_cuda_tests qerl_nn_tests" bash scripts/build_cuda_host.sh debs -DCMAKE_BUILD_TYPE=Release > $OUT/build.log 2>&1 || { tail -40 $OUT/build.log; exit 1; }
export LD_LIBRARY_PATH=$PWD/debs/prefix/usr/lib/x86_64-linux-gnu:$LD_LIBRARY_PATH
echo "== kernel tests (decoder ops)"; build-cuda/tests/kernels/qerl_kernels_cuda_tests -tc="fused*" 2>&1 | tail -4
echo "== nn tests (CUDA)"; build-cuda/tests/models/nn/qerl_nn_tests -tc="SparseMoe on CUDA*" 2>&1 | tail -3
echo "== generation tests"; OMP_NUM_THREADS=4 build-cuda/tests/models/generate/qerl_generate_tests 2>&1 | tail -3
python3 scripts/hf_generate_bench.py pipelines/bench/a27b_config.json build-cuda/hf.json --batches 32,128 --new 32 > $OUT/hf.txt 2>&1
build-cuda/bench/engine_bench --hf build-cuda/hf.json --batches 32,128 > $OUT/engine.txt 2>&1; sed -n '/| scheme/,$p' $OUT/engine.txt
for s in bf16 nvfp4; do timeout 150 ncu --nvtx --nvtx-include "qerl decode step/" --metrics gpu__time_duration.sum --csv build-cuda/bench/engine_bench --profile $s --batches 32 > $OUT/ncu_$s.csv 2> $OUT/ncu_$s.err; echo "== ncu $s"; python3 bench/ncu_kernels.py $OUT/ncu_$s.csv | head -22 || tail -5 $OUT/ncu_$s.err; done
