// qkv chat: an interactive conversation with a chat model, on a terminal or
// through a pipe (one line = one user message).
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>

#include <qkv/qkv.hpp>

#include "tools/args.h"
#include "tools/run_flags.h"

namespace qkv::cli {
namespace {

const char* kHelp =
    "usage: qkv chat -m MODEL [-sys TEXT] [options]\n"
    "\n"
    "Talks with the model: each line you type is a user message, rendered with the model's chat template\n"
    "(tokenizer.chat_template); the reply streams back. The KV cache stays between turns: only new tokens\n"
    "are evaluated. A full context shifts, and the oldest turns are dropped, instead of ending.\n"
    "  /reset   start the conversation again (the system message stays)\n"
    "  /exit    leave (so does end of input, Ctrl-D)\n"
    "  Ctrl-C   stops the reply being written, not the program\n"
    "\n"
    "  -m, --model FILE        weights (GGUF, or llama2.c .bin with -z and --chat-template)\n"
    "  -z, --tokenizer FILE    llama2.c tokenizer.bin (for .bin models)\n"
    "  -sys, --system-prompt TEXT  the system message\n"
    "      --chat-template X   a built-in format (chatml, llama3, gemma, phi3, mistral, llama2, zephyr) or a\n"
    "                          Jinja file, instead of the model's template\n"
    "  -n, --n-predict N       most tokens per reply (default -1: until the end of the turn)\n"
    "  -r, --reverse-prompt S  also end a reply at S (several allowed)\n"
    "      --ignore-eos        never end a reply with an end-of-text token (a stop string or -n still do)\n"
    "      --no-context-shift  stop a reply when the context is full, and refuse a conversation that outgrows it\n"
    "      --no-mmap           read the weights into memory instead of mapping them\n";

const char* kHelpEnd = "  -h, --help              this text\n";

std::atomic<bool> g_interrupted{false};
std::atomic<Session*> g_session{nullptr};

void on_sigint(int) {
  g_interrupted.store(true);
  if (Session* s = g_session.load()) s->cancel();  // an atomic store: safe in a signal handler
}

// What the chat writes to stdout, through write(2) on fd 1, not stdio: a
// Ctrl-C (SIGINT comes without SA_RESTART, so that it interrupts the wait for
// input) can land while a write is blocked on a slow terminal or a full pipe,
// and stdio would keep the EINTR as a lasting error and drop the rest. Here an
// interrupted write goes on where it stopped; a real failure (a full disk, a
// closed pipe) is kept in `failed` (its errno in `error`) and ends the chat.
struct Output {
  bool failed = false;
  int error = 0;
  void write(const char* data, size_t size) {
    while (size > 0 && !failed) {
      const ssize_t n = ::write(STDOUT_FILENO, data, size);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        failed = true;
        error = n < 0 ? errno : EIO;
        return;
      }
      data += n;
      size -= size_t(n);
    }
  }
  void write(const std::string& s) { write(s.data(), s.size()); }
};

// One line of input; nullopt at the end. Ctrl-C while waiting gives "".
std::optional<std::string> read_line() {
  std::string line;
  for (;;) {
    const int c = std::fgetc(stdin);
    if (c == EOF) {
      if (std::ferror(stdin) && errno == EINTR) {
        std::clearerr(stdin);
        if (g_interrupted.exchange(false)) return std::string();
        continue;
      }
      if (line.empty()) return std::nullopt;
      return line;
    }
    if (c == '\n') break;
    line += char(c);
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

}  // namespace

int cmd_chat(int argc, char** argv) {
  std::string model_path, tokenizer, system, chat_template;
  RunFlags run;
  std::vector<std::string> stop;
  int n_predict = -1;
  bool context_shift = true, use_mmap = true, ignore_eos = false;
  try {
    ArgWalker a(argc, argv);
    while (a.next()) {
      const std::string f = a.flag();
      if (is_help(f)) {
        std::printf("%s%s%s", kHelp, run_flags_help(), kHelpEnd);
        return 0;
      } else if (f == "-m" || f == "--model") model_path = a.value();
      else if (f == "-z" || f == "--tokenizer") tokenizer = a.value();
      else if (f == "-sys" || f == "--system-prompt") system = a.value();
      else if (f == "--chat-template") chat_template = a.value();
      else if (f == "-n" || f == "--n-predict") n_predict = int(parse_int(f, a.value(), -1, 1 << 30));
      else if (f == "-r" || f == "--reverse-prompt") {
        stop.push_back(a.value());
        if (stop.back().empty()) throw UsageError(f + ": an empty stop string");
      } else if (f == "--no-context-shift") context_shift = false;
      else if (f == "--ignore-eos") ignore_eos = true;
      else if (f == "--no-mmap") use_mmap = false;
      else if (run.take(f, a)) {}
      else throw UsageError("unknown option '" + f + "' (see qkv chat --help)");
    }
    run.finish();
    if (model_path.empty()) throw UsageError("-m MODEL is required");
  } catch (const UsageError& e) {
    std::fprintf(stderr, "qkv chat: %s\n", e.what());
    return 2;
  }
  try {
    if (!run.have_seed) run.sampler.seed = uint64_t(::time(nullptr)) ^ (uint64_t(::getpid()) << 20);
    LoadOptions lo;
    lo.tokenizer_path = tokenizer;
    lo.use_mmap = use_mmap;
    std::shared_ptr<const Model> model = Model::load(model_path, lo);
    Session session(model, run.session);
    Sampler sampler(model->info().vocab_size, run.sampler);
    std::optional<ChatTemplate> tmpl;
    if (!chat_template.empty()) {
      tmpl = chat_template_arg(chat_template);
    }
    if (!tmpl && model->chat_template().empty()) {
      std::string names;
      for (const auto& n : ChatTemplate::builtin_names()) names += (names.empty() ? "" : ", ") + n;
      throw std::runtime_error(model_path + ": the file has no chat template (tokenizer.chat_template); name one with "
                               "--chat-template NAME|FILE (" + names + ")");
    }
    ChatOptions co;
    co.system = system;
    co.generate.n_predict = n_predict;
    co.generate.stop = stop;
    co.generate.ignore_eos = ignore_eos;
    co.context_shift = context_shift;
    Chat chat(session, tmpl, co);

    struct sigaction sa {};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: a Ctrl-C interrupts the wait for input
    ::sigaction(SIGINT, &sa, nullptr);
    g_session.store(&session);

    const bool tty = ::isatty(STDIN_FILENO) != 0;
    if (tty)
      std::fprintf(stderr, "qkv chat: %s, %d tokens of context. /reset starts again, /exit (or Ctrl-D) leaves, "
                   "Ctrl-C stops a reply.\n", model_path.c_str(), session.n_ctx());
    Output out;
    while (!out.failed) {
      if (tty) out.write("> ", 2);
      const std::optional<std::string> line = read_line();
      if (!line) break;
      if (line->empty()) continue;
      if (*line == "/exit" || *line == "/quit") break;
      if (*line == "/reset") {
        chat.reset();
        if (tty) std::fputs("(the conversation starts again)\n", stderr);
        continue;
      }
      g_interrupted.store(false);
      session.cancel(false);
      try {
        chat.say(*line, sampler, [&](const TokenInfo& t) {
          out.write(t.text);
          return !out.failed && !g_interrupted.load();
        });
      } catch (const Error& e) {
        if (e.code() != Errc::Cancelled && e.code() != Errc::ContextFull) throw;
        std::fprintf(stderr, "\nqkv chat: %s\n", e.code() == Errc::Cancelled ? "stopped" : e.what());
      }
      g_interrupted.store(false);
      out.write("\n", 1);
    }
    g_session.store(nullptr);
    if (!out.failed) return 0;
    std::fprintf(stderr, "qkv chat: error: writing to stdout failed: %s\n", std::strerror(out.error));
    return 1;
  } catch (const std::exception& e) {
    g_session.store(nullptr);
    std::fflush(stdout);
    std::fprintf(stderr, "qkv chat: error: %s\n", e.what());
    return 1;
  }
}

}  // namespace qkv::cli
