#include "tools/attention_report.h"

#include "tools/json.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace qkv::cli {
namespace {


std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

// How a token is shown: spaces as middle dots at the edges, newlines as arrows.
std::string visible(const std::string& piece) {
  std::string out;
  for (char c : piece) {
    if (c == '\n') out += "\xe2\x86\xb5";       // ↵
    else if (c == '\t') out += "\xe2\x87\xa5";  // ⇥
    else out += c;
  }
  if (!out.empty() && out[0] == ' ') out = "\xc2\xb7" + out.substr(1);  // ·
  return out.empty() ? "\xe2\x88\x85" : out;                           // ∅ (a control token)
}

std::string fmt(double v, int prec = 4) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", prec, v);
  return buf;
}

std::string head_key(int l, int h) { return std::to_string(l) + "," + std::to_string(h); }

struct Params {
  int64_t embedding, wq, wk, wv, wo, ffn, norms, output;
};

// Parameter counts by component, for the whole model (per layer: divide the
// layer components by n_layers).
Params count_params(const ModelInfo& m) {
  const int64_t d = m.dim, q = int64_t(m.n_heads) * m.head_dim, kv = int64_t(m.n_kv_heads) * m.head_dim;
  const int64_t L = m.n_layers;
  return Params{int64_t(m.vocab_size) * d, L * d * q, L * d * kv, L * d * kv, L * q * d,
                L * 3 * d * m.hidden_dim, L * 2 * d + d, m.tied_output ? 0 : int64_t(m.vocab_size) * d};
}

}  // namespace

HeadStats head_stats(const std::vector<std::vector<float>>& rows) {
  HeadStats s;
  if (rows.empty()) return s;
  std::vector<double> received(rows.size(), 0.0);
  int with_prev = 0;
  for (size_t p = 0; p < rows.size(); ++p) {
    double h = 0;
    for (size_t t = 0; t < rows[p].size(); ++t) {
      const double x = rows[p][t];
      if (x > 0) h -= x * std::log(x);
      received[t] += x;
    }
    s.entropy += h;
    s.sink += rows[p].empty() ? 0.0 : rows[p][0];
    if (p > 0) {
      s.previous += rows[p][p - 1];
      ++with_prev;
    }
  }
  s.entropy /= double(rows.size());
  s.sink /= double(rows.size());
  if (with_prev) s.previous /= with_prev;
  // Most attended: the most probability received from the other (later)
  // tokens; a token's attention to itself is left out.
  for (size_t p = 0; p < rows.size(); ++p)
    if (p < rows[p].size()) received[p] -= rows[p][p];
  std::vector<int> order(received.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = int(i);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return received[size_t(a)] > received[size_t(b)]; });
  order.resize(std::min<size_t>(3, order.size()));
  s.top = order;
  return s;
}

