/* A complete app on qkv's C API: load a model, stream a story, print tokens/s.
 *   example_story MODEL [TOKENIZER|-] [PROMPT] [N]
 * Build against an installed qkv with find_package(qkv) (target qkv::qkv) or
 * `cc example_story.c $(pkg-config --cflags --libs qkv)`. */
#include <qkv/qkv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int print_piece(void* user, int32_t token, const char* piece, size_t len) {
  const qkv_model* model = (const qkv_model*)user;
  if (!qkv_model_is_end_of_text(model, token)) fwrite(piece, 1, len, stdout);
  fflush(stdout);
  return 1; /* keep going */
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s MODEL [TOKENIZER|-] [PROMPT] [N]\n", argv[0]);
    return 2;
  }
  const char* prompt = argc > 3 ? argv[3] : "Once upon a time";
  const int n_predict = argc > 4 ? atoi(argv[4]) : 100;

  qkv_model_params mp = qkv_model_default_params();
  if (argc > 2 && strcmp(argv[2], "-") != 0) mp.tokenizer_path = argv[2];
  qkv_model* model = NULL;
  if (qkv_model_load(argv[1], &mp, &model) != QKV_OK) {
    fprintf(stderr, "error: %s\n", qkv_model_last_error(model));
    qkv_model_free(model);
    return 1;
  }

  int32_t tokens[512];
  size_t n_tokens = 0;
  qkv_session* session = NULL;
  qkv_sampler* sampler = NULL;
  qkv_sampler_params sp = qkv_sampler_default_params();
  sp.temperature = 0.0f; /* greedy: the same story every time */
  int rc = 1;
  if (qkv_tokenize(model, prompt, strlen(prompt), 1, tokens, 512, &n_tokens) != QKV_OK) {
    fprintf(stderr, "error: prompt too long\n");
  } else if (qkv_session_new(model, NULL, &session) != QKV_OK) {
    fprintf(stderr, "error: %s\n", qkv_session_last_error(session));
  } else if (qkv_sampler_new(model, &sp, &sampler) != QKV_OK) {
    fprintf(stderr, "error: %s\n", qkv_sampler_last_error(sampler));
  } else {
    qkv_generate_result r;
    fputs(prompt, stdout);
    if (qkv_generate(session, sampler, tokens, n_tokens, n_predict, print_piece, model, &r) != QKV_OK) {
      fprintf(stderr, "\nerror: %s\n", qkv_session_last_error(session));
    } else {
      printf("\n");
      fprintf(stderr, "%d tokens, %.1f tokens/s\n", r.n_generated, r.gen_ms > 0 ? 1000.0 * r.n_generated / r.gen_ms : 0.0);
      rc = 0;
    }
  }
  qkv_sampler_free(sampler);
  qkv_session_free(session);
  qkv_model_free(model);
  return rc;
}
