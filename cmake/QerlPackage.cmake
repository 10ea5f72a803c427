# qerl as a package for plugin authors: the generated plugin ABI header and
# the qerl::plugin target that plugins link.
include(${CMAKE_CURRENT_LIST_DIR}/QerlPluginAbi.cmake)

# The plugin API's roots; everything they include from the tree is covered
# by the ABI version.
qerl_generate_plugin_abi_header(runtime/plugin_api.hpp actors/payloads.hpp)
message(STATUS "qerl plugin ABI version ${QERL_PLUGIN_ABI_VERSION}")
target_include_directories(qerl_include INTERFACE $<BUILD_INTERFACE:${PROJECT_BINARY_DIR}/generated>)

# In the tree, qerl::plugin is the libraries themselves.
add_library(qerl_plugin INTERFACE)
target_link_libraries(qerl_plugin INTERFACE qerl_runtime qerl_dsl qerl_payloads)
add_library(qerl::plugin ALIAS qerl_plugin)
