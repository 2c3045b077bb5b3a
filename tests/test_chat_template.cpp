// Chat templates: every reference conversation of ../shared/reference/chat
// rendered byte for byte (transformers' apply_chat_template output), through
// the API and through `qkv template`; and the Jinja interpreter's semantics,
// whitespace rules and errors one by one.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "engine/api/qkv.hpp"
#include "engine/chat/jinja.h"
#include "engine/chat/json_parse.h"
#include "test_util.h"

namespace qkv {
namespace {

// ------------------------------------------------------------ the reference cases

struct ChatCase {
  std::string tmpl, number, messages, bos, eos, expected, error, continued;
  bool add_generation_prompt = true, has_error = false, has_continued = false;
};

// The case files' escapes: \\ \n \t \r.
std::string unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      const char c = s[++i];
      out += c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : c;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::vector<ChatCase> load_cases(const std::string& name) {
  std::ifstream in(test::reference_path("chat/" + name + ".cases.txt"));
  std::vector<ChatCase> cases;
  ChatCase cur;
  bool open = false;
  std::string line;
  const auto flush = [&] {
    if (open) cases.push_back(cur);
    cur = ChatCase();
    cur.tmpl = name;
    open = false;
  };
  flush();
  while (std::getline(in, line)) {
    if (!line.empty() && line[0] == '#') continue;
    if (line.empty()) {
      flush();
      continue;
    }
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = line.substr(0, colon);
    const std::string value = line.size() > colon + 2 ? line.substr(colon + 2) : "";
    open = true;
    if (key == "case") cur.number = value;
    else if (key == "messages") cur.messages = value;
    else if (key == "add_generation_prompt") cur.add_generation_prompt = value == "true";
    else if (key == "bos_token") cur.bos = value;
    else if (key == "eos_token") cur.eos = value;
    else if (key == "expected") cur.expected = unescape(value);
    else if (key == "error") cur.error = unescape(value), cur.has_error = true;
    else if (key == "expected_continue_final_message") cur.continued = unescape(value), cur.has_continued = true;
  }
  flush();
  return cases;
}

const char* const kTemplates[] = {"chatml", "qwen2.5", "qwen3", "llama2", "llama3", "llama3.1", "llama3.2",
                                  "gemma2", "gemma3", "phi3.5", "mistral-v0.2", "mistral-nemo",
                                  "deepseek-r1-distill", "smollm2", "smollm3", "command-r", "zephyr",
                                  "granite3.3", "lfm2.5"};

ChatTemplateParams params_for(const ChatCase& c) {
  ChatTemplateParams p;
  p.add_generation_prompt = c.add_generation_prompt;
  if (!c.bos.empty()) p.bos_token = c.bos;  // empty: not passed (undefined)
  if (!c.eos.empty()) p.eos_token = c.eos;
  p.now = 1767225600;  // 2026-01-01 00:00:00, the references' clock
  return p;
}

class ReferenceTemplate : public ::testing::TestWithParam<const char*> {};

TEST_P(ReferenceTemplate, EveryCaseRendersByteForByte) {
  const std::string name = GetParam();
  const ChatTemplate t(test::read_file(test::reference_path("chat/" + name + ".jinja")), name + ".jinja");
  const std::vector<ChatCase> cases = load_cases(name);
  ASSERT_EQ(cases.size(), 6u) << name;
  int continued = 0;
  for (const ChatCase& c : cases) {
    SCOPED_TRACE(name + " case " + c.number);
    ChatTemplateParams p = params_for(c);
    if (c.has_error) {
      try {
        t.apply_json(c.messages, p);
        ADD_FAILURE() << "rendered, but the reference raises: " << c.error;
      } catch (const Error& e) {
        const std::string what = e.what();
        ASSERT_GE(what.size(), c.error.size());
        EXPECT_EQ(what.substr(what.size() - c.error.size()), c.error);  // the template's own message, last
        EXPECT_NE(what.find(name + ".jinja, line "), std::string::npos) << what;
      }
    } else {
      EXPECT_EQ(t.apply_json(c.messages, p), c.expected);
    }
    if (c.has_continued) {
      ++continued;
      p.continue_final_message = true;
      EXPECT_EQ(t.apply_json(c.messages, p), c.continued);
    }
  }
  EXPECT_EQ(continued, 1);
}

INSTANTIATE_TEST_SUITE_P(Chat, ReferenceTemplate, ::testing::ValuesIn(kTemplates),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           std::string s = info.param;
                           for (char& ch : s)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return s;
                         });

// ------------------------------------------------------------ qkv template

using test::run_cli;
using CliRun = test::CliResult;

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

TEST(ChatCli, TemplateCommandRendersEveryCaseExactly) {
  int checked = 0;
  for (const char* name : kTemplates) {
    for (const ChatCase& c : load_cases(name)) {
      SCOPED_TRACE(std::string(name) + " case " + c.number);
      test::TempFile messages(c.messages, ".json");
      std::string args = "template --template " + test::reference_path(std::string("chat/") + name + ".jinja") +
                         " --messages " + messages.path();
      if (!c.add_generation_prompt) args += " --no-generation-prompt";
      if (!c.bos.empty()) args += " --bos " + quote(c.bos);
      if (!c.eos.empty()) args += " --eos " + quote(c.eos);
      const CliRun r = run_cli(args);
      if (c.has_error) {
        EXPECT_EQ(r.code, 1);
        EXPECT_EQ(r.out, "");
        EXPECT_NE(r.err.find(c.error), std::string::npos) << r.err;
      } else {
        EXPECT_EQ(r.code, 0) << r.err;
        EXPECT_EQ(r.out, c.expected);  // exactly: no newline added
      }
      if (c.has_continued) {
        const CliRun k = run_cli(args + " --continue");
        EXPECT_EQ(k.code, 0) << k.err;
        EXPECT_EQ(k.out, c.continued);
      }
      ++checked;
    }
  }
  EXPECT_EQ(checked, 19 * 6);
}

TEST(ChatCli, TemplateFromAModelFileUsesItsTokens) {
  // qwen3-like.gguf carries Qwen3's template; its EOS is <|im_end|>.
  test::TempFile messages(R"([{"role": "user", "content": "Hi"}])", ".json");
  const CliRun r = run_cli("template -m " + test::model_path("arch/qwen3-like.gguf") + " --messages " + messages.path());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  // A file without a template names the way out.
  const CliRun none = run_cli("template -m " + test::model_path("arch/qwen25-like.gguf") + " --messages " + messages.path());
  EXPECT_EQ(none.code, 1);
  EXPECT_NE(none.err.find("--chat-template"), std::string::npos) << none.err;
  // A built-in format for it.
  const CliRun chatml = run_cli("template -m " + test::model_path("arch/qwen25-like.gguf") +
                             " --chat-template chatml --messages " + messages.path());
  ASSERT_EQ(chatml.code, 0) << chatml.err;
  EXPECT_EQ(chatml.out, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatCli, BadInputIsAOneLineErrorWithTheRightStatus) {
  test::TempFile good(R"([{"role": "user", "content": "Hi"}])", ".json");
  test::TempFile bad_json(R"([{"role": "user", "content": "Hi"})", ".json");
  test::TempFile not_list(R"({"role": "user"})", ".json");
  test::TempFile bad_template("{% for m in messages %}{{ m.content }", ".jinja");
  const std::string chatml = " --chat-template chatml";
  // Usage: status 2.
  EXPECT_EQ(run_cli("template --messages " + good.path()).code, 2);
  EXPECT_EQ(run_cli("template" + chatml).code, 2);
  EXPECT_EQ(run_cli("template" + chatml + " --messages " + good.path() + " --now yesterday").code, 2);
  EXPECT_EQ(run_cli("template" + chatml + " --messages " + good.path() + " --bogus").code, 2);
  // Bad files and templates: status 1, one line naming what is wrong.
  for (const auto& [args, needle] : std::vector<std::pair<std::string, std::string>>{
           {chatml + " --messages " + bad_json.path(), "line 1, column"},
           {chatml + " --messages " + not_list.path(), "list"},
           {chatml + " --messages /nonexistent.json", "/nonexistent.json"},
           {" --template " + bad_template.path() + " --messages " + good.path(), "line 1"},
           {" --chat-template nosuchformat --messages " + good.path(), "nosuchformat"},
       }) {
    const CliRun r = run_cli("template" + args);
    EXPECT_EQ(r.code, 1) << args;
    EXPECT_EQ(r.out, "") << args;
    EXPECT_NE(r.err.find(needle), std::string::npos) << args << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
}

// ------------------------------------------------------------ built-in formats, system roles

TEST(ChatTemplateApi, BuiltinFormatsRenderAsTheirFamiliesTemplates) {
  // Each built-in against the family's own template on the plain conversations.
  const std::vector<std::pair<std::string, std::string>> pairs = {
      {"chatml", "chatml"}, {"zephyr", "zephyr"}, {"llama3", "llama3"}};
  for (const auto& [builtin, ref] : pairs) {
    const ChatTemplate b = ChatTemplate::builtin(builtin);
    const ChatTemplate r(test::read_file(test::reference_path("chat/" + ref + ".jinja")), ref);
    for (const ChatCase& c : load_cases(ref)) {
      if (!c.add_generation_prompt && ref == "llama3") continue;  // that template ignores the flag
      SCOPED_TRACE(builtin + " case " + c.number);
      EXPECT_EQ(b.apply_json(c.messages, params_for(c)), r.apply_json(c.messages, params_for(c)));
    }
  }
  EXPECT_EQ(ChatTemplate::builtin_names().size(), 7u);
  EXPECT_THROW(ChatTemplate::builtin("nonesuch"), Error);
}

TEST(ChatTemplateApi, BuiltinFormatsRenderTheirShapes) {
  const std::vector<ChatMessage> conv = {{"system", "S"}, {"user", "U1"}, {"assistant", "A1"}, {"user", "U2"}};
  ChatTemplateParams p;
  p.bos_token = "<s>";
  p.eos_token = "</s>";
  EXPECT_EQ(ChatTemplate::builtin("gemma").apply(conv, p),
            "<s><start_of_turn>user\nS\n\nU1<end_of_turn>\n<start_of_turn>model\nA1<end_of_turn>\n"
            "<start_of_turn>user\nU2<end_of_turn>\n<start_of_turn>model\n");
  EXPECT_EQ(ChatTemplate::builtin("phi3").apply(conv, p),
            "<|system|>\nS<|end|>\n<|user|>\nU1<|end|>\n<|assistant|>\nA1<|end|>\n<|user|>\nU2<|end|>\n<|assistant|>\n");
  EXPECT_EQ(ChatTemplate::builtin("mistral").apply(conv, p), "<s>[INST] S\n\nU1 [/INST]A1</s>[INST] U2 [/INST]");
  EXPECT_EQ(ChatTemplate::builtin("llama2").apply(conv, p),
            "<s>[INST] <<SYS>>\nS\n<</SYS>>\n\nU1 [/INST] A1 </s><s>[INST] U2 [/INST]");
}

TEST(ChatTemplateApi, TemplatesWithoutSystemRoleAreFoundAndMergedAsLlamaCppDoes) {
  const auto load = [](const std::string& n) {
    return ChatTemplate(test::read_file(test::reference_path("chat/" + n + ".jinja")), n);
  };
  EXPECT_FALSE(load("gemma2").supports_system_role());
  EXPECT_FALSE(load("mistral-v0.2").supports_system_role());
  EXPECT_TRUE(load("gemma3").supports_system_role());  // folds it into the first turn
  EXPECT_TRUE(load("chatml").supports_system_role());
  EXPECT_TRUE(load("llama3.1").supports_system_role());
  const std::vector<ChatMessage> conv = {{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello"}, {"user", "Bye"}};
  const std::vector<ChatMessage> merged = merge_system_message(conv);
  ASSERT_EQ(merged.size(), 3u);
  EXPECT_EQ(merged[0].role, "user");
  EXPECT_EQ(merged[0].content, "Be brief.\nHi");
  ChatTemplateParams p;
  p.bos_token = "<bos>";
  p.eos_token = "<eos>";
  EXPECT_EQ(load("gemma2").apply(merged, p),
            "<bos><start_of_turn>user\nBe brief.\nHi<end_of_turn>\n<start_of_turn>model\nHello<end_of_turn>\n"
            "<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n");
}

TEST(ChatTemplateApi, ExtraVariablesReachTheTemplate) {
  const ChatTemplate t(test::read_file(test::reference_path("chat/qwen3.jinja")), "qwen3");
  ChatTemplateParams p;
  p.variables_json = R"({"enable_thinking": false})";
  EXPECT_EQ(t.apply({{"user", "Hi"}}, p), "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
  p.variables_json = "[1]";
  EXPECT_THROW(t.apply({{"user", "Hi"}}, p), Error);
}

// ------------------------------------------------------------ the interpreter

std::string render(const std::string& source, const std::string& vars_json = "{}", int64_t now = 0) {
  jinja::RenderOptions o;
  o.now = std::time_t(now);
  o.max_steps = 200000;  // the default allows millions: enough to stop a runaway loop, too slow for a test
  return jinja::Template(source).render(jinja::parse_json(vars_json), o);
}

int error_line(const std::string& source, const std::string& vars_json = "{}") {
  try {
    render(source, vars_json);
  } catch (const jinja::TemplateError& e) {
    return e.line;
  }
  return -1;
}

TEST(Jinja, WhitespaceControlAsTransformersSetsIt) {
  // trim_blocks: the newline after a block tag goes; lstrip_blocks: the indent before it.
  EXPECT_EQ(render("{% if true %}\n  a\n  {% endif %}\nb"), "  a\nb");
  EXPECT_EQ(render("x  {%- if true -%}  y  {%- endif -%}  z"), "xyz");
  EXPECT_EQ(render("a\n  {{ 1 }}\n"), "a\n  1");     // {{ }} is not stripped; one final newline dropped
  EXPECT_EQ(render("a\n\n"), "a\n");
  EXPECT_EQ(render("a {#- c -#} b"), "ab");
  EXPECT_EQ(render("a\n  {# c #}\nb"), "a\nb");       // comments trim like blocks
  EXPECT_EQ(render("  {%+ if true %}x{% endif %}"), "  x");  // + keeps the indent
  EXPECT_EQ(render("{% raw %}{{ x }}{% if %}{% endraw %}"), "{{ x }}{% if %}");
  EXPECT_EQ(render("a\r\nb"), "a\nb");
}

TEST(Jinja, ScopesLoopsAndNamespaces) {
  EXPECT_EQ(render("{% set x = 1 %}{% for i in [1, 2] %}{% set x = i %}{% endfor %}{{ x }}"), "1");
  EXPECT_EQ(render("{% set ns = namespace(x=1) %}{% for i in [1, 2] %}{% set ns.x = ns.x + i %}{% endfor %}{{ ns.x }}"),
            "4");
  EXPECT_EQ(render("{% if true %}{% set x = 5 %}{% endif %}{{ x }}"), "5");  // if opens no scope
  EXPECT_EQ(render("{% for a, b in [[1, 2], [3, 4]] %}{{ a }}{{ b }}{% if not loop.last %},{% endif %}{% endfor %}"),
            "12,34");
  EXPECT_EQ(render("{% for x in [1, 2, 3, 4] if x % 2 == 0 %}{{ loop.index }}/{{ loop.length }}:{{ x }} {% endfor %}"),
            "1/2:2 2/2:4 ");
  EXPECT_EQ(render("{% for x in [] %}a{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(render("{% for x in [1, 2, 3] %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 3 %}{% break %}"
                   "{% endif %}{{ x }}{{ loop.cycle('a', 'b') }}{% endfor %}"),
            "1a");
  EXPECT_EQ(render("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", R"({"d": {"b": 1, "a": 2}})"), "b=1;a=2;");
  EXPECT_EQ(render("{% macro m(a, b='y') %}<{{ a }}{{ b }}>{% endmacro %}{{ m('x') }}{{ m(1, b=2) }}"), "<xy><12>");
  EXPECT_EQ(render("{% set t %}in{{ 1 }}{% endset %}[{{ t }}]"), "[in1]");
}

TEST(Jinja, PythonSemantics) {
  EXPECT_EQ(render("{{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 1 + 2.5 }}"), "3 -4 2 3.5 1024 3.5");
  EXPECT_EQ(render("{{ 0.1 + 0.2 }} {{ 1e20 }} {{ 1.0 }} {{ 1e-5 }} {{ 100.0 / 3 }}"),
            "0.30000000000000004 1e+20 1.0 1e-05 33.333333333333336");
  EXPECT_EQ(render("{{ none }} {{ true }} {{ [1, 'a', none] }} {{ {'k': 'v'} }} {{ \"it's\" | string }}"),
            "None True [1, 'a', None] {'k': 'v'} it's");
  EXPECT_EQ(render("{{ ['it\\'s'] }}"), "[\"it's\"]");
  EXPECT_EQ(render("{{ 'a' ~ 1 ~ none }} {{ 'ab' * 3 }} {{ [1] + [2] }}"), "a1None ababab [1, 2]");
  EXPECT_EQ(render("{{ s[1:] }}|{{ s[:-1] }}|{{ s[::-1] }}|{{ s[-1] }}|{{ l[1:3] }}", R"({"s": "héllo", "l": [1,2,3,4]})"),
            "éllo|héll|olléh|o|[2, 3]");
  EXPECT_EQ(render("{{ '  x \\n'.strip() }}|{{ 'xxaxx'.lstrip('x') }}|{{ 'a</think>b'.split('</think>')[-1] }}|"
                   "{{ ' a  b '.split() }}|{{ 'a,b,,c'.split(',') }}"),
            "x|axx|b|['a', 'b']|['a', 'b', '', 'c']");
  EXPECT_EQ(render("{{ 'abc'.startswith('ab') }} {{ 'abc'.endswith(('x', 'c')) }} {{ 'aXa'.replace('a', 'b') }} "
                   "{{ 'ab'.upper() }} {{ 'hello world'.title() }}"),
            "True True bXb AB Hello World");
  EXPECT_EQ(render("{{ 'b' in 'abc' }} {{ 1 in [1, 2] }} {{ 'k' in d }} {{ 'x' not in d }} {{ 'x' in nothing }}",
                   R"({"d": {"k": 1}})"),
            "True True True True False");
  EXPECT_EQ(render("{{ 1 == 1.0 }} {{ [1, 2] == [1, 2] }} {{ {'a': 1, 'b': 2} == {'b': 2, 'a': 1} }} {{ 1 < 2 < 3 }}"),
            "True True True True");
  EXPECT_EQ(render("{{ 'a' if false }}|{{ 'a' if x is defined else 'b' }}|{{ x or 'd' }}|{{ '' and 1 }}"), "|b|d|");
  EXPECT_EQ(render("{{ m.role }}{{ m['role'] }}{{ m.missing }}{{ m.missing is defined }}", R"({"m": {"role": "u"}})"),
            "uuFalse");
}

TEST(Jinja, FiltersAndTests) {
  EXPECT_EQ(render("{{ x | tojson }}", R"({"x": {"a": [1, 2.5, true, null, "é\"\n"]}})"),
            "{\"a\": [1, 2.5, true, null, \"é\\\"\\n\"]}");
  EXPECT_EQ(render("{{ x | tojson(indent=2) }}", R"({"x": {"a": [1], "b": {}}})"), "{\n  \"a\": [\n    1\n  ],\n  \"b\": {}\n}");
  EXPECT_EQ(render("{{ x | tojson(sort_keys=true) }}", R"({"x": {"b": 1, "a": 2}})"), "{\"a\": 2, \"b\": 1}");
  EXPECT_EQ(render("{{ m | selectattr('role', 'equalto', 'user') | map(attribute='c') | join(', ') }}",
                   R"({"m": [{"role": "user", "c": "a"}, {"role": "bot", "c": "b"}, {"role": "user", "c": "d"}]})"),
            "a, d");
  EXPECT_EQ(render("{{ ['a', 'code', 'b'] | reject('equalto', 'code') | list }} {{ [3, 1, 2] | sort }} "
                   "{{ [1, 2, 2] | unique | list }} {{ 'ab' | length }} {{ [1, 2] | first }} {{ [1, 2] | last }}"),
            "['a', 'b'] [1, 2, 3] [1, 2] 2 1 2");
  EXPECT_EQ(render("{{ x | default('d') }} {{ '' | default('d', true) }} {{ '  t ' | trim }} {{ 'A' | lower }} "
                   "{{ 3.7 | int }} {{ '5' | int + 1 }} {{ d | items | list }} {{ 'a\nb' | indent(2) }}",
                   R"({"d": {"k": 1}})"),
            "d d t a 3 6 [['k', 1]] a\n  b");
  EXPECT_EQ(render("{{ 1 is number }}{{ 'a' is string }}{{ none is none }}{{ false is false }}{{ 0 is false }}"
                   "{{ d is mapping }}{{ d is iterable }}{{ 3 is odd }}{{ 4 is divisibleby 2 }}{{ x is not defined }}",
                   R"({"d": {}})"),
            "TrueTrueTrueTrueFalseTrueTrueTrueTrueTrue");
}

TEST(Jinja, StrftimeNowFormatsTheGivenClockInTheCLocale) {
  EXPECT_EQ(render("{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%B %d, %Y') }}|{{ strftime_now('%H:%M') }}", "{}",
                   1767225600 + 13 * 3600 + 5 * 60),
            "01 Jan 2026|January 01, 2026|13:05");
}

TEST(Jinja, ErrorsNameTheLineAndNeverRenderSomethingElse) {
  EXPECT_EQ(error_line("a\nb\n{{ x.y }}"), 3);                       // attribute of undefined
  EXPECT_EQ(error_line("a\n{% if %}"), 2);                           // syntax
  EXPECT_EQ(error_line("{% for x in y %}\n{{ x }}"), 2);             // unclosed for: at the end
  EXPECT_EQ(error_line("\n\n{{ 'a' + none }}"), 3);
  EXPECT_EQ(error_line("{{ x | nosuchfilter }}"), 1);
  EXPECT_EQ(error_line("{{ x is nosuchtest }}"), 1);
  EXPECT_EQ(error_line("{% nosuchtag %}"), 1);
  EXPECT_EQ(error_line("{{ 'abc"), 1);
  EXPECT_EQ(error_line("{# never closed"), 1);
  EXPECT_EQ(error_line("{{ 1 / 0 }}"), 1);
  EXPECT_EQ(error_line("{{ 1 < 'a' }}"), 1);
  EXPECT_EQ(error_line("\n{% set n.x = 1 %}"), 2);                   // not a namespace
  try {
    render("\n{{ raise_exception('No system role') }}");
    FAIL();
  } catch (const jinja::TemplateError& e) {
    EXPECT_EQ(std::string(e.what()), "No system role");
    EXPECT_TRUE(e.raised);
    EXPECT_EQ(e.line, 2);
  }
  // A template that would run for ever or print without end is stopped.
  EXPECT_GT(error_line("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"), 0);
  EXPECT_GT(error_line("{% set ns = namespace(s='x') %}{% for a in range(100000) %}{% set ns.s = ns.s ~ ns.s %}"
                       "{% endfor %}"),
            0);
  EXPECT_GT(error_line("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}"), 0);
}

TEST(Jinja, JsonParserReadsWhatPythonReadsAndRefusesTheRest) {
  const jinja::Value v = jinja::parse_json(R"([1, 1.0, -2e3, "\u00e9\ud83d\ude00\n", true, null, {"a": {}, "a": 2}])");
  ASSERT_TRUE(v.is_list());
  ASSERT_EQ(v.list->size(), 7u);
  EXPECT_EQ((*v.list)[0].type, jinja::Value::Type::Int);
  EXPECT_EQ((*v.list)[1].type, jinja::Value::Type::Float);
  EXPECT_EQ((*v.list)[3].s, "é\xF0\x9F\x98\x80\n");
  ASSERT_EQ((*v.list)[6].dict->size(), 1u);  // a repeated key keeps the last value
  EXPECT_EQ(jinja::to_str(*(*v.list)[6].find("a")), "2");
  for (const char* bad : {"", "[1,]", "{\"a\" 1}", "[\"a\n\"]", "[1] x", "01x", "[99999999999999999999]", "\"\\q\""})
    EXPECT_THROW(jinja::parse_json(bad), jinja::TemplateError) << bad;
  EXPECT_THROW(jinja::parse_json(std::string(1000, '[') + std::string(1000, ']')), jinja::TemplateError);
}

}  // namespace
}  // namespace qkv
