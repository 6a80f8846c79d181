# Per-file compile flags. Only the element-wise MiniLM kernels get -O3 -ffast-math, so GCC
# vectorises erff/expf through glibc's libmvec; everything else keeps strict IEEE semantics.
set_source_files_properties(${CMAKE_SOURCE_DIR}/src/minilm_kernels.c
                            PROPERTIES COMPILE_OPTIONS "-O3;-ffast-math")
