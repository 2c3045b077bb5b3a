#include "engine/text/tokenizer.h"

#include <algorithm>
#include <cstdio>

#include "engine/error.h"
#include "engine/text/unicode.h"

namespace qkv {

Tokenizer::Tokenizer(Vocab vocab) : vocab_(std::move(vocab)) {
  const int n = vocab_.size();
  if (n == 0) throw Error(cat(vocab_.source, ": empty vocabulary"));
  if (int(vocab_.scores.size()) != n || int(vocab_.kinds.size()) != n)
    throw Error(cat(vocab_.source, ": vocabulary arrays have different lengths"));
  // A vocabulary of nothing but control (or unused, unknown) tokens could
  // never write a character: refused rather than generating silence.
  const bool writable = std::any_of(vocab_.kinds.begin(), vocab_.kinds.end(), [](TokenKind k) {
    return k == TokenKind::Normal || k == TokenKind::Byte || k == TokenKind::UserDefined;
  });
  if (!writable)
    throw Error(cat(vocab_.source, ": none of the vocabulary's ", n,
                    " tokens is a normal, byte or user-defined token: the model could not write any text"));
  const bool bpe = vocab_.model == VocabModel::Bpe;
  piece_to_id_.reserve(size_t(n));
  for (int i = 0; i < n; ++i) {
    if (!bpe && vocab_.kinds[size_t(i)] == TokenKind::Control) continue;
    piece_to_id_.emplace(vocab_.pieces[size_t(i)], i);  // first id wins on duplicates
  }
  for (int b = 0; b < 256; ++b) {
    std::string name;
    if (bpe) {
      append_utf8(name, byte_to_char(uint8_t(b)));
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "<0x%02X>", b);
      name = hex;
    }
    auto it = piece_to_id_.find(name);
    byte_to_id_[b] = it != piece_to_id_.end() ? it->second : vocab_.unk;
  }
  if (bpe) {
    pre_ = std::make_unique<PreTokenizer>(vocab_.pre, vocab_.source);
    merge_rank_.reserve(vocab_.merges.size());
    for (size_t r = 0; r < vocab_.merges.size(); ++r) {
      const std::string& m = vocab_.merges[r];
      if (m.find(' ', 1) != std::string::npos) merge_rank_.emplace(m, int(r));  // first rank wins
    }
  }
  if (vocab_.match_special) {
    for (int i = 0; i < n; ++i) {
      const TokenKind k = vocab_.kinds[size_t(i)];
      if ((k == TokenKind::Control || k == TokenKind::UserDefined || k == TokenKind::Unknown) &&
          !vocab_.pieces[size_t(i)].empty())
        specials_.push_back(i);
    }
    std::stable_sort(specials_.begin(), specials_.end(), [&](int a, int b) {
      return vocab_.pieces[size_t(a)].size() > vocab_.pieces[size_t(b)].size();
    });
  }
}

int Tokenizer::find(const std::string& piece) const {
  auto it = piece_to_id_.find(piece);
  return it != piece_to_id_.end() ? it->second : -1;
}

std::string Tokenizer::piece(int id, bool special) const {
  if (id < 0 || id >= size()) return std::string();
  const TokenKind kind = vocab_.kinds[size_t(id)];
  if (kind == TokenKind::Control || kind == TokenKind::Unknown)
    return special ? vocab_.pieces[size_t(id)] : std::string();
  return decode(-1, id);
}

bool Tokenizer::is_end_of_generation(int id) const {
  return std::binary_search(vocab_.end_of_generation.begin(), vocab_.end_of_generation.end(), id);
}

