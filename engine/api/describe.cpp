// describe_model_file (qkv.hpp): a weights file's metadata and tensors.
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "engine/api/qkv.hpp"
#include "engine/error.h"
#include "engine/format/gguf.h"
#include "engine/format/mapped_file.h"
#include "engine/format/weight_file.h"
#include "engine/runtime/cpu.h"

namespace qkv {
namespace {

std::string type_label(uint32_t id) {
  const ops::TypeInfo* t = ops::find_type(id);
  return t ? t->name : cat(ops::type_name(id), "(", id, ")");
}

// A scalar or a short array as text; long arrays by their length.
std::string value_text(const GgufValue& v) {
  switch (v.type) {
    case GgufType::STRING: return v.str.size() > 80 ? cat("\"", v.str.substr(0, 77), "...\" (", v.str.size(), " bytes)") : cat("\"", v.str, "\"");
    case GgufType::F32:
    case GgufType::F64: return cat(v.f);
    case GgufType::BOOL: return v.u ? "true" : "false";
    case GgufType::I8: case GgufType::I16: case GgufType::I32: case GgufType::I64: return cat(v.i);
    case GgufType::ARRAY: return cat("[", gguf_type_name(v.elem_type), " x ", v.count, "]");
    default: return cat(v.u);
  }
}

// What computes with a type on this machine.
std::string runs_with(const std::string& name) {
  const ops::TypeInfo* t = ops::find_type(name);
  if (!t) return "unknown type: qkv cannot read it";
  const char* isa = active_kernels().isa;
  switch (t->compute) {
    case ops::Compute::F32: return cat("f32 kernels, rows in panels of ", ops::kPanelRows, " at load (", isa, ")");
    case ops::Compute::F16:
      return cat("f16 kernels on activations rounded to f16, rows in panels of ", ops::kPanelRows,
                 " at load, widened in registers (", isa, ")");
    case ops::Compute::BF16:
      return cat("bf16 products on activations rounded to bf16, rows in panels of ", ops::kPanelRows,
                 " by column pairs at load (", isa, ", ", active_kernels().bf16.how, ")");
    case ops::Compute::Integer: {
      const char* act = t->activation == ops::Activation::Q8_K ? "Q8_K" : t->activation == ops::Activation::Q8_1 ? "Q8_1" : "Q8_0";
      const char* layout = (active_kernels().*t->products).x8_layout;
      return cat("integer products on ", act, " activations", t->repack ? ", rows interleaved by 8 at load" : "",
                 layout ? cat(" (", layout, ")") : "", " (", isa, " kernels)");
    }
    case ops::Compute::None: break;
  }
  return "qkv cannot compute with it yet";
}

// The per-type summary of d's tensors.
void summarize_types(FileDescription& d) {
  for (const TensorDescription& t : d.tensors) {
    auto it = std::find_if(d.types.begin(), d.types.end(), [&](const TypeDescription& x) { return x.type == t.type; });
    if (it == d.types.end()) {
      d.types.push_back({t.type, 0, 0, runs_with(t.type)});
      it = d.types.end() - 1;
    }
    ++it->tensors;
    it->bytes += t.bytes;
  }
  std::stable_sort(d.types.begin(), d.types.end(), [](const TypeDescription& a, const TypeDescription& b) { return a.bytes > b.bytes; });
}

}  // namespace

FileDescription describe_model_file(const std::string& path) {
  FileDescription d;
  d.path = path;
  const std::string magic = read_file_head(path, 4);
  if (magic == "GGUF") {
    const GgufFile g(path);
    d.format = cat("GGUF v", g.version());
    if (const GgufValue* a = g.find("general.architecture"); a && a->type == GgufType::STRING) d.arch = a->str;
    for (const auto& [key, v] : g.metadata()) {
      if (key == "tokenizer.chat_template") d.has_chat_template = true;
      d.metadata.emplace_back(key, value_text(v));
    }
    if (const GgufValue* m = g.find("tokenizer.ggml.model"); m && m->type == GgufType::STRING) d.vocab_type = m->str;
    if (const GgufValue* t = g.find("tokenizer.ggml.tokens"); t && t->type == GgufType::ARRAY) d.vocab_size = int(t->count);
    auto id = [&](const char* key) {
      const GgufValue* v = g.find(key);
      return v && v->type != GgufType::STRING && v->type != GgufType::ARRAY ? int(v->i) : -1;
    };
    d.bos = id("tokenizer.ggml.bos_token_id");
    d.eos = id("tokenizer.ggml.eos_token_id");
    d.unk = id("tokenizer.ggml.unknown_token_id");
    for (const GgufTensorInfo& ti : g.tensors()) {
      TensorDescription t;
      t.name = ti.name;
      t.shape.assign(ti.ne, ti.ne + ti.n_dims);
      t.type = type_label(ti.ggml_type);
      t.bytes = ti.n_bytes;
      int64_t n = 1;
      for (int64_t x : t.shape) n *= x;
      d.n_params += n;
      d.tensor_bytes += t.bytes;
      d.tensors.push_back(std::move(t));
    }
  } else {
    const std::unique_ptr<WeightFile> w = open_llama2c_bin(path);
    d.format = w->format();
    d.arch = w->architecture();
    for (const char* key : {"llama.block_count", "llama.context_length", "llama.embedding_length",
                            "llama.feed_forward_length", "llama.attention.head_count", "llama.attention.head_count_kv",
                            "llama.vocab_size"})
      if (auto v = w->get_uint(key)) d.metadata.emplace_back(key, cat(*v));
    d.vocab_size = int(w->get_uint("llama.vocab_size").value_or(0));
    for (const std::string& name : w->tensor_names()) {
      const Tensor& t = *w->find(name);
      TensorDescription td;
      td.name = name;
      td.shape.assign(t.ne, t.ne + t.n_dims);
      td.type = t.info().name;
      td.bytes = t.n_bytes();
      d.n_params += t.n_elements();
      d.tensor_bytes += td.bytes;
      d.tensors.push_back(std::move(td));
    }
  }
  summarize_types(d);
  size_t size = 0;
  ::close(open_regular_file(path, &size));
  d.file_bytes = size;
  return d;
}

}  // namespace qkv
