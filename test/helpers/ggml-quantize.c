/*
 * llama.cpp's own quantizer as a command, for tests comparing fuselm's against it: loads the
 * peer's libggml-base.so (path in argv[1]) and runs its ggml_quantize_chunk (no importance
 * matrix, as `llama-quantize` without --imatrix) on rows of f32 read from stdin, writing the
 * blocks to stdout. Usage: ggml-quantize LIB TYPE_ID ROWS COLS < f32 > blocks
 */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef size_t (*quantize_chunk_fn)(int type, const float* src, void* dst, int64_t start, int64_t nrows, int64_t n_per_row, const float* imatrix);
typedef size_t (*row_size_fn)(int type, int64_t ne);

int main(int argc, char** argv) {
  if (argc != 5) return 2;
  void* lib = dlopen(argv[1], RTLD_NOW);
  if (!lib) { fprintf(stderr, "%s\n", dlerror()); return 1; }
  quantize_chunk_fn quantize = (quantize_chunk_fn)dlsym(lib, "ggml_quantize_chunk");
  row_size_fn row_size = (row_size_fn)dlsym(lib, "ggml_row_size");
  if (!quantize || !row_size) { fprintf(stderr, "missing ggml symbols\n"); return 1; }
  const int type = atoi(argv[2]);
  const int64_t rows = atoll(argv[3]), cols = atoll(argv[4]);
  float* x = malloc(sizeof(float) * rows * cols);
  if (fread(x, sizeof(float), rows * cols, stdin) != (size_t)(rows * cols)) { fprintf(stderr, "short input\n"); return 1; }
  const size_t bytes = row_size(type, cols) * rows;
  void* y = malloc(bytes);
  const size_t n = quantize(type, x, y, 0, rows, cols, NULL);
  if (n != bytes) { fprintf(stderr, "wrote %zu of %zu bytes\n", n, bytes); return 1; }
  fwrite(y, 1, bytes, stdout);
  return 0;
}
