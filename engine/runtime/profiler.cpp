#include "engine/runtime/profiler.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>

namespace qkv {
namespace {

const char* phase_name(Phase p) { return p == Phase::Prompt ? "prompt" : "generation"; }

double ms(uint64_t ns) { return double(ns) * 1e-6; }

// JSON string escaping for names and details.
std::string json_escape(const char* s) {
  std::string out;
  for (; s && *s; ++s) {
    const unsigned char c = static_cast<unsigned char>(*s);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += char(c);
    }
  }
  return out;
}

}  // namespace

const char* op_name(Op op) {
  static const char* names[] = {"embedding", "rmsnorm",  "matmul",   "rope",      "kv_store",  "attention",
                                "add",       "sampling", "quantize", "layernorm", "activation", "copy"};
  static_assert(sizeof(names) / sizeof(names[0]) == size_t(Op::kCount), "a name per op");
  return op < Op::kCount ? names[size_t(op)] : "unknown";
}

void Profiler::start(size_t events_per_thread) {
  for (std::vector<Event>& t : threads_) {
    t.clear();
    t.reserve(events_per_thread);
  }
  dropped_ = 0;
  seq_ = 0;
  epoch_ = std::chrono::steady_clock::now();
  on_ = true;
}

ProfileReport Profiler::report(double peak_gflops, double peak_gbps) const {
  ProfileReport r;
  r.dropped_events = dropped_;
  const std::vector<Event>& main = threads_[0];

  // Phases: wall time of passes, plus sampling zones (which run between passes).
  struct PhaseAcc {
    int64_t passes = 0, tokens = 0;
    uint64_t wall = 0, zoned = 0;
  };
  std::map<Phase, PhaseAcc> phases;
  for (const Event& e : main) {
    if (e.kind == Kind::Pass) {
      PhaseAcc& a = phases[e.phase];
      ++a.passes;
      a.tokens += e.tokens;
      a.wall += e.t1 - e.t0;
    } else if (e.kind == Kind::Zone) {
      PhaseAcc& a = phases[e.phase];
      a.zoned += e.t1 - e.t0;
      if (e.op == Op::Sampling) a.wall += e.t1 - e.t0;
    }
  }
  for (const auto& [ph, a] : phases) {
    ProfilePhaseStats p;
    p.phase = phase_name(ph);
    p.passes = a.passes;
    p.tokens = a.tokens;
    p.wall_ms = ms(a.wall);
    p.uncovered_ms = a.wall > a.zoned ? ms(a.wall - a.zoned) : 0.0;
    r.phases.push_back(p);
  }

  // Ops per phase, and layers per phase.
  struct OpAcc {
    int64_t calls = 0;
    uint64_t total = 0, max = 0;
    double flops = 0, bytes = 0;
  };
  std::map<std::pair<Phase, Op>, OpAcc> ops;
  std::map<std::pair<Phase, int>, std::map<Op, uint64_t>> layers;
  for (const Event& e : main) {
    if (e.kind != Kind::Zone) continue;
    OpAcc& a = ops[{e.phase, e.op}];
    const uint64_t d = e.t1 - e.t0;
    ++a.calls;
    a.total += d;
    a.max = std::max(a.max, d);
    a.flops += e.flops;
    a.bytes += e.bytes;
    if (e.layer >= 0) layers[{e.phase, e.layer}][e.op] += d;
  }
  for (const auto& [key, a] : ops) {
    ProfileOpStats s;
    s.phase = phase_name(key.first);
    s.op = op_name(key.second);
    s.calls = a.calls;
    s.total_ms = ms(a.total);
    const double wall = ms(phases[key.first].wall);
    s.percent = wall > 0 ? 100.0 * s.total_ms / wall : 0.0;
    s.mean_us = double(a.total) * 1e-3 / double(a.calls);
    s.max_us = double(a.max) * 1e-3;
    s.flops = a.flops;
    s.bytes = a.bytes;
    const double secs = double(a.total) * 1e-9;
    s.gflops = secs > 0 ? a.flops / secs * 1e-9 : 0.0;
    s.gbps = secs > 0 ? a.bytes / secs * 1e-9 : 0.0;
    if (peak_gflops > 0 && peak_gbps > 0 && secs > 0) {
      // The bound this op's declared work implies: the slower of compute and memory.
      const double compute = a.flops / (peak_gflops * 1e9), memory = a.bytes / (peak_gbps * 1e9);
      s.peak_percent = 100.0 * std::max(compute, memory) / secs;
      s.peak_bound = compute >= memory ? "FMA" : "DRAM";
    }
    r.ops.push_back(s);
  }
  std::stable_sort(r.ops.begin(), r.ops.end(), [](const ProfileOpStats& a, const ProfileOpStats& b) {
    return a.phase != b.phase ? a.phase > b.phase : a.total_ms > b.total_ms;  // "prompt" first
  });
  for (const auto& [key, per_op] : layers) {
    ProfileLayerStats l;
    l.phase = phase_name(key.first);
    l.layer = key.second;
    for (const auto& [op, t] : per_op) {
      l.total_ms += ms(t);
      l.op_ms.emplace_back(op_name(op), ms(t));
    }
    r.layers.push_back(l);
  }
  std::stable_sort(r.layers.begin(), r.layers.end(), [](const ProfileLayerStats& a, const ProfileLayerStats& b) {
    return a.phase != b.phase ? a.phase > b.phase : a.layer < b.layer;
  });

  // Threads: compute in slices; waiting at the end of each parallel op, from
  // the end of the thread's last slice in it (a thread may take several) to
  // the end of the op (the caller's wait).
  std::map<uint32_t, uint64_t> op_end;
  for (const Event& e : main)
    if (e.kind == Kind::Wait) op_end[e.seq] = e.t1;
  for (size_t t = 0; t < threads_.size(); ++t) {
    ProfileThreadStats ts;
    ts.thread = int(t);
    std::map<uint32_t, uint64_t> last_end;  // per parallel op
    for (const Event& e : threads_[t]) {
      if (e.kind != Kind::Slice) continue;
      ts.compute_ms += ms(e.t1 - e.t0);
      uint64_t& end = last_end[e.seq];
      end = std::max(end, e.t1);
    }
    for (const auto& [seq, end] : last_end) {
      auto it = op_end.find(seq);
      if (it != op_end.end() && it->second > end) ts.wait_ms += ms(it->second - end);
    }
    r.threads.push_back(ts);
  }
  return r;
}

