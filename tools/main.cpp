// qkv: one executable, several subcommands.
#include <cstdio>
#include <cstring>
#include <string>

#include <qkv/qkv.hpp>

namespace qkv::cli {
int cmd_generate(int argc, char** argv);
int cmd_profile(int argc, char** argv);
int cmd_synth(int argc, char** argv);
int cmd_bench(int argc, char** argv);
int cmd_attention(int argc, char** argv);
int cmd_quantize(int argc, char** argv);
int cmd_perplexity(int argc, char** argv);
int cmd_imatrix(int argc, char** argv);
int cmd_info(int argc, char** argv);
int cmd_tokenize(int argc, char** argv);
int cmd_template(int argc, char** argv);
int cmd_chat(int argc, char** argv);
}

namespace {

void usage(FILE* out) {
  const std::string types = qkv::quantize_type_names();  // "f32, f16, ..."
  std::fprintf(out,
      "usage: qkv <command> [options]\n"
      "\n"
      "commands:\n"
      "  generate   generate text from a model (qkv generate --help)\n"
      "  chat       talk with a chat model, on a terminal or through a pipe (qkv chat --help)\n"
      "  profile    where the time of every op goes (qkv profile --help)\n"
      "  attention  what every token attends to, as an HTML report (qkv attention --help)\n"
      "  bench      prompt and generation tokens/s, like llama-bench (qkv bench --help)\n"
      "  synth      write a random-weight model of a real shape (qkv synth --help)\n"
      "  quantize   write a GGUF in another type: %s (qkv quantize --help)\n"
      "  perplexity llama.cpp's perplexity of a model on a text (qkv perplexity --help)\n"
      "  imatrix    an importance matrix for quantize --imatrix, like llama-imatrix (qkv imatrix --help)\n"
      "  info       a weights file's metadata, vocabulary and tensors, like gguf-dump (qkv info --help)\n"
      "  tokenize   a text's token ids under a file's tokenizer, like llama-tokenize (qkv tokenize --help)\n"
      "  template   the prompt a chat template makes of a conversation (qkv template --help)\n"
      "\n"
      "environment:\n"
      "  QKV_MODELS_DIR  where default models are found (default ../shared/models)\n"
      "  QKV_ISA         force the kernels' instruction set: scalar, sse2, avx2, avxvnni, avx512\n",
      types.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const std::string cmd = argv[1];
  if (cmd == "generate") return qkv::cli::cmd_generate(argc - 1, argv + 1);
  if (cmd == "profile") return qkv::cli::cmd_profile(argc - 1, argv + 1);
  if (cmd == "synth") return qkv::cli::cmd_synth(argc - 1, argv + 1);
  if (cmd == "bench") return qkv::cli::cmd_bench(argc - 1, argv + 1);
  if (cmd == "attention") return qkv::cli::cmd_attention(argc - 1, argv + 1);
  if (cmd == "quantize") return qkv::cli::cmd_quantize(argc - 1, argv + 1);
  if (cmd == "perplexity") return qkv::cli::cmd_perplexity(argc - 1, argv + 1);
  if (cmd == "imatrix") return qkv::cli::cmd_imatrix(argc - 1, argv + 1);
  if (cmd == "info") return qkv::cli::cmd_info(argc - 1, argv + 1);
  if (cmd == "tokenize") return qkv::cli::cmd_tokenize(argc - 1, argv + 1);
  if (cmd == "template") return qkv::cli::cmd_template(argc - 1, argv + 1);
  if (cmd == "chat") return qkv::cli::cmd_chat(argc - 1, argv + 1);
  if (cmd == "-h" || cmd == "--help" || cmd == "help") {
    usage(stdout);
    return 0;
  }
  std::fprintf(stderr, "qkv: unknown command '%s'\n", cmd.c_str());
  usage(stderr);
  return 2;
}
