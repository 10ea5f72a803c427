# qerl-model: checkpoint inspection, scoring, generation and init (see
# tools/qerl_model.cpp). Included from tools/CMakeLists.txt; the parity tests
# under tests/models/nn run it.
add_executable(qerl-model ${CMAKE_CURRENT_LIST_DIR}/qerl_model.cpp)
target_link_libraries(qerl-model PRIVATE qerl_generate qerl_quant qerl_nn qerl_model_io qerl_tokenizer qerl_common CLI11::CLI11)
target_precompile_headers(qerl-model REUSE_FROM qerl_nn)
# Compile as PIC (not PIE) so that qerl_nn's precompiled header is valid here.
set_target_properties(qerl-model PROPERTIES POSITION_INDEPENDENT_CODE OFF)
target_compile_options(qerl-model PRIVATE -fPIC)
