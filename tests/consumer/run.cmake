# Installs the built library into SCRATCH_DIR/prefix, then configures, builds and runs
# tests/consumer against it with find_package(ember) and, separately, pkg-config.
file(REMOVE_RECURSE ${SCRATCH_DIR})
set(prefix ${SCRATCH_DIR}/prefix)

function(run_step)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT code EQUAL 0)
    message(FATAL_ERROR "step failed (${code}): ${ARGN}\n${out}\n${err}")
  endif()
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

run_step(${CMAKE_COMMAND} --install ${EMBER_BUILD_DIR} --prefix ${prefix})
run_step(${CMAKE_COMMAND} -S ${EMBER_SOURCE_DIR}/tests/consumer -B ${SCRATCH_DIR}/build -DCMAKE_PREFIX_PATH=${prefix}
         -DCMAKE_BUILD_TYPE=Release)
run_step(${CMAKE_COMMAND} --build ${SCRATCH_DIR}/build)
run_step(${SCRATCH_DIR}/build/consumer)
message(STATUS "${step_output}")

# The pkg-config route: compile the same program with the flags ember.pc gives.
find_program(PKG_CONFIG pkg-config REQUIRED)
set(ENV{PKG_CONFIG_PATH} ${prefix}/lib/pkgconfig:${prefix}/lib/x86_64-linux-gnu/pkgconfig)
run_step(${PKG_CONFIG} --cflags --libs --static ember)
string(STRIP "${step_output}" flags)
separate_arguments(flags UNIX_COMMAND "${flags}")
run_step(c++ ${EMBER_SOURCE_DIR}/tests/consumer/main.cpp ${flags} -o ${SCRATCH_DIR}/consumer_pkgconfig)
run_step(${SCRATCH_DIR}/consumer_pkgconfig)