std::string Profiler::trace_json() const {
  std::ostringstream os;
  os << "{\"traceEvents\":[\n";
  os << "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":1,\"tid\":0,\"args\":{\"name\":\"qkv\"}}";
  for (size_t t = 0; t < threads_.size(); ++t)
    os << ",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":" << t << ",\"args\":{\"name\":\"thread " << t
       << "\"}}";
  char buf[64];
  for (size_t t = 0; t < threads_.size(); ++t) {
    for (const Event& e : threads_[t]) {
      std::string name;
      switch (e.kind) {
        case Kind::Zone: name = op_name(e.op); break;
        case Kind::Slice: name = "work"; break;
        case Kind::Wait: name = "wait"; break;
        case Kind::Pass: name = std::string("forward (") + phase_name(e.phase) + ")"; break;
      }
      os << ",\n{\"name\":\"" << json_escape(name.c_str()) << "\",\"cat\":\"" << phase_name(e.phase)
         << "\",\"ph\":\"X\",\"pid\":1,\"tid\":" << t;
      std::snprintf(buf, sizeof buf, ",\"ts\":%.3f,\"dur\":%.3f", double(e.t0) * 1e-3, double(e.t1 - e.t0) * 1e-3);
      os << buf << ",\"args\":{\"layer\":" << e.layer;
      if (e.detail) os << ",\"detail\":\"" << json_escape(e.detail) << "\"";
      if (e.kind == Kind::Zone) {
        os << ",\"flops\":" << e.flops << ",\"bytes\":" << e.bytes << ",\"shape\":[";
        for (int d = 0, first = 1; d < 3; ++d)
          if (e.shape[d]) os << (first ? "" : ",") << e.shape[d], first = 0;
        os << "]";
      }
      if (e.kind == Kind::Pass) os << ",\"tokens\":" << e.tokens;
      if (e.kind == Kind::Slice || e.kind == Kind::Wait) os << ",\"op_seq\":" << e.seq;
      os << "}}";
    }
  }
  os << "\n],\"displayTimeUnit\":\"ns\"}\n";
  return os.str();
}

