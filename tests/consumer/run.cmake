# Installs the built package into SCRATCH_DIR/prefix, then configures, builds and runs
# tests/consumer (the README's library example) against it with find_package(ember) and,
# separately, pkg-config, on the installed demo model. Its greedy continuation must be
# the installed run-model's with no -m and --temp 0.
file(REMOVE_RECURSE ${SCRATCH_DIR})
set(prefix ${SCRATCH_DIR}/prefix)
set(model ${prefix}/share/ember/models/demo-fortunes-7m-q8_0.gguf)
set(prompt "The meaning of life is")

# The README's library example is this program and its CMakeLists.txt, verbatim.
file(READ ${EMBER_SOURCE_DIR}/README.md readme)
file(READ ${EMBER_SOURCE_DIR}/tests/consumer/main.cpp program)
file(STRINGS ${EMBER_SOURCE_DIR}/tests/consumer/CMakeLists.txt cmake_lines REGEX "^[^#]")
list(JOIN cmake_lines "\n" cmake_text)
# (A function, not a foreach: its named argument keeps the program's semicolons.)
function(expect_in_readme text)
  string(FIND "${readme}" "${text}" found)
  if(found EQUAL -1)
    message(FATAL_ERROR "README.md's library example is not tests/consumer's:\n${text}")
  endif()
endfunction()
expect_in_readme("```cpp\n${program}```")
expect_in_readme("```cmake\n${cmake_text}\n```")

function(run_step)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT code EQUAL 0)
    message(FATAL_ERROR "step failed (${code}): ${ARGN}\n${out}\n${err}")
  endif()
  set(step_output "${out}" PARENT_SCOPE)
  set(step_error "${err}" PARENT_SCOPE)
endfunction()

run_step(${CMAKE_COMMAND} --install ${EMBER_BUILD_DIR} --prefix ${prefix})
foreach(installed ${model} ${prefix}/share/ember/models/README.md ${prefix}/bin/run-model)
  if(NOT EXISTS ${installed})
    message(FATAL_ERROR "the install lacks ${installed}")
  endif()
endforeach()

# The installed run-model, with no -m, runs the demo model installed beside it.
run_step(${prefix}/bin/run-model -p ${prompt} -n 16 --temp 0)
set(run_model_text "${step_output}")
string(FIND "${step_error}" "${model} (llama," loaded)
if(loaded EQUAL -1)
  message(FATAL_ERROR "the installed run-model did not load the demo model:\n${step_error}")
endif()

run_step(${CMAKE_COMMAND} -S ${EMBER_SOURCE_DIR}/tests/consumer -B ${SCRATCH_DIR}/build -DCMAKE_PREFIX_PATH=${prefix}
         -DCMAKE_BUILD_TYPE=Release)
run_step(${CMAKE_COMMAND} --build ${SCRATCH_DIR}/build)
run_step(${SCRATCH_DIR}/build/consumer ${model} ${prompt})
message(STATUS "consumer: ${step_output}")
string(LENGTH "${prompt}" prompt_length)
string(LENGTH "${step_output}" output_length)
math(EXPR continuation_length "${output_length} - ${prompt_length} - 1")  # less the closing newline
if(NOT step_output MATCHES "^${prompt}" OR continuation_length LESS 1)
  message(FATAL_ERROR "the consumer did not continue the prompt: '${step_output}'")
endif()
if(NOT step_output STREQUAL run_model_text)
  message(FATAL_ERROR "the consumer's greedy text differs from run-model --temp 0's:\n'${step_output}'\n'${run_model_text}'")
endif()

# The pkg-config route: compile the same program with the flags ember.pc gives.
find_program(PKG_CONFIG pkg-config REQUIRED)
set(ENV{PKG_CONFIG_PATH} ${prefix}/lib/pkgconfig:${prefix}/lib/x86_64-linux-gnu/pkgconfig)
run_step(${PKG_CONFIG} --cflags --libs --static ember)
string(STRIP "${step_output}" flags)
separate_arguments(flags UNIX_COMMAND "${flags}")
run_step(c++ ${EMBER_SOURCE_DIR}/tests/consumer/main.cpp ${flags} -o ${SCRATCH_DIR}/consumer_pkgconfig)
run_step(${SCRATCH_DIR}/consumer_pkgconfig ${model} ${prompt})
if(NOT step_output STREQUAL run_model_text)
  message(FATAL_ERROR "the pkg-config build printed '${step_output}', not '${run_model_text}'")
endif()
