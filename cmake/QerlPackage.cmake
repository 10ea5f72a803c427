# qerl as a package for plugin authors: the generated plugin ABI header,
# the qerl::plugin target (in the tree and, through `cmake --install`, in a
# prefix), and the install rules:
#
#   <prefix>/include/qerl/...        the headers a plugin compiles against
#   <prefix>/lib/libqerl_{runtime,dsl,payloads}.so
#   <prefix>/lib/cmake/qerl/         qerlConfig.cmake + qerlConfigVersion.cmake
#   <prefix>/bin/qerl-run
#
# An out-of-tree plugin then needs two lines (examples/plugins/dapo_filter):
#   find_package(qerl REQUIRED)
#   target_link_libraries(my_stages PRIVATE qerl::plugin)
include(CMakePackageConfigHelpers)
include(GNUInstallDirs)
include(${CMAKE_CURRENT_LIST_DIR}/QerlPluginAbi.cmake)

set(QERL_VERSION 0.1.0)

# The plugin API's roots; everything they include from the tree is covered
# by the ABI version and installed.
qerl_generate_plugin_abi_header(runtime/plugin_api.hpp actors/payloads.hpp actors/payload_wire.hpp)
message(STATUS "qerl plugin ABI version ${QERL_PLUGIN_ABI_VERSION}")
target_include_directories(qerl_include INTERFACE $<BUILD_INTERFACE:${PROJECT_BINARY_DIR}/generated>)

# In the tree, qerl::plugin is the libraries themselves.
add_library(qerl_plugin INTERFACE)
target_link_libraries(qerl_plugin INTERFACE qerl_runtime qerl_dsl qerl_payloads)
add_library(qerl::plugin ALIAS qerl_plugin)

# --- install ---------------------------------------------------------------
set(_qerl_include_dir ${CMAKE_INSTALL_INCLUDEDIR}/qerl)
foreach(header IN LISTS QERL_PLUGIN_ABI_HEADERS)
  get_filename_component(dir ${header} DIRECTORY)
  install(FILES ${PROJECT_SOURCE_DIR}/${header} DESTINATION ${_qerl_include_dir}/${dir})
endforeach()
install(FILES ${QERL_PLUGIN_ABI_HEADER} DESTINATION ${_qerl_include_dir}/runtime)

# Installed binaries find each other next to themselves; LibTorch keeps the
# absolute rpath its link options give (the wheel qerl was built with).
set_target_properties(qerl_runtime qerl_dsl qerl_payloads PROPERTIES INSTALL_RPATH "$ORIGIN")
set_target_properties(qerl-run PROPERTIES INSTALL_RPATH "$ORIGIN/../${CMAKE_INSTALL_LIBDIR}")
install(TARGETS qerl_runtime qerl_dsl qerl_payloads
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS qerl-run RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# The package: LibTorch exactly as qerl uses it (a plugin must share qerl's
# torch), read from the qerl_torch target.
foreach(property INCLUDE_DIRECTORIES LINK_LIBRARIES LINK_OPTIONS COMPILE_DEFINITIONS)
  get_target_property(QERL_TORCH_${property} qerl_torch INTERFACE_${property})
  if(NOT QERL_TORCH_${property})
    set(QERL_TORCH_${property} "")
  endif()
endforeach()
set(_qerl_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/qerl)
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/qerlConfig.cmake.in
  ${PROJECT_BINARY_DIR}/package/qerlConfig.cmake
  INSTALL_DESTINATION ${_qerl_cmake_dir}
  PATH_VARS CMAKE_INSTALL_INCLUDEDIR CMAKE_INSTALL_LIBDIR)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/package/qerlConfigVersion.cmake
  VERSION ${QERL_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/package/qerlConfig.cmake ${PROJECT_BINARY_DIR}/package/qerlConfigVersion.cmake
        DESTINATION ${_qerl_cmake_dir})
