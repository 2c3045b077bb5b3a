// qkv template: the prompt a chat template makes of a conversation, printed
// exactly (what qkv chat evaluates, what transformers' apply_chat_template
// returns).
#include <algorithm>
#include <cstdio>
#include <optional>
#include <ctime>
#include <string>

#include <qkv/qkv.hpp>

#include "tools/args.h"
#include "tools/run_flags.h"

namespace qkv::cli {
namespace {

const char* kHelp =
    "usage: qkv template (-m MODEL | --template FILE.jinja | --chat-template NAME|FILE) --messages FILE.json [options]\n"
    "\n"
    "Prints the prompt the chat template renders from the messages, byte for byte (no newline added).\n"
    "\n"
    "  -m, --model FILE          the template in a GGUF's tokenizer.chat_template (a vocabulary-only file will do);\n"
    "                            its BOS and EOS texts are bos_token and eos_token\n"
    "  -z, --tokenizer FILE      llama2.c tokenizer.bin (for .bin models, with --chat-template)\n"
    "      --template FILE       a Jinja template file\n"
    "      --chat-template X     a built-in format (chatml, llama3, gemma, phi3, mistral, llama2, zephyr) or a file;\n"
    "                            overrides the model's\n"
    "      --messages FILE       the conversation: a JSON list of {\"role\": ..., \"content\": ...} ('-': stdin)\n"
    "      --no-generation-prompt  do not open the assistant's turn at the end (add_generation_prompt false)\n"
    "      --continue            end inside the last message so the model continues it (continue_final_message)\n"
    "      --bos TEXT            bos_token (default: the model's BOS text; undefined without a model)\n"
    "      --eos TEXT            eos_token (likewise)\n"
    "      --chat-template-kwargs JSON  more variables, e.g. '{\"enable_thinking\": false}'\n"
    "      --now TIME            the clock strftime_now() reads: YYYY-MM-DD, YYYY-MM-DDTHH:MM:SS (UTC) or 'now'\n"
    "                            (default 2026-01-01T00:00:00, the reference renderings' clock: reproducible output)\n"
    "  -h, --help                this text\n"
    "\n"
    "Exit status: 0 printed, 1 the template failed (its raise_exception message included) or a file is bad, 2 usage.\n";

constexpr size_t kMaxFileBytes = size_t(16) << 20;

// YYYY-MM-DD[THH:MM:SS] (or a space for T) as UTC seconds, or "now".
int64_t parse_time(const std::string& s) {
  if (s == "now") return int64_t(std::time(nullptr));
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  char sep = 0, tail = 0;
  const int n = std::sscanf(s.c_str(), "%4d-%2d-%2d%c%2d:%2d:%2d%c", &y, &mo, &d, &sep, &h, &mi, &sec, &tail);
  const bool date_only = n == 3 && s.size() == 10;
  const bool full = n == 7 && (sep == 'T' || sep == ' ');
  if ((!date_only && !full) || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || y < 1970)
    throw UsageError("--now " + s + ": expected YYYY-MM-DD, YYYY-MM-DDTHH:MM:SS or now");
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  return int64_t(timegm(&tm));
}

}  // namespace

int cmd_template(int argc, char** argv) {
  std::string model, tokenizer, template_file, chat_template, messages_file, kwargs;
  std::optional<std::string> bos, eos;
  bool generation_prompt = true, continue_final = false;
  int64_t now = 1767225600;  // 2026-01-01T00:00:00Z
  try {
    ArgWalker a(argc, argv);
    while (a.next()) {
      const std::string f = a.flag();
      if (is_help(f)) return print_help(kHelp);
      else if (f == "-m" || f == "--model") model = a.value();
      else if (f == "-z" || f == "--tokenizer") tokenizer = a.value();
      else if (f == "--template") template_file = a.value();
      else if (f == "--chat-template") chat_template = a.value();
      else if (f == "--messages") messages_file = a.value();
      else if (f == "--no-generation-prompt") generation_prompt = false;
      else if (f == "--continue") continue_final = true;
      else if (f == "--bos") bos = a.value();
      else if (f == "--eos") eos = a.value();
      else if (f == "--chat-template-kwargs") kwargs = a.value();
      else if (f == "--now") now = parse_time(a.value());
      else throw UsageError("unknown option '" + f + "' (see qkv template --help)");
    }
    if (int(!model.empty()) + int(!template_file.empty()) == 0 && chat_template.empty())
      throw UsageError("give the template: -m MODEL, --template FILE.jinja or --chat-template NAME|FILE");
    if (!template_file.empty() && !chat_template.empty())
      throw UsageError("--template and --chat-template both name a template; give one");
    if (messages_file.empty()) throw UsageError("--messages FILE.json is required");
  } catch (const UsageError& e) {
    std::fprintf(stderr, "qkv template: %s\n", e.what());
    return 2;
  }
  try {
    std::string source, name;
    std::shared_ptr<const Vocabulary> vocab;
    if (!model.empty()) {
      vocab = Vocabulary::load(model, tokenizer);
      if (!bos && vocab->bos_id() >= 0) bos = vocab->token_to_piece(vocab->bos_id(), true);
      if (!eos && vocab->eos_id() >= 0) eos = vocab->token_to_piece(vocab->eos_id(), true);
    }
    std::optional<ChatTemplate> tmpl;
    if (!chat_template.empty()) {
      tmpl = chat_template_arg(chat_template);
    } else if (!template_file.empty()) {
      tmpl = ChatTemplate(read_text_file("--template", template_file, kMaxFileBytes), template_file);
    } else {
      source = vocab->chat_template();
      if (source.empty())
        throw std::runtime_error(model + ": the file has no tokenizer.chat_template; name a format with --chat-template");
      tmpl = ChatTemplate(source, model + " (tokenizer.chat_template)");
    }
    const std::string messages =
        read_text_file("--messages", messages_file == "-" ? "/dev/stdin" : messages_file, kMaxFileBytes);
    ChatTemplateParams p;
    p.add_generation_prompt = generation_prompt;
    p.continue_final_message = continue_final;
    p.bos_token = bos;
    p.eos_token = eos;
    p.now = now;
    p.variables_json = kwargs;
    std::string prompt;
    try {
      prompt = tmpl->apply_json(messages, p);
    } catch (const Error& e) {
      const std::string what = e.what();
      // A bad messages file names the file; a template's failure names the template.
      if (what.rfind("the messages", 0) == 0 || what.rfind("message ", 0) == 0)
        throw std::runtime_error("--messages " + messages_file + ": " + what);
      throw;
    }
    std::fwrite(prompt.data(), 1, prompt.size(), stdout);
    return stdout_ok("qkv template") ? 0 : 1;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "qkv template: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "qkv template: error: %s\n", e.what());
    return 1;
  }
}

}  // namespace qkv::cli
