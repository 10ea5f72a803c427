# Third-party dependencies. Debian packages (scripts/setup.sh installs them)
# or, on a CUDA host without apt, the same packages unpacked into a prefix
# given through CMAKE_PREFIX_PATH (scripts/build_cuda_host.sh).

find_package(tomlplusplus REQUIRED)
find_package(spdlog REQUIRED)
find_package(fmt REQUIRED)
find_package(nlohmann_json REQUIRED)
find_package(CLI11 REQUIRED)
find_package(Threads REQUIRED)
# PCRE2 (8-bit code units, UTF-8 mode): Python-compatible `re:` patterns and
# the tokenizer's split rule. Found by path so an unpacked prefix works too.
find_path(PCRE2_INCLUDE_DIR pcre2.h REQUIRED)
find_library(PCRE2_LIBRARY pcre2-8 REQUIRED)
add_library(pcre2::pcre2 UNKNOWN IMPORTED)
set_target_properties(pcre2::pcre2 PROPERTIES IMPORTED_LOCATION ${PCRE2_LIBRARY}
                      INTERFACE_INCLUDE_DIRECTORIES ${PCRE2_INCLUDE_DIR}
                      INTERFACE_COMPILE_DEFINITIONS PCRE2_CODE_UNIT_WIDTH=8)

# CAF 0.17 ships no CMake package in Debian: find headers and libraries.
find_path(CAF_INCLUDE_DIR caf/all.hpp REQUIRED)
find_library(CAF_CORE_LIBRARY caf_core REQUIRED)
add_library(caf::core UNKNOWN IMPORTED)
set_target_properties(caf::core PROPERTIES IMPORTED_LOCATION ${CAF_CORE_LIBRARY}
                      INTERFACE_INCLUDE_DIRECTORIES ${CAF_INCLUDE_DIR}
                      INTERFACE_LINK_LIBRARIES Threads::Threads)
# caf::io: the network layer (middleman) of multi-process runs (issue 17).
find_library(CAF_IO_LIBRARY caf_io REQUIRED)
add_library(caf::io UNKNOWN IMPORTED)
set_target_properties(caf::io PROPERTIES IMPORTED_LOCATION ${CAF_IO_LIBRARY}
                      INTERFACE_LINK_LIBRARIES caf::core)

if(QERL_TESTS)
  find_package(doctest REQUIRED)
endif()

# LibTorch from the torch==2.11.0 wheel. The CPU build links torch_cpu + c10
# only (no CUDA toolchain needed at configure time); QERL_CUDA uses the full
# TorchConfig with CUDA.
if(NOT QERL_PYTHON)
  find_program(QERL_PYTHON NAMES python3 REQUIRED)
endif()
execute_process(
  COMMAND ${QERL_PYTHON} -c "import os,torch;print(os.path.dirname(torch.__file__));print(torch.utils.cmake_prefix_path);print(torch.__version__)"
  OUTPUT_VARIABLE _torch_info OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _torch_rc)
if(NOT _torch_rc EQUAL 0)
  message(FATAL_ERROR "torch is not importable by ${QERL_PYTHON}: run scripts/setup.sh")
endif()
string(REPLACE "\n" ";" _torch_info "${_torch_info}")
list(GET _torch_info 0 TORCH_PY_DIR)
list(GET _torch_info 1 TORCH_CMAKE_PREFIX)
list(GET _torch_info 2 TORCH_PY_VERSION)
message(STATUS "LibTorch ${TORCH_PY_VERSION} from ${TORCH_PY_DIR}")

# Both builds link the real libraries (torch_cpu + c10, and with QERL_CUDA
# torch_cuda + c10_cuda), never the wheel's thin libtorch.so wrapper: that
# wrapper exports its own std::filesystem symbols, which then interpose on
# libstdc++'s and crash (seen: remove_all at exit on an H200 host).
find_library(TORCH_CPU_LIBRARY torch_cpu PATHS ${TORCH_PY_DIR}/lib NO_DEFAULT_PATH REQUIRED)
find_library(C10_LIBRARY c10 PATHS ${TORCH_PY_DIR}/lib NO_DEFAULT_PATH REQUIRED)
add_library(qerl_torch INTERFACE)
target_include_directories(qerl_torch SYSTEM INTERFACE
  ${TORCH_PY_DIR}/include ${TORCH_PY_DIR}/include/torch/csrc/api/include)
target_link_options(qerl_torch INTERFACE "-Wl,-rpath,${TORCH_PY_DIR}/lib")
if(QERL_CUDA)
  enable_language(CUDA)
  find_package(CUDAToolkit REQUIRED)
  find_library(TORCH_CUDA_LIBRARY torch_cuda PATHS ${TORCH_PY_DIR}/lib NO_DEFAULT_PATH REQUIRED)
  find_library(C10_CUDA_LIBRARY c10_cuda PATHS ${TORCH_PY_DIR}/lib NO_DEFAULT_PATH REQUIRED)
  # --no-as-needed: nothing references torch_cuda by name, but loading it
  # registers the CUDA hooks (device count, CUDA tensors).
  target_link_libraries(qerl_torch INTERFACE "-Wl,--no-as-needed" ${TORCH_CUDA_LIBRARY}
                        "-Wl,--as-needed" ${C10_CUDA_LIBRARY} ${TORCH_CPU_LIBRARY} ${C10_LIBRARY}
                        CUDA::cudart)
  target_compile_definitions(qerl_torch INTERFACE QERL_CUDA=1)
else()
  target_link_libraries(qerl_torch INTERFACE ${TORCH_CPU_LIBRARY} ${C10_LIBRARY})
endif()