// Cuts the special tokens out of the text, longest first, each at every place
// it occurs in the text that is left (llama.cpp's tokenizer_st_partition).
std::vector<Tokenizer::Fragment> Tokenizer::partition(std::string_view text, bool parse_special) const {
  std::vector<Fragment> frags;
  if (text.empty()) return frags;
  frags.push_back({-1, 0, text.size()});
  auto is_space = [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
  for (const int id : specials_) {
    const TokenKind kind = vocab_.kinds[size_t(id)];
    if (!parse_special && (kind == TokenKind::Control || kind == TokenKind::Unknown)) continue;
    const std::string& piece = vocab_.pieces[size_t(id)];
    // Phi-3: whitespace after a special token goes, except after these.
    const bool rstrip = vocab_.rstrip_special && piece != "<unk>" && piece != "<s>" && piece != "<|endoftext|>";
    std::vector<Fragment> next;
    for (const Fragment& f : frags) {
      if (f.token >= 0) {
        next.push_back(f);
        continue;
      }
      size_t begin = f.begin, end = f.begin + f.length;
      while (begin < end) {
        const size_t at = text.substr(0, end).find(piece, begin);
        if (at == std::string_view::npos) break;
        if (at > begin) next.push_back({-1, begin, at - begin});
        next.push_back({id, at, 0});
        begin = at + piece.size();
        if (rstrip)
          while (begin < end && is_space(text[begin])) ++begin;
      }
      if (begin < end) next.push_back({-1, begin, end - begin});
    }
    frags = std::move(next);
  }
  return frags;
}

std::vector<int> Tokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
  std::vector<int> out;
  if (add_special && vocab_.add_bos && vocab_.bos >= 0) out.push_back(vocab_.bos);
  bool prev_special = true;  // SentencePiece's dummy space starts each text after a special token
  for (const Fragment& f : partition(text, parse_special)) {
    if (f.token >= 0) {
      out.push_back(f.token);
      prev_special = true;
      continue;
    }
    const std::string_view piece = text.substr(f.begin, f.length);
    if (vocab_.model == VocabModel::Bpe) {
      encode_bpe(piece, out);
    } else {
      std::string s;
      s.reserve(piece.size() + 1);
      if (vocab_.add_space_prefix && prev_special) s.push_back(' ');
      // A literal U+2581 is a space to SentencePiece (GGUF vocabularies
      // write spaces that way); llama2.c's tokenizer.bin keeps it as text.
      if (vocab_.match_special) {
        static const std::string_view kLower = "\xe2\x96\x81";
        for (size_t i = 0; i < piece.size();) {
          if (piece.compare(i, kLower.size(), kLower) == 0) {
            s.push_back(' ');
            i += kLower.size();
          } else {
            s.push_back(piece[i++]);
          }
        }
      } else {
        s.append(piece);
      }
      encode_spm(s, out);
    }
    prev_special = false;
  }
  if (add_special && vocab_.add_eos && vocab_.eos >= 0) out.push_back(vocab_.eos);
  return out;
}

std::string Tokenizer::decode(int prev, int id) const {
  if (id < 0 || id >= size()) return std::string();
  const TokenKind kind = vocab_.kinds[size_t(id)];
  if (kind == TokenKind::Control || kind == TokenKind::Unused) return std::string();
  const std::string& piece = vocab_.pieces[size_t(id)];
  if (kind == TokenKind::Byte) {
    unsigned v = 0;
    if (std::sscanf(piece.c_str(), "<0x%02X>", &v) == 1) return std::string(1, char(v));
    return piece;
  }
  if (vocab_.model == VocabModel::Bpe) {
    if (kind != TokenKind::Normal) return kind == TokenKind::Unknown ? std::string() : piece;
    // GPT-2's byte characters back to bytes.
    std::string bytes;
    for (const uint32_t cp : decode_utf8(piece)) {
      const int b = char_to_byte(cp);
      if (b >= 0) bytes.push_back(char(b));
      else append_utf8(bytes, cp);
    }
    return bytes;
  }
  if (kind == TokenKind::Unknown) return piece;
  // SentencePiece drops the dummy prefix space of the first word.
  if (prev >= 0 && prev == vocab_.bos && vocab_.add_space_prefix && !piece.empty() && piece[0] == ' ')
    return piece.substr(1);
  return piece;
}

}  // namespace qkv
