export NCCL_NVLS_ENABLE=0
QERL_EXTRA_TARGETS="qerl_generate_tests qerl_nn_tests" QERL_PIPELINE_TIMEOUT=200 bash bench/gpu_pipeline.sh debs > $OUT/pipeline.txt 2>&1; echo "pipeline script exit $?"
export LD_LIBRARY_PATH=$PWD/debs/prefix/usr/lib/x86_64-linux-gnu:$LD_LIBRARY_PATH
echo "== nn tests (CUDA)"; build-cuda/tests/models/nn/qerl_nn_tests -tc="SparseMoe on CUDA*" 2>&1 | grep -E "ERROR|CHECK|test cases|assertions" | head -20
echo "== generation tests (CUDA)"; OMP_NUM_THREADS=4 build-cuda/tests/models/generate/qerl_generate_tests -tc="*CUDA*" 2>&1 | grep -E "ERROR|CHECK|test cases|assertions|values" | head -30
tail -16 $OUT/pipeline.txt
