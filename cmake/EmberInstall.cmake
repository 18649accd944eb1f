install(TARGETS ember ember_openmp EXPORT emberTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY include/ember DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT emberTargets NAMESPACE ember:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/ember)

include(CMakePackageConfigHelpers)
configure_package_config_file(cmake/ember-config.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/ember-config.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/ember)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/ember-config-version.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/ember-config.cmake ${CMAKE_CURRENT_BINARY_DIR}/ember-config-version.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/ember)

# The .pc file finds its prefix relative to itself, so `cmake --install --prefix X` works.
file(RELATIVE_PATH EMBER_PC_TO_PREFIX "/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/")
# The Vulkan module opens libvulkan.so.1 with dlopen (in libc itself from glibc 2.34).
set(EMBER_PC_LIBS_PRIVATE "")
if(EMBER_HAVE_VULKAN AND CMAKE_DL_LIBS)
  set(EMBER_PC_LIBS_PRIVATE "-l${CMAKE_DL_LIBS}")
endif()
# The OpenMP runtime the library was built against (CMakeLists.txt, ember_openmp).
set(EMBER_PC_OPENMP_LIBS "-fopenmp")
if(EMBER_LIBOMP)
  set(EMBER_PC_OPENMP_LIBS "${EMBER_LIBOMP} -pthread")
endif()
configure_file(cmake/ember.pc.in ${CMAKE_CURRENT_BINARY_DIR}/ember.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/ember.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
