// qkv generate: text from a model, streamed to stdout; timings to stderr.
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <qkv/qkv.hpp>
#include "tools/args.h"
#include "tools/run_flags.h"

namespace qkv::cli {
namespace {

const char* kHelp =
    "usage: qkv generate [-m MODEL] [-z TOKENIZER] [-p PROMPT | -f FILE] [options]\n"
    "\n"
    "  -m, --model FILE        weights: llama2.c .bin or GGUF (default $QKV_MODELS_DIR/stories260K.bin)\n"
    "  -z, --tokenizer FILE    llama2.c tokenizer.bin (needed for .bin models; default for the\n"
    "                          default model: $QKV_MODELS_DIR/tok512.bin)\n"
    "  -p, --prompt TEXT       prompt (default: empty, the model starts from BOS)\n"
    "  -f, --file FILE         read the prompt from a file\n"
    "  -n, --n-predict N       tokens to generate (default 256; -1: until end of text or full context)\n"
    "  -e, --escape            process escapes in the prompt (\\n, \\t, \\\", \\xHH, ...)\n"
    "      --no-display-prompt don't print the prompt before the generated text\n"
    "      --print-ids         after generating, write the token ids to stderr: 'prompt_ids: 1 2 3'\n"
    "                          and 'generated_ids: 4 5 6' (the end-of-text token included if it came)\n"
    "      --no-parse-special  read control tokens' text in the prompt (\"<|im_start|>\") as text\n"
    "      --no-mmap           read the weights into memory instead of mapping them\n"
    "  -r, --reverse-prompt S  stop when the text contains S (several allowed; S is not printed)\n"
    "      --ignore-eos        never end the text (end-of-text tokens are not sampled)\n"
    "      --context-shift     when the context fills, drop the older half of the text after the first --keep\n"
    "                          tokens and go on (default: stop)\n"
    "      --keep N            with --context-shift: tokens kept from the start (default 0; BOS is always kept)\n"
    "      --prompt-cache FILE reuse the KV cache of the longest matching prompt prefix saved in FILE, and save\n"
    "                          this prompt's there (a file from another model or cache type is refused)\n"
    "      --prompt-cache-ro   read the prompt cache but do not update it\n"
    "  -ngl, -fa, -dev, -sm, --mlock: accepted, with a warning (they mean nothing on the CPU)\n"
    "  --flag=value is the same as --flag value\n"
    "      --profile           print a per-op profile to stderr afterwards\n"
    "      --trace FILE.json   with --profile: write a Chrome trace (Perfetto, chrome://tracing)\n"
    "      --csv FILE.csv      with --profile: write one row per op invocation\n"
    "      --no-probe          with --profile: skip measuring the machine's limits (no %peak column)\n";

const char* kHelpEnd =
    "  -h, --help              this text\n";

const char* kProfileHelp =
    "usage: qkv profile [-m MODEL] [-z TOKENIZER] [-p PROMPT] [-n N] [-t T] [--trace FILE.json] [--csv FILE.csv]\n"
    "\n"
    "Runs the prompt as one batch, then generates N tokens (default 64, greedy unless --temp is given),\n"
    "and prints where the time went: per op and phase (calls, total ms, %, mean and max us, GFLOP/s,\n"
    "GB/s, % of the machine's measured peak), per layer, and per thread (compute vs waiting).\n"
    "Takes every option of qkv generate; the generated text goes to stderr.\n";

struct Options {
  std::string model, tokenizer, prompt, prompt_file;
  bool have_prompt = false, have_model = false, have_file = false;
  bool escapes = false, display_prompt = true, use_mmap = true, print_ids = false, parse_special = true;
  std::vector<std::string> ignored;  // flags that mean nothing on the CPU, for one warning line
  int n_predict = 256;
  RunFlags run;
  std::vector<std::string> stop;
  bool ignore_eos = false, context_shift = false, prompt_cache_ro = false;
  int n_keep = 0;
  std::string prompt_cache;
  bool profile = false, probe = true;
  std::string trace, csv;
};

constexpr size_t kMaxPromptBytes = size_t(64) << 20;  // far more text than any context holds

Options parse(int argc, char** argv, bool profile_cmd) {
  Options o;
  if (profile_cmd) {
    o.profile = true;
    o.n_predict = 64;
    o.run.sampler.temperature = 0.0f;
    o.run.have_seed = true;
  }
  ArgWalker a(argc, argv);
  while (a.next()) {
    const std::string f = a.flag();
    if (f == "-h" || f == "--help") {
      if (profile_cmd) std::fputs(kProfileHelp, stdout);
      else std::printf("%s%s%s", kHelp, run_flags_help(), kHelpEnd);
      std::exit(0);
    } else if (f == "--profile") o.profile = true;
    else if (f == "--trace") o.trace = a.value();
    else if (f == "--csv") o.csv = a.value();
    else if (f == "--no-probe") o.probe = false;
    else if (f == "-m" || f == "--model") {
      o.model = a.value();
      o.have_model = true;
    }
    else if (f == "-z" || f == "--tokenizer") o.tokenizer = a.value();
    else if (f == "-p" || f == "--prompt") { o.prompt = a.value(); o.have_prompt = true; }
    else if (f == "-f" || f == "--file") {
      o.prompt_file = a.value();
      o.have_file = true;
    }
    else if (f == "-n" || f == "--n-predict") o.n_predict = int(parse_int(f, a.value(), -1, 1 << 30));
    else if (o.run.take(f, a)) {}
    else if (f == "-r" || f == "--reverse-prompt") {
      o.stop.push_back(a.value());
      if (o.stop.back().empty()) throw UsageError(f + ": an empty stop string");
    }
    else if (f == "--ignore-eos") o.ignore_eos = true;
    else if (f == "--context-shift") o.context_shift = true;
    else if (f == "--keep") o.n_keep = int(parse_int(f, a.value(), -1, 1 << 24));
    else if (f == "--prompt-cache") o.prompt_cache = a.value();
    else if (f == "--prompt-cache-ro") o.prompt_cache_ro = true;
    else if (f == "-e" || f == "--escape") o.escapes = true;
    else if (f == "--no-display-prompt") o.display_prompt = false;
    else if (f == "--print-ids") o.print_ids = true;
    else if (f == "--no-parse-special") o.parse_special = false;
    else if (f == "--no-mmap") o.use_mmap = false;
    else if (f == "--mlock") o.ignored.push_back(f);
    else if (f == "-ngl" || f == "--n-gpu-layers" || f == "--gpu-layers" || f == "-fa" || f == "--flash-attn" ||
             f == "-dev" || f == "--device" || f == "-sm" || f == "--split-mode" || f == "-mg" || f == "--main-gpu")
      o.ignored.push_back(f + " " + a.value());
    else {
      throw UsageError("unknown option '" + f + "' (see " + std::string(profile_cmd ? "qkv profile" : "qkv generate") +
                       " --help)");
    }
  }
  o.run.finish();
  if (o.prompt_cache_ro && o.prompt_cache.empty()) throw UsageError("--prompt-cache-ro needs --prompt-cache FILE");
  if (o.have_prompt && o.have_file) throw UsageError("give either -p or -f, not both");
  if ((!o.trace.empty() || !o.csv.empty()) && !o.profile) throw UsageError("--trace and --csv need --profile");
  if (o.have_model && o.model.empty()) throw UsageError("-m: empty file name");
  if (o.have_file && o.prompt_file.empty()) throw UsageError("-f: empty file name");
  if (!o.have_model) {
    o.model = models_dir() + "/stories260K.bin";
    if (o.tokenizer.empty()) o.tokenizer = models_dir() + "/tok512.bin";
  }
  if (!o.run.have_seed) {
    o.run.sampler.seed = uint64_t(std::chrono::system_clock::now().time_since_epoch().count()) & ((1ull << 62) - 1);
  }
  return o;
}

void write_file(const std::string& path, const std::string& text) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw Error("cannot write '" + path + "'");
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  if (std::fclose(f) != 0 || !ok) throw Error("cannot write '" + path + "'");
}

int run(int argc, char** argv, bool profile_cmd) {
  const char* name = profile_cmd ? "qkv profile" : "qkv generate";
  Options o;
  try {
    o = parse(argc, argv, profile_cmd);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "%s: %s\n", name, e.what());
    return 2;
  }
  // qkv profile keeps stdout for the report; the story goes to stderr.
  std::FILE* text_out = profile_cmd ? stderr : stdout;
  if (!o.ignored.empty()) {
    std::string list;
    for (const std::string& f : o.ignored) list += (list.empty() ? "" : ", ") + f;
    std::fprintf(stderr, "%s: warning: ignoring %s: qkv runs on the CPU\n", name, list.c_str());
  }
  try {
    // An unreadable prompt file is a failure like an unreadable model (exit 1), not a usage error.
    if (o.have_file) o.prompt = read_text_file("-f", o.prompt_file, kMaxPromptBytes);
    if (o.escapes) o.prompt = process_escapes(o.prompt);
    using clock = std::chrono::steady_clock;
    const auto t0 = clock::now();
    LoadOptions lo;
    lo.tokenizer_path = o.tokenizer;
    lo.use_mmap = o.use_mmap;
    std::shared_ptr<const Model> model = Model::load(o.model, lo);
    Session session(model, o.run.session);
    if (o.run.session.n_ctx > model->info().context_length)
      std::fprintf(stderr, "%s: warning: the context of %d tokens is larger than the %d this model was trained for\n",
                   name, o.run.session.n_ctx, model->info().context_length);
    Sampler sampler(model->info().vocab_size, o.run.sampler);
    const double load_ms = std::chrono::duration<double, std::milli>(clock::now() - t0).count();

    const std::vector<int> prompt = model->tokenize(o.prompt, true, o.parse_special);
    if (int(prompt.size()) >= session.n_ctx())
      throw Error("the prompt has " + std::to_string(prompt.size()) + " tokens, which leaves no room in the context of " +
                  std::to_string(session.n_ctx()) + " (use a larger -c or a shorter prompt)");
    if (o.run.sampler.temperature > 0 && !o.run.have_seed)
      std::fprintf(stderr, "seed: %llu\n", (unsigned long long)o.run.sampler.seed);

    if (o.profile) session.profile_start();
    // --prompt-cache: start from the saved cache's longest prefix of this
    // prompt; evaluate the rest but the last token, save, then generate.
    std::vector<int> to_generate = prompt;
    if (!o.prompt_cache.empty()) {
      struct stat st;
      if (::stat(o.prompt_cache.c_str(), &st) == 0) {
        session.load_state_file(o.prompt_cache);
        const std::vector<int>& cached = session.tokens();
        size_t common = 0;
        while (common < cached.size() && common + 1 < prompt.size() && cached[common] == prompt[common]) ++common;
        session.truncate(int(common));
        std::fprintf(stderr, "%s: prompt cache %s: %zu of the prompt's %zu tokens reused\n", name,
                     o.prompt_cache.c_str(), common, prompt.size());
      }
      const int n_past = session.n_past();
      if (int(prompt.size()) - 1 > n_past) session.eval(prompt.data() + n_past, int(prompt.size()) - 1 - n_past);
      for (size_t i = 0; i + 1 < prompt.size(); ++i) sampler.accept(prompt[i]);
      if (!o.prompt_cache_ro) session.save_state_file(o.prompt_cache);
      to_generate.assign(prompt.end() - 1, prompt.end());
    }
    if (o.display_prompt) {
      const std::string echoed = model->detokenize(prompt);
      std::fwrite(echoed.data(), 1, echoed.size(), text_out);  // NUL bytes included
    }
    std::fflush(text_out);
    GenerateOptions go;
    go.n_predict = o.n_predict;
    go.stop = o.stop;
    go.ignore_eos = o.ignore_eos;
    go.context_shift = o.context_shift;
    // As llama.cpp: --keep counts the prompt's tokens after BOS (-1: the whole prompt); BOS stays.
    const int bos = model->adds_bos() ? 1 : 0;
    go.n_keep = o.n_keep < 0 ? int(prompt.size()) : std::min(int(prompt.size()), o.n_keep + bos);
    GenerateResult r = generate(session, sampler, to_generate, go, [&](const TokenInfo& t) {
      std::fwrite(t.text.data(), 1, t.text.size(), text_out);
      std::fflush(text_out);
      return true;
    });
    r.n_prompt = int(prompt.size());
    std::fputc('\n', text_out);
    std::fflush(text_out);
    if (o.profile) session.profile_stop();
    if (r.n_shifts > 0) std::fprintf(stderr, "%s: the context was shifted %d times\n", name, r.n_shifts);
    if (r.stop == StopReason::ContextFull)
      std::fprintf(stderr, "qkv: stopped: the context of %d tokens is full\n", session.n_ctx());
    const int n_gen = int(r.tokens.size());
    if (o.print_ids) {
      std::string line = "prompt_ids:";
      for (const int t : prompt) line += " " + std::to_string(t);
      line += "\ngenerated_ids:";
      for (const int t : r.tokens) line += " " + std::to_string(t);
      std::fprintf(stderr, "%s\n", line.c_str());
    }
    std::fprintf(stderr, "load: %.1f ms  model: %s (%s, %s weights, %d threads, %s kernels)\n", load_ms,
                 o.model.c_str(), model->info().format.c_str(), model->info().weight_types.c_str(),
                 session.n_threads(), active_isa().c_str());
    std::fprintf(stderr, "prompt: %d tokens in %.2f ms (%.1f tokens/s)\n", r.n_prompt, r.prompt_ms,
                 r.prompt_ms > 0 ? 1000.0 * r.n_prompt / r.prompt_ms : 0.0);
    std::fprintf(stderr, "generation: %d tokens in %.2f ms (%.1f tokens/s)\n", n_gen, r.gen_ms,
                 r.gen_ms > 0 ? 1000.0 * n_gen / r.gen_ms : 0.0);
    if (o.profile) {
      MachineLimits lim;
      if (o.probe) lim = probe_machine(session.n_threads());
      const ProfileReport rep = session.profile_report(lim.fma_gflops, lim.read_gbps);
      std::FILE* out = profile_cmd ? stdout : stderr;
      std::fprintf(out, "profile: %s, %d threads, %s kernels", o.model.c_str(), session.n_threads(), active_isa().c_str());
      if (o.probe)
        std::fprintf(out, "; machine (%d threads): %.0f GFLOP/s fp32 FMA, %.1f GB/s read", lim.threads, lim.fma_gflops,
                     lim.read_gbps);
      std::fprintf(out, "\n%s", rep.to_text().c_str());
      if (!o.trace.empty()) write_file(o.trace, session.profile_trace_json());
      if (!o.csv.empty()) write_file(o.csv, session.profile_csv());
    }
    return stdout_ok(name) ? 0 : 1;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    const bool default_model = !o.have_model && std::string(e.what()).find(o.model) != std::string::npos;
    std::fprintf(stderr, "qkv: error: %s%s\n", e.what(),
                 default_model ? " (the default model: set QKV_MODELS_DIR to the folder that holds it)" : "");
    return 1;
  }
}

}  // namespace

int cmd_generate(int argc, char** argv) { return run(argc, argv, false); }
int cmd_profile(int argc, char** argv) { return run(argc, argv, true); }

}  // namespace qkv::cli