std::string attention_json(const AttentionRun& run) {
  std::ostringstream os;
  const ModelInfo& m = run.info;
  const Params p = count_params(m);
  os << "{\n\"model\": {\"path\": " << json_string(run.model_path) << ", \"arch\": " << json_string(m.arch)
     << ", \"dim\": " << m.dim << ", \"hidden_dim\": " << m.hidden_dim << ", \"n_layers\": " << m.n_layers
     << ", \"n_heads\": " << m.n_heads << ", \"n_kv_heads\": " << m.n_kv_heads << ", \"head_dim\": " << m.head_dim
     << ", \"vocab_size\": " << m.vocab_size << ", \"context_length\": " << m.context_length
     << ", \"n_params\": " << m.n_params << ", \"tied_output\": " << (m.tied_output ? "true" : "false")
     << ", \"scale\": " << fmt(1.0 / std::sqrt(double(m.head_dim)), 6)
     << ", \"kv_bytes_per_token\": " << 2LL * m.n_layers * m.n_kv_heads * m.head_dim * 4
     << ", \"params\": {\"token_embedding\": " << p.embedding << ", \"wq\": " << p.wq << ", \"wk\": " << p.wk
     << ", \"wv\": " << p.wv << ", \"wo\": " << p.wo << ", \"feed_forward\": " << p.ffn << ", \"norms\": " << p.norms
     << ", \"output\": " << p.output << "}},\n";
  os << "\"prompt\": " << json_string(run.prompt) << ",\n\"n_prompt\": " << run.n_prompt << ",\n\"token_ids\": [";
  for (size_t i = 0; i < run.token_ids.size(); ++i) os << (i ? ", " : "") << run.token_ids[i];
  os << "],\n\"tokens\": [";
  for (size_t i = 0; i < run.pieces.size(); ++i) os << (i ? ", " : "") << json_string(run.pieces[i]);
  os << "],\n\"layers\": [";
  for (size_t i = 0; i < run.layers.size(); ++i) os << (i ? ", " : "") << run.layers[i];
  os << "],\n\"heads\": [";
  for (size_t i = 0; i < run.heads.size(); ++i) os << (i ? ", " : "") << run.heads[i];
  os << "],\n\"attention\": {";
  bool first = true;
  for (const auto& [key, rows] : run.rows) {
    os << (first ? "\n" : ",\n") << json_string(head_key(key.first, key.second)) << ": [";
    first = false;
    for (size_t r = 0; r < rows.size(); ++r) {
      os << (r ? "," : "") << "[";
      for (size_t t = 0; t < rows[r].size(); ++t) os << (t ? "," : "") << fmt(rows[r][t], 5);
      os << "]";
    }
    os << "]";
  }
  os << "},\n\"stats\": {";
  first = true;
  for (const auto& [key, rows] : run.rows) {
    const HeadStats s = head_stats(rows);
    os << (first ? "\n" : ",\n") << json_string(head_key(key.first, key.second)) << ": {\"entropy\": "
       << fmt(s.entropy) << ", \"sink\": " << fmt(s.sink) << ", \"previous\": " << fmt(s.previous) << ", \"top\": [";
    for (size_t i = 0; i < s.top.size(); ++i) os << (i ? ", " : "") << s.top[i];
    os << "]}";
    first = false;
  }
  os << "}\n}\n";
  return os.str();
}

