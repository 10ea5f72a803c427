export NCCL_NVLS_ENABLE=0
QERL_BUILD_TARGETS="qerl_generate_tests qerl_nn_tests" bash scripts/build_cuda_host.sh debs -DCMAKE_BUILD_TYPE=Release > $OUT/build.log 2>&1 || { grep -B3 -A12 "error:" $OUT/build.log | head -40; exit 1; }
export LD_LIBRARY_PATH=$PWD/debs/prefix/usr/lib/x86_64-linux-gnu:$LD_LIBRARY_PATH
echo "== nn tests (CUDA)"; build-cuda/tests/models/nn/qerl_nn_tests -tc="SparseMoe on CUDA*" 2>&1 | grep -E "ERROR|values|test cases|assertions" | head -20
echo "== generation tests (CUDA)"; OMP_NUM_THREADS=4 build-cuda/tests/models/generate/qerl_generate_tests 2>&1 | grep -E "ERROR|values|test cases|assertions" | head -40
