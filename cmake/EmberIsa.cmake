# Hand-written SIMD kernels live in files named *_avx2.cpp, *_avxvnni.cpp, *_avx512.cpp,
# *_avx512vnni.cpp and *_avx512bf16.cpp. Each is compiled
# for its own instruction set whatever EMBER_NATIVE says, and the dispatcher picks one at
# run time from CPUID, so a portable build still runs the AVX-512 kernels where they exist.
set(EMBER_AVX2_FLAGS -mavx2 -mfma -mf16c)
set(EMBER_AVX512_FLAGS -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma -mf16c)
set(EMBER_AVXVNNI_FLAGS ${EMBER_AVX2_FLAGS} -mavxvnni)
set(EMBER_AVX512VNNI_FLAGS ${EMBER_AVX512_FLAGS} -mavx512vnni)
set(EMBER_AVX512BF16_FLAGS ${EMBER_AVX512_FLAGS} -mavx512bf16)

function(ember_isa_sources)
  foreach(src IN LISTS ARGN)
    if(src MATCHES "_avx512vnni\\.cpp$")
      set_source_files_properties(${src} PROPERTIES COMPILE_OPTIONS "${EMBER_AVX512VNNI_FLAGS}")
    elseif(src MATCHES "_avx512bf16\\.cpp$")
      set_source_files_properties(${src} PROPERTIES COMPILE_OPTIONS "${EMBER_AVX512BF16_FLAGS}")
    elseif(src MATCHES "_avxvnni\\.cpp$")
      set_source_files_properties(${src} PROPERTIES COMPILE_OPTIONS "${EMBER_AVXVNNI_FLAGS}")
    elseif(src MATCHES "_avx512\\.cpp$")
      set_source_files_properties(${src} PROPERTIES COMPILE_OPTIONS "${EMBER_AVX512_FLAGS}")
    elseif(src MATCHES "_avx2\\.cpp$")
      set_source_files_properties(${src} PROPERTIES COMPILE_OPTIONS "${EMBER_AVX2_FLAGS}")
    endif()
  endforeach()
endfunction()
