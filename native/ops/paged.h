// Paged KV caches (the server's block pool): a cache tensor of blocks x block_size rows shared by
// many sequences, and per sequence a row of a block table (i32, in host memory) naming the block
// that holds each run of block_size positions. kv_store and attention read and write through it.
#pragma once
#include <algorithm>
#include <string>

#include "op.h"

namespace fuselm {

// One sequence's row of a block table; blocks null: a contiguous cache (position p is row p).
struct BlockTable {
  const int32_t* blocks = nullptr;
  int64_t block_size = 0;
  // The cache row of position p.
  int64_t row(int64_t p) const { return blocks ? int64_t(blocks[p / block_size]) * block_size + p % block_size : p; }
  // The end of the run of positions p .. end - 1 that sit in consecutive rows from row(p) on.
  int64_t run_end(int64_t p, int64_t end) const { return blocks ? std::min(end, (p / block_size + 1) * block_size) : end; }
};

// Build-time checks of a node's block table: an i32 table whose row table_row exists, a block
// size > 0 that divides the cache's rows. Nothing is asked of a node without a table.
inline void check_block_table(const Check& c, int table, int cache, int64_t block_size, int64_t table_row) {
  if (!c.has(table)) {
    if (block_size != 0) c.fail("blockSize needs a blockTable");
    return;
  }
  const Tensor& t = c.tensor(table);
  if (t.dtype != DType::I32) c.fail(std::string(c.name(table)) + " must be i32, got " + t.describe());
  if (!t.on_host()) c.fail(std::string(c.name(table)) + " must be in host memory (its entries are checked before each run)");
  if (block_size < 1) c.fail("blockSize must be >= 1 with a blockTable");
  if (c.tensor(cache).rows() % block_size) c.fail(std::string(c.name(cache)) + "'s rows must be a multiple of blockSize " + std::to_string(block_size) + ", got " + c.tensor(cache).describe());
  if (table_row < 0 || table_row >= t.rows()) c.fail("tableRow " + std::to_string(table_row) + " is not a row of " + t.describe());
}

// Run-time checks, on the host's table, before any op runs: positions 0 .. end - 1 fit the
// table's row and every block they use is one of the cache's (never a read or write outside it).
inline void check_block_run(const Node& n, int table, int cache, int64_t block_size, int64_t table_row, int64_t end) {
  const Tensor& t = *n.t[table];
  const int64_t used = (end + block_size - 1) / block_size, blocks = n.t[cache]->rows() / block_size;
  if (used > t.cols())
    throw Error("E_CONTEXT_FULL", "context full: positions 0.." + std::to_string(end - 1) + " need " + std::to_string(used) +
                                      " blocks, the block table holds " + std::to_string(t.cols()));
  const int32_t* row = t.data<int32_t>() + table_row * t.cols();
  for (int64_t b = 0; b < used; b++)
    if (row[b] < 0 || row[b] >= blocks)
      throw Error("E_INVALID_ARG", "block table row " + std::to_string(table_row) + ", entry " + std::to_string(b) + ": block " +
                                       std::to_string(row[b]) + " is not one of the cache's 0.." + std::to_string(blocks - 1));
}

}  // namespace fuselm