namespace {

const char* kStyle = R"CSS(
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; background: #fafafa; }
h1 { font-size: 1.3em; } h2 { font-size: 1.1em; margin-top: 1.5em; }
table { border-collapse: collapse; } td, th { padding: 2px 8px; border-bottom: 1px solid #ddd; text-align: right; }
th { background: #eee; } td.l, th.l { text-align: left; }
#controls { margin: 1em 0; } #controls select { margin-right: 1em; }
#view { display: flex; gap: 1.5em; align-items: flex-start; }
canvas.heatmap { image-rendering: pixelated; border: 1px solid #bbb; background: #fff; cursor: crosshair; }
#tip { font-family: monospace; min-height: 1.4em; }
#tokens { line-height: 2em; max-width: 60em; margin: 0.5em 0; }
.tok { padding: 2px 3px; margin: 1px; border: 1px solid #ccc; border-radius: 3px; font-family: monospace;
       white-space: pre; cursor: pointer; }
.tok.gen { border-style: dashed; } .tok.sel { outline: 2px solid #000; }
#grid { display: flex; flex-wrap: wrap; gap: 8px; }
figure { margin: 0; text-align: center; font-size: 11px; cursor: pointer; }
figure.sel canvas { outline: 2px solid #000; }
.legend span { display: inline-block; width: 1em; height: 1em; vertical-align: middle; }
)CSS";

const char* kScript = R"JS(
(function () {
  'use strict';
  window.addEventListener('error', function (e) { document.body.dataset.error = String(e.message); });
  const consoleError = console.error;
  console.error = function () { document.body.dataset.error = Array.from(arguments).join(' '); consoleError.apply(console, arguments); };
  const D = JSON.parse(document.getElementById('data').textContent);
  const T = D.tokens.length;
  const state = { layer: D.layers[0], head: D.heads[0], hover: -1 };

  function matrix(layer, head) {  // T x T, zero above the diagonal
    const keys = head === 'avg' ? D.heads.map(h => layer + ',' + h) : [layer + ',' + head];
    const M = [];
    for (let i = 0; i < T; i++) M.push(new Float32Array(T));
    for (const k of keys) {
      const rows = D.attention[k];
      for (let i = 0; i < rows.length; i++)
        for (let j = 0; j < rows[i].length; j++) M[i][j] += rows[i][j] / keys.length;
    }
    return M;
  }

  // How a token reads in a label: whitespace shown, long pieces cut.
  function label(s) {
    if (s === '') return '\u2205';  // BOS and other empty pieces, as in the token strip
    s = s.replace(/\n/g, '\u21b5').replace(/\t/g, '\u2192').replace(/ /g, '\u00b7');
    return s.length > 10 ? s.slice(0, 9) + '\u2026' : s;
  }

  // The heatmap; with labels, the tokens along both axes (queries down the
  // left, keys across the top), every step-th one where cells are small.
  function draw(canvas, M, cell, hover, labels) {
    const pad = labels ? 90 : 0;
    canvas.width = pad + T * cell; canvas.height = pad + T * cell;
    canvas.dataset.pad = pad;
    const g = canvas.getContext('2d');
    g.fillStyle = '#fff'; g.fillRect(0, 0, canvas.width, canvas.height);
    if (labels) {
      const font = Math.max(8, Math.min(12, cell - 1)), step = Math.max(1, Math.ceil((font + 1) / cell));
      g.font = font + 'px monospace'; g.fillStyle = '#333'; g.textBaseline = 'middle';
      for (let i = 0; i < T; i += step) {
        g.fillStyle = i === hover ? '#c25400' : '#333';
        g.textAlign = 'right';
        g.fillText(label(D.tokens[i]), pad - 4, pad + i * cell + cell / 2);
        g.save(); g.translate(pad + i * cell + cell / 2, pad - 4); g.rotate(-Math.PI / 2);
        g.textAlign = 'left'; g.fillText(label(D.tokens[i]), 0, 0); g.restore();
      }
      g.fillStyle = '#777'; g.font = '10px sans-serif'; g.textAlign = 'left';
      g.fillText('query \u2193  key \u2192', 2, 8);
    }
    g.translate(pad, pad);
    for (let i = 0; i < T; i++) {
      for (let j = 0; j <= i; j++) {
        const p = Math.sqrt(M[i][j]);  // sqrt: small probabilities stay visible
        g.fillStyle = 'rgba(20, 60, 180,' + p.toFixed(3) + ')';
        g.fillRect(j * cell, i * cell, cell, cell);
      }
    }
    if (hover >= 0) {
      g.strokeStyle = 'rgba(230, 90, 0, 0.9)'; g.lineWidth = Math.max(1, cell / 6);
      g.strokeRect(0, hover * cell, (hover + 1) * cell, cell);            // what it attends to
      g.strokeRect(hover * cell, hover * cell, cell, (T - hover) * cell);  // what attends to it
    }
  }

  function render() {
    const M = matrix(state.layer, state.head);
    const main = document.getElementById('heatmap');
    const cell = Math.max(4, Math.min(24, Math.floor(640 / Math.max(T, 1))));
    draw(main, M, cell, state.hover, true);
    main.dataset.cell = cell;
    document.getElementById('title').textContent =
      'layer ' + state.layer + ', ' + (state.head === 'avg' ? 'average over heads' : 'head ' + state.head);
    // Tokens: what the hovered token attends to (blue), what attends to it (orange).
    document.querySelectorAll('.tok').forEach(function (el) {
      const j = Number(el.dataset.i);
      let bg = '';
      if (state.hover >= 0) {
        if (j <= state.hover) bg = 'rgba(20, 60, 180,' + Math.sqrt(M[state.hover][j]).toFixed(3) + ')';
        else bg = 'rgba(230, 90, 0,' + Math.sqrt(M[j][state.hover]).toFixed(3) + ')';
      }
      el.style.background = bg;
      el.classList.toggle('sel', j === state.hover);
    });
    document.querySelectorAll('figure').forEach(function (f) {
      f.classList.toggle('sel', Number(f.dataset.layer) === state.layer && String(f.dataset.head) === String(state.head));
    });
  }

  function setHover(i) { state.hover = i; render(); }

  const layerSel = document.getElementById('layer'), headSel = document.getElementById('head');
  layerSel.addEventListener('change', function () { state.layer = Number(layerSel.value); render(); });
  headSel.addEventListener('change', function () {
    state.head = headSel.value === 'avg' ? 'avg' : Number(headSel.value); render();
  });
  document.querySelectorAll('.tok').forEach(function (el) {
    el.addEventListener('mouseenter', function () { setHover(Number(el.dataset.i)); });
    el.addEventListener('click', function () { setHover(Number(el.dataset.i)); });
  });
  const main = document.getElementById('heatmap');
  main.addEventListener('mousemove', function (e) {
    const cell = Number(main.dataset.cell), pad = Number(main.dataset.pad), r = main.getBoundingClientRect();
    const i = Math.floor((e.clientY - r.top - pad) / cell), j = Math.floor((e.clientX - r.left - pad) / cell);
    if (i < 0 || i >= T || j < 0 || j >= T) return;
    const M = matrix(state.layer, state.head);
    document.getElementById('tip').textContent =
      JSON.stringify(D.tokens[i]) + ' \u2192 ' + JSON.stringify(D.tokens[j]) + ': ' + (j <= i ? M[i][j].toFixed(4) : '0 (future)');
    if (i !== state.hover) setHover(i);
  });
  // Thumbnails of every captured head: spot previous-token, BOS and diagonal heads.
  document.querySelectorAll('figure').forEach(function (f) {
    const layer = Number(f.dataset.layer), head = f.dataset.head === 'avg' ? 'avg' : Number(f.dataset.head);
    draw(f.querySelector('canvas'), matrix(layer, head), Math.max(1, Math.floor(96 / Math.max(T, 1))), -1, false);
    f.addEventListener('click', function () {
      state.layer = layer; state.head = head; layerSel.value = String(layer); headSel.value = String(head); render();
    });
  });
  render();
  document.body.dataset.status = 'ready';
})();
)JS";

}  // namespace

std::string attention_html(const AttentionRun& run) {
  const ModelInfo& m = run.info;
  const Params p = count_params(m);
  std::ostringstream os;
  os << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>qkv attention: "
     << html_escape(run.model_path) << "</title>\n<style>" << kStyle << "</style>\n</head>\n<body>\n";
  os << "<h1>Attention in " << html_escape(run.model_path) << "</h1>\n";
  os << "<p>Attention probabilities softmax(QK<sup>T</sup> / sqrt(" << m.head_dim << ")), the weights each token "
        "gives the values V (causal): each row is a query token, each column a key token it can see, and each row "
        "sums to 1. Prompt: <b>" << html_escape(run.prompt) << "</b> (" << run.n_prompt << " tokens, then "
     << run.token_ids.size() - size_t(run.n_prompt) << " generated, dashed).</p>\n";

  // Model card.
  auto row = [&](const std::string& name, int64_t total, bool per_layer) {
    os << "<tr><td class=\"l\">" << name << "</td><td>" << total << "</td><td>"
       << (per_layer && m.n_layers ? std::to_string(total / m.n_layers) : std::string("")) << "</td></tr>\n";
  };
  os << "<h2>Model card</h2>\n<table id=\"card\">\n<tr><th class=\"l\">component</th><th>parameters</th>"
        "<th>per layer</th></tr>\n";
  row("token embedding", p.embedding, false);
  row("W<sub>q</sub>", p.wq, true);
  row("W<sub>k</sub>", p.wk, true);
  row("W<sub>v</sub>", p.wv, true);
  row("W<sub>o</sub>", p.wo, true);
  row("feed-forward (gate, up, down)", p.ffn, true);
  row("norms", p.norms, false);
  row(m.tied_output ? "output (tied to the embedding)" : "output", p.output, false);
  row("total", p.embedding + p.wq + p.wk + p.wv + p.wo + p.ffn + p.norms + p.output, false);
  os << "</table>\n<p>" << m.n_layers << " layers, " << m.n_heads << " query heads, " << m.n_kv_heads
     << " key/value heads, head_dim " << m.head_dim << ", scale 1/sqrt(head_dim) = "
     << fmt(1.0 / std::sqrt(double(m.head_dim)), 6) << ", KV cache " << 2LL * m.n_layers * m.n_kv_heads * m.head_dim * 4
     << " bytes per token (f32), vocabulary " << m.vocab_size << ".</p>\n";

  // Picker, main heatmap and the token strip.
  os << "<div id=\"controls\">layer <select id=\"layer\">";
  for (int l : run.layers) os << "<option value=\"" << l << "\">" << l << "</option>";
  os << "</select> head <select id=\"head\">";
  for (int h : run.heads) os << "<option value=\"" << h << "\">" << h << "</option>";
  os << "<option value=\"avg\">average over heads</option></select></div>\n";
  os << "<div id=\"view\"><div><div id=\"title\"></div><canvas id=\"heatmap\" class=\"heatmap\"></canvas>"
        "<div id=\"tip\"></div></div></div>\n";
  os << "<p class=\"legend\">Hover or click a token: <span style=\"background:rgb(20,60,180)\"></span> what it "
        "attends to, <span style=\"background:rgb(230,90,0)\"></span> what attends to it.</p>\n<div id=\"tokens\">";
  for (size_t i = 0; i < run.pieces.size(); ++i)
    os << "<span class=\"tok" << (int(i) >= run.n_prompt ? " gen" : "") << "\" data-i=\"" << i << "\" title=\""
       << html_escape(run.pieces[i]) << "\">" << html_escape(visible(run.pieces[i])) << "</span>";
  os << "</div>\n";

  // Per-head statistics.
  os << "<h2>Heads</h2>\n<table id=\"stats\">\n<tr><th>layer</th><th>head</th><th>entropy (nats)</th>"
        "<th>to first token</th><th>to previous token</th><th class=\"l\">most attended</th></tr>\n";
  for (const auto& [key, rows] : run.rows) {
    const HeadStats s = head_stats(rows);
    os << "<tr data-layer=\"" << key.first << "\" data-head=\"" << key.second << "\"><td>" << key.first << "</td><td>"
       << key.second << "</td><td>" << fmt(s.entropy, 3) << "</td><td>" << fmt(s.sink, 3) << "</td><td>"
       << fmt(s.previous, 3) << "</td><td class=\"l\">";
    for (size_t i = 0; i < s.top.size(); ++i)
      os << (i ? ", " : "") << html_escape(visible(run.pieces[size_t(s.top[i])])) << " (" << s.top[i] << ")";
    os << "</td></tr>\n";
  }
  os << "</table>\n";

  // Thumbnails of every captured head, and each layer's average.
  os << "<h2>All heads</h2>\n<div id=\"grid\">\n";
  for (int l : run.layers) {
    for (int h : run.heads)
      os << "<figure data-layer=\"" << l << "\" data-head=\"" << h << "\"><canvas class=\"heatmap thumb\"></canvas>"
         << "<figcaption>L" << l << " H" << h << "</figcaption></figure>\n";
    os << "<figure data-layer=\"" << l << "\" data-head=\"avg\"><canvas class=\"heatmap thumb\"></canvas>"
       << "<figcaption>L" << l << " avg</figcaption></figure>\n";
  }
  os << "</div>\n";

  os << "<script id=\"data\" type=\"application/json\">" << attention_json(run) << "</script>\n";
  os << "<script>" << kScript << "</script>\n</body>\n</html>\n";
  return os.str();
}

}  // namespace qkv::cli
