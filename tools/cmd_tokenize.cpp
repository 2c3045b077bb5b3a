// qkv tokenize: a text's token ids under a file's tokenizer, like
// llama-tokenize (the weights are not read: vocabulary-only GGUF files work).
#include <cstdio>
#include <string>
#include <vector>

#include <qkv/qkv.hpp>

#include "tools/args.h"

namespace qkv::cli {
namespace {

const char* kHelp =
    "usage: qkv tokenize -m FILE (-p TEXT | -f FILE | --stdin) [options]\n"
    "\n"
    "  -m, --model FILE        a GGUF file (a vocabulary-only one will do) or a llama2.c .bin with -z\n"
    "  -z, --tokenizer FILE    llama2.c tokenizer.bin (for .bin models)\n"
    "  -p, --prompt TEXT       the text\n"
    "  -f, --file FILE         read the text from a file\n"
    "      --stdin             read the text from standard input\n"
    "      --ids               print only the ids, as [1, 2, 3]\n"
    "      --no-bos            add no BOS/EOS (by default they are added as the vocabulary says)\n"
    "      --no-parse-special  read control tokens' text (\"<|im_start|>\") as text, not as the token\n"
    "      --no-escape         take the text as it is (by default \\n, \\t, \\xHH... are processed)\n"
    "      --show-count        print the number of tokens at the end\n"
    "  -h, --help              this text\n"
    "\n"
    "Without --ids, one line per token: the id and its text ('id -> \\'piece\\'').\n";

constexpr size_t kMaxTextBytes = size_t(64) << 20;

}  // namespace

int cmd_tokenize(int argc, char** argv) {
  std::string model, tokenizer, text, file;
  bool have_text = false, use_stdin = false, ids_only = false, no_bos = false, parse_special = true;
  bool escape = true, show_count = false;
  try {
    ArgWalker a(argc, argv);
    while (a.next()) {
      const std::string f = a.flag();
      if (is_help(f)) return print_help(kHelp);
      else if (f == "-m" || f == "--model") model = a.value();
      else if (f == "-z" || f == "--tokenizer") tokenizer = a.value();
      else if (f == "-p" || f == "--prompt") text = a.value(), have_text = true;
      else if (f == "-f" || f == "--file") file = a.value();
      else if (f == "--stdin") use_stdin = true;
      else if (f == "--ids") ids_only = true;
      else if (f == "--no-bos") no_bos = true;
      else if (f == "--no-parse-special") parse_special = false;
      else if (f == "--no-escape") escape = false;
      else if (f == "--show-count") show_count = true;
      else if (f == "--log-disable") {}  // llama-tokenize's; qkv logs nothing here
      else throw UsageError("unknown option '" + f + "' (see qkv tokenize --help)");
    }
    if (model.empty()) throw UsageError("-m FILE is required");
    if (int(have_text) + int(!file.empty()) + int(use_stdin) != 1)
      throw UsageError("give the text one way: -p TEXT, -f FILE or --stdin");
  } catch (const UsageError& e) {
    std::fprintf(stderr, "qkv tokenize: %s\n", e.what());
    return 2;
  }
  try {
    if (!file.empty()) text = read_text_file("-f", file, kMaxTextBytes);
    if (use_stdin) text = read_text_file("--stdin", "/dev/stdin", kMaxTextBytes);
    if (escape) text = process_escapes(text);
    const std::shared_ptr<const Vocabulary> vocab = Vocabulary::load(model, tokenizer);
    const std::vector<int> ids = vocab->tokenize(text, !no_bos, parse_special);
    if (ids_only) {
      std::printf("[");
      for (size_t i = 0; i < ids.size(); ++i) std::printf("%s%d", i ? ", " : "", ids[i]);
      std::printf("]\n");
    } else {
      for (const int id : ids) {
        const std::string piece = vocab->token_to_piece(id, true);
        std::printf("%6d -> '", id);
        std::fwrite(piece.data(), 1, piece.size(), stdout);
        std::printf("'\n");
      }
    }
    if (show_count) std::printf("Total number of tokens: %zu\n", ids.size());
    return stdout_ok("qkv tokenize") ? 0 : 1;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "qkv: error: %s\n", e.what());
    return 1;
  }
}

}  // namespace qkv::cli
