# fuzz_tokenizer: the tokenizer.json / tokenizer_config.json loaders and
# encode/decode through whatever loads, compiled with the sanitizers from the
# models/tokenizer sources (no LibTorch): needs nlohmann_json and PCRE2.
find_package(nlohmann_json REQUIRED)
if(NOT TARGET pcre2::pcre2)
  find_path(PCRE2_INCLUDE_DIR pcre2.h REQUIRED)
  find_library(PCRE2_LIBRARY pcre2-8 REQUIRED)
  add_library(pcre2::pcre2 UNKNOWN IMPORTED)
  set_target_properties(pcre2::pcre2 PROPERTIES IMPORTED_LOCATION ${PCRE2_LIBRARY}
                        INTERFACE_INCLUDE_DIRECTORIES ${PCRE2_INCLUDE_DIR}
                        INTERFACE_COMPILE_DEFINITIONS PCRE2_CODE_UNIT_WIDTH=8)
endif()
file(GLOB QERL_TOKENIZER_SOURCES CONFIGURE_DEPENDS ${QERL_ROOT}/models/tokenizer/*.cpp
     ${QERL_ROOT}/models/tokenizer/detail/*.cpp)
add_executable(fuzz_tokenizer ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_tokenizer.cpp ${QERL_TOKENIZER_SOURCES})
target_include_directories(fuzz_tokenizer PRIVATE ${QERL_ROOT})
target_link_libraries(fuzz_tokenizer PRIVATE nlohmann_json::nlohmann_json pcre2::pcre2)
target_compile_options(fuzz_tokenizer PRIVATE ${QERL_FUZZ_SANITIZERS} -fno-omit-frame-pointer
                       -Wall -Wextra -Wno-unused-parameter)
target_link_options(fuzz_tokenizer PRIVATE ${QERL_FUZZ_SANITIZERS})
