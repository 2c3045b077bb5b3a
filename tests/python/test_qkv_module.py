"""The Python module (tools/python/qkv.py) against the built library and the CLI.

Run by ctest as: python3 tests/python/test_qkv_module.py (QKV_LIBRARY, QKV_CLI, QKV_MODELS_DIR set).
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "python"))
import qkv  # noqa: E402

MODELS = os.environ.get("QKV_MODELS_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "models"))
CLI = os.environ["QKV_CLI"]
STORIES = os.path.join(MODELS, "stories260K.gguf")
CHAT_MODEL = os.path.join(MODELS, "arch", "qwen3-like.gguf")


def cli(*args, stdin=None):
    r = subprocess.run([CLI, *args], input=stdin, capture_output=True)
    return r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")


class ModuleTest(unittest.TestCase):
    def test_generate_matches_the_cli_with_the_same_seed(self):
        model = qkv.Model(STORIES)
        for temp, seed in ((0.8, 42), (1.0, 7), (0.0, 1)):
            session = qkv.Session(model, n_ctx=256)
            sampler = qkv.Sampler(model, temperature=temp, seed=seed)
            prompt = model.tokenize("Once upon a time")
            pieces = list(qkv.generate(session, sampler, prompt, n_predict=60))
            code, out, err = cli("generate", "-m", STORIES, "-p", "Once upon a time", "-n", "60", "--temp", str(temp),
                                 "-s", str(seed), "-c", "256")
            self.assertEqual(code, 0, err)
            self.assertEqual("Once upon a time" + "".join(pieces) + "\n", out, (temp, seed))
            self.assertGreater(len(pieces), 10)

    def test_stop_strings_continuation_and_tokenizer(self):
        model = qkv.Model(STORIES)
        ids = model.tokenize("Once upon a time")
        self.assertEqual(ids[0], 1)  # BOS
        self.assertEqual(model.detokenize(ids), "Once upon a time")
        self.assertEqual(model.n_vocab, 512)
        greedy = "".join(qkv.generate(qkv.Session(model), qkv.Sampler(model, temperature=0), ids, n_predict=60))
        at = greedy.find(" named Lily")
        self.assertGreater(at, 0)
        session, sampler = qkv.Session(model), qkv.Sampler(model, temperature=0)
        cut = "".join(qkv.generate(session, sampler, ids, n_predict=60, stop=[" named Lily"]))
        self.assertEqual(cut, greedy[:at])
        # Two calls continue one history: the same text as one call.
        session, sampler = qkv.Session(model), qkv.Sampler(model, temperature=0)
        first = "".join(qkv.generate(session, sampler, ids, n_predict=20))
        second = "".join(qkv.generate(session, sampler, [], n_predict=40))
        self.assertEqual(first + second, greedy)

    def test_saved_session_and_errors(self):
        model = qkv.Model(STORIES)
        ids = model.tokenize("Once upon a time, there was")
        session = qkv.Session(model, n_ctx=128)
        session.eval(ids)
        want = session.logits()
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "state.bin")
            session.save(path)
            other = qkv.Session(model, n_ctx=128)
            other.load(path)
            self.assertEqual(other.n_past, len(ids))
            self.assertEqual(other.logits(), want)
            f32 = qkv.Session(model, n_ctx=128, kv_f16=False)
            with self.assertRaises(qkv.QkvError) as e:
                f32.load(path)
            self.assertIn("f16", str(e.exception))
        with self.assertRaises(qkv.QkvError) as e:
            qkv.Model("/nonexistent.gguf")
        self.assertIn("/nonexistent.gguf", str(e.exception))

    def test_chat_and_template_match_the_cli(self):
        model = qkv.Model(CHAT_MODEL)
        messages = [{"role": "user", "content": "Hello there"}]
        prompt = qkv.apply_chat_template(model, messages)
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(messages, f)
        code, out, err = cli("template", "-m", CHAT_MODEL, "--messages", f.name)
        os.unlink(f.name)
        self.assertEqual(code, 0, err)
        self.assertEqual(prompt, out)
        chat = qkv.Chat(qkv.Session(model, n_ctx=512), n_predict=12)
        sampler = qkv.Sampler(model, temperature=0)
        streamed = []
        reply = chat.say("Hello there", sampler, on_text=streamed.append)
        self.assertEqual("".join(streamed), reply)
        code, out, err = cli("chat", "-m", CHAT_MODEL, "--temp", "0", "-n", "12", "-c", "512", stdin=b"Hello there\n")
        self.assertEqual(code, 0, err)
        self.assertEqual(out, reply + "\n")
        second = chat.say("And then?", sampler)
        self.assertIsInstance(second, str)
        with self.assertRaises(qkv.QkvError) as e:
            qkv.apply_chat_template(model, messages, template="{{ raise_exception('no thanks') }}")
        self.assertIn("no thanks", str(e.exception))


if __name__ == "__main__":
    unittest.main(verbosity=2)
