# fuzz_safetensors: the safetensors header parser (and the layout writer,
# through a re-parse property) compiled with the sanitizers, without
# LibTorch: models/io/safetensors_header.cpp needs only nlohmann_json.
find_package(nlohmann_json REQUIRED)
add_executable(fuzz_safetensors ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_safetensors.cpp
               ${QERL_ROOT}/models/io/safetensors_header.cpp)
target_include_directories(fuzz_safetensors PRIVATE ${QERL_ROOT})
target_link_libraries(fuzz_safetensors PRIVATE nlohmann_json::nlohmann_json)
target_compile_options(fuzz_safetensors PRIVATE ${QERL_FUZZ_SANITIZERS} -fno-omit-frame-pointer
                       -Wall -Wextra -Wno-unused-parameter)
target_link_options(fuzz_safetensors PRIVATE ${QERL_FUZZ_SANITIZERS})
