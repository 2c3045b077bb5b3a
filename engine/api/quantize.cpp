// quantize_model (qkv.hpp): GGUF or llama2.c .bin in, GGUF out.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "engine/api/model_files.h"
#include "engine/api/qkv.hpp"
#include "engine/error.h"
#include "engine/format/gguf.h"
#include "engine/format/gguf_writer.h"
#include "engine/format/imatrix.h"
#include "engine/format/mapped_file.h"
#include "engine/format/weight_file.h"

namespace qkv {
namespace {

struct Source {  // one tensor to write
  std::string name;
  std::vector<int64_t> ne;
  const ops::TypeInfo* src;
  const void* data;
  const ops::TypeInfo* dst;
  const std::vector<float>* importance = nullptr;  // the importance matrix's entry, when it is used
  int64_t rows() const {
    int64_t r = 1;
    for (size_t d = 1; d < ne.size(); ++d) r *= ne[d];
    return r;
  }
};

}  // namespace

std::string quantize_type_names() { return file_type_names(); }
bool is_quantize_type(const std::string& name) { return find_file_type(name) != nullptr; }

void quantize_model(const std::string& in, const std::string& out, const QuantizeParams& params,
                    const MessageCallback& on_message) {
  const FileType* target = find_file_type(params.type);
  if (!target)
    throw Error(cat("quantize: type '", params.type, "' is not one of ", file_type_names()), Errc::InvalidArgument);
  if (in == out) throw Error("quantize: the output must not overwrite the input", Errc::InvalidArgument);
  if (!params.imatrix_path.empty() && params.imatrix_path == out)
    throw Error("quantize: the output must not overwrite the importance matrix", Errc::InvalidArgument);
  std::unique_ptr<GgufWriter> writer;
  std::vector<Source> tensors;
  std::unique_ptr<GgufFile> gguf;
  std::unique_ptr<WeightFile> bin;
  int n_layers = 0, n_gqa = 1;  // for the mixes that treat layers differently
  auto named_type = [&](const std::string& flag, const std::string& name) -> const ops::TypeInfo* {
    if (name.empty()) return nullptr;
    const ops::TypeInfo* t = ops::find_type(name);
    if (!t || !t->from_float) throw Error(cat("quantize: ", flag, " '", name, "' is not a type qkv writes (", ops::writable_type_names(), ")"), Errc::InvalidArgument);
    return t;
  };
  TypePlanner::Options options;
  options.pure = params.pure;
  options.output_type = named_type("--output-tensor-type", params.output_tensor_type);
  options.embedding_type = named_type("--token-embedding-type", params.token_embedding_type);
  ImportanceMatrix imatrix;
  if (!params.imatrix_path.empty()) {
    imatrix = load_imatrix(params.imatrix_path);
    if (on_message)
      on_message(cat("importance matrix: ", imatrix.entries.size(), " entries from ", params.imatrix_path,
                     imatrix.chunks > 0 ? cat(", computed on ", imatrix.chunks, " chunks") : std::string()));
  }
  // llama-quantize's record of it, after general.file_type.
  auto add_imatrix_keys = [&](GgufWriter& w) {
    if (imatrix.entries.empty()) return;
    w.add_string("quantize.imatrix.file", params.imatrix_path.substr(0, 127));
    if (!imatrix.datasets.empty()) w.add_string("quantize.imatrix.dataset", imatrix.datasets[0].substr(0, 127));
    w.add_i32("quantize.imatrix.entries_count", int32_t(imatrix.entries.size()));
    if (imatrix.chunks > 0) w.add_i32("quantize.imatrix.chunks_count", int32_t(imatrix.chunks));
  };
  auto source = [&](const std::string& name, std::vector<int64_t> ne, const ops::TypeInfo& src_type, const void* data) {
    tensors.push_back({name, std::move(ne), &src_type, data, nullptr});
  };

  if (read_file_head(in, 4) == "GGUF") {
    gguf = std::make_unique<GgufFile>(in);
    // llama-quantize's metadata: the source's keys in their order, then the
    // quantization version and the file type (moved to the end when present).
    const GgufValue* align = gguf->find("general.alignment");
    writer = std::make_unique<GgufWriter>(align && align->type == GgufType::U32 ? uint32_t(align->u) : 32u);
    for (const std::string& key : gguf->key_order()) {
      if (key == "general.file_type" || key == "general.quantization_version") continue;
      writer->add_value(key, *gguf->find(key));
    }
    writer->add_u32("general.quantization_version", 2);
    writer->add_u32("general.file_type", uint32_t(target->ftype));
    add_imatrix_keys(*writer);
    const std::string arch = gguf->has("general.architecture") ? gguf->get_string("general.architecture") : "llama";
    n_layers = int(gguf->get_uint(arch + ".block_count").value_or(0));
    const int64_t heads = int64_t(gguf->get_uint(arch + ".attention.head_count").value_or(1));
    const int64_t kv_heads = int64_t(gguf->get_uint(arch + ".attention.head_count_kv").value_or(uint64_t(heads)));
    n_gqa = kv_heads > 0 ? int(heads / kv_heads) : 1;
    for (const GgufTensorInfo& ti : gguf->tensors()) {
      const ops::TypeInfo* type = ops::find_type(ti.ggml_type);
      if (!type || !type->to_float)
        throw Error(cat(in, ": tensor ", ti.name, " has type ", ops::type_name(ti.ggml_type), ", which qkv cannot read"));
      const Tensor t = gguf->tensor(ti);
      source(ti.name, std::vector<int64_t>(ti.ne, ti.ne + ti.n_dims), *type, t.data);
    }
  } else {
    bin = open_llama2c_bin(in);
    if (params.tokenizer_path.empty()) throw Error(cat(in, ": a llama2.c model needs its tokenizer (-z)"));
    ModelConfig c;
    c.dim = int(*bin->get_uint("llama.embedding_length"));
    c.hidden_dim = int(*bin->get_uint("llama.feed_forward_length"));
    c.n_layers = int(*bin->get_uint("llama.block_count"));
    c.n_heads = int(*bin->get_uint("llama.attention.head_count"));
    c.n_kv_heads = int(*bin->get_uint("llama.attention.head_count_kv"));
    c.context_length = int(*bin->get_uint("llama.context_length"));
    c.vocab_size = int(*bin->get_uint("llama.vocab_size"));
    c.head_dim = c.dim / c.n_heads;
    c.rope_base = float(*bin->get_float("llama.rope.freq_base"));
    c.rms_eps = float(*bin->get_float("llama.attention.layer_norm_rms_epsilon"));
    const Vocab vocab = load_llama2c_vocab(params.tokenizer_path, c.vocab_size);
    writer = std::make_unique<GgufWriter>();
    add_llama_metadata(*writer, c, "converted by qkv quantize", target->ftype);
    add_vocab_metadata(*writer, vocab);
    add_imatrix_keys(*writer);
    n_layers = c.n_layers;
    n_gqa = c.n_kv_heads > 0 ? c.n_heads / c.n_kv_heads : 1;
    std::vector<std::string> names = {"token_embd.weight", "output_norm.weight"};
    for (int l = 0; l < c.n_layers; ++l)
      for (const char* n : {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up",
                            "ffn_down"})
        names.push_back(cat("blk.", l, ".", n, ".weight"));
    if (bin->find("output.weight")) names.push_back("output.weight");
    for (const std::string& n : names) {
      const Tensor& t = *bin->find(n);
      source(n, std::vector<int64_t>(t.ne, t.ne + t.n_dims), t.info(), t.data);
    }
  }
  GgufWriter& w = *writer;

  // In llama-quantize's order, which its per-layer rules count in.
  std::stable_sort(tensors.begin(), tensors.end(),
                   [](const Source& a, const Source& b) { return llama_tensor_before(a.name, b.name); });
  std::vector<std::string> names;
  for (const Source& s : tensors) names.push_back(s.name);
  TypePlanner planner(*target, names, n_layers, n_gqa, options);
  for (Source& s : tensors) {
    std::string note;
    ops::Type dst = planner.next(s.name, int(s.ne.size()), s.ne[0], s.src->type, &note);
    if (!note.empty() && on_message) on_message(note);
    if (s.src->compute == ops::Compute::Integer && s.src->type != dst && !params.allow_requantize &&
        ops::type_info(dst).compute == ops::Compute::Integer)
      throw Error(cat(in, ": tensor ", s.name, " is quantized already (", s.src->name, "); requantizing it to ",
                      ops::type_name(dst), " loses precision: quantize the F32/F16 original, or allow it (--allow-requantize)"),
                  Errc::InvalidArgument);
    s.dst = &ops::type_info(dst);
    if (s.dst != s.src && !s.dst->from_float)
      throw Error(cat("quantize: tensor ", s.name, " would be ", s.dst->name, ", which qkv cannot write yet"), Errc::InvalidArgument);
    if (s.dst == s.src || !s.dst->from_float_weighted || imatrix.entries.empty()) continue;
    s.importance = imatrix.find(s.name);
    if (!s.importance) {
      if (on_message) on_message(cat("no importance matrix entry for ", s.name, ": quantized without"));
      continue;
    }
    // One ne0 per matrix: llama-quantize's rule (ne0 * ne2 for a 3-D tensor).
    const int64_t matrices = s.ne.size() > 2 ? s.rows() / s.ne[1] : 1;
    if (int64_t(s.importance->size()) != s.ne[0] * matrices)
      throw Error(cat(params.imatrix_path, ": importance matrix entry ", s.name, " has ", s.importance->size(),
                      " values; the tensor's ", matrices, " matrix(es) of rows of ", s.ne[0], " need ", s.ne[0] * matrices),
                  Errc::InvalidArgument);
  }

  for (const Source& s : tensors)
    w.add_tensor(s.name, uint32_t(s.dst->type), s.ne, uint64_t(s.dst->row_bytes(s.ne[0])) * uint64_t(s.rows()));
  std::vector<float> row;
  double mib_in = 0, mib_out = 0;
  w.write(out, [&](size_t i, std::vector<uint8_t>& bytes) {
    const Source& s = tensors[i];
    if (on_message) {
      std::string shape;
      for (size_t d = 0; d < s.ne.size(); ++d) shape += (d ? ", " : "") + std::to_string(s.ne[d]);
      const double before = double(s.src->row_bytes(s.ne[0])) * double(s.rows()) / (1 << 20);
      const double after = double(s.dst->row_bytes(s.ne[0])) * double(s.rows()) / (1 << 20);
      mib_in += before;
      mib_out += after;
      char line[512];
      std::snprintf(line, sizeof line, "[%4zu/%4zu] %-32s [%s] %s -> %s, %.2f MiB -> %.2f MiB", i + 1, tensors.size(),
                    s.name.c_str(), shape.c_str(), s.src->name, s.dst->name, before, after);
      on_message(line);
    }
    const int64_t n = s.ne[0], rows = s.rows();
    const size_t src_rb = s.src->row_bytes(n), dst_rb = s.dst->row_bytes(n);
    bytes.resize(dst_rb * size_t(rows));
    row.resize(size_t(n));
    const uint8_t* src = static_cast<const uint8_t*>(s.data);
    for (int64_t r = 0; r < rows; ++r) {
      if (s.src == s.dst) {
        std::copy(src + r * src_rb, src + (r + 1) * src_rb, bytes.data() + r * dst_rb);
        continue;
      }
      s.src->to_float(src + r * src_rb, row.data(), size_t(n));
      if (s.importance)  // the importances of this row's matrix
        s.dst->from_float_weighted(row.data(), bytes.data() + r * dst_rb, size_t(n), s.importance->data() + size_t(r / s.ne[1] * n));
      else
        s.dst->from_float(row.data(), bytes.data() + r * dst_rb, size_t(n));
    }
  });
  if (on_message) {
    char total[160];
    std::snprintf(total, sizeof total, "model size: %.2f MiB -> %.2f MiB", mib_in, mib_out);
    on_message(total);
    on_message(cat("wrote ", out, " (", tensors.size(), " tensors, ", target->name, params.pure ? ", pure" : "", ")"));
  }
}

}  // namespace qkv
