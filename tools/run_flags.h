// The flags generate, profile and chat share: the session's (context,
// batch, threads, cache type) and the sampler's, parsed one way.
#pragma once

#include <algorithm>
#include <string>

#include <qkv/qkv.hpp>

#include "tools/args.h"

namespace qkv::cli {

struct RunFlags {
  SessionOptions session;
  SamplerParams sampler;
  bool have_seed = false;
  CacheTypes cache_types;  // -ctk/-ctv, applied to session.kv_f16 by finish()

  // Takes `f` (and its value from `a`) when it is one of these flags.
  bool take(const std::string& f, ArgWalker& a) {
    if (f == "-c" || f == "--ctx-size") session.n_ctx = int(parse_int(f, a.value(), 1, 1 << 24));
    else if (f == "-b" || f == "--batch-size") session.n_batch = int(parse_int(f, a.value(), 1, 65536));
    else if (f == "-t" || f == "--threads") session.n_threads = int(parse_int(f, a.value(), 1, 512));
    else if (f == "-tb" || f == "--threads-batch") session.n_threads_batch = int(parse_int(f, a.value(), 1, 512));
    else if (f == "--kv-f16") session.kv_f16 = true;
    else if (f == "--kv-f32") session.kv_f16 = false;
    else if (cache_types.is_flag(f)) cache_types.take(f, a.value());
    else if (f == "--temp") sampler.temperature = float(parse_float(f, a.value(), 0.0, 1e6));
    else if (f == "--top-k") sampler.top_k = int(parse_int(f, a.value(), 0, 1 << 30));
    else if (f == "--top-p") sampler.top_p = float(parse_float(f, a.value(), 1e-9, 1.0));
    else if (f == "--min-p") sampler.min_p = float(parse_float(f, a.value(), 0.0, 1.0));
    else if (f == "--repeat-penalty") sampler.repeat_penalty = float(parse_float(f, a.value(), 1e-6, 1e6));
    else if (f == "--repeat-last-n") sampler.repeat_last_n = int(parse_int(f, a.value(), 0, 1 << 20));
    else if (f == "-s" || f == "--seed") {
      sampler.seed = uint64_t(parse_int(f, a.value(), 0, (1ll << 62)));
      have_seed = true;
    } else {
      return false;
    }
    return true;
  }
  void finish() { cache_types.apply(&session.kv_f16); }
};

// --chat-template's argument: a built-in format's name, or a Jinja file.
inline ChatTemplate chat_template_arg(const std::string& value) {
  const auto names = ChatTemplate::builtin_names();
  if (std::find(names.begin(), names.end(), value) != names.end()) return ChatTemplate::builtin(value);
  return ChatTemplate(read_text_file("--chat-template", value, size_t(16) << 20), value);
}

// The help lines of those flags.
inline const char* run_flags_help() {
  return "  -c, --ctx-size N        context size (default: the model's; the cache is committed as it fills)\n"
         "  -b, --batch-size N      prompt tokens per forward pass (default 512)\n"
         "  -t, --threads N         threads for generation (default: physical cores)\n"
         "  -tb, --threads-batch N  threads for the prompt (default: same as -t)\n"
         "      --kv-f32            keep the KV cache in f32 (twice the memory; computes exactly as llama2.c)\n"
         "  -ctk, -ctv f32|f16      llama.cpp's cache-type flags (K and V in one type; default f16, as llama.cpp)\n"
         "      --temp T            temperature, 0 = greedy (default 0.8)\n"
         "      --top-k K           keep the K most likely tokens, 0 = off (default 40)\n"
         "      --top-p P           keep the smallest set with probability >= P, 1 = off (default 0.95)\n"
         "      --min-p P           drop tokens less likely than P x the best, 0 = off (default 0.05)\n"
         "      --repeat-penalty R  penalise recent tokens, 1 = off (default 1.0)\n"
         "      --repeat-last-n N   how many recent tokens (default 64)\n"
         "  -s, --seed S            random seed (default: from the clock; printed to stderr)\n";
}

}  // namespace qkv::cli
