// qkv attention: run a prompt (and a few generated tokens), capture what every
// token attends to, layer by layer and head by head, and write a
// self-contained HTML report (and optionally the raw probabilities as JSON).
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <qkv/qkv.hpp>
#include "tools/args.h"
#include "tools/attention_report.h"

namespace qkv::cli {
namespace {

const char* kHelp =
    "usage: qkv attention -m MODEL [-z TOKENIZER] (-p PROMPT | -f FILE) [-n N] [--layers L] [--heads H] -o REPORT.html\n"
    "                     [--json FILE] [-t T]\n"
    "\n"
    "  -p PROMPT      the text to look at (BOS is added)\n"
    "  -f FILE        the text to look at, read from FILE\n"
    "  -n N           tokens to generate after it, greedily (default 0)\n"
    "  --layers L     layers to capture: all (default) or a list like 0,2,4\n"
    "  --heads H      query heads to capture: all (default) or a list\n"
    "  -o FILE        the HTML report: heatmaps with a layer/head picker and per-layer averages,\n"
    "                 hover a token to see what it attends to, per-head entropy, attention sink and\n"
    "                 most-attended tokens, thumbnails of every head, and a model card\n"
    "  --json FILE    the probabilities and token pieces as JSON, for other tools\n";

std::vector<int> parse_ids(const std::string& flag, const std::string& s, int n) {
  std::vector<int> ids;
  if (s == "all") {
    for (int i = 0; i < n; ++i) ids.push_back(i);
    return ids;
  }
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    ids.push_back(int(parse_int(flag, item, 0, n - 1)));
  if (ids.empty()) throw UsageError(flag + ": empty list");
  return ids;
}

constexpr double kMaxReportBytes = 64.0 * (1 << 20);

std::string cat_size(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "a %.0f MiB", bytes / (1 << 20));
  return buf;
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  if (!(f << text)) throw Error("cannot write '" + path + "'");
}

}  // namespace

int cmd_attention(int argc, char** argv) {
  std::string model_path, tokenizer, prompt, prompt_file, out, json, layers_arg = "all", heads_arg = "all";
  bool have_prompt = false;
  int n_gen = 0, threads = 0;
  try {
    ArgWalker a(argc, argv);
    while (a.next()) {
      const std::string f = a.flag();
      if (is_help(f)) return print_help(kHelp);
      else if (f == "-m" || f == "--model") model_path = a.value();
      else if (f == "-z" || f == "--tokenizer") tokenizer = a.value();
      else if (f == "-p" || f == "--prompt") { prompt = a.value(); have_prompt = true; }
      else if (f == "-f" || f == "--file") prompt_file = a.value();
      else if (f == "-n" || f == "--n-predict") n_gen = int(parse_int(f, a.value(), 0, 4096));
      else if (f == "--layers") layers_arg = a.value();
      else if (f == "--heads") heads_arg = a.value();
      else if (f == "-o" || f == "--output") out = a.value();
      else if (f == "--json") json = a.value();
      else if (f == "-t" || f == "--threads") threads = int(parse_int(f, a.value(), 1, 512));
      else throw UsageError("unknown option '" + f + "' (see qkv attention --help)");
    }
    if (model_path.empty()) throw UsageError("-m MODEL is required");
    if (have_prompt && !prompt_file.empty()) throw UsageError("give -p PROMPT or -f FILE, not both");
    if (!have_prompt && prompt_file.empty()) throw UsageError("-p PROMPT (or -f FILE) is required");
    if (out.empty() && json.empty()) throw UsageError("-o REPORT.html (or --json FILE) is required");
  } catch (const UsageError& e) {
    std::fprintf(stderr, "qkv attention: %s\n", e.what());
    return 2;
  }

  if (!prompt_file.empty()) {
    try {
      prompt = read_text_file("-f", prompt_file, size_t(1) << 20);
    } catch (const FileError& e) {  // like an unreadable model: exit 1
      std::fprintf(stderr, "qkv attention: %s\n", e.what());
      return 1;
    }
  }
  try {
    const auto model = Model::load(model_path, LoadOptions{tokenizer});
    AttentionRun run;
    run.info = model->info();
    run.model_path = model_path;
    run.prompt = prompt;
    try {
      run.layers = parse_ids("--layers", layers_arg, run.info.n_layers);
      run.heads = parse_ids("--heads", heads_arg, run.info.n_heads);
    } catch (const UsageError& e) {
      std::fprintf(stderr, "qkv attention: %s\n", e.what());
      return 2;
    }
    const std::vector<int> prompt_ids = model->tokenize(prompt, true);
    // The report holds every captured probability (about 26 bytes each in the
    // HTML, 9 in the JSON): refuse up front what no browser would open.
    const double n_tok = double(prompt_ids.size()) + n_gen;
    const double n_probs = n_tok * (n_tok + 1) / 2 * double(run.layers.size()) * double(run.heads.size());
    const double est = n_probs * (out.empty() ? 9.0 : 26.0);
    if (est > kMaxReportBytes)
      throw Error(cat_size(est) + " report (" + std::to_string(int64_t(n_tok)) + " tokens, " +
                  std::to_string(run.layers.size()) + " layers x " + std::to_string(run.heads.size()) +
                  " heads) is over the " + cat_size(kMaxReportBytes) +
                  " limit: capture fewer with --layers/--heads, or use a shorter prompt");
    SessionOptions so;
    so.n_threads = threads;
    so.n_ctx = std::min(int(prompt_ids.size()) + n_gen + 1, std::max(run.info.context_length, 1));
    if (int(prompt_ids.size()) > so.n_ctx)
      throw Error("the prompt has " + std::to_string(prompt_ids.size()) + " tokens, more than the model's context of " +
                  std::to_string(so.n_ctx));
    Session session(model, so);
    session.set_attention_capture(
        [&](const AttentionRow& r) {
          run.rows[{r.layer, r.head}].emplace_back(r.probs, r.probs + r.position + 1);
        },
        run.layers, run.heads);
    Sampler greedy(run.info.vocab_size, SamplerParams{0.0f, 0, 1.0f, 0.0f, 1.0f, 0, 0});
    std::vector<int> generated;
    if (n_gen > 0) {
      generate(session, greedy, prompt_ids, n_gen, [&](int t, const std::string&) {
        generated.push_back(t);
        return true;
      });
    } else {
      session.eval(prompt_ids);
    }
    // The tokens that went through the model (the last generated one did not).
    run.token_ids = prompt_ids;
    run.token_ids.insert(run.token_ids.end(), generated.begin(), generated.end());
    run.token_ids.resize(size_t(session.n_past()));
    run.n_prompt = int(prompt_ids.size());
    int prev = -1;
    for (int t : run.token_ids) {
      run.pieces.push_back(model->token_to_piece(t, prev));
      prev = t;
    }
    if (!out.empty()) write_text(out, attention_html(run));
    if (!json.empty()) write_text(json, attention_json(run));
    std::fprintf(stderr, "qkv attention: %zu tokens, %zu layers x %zu heads captured%s%s%s%s\n", run.token_ids.size(),
                 run.layers.size(), run.heads.size(), out.empty() ? "" : " -> ", out.c_str(),
                 json.empty() ? "" : " and ", json.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qkv: error: %s\n", e.what());
    return 1;
  }
}

}  // namespace qkv::cli
