// Importance matrices (llama-imatrix's output) for qkv quantize --imatrix:
// per matrix, the mean of the squared activations each of its columns met
// while the model ran on calibration text. The weighted quantizers
// (ops::TypeInfo::from_float_weighted) spend their precision where those are large.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace qkv {

struct ImportanceMatrix {
  // Tensor name -> values: ne0 per matrix (more than one for a 3-D tensor of
  // experts, one matrix after another), already divided by their counts.
  std::map<std::string, std::vector<float>> entries;
  std::vector<std::string> datasets;  // the calibration files it was computed on, where it says
  int chunks = 0;                     // how many chunks of text (0: not given)
  int chunk_size = 0;                 // tokens per chunk (GGUF's imatrix.chunk_size; 0: not given)

  // What the file holds before the division, for adding files together (qkv
  // imatrix --in-file). GGUF: sum2 (ne0 per matrix), sum (likewise; empty
  // where the file has no NAME.in_sum), counts (one per matrix), calls -1.
  // Legacy .dat: sum2 is the stored means times the calls, sum and counts
  // are empty, calls is the entry's call count (chunks of a size the file
  // does not record).
  struct Sums {
    std::vector<float> sum2, sum, counts;
    int calls = -1;
  };
  std::map<std::string, Sums> sums;

  const std::vector<float>* find(const std::string& tensor) const {
    const auto it = entries.find(tensor);
    return it == entries.end() ? nullptr : &it->second;
  }
};

// Reads either format llama-quantize reads: GGUF (llama-imatrix's default
// since 2025: tensors NAME.in_sum2, sums of squares, (ne0, n_mat), and
// NAME.counts, (1, n_mat), with imatrix.datasets, imatrix.chunk_count and
// imatrix.chunk_size), each matrix's sums divided by its count (a count of 0,
// a matrix that met no input: all 1, as llama-quantize); or the legacy .dat
// (int32 entry count; per entry int32 name length, the name, int32 calls,
// int32 value count, the f32 values, which are divided by the calls; then
// optionally int32 chunk count, int32 length and the dataset's name).
// Throws qkv::Error naming the file, the entry and what is wrong with it (a
// truncated file, a negative or non-finite value, sums without counts, ...).
ImportanceMatrix load_imatrix(const std::string& path);

}  // namespace qkv
