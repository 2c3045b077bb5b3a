// SentencePiece encoding of one piece of text: symbols merge into the
// best-scoring token their pair forms (merge_symbols.h); symbols that are not
// tokens fall back to their bytes (<0xNN>).
#include "engine/text/merge_symbols.h"
#include "engine/text/tokenizer.h"

namespace qkv {

void Tokenizer::encode_spm(std::string_view text, std::vector<int>& out) const {
  std::string piece;
  const std::vector<MergeSymbol> sym =
      merge_symbols(text, [&](const MergeSymbol& l, const MergeSymbol& r, double& priority) {
        piece.assign(text.data() + l.start, l.len + r.len);
        const int id = find(piece);
        if (id < 0) return false;
        priority = vocab_.scores[size_t(id)];
        return true;
      });
  if (sym.empty()) return;
  for (int i = 0; i != -1; i = sym[size_t(i)].next) {
    const MergeSymbol& s = sym[size_t(i)];
    piece.assign(text.data() + s.start, s.len);
    const int id = find(piece);
    if (id >= 0) {
      out.push_back(id);
    } else {
      for (size_t j = 0; j < s.len; ++j) out.push_back(byte_to_id_[static_cast<unsigned char>(text[s.start + j])]);
    }
  }
}

}  // namespace qkv