std::string Profiler::csv() const {
  std::ostringstream os;
  os << "phase,op,detail,layer,shape,start_us,dur_us,flops,bytes\n";
  char buf[96];
  for (const Event& e : threads_[0]) {
    if (e.kind != Kind::Zone) continue;
    std::string shape;
    for (int d = 0; d < 3; ++d)
      if (e.shape[d]) shape += (shape.empty() ? "" : "x") + std::to_string(e.shape[d]);
    std::snprintf(buf, sizeof buf, ",%d,%s,%.3f,%.3f,", int(e.layer), shape.c_str(), double(e.t0) * 1e-3,
                  double(e.t1 - e.t0) * 1e-3);
    os << phase_name(e.phase) << ',' << op_name(e.op) << ',' << (e.detail ? e.detail : "") << buf << e.flops << ','
       << e.bytes << '\n';
  }
  return os.str();
}

std::string ProfileReport::to_text() const {
  std::ostringstream os;
  char line[256];
  for (const ProfilePhaseStats& p : phases) {
    std::snprintf(line, sizeof line, "\n== %s: %lld passes, %lld tokens, %.3f ms wall (%.1f tokens/s) ==\n",
                  p.phase.c_str(), (long long)p.passes, (long long)p.tokens, p.wall_ms,
                  p.wall_ms > 0 ? 1000.0 * double(p.tokens) / p.wall_ms : 0.0);
    os << line;
    std::snprintf(line, sizeof line, "%-10s %7s %10s %7s %9s %9s %9s %8s %12s\n", "op", "calls", "total ms", "%",
                  "mean us", "max us", "GFLOP/s", "GB/s", "%peak of");
    os << line;
    for (const ProfileOpStats& o : ops) {
      if (o.phase != p.phase) continue;
      char peak[32] = "-";
      if (o.peak_percent >= 0) std::snprintf(peak, sizeof peak, "%.1f %s", o.peak_percent, o.peak_bound.c_str());
      std::snprintf(line, sizeof line, "%-10s %7lld %10.3f %7.1f %9.2f %9.2f %9.2f %8.2f %12s\n", o.op.c_str(),
                    (long long)o.calls, o.total_ms, o.percent, o.mean_us, o.max_us, o.gflops, o.gbps, peak);
      os << line;
    }
    std::snprintf(line, sizeof line, "%-10s %7s %10.3f %7.1f\n", "(no zone)", "", p.uncovered_ms,
                  p.wall_ms > 0 ? 100.0 * p.uncovered_ms / p.wall_ms : 0.0);
    os << line;

    // Per layer: total and the op kinds within it.
    std::vector<std::string> kinds;
    for (const ProfileLayerStats& l : layers)
      if (l.phase == p.phase)
        for (const auto& [op, t] : l.op_ms)
          if (std::find(kinds.begin(), kinds.end(), op) == kinds.end()) kinds.push_back(op);
    if (kinds.empty()) continue;
    os << "\nper layer (" << p.phase << ", ms)\n";
    std::snprintf(line, sizeof line, "%-6s %9s", "layer", "total");
    os << line;
    for (const std::string& k : kinds) {
      std::snprintf(line, sizeof line, " %10s", k.c_str());
      os << line;
    }
    os << '\n';
    for (const ProfileLayerStats& l : layers) {
      if (l.phase != p.phase) continue;
      std::snprintf(line, sizeof line, "%-6d %9.3f", l.layer, l.total_ms);
      os << line;
      for (const std::string& k : kinds) {
        double v = 0;
        for (const auto& [op, t] : l.op_ms)
          if (op == k) v = t;
        std::snprintf(line, sizeof line, " %10.3f", v);
        os << line;
      }
      os << '\n';
    }
  }
  if (std::any_of(ops.begin(), ops.end(), [](const ProfileOpStats& o) { return o.peak_percent >= 0; }))
    os << "\n%peak of: the op's declared work at the machine's limit over its measured time, against whichever\n"
          "limit binds: FMA (fp32 FMA peak) or DRAM (read rate from memory; data already in cache can pass 100%)\n";
  os << "\nthreads (parallel ops, all phases)\n";
  std::snprintf(line, sizeof line, "%-6s %11s %9s %7s\n", "thread", "compute ms", "wait ms", "wait %");
  os << line;
  for (const ProfileThreadStats& t : threads) {
    const double tot = t.compute_ms + t.wait_ms;
    std::snprintf(line, sizeof line, "%-6d %11.3f %9.3f %7.1f\n", t.thread, t.compute_ms, t.wait_ms,
                  tot > 0 ? 100.0 * t.wait_ms / tot : 0.0);
    os << line;
  }
  if (dropped_events) os << "(" << dropped_events << " events dropped: buffers full)\n";
  return os.str();
}

}  // namespace qkv
