// qkv info: what a weights file holds (describe_model_file, qkv.hpp), like
// gguf-dump: the architecture, its hyper-parameters and other metadata, the
// vocabulary, whether a chat template is there, every tensor and the totals;
// --json for tools.
#include <cstdio>
#include <string>

#include <qkv/qkv.hpp>

#include "tools/args.h"
#include "tools/json.h"

namespace qkv::cli {
namespace {

const char* kHelp =
    "usage: qkv info -m FILE [--json]\n"
    "\n"
    "  -m FILE   a GGUF file or a llama2.c .bin (need not be one qkv can run)\n"
    "  --json    the same as one JSON object\n";

std::string shape_text(const std::vector<int64_t>& s) {
  std::string t;
  for (size_t i = 0; i < s.size(); ++i) t += (i ? " x " : "") + std::to_string(s[i]);
  return t;
}

}  // namespace

int cmd_info(int argc, char** argv) {
  std::string path;
  bool json = false;
  try {
    ArgWalker a(argc, argv);
    while (a.next()) {
      const std::string f = a.flag();
      if (is_help(f)) return print_help(kHelp);
      else if (f == "-m" || f == "--model") path = a.value();
      else if (f == "--json") json = true;
      else throw UsageError("unknown option '" + f + "' (see qkv info --help)");
    }
    if (path.empty()) throw UsageError("-m FILE is required");
  } catch (const UsageError& e) {
    std::fprintf(stderr, "qkv info: %s\n", e.what());
    return 2;
  }
  try {
    const FileDescription d = describe_model_file(path);
    if (json) {
      std::printf("{\"path\": %s, \"format\": %s, \"arch\": %s, \"file_bytes\": %llu,\n", json_string(d.path).c_str(),
                  json_string(d.format).c_str(), json_string(d.arch).c_str(), (unsigned long long)d.file_bytes);
      std::printf(" \"vocab\": {\"type\": %s, \"size\": %d, \"bos\": %d, \"eos\": %d, \"unk\": %d}, \"chat_template\": %s,\n",
                  json_string(d.vocab_type).c_str(), d.vocab_size, d.bos, d.eos, d.unk, d.has_chat_template ? "true" : "false");
      std::printf(" \"metadata\": {");
      for (size_t i = 0; i < d.metadata.size(); ++i)
        std::printf("%s%s: %s", i ? ", " : "", json_string(d.metadata[i].first).c_str(), json_string(d.metadata[i].second).c_str());
      std::printf("},\n \"tensors\": [");
      for (size_t i = 0; i < d.tensors.size(); ++i) {
        const TensorDescription& t = d.tensors[i];
        std::printf("%s\n  {\"name\": %s, \"shape\": [", i ? "," : "", json_string(t.name).c_str());
        for (size_t k = 0; k < t.shape.size(); ++k) std::printf("%s%lld", k ? ", " : "", (long long)t.shape[k]);
        std::printf("], \"type\": %s, \"bytes\": %llu}", json_string(t.type).c_str(), (unsigned long long)t.bytes);
      }
      std::printf("\n ],\n \"types\": [");
      for (size_t i = 0; i < d.types.size(); ++i)
        std::printf("%s\n  {\"type\": %s, \"tensors\": %d, \"bytes\": %llu, \"runs_with\": %s}", i ? "," : "",
                    json_string(d.types[i].type).c_str(), d.types[i].tensors, (unsigned long long)d.types[i].bytes,
                    json_string(d.types[i].runs_with).c_str());
      std::printf("\n ],\n \"n_tensors\": %zu, \"tensor_bytes\": %llu, \"n_params\": %lld}\n", d.tensors.size(),
                  (unsigned long long)d.tensor_bytes, (long long)d.n_params);
    } else {
      std::printf("%s: %s, architecture %s, %.2f MiB\n", d.path.c_str(), d.format.c_str(),
                  d.arch.empty() ? "(none)" : d.arch.c_str(), double(d.file_bytes) / (1 << 20));
      std::printf("vocabulary: %s, %d tokens, bos %d, eos %d, unk %d; chat template: %s\n",
                  d.vocab_type.empty() ? "(none)" : d.vocab_type.c_str(), d.vocab_size, d.bos, d.eos, d.unk,
                  d.has_chat_template ? "yes" : "no");
      std::printf("\nmetadata (%zu keys):\n", d.metadata.size());
      for (const auto& [k, v] : d.metadata) std::printf("  %-45s %s\n", k.c_str(), v.c_str());
      std::printf("\ntensors (%zu):\n", d.tensors.size());
      for (const TensorDescription& t : d.tensors)
        std::printf("  %-40s %-22s %-8s %12llu bytes\n", t.name.c_str(), shape_text(t.shape).c_str(), t.type.c_str(),
                    (unsigned long long)t.bytes);
      std::printf("\ntypes:\n");
      for (const TypeDescription& t : d.types)
        std::printf("  %-8s %4d tensors %10.2f MiB  %s\n", t.type.c_str(), t.tensors, double(t.bytes) / (1 << 20),
                    t.runs_with.c_str());
      std::printf("\ntotal: %zu tensors, %lld parameters, %.2f MiB of tensor data\n", d.tensors.size(),
                  (long long)d.n_params, double(d.tensor_bytes) / (1 << 20));
    }
    return stdout_ok("qkv info") ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qkv: error: %s\n", e.what());
    return 1;
  }
}

}  // namespace qkv::cli
