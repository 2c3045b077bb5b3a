// Built against the engine compiled without the profiler: writes every logit
// of a fixed greedy run to stdout as raw floats, for the profiler tests.
//   qkv_noprof_logits MODEL [TOKENIZER] THREADS
#include <cstdio>
#include <cstdlib>
#include <string>

#include "engine/api/qkv.hpp"
#include "logits_run.h"

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  try {
    const std::string tok = argc > 3 ? argv[2] : "";
    const std::vector<float> logits = qkv::test::greedy_logits(argv[1], tok, std::atoi(argv[argc - 1]));
    std::fwrite(logits.data(), sizeof(float), logits.size(), stdout);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
